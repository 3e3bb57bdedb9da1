//! The markers of the dump workflow: `marker dump` (the agent records the dump point),
//! `resume --resync` (the agent's resync and dump markers), and the agent's answers.

use super::answer::AgentAnswer;
use super::errors::{FlowError, Res};
use super::flow::{agent_back, dump_of, internal, not_now, pair_id, record, update};
use super::record::DumpRecord;
use crate::standby::Standby;
use crate::standby::pair::{PairHandle, PairRecord};
use crate::timefmt::now_ms;
use drpair_pair::PairOp;
use drpair_types::{DumpMarker, DumpMarkerRequest, DumpStep, Epoch, Lineage, PairId, PairState, parse_time_ms};
use drpair_wire::{DumpAt, DumpMarkRequest, MarkRefusal, StandbyMsg, encode};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// Parses `at` (`now`, an epoch, an RFC 3339 time).
fn parse_at(at: Option<&str>) -> Res<DumpAt> {
    let Some(t) = at.map(str::trim) else { return Ok(DumpAt::Now) };
    if t.eq_ignore_ascii_case("now") {
        return Ok(DumpAt::Now);
    }
    if let Ok(e) = t.parse::<Epoch>() {
        return Ok(DumpAt::Epoch(e));
    }
    parse_time_ms(t)
        .map(DumpAt::TimeMs)
        .map_err(|e| FlowError::Param("at", format!("'{t}' is not `now`, an epoch number or an RFC 3339 time ({e})")))
}

/// The marker request, checked: contradictions and out-of-range values are refused.
fn plan_mark(req: &DumpMarkerRequest, request_id: u64) -> Res<DumpMarkRequest> {
    let at = parse_at(req.at.as_deref())?;
    let exec = match req.exec.as_deref().map(str::trim) {
        Some("") => return Err(FlowError::Param("exec", "the snapshot command is empty".into())),
        e => e.map(String::from),
    };
    if exec.is_some() && req.at.is_some() {
        return Err(FlowError::Param(
            "at",
            "with exec the agent cuts the dump point itself, right before running the command: give exec or at, not both"
                .into(),
        ));
    }
    if !req.freeze.is_empty() && exec.is_none() {
        return Err(FlowError::Param(
            "freeze",
            "freeze goes with exec: drpair freezes the filesystems, cuts, runs your snapshot command and thaws".into(),
        ));
    }
    if let Some(p) = req.freeze.iter().find(|p| !p.starts_with('/')) {
        return Err(FlowError::Param("freeze", format!("freeze path '{p}' is not absolute")));
    }
    if let Some(b) = req.thaw_budget_ms {
        if req.freeze.is_empty() {
            return Err(FlowError::Param("thaw_budget_ms", "thaw_budget_ms goes with freeze".into()));
        }
        if !(100..=600_000).contains(&b) {
            return Err(FlowError::Param("thaw_budget_ms", format!("{b} ms is outside 100..=600000")));
        }
    }
    if let Some(t) = req.exec_timeout_seconds {
        if exec.is_none() {
            return Err(FlowError::Param("exec_timeout_seconds", "exec_timeout_seconds goes with exec".into()));
        }
        if !(1..=86_400).contains(&t) {
            return Err(FlowError::Param("exec_timeout_seconds", format!("{t} s is outside 1..=86400")));
        }
    }
    Ok(DumpMarkRequest {
        request_id,
        at,
        freeze: req.freeze.clone(),
        exec,
        budget_ms: req.thaw_budget_ms,
        exec_timeout_ms: req.exec_timeout_seconds.map(|s| s * 1000),
    })
}

/// Sends `msg` to the connected agent and waits up to `wait` for its answer.
async fn ask_agent(
    h: &PairHandle,
    rec: &PairRecord,
    request_id: u64,
    msg: StandbyMsg,
    wait: Duration,
) -> Res<AgentAnswer> {
    let (tx, rx) = oneshot::channel();
    // The agent reconnects by itself after `suspend` ended its connection: give it a moment.
    agent_back(h).await;
    let session = {
        let mut rt = h.runtime.lock().expect("runtime");
        let s = rt.session.clone().ok_or_else(|| {
            not_now(
                rec,
                "its agent is not connected (the dump point lives in the agent's change history); start the agent",
            )
        })?;
        rt.dump_waiters.insert(request_id, tx);
        s
    };
    let forget = || h.runtime.lock().expect("runtime").dump_waiters.remove(&request_id);
    if session.tx.send(encode(&msg).map_err(internal)?).await.is_err() {
        forget();
        return Err(not_now(rec, "its agent disconnected"));
    }
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(_)) => Err(not_now(rec, "its agent disconnected before answering; nothing was recorded")),
        Err(_) => {
            forget();
            Err(FlowError::Timeout(format!(
                "pair '{}': the agent did not answer within {}s",
                rec.pair_id,
                wait.as_secs()
            )))
        }
    }
}

/// `marker dump`: the agent records the dump point in its change history (cutting an epoch
/// now, resolving an epoch or a time, or freezing and running the snapshot command).
pub async fn mark(sb: &Arc<Standby>, h: &Arc<PairHandle>, req: &DumpMarkerRequest) -> Res<DumpMarker> {
    let request_id = sb.next_request();
    let msg = plan_mark(req, request_id)?;
    let rec = record(h);
    if !matches!(rec.lifecycle.state, PairState::Suspended | PairState::AwaitingResyncMarker) {
        let why =
            format!("a dump marker is recorded while the pair is suspended, and it is {}", rec.lifecycle.state.label());
        return Err(not_now(&rec, &why));
    }
    let wait = Duration::from_millis(msg.exec_timeout_ms.unwrap_or(600_000) + msg.budget_ms.unwrap_or(30_000))
        + Duration::from_secs(60);
    let answer = ask_agent(h, &rec, request_id, StandbyMsg::DumpMark(msg), wait).await?;
    let marker = match answer {
        AgentAnswer::Marked(Ok(m)) => m,
        AgentAnswer::Marked(Err(r)) => {
            let message = format!("pair '{}': no dump marker recorded: {}", rec.pair_id, r.message);
            return Err(match r.parameter.as_deref() {
                Some("at") => FlowError::Param("at", message),
                Some("freeze") => FlowError::Param("freeze", message),
                Some("exec") => FlowError::Param("exec", message),
                _ => FlowError::State(message),
            });
        }
        AgentAnswer::Resynced(_) => return Err(internal("the agent answered a marker request with a resync")),
    };
    update(sb, h, |rec| {
        if !matches!(rec.lifecycle.state, PairState::Suspended | PairState::AwaitingResyncMarker) {
            return Err(not_now(rec, "the pair left the suspension while the marker was being recorded"));
        }
        let id = rec.pair_id.clone();
        let d = dump_of(rec)?;
        note_marker(d, &id, &marker);
        Ok(())
    })?;
    Ok(marker)
}

/// Records `marker` in the workflow's log and status.
fn note_marker(d: &mut DumpRecord, id: &PairId, marker: &DumpMarker) {
    let how = match (&marker.exec, &marker.quiesce) {
        (Some(_), Some(q)) if q.achieved => "filesystems frozen around the cut and the snapshot command",
        (Some(_), Some(_)) => "the snapshot command ran, but the freeze did not hold (the point is fuzzy)",
        (Some(_), None) => "the snapshot command ran after the cut",
        _ => "given by the operator",
    };
    d.note(
        id,
        format!(
            "dump marker recorded in the agent's change history at epoch {} (cut at {}, {}; {how}); consistency {}",
            marker.epoch,
            marker.time,
            marker.at,
            drpair_types::Consistency::as_str(marker.consistency)
        ),
    );
    d.marker = Some(marker.clone());
}

/// `resume --resync`: the agent checks that its change history still reaches the dump point
/// and sends the resync marker, then the dump marker; the standby processes both (see
/// [`on_resync_marker`], [`on_dump_marker`]) and suspends apply.
pub async fn resync(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<DumpMarker> {
    let rec = record(h);
    match rec.lifecycle.state {
        PairState::AwaitingResyncMarker => {}
        PairState::Suspended => {
            return Err(not_now(&rec, "the standby is not waiting for a resync marker yet (its queue is not purged)"));
        }
        s => return Err(not_now(&rec, &format!("it is {}, not waiting for a resync marker", s.label()))),
    }
    let Some(marker) = rec.dump.as_ref().and_then(|d| d.marker.clone()) else {
        return Err(not_now(&rec, "no dump marker is recorded yet"));
    };
    let request_id = sb.next_request();
    let msg = StandbyMsg::Resync { request_id, dump_epoch: marker.epoch };
    match ask_agent(h, &rec, request_id, msg, Duration::from_secs(60)).await? {
        AgentAnswer::Resynced(Ok(m)) => Ok(m),
        AgentAnswer::Resynced(Err(e)) => Err(e),
        AgentAnswer::Marked(_) => Err(internal("the agent answered a resync with a marker")),
    }
}

fn answer(h: &PairHandle, request_id: u64, a: AgentAnswer) {
    if let Some(tx) = h.runtime.lock().expect("runtime").dump_waiters.remove(&request_id) {
        let _ = tx.send(a);
    }
}

/// The agent's answer to a marker request.
pub fn on_marked(h: &PairHandle, request_id: u64, result: Result<DumpMarker, MarkRefusal>) {
    answer(h, request_id, AgentAnswer::Marked(result));
}

/// The agent refused to resume in resync mode.
pub fn on_resync_refused(sb: &Standby, h: &PairHandle, request_id: u64, message: String) {
    let id = pair_id(h);
    let noted = update(sb, h, |rec| {
        if let Some(d) = rec.dump.as_mut() {
            d.warn(&id, format!("the agent refused to resume in resync mode: {message}"));
        }
        Ok(())
    });
    if let Err(e) = noted {
        tracing::error!(pair = %id, "recording the refusal: {e:?}");
    }
    answer(h, request_id, AgentAnswer::Resynced(Err(FlowError::State(format!("pair '{id}': {message}")))));
}

/// The agent's resync marker: its history reaches the dump point and its checkpoint is the
/// standby's. Wrong ones are refused (the waiting call hears why) and change nothing.
pub fn on_resync_marker(
    sb: &Standby,
    h: &PairHandle,
    request_id: u64,
    lineage: Lineage,
    acked: Epoch,
    history_from: Epoch,
) {
    let id = pair_id(h);
    let processed = update(sb, h, |rec| {
        let l = rec.lifecycle.apply(PairOp::ResyncMarker).map_err(|r| FlowError::State(r.message))?;
        if lineage != rec.lineage || acked != rec.committed {
            return Err(FlowError::State(format!(
                "the agent's checkpoint {lineage}:{acked} is not the standby's {}:{}",
                rec.lineage, rec.committed
            )));
        }
        rec.lifecycle = l;
        if let Some(d) = rec.dump.as_mut() {
            d.step = DumpStep::AwaitingDumpMarker;
            d.resync_marker_unix_ms = Some(now_ms());
            d.note(
                &id,
                format!(
                    "received and processed the resync marker from the agent (checkpoint epoch {acked}, change history from epoch {history_from}); waiting for the dump marker"
                ),
            );
        }
        Ok(())
    });
    match processed {
        Ok(()) => crate::standby::metrics::dump_marker(&id, "resync"),
        Err(FlowError::State(why)) => {
            tracing::warn!(pair = %id, "resync marker refused: {why}");
            let refused = FlowError::State(format!("pair '{id}': resync marker refused: {why}"));
            answer(h, request_id, AgentAnswer::Resynced(Err(refused)));
        }
        Err(e) => answer(h, request_id, AgentAnswer::Resynced(Err(FlowError::State(format!("pair '{id}': {e:?}"))))),
    }
}

/// The agent's dump marker (right after its resync marker): apply is suspended until the
/// dump is loaded.
pub fn on_dump_marker(sb: &Standby, h: &PairHandle, request_id: u64, marker: DumpMarker) {
    let id = pair_id(h);
    let processed = update(sb, h, |rec| {
        let recorded = rec.dump.as_ref().and_then(|d| d.marker.as_ref()).map(|m| m.epoch);
        let l = rec.lifecycle.apply(PairOp::DumpMarker).map_err(|r| FlowError::State(r.message))?;
        if recorded != Some(marker.epoch) || marker.epoch <= rec.committed {
            return Err(FlowError::State(format!(
                "the agent's dump marker is at epoch {}, the standby expected {recorded:?} (after its newest point {})",
                marker.epoch, rec.committed
            )));
        }
        rec.lifecycle = l;
        let disks = rec.disks.len();
        if let Some(d) = rec.dump.as_mut() {
            d.step = DumpStep::ApplySuspended;
            d.dump_marker_unix_ms = Some(now_ms());
            d.disks = DumpRecord::new(0, disks).disks;
            d.note(
                &id,
                format!(
                    "received and processed the dump marker (epoch {}, cut at {}): apply is now suspended; resume after the replica has been reloaded: drpair standby load-dump {id} --disk N --image FILE for each of its {disks} disk(s), then drpair standby resume-apply {id}",
                    marker.epoch, marker.time
                ),
            );
            d.marker = Some(marker.clone());
        }
        Ok(())
    });
    let a = match processed {
        Ok(()) => {
            crate::standby::metrics::dump_marker(&id, "dump");
            Ok(marker)
        }
        Err(FlowError::State(why)) => {
            tracing::warn!(pair = %id, "dump marker refused: {why}");
            Err(FlowError::State(format!("pair '{id}': dump marker refused: {why}")))
        }
        Err(e) => Err(FlowError::State(format!("pair '{id}': {e:?}"))),
    };
    answer(h, request_id, AgentAnswer::Resynced(a));
}
