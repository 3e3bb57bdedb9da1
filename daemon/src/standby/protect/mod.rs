//! Protection while failed over: the recovered disks (a completed failover's targets) are
//! protected by an agent of their own under a new pair linked to the original, so recovery
//! points keep being cut while the original site is down (`drpair failover … --protect`,
//! `drpair pairs protect-recovered PAIR`). A failback can then take the recovered side from
//! that pair's newest point (`failback --from-protected`, in `failover/failback.rs`).
//!
//! Invariants:
//! - a request is checked whole before anything changes ([`check::plan`]): the failover
//!   completed, nothing protects the pair yet, the new pair's id is free, the standby's link
//!   answers; a refusal leaves no record, no process and no credential behind;
//! - the agent is `drpaird agent`, this binary, started and supervised by the standby
//!   ([`supervise`]): started again when it exits, dying with the standby and started again by
//!   the standby's next start while the original's record says the protection is active;
//! - its chunk size is the original's, so chunk N is the same region of a disk in both pairs;
//! - the new pair names the original and its failover point (`recovered_from`), the original
//!   names the new pair (`protected_by`); the agent stops on `unprotect-recovered` and when a
//!   failback ends the failover, and the new pair keeps its points.

pub mod agent;
pub mod check;
pub mod error;
pub mod live;
pub mod supervise;

pub use error::ProtectError;
pub use live::Protections;

use super::Standby;
use super::pair::protection::{ProtectionRecord, RecordedProtectionState};
use super::pair::{OpError, PairHandle};
use crate::timefmt::now_ms;
use drpair_types::{ProtectRecoveredRequest, ProtectionStatus};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a protection waits for its agent to register the new pair before answering
/// (it goes on waiting in the background: the state stays `starting`).
const REGISTER_WAIT: Duration = Duration::from_secs(30);

/// Held while a protection is checked and started.
static START_GATE: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The original pair's `protected_by`, with the running agent's pid.
pub fn status(sb: &Standby, h: &PairHandle) -> Option<ProtectionStatus> {
    let rec = h.record.lock().expect("record");
    let p = rec.protected_by.as_ref()?;
    Some(p.to_view(
        sb.protections.pid(&rec.pair_id),
        agent::log_file(&sb.data_dir, p.pair.as_str()).display().to_string(),
    ))
}

/// Protects the recovered disks of the pair of `h` (blocking: it enrolls and starts the
/// agent, then waits up to 30 s for it to register the new pair).
pub fn start(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    req: ProtectRecoveredRequest,
) -> Result<ProtectionStatus, ProtectError> {
    // One protection starts at a time: two requests cannot both pass the check.
    let _gate = START_GATE.lock().unwrap_or_else(|e| e.into_inner());
    let plan = check::plan(sb, h, &req)?;
    let original = h.record.lock().expect("record").pair_id.clone();
    agent::credentials(sb, &plan)?;
    let rec = ProtectionRecord {
        pair: plan.new_pair.clone(),
        standby: plan.standby.clone(),
        this_standby: plan.this_standby,
        fingerprint: plan.fingerprint.clone(),
        failover_point: plan.failover_point,
        disks: plan.disks.clone(),
        chunk_size: plan.chunk_size,
        tracker: plan.tracker.clone(),
        cut_interval: plan.cut_interval.clone(),
        state: RecordedProtectionState::Starting,
        started_unix_ms: now_ms(),
        stopped_unix_ms: None,
        agent_restarts: 0,
        operator: req.operator.clone(),
        message: format!("starting the agent of pair '{}' on {}", plan.new_pair, plan.disks.join(", ")),
    };
    // Recorded before the agent starts: it may register the pair at once.
    h.update(&sb.store, |r| {
        r.protected_by = Some(rec.clone());
        Ok::<_, OpError>(())
    })
    .map_err(|e| ProtectError::Internal(format!("{e:?}")))?;
    let sup = match supervise::start(sb.clone(), h.clone(), rec.clone()) {
        Ok(s) => s,
        Err(e) => {
            let _ = h.update(&sb.store, |r| {
                if let Some(p) = r.protected_by.as_mut() {
                    p.state = RecordedProtectionState::Failed;
                    p.stopped_unix_ms = Some(now_ms());
                    p.message = format!("the agent could not be started: {e}");
                }
                Ok::<_, OpError>(())
            });
            return Err(e);
        }
    };
    sb.protections.put(original.clone(), sup);
    tracing::warn!(
        pair = %original, protecting = %plan.new_pair, standby = %plan.standby, disks = ?plan.disks, tracker = %plan.tracker,
        operator = ?req.operator, "PROTECT RECOVERED: an agent protects the recovered disks under pair '{}'", plan.new_pair
    );
    let t0 = Instant::now();
    while t0.elapsed() < REGISTER_WAIT {
        let running = h
            .record
            .lock()
            .expect("record")
            .protected_by
            .as_ref()
            .is_some_and(|p| p.state != RecordedProtectionState::Starting);
        if running {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    status(sb, h).ok_or_else(|| ProtectError::Internal("the protection record vanished".into()))
}

/// Stops the protection of the pair of `h` (its agent; the new pair and its points stay).
/// `why` is recorded as the message.
pub fn stop(sb: &Standby, h: &PairHandle, why: &str) -> Result<ProtectionStatus, ProtectError> {
    let original = h.record.lock().expect("record").pair_id.clone();
    let active = h.record.lock().expect("record").protected_by.as_ref().is_some_and(|p| p.state.active());
    if !active {
        return Err(ProtectError::State(format!(
            "pair '{original}': no agent protects its recovered disks (`drpair pairs protect-recovered {original}` starts one)"
        )));
    }
    if let Some(s) = sb.protections.take(&original) {
        s.stop();
    }
    let new_pair = h.record.lock().expect("record").protected_by.as_ref().map(|p| p.pair.clone());
    if let Some(p) = new_pair {
        match agent::decommission(&sb.data_dir, p.as_str()) {
            Ok(said) => tracing::info!(pair = %p, "protecting agent decommissioned: {said}"),
            Err(e) => tracing::warn!(pair = %p, "decommissioning the protecting agent: {e}"),
        }
    }
    h.update(&sb.store, |r| {
        if let Some(p) = r.protected_by.as_mut() {
            p.state = RecordedProtectionState::Stopped;
            p.stopped_unix_ms = Some(now_ms());
            p.message = format!("{why}; pair '{}' and its points are kept", p.pair);
        }
        Ok::<_, OpError>(())
    })
    .map_err(|e| ProtectError::Internal(format!("{e:?}")))?;
    tracing::warn!(pair = %original, "PROTECT RECOVERED stopped: {why}");
    status(sb, h).ok_or_else(|| ProtectError::Internal("the protection record vanished".into()))
}

/// At the standby's start (its link listening): stops agents left by an earlier run, and
/// starts again those the records say are active.
pub fn resume_all(sb: &Arc<Standby>) {
    let left = agent::stop_leftovers(&agent::root(&sb.data_dir));
    if left > 0 {
        tracing::warn!("{left} protecting agent(s) left by the standby's stop were stopped");
    }
    for h in sb.registry.all() {
        let Some(rec) = h.record.lock().expect("record").protected_by.clone().filter(|p| p.state.active()) else {
            continue;
        };
        let (original, failed_over) = {
            let r = h.record.lock().expect("record");
            (r.pair_id.clone(), r.failover.is_some())
        };
        // A failover ended while the standby was stopped (before its agent was stopped).
        if !failed_over {
            if let Err(e) = stop(sb, &h, "the failover had ended when the standby started") {
                tracing::error!(pair = %original, "stopping the protection of a pair no longer failed over: {e}");
            }
            continue;
        }
        match supervise::start(sb.clone(), h.clone(), rec.clone()) {
            Ok(s) => {
                tracing::warn!(pair = %original, protecting = %rec.pair, "protecting agent started again with the standby");
                sb.protections.put(original, s);
            }
            Err(e) => {
                tracing::error!(pair = %original, protecting = %rec.pair, "the protecting agent could not be started again: {e}")
            }
        }
    }
}
