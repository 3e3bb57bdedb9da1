//! Writing a recovery point's disk onto a failover target: one thread reads the point in
//! order from the version index (each chunk decompressed and blake3-verified), the calling
//! thread writes large aligned runs with O_DIRECT. Zero chunks are skipped on a fresh sparse
//! file and written on a device (its old contents must go).

use super::target::{AlignedBuf, Side};
use crate::standby::export::stream_disk;
use drpair_store::Store;
use drpair_types::{DiskGeometry, Epoch, PairId};
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs of the image in flight between the reader and the writer.
const QUEUE: usize = 4;

/// Writes disk `disk` of the point at `epoch` onto `side`; adds the bytes written (or
/// skipped as sparse) to `done` as it goes.
pub fn disk(
    store: &Store,
    pair: &PairId,
    pair_no: u32,
    disk: u32,
    g: DiskGeometry,
    epoch: Epoch,
    side: &Side,
    done: &AtomicU64,
) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(QUEUE);
    let chunk = g.chunk_size.bytes() as usize;
    std::thread::scope(|s| {
        let reader = s.spawn(move || stream_disk(store, pair, pair_no, disk, g, epoch, |run| tx.send(run).is_ok()));
        let mut at = 0u64;
        let mut buf = AlignedBuf::new(0);
        let mut failed = None;
        for run in rx.iter() {
            if let Err(e) = write_run(side, &run, at, chunk, &mut buf) {
                failed = Some(format!("{}: write at byte {at} failed: {e}", side.path.display()));
                break;
            }
            at += run.len() as u64;
            done.fetch_add(run.len() as u64, Ordering::Relaxed);
        }
        drop(rx);
        let read = reader.join().map_err(|_| "the reader thread panicked".to_string())?;
        if let Some(e) = failed {
            return Err(e);
        }
        read?;
        if at != g.size_bytes {
            return Err(format!("wrote {at} of {} bytes", g.size_bytes));
        }
        side.sync().map_err(|e| format!("{}: sync failed: {e}", side.path.display()))
    })
}

/// Writes one run; on a sparse file, stretches of all-zero chunks are left as holes.
fn write_run(side: &Side, run: &[u8], at: u64, chunk: usize, buf: &mut AlignedBuf) -> std::io::Result<()> {
    if buf.capacity() < run.len() {
        *buf = AlignedBuf::new(run.len());
    }
    if !side.sparse {
        return side.write_at(run, at, buf);
    }
    let mut start = None;
    let mut pos = 0;
    while pos < run.len() {
        let end = (pos + chunk).min(run.len());
        let zero = run[pos..end].iter().all(|&b| b == 0);
        match (zero, start) {
            (false, None) => start = Some(pos),
            (true, Some(s)) => {
                side.write_at(&run[s..pos], at + s as u64, buf)?;
                start = None;
            }
            _ => {}
        }
        pos = end;
    }
    if let Some(s) = start {
        side.write_at(&run[s..], at + s as u64, buf)?;
    }
    Ok(())
}
