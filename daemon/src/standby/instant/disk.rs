//! One disk of an instant failover without a guest (mode `nbd`): the recovered disk served
//! writable over NBD while drpair copies the point onto the target underneath.
//!
//! The target is the overlay: a client's write goes straight onto the target, so nothing is
//! merged later. Each chunk is *copied* (the target holds its bytes: the point's, or the
//! point's patched by the client's writes) or not (read from the point). Both the background
//! copier and a client's first write to a chunk take that chunk's lock (striped) and look at
//! its bit under it: the copier writes the point's bytes only onto a chunk still not copied,
//! and a client's partial first write reads the point's chunk, patches it and writes it whole
//! before the bit is set. So a block a client wrote is never overwritten by the point's older
//! bytes, whichever comes first. Reads take no lock: a chunk's bit is set (Release) only after
//! its bytes are on the target, and a chunk not copied reads the same from the point.
//!
//! Which chunks are copied is kept in `disk<N>.copied` ([`map`]) for a resume after a restart:
//! written (the target synced first) every second of copying, at every NBD flush, and at the
//! end. After a crash, a chunk whose bit had not been saved is copied again from the point:
//! a client write to it that was never flushed is lost, as NBD allows; a flushed one is not.

use super::map;
use crate::standby::failover::target::Side;
use drpair_nbd::BlockDev;
use drpair_store::{PointChunk, PointReader};
use drpair_types::DiskGeometry;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Chunk locks (chunk `c` takes lock `c % STRIPES`).
const STRIPES: usize = 1024;

pub struct InstantDisk {
    point: PointReader,
    g: DiskGeometry,
    target: Side,
    bits: Vec<AtomicU64>,
    locks: Vec<Mutex<()>>,
    map_path: PathBuf,
    /// One saver at a time (snapshot, sync, write).
    saving: Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl InstantDisk {
    /// The disk `point` reads, copied onto `target`; the copied chunks as `map_path` says
    /// (none when it does not exist yet).
    pub fn open(point: PointReader, target: Side, map_path: PathBuf) -> io::Result<Self> {
        let g = point.geometry();
        let words = map::load(&map_path, g.chunk_count())?;
        Ok(Self {
            point,
            g,
            target,
            bits: words.into_iter().map(AtomicU64::new).collect(),
            locks: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            map_path,
            saving: Mutex::new(()),
        })
    }

    pub fn geometry(&self) -> DiskGeometry {
        self.g
    }

    pub fn target_path(&self) -> &std::path::Path {
        &self.target.path
    }

    fn cs(&self) -> u64 {
        u64::from(self.g.chunk_size.bytes())
    }

    pub fn is_copied(&self, c: u64) -> bool {
        self.bits[(c / 64) as usize].load(Ordering::Acquire) & (1 << (c % 64)) != 0
    }

    fn mark(&self, c: u64) {
        self.bits[(c / 64) as usize].fetch_or(1 << (c % 64), Ordering::Release);
    }

    fn chunk_lock(&self, c: u64) -> MutexGuard<'_, ()> {
        lock(&self.locks[(c % STRIPES as u64) as usize])
    }

    /// Bytes of the chunks the target holds.
    pub fn copied_bytes(&self) -> u64 {
        (0..self.g.chunk_count()).filter(|&c| self.is_copied(c)).map(|c| u64::from(self.g.chunk_len(c))).sum()
    }

    /// The first chunk at or after `from` not copied yet.
    pub fn next_missing(&self, from: u64) -> Option<u64> {
        (from..self.g.chunk_count()).find(|&c| !self.is_copied(c))
    }

    /// Copies the point's chunks `first..first + count` that are not copied yet (read once,
    /// then each written under its lock if still not copied). Returns the bytes they cover.
    pub fn copy_run(&self, first: u64, count: u64) -> io::Result<u64> {
        let chunks = self.point.chunks(first, count).map_err(io::Error::other)?;
        let cs = self.cs();
        let mut done = 0;
        for (i, chunk) in chunks.into_iter().enumerate() {
            let c = first + i as u64;
            done += chunk.len() as u64;
            if self.is_copied(c) {
                continue;
            }
            let _held = self.chunk_lock(c);
            if self.is_copied(c) {
                // A client wrote it meanwhile: its bytes stay.
                continue;
            }
            match chunk {
                // A fresh sparse file reads zero there already.
                PointChunk::Zero(_) if self.target.sparse => {}
                other => self.target.file.write_all_at(&other.into_bytes(), c * cs)?,
            }
            self.mark(c);
        }
        Ok(done)
    }

    /// Makes the target's bytes durable, then saves which chunks it holds.
    pub fn save(&self) -> io::Result<()> {
        let _one = lock(&self.saving);
        let snapshot: Vec<u64> = self.bits.iter().map(|w| w.load(Ordering::Acquire)).collect();
        self.target.file.sync_data()?;
        map::save(&self.map_path, self.g.chunk_count(), &snapshot)
    }

    /// Calls `f(chunk, offset in chunk, range in the request)` for each chunk of the request.
    fn spans(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, u64, std::ops::Range<usize>) -> io::Result<()>,
    ) -> io::Result<()> {
        let cs = self.cs();
        let end = offset
            .checked_add(len)
            .filter(|e| *e <= self.g.size_bytes)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "beyond the end of the disk"))?;
        let mut pos = offset;
        while pos < end {
            let (c, within) = (pos / cs, pos % cs);
            let n = (cs - within).min(end - pos);
            let at = (pos - offset) as usize;
            f(c, within, at..at + n as usize)?;
            pos += n;
        }
        Ok(())
    }
}

impl BlockDev for InstantDisk {
    fn size(&self) -> u64 {
        self.g.size_bytes
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let cs = self.cs();
        self.spans(offset, buf.len() as u64, |c, within, r| {
            if self.is_copied(c) {
                self.target.file.read_exact_at(&mut buf[r], c * cs + within)
            } else {
                self.point.read_at(c * cs + within, &mut buf[r]).map_err(io::Error::other)
            }
        })
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let cs = self.cs();
        self.spans(offset, data.len() as u64, |c, within, r| {
            let _held = self.chunk_lock(c);
            if self.is_copied(c) {
                return self.target.file.write_all_at(&data[r], c * cs + within);
            }
            let whole = r.len() as u64 == u64::from(self.g.chunk_len(c));
            let bytes = if whole {
                data[r].to_vec()
            } else {
                let mut base = self.point.chunk(c).map_err(io::Error::other)?.into_bytes();
                base[within as usize..within as usize + r.len()].copy_from_slice(&data[r]);
                base
            };
            self.target.file.write_all_at(&bytes, c * cs)?;
            self.mark(c);
            Ok(())
        })
    }

    fn flush(&self) -> io::Result<()> {
        self.save()
    }
}
