//! Runs of zero chunks in a frame (`ChunkBody::ZeroRun`: the holes of a sparse disk): checked
//! like any item (a run must fit the disk and hold at least one chunk, and no two items of a
//! frame may name the same chunk), taken out of the frame, and recorded once the frame's
//! other items are stored, with one store call per run (`Store::write_zero_run`: no entry
//! per chunk of a hole that never held data).

use super::{IngestError, Ingested};
use drpair_store::Store;
use drpair_types::{DiskGeometry, Epoch, PairId};
use drpair_wire::{ChunkBody, ChunkItem};

/// A run: (disk, first chunk, count).
pub(super) type Run = (u32, u64, u64);

/// The chunks an item names: `(first, count)` (one, or a run's).
pub fn span(item: &ChunkItem) -> (u64, u64) {
    match item.body {
        ChunkBody::ZeroRun { count } => (item.index, count),
        _ => (item.index, 1),
    }
}

/// Checks a run's chunks against the disk (the caller checked the disk and the first chunk).
pub(super) fn check(pair: &PairId, g: &DiskGeometry, item: &ChunkItem) -> Result<(), IngestError> {
    let ChunkBody::ZeroRun { count } = item.body else { return Ok(()) };
    let end = item.index.checked_add(count);
    if count == 0 || end.is_none_or(|end| end > g.chunk_count()) {
        return Err(IngestError::Invalid(format!(
            "pair '{pair}' disk {} chunk {}: a run of {count} zero chunks does not fit the disk ({} chunks)",
            item.disk,
            item.index,
            g.chunk_count()
        )));
    }
    Ok(())
}

/// Refuses a frame in which a run overlaps another item (a run or a single chunk), naming the
/// first chunk named twice. Items already checked against the disks. A frame without runs
/// passes untouched (the session refuses a chunk sent twice in an epoch).
pub(super) fn check_overlaps(pair: &PairId, items: &[ChunkItem]) -> Result<(), IngestError> {
    if !items.iter().any(|i| matches!(i.body, ChunkBody::ZeroRun { .. })) {
        return Ok(());
    }
    let mut spans: Vec<(u32, u64, u64)> = items
        .iter()
        .map(|i| {
            let (first, count) = span(i);
            (i.disk, first, first + count)
        })
        .collect();
    spans.sort_unstable();
    for w in spans.windows(2) {
        let ((da, _, ea), (db, fb, _)) = (w[0], w[1]);
        if da == db && fb < ea {
            return Err(IngestError::Invalid(format!(
                "pair '{pair}' disk {db} chunk {fb}: named by two items of one frame (a run of zero chunks overlaps another item)"
            )));
        }
    }
    Ok(())
}

/// The frame's items without its runs, and the runs.
pub(super) fn split(items: Vec<ChunkItem>) -> (Vec<ChunkItem>, Vec<Run>) {
    let mut runs = Vec::new();
    let items = items
        .into_iter()
        .filter(|i| match i.body {
            ChunkBody::ZeroRun { count } => {
                runs.push((i.disk, i.index, count));
                false
            }
            _ => true,
        })
        .collect();
    (items, runs)
}

/// Records the runs (checked by the caller) in the open epoch, adding them to `out`.
pub(super) fn record(
    store: &Store,
    pair: &PairId,
    pair_no: u32,
    disks: &[DiskGeometry],
    epoch: Epoch,
    runs: &[Run],
    out: &mut Ingested,
) -> Result<(), IngestError> {
    for &(disk, first, count) in runs {
        let g = &disks[disk as usize];
        let explicit = store.write_zero_run(pair_no, epoch, disk, first, count).map_err(|e| {
            IngestError::Store(format!("pair '{pair}' disk {disk} chunks {first}..{}: {e}", first + count))
        })?;
        tracing::debug!(pair = %pair, disk, epoch, first, count, explicit, "run of zero chunks recorded");
        out.chunks += count;
        out.zero += count;
        // The run's bytes: every chunk full but a short last chunk of the disk.
        let last = first + count - 1;
        out.raw_bytes += (count - 1) * g.chunk_size.bytes() as u64 + u64::from(g.chunk_len(last));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::ingest;
    use drpair_store::{ChunkVersion, Store};
    use drpair_types::{ChunkSize, DiskGeometry, PairId};
    use drpair_wire::{ChunkBody, ChunkItem};

    fn run(disk: u32, index: u64, count: u64) -> ChunkItem {
        ChunkItem { disk, index, body: ChunkBody::ZeroRun { count } }
    }

    fn raw(disk: u32, index: u64, byte: u8) -> ChunkItem {
        let payload = vec![byte; 4096];
        let hash = *blake3::hash(&payload).as_bytes();
        ChunkItem { disk, index, body: ChunkBody::Data { hash, raw_len: 4096, compressed: false, payload } }
    }

    fn fixture() -> (tempfile::TempDir, Store, PairId, Vec<DiskGeometry>) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = DiskGeometry::new(100 * 4096, ChunkSize::new(4096).unwrap()).unwrap();
        (dir, store, PairId::new("web-01").unwrap(), vec![g, g])
    }

    #[test]
    fn runs_are_recorded_with_the_frame() {
        let (_dir, s, pair, disks) = fixture();
        let items = vec![run(0, 0, 10), raw(0, 10, 7), run(0, 11, 89), run(1, 0, 100)];
        let out = ingest(&s, &pair, 1, &disks, 1, items, false).unwrap();
        assert_eq!((out.chunks, out.zero), (200, 199));
        assert_eq!(out.raw_bytes, 200 * 4096);
        let v = s.versions_at(1, 0, 1, 0, 100).unwrap();
        assert!(v.iter().enumerate().all(|(c, v)| (c == 10) != (*v == Some(ChunkVersion::Zero))), "{v:?}");
        assert!(s.versions_at(1, 1, 1, 0, 100).unwrap().iter().all(|v| *v == Some(ChunkVersion::Zero)));
    }

    #[test]
    fn bad_runs_are_refused_and_record_nothing() {
        let (_dir, s, pair, disks) = fixture();
        let bad: [(Vec<ChunkItem>, &str); 5] = [
            (vec![raw(0, 3, 1), run(0, 90, 11)], "does not fit the disk (100 chunks)"),
            (vec![raw(0, 3, 1), run(0, 5, 0)], "a run of 0 zero chunks"),
            (vec![raw(0, 3, 1), run(0, 1, u64::MAX)], "does not fit"),
            (vec![run(0, 0, 10), raw(0, 9, 1)], "disk 0 chunk 9: named by two items of one frame"),
            (vec![run(1, 20, 10), run(0, 0, 50), run(1, 29, 2)], "disk 1 chunk 29: named by two items"),
        ];
        for (items, want) in bad {
            let e = ingest(&s, &pair, 1, &disks, 1, items, false).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains("pair 'web-01'"), "{e}");
            for d in 0..2 {
                assert!(s.versions_at(1, d, 1, 0, 100).unwrap().iter().all(Option::is_none), "{want}: recorded");
                assert_eq!(s.zero_from(1, d).unwrap(), None);
            }
        }
        // Adjacent items do not overlap.
        ingest(&s, &pair, 1, &disks, 1, vec![run(0, 0, 10), raw(0, 10, 1), run(0, 11, 2)], false).unwrap();
    }
}
