//! Runs of zero chunks in a frame (`ChunkBody::ZeroRun`: the holes of a sparse disk): checked
//! like any item, taken out of the frame, and recorded once the frame's other items are
//! stored, with one store call per run (`Store::write_zero_run`: no entry per chunk of a hole
//! that never held data).

use super::{IngestError, Ingested};
use drpair_store::Store;
use drpair_types::{DiskGeometry, Epoch, PairId};
use drpair_wire::{ChunkBody, ChunkItem};

/// A run: (disk, first chunk, count).
pub(super) type Run = (u32, u64, u64);

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

/// Records the runs (after checking them) in the open epoch, adding them to `out`.
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
        let item = ChunkItem { disk, index: first, body: ChunkBody::ZeroRun { count } };
        super::check_item(pair, disks, &item)?;
        let g = &disks[disk as usize];
        store.write_zero_run(pair_no, epoch, disk, first, count).map_err(|e| {
            IngestError::Store(format!("pair '{pair}' disk {disk} chunks {first}..{}: {e}", first + count))
        })?;
        out.chunks += count;
        out.zero += count;
        // The run's bytes: every chunk full but a short last chunk of the disk.
        let last = first + count - 1;
        out.raw_bytes += (count - 1) * g.chunk_size.bytes() as u64 + u64::from(g.chunk_len(last));
    }
    Ok(())
}
