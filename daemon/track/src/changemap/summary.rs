//! The change map's region summary: for every region of [`REGION_CHUNKS`] chunks (one 4 KiB
//! page of epoch entries), the newest epoch written to an entry of the region (0: none), and
//! whether this process already gave the region's pages their blocks.
//!
//! Kept in memory only (8 bytes and one bit per region: 2 MiB for an 8 TiB disk in 64 KiB
//! chunks), rebuilt at open from the regions the file holds data for (`SEEK_DATA`), so a map
//! whose entries are mostly untouched costs neither a scan nor resident pages. It lets
//! "which chunks changed since E" skip every region whose newest entry is not newer than E
//! without reading it.

use crate::extents;
use std::fs::File;
use std::io;

/// Chunks per region: one page of 8-byte epoch entries.
pub(super) const REGION_CHUNKS: u64 = 512;

pub(super) struct Summary {
    /// Newest epoch written to an entry of each region (0: every entry is zero).
    newest: Vec<u64>,
    /// Regions whose pages this process allocated (a bit per region).
    allocated: Vec<u64>,
}

impl Summary {
    /// An all-zero summary for `count` chunks.
    pub(super) fn empty(count: u64) -> Self {
        let regions = count.div_ceil(REGION_CHUNKS) as usize;
        Summary { newest: vec![0; regions], allocated: vec![0; regions.div_ceil(64)] }
    }

    /// The summary of the entries `entries` (the mapped epoch array of the file), reading only
    /// the parts of the file that hold data; `entries_at` is the array's offset in the file.
    pub(super) fn build(file: &File, entries: &[u8], entries_at: u64) -> io::Result<Self> {
        let count = (entries.len() / 8) as u64;
        let mut s = Self::empty(count);
        let end = entries_at + entries.len() as u64;
        for (from, to) in extents::data_segments(file, entries_at, end)? {
            let first = (from - entries_at) / 8;
            let last = (to - entries_at).div_ceil(8).min(count);
            for chunk in first..last {
                let at = chunk as usize * 8;
                let e = u64::from_le_bytes(entries[at..at + 8].try_into().expect("8 bytes"));
                s.raise(chunk, e);
            }
        }
        Ok(s)
    }

    pub(super) fn regions(&self) -> u64 {
        self.newest.len() as u64
    }

    /// Newest entry of region `r` (0: none written).
    pub(super) fn newest(&self, r: u64) -> u64 {
        self.newest[r as usize]
    }

    /// An entry of `chunk` became `epoch`.
    pub(super) fn raise(&mut self, chunk: u64, epoch: u64) {
        let r = (chunk / REGION_CHUNKS) as usize;
        if epoch > self.newest[r] {
            self.newest[r] = epoch;
        }
    }

    /// Whether this process allocated region `r`'s pages already; marks it allocated.
    pub(super) fn take_allocation(&mut self, r: u64) -> bool {
        let (word, bit) = ((r / 64) as usize, 1u64 << (r % 64));
        let had = self.allocated[word] & bit != 0;
        self.allocated[word] |= bit;
        had
    }

    /// Region `r`'s allocation failed: try again at the next write.
    pub(super) fn forget_allocation(&mut self, r: u64) {
        self.allocated[(r / 64) as usize] &= !(1u64 << (r % 64));
    }

    /// Every entry was cleared.
    pub(super) fn clear(&mut self) {
        self.newest.fill(0);
    }
}
