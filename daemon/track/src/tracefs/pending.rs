//! Chunks read from the kernel but not yet stamped into the change maps: one bitset per disk.
//!
//! The drainer folds events in between cuts; `collect` stamps and clears them; a clean stop
//! saves them as runs in the state file and the next start loads them back.

use fixedbitset::FixedBitSet;

/// Per-disk sets of changed chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    sets: Vec<FixedBitSet>,
}

impl Pending {
    /// Empty sets for disks of `chunk_counts` chunks; `None` if a count does not fit memory.
    pub fn new(chunk_counts: &[u64]) -> Option<Self> {
        let sets = chunk_counts
            .iter()
            .map(|&n| usize::try_from(n).ok().map(FixedBitSet::with_capacity))
            .collect::<Option<Vec<_>>>()?;
        Some(Self { sets })
    }

    pub fn disks(&self) -> usize {
        self.sets.len()
    }

    /// Marks chunks `first..=last` of `disk`, clamped to the disk; out-of-range disks and
    /// chunks are ignored (the caller maps requests to in-range chunks already).
    pub fn mark(&mut self, disk: usize, first: u64, last: u64) {
        let Some(set) = self.sets.get_mut(disk) else { return };
        let len = set.len();
        let first = usize::try_from(first).unwrap_or(usize::MAX);
        let end = usize::try_from(last).unwrap_or(usize::MAX).saturating_add(1).min(len);
        if first < end {
            set.insert_range(first..end);
        }
    }

    /// Marks runs `(first, count)`, clamped, as read back from the state file.
    pub fn mark_runs(&mut self, disk: usize, runs: &[(u64, u64)]) {
        for &(first, count) in runs {
            if count > 0 {
                self.mark(disk, first, first.saturating_add(count - 1));
            }
        }
    }

    /// The marked chunks of `disk` as ascending runs `(first, count)`.
    pub fn runs(&self, disk: usize) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let Some(set) = self.sets.get(disk) else { return runs };
        for chunk in set.ones().map(|c| c as u64) {
            match runs.last_mut() {
                Some((first, count)) if *first + *count == chunk => *count += 1,
                _ => runs.push((chunk, 1)),
            }
        }
        runs
    }

    pub fn clear(&mut self, disk: usize) {
        if let Some(set) = self.sets.get_mut(disk) {
            set.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_runs_and_clamps() {
        let mut p = Pending::new(&[10, 100]).unwrap();
        assert_eq!(p.disks(), 2);
        p.mark(0, 2, 3);
        p.mark(0, 4, 4);
        p.mark(0, 8, 50); // clamped to chunk 9
        p.mark(0, 20, 30); // entirely out of range
        p.mark(5, 0, 1); // no such disk
        p.mark(1, u64::MAX - 1, u64::MAX);
        assert_eq!(p.runs(0), vec![(2, 3), (8, 2)]);
        assert_eq!(p.runs(1), vec![]);
        let mut q = Pending::new(&[10, 100]).unwrap();
        q.mark_runs(0, &p.runs(0));
        q.mark_runs(1, &[(99, 5), (0, 0), (u64::MAX, u64::MAX)]);
        assert_eq!(q.runs(0), p.runs(0));
        assert_eq!(q.runs(1), vec![(99, 1)]);
        q.clear(0);
        assert_eq!(q.runs(0), vec![]);
        assert_eq!(q.runs(7), vec![]);
    }
}
