//! Operator actions on a pair that change its history: restart (new lineage, everything
//! copied again) and replay (head rolled back to an older point). Both run with the pair's
//! session lock held, so no connection writes while the record and the store change; the
//! agent's connection is ended first, and the agent learns what happened from the Welcome
//! of its next connection.

use super::Standby;
use super::pair::{OpError, PairHandle, PairRecord, RestartRecord, Rewound};
use super::tasks::Seen;
use crate::timefmt::now_ms;
use drpair_pair::PairOp;
use drpair_types::{Epoch, ErrorClass, RecoveryPoint, TaskKind};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OwnedMutexGuard;

/// How long an action waits for the pair's connection to end.
const QUIESCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Ends the pair's connection (if any) and holds its session lock: no epoch is being written
/// while the guard lives.
pub(crate) async fn quiesce(h: &PairHandle, why: &str) -> Result<OwnedMutexGuard<()>, OpError> {
    if let Some(s) = &h.runtime.lock().expect("runtime").session {
        s.end(why, false);
    }
    tokio::time::timeout(QUIESCE_TIMEOUT, h.session_lock.clone().lock_owned())
        .await
        .map_err(|_| OpError::Store("the pair's connection did not end within 60s; nothing was changed".into()))
}

pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, drpair_store::StoreError> + Send + 'static,
) -> Result<T, OpError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| OpError::Store(e.to_string()))?
        .map_err(|e| OpError::Store(e.to_string()))
}

/// What a restart should do.
#[derive(Debug, Clone, Copy, Default)]
pub struct RestartOpts {
    pub full_copy: bool,
    pub keep_points: bool,
}

/// Restart: new lineage, points deleted (or kept read-only until the new baseline), every
/// chunk copied again. Returns the number of points deleted.
pub async fn restart(sb: &Arc<Standby>, h: &Arc<PairHandle>, opts: RestartOpts) -> Result<u64, OpError> {
    // Refuse before ending any connection.
    let lifecycle = h.record.lock().expect("record").lifecycle.apply(PairOp::Restart)?;
    let _guard = quiesce(h, "an operator restarted the pair; reconnect for the new lineage").await?;
    let orig = h.record.lock().expect("record").clone();
    let mut rec = orig.clone();
    let lifecycle = rec.lifecycle.apply(PairOp::Restart).unwrap_or(lifecycle);
    let (store, pair_no) = (sb.store.clone(), rec.pair_no);
    let points = blocking(move || store.list_points(pair_no)).await?;
    let newest = points.last().map(|p| p.epoch).unwrap_or(0);
    let old_lineage = rec.lineage;
    // The disks the agent came back with, if they differ, are the new lineage's disks.
    if let Some(r) = rec.reconfigured.take() {
        tracing::warn!(pair = %rec.pair_id, "the restart takes the agent's new disks: {}", describe(&rec, &r));
        rec.take_disks(r.offered);
    }
    rec.lineage = uuid::Uuid::new_v4();
    rec.epoch_floor = rec.epoch_floor.max(rec.committed).max(newest);
    rec.committed = 0;
    rec.lifecycle = lifecycle;
    rec.rewound = None;
    rec.stop_at = None;
    rec.agent_history_from = None;
    rec.restart = Some(RestartRecord {
        requested_unix_ms: now_ms(),
        full_copy: opts.full_copy,
        keep_points: opts.keep_points,
        kept_points: if opts.keep_points { points.len() as u64 } else { 0 },
    });
    let (store, pid, r2, wipe) = (sb.store.clone(), rec.pair_id.clone(), rec.clone(), !opts.keep_points);
    let deleted = blocking(move || store.restart_pair(pair_no, &pid, &r2, wipe)).await?;
    tracing::warn!(
        pair = %rec.pair_id, %old_lineage, new_lineage = %rec.lineage, deleted, kept = !wipe, full_copy = opts.full_copy,
        "replication restarted: a new baseline is copied"
    );
    h.install_rebased(&sb.store, &orig, rec, Some(PairOp::Restart))?;
    let mut rt = h.runtime.lock().expect("runtime");
    if wipe {
        rt.last_point = None;
        rt.points = 0;
    }
    rt.progress = Default::default();
    drop(rt);
    let installed = h.record.lock().expect("record").clone();
    follow_baseline(sb, h, &installed, deleted);
    Ok(deleted)
}

fn describe(rec: &PairRecord, r: &super::pair::ReconfiguredRecord) -> String {
    rec.disk_changes(&r.offered).iter().map(|c| c.describe()).collect::<Vec<_>>().join("; ")
}

/// A restart's baseline as a task: it runs in the agent's connections and ends when its point
/// commits (the restart record is cleared then), or when a newer restart replaces it.
fn follow_baseline(sb: &Arc<Standby>, h: &Arc<PairHandle>, rec: &PairRecord, deleted: u64) {
    let Some(requested) = rec.restart.as_ref().map(|r| r.requested_unix_ms) else { return };
    let first = format!(
        "new lineage {}: {} point(s) deleted{}; every chunk is copied again",
        rec.lineage,
        deleted,
        if rec.restart.as_ref().is_some_and(|r| r.keep_points) {
            " (old points kept until the baseline commits)"
        } else {
            ""
        }
    );
    let task = sb.tasks.start(TaskKind::Baseline, &rec.pair_id, "api", &first);
    let (sb, h, lineage, pair_no) = (sb.clone(), h.clone(), rec.lineage, rec.pair_no);
    task.follow(move || {
        let restart = h.record.lock().expect("record").restart.as_ref().map(|r| r.requested_unix_ms);
        match restart {
            // The new lineage's first point is its baseline (later ones may have followed).
            None => match sb.store.list_points(pair_no).map(|ps| ps.into_iter().find(|p| p.lineage == lineage)) {
                Ok(Some(p)) => Seen::Done(format!("baseline committed as point {} (cut {})", p.id, p.time)),
                Ok(None) => Seen::Failed("the restart ended without a baseline point (restarted again?)".into()),
                Err(e) => Seen::Failed(format!("the baseline committed, but its point cannot be listed: {e}")),
            },
            Some(r) if r != requested => Seen::Failed("replaced by a newer restart".into()),
            Some(_) => {
                let s = h.status();
                let message = match &s.stats.pass {
                    Some(p) => format!("{}: {} pass", s.state_label, p.kind),
                    None => format!("{}: waiting for the agent", s.state_label),
                };
                Seen::Running { percent: s.stats.progress_percent.min(99.9), message }
            }
        }
    });
}

/// Replay: the head goes back to `point` (later points are deleted) and the agent ships
/// again every chunk changed since. Returns the number of points deleted.
pub async fn replay(sb: &Arc<Standby>, h: &Arc<PairHandle>, point: &RecoveryPoint) -> Result<u64, OpError> {
    let lifecycle = h.record.lock().expect("record").lifecycle.apply(PairOp::Replay)?;
    let _guard = quiesce(h, "an operator replays the pair from an older point; reconnect to rewind").await?;
    let orig = h.record.lock().expect("record").clone();
    let mut rec = orig.clone();
    let lifecycle = rec.lifecycle.apply(PairOp::Replay).unwrap_or(lifecycle);
    let from = rec.committed;
    rec.lifecycle = lifecycle;
    rec.stop_at = None;
    if point.epoch < from {
        // The agent may hold an acknowledgement up to `from` (or an older rewind's `from`).
        let from = rec.rewound.map(|r| r.from.max(from)).unwrap_or(from);
        rec.rewound = Some(Rewound { to: point.epoch, from });
        rec.committed = point.epoch;
    }
    let (store, pair_no, pid, r2, to) = (sb.store.clone(), rec.pair_no, rec.pair_id.clone(), rec.clone(), point.epoch);
    let removed = blocking(move || store.rollback_pair(pair_no, &pid, &r2, to)).await?;
    tracing::warn!(
        pair = %rec.pair_id, to = point.epoch, from, points = removed.points, versions = removed.versions,
        "head rolled back for a replay; the agent ships again what changed since"
    );
    h.install_rebased(&sb.store, &orig, rec, Some(PairOp::Replay))?;
    let mut rt = h.runtime.lock().expect("runtime");
    rt.last_point = Some(point.clone());
    rt.points = rt.points.saturating_sub(removed.points);
    rt.progress = Default::default();
    Ok(removed.points)
}

/// Deletes the old lineage's points once the new baseline is committed (restart with
/// `keep_points_until_synced`). Also run at startup, should the standby have stopped between
/// the commit and the deletion.
pub async fn retire_old_lineage(sb: &Arc<Standby>, h: &Arc<PairHandle>) {
    let orig = h.record.lock().expect("record").clone();
    let mut rec = orig.clone();
    let Some(below) = rec.retire_below.take() else { return };
    let (store, pair_no, pid, r2) = (sb.store.clone(), rec.pair_no, rec.pair_id.clone(), rec.clone());
    match blocking(move || store.retire_below(pair_no, &pid, &r2, below)).await {
        Ok(removed) => {
            let id = rec.pair_id.clone();
            tracing::info!(pair = %id, below, points = removed.points, versions = removed.versions, "points of the old lineage deleted: the new baseline is complete");
            if let Err(e) = h.install_rebased(&sb.store, &orig, rec, None) {
                tracing::error!(pair = %id, "recording the old lineage's deletion: {e:?}");
            }
            let mut rt = h.runtime.lock().expect("runtime");
            rt.points = rt.points.saturating_sub(removed.points);
        }
        Err(e) => {
            tracing::error!(pair = %rec.pair_id, "deleting the old lineage's points: {e:?}; retried at the next start")
        }
    }
}

/// The newest point cut at or before `time_ms`.
pub fn point_at_or_before(points: &[RecoveryPoint], time_ms: u64) -> Option<&RecoveryPoint> {
    points.iter().filter(|p| p.time_unix_ms <= time_ms).max_by_key(|p| p.epoch)
}

/// Why a replay cannot start from a point: the agent's change history does not reach it, or
/// is not known. Each message names the way out.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The agent's change history begins after the point.
    #[error(
        "the agent's change history reaches back to epoch {from}, not to point {point}: it cannot tell what changed since. Use `drpair start PAIR --type reload` to copy everything again"
    )]
    TooShort { from: Epoch, point: Epoch },
    /// The agent has not said how far back its history reaches.
    #[error(
        "the agent has not reported how far its change history reaches (it has not connected since the standby started or since a restart), so a replay from point {point} cannot be checked; connect the agent first, or use `--type reload`"
    )]
    Unknown { point: Epoch },
}

impl HistoryError {
    /// An unknown history is known once the agent connects; a short one stays short.
    pub fn class(&self) -> ErrorClass {
        match self {
            HistoryError::TooShort { .. } => ErrorClass::Permanent,
            HistoryError::Unknown { .. } => ErrorClass::Transient,
        }
    }
}

/// Epochs a replay can reach: the agent's change history must reach back to the point.
pub fn change_history_reaches(history_from: Option<Epoch>, point: Epoch) -> Result<(), HistoryError> {
    match history_from {
        Some(h) if h <= point => Ok(()),
        Some(from) => Err(HistoryError::TooShort { from, point }),
        None => Err(HistoryError::Unknown { point }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_check_names_the_way_out() {
        assert!(change_history_reaches(Some(3), 3).is_ok());
        assert!(change_history_reaches(Some(0), 9).is_ok());
        let e = change_history_reaches(Some(7), 5).unwrap_err();
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = e.to_string();
        assert!(e.contains("epoch 7") && e.contains("point 5") && e.contains("reload"), "{e}");
        let unknown = change_history_reaches(None, 5).unwrap_err();
        assert_eq!(unknown.class(), ErrorClass::Transient, "known once the agent connects");
        assert!(unknown.to_string().contains("reload"));
    }
}
