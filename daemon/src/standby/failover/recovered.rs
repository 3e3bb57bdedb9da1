//! The recovered side of a failback ([`Recovered`]): the recovered disks themselves (block
//! devices or files, read and hashed; written by a failback to-recovered), or the newest point
//! of the pair protecting them (`protect-recovered`), read from the store by its version
//! index, so comparing reads no disk and costs one index scan per span of chunks. Both answer
//! per chunk the same thing: all zero, or the blake3 hash of its bytes.

use super::failback_error::FailbackError;
use super::target::Side;
use drpair_store::{ChunkVersion, PointReadError, PointReader, Store};
use drpair_types::{DiskGeometry, Epoch, PairId, PointId};
use std::os::unix::fs::FileExt;

/// One chunk of the recovered side: None when all zero, else its hash.
pub type Seen = Option<[u8; 32]>;

/// A point of the pair protecting the recovered disks. Its chunk size is the original
/// pair's (the protecting agent ships with it), so chunk N is the same region on both.
#[derive(Debug, Clone)]
pub struct ProtectedPoint {
    pub pair: PairId,
    pub pair_no: u32,
    pub point: PointId,
    pub epoch: Epoch,
    /// The protecting pair's disks at that point (at least as large as the original's).
    pub disks: Vec<DiskGeometry>,
}

/// Where a failback reads the recovered side.
pub enum Recovered {
    Disks(Vec<Side>),
    Protected(ProtectedPoint),
}

impl Recovered {
    /// What chunks `first..first + count` of disk `d` hold (`g`: the failover's geometry of
    /// the disk), read into `buf` (at least `count` chunks long) for the disks.
    pub fn seen(
        &self,
        store: &Store,
        d: u32,
        g: &DiskGeometry,
        first: u64,
        count: u64,
        buf: &mut [u8],
    ) -> Result<Vec<Seen>, FailbackError> {
        match self {
            Recovered::Disks(sides) => {
                let side = &sides[d as usize];
                let cs = u64::from(g.chunk_size.bytes());
                let start = first * cs;
                let len = in_memory((g.size_bytes - start).min(count * cs));
                side.file.read_exact_at(&mut buf[..len], start).map_err(|e| {
                    FailbackError::Disk(format!("{}: read at byte {start} failed: {e}", side.path.display()))
                })?;
                Ok((0..count)
                    .map(|i| {
                        let off = in_memory(i * cs);
                        let bytes = &buf[off..off + g.chunk_len(first + i) as usize];
                        (!bytes.iter().all(|&b| b == 0)).then(|| *blake3::hash(bytes).as_bytes())
                    })
                    .collect())
            }
            Recovered::Protected(p) => {
                let versions = p.reader(store, d).versions(first, count).map_err(|e| p.error(d, e))?;
                Ok(versions
                    .into_iter()
                    .map(|v| match v {
                        Some(ChunkVersion::Data(h)) => Some(h),
                        None | Some(ChunkVersion::Zero) => None,
                    })
                    .collect())
            }
        }
    }

    /// The bytes of chunk `c` of disk `d`.
    pub fn chunk(&self, store: &Store, d: u32, g: &DiskGeometry, c: u64) -> Result<Vec<u8>, FailbackError> {
        match self {
            Recovered::Disks(sides) => {
                let side = &sides[d as usize];
                let mut data = vec![0u8; g.chunk_len(c) as usize];
                let at = c * u64::from(g.chunk_size.bytes());
                side.file.read_exact_at(&mut data, at).map_err(|e| {
                    FailbackError::Disk(format!("{}: read at byte {at} failed: {e}", side.path.display()))
                })?;
                Ok(data)
            }
            Recovered::Protected(p) => match p.reader(store, d).chunk(c) {
                Ok(chunk) => Ok(chunk.into_bytes()),
                Err(PointReadError::NoVersion { .. }) => Ok(vec![0u8; g.chunk_len(c) as usize]),
                Err(e) => Err(p.error(d, e)),
            },
        }
    }

    /// The disks, when the recovered side is read from them.
    pub fn sides(&self) -> Option<&[Side]> {
        match self {
            Recovered::Disks(s) => Some(s),
            Recovered::Protected(_) => None,
        }
    }
}

impl ProtectedPoint {
    fn reader(&self, store: &Store, d: u32) -> PointReader {
        PointReader::new(store, self.pair_no, d, self.disks[d as usize], self.epoch)
    }

    fn error(&self, d: u32, e: PointReadError) -> FailbackError {
        FailbackError::Store(format!("pair '{}' point {} disk {d}: {e}", self.pair, self.point))
    }
}

/// A length or offset within a span read into memory (at most a few MiB).
fn in_memory(v: u64) -> usize {
    usize::try_from(v).expect("a span of chunks in memory fits usize")
}
