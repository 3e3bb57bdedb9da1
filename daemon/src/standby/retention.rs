//! Retention of a pair's recovery points: which to keep (the pure plan of
//! `drpair-retention`, fed with the pins only the standby knows), pruning the rest, and
//! reclaiming the space nothing refers to any more.

use super::Standby;
use super::pair::results::{PointMarkRecord, PruneRecord, ReclaimRecord};
use super::pair::{OpError, PairHandle, RetentionDefaults};
use super::tasks::TaskHandle;
use crate::timefmt::now_ms;
use drpair_retention::{Mark, Pin, PointInfo, Policy};
use drpair_store::Store;
use drpair_types::{PairId, PointKind, PruneReport, RecoveryPoint, RetentionView, TaskKind};
use std::collections::HashSet;
use std::sync::Arc;

/// Why a prune cannot run now.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The pair's state forbids it (restart or dump workflow in progress): 409.
    #[error("{0}")]
    Busy(String),
    /// The store failed: 500.
    #[error("the store failed: {0}")]
    Store(String),
}

/// The policy the pair follows: its own, or the standby's default.
pub fn policy_of(sb: &Standby, h: &PairHandle) -> (Policy, bool) {
    match &h.record.lock().expect("record").retention {
        Some(p) => (p.clone(), false),
        None => (sb.retention.clone(), true),
    }
}

/// The pair's retention as the API shows it.
pub fn view(sb: &Standby, h: &PairHandle) -> RetentionView {
    let d = RetentionDefaults { policy: sb.retention.clone(), prune_interval: sb.prune_interval };
    view_of(&h.record.lock().expect("record"), &d)
}

/// [`view`] from the record and the defaults.
pub fn view_of(rec: &super::pair::PairRecord, d: &RetentionDefaults) -> RetentionView {
    let (policy, is_default) = match &rec.retention {
        Some(p) => (p, false),
        None => (&d.policy, true),
    };
    RetentionView {
        grid: policy.grid.to_string(),
        keep_last: policy.keep_last,
        description: describe(policy),
        is_default,
        prune_interval_seconds: d.prune_interval.as_secs(),
        last_prune: rec.last_prune.as_ref().map(PruneRecord::to_view),
    }
}

fn describe(p: &Policy) -> String {
    match p.keep_last {
        0 => p.grid.describe(),
        n => format!("{}; the newest {n} always", p.grid.describe()),
    }
}

/// What retention sees of each point: the pins. The newest point is kept by the plan itself.
pub fn point_infos(points: &[RecoveryPoint], drills: &HashSet<u64>) -> Vec<PointInfo> {
    // The first point of each lineage is its baseline: every later point of it builds on it.
    let mut seen_lineages = HashSet::new();
    points
        .iter()
        .map(|p| {
            let first_of_lineage = seen_lineages.insert(p.lineage);
            let pin = if p.pinned {
                Some(Pin::Operator)
            } else if drills.contains(&p.id) {
                Some(Pin::Drill)
            } else if p.kind == PointKind::DumpMarker {
                Some(Pin::DumpMarker)
            } else if p.kind == PointKind::Baseline || first_of_lineage {
                Some(Pin::Baseline)
            } else {
                None
            };
            PointInfo { id: p.id, time_unix_ms: p.time_unix_ms, pin }
        })
        .collect()
}

/// Plans and (unless `dry_run`) applies the pair's retention, then reclaims space. Blocking.
pub fn prune(sb: &Arc<Standby>, h: &PairHandle, dry_run: bool, scheduled: bool) -> Result<PruneReport, PruneError> {
    let (policy, _) = policy_of(sb, h);
    run(sb, h, &policy, dry_run, scheduled)
}

/// What `policy` would remove and keep (and why) of the pair's points now: a dry run of a
/// policy the pair does not follow yet. Changes nothing, not even the record of the last
/// prune, and is no task. Blocking.
pub fn preview(sb: &Arc<Standby>, h: &PairHandle, policy: &Policy) -> Result<PruneReport, PruneError> {
    run(sb, h, policy, true, false)
}

/// [`prune`] with `policy`.
fn run(
    sb: &Arc<Standby>,
    h: &PairHandle,
    policy: &Policy,
    dry_run: bool,
    scheduled: bool,
) -> Result<PruneReport, PruneError> {
    let started = now_ms();
    let (pair_id, pair_no, busy) = {
        let rec = h.record.lock().expect("record");
        let busy = if rec.restart.is_some() {
            Some("a restart is in progress: its old points go when the new baseline completes")
        } else if rec.lifecycle.state.in_dump_workflow() {
            Some("the third-party dump workflow is in progress")
        } else {
            None
        };
        (rec.pair_id.clone(), rec.pair_no, busy)
    };
    if let Some(why) = busy.filter(|_| !dry_run) {
        return Err(PruneError::Busy(format!("pair '{pair_id}' cannot be pruned now: {why}")));
    }
    let store_err = |e: drpair_store::StoreError| PruneError::Store(e.to_string());
    let points = sb.store.list_points(pair_no).map_err(store_err)?;
    let drills = h.runtime.lock().expect("runtime").drill_points.clone();
    let marks = drpair_retention::plan(&point_infos(&points, &drills), policy, now_ms());
    let time_of = |id: u64| points.iter().find(|p| p.id == id).map(|p| p.time.clone()).unwrap_or_default();
    let to_mark = |m: &Mark| PointMarkRecord { id: m.id, time: time_of(m.id), reason: m.reason.to_string() };
    let removed: Vec<PointMarkRecord> = marks.iter().filter(|m| !m.keep).map(to_mark).collect();
    let kept: Vec<PointMarkRecord> = marks.iter().filter(|m| m.keep).map(to_mark).collect();
    let mut report = PruneRecord {
        pair_id: pair_id.clone(),
        dry_run,
        scheduled,
        started_unix_ms: started,
        finished_unix_ms: started,
        points_before: points.len() as u64,
        points_kept: kept.len() as u64,
        removed,
        kept,
        versions_deleted: 0,
        reclaim: None,
        task: None,
    };
    if !dry_run {
        // A prune that changes something is a task; a scheduled one with nothing to remove
        // is not (it would crowd the task list every few minutes).
        let task = (!scheduled || !report.removed.is_empty()).then(|| {
            let first = format!(
                "retention plan: remove {} of {} point(s), keep {}",
                report.removed.len(),
                report.points_before,
                report.kept.len()
            );
            sb.tasks.start(TaskKind::Prune, &pair_id, if scheduled { "schedule" } else { "api" }, &first)
        });
        report.task = task.as_ref().map(|t| t.id());
        let applied = apply(sb, h, &pair_id, pair_no, &mut report, task.as_ref());
        if let Some(t) = task {
            match &applied {
                Ok(()) => t.ok(format!(
                    "removed {} point(s) ({} version(s)), kept {}",
                    report.removed.len(),
                    report.versions_deleted,
                    report.points_kept
                )),
                Err(e) => t.fail(e.to_string()),
            }
        }
        applied?;
    }
    report.finished_unix_ms = now_ms();
    Ok(report.to_view())
}

/// Removes the planned points (those a drill pinned since the plan are kept), reclaims their
/// space and records the report. Blocking.
fn apply(
    sb: &Arc<Standby>,
    h: &PairHandle,
    pair_id: &PairId,
    pair_no: u32,
    report: &mut PruneRecord,
    task: Option<&TaskHandle>,
) -> Result<(), PruneError> {
    let store_err = |e: drpair_store::StoreError| PruneError::Store(e.to_string());
    {
        // A drill may have pinned a point since the plan: taken under the drills' pin gate,
        // so a drill starting now either sees its point gone or keeps it from this prune.
        let _gate = super::drill::PIN_GATE.lock().unwrap_or_else(|e| e.into_inner());
        let pinned_now = h.runtime.lock().expect("runtime").drill_points.clone();
        let (late, removed): (Vec<PointMarkRecord>, Vec<PointMarkRecord>) =
            report.removed.drain(..).partition(|m| pinned_now.contains(&m.id));
        report.removed = removed;
        let late_count = late.len();
        report.kept.extend(late.into_iter().map(|m| PointMarkRecord { reason: "pinned_drill".into(), ..m }));
        report.points_kept = report.kept.len() as u64;
        let ids: Vec<u64> = report.removed.iter().map(|m| m.id).collect();
        if let Some(t) = task {
            if late_count > 0 {
                t.step(&format!("kept {late_count} point(s) a drill pinned since the plan"));
            }
            t.step(&format!("removing point(s) {ids:?}"));
        }
        let out = sb.store.remove_points(pair_no, &ids).map_err(store_err)?;
        report.versions_deleted = out.versions;
        if out.points > 0 || out.versions > 0 {
            if let Some(t) = task {
                t.step(&format!(
                    "{} point(s) and {} version(s) removed; reclaiming unreferenced chunks",
                    out.points, out.versions
                ));
            }
            report.reclaim = Some(reclaim(&sb.store).map_err(store_err)?);
            let left = sb.store.list_points(pair_no).map_err(store_err)?.len() as u64;
            h.runtime.lock().expect("runtime").points = left;
            super::metrics::pruned(&pair_id, out.points, report.reclaim.as_ref());
            tracing::info!(
                pair = %pair_id, removed = out.points, versions = out.versions, kept = left,
                interrupted = out.interrupted, "pruned recovery points"
            );
        }
        report.finished_unix_ms = now_ms();
        h.update(&sb.store, |rec| {
            rec.last_prune = Some(report.clone());
            Ok::<_, OpError>(())
        })
        .map_err(|e| PruneError::Store(format!("{e:?}")))?;
    }
    Ok(())
}

/// Reclaims the chunks nothing refers to and, when some went (now, or before a crash
/// interrupted the compaction that followed), compacts so that their space really comes
/// back. With chunks on an object store, then rewrites the sparse packs and deletes the
/// orphan ones (`Store::tidy_packs`): a failure there (the object store down) is reported in
/// `packs.error` and logged, not returned, since the reclaim itself is done and the next one
/// tidies again. Blocking.
pub fn reclaim(store: &Store) -> Result<ReclaimRecord, drpair_store::StoreError> {
    let out = store.reclaim()?;
    if out.chunks_deleted > 0 || store.compaction_owed()? {
        store.compact_chunks()?;
    }
    let on_packs = store.pack_stats().is_some();
    let packs = |t: drpair_store::PackTidyOutcome, error: Option<String>| drpair_types::PackReclaimReport {
        packs_emptied: out.packs_emptied,
        packs_rewritten: t.packs_rewritten,
        packs_written: t.packs_written,
        chunks_moved: t.chunks_moved,
        bytes_moved: t.bytes_moved,
        orphans_deleted: t.orphans_deleted,
        error,
    };
    let (tidy_seconds, packs) = match store.tidy_packs() {
        Ok(t) => (t.map_or(0.0, |t| t.seconds), t.map(|t| packs(t, None))),
        Err(e) => {
            tracing::warn!(error = %e, "rewriting sparse packs and sweeping orphans stopped; the next reclaim tries again");
            (0.0, on_packs.then(|| packs(drpair_store::PackTidyOutcome::default(), Some(e.to_string()))))
        }
    };
    Ok(ReclaimRecord {
        candidates_checked: out.candidates,
        chunks_deleted: out.chunks_deleted,
        bytes_freed: out.bytes_freed,
        seconds: out.seconds + tidy_seconds,
        packs,
    })
}

/// Finishes prune sweeps a crash interrupted, then reclaims. Blocking; at start-up.
pub fn recover_interrupted(store: &Store) {
    match store.pairs_with_sweeps() {
        Ok(pairs) => {
            for pair_no in pairs {
                if let Err(e) = store.finish_sweeps(pair_no) {
                    tracing::warn!(pair_no, "finishing an interrupted prune: {e}");
                }
            }
        }
        Err(e) => tracing::warn!("listing interrupted prunes: {e}"),
    }
    if let Err(e) = reclaim(store) {
        tracing::warn!("space reclaim at start-up: {e}");
    }
}
