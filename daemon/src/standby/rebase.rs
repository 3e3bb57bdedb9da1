//! Writing a pair record that took a while to prepare without losing what others wrote
//! meanwhile.
//!
//! A commit clones the pair's record, awaits its chunk writes, then persists the record with
//! the new point. An API call in between (an online verify requested, a pause, a retention
//! policy set) changes the live record; writing the clone would silently undo that call,
//! though the API acknowledged it. [`rebase`] replays the commit's changes on top of the live
//! record instead: each field someone else changed keeps their value; the lifecycle, if it
//! changed, gets the commit's event applied again.

use super::pair::PairRecord;
use drpair_pair::PairOp;

/// `ours` was made from `orig`; `live` is the record now. Returns `ours` with every field
/// that changed between `orig` and `live` taken from `live`, and `event` applied again to a
/// lifecycle that changed meanwhile.
pub fn rebase(orig: &PairRecord, mut ours: PairRecord, live: &PairRecord, event: Option<PairOp>) -> PairRecord {
    let now = crate::timefmt::now_ms();
    if live == orig {
        ours.note_dates(orig, now);
        return ours;
    }
    let json = |r: &PairRecord| serde_json::to_value(r).expect("a pair record serialises");
    let (o, l) = (json(orig), json(live));
    let mut merged = json(&ours);
    if let (Some(o), Some(l), Some(m)) = (o.as_object(), l.as_object(), merged.as_object_mut()) {
        for (key, value) in l {
            if o.get(key) != Some(value) {
                m.insert(key.clone(), value.clone());
            }
        }
    }
    let mut merged: PairRecord = serde_json::from_value(merged).expect("a merged pair record deserialises");
    if live.lifecycle != orig.lifecycle
        && let Some(op) = event
    {
        merged.lifecycle = live.lifecycle.apply(op).unwrap_or_else(|_| live.lifecycle.clone());
    }
    // The dates follow what the merged record changes of the live one.
    merged.note_dates(live, now);
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::test_record;
    use crate::standby::source_verify::requested_for_tests as requested;
    use drpair_types::PairState;

    fn record() -> PairRecord {
        test_record(PairState::Replicating, 4)
    }
    #[test]
    fn nothing_changed_meanwhile_keeps_ours() {
        let orig = record();
        let mut ours = orig.clone();
        ours.committed = 5;
        assert_eq!(rebase(&orig, ours.clone(), &orig, Some(PairOp::PointCommitted)), ours);
    }

    #[test]
    fn a_request_made_during_a_commit_survives_it() {
        let orig = record();
        let mut ours = orig.clone();
        ours.committed = 5;
        let mut live = orig.clone();
        live.source_verify = Some(requested());
        let merged = rebase(&orig, ours, &live, Some(PairOp::PointCommitted));
        assert_eq!(merged.committed, 5, "the commit's own change");
        assert_eq!(merged.source_verify, Some(requested()), "the request made meanwhile");
    }

    #[test]
    fn a_pause_during_a_commit_stays_paused() {
        let orig = record();
        let mut ours = orig.clone();
        ours.committed = 5;
        ours.lifecycle = orig.lifecycle.apply(PairOp::PointCommitted).unwrap();
        let mut live = orig.clone();
        live.lifecycle = orig.lifecycle.apply(PairOp::Pause).unwrap();
        let merged = rebase(&orig, ours, &live, Some(PairOp::PointCommitted));
        assert_eq!((merged.committed, merged.lifecycle.state), (5, PairState::Paused));
        assert!(merged.lifecycle.has_baseline);
    }
}
