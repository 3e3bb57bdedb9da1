//! Writing a recovery point's disk onto a failover target: one thread reads the point in
//! order through the store's [`PointReader`] (each chunk decompressed and blake3-verified),
//! the calling thread writes large aligned runs with O_DIRECT. Zero chunks are skipped on a
//! fresh sparse file and written on a device (its old contents must go).

use super::target::{DirectWriteBuf, Side};
use crate::standby::export::SPAN;
use drpair_store::{PointChunk, PointReader, Store};
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
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<PointChunk>>(QUEUE);
    let point = PointReader::new(store, pair_no, disk, g, epoch);
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<(), String> {
            for span in point.spans(SPAN) {
                let (_, chunks) = span.map_err(|e| format!("pair '{pair}' {e}"))?;
                if tx.send(chunks).is_err() {
                    break;
                }
            }
            Ok(())
        });
        let mut at = 0u64;
        let (mut run, mut buf) = (Vec::new(), DirectWriteBuf::new(0));
        let mut failed = None;
        for chunks in rx.iter() {
            let len: u64 = chunks.iter().map(|c| c.len() as u64).sum();
            if let Err(e) = write_run(side, &chunks, at, &mut run, &mut buf) {
                failed = Some(format!("{}: write at byte {at} failed: {e}", side.path.display()));
                break;
            }
            at += len;
            done.fetch_add(len, Ordering::Relaxed);
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

/// Writes one run of chunks starting at byte `at`, gathered in `run`; on a sparse file,
/// stretches of all-zero chunks are left as holes.
fn write_run(
    side: &Side,
    chunks: &[PointChunk],
    at: u64,
    run: &mut Vec<u8>,
    buf: &mut DirectWriteBuf,
) -> std::io::Result<()> {
    let total: usize = chunks.iter().map(PointChunk::len).sum();
    if buf.capacity() < total {
        *buf = DirectWriteBuf::new(total);
    }
    run.clear();
    if !side.sparse {
        chunks.iter().for_each(|c| c.append_to(run));
        return side.write_at(run, at, buf);
    }
    // Image offset of `run[0]`, while a stretch of non-zero chunks is gathered.
    let mut start: Option<u64> = None;
    let mut pos = at;
    for c in chunks {
        let zero = match c {
            PointChunk::Zero(_) => true,
            PointChunk::Data(d) => d.iter().all(|&b| b == 0),
        };
        match (zero, start) {
            (false, None) => {
                start = Some(pos);
                c.append_to(run);
            }
            (false, Some(_)) => c.append_to(run),
            (true, Some(s)) => {
                side.write_at(run, s, buf)?;
                run.clear();
                start = None;
            }
            (true, None) => {}
        }
        pos += c.len() as u64;
    }
    if let Some(s) = start {
        side.write_at(run, s, buf)?;
    }
    Ok(())
}
