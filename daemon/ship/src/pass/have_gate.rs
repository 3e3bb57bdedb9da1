//! Whether a worker asks the standby which hashes it holds before sending a block's chunks.
//!
//! Asking costs a round trip per block, and the answer waits behind every frame already
//! queued on the link: in an initial copy into a store that holds nothing of the disk, the
//! workers spent 60% of their time waiting for answers that were all "no" (4 GiB ext4, 4
//! workers: 20.7 s of 35 s). So the question is asked while it pays: every block until
//! [`HaveGate::MISSES_TO_SAMPLE`] hashes in a row were not held, then one block in
//! [`HaveGate::SAMPLE_EVERY`]; a sample that finds a held chunk opens it again. Dedup is
//! an optimisation: a chunk the standby held and was sent anyway is stored once (the
//! standby skips hashes it holds) and only costs link bytes.

use std::sync::atomic::{AtomicU64, Ordering};

/// Shared by the workers of one pass.
#[derive(Debug, Default)]
pub struct HaveGate {
    /// Hashes asked about in a row without one held.
    misses: AtomicU64,
    /// Blocks seen while sampling.
    blocks: AtomicU64,
}

impl HaveGate {
    /// Hashes in a row not held before asking only for samples.
    pub const MISSES_TO_SAMPLE: u64 = 1024;
    /// While sampling, one block in this many asks.
    pub const SAMPLE_EVERY: u64 = 32;

    /// Whether to ask about the next block.
    pub fn ask(&self) -> bool {
        if self.misses.load(Ordering::Relaxed) < Self::MISSES_TO_SAMPLE {
            return true;
        }
        self.blocks.fetch_add(1, Ordering::Relaxed).is_multiple_of(Self::SAMPLE_EVERY)
    }

    /// Records an answer: `held` of `asked` hashes were held.
    pub fn answered(&self, asked: usize, held: usize) {
        if held > 0 {
            if self.misses.swap(0, Ordering::Relaxed) >= Self::MISSES_TO_SAMPLE {
                tracing::debug!("a sampled Have found held chunks: asking for every block again");
            }
        } else if self.misses.fetch_add(asked as u64, Ordering::Relaxed) < Self::MISSES_TO_SAMPLE
            && self.misses.load(Ordering::Relaxed) >= Self::MISSES_TO_SAMPLE
        {
            tracing::debug!(
                misses = Self::MISSES_TO_SAMPLE,
                "the standby held none of the chunks asked about: sampling Have"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn misses_move_to_sampling_and_a_hit_opens_the_gate() {
        let g = HaveGate::default();
        // 16 blocks of 64 chunks, none held: still asked every time up to the threshold.
        for _ in 0..16 {
            assert!(g.ask());
            g.answered(64, 0);
        }
        // Now one block in SAMPLE_EVERY asks.
        let asked = (0..HaveGate::SAMPLE_EVERY * 4).filter(|_| g.ask()).count() as u64;
        assert_eq!(asked, 4);
        // A sample that finds a held chunk: every block asks again.
        g.answered(64, 1);
        assert!((0..10).all(|_| g.ask()));
        // A partial answer with hits resets the streak.
        g.answered(1000, 0);
        g.answered(64, 3);
        g.answered(1000, 0);
        assert!(g.ask());
    }
}
