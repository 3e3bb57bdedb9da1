//! Scenario: the standby ingests a baseline of several GiB; the store's memory stays bounded.
//!
//! Ignored by default (it writes `DRPAIR_INGEST_GIB` GiB, default 4, to a temporary directory):
//! `cargo test --release -p drpair-store --test ingest_memory -- --ignored --nocapture`

use drpair_store::{ChunkVersion, Store, StoredChunk};
use drpair_types::{Consistency, PairId, PointKind, PointSizes, RecoveryPoint};
use std::time::Instant;

const CHUNK: u32 = 64 << 10;
/// Chunks per committed epoch (64 MiB).
const PER_EPOCH: u64 = 1024;
const RSS_LIMIT_BYTES: u64 = 512 << 20;

/// Peak resident set size of this process (`VmHWM`), in bytes.
fn peak_rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    let kib: u64 = line.split_whitespace().nth(1).expect("value").parse().expect("number");
    kib * 1024
}

/// Incompressible, distinct chunk contents (xorshift64).
fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for word in buf.chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        word.copy_from_slice(&x.to_le_bytes());
    }
}

fn point(pair_id: &PairId, epoch: u64) -> RecoveryPoint {
    RecoveryPoint {
        id: epoch,
        pair_id: pair_id.clone(),
        epoch,
        lineage: uuid::Uuid::nil(),
        time: "2025-01-01T00:00:00Z".into(),
        time_unix_ms: 0,
        committed_unix_ms: 0,
        kind: PointKind::Baseline,
        consistency: Consistency::Fuzzy,
        pinned: false,
        verified_at: None,
        tested_at: None,
        sizes: PointSizes::default(),
        quiesce: None,
        full_pass: false,
        damage: None,
        read_window_ms: None,
        window_exceeded: false,
    }
}

#[test]
#[ignore = "writes several GiB; run explicitly"]
fn baseline_ingest_stays_under_512_mib_rss() {
    let gib: u64 = std::env::var("DRPAIR_INGEST_GIB").ok().and_then(|v| v.parse().ok()).unwrap_or(4);
    let chunks = gib * (1 << 30) / u64::from(CHUNK);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let pair_id = PairId::new("ingest").unwrap();
    let pair_no = store.allocate_pair_no().unwrap();
    let start = Instant::now();
    let mut buf = vec![0u8; CHUNK as usize];
    let mut items = Vec::new();
    let mut epoch = 1;
    for chunk in 0..chunks {
        fill(&mut buf, chunk);
        let hash = *blake3::hash(&buf).as_bytes();
        let stored = StoredChunk { compressed: false, raw_len: CHUNK, payload: &buf };
        store.put_chunk(&hash, stored).unwrap();
        items.push((0, chunk, ChunkVersion::Data(hash)));
        if items.len() as u64 == PER_EPOCH || chunk + 1 == chunks {
            store.write_versions(pair_no, epoch, &items).unwrap();
            store.commit_point(pair_no, &point(&pair_id, epoch), &pair_id, &"record").unwrap();
            items.clear();
            epoch += 1;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let rss = peak_rss_bytes();
    let sizes = store.approximate_sizes().unwrap();
    println!(
        "ingested {gib} GiB in {secs:.1} s ({:.0} MiB/s); peak RSS {} MiB; {sizes:?}",
        (gib << 10) as f64 / secs,
        rss >> 20
    );
    // Spot check: a chunk from the middle reads back verified.
    let v = store.versions_at(pair_no, 0, epoch, chunks / 2, 1).unwrap();
    let Some(ChunkVersion::Data(h)) = v[0] else { panic!("chunk {} has no version", chunks / 2) };
    fill(&mut buf, chunks / 2);
    assert_eq!(store.read_chunk(&h).unwrap(), buf);
    assert!(rss < RSS_LIMIT_BYTES, "peak RSS {} MiB exceeds 512 MiB", rss >> 20);
}
