//! Which pass an epoch runs, from what its cut found.

use super::PassMode;
use drpair_types::Epoch;
use drpair_wire::PassKind;

/// The pass an epoch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassChoice {
    pub mode: PassMode,
    pub kind: PassKind,
    /// Ask the standby which hashes it holds (off for the baseline of a full copy).
    pub dedup: bool,
}

/// The pass of an epoch cut after `acked`: `scan` (the tracker cannot tell what changed),
/// `full` (a reason to compare every chunk: a gap, a resync, a verify), `verify` (an online
/// verify), `full_copy` (the standby wants every chunk's bytes in the baseline).
pub fn choose(acked: Epoch, scan: bool, full: bool, verify: bool, full_copy: bool) -> PassChoice {
    let mode = if scan || full { PassMode::All } else { PassMode::Dirty };
    let kind = if acked == 0 {
        PassKind::Initial
    } else if verify {
        PassKind::Verify
    } else if full {
        PassKind::Reconcile
    } else if scan {
        PassKind::Scan
    } else {
        PassKind::Incremental
    };
    PassChoice { mode, kind, dedup: !(full_copy && acked == 0) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pass_follows_the_cut() {
        let c = choose(0, false, false, false, true);
        assert_eq!((c.mode, c.kind, c.dedup), (PassMode::Dirty, PassKind::Initial, false));
        assert!(choose(0, false, false, false, false).dedup);
        assert_eq!(choose(5, false, false, false, true).kind, PassKind::Incremental);
        assert!(choose(5, false, false, false, true).dedup);
        let scan = choose(5, true, false, false, false);
        assert_eq!((scan.mode, scan.kind), (PassMode::All, PassKind::Scan));
        let gap = choose(5, true, true, false, false);
        assert_eq!((gap.mode, gap.kind), (PassMode::All, PassKind::Reconcile));
        let verify = choose(5, false, true, true, false);
        assert_eq!((verify.mode, verify.kind), (PassMode::All, PassKind::Verify));
    }
}
