//! Hostile API bodies: arbitrary and mutated JSON into every request body the API parses is
//! refused with a parameter error or parsed, never a panic. Cases: `DRPAIR_FUZZ_CASES` (default
//! 256; `benches/decoders.sh` runs 100,000).

use super::control::body;
use drpair_types::*;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("DRPAIR_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

/// Every body type the API parses.
fn parse_all(raw: &[u8]) {
    let raw = axum::body::Bytes::copy_from_slice(raw);
    let _ = body::<StartRequest>(&raw);
    let _ = body::<RestartRequest>(&raw);
    let _ = body::<ResumeRequest>(&raw);
    let _ = body::<CreatePointRequest>(&raw);
    let _ = body::<RetentionUpdate>(&raw);
    let _ = body::<PruneRequest>(&raw);
    let _ = body::<VerifyRequest>(&raw);
    let _ = body::<FailoverRequest>(&raw);
    let _ = body::<FailbackRequest>(&raw);
    let _ = body::<DrillRequest>(&raw);
    let _ = body::<NewToken>(&raw);
    let _ = super::control::no_params(&raw);
}

const SAMPLES: &[&str] = &[
    r#"{"type": "resume", "from_point": "LINEAGE:17", "confirm": "web-01"}"#,
    r#"{"confirm": "web-01", "full_copy": true, "keep_points_until_synced": false}"#,
    r#"{"name": "grafana", "role": "metrics", "expires": "30d"}"#,
    r#"{"point": "latest", "targets": ["/dev/vg0/web"], "force": false}"#,
    r#"{"grid": "1x10m(keep=all) | 60x1m", "keep_last": 10}"#,
];

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bodies_never_panic(raw in proptest::collection::vec(any::<u8>(), 0..512)) {
        parse_all(&raw);
    }

    #[test]
    fn mutated_bodies_never_panic(which in 0usize..5, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
        let mut b = SAMPLES[which].as_bytes().to_vec();
        for (i, x) in edits {
            let n = b.len();
            b[i % n] = x;
        }
        parse_all(&b);
    }

    #[test]
    fn deep_or_long_json_never_panics(depth in 0usize..2000, n in 0usize..20_000) {
        parse_all(format!("{}{}", "[".repeat(depth), "]".repeat(depth)).as_bytes());
        parse_all(format!(r#"{{"confirm": "{}"}}"#, "x".repeat(n)).as_bytes());
    }
}
