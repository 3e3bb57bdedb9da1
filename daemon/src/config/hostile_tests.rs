//! Hostile config files: arbitrary and mutated TOML is refused with an error naming the problem,
//! or resolved, never a panic. Cases: `DRPAIR_FUZZ_CASES` (default 256).

use super::{AgentFile, ConfigFile, StandbyFile};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("DRPAIR_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

fn check(text: &str) {
    if let Ok(f) = toml::from_str::<ConfigFile>(text) {
        if let Some(s) = f.standby {
            let _ = s.resolve(StandbyFile::default());
        }
        if let Some(a) = f.agent {
            let _ = a.resolve(AgentFile::default(), false);
        }
    }
}

const SAMPLE: &str = r#"[agent]
pair = "web-01"
disks = ["/dev/vdb"]
standby = "backup:7700"
cut_interval = "30s"
chunk_size = 65536
compression = "zstd:3"
spool_memory_mib = 256
standby_fingerprint = "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
[standby]
listen = "0.0.0.0:7700"
api_listen = "127.0.0.1:7701"
retention_grid = "1x10m(keep=all) | 60x1m"
keep_last = 10
max_read_window = "2s"
agent_cert_ttl = "90d"
"#;

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,400}") {
        check(&text);
    }

    #[test]
    fn mutated_configs_never_panic(edits in proptest::collection::vec((any::<usize>(), any::<char>()), 1..6)) {
        let mut chars: Vec<char> = SAMPLE.chars().collect();
        for (i, c) in edits {
            let n = chars.len();
            chars[i % n] = c;
        }
        check(&chars.into_iter().collect::<String>());
    }

    #[test]
    fn extreme_numbers_never_panic(chunk in any::<u64>(), mib in any::<u64>(), workers in any::<u32>(), buf in any::<u64>()) {
        check(&format!(
            "[agent]\npair = \"p\"\ndisks = [\"/d\"]\nstandby = \"h:1\"\nchunk_size = {}\nspool_memory_mib = {}\nworkers = {workers}\ntracefs_buffer_kib = {}\n",
            chunk % (i64::MAX as u64), mib % (i64::MAX as u64), buf % (i64::MAX as u64)
        ));
    }
}
