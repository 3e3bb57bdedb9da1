//! What the features do around a commit, in one place: the record changes that go into the
//! commit's batch ([`on_commit`], and the last successes: [`note_successes`]), what is done
//! under the record's lock once the batch is written ([`in_commit`]), and the follow-ups once the point is committed
//! ([`Session::after_commit`]): retiring an old lineage and stopping at a stop position.
//! The acknowledgement is sent only after all of them.

use super::Session;
use crate::standby::pair::results::SourceVerifyRecord;
use crate::standby::pair::{OpError, PairHandle, PairRecord};
use crate::standby::{control, dump, source_verify};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::PairOp;
use drpair_store::{Store, StoreError};
use drpair_types::{Epoch, PairId, PointKind, RecoveryPoint, StopReason};
use drpair_wire::EpochEnd;

/// What the features noted in the record of a commit, for what is done with it.
pub(super) struct CommitNotes {
    /// The dump point whose loaded dump this epoch's full pass checked, and whether it matched.
    dump_verified: Option<(Epoch, bool)>,
    /// The online verify this epoch's pass ended.
    source_verified: Option<SourceVerifyRecord>,
}

/// The features' changes to the record `rec` of the epoch `end` being committed (they are
/// written in the commit's one batch): a dump being verified, an online verify that ended, a
/// restart's baseline that retires the old lineage. A dump that did not match is reported as
/// a failure before the commit shows the verification, so whoever sees it done sees the
/// failure.
pub(super) fn on_commit(
    handle: &PairHandle,
    rec: &mut PairRecord,
    end: &EpochEnd,
    chunks: u64,
    baseline: bool,
) -> CommitNotes {
    let dump_verified = dump::on_verified(rec, end.epoch, end.full_pass, chunks, end.dump_check.as_ref());
    let source_verified =
        end.source_verify.as_ref().and_then(|r| source_verify::on_committed(rec, r, end.epoch, chunks));
    if baseline && let Some(r) = rec.restart.take() {
        if r.keep_points {
            rec.retire_below = Some(end.epoch);
        }
    }
    if let Some((dump_point, false)) = dump_verified {
        dump_mismatched(handle, &rec.pair_id, dump_point);
    }
    CommitNotes { dump_verified, source_verified }
}

/// Under the record's lock, right after the commit's batch and before the record is
/// installed: a dump that matched has its point marked verified before the record says so,
/// and an online verify that ended is logged and counted before anyone can see it ended.
pub(super) fn in_commit(store: &Store, pair_no: u32, pid: &PairId, notes: &CommitNotes) {
    if let Some((dump_point, true)) = notes.dump_verified
        && let Err(e) = mark_verified(store, pair_no, dump_point)
    {
        tracing::error!(pair = %pid, "marking dump point {dump_point} verified: {e}");
    }
    if let Some(v) = &notes.source_verified {
        source_verify::report(pid, v);
    }
}

/// The commit's successes, noted on the record it writes (after the rebase, so a success an
/// API call or a verification noted meanwhile stays): the point, an app-consistent one, an
/// online verify that passed.
pub(super) fn note_successes(rec: &mut PairRecord, point: &RecoveryPoint, notes: &CommitNotes) {
    rec.last_successes.note_point(point);
    if let Some(v) = &notes.source_verified {
        rec.last_successes.note_source_verify(v);
    }
}

impl Session {
    /// The follow-ups of a committed point (before it is acknowledged): the points of an old
    /// lineage a restart kept until its baseline are deleted, and the pair stops when the
    /// point reaches its stop position.
    pub(super) async fn after_commit(&mut self, rec: &PairRecord, point: &RecoveryPoint) {
        if rec.retire_below.is_some() {
            control::retire_old_lineage(&self.sb, &self.handle).await;
        }
        self.check_stop_position(point).await;
    }

    /// Stops the pair when this point reaches its stop position.
    async fn check_stop_position(&mut self, point: &RecoveryPoint) {
        let stopped = self.handle.update(&self.sb.store, |rec| {
            let Some(at) = rec.stop_at.clone() else { return Ok(None) };
            let reason = if let Some(r) = at.after_full_load.filter(|_| point.kind == PointKind::Baseline) {
                r
            } else if at.server_time_unix_ms.is_some_and(|t| crate::timefmt::now_ms() >= t) {
                StopReason::StoppedAtServerTime
            } else if at.point.is_some_and(|p| point.id >= p) {
                StopReason::StoppedAtPoint
            } else if at.time_unix_ms.is_some_and(|t| point.time_unix_ms >= t) {
                StopReason::StoppedAtCommitTime
            } else {
                return Ok(None);
            };
            rec.lifecycle = rec.lifecycle.apply(PairOp::Stop(reason))?;
            rec.stop_at = None;
            Ok::<_, OpError>(Some(reason))
        });
        match stopped {
            Ok(None) => {}
            Ok(Some(reason)) => {
                tracing::info!(pair = %self.pair_id, point = point.id, reason = reason.as_str(), "pair stopped at its stop position");
                self.handle.send_run_mode();
            }
            Err(OpError::Refused(e)) => {
                tracing::warn!(pair = %self.pair_id, "stop position reached but not applied: {e}")
            }
            Err(e) => tracing::error!(pair = %self.pair_id, "recording the stop: {e:?}"),
        }
    }
}

/// The pass after a loaded dump found it did not match its point: reported as a failure.
fn dump_mismatched(handle: &PairHandle, pair_id: &PairId, dump_point: Epoch) {
    let msg = format!(
        "pair '{pair_id}': the loaded dump did not match its dump point {dump_point}; the differing chunks were repaired from the source (see dump.verification)"
    );
    handle.runtime.lock().expect("runtime").fail(msg);
}

/// Marks point `point` verified (a loaded dump that matched the source).
fn mark_verified(store: &Store, pair_no: u32, point: Epoch) -> Result<(), StoreError> {
    if let Some(mut p) = store.get_point(pair_no, point)? {
        p.verified_at = Some(rfc3339_ms(now_ms()));
        store.update_point(pair_no, &p)?;
    }
    Ok(())
}
