//! Fixtures shared by the unit tests.

use crate::{RecoveryPoint, Store};
use drpair_types::{Consistency, PairId, PointKind, PointSizes};
use serde::{Deserialize, Serialize};

/// A store in a fresh temporary directory (deleted when the `TempDir` drops).
pub(crate) fn open_temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open store");
    (dir, store)
}

/// A recovery point of pair `pair` at `epoch`.
pub(crate) fn point(pair: &str, epoch: u64) -> RecoveryPoint {
    RecoveryPoint {
        id: epoch,
        pair_id: PairId::new(pair).expect("pair id"),
        epoch,
        lineage: uuid::Uuid::nil(),
        time: "2025-01-01T00:00:00Z".into(),
        time_unix_ms: 1_735_689_600_000 + epoch,
        committed_unix_ms: 1_735_689_600_000 + epoch,
        kind: PointKind::Scheduled,
        consistency: Consistency::CrashConsistent,
        pinned: false,
        verified_at: None,
        tested_at: None,
        sizes: PointSizes { changed_chunks: epoch, ..PointSizes::default() },
        quiesce: None,
        full_pass: false,
        damage: None,
        read_window_ms: None,
        window_exceeded: false,
    }
}

/// Stand-in for the daemon's pair record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub pair: String,
    pub checkpoint: u64,
}

pub(crate) fn record(pair: &str, checkpoint: u64) -> Record {
    Record { pair: pair.into(), checkpoint }
}

/// Stores a one-byte stand-in chunk under every hash `[b; 32]`: the fixtures name chunks
/// that way, and version entries may only name stored chunks.
pub(crate) fn seed_fake_chunks(s: &Store) {
    for b in 0..=255u8 {
        let chunk = crate::StoredChunk { compressed: false, raw_len: 1, payload: &[b] };
        s.put_chunk(&[b; 32], chunk).expect("seed chunk");
    }
}

/// A store in a fresh temporary directory with the stand-in chunks.
pub(crate) fn open_seeded() -> (tempfile::TempDir, Store) {
    let (dir, s) = open_temp();
    seed_fake_chunks(&s);
    (dir, s)
}

/// Opens the store at `path` and stores the stand-in chunks.
pub(crate) fn open_at(path: &std::path::Path) -> Store {
    let s = Store::open(path).expect("open store");
    seed_fake_chunks(&s);
    s
}
