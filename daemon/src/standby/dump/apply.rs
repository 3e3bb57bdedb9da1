//! The end of the dump workflow: `standby resume-apply` (the dump becomes a point), plain
//! `resume` (abandon), `resume --resync --reinit --force` (a full restart), the verification
//! of the loaded dump at the first commit after it, and what a standby's restart cut short.

use super::errors::{FlowError, Res};
use super::flow::{dump_of, from_op, internal, not_now, record, refused, update};
use crate::standby::Standby;
use crate::standby::control::{self, RestartOpts};
use crate::standby::pair::{PairHandle, PairRecord};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::PairOp;
use drpair_types::{DumpLoadState, DumpStep, DumpVerification, Epoch, PairState, PointKind, PointSizes, RecoveryPoint};
use drpair_wire::SourceCheck;
use std::sync::Arc;

/// `standby resume-apply`: every disk is loaded; the dump becomes recovery point *D* (kind
/// `dump-marker`) and the agent, reconnecting, ships every chunk changed after *D* and
/// compares every chunk with the dump before the pair is declared replicating.
pub async fn resume_apply(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<RecoveryPoint> {
    let before = record(h);
    if before.lifecycle.state != PairState::ApplySuspended {
        let why = format!("apply is not suspended by a dump marker (the pair is {})", before.lifecycle.state.label());
        return Err(not_now(&before, &why));
    }
    if let Some((n, _)) = &h.runtime.lock().expect("runtime").dump_load {
        return Err(not_now(&before, &format!("the dump of disk {n} is still being loaded")));
    }
    if let Some(n) = before.dump.as_ref().and_then(|d| d.first_unloaded()) {
        let state = before.dump.as_ref().map(|d| d.disks[n].state).unwrap_or(DumpLoadState::Pending);
        return Err(not_now(&before, &format!("the dump of disk {n} is not loaded ({state:?})")));
    }
    let _guard = control::quiesce(h, "apply resumed after a dump; reconnect to ship the changes made since")
        .await
        .map_err(|e| from_op(&before, e))?;
    let orig = record(h);
    let mut rec = orig.clone();
    let id = rec.pair_id.clone();
    let lifecycle = rec
        .lifecycle
        .apply(PairOp::PointCommitted)
        .and_then(|l| l.apply(PairOp::ResumeApply))
        .map_err(|r| refused(&before, r))?;
    let d = dump_of(&mut rec)?;
    let marker = d.marker.clone().ok_or_else(|| internal("apply is suspended without a dump marker"))?;
    let stats: Vec<_> = d.disks.iter().filter_map(|l| l.stats.clone()).collect();
    let now = now_ms();
    let point = RecoveryPoint {
        id: marker.epoch,
        pair_id: id.clone(),
        epoch: marker.epoch,
        lineage: rec.lineage,
        time: marker.time.clone(),
        time_unix_ms: marker.time_unix_ms,
        committed_unix_ms: now,
        kind: PointKind::DumpMarker,
        consistency: marker.consistency,
        pinned: false,
        verified_at: None,
        tested_at: None,
        sizes: PointSizes {
            logical_bytes: rec.disks.iter().map(|d| d.geometry.size_bytes).sum(),
            changed_chunks: stats.iter().map(|s| s.entries).sum(),
            changed_bytes: stats.iter().map(|s| s.raw_bytes).sum(),
            zero_chunks: stats.iter().map(|s| s.zero).sum(),
            dedup_chunks: stats.iter().map(|s| s.dedup).sum(),
            shipped_bytes: 0,
            stored_bytes: stats.iter().map(|s| s.stored_bytes).sum(),
        },
        quiesce: marker.quiesce.clone(),
        full_pass: true,
        damage: None,
        read_window_ms: None,
        window_exceeded: false,
    };
    let d = dump_of(&mut rec)?;
    d.step = DumpStep::Verifying;
    d.point = Some(marker.epoch);
    d.note(
        &id,
        format!(
            "apply resumed: the dump is recovery point {} (kind dump-marker); the agent ships every chunk changed after epoch {} and compares every chunk with the dump; the pair is declared replicating once that is committed",
            marker.epoch, marker.epoch
        ),
    );
    rec.lifecycle = lifecycle;
    rec.committed = marker.epoch;
    rec.rewound = None;
    rec.agent_history_from = None;
    // Persisted and installed under the record's lock. The connection is held off, so only an
    // API call can have changed the record since `orig`: what it changed is kept, unless it
    // changed the pair's state, which this step was decided on.
    let (store, pair_no, p2, pid, handle) = (sb.store.clone(), rec.pair_no, point.clone(), id.clone(), h.clone());
    tokio::task::spawn_blocking(move || {
        let mut live = handle.record.lock().expect("record");
        if live.lifecycle != orig.lifecycle {
            return Err(not_now(&live, "the pair's state changed while apply was resuming"));
        }
        let mut merged = crate::standby::rebase::rebase(&orig, rec, &live, None);
        merged.last_successes.note_point(&p2);
        store.commit_point(pair_no, &p2, &pid, &merged).map_err(internal)?;
        *live = merged;
        Ok(())
    })
    .await
    .map_err(internal)??;
    {
        let mut rt = h.runtime.lock().expect("runtime");
        rt.last_point = Some(point.clone());
        rt.points += 1;
        rt.progress = Default::default();
    }
    crate::standby::metrics::committed(&id, &point);
    Ok(point)
}

/// Plain `resume` of a pair in the dump workflow: the workflow is abandoned (loaded dump
/// versions discarded) and shipping continues from the recovery checkpoint: the agent's
/// change history covers everything since.
pub async fn abandon(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<String> {
    let before = record(h);
    before.lifecycle.apply(PairOp::Resume).map_err(|r| refused(&before, r))?;
    if let Some((n, _)) = &h.runtime.lock().expect("runtime").dump_load {
        return Err(not_now(&before, &format!("the dump of disk {n} is being loaded; wait for it, then resume")));
    }
    let _guard = control::quiesce(h, "the dump workflow was abandoned; reconnect to ship from the checkpoint")
        .await
        .map_err(|e| from_op(&before, e))?;
    let (store, pair_no, after) = (sb.store.clone(), before.pair_no, before.committed);
    let discarded = control::blocking(move || store.discard_versions_after(pair_no, after))
        .await
        .map_err(|e| from_op(&before, e))?;
    let id = update(sb, h, |rec| {
        rec.lifecycle = rec.lifecycle.apply(PairOp::Resume).map_err(|r| refused(rec, r))?;
        let id = rec.pair_id.clone();
        let d = dump_of(rec)?;
        d.step = DumpStep::Abandoned;
        d.note(
            &id,
            format!(
                "dump workflow abandoned by `drpair resume`: {discarded} loaded chunk version(s) discarded; shipping continues from the recovery checkpoint (epoch {after})"
            ),
        );
        Ok(id)
    })?;
    Ok(format!("pair '{id}': dump workflow abandoned; resumed from its recovery checkpoint (epoch {after})"))
}

/// `resume --resync --reinit --force`: a full restart (new lineage, every point deleted,
/// everything copied again) ends the workflow. Returns the restart's message and the number
/// of points deleted.
pub async fn reinit(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<u64> {
    let before = record(h);
    if !before.lifecycle.state.in_dump_workflow() {
        return Err(FlowError::State(format!(
            "pair '{}' is {}, not in the dump workflow: `--resync --reinit` re-initialises a suspended pair; `drpair restart {}` copies everything again",
            before.pair_id,
            before.lifecycle.state.label(),
            before.pair_id
        )));
    }
    if h.runtime.lock().expect("runtime").dump_load.is_some() {
        return Err(not_now(&before, "a dump is being loaded; wait for it"));
    }
    let deleted = control::restart(sb, h, RestartOpts::default()).await.map_err(|e| from_op(&before, e))?;
    update(sb, h, |rec| {
        let (id, lineage) = (rec.pair_id.clone(), rec.lineage);
        if let Some(d) = rec.dump.as_mut() {
            d.step = DumpStep::Abandoned;
            d.warn(
                &id,
                format!(
                    "re-initialised (`resume --resync --reinit --force`): {deleted} recovery point(s) deleted; every chunk is copied again in lineage {lineage}"
                ),
            );
        }
        Ok(())
    })?;
    Ok(deleted)
}

/// Called when the standby commits an epoch of a pair whose dump is being verified: the
/// epoch's full pass compared every chunk with the dump. Records the result; returns the
/// dump point and whether it matched.
pub fn on_verified(
    rec: &mut PairRecord,
    epoch: Epoch,
    full_pass: bool,
    chunks: u64,
    check: Option<&SourceCheck>,
) -> Option<(Epoch, bool)> {
    let id = rec.pair_id.clone();
    let d = rec.dump.as_mut().filter(|d| d.step == DumpStep::Verifying && full_pass)?;
    let dump_epoch = d.point?;
    let mismatched = check.map_or(0, |c| c.mismatched);
    d.verification = Some(DumpVerification {
        epoch,
        chunks_compared: check.map_or(0, |c| c.compared),
        chunks_shipped: chunks,
        mismatched_chunks: mismatched,
        mismatched_sample: check.map_or(vec![], |c| c.sample.iter().map(|&(d, c)| [u64::from(d), c]).collect()),
        verified_at: rfc3339_ms(now_ms()),
    });
    d.step = DumpStep::Done;
    match check {
        Some(c) if c.mismatched > 0 => {
            let first = c.sample.first().map(|(d, c)| format!(" (first: disk {d} chunk {c})")).unwrap_or_default();
            d.warn(
                &id,
                format!(
                    "verification: the loaded dump does NOT match the dump point: {} chunk(s) differ from the source although the agent saw no change after epoch {dump_epoch}{first}; the dump was taken at another moment. They were repaired from the source in point {epoch}; point {dump_epoch} holds the dump as loaded and is not marked verified",
                    c.mismatched
                ),
            );
            Some((dump_epoch, false))
        }
        Some(c) => {
            d.note(
                &id,
                format!(
                    "verification: every chunk ({}) compared with the source matches the dump or changed after it; {chunks} chunk(s) shipped in point {epoch}; the pair is replicating",
                    c.compared
                ),
            );
            Some((dump_epoch, true))
        }
        None => {
            d.note(
                &id,
                format!(
                    "verification: every chunk was compared with the source and the differing ones shipped in point {epoch} (the agent could not tell changes after the dump point from dump mismatches); the pair is replicating"
                ),
            );
            Some((dump_epoch, false))
        }
    }
}

/// At start-up: a load cut short by a stop is recorded as failed (it is loaded again).
pub fn after_restart(rec: &mut PairRecord) -> bool {
    let id = rec.pair_id.clone();
    let Some(d) = rec.dump.as_mut() else { return false };
    let mut changed = false;
    for (i, l) in d.disks.iter_mut().enumerate() {
        if l.state == DumpLoadState::Loading {
            l.state = DumpLoadState::Failed;
            l.error = Some("the standby stopped during the load".into());
            changed = true;
            tracing::warn!(pair = %id, disk = i, "dump load interrupted by a standby stop: load it again");
        }
    }
    changed
}
