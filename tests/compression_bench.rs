//! The compression benchmark (issue 22 part 1), run by `benches/compression.sh` (ignored in
//! the test suite: it measures, it does not check). The goal it reports against: on any link,
//! `--compression auto` must finish the initial sync within 10% of the faster of `off` and
//! `zstd:1` on that link, and ship no more bytes than `off`.
//!
//! For each link it times the initial sync (agent start to the pair's first committed point,
//! enrollment done before) of the same image three times, with `off`, `zstd:1` and `auto`,
//! each against a fresh standby in a fresh directory, so no chunk stored by an earlier run can
//! be deduplicated by a later one:
//! - `loopback`: the agent talks to the standby directly (no proxy); bytes are the chunk
//!   payload bytes the standby counted (`bytes_shipped`);
//! - `1 Gbit/s, 2 ms RTT` and `100 Mbit/s, 20 ms RTT`: through the fault proxy with a rate
//!   cap each way and 1 ms / 10 ms of delay each way; bytes are agent→standby bytes forwarded.
//!
//! Images: 1 GiB of `Fill::Mixed` (~40% random, ~30% zero, ~30% text) on every link, and on
//! loopback also `/var/cache/drpair-bench/fs-4g.img` (a 4 GiB ext4 of files from `/usr`) when
//! it exists.
//!
//! Prints one `COMPRESSION` line per link and image with the three times, bytes and the two
//! ratios against the goal, and one per `auto` run with the levels it went through (from the
//! agent's log: "compression level changed" and "going back" lines).
//!
//! Environment: `DRPAIR_COMP_LINKS` (comma-separated subset of `loopback,fs,1g,100m`; default
//! all), `DRPAIR_COMP_SIZE_MIB` (the mixed image's size, default 1024), `DRPAIR_COMP_LOGS` (a
//! directory to copy each run's agent log into, for reading what `auto` did).

use drpair_e2e::fault_proxy::FaultProxy;
use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_ready};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The real-files image (made by the bench setup; skipped when missing).
const FS_IMAGE: &str = "/var/cache/drpair-bench/fs-4g.img";
const MODES: [&str; 3] = ["off", "zstd:1", "auto"];
const PAIR: &str = "comp-01";
const SYNC_TIMEOUT: Duration = Duration::from_secs(1800);

fn comp(line: String) {
    println!("COMPRESSION {line}");
    step(line);
}

/// A link between agent and standby.
#[derive(Clone, Copy)]
struct Link {
    name: &'static str,
    /// Bytes per second each way; `None` with `proxied` false: no proxy at all.
    rate: Option<u64>,
    /// One-way delay.
    delay: Duration,
    proxied: bool,
}

const LOOPBACK: Link = Link { name: "loopback", rate: None, delay: Duration::ZERO, proxied: false };
const GBIT: Link =
    Link { name: "1 Gbit/s, 2 ms RTT", rate: Some(125_000_000), delay: Duration::from_millis(1), proxied: true };
const MBIT100: Link =
    Link { name: "100 Mbit/s, 20 ms RTT", rate: Some(12_500_000), delay: Duration::from_millis(10), proxied: true };

/// One initial sync.
struct Run {
    secs: f64,
    bytes: u64,
    /// What `auto` did (empty for fixed levels).
    levels: String,
}

/// `Zstd(3)` / `Off` (the adaptive machine's Debug names) or `3` / `0` (the pass's levels) as
/// the setting is written.
fn level_name(raw: &str) -> String {
    let raw = raw.trim_matches('"');
    if let Some(l) = raw.strip_prefix("Zstd(").and_then(|r| r.strip_suffix(')')) {
        return format!("zstd:{l}");
    }
    match raw {
        "Off" | "0" => "off".into(),
        l if l.parse::<i32>().is_ok() => format!("zstd:{l}"),
        other => other.into(),
    }
}

/// The value of `key=` in a tracing line (up to the next space, quotes kept).
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let at = line.find(&format!(" {key}="))? + key.len() + 2;
    let rest = &line[at..];
    if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        return Some(&quoted[..end]);
    }
    Some(rest.split_whitespace().next().unwrap_or(""))
}

/// What `auto` did, from the agent's log: each change with its reason, each return with the
/// two rates, and the level it ended on.
fn auto_story(log: &str) -> String {
    let mut steps = vec![];
    let mut last = "zstd:1".to_string();
    for line in log.lines() {
        if line.contains("compression level changed") {
            let (from, to) = (field(line, "from").unwrap_or("?"), field(line, "to").unwrap_or("?"));
            let why = field(line, "why").unwrap_or("?");
            steps.push(format!("{} → {} ({why})", level_name(from), level_name(to)));
        } else if line.contains("going back") {
            let tried = level_name(field(line, "tried").unwrap_or("?"));
            let back = level_name(field(line, "back_to").unwrap_or("?"));
            let rate = field(line, "rate_mb_s").and_then(|r| r.parse::<f64>().ok()).unwrap_or(f64::NAN);
            let before = field(line, "before_mb_s").and_then(|r| r.parse::<f64>().ok()).unwrap_or(f64::NAN);
            steps.push(format!("{tried} back to {back} ({rate:.1} MB/s raw vs {before:.1})"));
        } else if line.contains("compression level adapted to the link") {
            if let Some(to) = field(line, "to") {
                last = level_name(to);
            }
        }
    }
    let story = if steps.is_empty() { "no change".to_string() } else { steps.join(", ") };
    format!("started zstd:1; {story}; ended on {last}")
}

/// A directory name from a label.
fn slug(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect()
}

/// The initial sync of `image` over `link` with `mode`, against a fresh standby.
fn sync_once(image: &Path, link: Link, mode: &str, tag: &str) -> Run {
    let env = TestEnv::new(&format!("comp-{}", slug(tag)));
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let proxy = link.proxied.then(|| {
        let p = FaultProxy::start(sb.link);
        p.set_rate(link.rate);
        p.set_delay(link.delay);
        p
    });
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[image]);
    if let Some(p) = &proxy {
        spec.standby = p.addr;
    }
    spec.compression = Some(mode.into());
    spec.enroll();
    let t = Instant::now();
    let mut agent = spec.spawn(&env, "agent");
    let status = wait_ready(&api, PAIR, &mut agent, SYNC_TIMEOUT);
    let secs = t.elapsed().as_secs_f64();
    let bytes = proxy.as_ref().map_or(status.stats.bytes_shipped, |p| p.forwarded().0);
    agent.term(Duration::from_secs(30));
    let log = std::fs::read_to_string(agent.log_path()).unwrap_or_default();
    if let Some(dir) = std::env::var_os("DRPAIR_COMP_LOGS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).ok();
        std::fs::copy(agent.log_path(), dir.join(format!("{}.log", slug(tag)))).ok();
    }
    let levels = if mode == "auto" { auto_story(&log) } else { String::new() };
    step(format!("{tag}: {secs:.2} s, {bytes} B"));
    Run { secs, bytes, levels }
}

/// The three modes over one link and image; prints the link's line and what `auto` did.
fn bench(image: &Path, link: Link, what: &str) {
    let runs: Vec<Run> =
        MODES.iter().map(|m| sync_once(image, link, m, &format!("{what} {} {m}", link.name))).collect();
    let [off, z1, auto] = [&runs[0], &runs[1], &runs[2]];
    let best = off.secs.min(z1.secs);
    let mb = |r: &Run| r.bytes as f64 / 1e6;
    comp(format!(
        "{} ({what}): off {:.1} s ({:.0} MB on the wire), zstd:1 {:.1} s ({:.0} MB), auto {:.1} s ({:.0} MB) = auto/best {:.2}× (goal ≤ 1.10), auto/off bytes {:.2}× (goal ≤ 1.00)",
        link.name,
        off.secs,
        mb(off),
        z1.secs,
        mb(z1),
        auto.secs,
        mb(auto),
        auto.secs / best,
        auto.bytes as f64 / off.bytes as f64
    ));
    comp(format!("{} ({what}) auto levels: {}", link.name, auto.levels));
}

fn wanted(key: &str) -> bool {
    std::env::var("DRPAIR_COMP_LINKS").ok().is_none_or(|v| v.split(',').any(|k| k.trim() == key))
}

#[test]
#[ignore = "a benchmark: run by benches/compression.sh"]
fn compression_benchmark() {
    let images = TestEnv::new("comp-images");
    let size = std::env::var("DRPAIR_COMP_SIZE_MIB").ok().and_then(|s| s.parse::<u64>().ok()).unwrap_or(1024) * MIB;
    let mixed = images.path("mixed.img");
    create_image(&mixed, size, Fill::Mixed, 22);
    let what = format!("{} MiB mixed", size / MIB);
    if wanted("loopback") {
        bench(&mixed, LOOPBACK, &what);
    }
    if wanted("fs") {
        let fs = Path::new(FS_IMAGE);
        if fs.is_file() {
            bench(fs, LOOPBACK, "4 GiB ext4 of /usr files");
        } else {
            comp(format!("loopback (4 GiB ext4 of /usr files): skipped, {FS_IMAGE} does not exist"));
        }
    }
    if wanted("1g") {
        bench(&mixed, GBIT, &what);
    }
    if wanted("100m") {
        bench(&mixed, MBIT100, &what);
    }
}

#[test]
fn auto_story_reads_the_agent_log() {
    let log = "\
2026-12-07T07:00:00Z  INFO drpair_ship::adapt: compression level changed from=Zstd(1) to=Zstd(3) why=\"LinkBound\"
2026-12-07T07:00:00Z  INFO drpair_ship::pass::level: compression level adapted to the link (0 = off) from=1 to=3
2026-12-07T07:00:02Z  INFO drpair_ship::adapt: compression level moved fewer bytes per second than the one before: going back tried=Zstd(3) back_to=Zstd(1) rate_mb_s=40.5 before_mb_s=61.26
2026-12-07T07:00:02Z  INFO drpair_ship::pass::level: compression level adapted to the link (0 = off) from=3 to=1
2026-12-07T07:00:05Z  INFO drpair_ship::adapt: compression level changed from=Zstd(1) to=Off why=\"CpuBound\"
2026-12-07T07:00:05Z  INFO drpair_ship::pass::level: compression level adapted to the link (0 = off) from=1 to=0
";
    assert_eq!(
        auto_story(log),
        "started zstd:1; zstd:1 → zstd:3 (LinkBound), zstd:3 back to zstd:1 (40.5 MB/s raw vs 61.3), zstd:1 → off (CpuBound); ended on off"
    );
    assert_eq!(auto_story(""), "started zstd:1; no change; ended on zstd:1");
}
