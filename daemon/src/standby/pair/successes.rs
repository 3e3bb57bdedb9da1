//! A pair's last successes as its record persists them (issue 26): the newest committed point,
//! the last verification of stored chunks that found every point intact, the last online
//! verify against the source that found nothing differing, the last drill that passed and the
//! newest app-consistent point. Kept in the record, not derived from the points: retention,
//! a restart or a replay may remove the points, and a verification or drill that failed since
//! replaces the last *result* (`verify`, the drill list) but not the last *success*. They
//! survive a standby restart with the record; an older record without them opens with none.
//!
//! Each is noted where the feature ends, under the record's lock: a commit notes its point
//! (and an online verify its pass ended) on the record it writes in the commit's batch, after
//! the rebase onto what API calls changed meanwhile, so neither side's note is lost.

use super::results::{SourceVerifyRecord, SourceVerifyState, VerifyRecord, VerifyState};
use crate::timefmt::rfc3339_ms;
use drpair_types::{Consistency, LastSuccess, LastSuccesses, PointId, RecoveryPoint};
use serde::{Deserialize, Serialize};

/// One success: when (unix ms), the point it concerns, and what it was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SuccessRecord {
    pub unix_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<PointId>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// The pair's last successes (the record's `last_successes`; absent while there is none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SuccessesRecord {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub point: Option<SuccessRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verify: Option<SuccessRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_verify: Option<SuccessRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drill: Option<SuccessRecord>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub app_consistent_point: Option<SuccessRecord>,
}

fn success(unix_ms: u64, point: Option<PointId>, detail: String) -> Option<SuccessRecord> {
    Some(SuccessRecord { unix_ms, point, detail })
}

impl SuccessesRecord {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// A committed point: the newest point, and the newest app-consistent one when it is
    /// (dated by its cut, as the RPO counts).
    pub fn note_point(&mut self, p: &RecoveryPoint) {
        let kind = serde_json::to_value(p.kind).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
        self.point = success(p.time_unix_ms, Some(p.id), format!("point {} ({kind})", p.id));
        if p.consistency == Consistency::AppConsistent {
            self.app_consistent_point = success(p.time_unix_ms, Some(p.id), format!("point {} ({kind})", p.id));
        }
    }

    /// A verification of stored chunks that ended: a success when it found no damage.
    pub fn note_verify(&mut self, v: &VerifyRecord) {
        if let (VerifyState::Done, 0, Some(at)) = (v.state, v.points_damaged, v.finished_unix_ms) {
            self.verify = success(at, v.point, v.message.clone());
        }
    }

    /// An online verify against the source that ended: a success when no chunk differed.
    pub fn note_source_verify(&mut self, v: &SourceVerifyRecord) {
        if let (SourceVerifyState::Done, 0, Some(at)) = (v.state, v.mismatched_chunks, v.finished_unix_ms) {
            self.source_verify = success(at, v.against_point, format!("{} chunk(s) compared", v.chunks_compared));
        }
    }

    /// A drill that passed at `at` (ready with no check, or its check exited 0).
    pub fn note_drill(&mut self, at: u64, point: PointId, detail: String) {
        self.drill = success(at, Some(point), detail);
    }

    /// `last_successes` in status.
    pub fn to_view(&self) -> LastSuccesses {
        let view = |s: &Option<SuccessRecord>| {
            s.as_ref().map(|s| LastSuccess {
                at: rfc3339_ms(s.unix_ms),
                at_unix_ms: s.unix_ms,
                point: s.point,
                detail: s.detail.clone(),
            })
        };
        LastSuccesses {
            point: view(&self.point),
            verify: view(&self.verify),
            source_verify: view(&self.source_verify),
            drill: view(&self.drill),
            app_consistent_point: view(&self.app_consistent_point),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::PairRecord;
    use drpair_types::{Lineage, PairId, PointKind, PointSizes};

    fn point(id: u64, consistency: Consistency) -> RecoveryPoint {
        RecoveryPoint {
            id,
            pair_id: PairId::new("p").unwrap(),
            epoch: id,
            lineage: Lineage::nil(),
            time: rfc3339_ms(id * 1000),
            time_unix_ms: id * 1000,
            committed_unix_ms: id * 1000 + 5,
            kind: if consistency == Consistency::AppConsistent {
                PointKind::AppConsistent
            } else {
                PointKind::Scheduled
            },
            consistency,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes::default(),
            quiesce: None,
            full_pass: false,
            damage: None,
            read_window_ms: None,
            window_exceeded: false,
        }
    }

    #[test]
    fn points_verifies_and_drills() {
        let mut s = SuccessesRecord::default();
        assert!(s.is_empty() && s.to_view() == LastSuccesses::default());
        s.note_point(&point(3, Consistency::AppConsistent));
        s.note_point(&point(4, Consistency::Fuzzy));
        let v = s.to_view();
        assert_eq!(v.point.as_ref().map(|p| (p.point, p.at_unix_ms)), Some((Some(4), 4000)));
        assert_eq!(v.point.unwrap().at, "1970-01-01T00:00:04.000Z");
        assert_eq!(v.app_consistent_point.map(|p| p.point), Some(Some(3)), "the last app-consistent one stays");

        let mut verify = VerifyRecord::running(false, None, 10_000);
        verify.state = VerifyState::Done;
        verify.finished_unix_ms = Some(12_000);
        verify.points_damaged = 1;
        s.note_verify(&verify);
        assert!(s.verify.is_none(), "damage found: no success");
        verify.points_damaged = 0;
        s.note_verify(&verify);
        assert_eq!(s.verify.as_ref().map(|v| v.unix_ms), Some(12_000));
        let mut failed = verify.clone();
        failed.state = VerifyState::Failed;
        failed.finished_unix_ms = Some(20_000);
        s.note_verify(&failed);
        assert_eq!(s.verify.as_ref().map(|v| v.unix_ms), Some(12_000), "a failure keeps the last success");

        let mut sv = crate::standby::source_verify::requested_for_tests();
        sv.state = SourceVerifyState::Done;
        sv.finished_unix_ms = Some(30_000);
        sv.against_point = Some(4);
        sv.mismatched_chunks = 2;
        s.note_source_verify(&sv);
        assert!(s.source_verify.is_none(), "chunks differed: no success");
        sv.mismatched_chunks = 0;
        s.note_source_verify(&sv);
        assert_eq!(s.source_verify.as_ref().map(|v| (v.unix_ms, v.point)), Some((30_000, Some(4))));

        s.note_drill(40_000, 4, "drill d: check passed".into());
        assert_eq!(s.to_view().drill.map(|d| (d.at_unix_ms, d.point)), Some((40_000, Some(4))));
    }

    /// A commit notes its point after rebasing onto the live record (`session/hooks.rs`): a
    /// drill's success noted while the commit was preparing stays, and so does the point.
    #[test]
    fn a_success_noted_during_a_commit_survives_it() {
        let orig = crate::standby::pair::test_record(drpair_types::PairState::Replicating, 4);
        let mut ours = orig.clone();
        ours.committed = 5;
        let mut live = orig.clone();
        live.last_successes.note_drill(9_000, 4, "drill".into());
        let mut merged = crate::standby::rebase::rebase(&orig, ours, &live, Some(drpair_pair::PairOp::PointCommitted));
        merged.last_successes.note_point(&point(5, Consistency::Fuzzy));
        assert_eq!(merged.committed, 5);
        assert_eq!(merged.last_successes.drill.as_ref().map(|d| d.unix_ms), Some(9_000));
        assert_eq!(merged.last_successes.point.as_ref().and_then(|p| p.point), Some(5));
    }

    /// In the record: absent when empty (older records and the fixture stay as they were),
    /// and kept through JSON when set.
    #[test]
    fn the_record_keeps_them() {
        let mut rec = crate::standby::pair::test_record(drpair_types::PairState::Replicating, 4);
        let json = serde_json::to_value(&rec).unwrap();
        assert!(json.get("last_successes").is_none() && json.get("rpo_target_off").is_none(), "{json}");
        rec.last_successes.note_point(&point(4, Consistency::AppConsistent));
        rec.last_successes.note_drill(9_000, 4, "drill".into());
        let json = serde_json::to_value(&rec).unwrap();
        assert_eq!(json["last_successes"]["drill"]["unix_ms"], 9_000);
        assert!(json["last_successes"].get("verify").is_none());
        let back: PairRecord = serde_json::from_value(json).unwrap();
        assert_eq!(back, rec);
    }
}
