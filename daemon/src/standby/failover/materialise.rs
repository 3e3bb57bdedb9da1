//! Writing a recovery point's disk onto a failover target. The image is cut into runs of
//! [`SPAN`] chunks; [`READERS`] threads read them through the store's [`PointReader`] (each
//! chunk decompressed and blake3-verified), reader *k* taking runs *k*, *k* + `READERS`, …, and
//! lay each run out in an aligned buffer; the calling thread takes the runs back in order
//! (run *i* from reader *i* mod `READERS`: the readers' queues are the reorder buffer) and
//! writes each with O_DIRECT straight from its buffer. Zero chunks are skipped on a fresh
//! sparse file and written on a device (its old contents must go).
//!
//! The target is written in order, and the first failure stops everything: a read error
//! naming the disk and chunk, or a write error naming the target and byte. Memory is bounded:
//! each reader runs at most [`AHEAD`] runs ahead of the writer, so at most
//! `READERS × (AHEAD + 1) + 1` run buffers exist (112 MiB of 16 MiB runs), recycled.

use super::target::{DirectWriteBuf, Side};
use crate::standby::export::{ReadError, SPAN};
use drpair_store::{PointChunk, PointReadError, PointReader, Store};
use drpair_types::{DiskGeometry, Epoch, ErrorClass, PairId};
use std::io;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};

/// Threads reading and verifying runs at once (decompression and blake3 are the CPU cost;
/// with 2 of them the writer, not the reading, bounds a failover on 2 cores).
const READERS: usize = 2;
/// Runs each reader may have ready ahead of the writer.
const AHEAD: usize = 2;

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

/// One run of the image, laid out for writing.
struct Run {
    /// Image offset of the run's first byte.
    at: u64,
    /// The run's length in bytes.
    len: u64,
    buf: DirectWriteBuf,
    /// Byte ranges of `buf` to write (all of it, or the stretches between zero chunks).
    writes: Vec<Range<usize>>,
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
    let point = PointReader::new(store, pair_no, disk, g, epoch);
    let runs = g.chunk_count().div_ceil(SPAN);
    let free = Mutex::new(Vec::new());
    let read_err = |source| MaterialiseError::Read { disk, source: ReadError { pair: pair.clone(), source } };
    std::thread::scope(|s| {
        let mut queues: Vec<Receiver<Result<Run, MaterialiseError>>> = Vec::new();
        let mut readers = Vec::new();
        for k in 0..READERS {
            let (tx, rx) = sync_channel(AHEAD);
            queues.push(rx);
            let (point, free, sparse) = (&point, &free, side.sparse);
            readers.push(s.spawn(move || {
                for run in (k as u64..runs).step_by(READERS) {
                    let r = read_run(point, run * SPAN, sparse, free).map_err(read_err);
                    let failed = r.is_err();
                    if tx.send(r).is_err() || failed {
                        break;
                    }
                }
            }));
        }
        let mut at = 0u64;
        let mut failed = None;
        for i in 0..runs {
            let run = match queues[(i % READERS as u64) as usize].recv() {
                Ok(Ok(run)) => run,
                Ok(Err(e)) => {
                    failed = Some(e);
                    break;
                }
                // The reader ended without its run: it panicked (reported below).
                Err(_) => break,
            };
            if let Err((off, source)) = write_run(side, &run) {
                failed = Some(MaterialiseError::Write { disk, path: side.path.clone(), at: off, source });
                break;
            }
            at += run.len;
            done.fetch_add(run.len, Ordering::Relaxed);
            free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(run.buf);
        }
        drop(queues);
        let panicked = readers.into_iter().map(|r| r.join().is_err()).fold(false, |a, b| a | b);
        if panicked {
            return Err(MaterialiseError::ReaderPanicked { disk });
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if at != g.size_bytes {
            return Err(MaterialiseError::Short { disk, written: at, size: g.size_bytes });
        }
        side.sync().map_err(|source| MaterialiseError::Sync { disk, path: side.path.clone(), source })
    })
}

/// Reads the run of chunks from `first` and lays it out in a buffer (one from `free`, or a
/// new one); on a sparse target, all-zero chunks are left out of the writes.
fn read_run(
    point: &PointReader,
    first: u64,
    sparse: bool,
    free: &Mutex<Vec<DirectWriteBuf>>,
) -> Result<Run, PointReadError> {
    let g = point.geometry();
    let chunks = point.chunks(first, SPAN.min(g.chunk_count() - first))?;
    let len: usize = chunks.iter().map(PointChunk::len).sum();
    let reused = free.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
    let mut buf = reused.filter(|b| b.capacity() >= len).unwrap_or_else(|| DirectWriteBuf::new(len));
    let out = buf.slice_mut(len);
    let mut writes: Vec<Range<usize>> = Vec::new();
    let mut pos = 0;
    for c in &chunks {
        let n = c.len();
        let zero = sparse
            && match c {
                PointChunk::Zero(_) => true,
                PointChunk::Data(d) => d.iter().all(|&b| b == 0),
            };
        if !zero {
            match c {
                PointChunk::Zero(_) => out[pos..pos + n].fill(0),
                PointChunk::Data(d) => out[pos..pos + n].copy_from_slice(d),
            }
            match writes.last_mut() {
                Some(w) if w.end == pos => w.end = pos + n,
                _ => writes.push(pos..pos + n),
            }
        }
        pos += n;
    }
    Ok(Run { at: first * u64::from(g.chunk_size.bytes()), len: len as u64, buf, writes })
}

/// Writes a run's stretches; a failure gives the image offset it was written at.
fn write_run(side: &Side, run: &Run) -> Result<(), (u64, io::Error)> {
    for w in &run.writes {
        let at = run.at + w.start as u64;
        side.write_from(&run.buf, w.clone(), at).map_err(|e| (at, e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::failover::target::open_target;
    use drpair_store::{ChunkVersion, StoredChunk};
    use drpair_types::ChunkSize;

    const CS: u64 = 4096;
    /// Several runs of `SPAN` chunks, the last chunk short.
    const SIZE: u64 = (3 * SPAN + 17) * CS + 1000;

    /// A store holding disk 0 at epoch 1: data, zero flags and stored all-zero chunks mixed;
    /// `hole` (if any) has no version. Returns the store and the image it must give.
    fn fixture(dir: &std::path::Path, hole: Option<u64>) -> (Store, DiskGeometry, Vec<u8>) {
        let store = Store::open(&dir.join("store")).unwrap();
        let g = DiskGeometry::new(SIZE, ChunkSize::new(CS).unwrap()).unwrap();
        let (mut image, mut items) = (Vec::new(), Vec::new());
        for c in 0..g.chunk_count() {
            let len = g.chunk_len(c) as usize;
            let bytes: Vec<u8> = match c % 7 {
                0 | 3 => vec![0; len],
                _ => (0..len as u64).map(|i| ((i + c * 31) % 251 + 1) as u8).collect(),
            };
            let v = if c % 7 == 0 {
                ChunkVersion::Zero
            } else {
                let hash = *blake3::hash(&bytes).as_bytes();
                let chunk = StoredChunk { compressed: false, raw_len: len as u32, payload: &bytes };
                store.put_chunk(&hash, chunk).unwrap();
                ChunkVersion::Data(hash)
            };
            image.extend_from_slice(&bytes);
            if Some(c) != hole {
                items.push((0, c, v));
            }
        }
        store.write_versions(1, 1, &items).unwrap();
        (store, g, image)
    }

    /// Several readers, in order: the target is the point's image, on a sparse file and on
    /// a side written in full, and `done` counts every byte.
    #[test]
    fn the_target_receives_the_image_in_full() {
        for sparse in [true, false] {
            let dir = tempfile::tempdir().unwrap();
            let (store, g, image) = fixture(dir.path(), None);
            let path = dir.path().join("target.img");
            let mut side = open_target(path.to_str().unwrap(), SIZE, false).unwrap();
            side.sparse = sparse;
            let done = AtomicU64::new(0);
            disk(&store, &PairId::new("web-01").unwrap(), 1, 0, g, 1, &side, &done).unwrap();
            assert_eq!(done.load(Ordering::Relaxed), SIZE);
            assert!(std::fs::read(&path).unwrap() == image, "sparse: {sparse}");
        }
    }

    /// A chunk the point lacks stops the failover with an error naming it; nothing past the
    /// run before it is written.
    #[test]
    fn a_missing_chunk_stops_the_writes_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let hole = 2 * SPAN + 5;
        let (store, g, image) = fixture(dir.path(), Some(hole));
        let path = dir.path().join("target.img");
        let side = open_target(path.to_str().unwrap(), SIZE, false).unwrap();
        let done = AtomicU64::new(0);
        let e = disk(&store, &PairId::new("web-01").unwrap(), 1, 0, g, 1, &side, &done).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("disk 0: pair 'web-01' disk 0 chunk {hole}: no version at or before epoch 1")
        );
        let written = (2 * SPAN * CS) as usize;
        assert_eq!(done.load(Ordering::Relaxed), written as u64);
        let back = std::fs::read(&path).unwrap();
        assert!(back[..written] == image[..written]);
        assert!(back[written..].iter().all(|&b| b == 0));
    }

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
