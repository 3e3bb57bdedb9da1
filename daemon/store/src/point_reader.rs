//! Reading one disk of one recovery point: the one reader behind exports, drills, failover,
//! failback and offline recovery.
//!
//! Disk *d* as of point *P* is, chunk by chunk, the newest version entry with epoch ≤ *P*
//! (one seek per chunk, or one forward scan per run of chunks). A zero entry is reported as
//! [`PointChunk::Zero`] without materialising its bytes, so callers can skip or punch it; a
//! data entry is read back from the chunk store, decompressed (bounded by its header) and
//! blake3-verified against its name ([`Store::read_chunk`]), and its length checked against
//! the disk's chunk.
//!
//! A chunk with no entry at or before the point (a point that does not cover it) is an error
//! ([`PointReadError::NoVersion`]), never silently zeros: callers that want zeros there say so.

mod error;

pub use error::{ErrorClass, PointReadError};

use crate::versions::MAX_RANGE_CHUNKS;
use crate::{ChunkVersion, Store};
use drpair_types::{DiskGeometry, Epoch, PointId};

/// One chunk of a disk at a point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PointChunk {
    /// All zero bytes, this many (the chunk's length).
    Zero(usize),
    /// The chunk's bytes, verified.
    Data(Vec<u8>),
}

impl PointChunk {
    /// The chunk's length in bytes.
    pub fn len(&self) -> usize {
        match self {
            PointChunk::Zero(len) => *len,
            PointChunk::Data(d) => d.len(),
        }
    }

    /// Whether the chunk has no bytes (never true of a chunk of a disk).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the point holds the chunk as all zero.
    pub fn is_zero(&self) -> bool {
        matches!(self, PointChunk::Zero(_))
    }

    /// The chunk's bytes, zeros materialised.
    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            PointChunk::Zero(len) => vec![0; len],
            PointChunk::Data(d) => d,
        }
    }

    /// Appends the chunk's bytes to `out`.
    pub fn append_to(&self, out: &mut Vec<u8>) {
        match self {
            PointChunk::Zero(len) => out.resize(out.len() + len, 0),
            PointChunk::Data(d) => out.extend_from_slice(d),
        }
    }

    /// Copies the chunk's bytes from `within` into `out` (which must fit in the chunk).
    fn copy_to(&self, within: usize, out: &mut [u8]) {
        match self {
            PointChunk::Zero(_) => out.fill(0),
            PointChunk::Data(d) => out.copy_from_slice(&d[within..within + out.len()]),
        }
    }
}

/// Disk `disk` of a pair as of one epoch (a recovery point's), read from the store. Cheap to
/// create; shareable between threads.
#[derive(Debug, Clone)]
pub struct PointReader {
    store: Store,
    pair_no: u32,
    disk: u32,
    geometry: DiskGeometry,
    epoch: Epoch,
}

impl PointReader {
    /// A reader of `disk` (of `geometry`) of pair `pair_no` at `epoch`, for a caller that has
    /// already found the point and the disk.
    pub fn new(store: &Store, pair_no: u32, disk: u32, geometry: DiskGeometry, epoch: Epoch) -> Self {
        Self { store: store.clone(), pair_no, disk, geometry, epoch }
    }

    /// A reader of `disk` of the pair's committed point `point`, given the pair's disks: the
    /// point must exist and the disk must be one of them.
    pub fn open(
        store: &Store,
        pair_no: u32,
        point: PointId,
        disk: u32,
        disks: &[DiskGeometry],
    ) -> Result<Self, PointReadError> {
        let geometry =
            *disks.get(disk as usize).ok_or(PointReadError::DiskNotFound { pair_no, disk, count: disks.len() })?;
        let found = store
            .get_point(pair_no, point)
            .map_err(|source| PointReadError::Index { disk, epoch: point, source })?
            .ok_or(PointReadError::PointNotFound { pair_no, point })?;
        Ok(Self::new(store, pair_no, disk, geometry, found.epoch))
    }

    pub fn disk(&self) -> u32 {
        self.disk
    }

    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    pub fn geometry(&self) -> DiskGeometry {
        self.geometry
    }

    fn index_err(&self, source: crate::StoreError) -> PointReadError {
        PointReadError::Index { disk: self.disk, epoch: self.epoch, source }
    }

    /// The version of each of chunks `first..first + count` at the point (`None`: never
    /// written up to then): one scan of the index.
    pub fn versions(&self, first: u64, count: u64) -> Result<Vec<Option<ChunkVersion>>, PointReadError> {
        self.store.versions_at(self.pair_no, self.disk, self.epoch, first, count).map_err(|e| self.index_err(e))
    }

    /// The version of chunk `chunk` at the point: one seek.
    pub fn version(&self, chunk: u64) -> Result<Option<ChunkVersion>, PointReadError> {
        let v = self.store.version_at(self.pair_no, self.disk, chunk, self.epoch).map_err(|e| self.index_err(e))?;
        Ok(v.map(|(_, v)| v))
    }

    /// Chunk `chunk`, given its version (from [`PointReader::versions`]): zeros unread, data
    /// read back, verified and length-checked.
    pub fn load(&self, chunk: u64, version: Option<ChunkVersion>) -> Result<PointChunk, PointReadError> {
        let (disk, epoch) = (self.disk, self.epoch);
        let expected = self.geometry.chunk_len(chunk) as usize;
        match version {
            None => Err(PointReadError::NoVersion { disk, chunk, epoch }),
            Some(ChunkVersion::Zero) => Ok(PointChunk::Zero(expected)),
            Some(ChunkVersion::Data(hash)) => {
                let data = self.store.read_chunk(&hash).map_err(|source| PointReadError::Chunk {
                    disk,
                    chunk,
                    epoch,
                    source,
                })?;
                if data.len() != expected {
                    return Err(PointReadError::Length { disk, chunk, stored: data.len(), expected });
                }
                Ok(PointChunk::Data(data))
            }
        }
    }

    /// Chunk `chunk` of the disk at the point.
    pub fn chunk(&self, chunk: u64) -> Result<PointChunk, PointReadError> {
        self.check_chunks(chunk, 1)?;
        self.load(chunk, self.version(chunk)?)
    }

    /// Chunks `first..first + count`: one index scan, then each chunk read.
    pub fn chunks(&self, first: u64, count: u64) -> Result<Vec<PointChunk>, PointReadError> {
        self.check_chunks(first, count)?;
        let versions = self.versions(first, count)?;
        (first..).zip(versions).map(|(c, v)| self.load(c, v)).collect()
    }

    /// The whole disk in order, `span` chunks at a time: `(first chunk, chunks)` per step. Ends
    /// after the first error.
    pub fn spans(&self, span: u64) -> Spans<'_> {
        Spans { reader: self, next: 0, span: span.clamp(1, MAX_RANGE_CHUNKS), failed: false }
    }

    /// Fills `buf` with the disk's bytes from `offset`; reads straddling chunks read each
    /// chunk once, zero chunks are not read at all.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), PointReadError> {
        let size = self.geometry.size_bytes;
        let len = buf.len() as u64;
        let out_of_range = || PointReadError::OutOfRange { disk: self.disk, offset, len, size };
        let end = offset.checked_add(len).filter(|&e| e <= size).ok_or_else(out_of_range)?;
        if len == 0 {
            return Ok(());
        }
        let cs = u64::from(self.geometry.chunk_size.bytes());
        let (first, last) = (offset / cs, (end - 1) / cs);
        let mut pos = 0usize;
        for (c, chunk) in (first..).zip(self.chunks(first, last - first + 1)?) {
            let within = if c == first { usize::try_from(offset % cs).expect("less than a chunk") } else { 0 };
            let n = (chunk.len() - within).min(buf.len() - pos);
            chunk.copy_to(within, &mut buf[pos..pos + n]);
            pos += n;
        }
        debug_assert_eq!(pos, buf.len());
        Ok(())
    }

    /// [`PointReadError::OutOfRange`] unless chunks `first..first + count` are the disk's.
    fn check_chunks(&self, first: u64, count: u64) -> Result<(), PointReadError> {
        let g = self.geometry;
        match first.checked_add(count) {
            Some(end) if end <= g.chunk_count() => Ok(()),
            _ => Err(PointReadError::OutOfRange {
                disk: self.disk,
                offset: first.saturating_mul(u64::from(g.chunk_size.bytes())),
                len: count.saturating_mul(u64::from(g.chunk_size.bytes())),
                size: g.size_bytes,
            }),
        }
    }
}

/// See [`PointReader::spans`].
pub struct Spans<'r> {
    reader: &'r PointReader,
    next: u64,
    span: u64,
    failed: bool,
}

impl Iterator for Spans<'_> {
    type Item = Result<(u64, Vec<PointChunk>), PointReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        let total = self.reader.geometry.chunk_count();
        if self.failed || self.next >= total {
            return None;
        }
        let first = self.next;
        let count = self.span.min(total - first);
        self.next += count;
        let r = self.reader.chunks(first, count).map(|chunks| (first, chunks));
        self.failed = r.is_err();
        Some(r)
    }
}

#[cfg(test)]
mod tests;
