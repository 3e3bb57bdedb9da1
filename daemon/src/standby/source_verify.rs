//! Online verify against the source (`verify-source`): the standby asks the connected agent
//! to compare every chunk of its disks with the newest recovery point in its next epoch. That
//! pass is a differential resync run on request: the agent reports the chunks that differ
//! although its change map recorded no change after the point (mismatches: writes its
//! tracker never saw, or damage on either side) and ships them with every other differing
//! chunk, so the point that commits the pass (the *repair point*) equals the source again.
//!
//! Invariants kept here:
//! - at most one verify per pair is requested or running; a second request is refused (409);
//! - a verify is only requested of a replicating pair with a connected agent, and changes
//!   nothing when refused;
//! - a verify ends exactly once: done when its epoch is committed (its result is persisted in
//!   the same synced batch as the repair point), failed when the connection ends first or the
//!   standby restarts meanwhile, or when the agent's tracker lost events (inconclusive);
//! - the result is logged in plain words; a mismatch is a warning.

use super::Standby;
use super::pair::results::{MismatchedChunkRecord, SourceVerifyRecord, SourceVerifyState};
use super::pair::{OpError, PairHandle, PairRecord, PairRuntime};
use super::tasks::Seen;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::{Epoch, PairId, PairState, SOURCE_VERIFY_SAMPLE, SourceVerifyStatus, TaskId, TaskKind};
use drpair_wire::{PassKind, Progress, StandbyMsg, VerifyReport, encode};
use std::sync::Arc;

/// Why an online verify cannot be requested now.
#[derive(Debug)]
pub enum VerifyError {
    /// The pair's state does not allow it (409); the message says why and what to do.
    State(String),
    /// The store failed (500).
    Internal(String),
}

impl From<OpError> for VerifyError {
    fn from(e: OpError) -> Self {
        VerifyError::Internal(format!("{e:?}"))
    }
}

/// Why the pair cannot be verified now, if it cannot: another verify, the pair's state, the
/// agent's connection (in that order). Status lists `verify_source` as allowed when none.
pub fn refusal(rec: &PairRecord, connected: bool) -> Option<String> {
    let id = &rec.pair_id;
    if let Some(v) = rec.source_verify.as_ref().filter(|v| v.state.is_active()) {
        return Some(format!(
            "pair '{id}': an online verify is already {} (requested at {}); wait for its result (GET /api/v1/pairs/{id}/verify-source)",
            v.state.label(),
            rfc3339_ms(v.requested_unix_ms)
        ));
    }
    let l = &rec.lifecycle;
    let label = l.state.label();
    let why = if l.state.in_dump_workflow() || l.verifying_dump {
        format!("it is in the third-party dump workflow ({label}); verify it once it is replicating again")
    } else if matches!(l.state, PairState::Initiating | PairState::Paused | PairState::Stopped) {
        format!("it is {label}: nothing is shipped, so nothing can be repaired; resume it first")
    } else if l.restarting || !l.has_baseline || rec.committed == 0 || l.state == PairState::InitialSync {
        format!("it is {label} with no complete recovery point yet: there is nothing to compare the source with")
    } else if l.state == PairState::Rescanning {
        "it is already comparing every chunk with the standby (a differential resync); ask again once it is replicating"
            .into()
    } else if l.state == PairState::Disconnected || !connected {
        "the agent is not connected; the verify is run by the agent".into()
    } else if !matches!(l.state, PairState::Replicating | PairState::FailingBack) {
        format!("it is {label}, not replicating")
    } else {
        return None;
    };
    Some(format!("pair '{id}' cannot be verified against the source now: {why}"))
}

/// `POST …/verify-source`: asks the agent for a verify pass; returns the request as recorded.
pub async fn request(sb: &Standby, h: &Arc<PairHandle>) -> Result<SourceVerifyStatus, VerifyError> {
    let session = h.runtime.lock().expect("runtime").session.clone();
    // Checked and recorded under the record's lock: of two requests at once, one is refused.
    let (id, status) = h.update(&sb.store, |rec| {
        if let Some(why) = refusal(rec, session.is_some()) {
            return Err(VerifyError::State(why));
        }
        let status = requested(
            now_ms(),
            format!(
                "asked the agent to read every chunk and compare it with the newest point ({}); differing chunks are shipped in the same pass",
                rec.committed
            ),
        );
        rec.source_verify = Some(status.clone());
        Ok((rec.pair_id.clone(), status))
    })?;
    let session = session.expect("checked above");
    let task = sb.tasks.start(TaskKind::SourceVerify, &id, "api", &status.message);
    let status = record_task(sb, h, &id, status, task.id());
    let request_id = sb.next_request();
    tracing::info!(pair = %id, request_id, "online verify against the source requested: {}", status.message);
    let sent = session.tx.send(encode(&StandbyMsg::VerifySource { request_id }).expect("encode")).await.is_ok();
    // The connection may have ended meanwhile: then its end did (or will) fail this request.
    let current = h.runtime.lock().expect("runtime").session.as_ref().is_some_and(|s| s.conn_id == session.conn_id);
    if !sent || !current {
        fail(sb, h, "the agent disconnected before the request reached it");
        task.fail("the agent disconnected before the request reached it");
        return Err(VerifyError::State(format!(
            "pair '{id}': the agent disconnected before the verify request reached it; ask again once it is connected"
        )));
    }
    let (h2, mine) = (h.clone(), task.id());
    task.follow(move || seen(&h2, mine));
    Ok(status.to_view())
}

/// Puts the task's id into the recorded request.
fn record_task(
    sb: &Standby,
    h: &PairHandle,
    id: &PairId,
    mut status: SourceVerifyRecord,
    task: TaskId,
) -> SourceVerifyRecord {
    status.task = Some(task);
    let saved = h.update(&sb.store, |rec| {
        if let Some(v) = rec.source_verify.as_mut().filter(|v| v.requested_unix_ms == status.requested_unix_ms) {
            v.task = Some(task);
        }
        Ok::<_, OpError>(())
    });
    if let Err(e) = saved {
        tracing::warn!(pair = %id, "recording the online verify's task: {e:?}");
    }
    status
}

/// The online verify of task `mine` as its task follows it.
fn seen(h: &PairHandle, mine: TaskId) -> Seen {
    let rec = h.record.lock().expect("record").clone();
    let v = live(&rec, &h.runtime.lock().expect("runtime"));
    match v {
        Some(v) if v.task == Some(mine) => match v.state {
            SourceVerifyState::Done => Seen::Done(v.message),
            SourceVerifyState::Failed => Seen::Failed(v.message),
            _ => Seen::Running { percent: v.progress_percent, message: v.message },
        },
        _ => Seen::Failed(
            "the request was replaced before its end was seen (a restart of the pair or a newer request)".into(),
        ),
    }
}

/// The agent reported progress: a verify pass beginning moves the request to running, against
/// the newest point (the one whose digests the agent compares with).
pub fn on_progress(sb: &Standby, h: &PairHandle, p: &Progress) {
    if p.pass != Some(PassKind::Verify) {
        return;
    }
    let id = h.record.lock().expect("record").pair_id.clone();
    let started = h.update(&sb.store, |rec| {
        let against = rec.committed;
        let Some(v) = rec.source_verify.as_mut().filter(|v| v.state == SourceVerifyState::Requested) else {
            return Ok(None);
        };
        v.state = SourceVerifyState::Running;
        v.against_point = Some(against);
        v.message = format!("the agent is reading every chunk and comparing it with point {against}");
        Ok::<_, OpError>(Some(against))
    });
    match started {
        Ok(Some(against)) => tracing::info!(
            pair = %id, against, "online verify started: the agent compares every chunk with point {against}"
        ),
        Ok(None) => {}
        Err(e) => tracing::error!(pair = %id, "recording the online verify's start: {e:?}"),
    }
}

/// The epoch that ends a verify pass is being committed as point `point` (`shipped` chunks):
/// records the result in `rec` (persisted with the point). Returns the finished verify, to
/// [`report`] once the commit succeeded.
pub fn on_committed(
    rec: &mut PairRecord,
    report: &VerifyReport,
    point: Epoch,
    shipped: u64,
) -> Option<SourceVerifyRecord> {
    let id = rec.pair_id.clone();
    let Some(v) = rec.source_verify.as_mut().filter(|v| v.state.is_active()) else {
        tracing::warn!(pair = %id, point, request_id = report.request_id, "a verify pass ended that no request is waiting for; its chunks are committed as usual");
        return None;
    };
    v.finished_unix_ms = Some(now_ms());
    v.progress_percent = 100.0;
    v.shipped_chunks = shipped;
    v.repair_point = Some(point);
    match &report.result {
        Ok(c) => {
            v.state = SourceVerifyState::Done;
            v.against_point = Some(c.against);
            v.chunks_compared = c.compared;
            v.mismatched_chunks = c.mismatched;
            v.sample = c
                .sample
                .iter()
                .take(SOURCE_VERIFY_SAMPLE)
                .map(|&(disk, chunk)| MismatchedChunkRecord { disk, chunk })
                .collect();
            v.message = if c.mismatched == 0 {
                format!(
                    "every chunk ({}) matches point {} or changed after it; {shipped} changed chunk(s) shipped in point {point}",
                    c.compared, c.against
                )
            } else {
                let first = c.sample.first().map(|(d, c)| format!(" (first: disk {d} chunk {c})")).unwrap_or_default();
                format!(
                    "{} chunk(s) differed from point {} although the agent recorded no change to them{first}: written behind the tracker's back, or damaged; repaired from the source in point {point} ({shipped} chunk(s) shipped), which equals the source again",
                    c.mismatched, c.against
                )
            };
        }
        Err(why) => {
            v.state = SourceVerifyState::Failed;
            v.message = format!(
                "inconclusive: {why}, so changes cannot be told from mismatches; every chunk that differed from the point was shipped in point {point}. Ask again"
            );
        }
    }
    Some(v.clone())
}

/// Logs and counts a verify that ended with its point committed.
pub fn report(pair: &PairId, v: &SourceVerifyRecord) {
    let sample: Vec<String> = v.sample.iter().map(|c| format!("disk {} chunk {}", c.disk, c.chunk)).collect();
    match v.state {
        SourceVerifyState::Done if v.mismatched_chunks > 0 => tracing::warn!(
            pair = %pair, against = ?v.against_point, repair_point = ?v.repair_point, mismatched = v.mismatched_chunks,
            compared = v.chunks_compared, shipped = v.shipped_chunks, sample = ?sample, "online verify: {}", v.message
        ),
        SourceVerifyState::Done => tracing::info!(
            pair = %pair, against = ?v.against_point, repair_point = ?v.repair_point, compared = v.chunks_compared,
            shipped = v.shipped_chunks, "online verify: {}", v.message
        ),
        _ => tracing::warn!(pair = %pair, repair_point = ?v.repair_point, "online verify failed: {}", v.message),
    }
    super::metrics::source_verify_finished(pair, result_label(v));
}

/// The `result` label of `drpair_source_verify_runs_total`.
fn result_label(v: &SourceVerifyRecord) -> &'static str {
    match v.state {
        SourceVerifyState::Done if v.mismatched_chunks > 0 => "mismatched",
        SourceVerifyState::Done => "matched",
        _ => "failed",
    }
}

/// Ends the pair's verify, if one is requested or running, as failed because `why`.
pub fn fail(sb: &Standby, h: &PairHandle, why: &str) {
    let id = h.record.lock().expect("record").pair_id.clone();
    let failed = h.update(&sb.store, |rec| {
        let Some(v) = rec.source_verify.as_mut().filter(|v| v.state.is_active()) else { return Ok(()) };
        mark_failed(v, why);
        // Logged and counted before anyone can see the verify failed.
        report(&id, v);
        Ok::<_, OpError>(())
    });
    if let Err(e) = failed {
        tracing::error!(pair = %id, "recording the online verify's failure: {e:?}");
    }
}

fn mark_failed(v: &mut SourceVerifyRecord, why: &str) {
    v.state = SourceVerifyState::Failed;
    v.finished_unix_ms = Some(now_ms());
    v.message = format!("{why}; nothing was concluded (chunks already shipped are committed as usual). Ask again");
}

/// At start-up: a verify the standby stopped during is recorded as failed. Returns whether
/// the record changed.
pub fn after_restart(rec: &mut PairRecord) -> bool {
    let Some(v) = rec.source_verify.as_mut().filter(|v| v.state.is_active()) else { return false };
    mark_failed(v, "the standby restarted during the online verify");
    tracing::warn!(pair = %rec.pair_id, "online verify failed: the standby restarted during it");
    true
}

/// The verify as status shows it.
pub fn status(rec: &PairRecord, rt: &PairRuntime) -> Option<SourceVerifyStatus> {
    live(rec, rt).as_ref().map(SourceVerifyRecord::to_view)
}

/// The record's verify, with live progress while the pass runs.
fn live(rec: &PairRecord, rt: &PairRuntime) -> Option<SourceVerifyRecord> {
    let mut v = rec.source_verify.clone()?;
    let p = &rt.progress;
    if v.state == SourceVerifyState::Running && p.pass == Some(PassKind::Verify) && p.chunks_total > 0 {
        v.chunks_compared = p.chunks_done;
        v.progress_percent = ((p.chunks_done as f64 * 1000.0 / p.chunks_total as f64).round() / 10.0).min(100.0);
    }
    Some(v)
}

/// A verify just requested at `at_ms`, nothing compared yet.
fn requested(at_ms: u64, message: String) -> SourceVerifyRecord {
    SourceVerifyRecord {
        state: SourceVerifyState::Requested,
        requested_unix_ms: at_ms,
        finished_unix_ms: None,
        against_point: None,
        progress_percent: 0.0,
        chunks_compared: 0,
        mismatched_chunks: 0,
        shipped_chunks: 0,
        sample: vec![],
        repair_point: None,
        message,
        task: None,
    }
}

/// A verify just requested, for unit tests.
#[cfg(test)]
pub(crate) fn requested_for_tests() -> SourceVerifyRecord {
    requested(1, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_wire::SourceCheck;

    fn record(state: PairState) -> PairRecord {
        crate::standby::pair::test_record(state, 5)
    }

    fn requested() -> SourceVerifyRecord {
        super::requested_for_tests()
    }

    #[test]
    fn only_a_connected_replicating_pair_without_a_running_verify_is_verified() {
        let rt = true;
        assert_eq!(refusal(&record(PairState::Replicating), rt), None);
        for (state, words) in [
            (PairState::Paused, "resume it first"),
            (PairState::Stopped, "resume it first"),
            (PairState::Initiating, "resume it first"),
            (PairState::Rescanning, "differential resync"),
            (PairState::Disconnected, "not connected"),
            (PairState::Suspended, "dump workflow"),
            (PairState::ApplySuspended, "dump workflow"),
        ] {
            let why = refusal(&record(state), rt).unwrap_or_else(|| panic!("{state:?} was not refused"));
            assert!(why.contains(words), "{state:?}: {why}");
        }
        let mut initial = record(PairState::InitialSync);
        initial.lifecycle.has_baseline = false;
        initial.committed = 0;
        assert!(refusal(&initial, rt).unwrap().contains("no complete recovery point"));
        assert!(refusal(&record(PairState::Replicating), false).unwrap().contains("not connected"));
        let mut busy = record(PairState::Replicating);
        busy.source_verify = Some(SourceVerifyRecord { state: SourceVerifyState::Running, ..requested() });
        assert!(refusal(&busy, rt).unwrap().contains("already running"));
    }

    #[test]
    fn a_committed_pass_ends_the_verify_once() {
        let mut rec = record(PairState::Replicating);
        rec.source_verify = Some(requested());
        let check = SourceCheck { against: 5, compared: 16, mismatched: 2, sample: vec![(0, 3), (0, 9)] };
        let report = VerifyReport { request_id: 1, result: Ok(check) };
        let v = on_committed(&mut rec, &report, 6, 4).expect("finished");
        assert_eq!(
            (v.state, v.mismatched_chunks, v.repair_point, v.shipped_chunks),
            (SourceVerifyState::Done, 2, Some(6), 4)
        );
        assert_eq!(
            v.sample,
            vec![MismatchedChunkRecord { disk: 0, chunk: 3 }, MismatchedChunkRecord { disk: 0, chunk: 9 }]
        );
        assert!(v.message.contains("repaired") && v.message.contains("point 6"), "{}", v.message);
        assert_eq!(result_label(&v), "mismatched");
        assert!(on_committed(&mut rec, &report, 7, 0).is_none(), "ended twice");
        rec.source_verify = Some(requested());
        let gap = VerifyReport { request_id: 2, result: Err("the tracker lost events".into()) };
        let v = on_committed(&mut rec, &gap, 8, 1).unwrap();
        assert_eq!((v.state, result_label(&v)), (SourceVerifyState::Failed, "failed"));
        rec.source_verify = Some(SourceVerifyRecord { state: SourceVerifyState::Running, ..requested() });
        assert!(after_restart(&mut rec));
        assert_eq!(rec.source_verify.as_ref().unwrap().state, SourceVerifyState::Failed);
        assert!(!after_restart(&mut rec));
    }

    #[test]
    fn status_shows_live_progress() {
        let mut rec = record(PairState::Replicating);
        rec.source_verify = Some(SourceVerifyRecord { state: SourceVerifyState::Running, ..requested() });
        let rt = PairRuntime {
            progress: Progress { pass: Some(PassKind::Verify), chunks_done: 1, chunks_total: 3, ..Default::default() },
            ..Default::default()
        };
        let v = status(&rec, &rt).unwrap();
        assert_eq!((v.progress_percent, v.chunks_compared), (33.3, 1));
    }
}
