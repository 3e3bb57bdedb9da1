//! One thread per protection keeps its agent running: it starts the agent, watches it, starts
//! it again (with a growing pause, at most 30 s) when it exits, links the new pair to the
//! original once the agent has registered it, and stops the agent when told to. The agent
//! dies with this thread (`PR_SET_PDEATHSIG`), so it never outlives its supervisor.

use super::agent;
use super::live::Supervisor;
use crate::standby::Standby;
use crate::standby::pair::OpError;
use crate::standby::pair::PairHandle;
use crate::standby::pair::protection::{ProtectionRecord, RecordedProtectionState, RecoveredFromRecord};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

/// Longest pause before an agent that exited is started again.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An agent that ran this long starts its next pause short again.
const STABLE: Duration = Duration::from_secs(60);

/// Starts the supervising thread, which starts the agent; returns once the agent's first
/// start was tried (its error, if it could not be started).
pub fn start(sb: Arc<Standby>, h: Arc<PairHandle>, rec: ProtectionRecord) -> Result<Supervisor, super::ProtectError> {
    let stop = Arc::new(AtomicBool::new(false));
    let pid = Arc::new(AtomicU32::new(0));
    let (tx, rx) = mpsc::channel();
    let (stop2, pid2) = (stop.clone(), pid.clone());
    let thread = std::thread::Builder::new()
        .name(format!("protect-{}", rec.pair))
        .spawn(move || supervise(&sb, &h, &rec, &stop2, &pid2, tx))
        .map_err(|e| super::ProtectError::Internal(format!("cannot start the supervising thread: {e}")))?;
    match rx.recv() {
        Ok(Ok(())) => Ok(Supervisor::new(stop, pid, thread)),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(super::ProtectError::Internal("the supervising thread ended at once".into()))
        }
    }
}

/// Changes the original pair's protection record (when it is still this protection's).
fn note(sb: &Standby, h: &PairHandle, pair: &drpair_types::PairId, f: impl FnOnce(&mut ProtectionRecord)) {
    let r = h.update(&sb.store, |rec| {
        if let Some(p) = rec.protected_by.as_mut().filter(|p| &p.pair == pair) {
            f(p);
        }
        Ok::<_, OpError>(())
    });
    if let Err(e) = r {
        tracing::error!(pair = %pair, "recording the protection: {e:?}");
    }
}

/// Once the agent has registered its pair on this standby: the new pair names the original
/// and its failover point, and the protection is running. Returns whether it is linked.
fn link(sb: &Standby, h: &PairHandle, rec: &ProtectionRecord) -> bool {
    if !rec.this_standby {
        note(sb, h, &rec.pair, |p| {
            if p.state == RecordedProtectionState::Starting {
                p.state = RecordedProtectionState::Running;
                p.message = format!("the agent ships the recovered disks to the standby at {}", p.standby);
            }
        });
        return true;
    }
    let Some(new) = sb.registry.get(&rec.pair) else { return false };
    let original = h.record.lock().expect("record").pair_id.clone();
    let from = RecoveredFromRecord { pair: original.clone(), point: rec.failover_point };
    let linked = new.update(&sb.store, |r| {
        r.recovered_from = Some(from.clone());
        Ok::<_, OpError>(())
    });
    if let Err(e) = linked {
        tracing::error!(pair = %rec.pair, "linking the protecting pair to '{original}': {e:?}");
        return false;
    }
    note(sb, h, &rec.pair, |p| {
        if p.state == RecordedProtectionState::Starting {
            p.state = RecordedProtectionState::Running;
            p.message = format!(
                "pair '{}' protects the recovered disks of '{original}' (failover point {}): a point every {}",
                p.pair, p.failover_point, p.cut_interval
            );
        }
    });
    tracing::info!(pair = %rec.pair, original = %original, point = rec.failover_point, "protecting pair registered and linked");
    true
}

fn supervise(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    rec: &ProtectionRecord,
    stop: &AtomicBool,
    pid: &AtomicU32,
    first: mpsc::Sender<Result<(), super::ProtectError>>,
) {
    let mut first = Some(first);
    let mut backoff = Duration::from_secs(1);
    let mut linked = false;
    loop {
        let mut child = match agent::spawn(&sb.data_dir, rec) {
            Ok(c) => c,
            Err(e) => {
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(e));
                    return;
                }
                tracing::error!(pair = %rec.pair, "{e}");
                note(sb, h, &rec.pair, |p| p.message = format!("{e}; trying again in {}s", backoff.as_secs()));
                if pause(stop, backoff) {
                    return;
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        pid.store(child.id(), Ordering::Relaxed);
        tracing::info!(pair = %rec.pair, pid = child.id(), disks = ?rec.disks, standby = %rec.standby, "protecting agent started");
        if let Some(tx) = first.take() {
            let _ = tx.send(Ok(()));
        }
        let started = Instant::now();
        let status = loop {
            if stop.load(Ordering::Relaxed) {
                agent::terminate(&mut child);
                pid.store(0, Ordering::Relaxed);
                tracing::info!(pair = %rec.pair, "protecting agent stopped");
                return;
            }
            if let Ok(Some(st)) = child.try_wait() {
                break st;
            }
            if !linked {
                linked = link(sb, h, rec);
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        pid.store(0, Ordering::Relaxed);
        if started.elapsed() > STABLE {
            backoff = Duration::from_secs(1);
        }
        tracing::warn!(pair = %rec.pair, "the protecting agent exited ({status}); starting it again in {}s", backoff.as_secs());
        note(sb, h, &rec.pair, |p| {
            p.agent_restarts += 1;
            p.message = format!(
                "the agent exited ({status}) and is started again in {}s; its log: {}",
                backoff.as_secs(),
                agent::log_file(&sb.data_dir, p.pair.as_str()).display()
            );
        });
        if pause(stop, backoff) {
            return;
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// Sleeps `d`, or less when told to stop (then true).
fn pause(stop: &AtomicBool, d: Duration) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < d {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.load(Ordering::Relaxed)
}
