//! The chunk reader: runs of contiguous chunks in, aligned buffers out.
//!
//! One dedicated thread owns the I/O engine (an io_uring ring, or plain `pread` when io_uring
//! is unavailable or not wanted) and the open disks. Callers [`submit`](Reader::submit)
//! requests from any thread and take finished blocks from
//! [`completions`](Reader::completions), in completion order.
//!
//! Memory is bounded by the buffer pool: `buffers` buffers of `max(max_read_bytes, largest
//! chunk size)` bytes (rounded up to 4096). `submit` takes a buffer per block before queueing
//! it and blocks while none is free; a buffer comes back when its [`ReadBlock`] is dropped.
//! So the request queue, the ring and the completion channel together never hold more than
//! `buffers` blocks of data.
//!
//! Requests larger than one buffer are split **inside** `submit`: a run of N chunks becomes
//! several blocks of at most [`Reader::chunks_per_block`] chunks, each carrying the request's
//! tag and its own `first_chunk`/`chunk_count`; together they cover the run exactly once.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use drpair_types::{ChunkSize, DiskGeometry};

use crate::buf::{AlignedBuf, BufPool, align_up};
use crate::disk::{open_buffered, open_disk};
use crate::error::ReadError;
use crate::op::ReadOp;
use crate::{pread, uring};

/// The I/O engine of a reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Batched asynchronous reads through one io_uring ring (`queue_depth` in flight).
    IoUring,
    /// One synchronous `pread` at a time: the portable fallback.
    Pread,
}

/// A run of contiguous chunks of one disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRequest {
    /// Index of the disk in the list given to [`Reader::spawn`].
    pub disk: u32,
    pub first_chunk: u64,
    pub chunk_count: u32,
    /// Caller's value, returned with every block (and error) of this request.
    pub tag: u64,
}

/// Chunks read from a disk: exactly the bytes of chunks `first_chunk .. first_chunk +
/// chunk_count` (the disk's last chunk may be short). Drop it to return its buffer.
#[derive(Debug)]
pub struct ReadBlock {
    pub disk: u32,
    pub first_chunk: u64,
    pub chunk_count: u32,
    pub tag: u64,
    /// Chunk size of the disk, so the block can be cut into chunks.
    pub chunk_size: ChunkSize,
    /// `buf.len()` is the exact byte count of the chunks.
    pub buf: AlignedBuf,
}

impl ReadBlock {
    /// Chunk `i` of this block (0-based within the block); empty when past the end.
    pub fn chunk(&self, i: u32) -> &[u8] {
        let cs = self.chunk_size.bytes() as usize;
        let start = (i as usize).saturating_mul(cs).min(self.buf.len());
        let end = start.saturating_add(cs).min(self.buf.len());
        &self.buf[start..end]
    }

    /// `(absolute chunk index, bytes)` for every chunk of the block.
    pub fn chunks(&self) -> impl Iterator<Item = (u64, &[u8])> {
        let first = self.first_chunk;
        self.buf.chunks(self.chunk_size.bytes() as usize).enumerate().map(move |(i, c)| (first + i as u64, c))
    }
}

/// How a reader is set up. Memory bound: `buffers × max(max_read_bytes, chunk size)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReaderConfig {
    /// Preferred engine; io_uring falls back to pread when it cannot be set up. Default io_uring.
    pub engine: Engine,
    /// Reads in flight at once (io_uring). Default 16; 1..=4096.
    pub queue_depth: u32,
    /// Largest single read (and buffer size) in bytes. Default 1 MiB; 4 KiB..=256 MiB.
    pub max_read_bytes: usize,
    /// Number of buffers: bounds memory and blocks `submit` when all are in use. Default 32.
    pub buffers: usize,
}

impl Default for ReaderConfig {
    fn default() -> Self {
        ReaderConfig { engine: Engine::IoUring, queue_depth: 16, max_read_bytes: 1 << 20, buffers: 32 }
    }
}

impl ReaderConfig {
    pub fn validate(&self) -> Result<(), ReadError> {
        if !(1..=4096).contains(&self.queue_depth) {
            return Err(ReadError::Config(format!("queue_depth {} must be between 1 and 4096", self.queue_depth)));
        }
        if !(4096..=256 << 20).contains(&self.max_read_bytes) {
            return Err(ReadError::Config(format!(
                "max_read_bytes {} must be between 4096 and {}",
                self.max_read_bytes,
                256 << 20
            )));
        }
        if !(1..=65536).contains(&self.buffers) {
            return Err(ReadError::Config(format!("buffers {} must be between 1 and 65536", self.buffers)));
        }
        Ok(())
    }
}

/// What a reader did, returned by [`Reader::finish`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Blocks delivered.
    pub blocks: u64,
    /// Bytes delivered.
    pub bytes: u64,
    /// Reads issued to the kernel (SQEs or pread calls).
    pub reads: u64,
    /// Reads issued again (partial read, EINTR/EAGAIN, O_DIRECT refused).
    pub retries: u64,
    /// Blocks that ended in an error.
    pub errors: u64,
}

/// One open disk, shared by submitters (validation) and the engine thread (reads).
pub(crate) struct DiskSlot {
    pub path: Arc<Path>,
    pub geometry: DiskGeometry,
    /// O_DIRECT descriptor, when the filesystem allows it.
    pub direct: Option<File>,
    /// Buffered descriptor (fallback for reads O_DIRECT cannot do).
    pub buffered: File,
}

impl DiskSlot {
    pub(crate) fn file(&self, direct: bool) -> &File {
        match (&self.direct, direct) {
            (Some(f), true) => f,
            _ => &self.buffered,
        }
    }
}

/// The type of the completion channel.
pub type Completion = Result<ReadBlock, ReadError>;

/// The chunk reader. See the module documentation.
pub struct Reader {
    engine: Engine,
    disks: Arc<[DiskSlot]>,
    pool: BufPool,
    requests: Option<Sender<ReadOp>>,
    completions: Receiver<Completion>,
    /// Becomes ready (disconnected) when the engine thread ends, for any reason.
    stop: Receiver<()>,
    thread: Option<JoinHandle<ReaderStats>>,
}

impl Reader {
    /// Opens the disks (index = position in `disks`; O_DIRECT where possible) and spawns the
    /// engine thread. Falls back to pread, with a warning, when io_uring cannot be set up.
    /// Refuses a geometry larger than its disk.
    pub fn spawn(disks: Vec<(PathBuf, DiskGeometry)>, cfg: ReaderConfig) -> Result<Reader, ReadError> {
        Self::spawn_with(disks, cfg, uring::setup)
    }

    pub(crate) fn spawn_with(
        disks: Vec<(PathBuf, DiskGeometry)>,
        cfg: ReaderConfig,
        setup: fn(u32) -> io::Result<io_uring::IoUring>,
    ) -> Result<Reader, ReadError> {
        cfg.validate()?;
        if disks.is_empty() {
            return Err(ReadError::Config("no disks to read".into()));
        }
        let mut slots = Vec::with_capacity(disks.len());
        for (index, (path, geometry)) in disks.into_iter().enumerate() {
            let index = u32::try_from(index).map_err(|_| ReadError::Config("too many disks".into()))?;
            let disk = open_disk(&path)?;
            if geometry.size_bytes > disk.size {
                return Err(ReadError::GeometryMismatch {
                    disk: index,
                    path,
                    geometry_bytes: geometry.size_bytes,
                    disk_bytes: disk.size,
                });
            }
            if geometry.size_bytes < disk.size {
                tracing::warn!(disk = index, path = %path.display(), geometry = geometry.size_bytes, size = disk.size,
                    "disk is larger than its geometry; reading only the geometry");
            }
            let (direct, buffered) =
                if disk.direct { (Some(disk.file), open_buffered(&path)?) } else { (None, disk.file) };
            slots.push(DiskSlot { path: path.into(), geometry, direct, buffered });
        }
        let disks: Arc<[DiskSlot]> = slots.into();

        let largest_chunk = disks.iter().map(|d| d.geometry.chunk_size.bytes() as usize).max().unwrap_or(0);
        let pool = BufPool::new(cfg.buffers, align_up(cfg.max_read_bytes.max(largest_chunk)));
        // Each queued request holds a pool buffer, so this channel never fills up.
        let (req_tx, req_rx) = crossbeam_channel::bounded::<ReadOp>(cfg.buffers);
        // Unbounded, so the engine never blocks on a slow consumer; bounded in practice by the
        // pool (every Ok holds a buffer).
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Completion>();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let (ready_tx, ready_rx) = crossbeam_channel::bounded::<Engine>(1);

        let thread_disks = disks.clone();
        let thread = std::thread::Builder::new()
            .name("drpair-reader".into())
            .spawn(move || {
                // Dropped when this thread ends, even by panic: wakes blocked submitters.
                let _stop = stop_tx;
                let ring = match cfg.engine {
                    Engine::IoUring => match setup(cfg.queue_depth) {
                        Ok(ring) => Some(ring),
                        Err(e) => {
                            tracing::warn!(error = %e, "io_uring unavailable; falling back to pread");
                            None
                        }
                    },
                    Engine::Pread => None,
                };
                let _ = ready_tx.send(if ring.is_some() { Engine::IoUring } else { Engine::Pread });
                let mut stats = ReaderStats::default();
                match ring {
                    Some(ring) => uring::run(ring, &thread_disks, req_rx, done_tx, &mut stats),
                    None => pread::run(&thread_disks, req_rx, done_tx, &mut stats),
                }
                stats
            })
            .map_err(ReadError::Spawn)?;
        let engine = ready_rx.recv().map_err(|_| ReadError::Stopped)?;
        tracing::info!(
            ?engine,
            queue_depth = cfg.queue_depth,
            buffers = cfg.buffers,
            buffer_bytes = pool.buf_size(),
            disks = disks.len(),
            "reader started"
        );
        Ok(Reader {
            engine,
            disks,
            pool,
            requests: Some(req_tx),
            completions: done_rx,
            stop: stop_rx,
            thread: Some(thread),
        })
    }

    /// The engine chosen at spawn (io_uring falls back to pread when it cannot be set up;
    /// should a working ring fail later, the reads in flight fail and the rest continue with
    /// pread, logged as an error).
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Queues a request, splitting it into blocks of at most
    /// [`chunks_per_block`](Self::chunks_per_block) chunks. Blocks while all buffers are in
    /// use (backpressure): someone must be consuming [`completions`](Self::completions).
    /// A request outside the disk is refused here, before anything is queued.
    pub fn submit(&self, req: ReadRequest) -> Result<(), ReadError> {
        let slot = self.slot(req.disk)?;
        if req.chunk_count == 0 {
            return Err(ReadError::EmptyRequest {
                disk: req.disk,
                path: slot.path.to_path_buf(),
                first_chunk: req.first_chunk,
                tag: req.tag,
            });
        }
        let disk_chunks = slot.geometry.chunk_count();
        if req.first_chunk.checked_add(req.chunk_count as u64).is_none_or(|end| end > disk_chunks) {
            return Err(ReadError::OutOfRange {
                disk: req.disk,
                path: slot.path.to_path_buf(),
                first_chunk: req.first_chunk,
                chunk_count: req.chunk_count,
                disk_chunks,
                tag: req.tag,
            });
        }
        let tx = self.requests.as_ref().ok_or(ReadError::Stopped)?;
        let per_block = self.per_block(slot);
        let (mut first, mut left) = (req.first_chunk, req.chunk_count);
        while left > 0 {
            let n = left.min(per_block);
            let buf = self.pool.acquire(&self.stop).ok_or(ReadError::Stopped)?;
            let direct = slot.direct.is_some();
            let op = ReadOp::new(req.disk, first, n, req.tag, &slot.geometry, slot.path.clone(), direct, buf);
            tx.send(op).map_err(|_| ReadError::Stopped)?;
            first += n as u64;
            left -= n;
        }
        Ok(())
    }

    /// Completed blocks (and failed reads), in completion order. Clone the receiver to keep
    /// draining after [`finish`](Self::finish).
    pub fn completions(&self) -> &Receiver<Completion> {
        &self.completions
    }

    /// Largest number of chunks of `disk` delivered in one block.
    pub fn chunks_per_block(&self, disk: u32) -> Option<u32> {
        self.slot(disk).ok().map(|s| self.per_block(s))
    }

    /// Geometry of `disk`.
    pub fn geometry(&self, disk: u32) -> Option<DiskGeometry> {
        self.slot(disk).ok().map(|s| s.geometry)
    }

    /// Whether `disk` is read with O_DIRECT.
    pub fn is_direct(&self, disk: u32) -> Option<bool> {
        self.slot(disk).ok().map(|s| s.direct.is_some())
    }

    /// Size in bytes of each buffer.
    pub fn buffer_bytes(&self) -> usize {
        self.pool.buf_size()
    }

    /// Buffers allocated so far: never more than `ReaderConfig::buffers`.
    pub fn allocated_buffers(&self) -> usize {
        self.pool.allocated()
    }

    /// No more requests: the engine finishes what is queued and in flight (their completions
    /// stay readable through a cloned receiver), then the thread exits.
    pub fn finish(mut self) -> Result<ReaderStats, ReadError> {
        self.shutdown().ok_or(ReadError::Stopped)
    }

    fn shutdown(&mut self) -> Option<ReaderStats> {
        drop(self.requests.take());
        let thread = self.thread.take()?;
        match thread.join() {
            Ok(stats) => Some(stats),
            Err(_) => {
                tracing::error!("reader thread panicked");
                None
            }
        }
    }

    fn slot(&self, disk: u32) -> Result<&DiskSlot, ReadError> {
        self.disks.get(disk as usize).ok_or(ReadError::NoSuchDisk { disk, disks: self.disks.len() })
    }

    fn per_block(&self, slot: &DiskSlot) -> u32 {
        let n = self.pool.buf_size() / slot.geometry.chunk_size.bytes() as usize;
        u32::try_from(n.max(1)).unwrap_or(u32::MAX)
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn no_ring(_: u32) -> io::Result<io_uring::IoUring> {
        Err(io::Error::from_raw_os_error(libc::ENOSYS))
    }

    #[test]
    fn falls_back_to_pread_when_io_uring_fails() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..20_000u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
        f.write_all(&data).unwrap();
        let g = DiskGeometry::new(data.len() as u64, ChunkSize::new(4096).unwrap()).unwrap();
        let r = Reader::spawn_with(vec![(f.path().into(), g)], ReaderConfig::default(), no_ring).unwrap();
        assert_eq!(r.engine(), Engine::Pread);
        r.submit(ReadRequest { disk: 0, first_chunk: 3, chunk_count: 2, tag: 1 }).unwrap();
        let b = r.completions().recv().unwrap().unwrap();
        assert_eq!(&b.buf[..], &data[3 * 4096..]);
        assert_eq!(b.chunk(1).len(), 20_000 - 4 * 4096);
        drop(b);
        let stats = r.finish().unwrap();
        assert_eq!((stats.blocks, stats.bytes, stats.errors), (1, (20_000 - 3 * 4096) as u64, 0));
    }

    #[test]
    fn ring_failure_fails_in_flight_reads_and_continues_with_pread() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let data: Vec<u8> = (0..64 * 4096u32).map(|i| u8::try_from(i % 253).unwrap()).collect();
        f.write_all(&data).unwrap();
        let g = DiskGeometry::new(data.len() as u64, ChunkSize::new(4096).unwrap()).unwrap();
        let cfg = ReaderConfig { buffers: 2, queue_depth: 2, max_read_bytes: 4096, ..Default::default() };
        let r = Reader::spawn(vec![(f.path().into(), g)], cfg).unwrap();
        assert_eq!(r.engine(), Engine::IoUring);
        crate::uring::FAIL_NEXT_WAIT.store(true, std::sync::atomic::Ordering::SeqCst);
        let (mut ok, mut failed) = (0, 0);
        std::thread::scope(|s| {
            let r = &r;
            s.spawn(move || {
                for i in 0..64 {
                    r.submit(ReadRequest { disk: 0, first_chunk: i, chunk_count: 1, tag: i }).unwrap();
                }
            });
            // Every block gets exactly one completion, and abandoned buffers do not starve
            // the pool (2 buffers, 64 blocks).
            for _ in 0..64 {
                match r.completions().recv_timeout(std::time::Duration::from_secs(10)).expect("no deadlock") {
                    Ok(b) => {
                        assert_eq!(&b.buf[..], &data[b.first_chunk as usize * 4096..][..4096]);
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(e.to_string().contains("io_uring failed"), "{e}");
                        failed += 1;
                    }
                }
            }
        });
        assert!(failed >= 1 && failed <= 2, "only reads in flight fail: {failed}");
        assert_eq!(ok + failed, 64);
        assert!(r.completions().is_empty());
        assert!(r.allocated_buffers() <= 2);
        let stats = r.finish().unwrap();
        assert_eq!(stats.errors, failed);
    }

    #[test]
    fn config_is_validated() {
        let bad = [
            ReaderConfig { queue_depth: 0, ..Default::default() },
            ReaderConfig { max_read_bytes: 100, ..Default::default() },
            ReaderConfig { buffers: 0, ..Default::default() },
        ];
        for cfg in bad {
            assert!(matches!(cfg.validate(), Err(ReadError::Config(_))), "{cfg:?}");
        }
        assert!(matches!(Reader::spawn(vec![], ReaderConfig::default()), Err(ReadError::Config(_))));
    }

    #[test]
    fn geometry_larger_than_disk_is_refused() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[0; 8192]).unwrap();
        let g = DiskGeometry::new(8193, ChunkSize::new(4096).unwrap()).unwrap();
        let e = Reader::spawn(vec![(f.path().into(), g)], ReaderConfig::default()).err().unwrap();
        assert!(matches!(e, ReadError::GeometryMismatch { disk_bytes: 8192, .. }), "{e}");
    }
}
