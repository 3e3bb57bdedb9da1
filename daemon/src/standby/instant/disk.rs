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
        lock(&self.locks[usize::try_from(c % STRIPES as u64).expect("a stripe")])
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
            let at = usize::try_from(pos - offset).expect("a request fits in memory");
            f(c, within, at..at + usize::try_from(n).expect("within a chunk"))?;
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
                let from = usize::try_from(within).expect("within a chunk");
                base[from..from + r.len()].copy_from_slice(&data[r]);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::failover::target::{open_target, reopen_target};
    use drpair_store::{ChunkVersion, Store, StoredChunk};
    use drpair_types::ChunkSize;

    const CS: u64 = 4096;
    const CHUNKS: u64 = 10;

    /// A store holding disk 0 at epoch 1 (chunk c filled with c + 1; chunk 3 a zero flag).
    fn fixture(dir: &std::path::Path) -> (Store, DiskGeometry, Vec<u8>) {
        let store = Store::open(&dir.join("store")).unwrap();
        let g = DiskGeometry::new(CHUNKS * CS, ChunkSize::new(CS).unwrap()).unwrap();
        let (mut image, mut items) = (Vec::new(), Vec::new());
        for c in 0..CHUNKS {
            let bytes = vec![if c == 3 { 0 } else { c as u8 + 1 }; CS as usize];
            let v = if c == 3 {
                ChunkVersion::Zero
            } else {
                let hash = *blake3::hash(&bytes).as_bytes();
                store.put_chunk(&hash, StoredChunk { compressed: false, raw_len: CS as u32, payload: &bytes }).unwrap();
                ChunkVersion::Data(hash)
            };
            image.extend_from_slice(&bytes);
            items.push((0, c, v));
        }
        store.write_versions(1, 1, &items).unwrap();
        (store, g, image)
    }

    /// A client's writes (partial first writes, a write across two chunks) are never
    /// overwritten by the copier, whichever comes first; the map survives a reopen.
    #[test]
    fn the_copier_never_overwrites_a_clients_write() {
        let dir = tempfile::tempdir().unwrap();
        let (store, g, mut image) = fixture(dir.path());
        let path = dir.path().join("target.img");
        let side = open_target(path.to_str().unwrap(), g.size_bytes, false).unwrap();
        let map = dir.path().join("disk0.copied");
        let d = InstantDisk::open(PointReader::new(&store, 1, 0, g, 1), side, map.clone()).unwrap();
        // Before the copy: a partial write into chunk 2, one across chunks 5 and 6, chunk 3 (zero) in part.
        for (off, len, pat) in [(2 * CS + 100, 50, 0xa1), (6 * CS - 10, 20, 0xb2), (3 * CS + 7, 1, 0xc3)] {
            d.write_at(off, &vec![pat; len]).unwrap();
            image[off as usize..off as usize + len].fill(pat);
        }
        let mut buf = vec![0; (CHUNKS * CS) as usize];
        d.read_at(0, &mut buf).unwrap();
        assert!(buf == image, "reads merge the point and the client's writes");
        assert_eq!(d.copy_run(0, 4).unwrap(), 4 * CS);
        d.write_at(CS, &[0xd4; 10]).unwrap();
        image[CS as usize..CS as usize + 10].fill(0xd4);
        d.save().unwrap();
        drop(d);
        // Reopened (a restart): the map says which chunks the target holds.
        let side = reopen_target(path.to_str().unwrap(), g.size_bytes).unwrap();
        let d = InstantDisk::open(PointReader::new(&store, 1, 0, g, 1), side, map).unwrap();
        assert_eq!(d.next_missing(0), Some(4));
        assert_eq!(d.copy_run(4, CHUNKS - 4).unwrap(), (CHUNKS - 4) * CS);
        assert_eq!(d.next_missing(0), None);
        assert_eq!(d.copied_bytes(), CHUNKS * CS);
        d.flush().unwrap();
        assert!(std::fs::read(&path).unwrap() == image, "the target is the point with every write");
        d.read_at(0, &mut buf).unwrap();
        assert!(buf == image);
        assert!(d.write_at(CHUNKS * CS - 1, &[1, 2]).is_err(), "beyond the end");
    }
}
