//! The chunks an open epoch has received, per disk: a chunk named twice in an epoch is
//! refused, and a baseline commits only when every chunk is covered (`commit.rs`). A run of
//! zero chunks covers its whole range at once.
//!
//! Held as a compressed bitmap (`roaring`): its size follows what the epoch received, not the
//! disk's size. A plain bitmap of one bit per chunk was 2 MiB per TiB of disk, allocated and
//! cleared for every epoch, however few chunks it held.

use roaring::RoaringTreemap;

/// One disk's coverage in the open epoch.
#[derive(Debug, Default, Clone)]
pub(super) struct Covered(RoaringTreemap);

impl Covered {
    /// The first chunk of `first..end` already covered, if any.
    pub(super) fn first_covered(&self, first: u64, end: u64) -> Option<u64> {
        if first >= end {
            return None;
        }
        // rank(v): how many covered chunks are ≤ v.
        let before = if first == 0 { 0 } else { self.0.rank(first - 1) };
        if self.0.rank(end - 1) == before {
            return None;
        }
        self.0.select(before)
    }

    /// Marks chunks `first..end` covered.
    pub(super) fn cover(&mut self, first: u64, end: u64) {
        if first < end {
            self.0.insert_range(first..end);
        }
    }

    /// Chunks covered.
    pub(super) fn count(&self) -> u64 {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_covered_and_found() {
        let mut c = Covered::default();
        c.cover(3, 4);
        assert_eq!(c.first_covered(0, 256), Some(3));
        assert_eq!(c.first_covered(4, 256), None);
        c.cover(60, 200);
        assert_eq!(c.first_covered(4, 256), Some(60));
        assert_eq!(c.first_covered(199, 256), Some(199));
        assert_eq!(c.first_covered(200, 256), None);
        assert_eq!(c.first_covered(5, 60), None);
        assert_eq!(c.first_covered(0, 3), None);
        assert_eq!(c.first_covered(7, 7), None);
        assert_eq!(c.count(), 141);
    }

    #[test]
    fn a_huge_disk_costs_what_was_received() {
        // 8 TiB of 64 KiB chunks: 2^27 chunks. A full baseline of zero runs and a scattered
        // catch-up both stay small.
        let chunks = 1u64 << 27;
        let mut c = Covered::default();
        c.cover(0, chunks);
        assert_eq!(c.count(), chunks);
        assert!(c.0.serialized_size() < 64 << 10, "{}", c.0.serialized_size());
        let mut scattered = Covered::default();
        for i in 0..10_000u64 {
            scattered.cover(i * 13_421, i * 13_421 + 1);
        }
        assert_eq!(scattered.count(), 10_000);
        assert_eq!(scattered.first_covered(13_422, chunks), Some(2 * 13_421));
        assert!(scattered.0.serialized_size() < 256 << 10, "{}", scattered.0.serialized_size());
    }
}
