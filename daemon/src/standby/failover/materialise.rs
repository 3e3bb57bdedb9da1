//! Writing a recovery point's disk onto a failover target: one thread reads the point in
//! order through the store's [`PointReader`] (each chunk decompressed and blake3-verified),
//! the calling thread writes large aligned runs with O_DIRECT. Zero chunks are skipped on a
//! fresh sparse file and written on a device (its old contents must go).

use super::target::{DirectWriteBuf, Side};
use crate::standby::export::{ReadError, SPAN};
use drpair_store::{PointChunk, PointReader, Store};
use drpair_types::{DiskGeometry, Epoch, ErrorClass, PairId};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

/// Runs of the image in flight between the reader and the writer.
const QUEUE: usize = 4;

/// Why a disk of the point could not be written onto its target. Each message names the disk
/// (and the target's path and byte, or the chunk); the failover's status shows it.
#[derive(Debug, thiserror::Error)]
pub enum MaterialiseError {
    /// A chunk of the point could not be read back.
    #[error("disk {disk}: {source}")]
    Read { disk: u32, source: ReadError },
    /// Writing onto the target failed.
    #[error("disk {disk}: {}: write at byte {at} failed: {source}", .path.display())]
    Write { disk: u32, path: PathBuf, at: u64, source: io::Error },
    /// Syncing the target failed.
    #[error("disk {disk}: {}: sync failed: {source}", .path.display())]
    Sync { disk: u32, path: PathBuf, source: io::Error },
    /// The reading thread panicked.
    #[error("disk {disk}: the reader thread panicked")]
    ReaderPanicked { disk: u32 },
    /// The point gave fewer bytes than the disk has.
    #[error("disk {disk}: wrote {written} of {size} bytes")]
    Short { disk: u32, written: u64, size: u64 },
}

impl MaterialiseError {
    /// The store's own failures and a failed thread may pass on another try; a damaged
    /// point or a failing target need someone to look first.
    pub fn class(&self) -> ErrorClass {
        match self {
            MaterialiseError::Read { source, .. } => source.class(),
            MaterialiseError::ReaderPanicked { .. } => ErrorClass::Transient,
            MaterialiseError::Write { .. } | MaterialiseError::Sync { .. } | MaterialiseError::Short { .. } => {
                ErrorClass::Permanent
            }
        }
    }
}

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
) -> Result<(), MaterialiseError> {
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<PointChunk>>(QUEUE);
    let point = PointReader::new(store, pair_no, disk, g, epoch);
    std::thread::scope(|s| {
        let reader = s.spawn(move || -> Result<(), MaterialiseError> {
            for span in point.spans(SPAN) {
                let (_, chunks) = span.map_err(|source| MaterialiseError::Read {
                    disk,
                    source: ReadError { pair: pair.clone(), source },
                })?;
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
            if let Err(source) = write_run(side, &chunks, at, &mut run, &mut buf) {
                failed = Some(MaterialiseError::Write { disk, path: side.path.clone(), at, source });
                break;
            }
            at += len;
            done.fetch_add(len, Ordering::Relaxed);
        }
        drop(rx);
        let read = reader.join().map_err(|_| MaterialiseError::ReaderPanicked { disk })?;
        if let Some(e) = failed {
            return Err(e);
        }
        read?;
        if at != g.size_bytes {
            return Err(MaterialiseError::Short { disk, written: at, size: g.size_bytes });
        }
        side.sync().map_err(|source| MaterialiseError::Sync { disk, path: side.path.clone(), source })
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The failover's status names the disk, then the target and byte, as it always did.
    #[test]
    fn failures_name_the_disk_and_the_target() {
        let path = PathBuf::from("/dev/sdx");
        let write = MaterialiseError::Write { disk: 1, path: path.clone(), at: 4096, source: io::Error::other("EIO") };
        assert_eq!(write.to_string(), "disk 1: /dev/sdx: write at byte 4096 failed: EIO");
        assert_eq!(write.class(), ErrorClass::Permanent);
        let sync = MaterialiseError::Sync { disk: 0, path, source: io::Error::other("EIO") };
        assert_eq!(sync.to_string(), "disk 0: /dev/sdx: sync failed: EIO");
        assert_eq!(MaterialiseError::Short { disk: 0, written: 5, size: 9 }.to_string(), "disk 0: wrote 5 of 9 bytes");
        let panicked = MaterialiseError::ReaderPanicked { disk: 2 };
        assert_eq!(
            (panicked.to_string().as_str(), panicked.class()),
            ("disk 2: the reader thread panicked", ErrorClass::Transient)
        );
    }
}
