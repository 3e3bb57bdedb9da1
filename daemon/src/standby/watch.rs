//! Once a second: stop positions on the standby's clock (`stop_at_server_time`), and the
//! standby's resources ([`super::resources`]): pairs that ship stop while the data filesystem
//! is at its reserve or memory is short, a prune runs, and the pairs the standby stopped
//! resume by themselves once the resource is back; each pair's RPO against its target.

use super::Standby;
use super::pair::{OpError, PairHandle};
use super::resources::{Shortage, human};
use crate::timefmt::now_ms;
use drpair_pair::PairOp;
use drpair_types::StopReason;
use std::sync::Arc;
use std::time::Duration;

pub fn spawn(sb: Arc<Standby>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut pruned_for_space = false;
        loop {
            tick.tick().await;
            super::bandwidth::tick(&sb);
            for h in sb.registry.all() {
                server_time_stop(&sb, &h);
                super::pair::rpo::tick(&h);
            }
            let disk = sb.resources.disk_shortage();
            let memory = sb.resources.memory_shortage();
            for (short, reason, what) in [
                (&disk, StopReason::StoppedDueToLowDisk, "the standby's data filesystem"),
                (&memory, StopReason::StoppedDueToLowMemory, "the standby's available memory"),
            ] {
                for h in sb.registry.all() {
                    match short {
                        Some(s) => stop_for(&sb, &h, reason, what, s),
                        None => resume_after(&sb, &h, reason),
                    }
                }
            }
            if disk.is_some() && !pruned_for_space {
                pruned_for_space = true;
                prune_all(&sb).await;
            } else if disk.is_none() {
                pruned_for_space = false;
            }
        }
    })
}

/// Stops the pair once the standby's clock reaches its `stop_at_server_time`.
fn server_time_stop(sb: &Standby, h: &PairHandle) {
    let due = h.record.lock().expect("record").stop_at.as_ref().and_then(|a| a.server_time_unix_ms);
    if due.is_none_or(|t| now_ms() < t) {
        return;
    }
    // The position is dropped either way: a pair that cannot stop now (never ran, in the dump
    // workflow) is told so once, not every second.
    let r = h.update(&sb.store, |rec| {
        rec.stop_at = None;
        Ok::<_, OpError>(rec.lifecycle.apply(PairOp::Stop(StopReason::StoppedAtServerTime)).map(|l| rec.lifecycle = l))
    });
    let pair = h.record.lock().expect("record").pair_id.clone();
    match r {
        Ok(Ok(())) => {
            tracing::info!(%pair, "stopped at its stop time on the standby's clock (STOPPED_AT_SERVER_TIME)");
            h.send_run_mode();
        }
        Ok(Err(e)) => h.runtime.lock().expect("runtime").fail(format!("stop time reached but not applied: {e}")),
        Err(e) => tracing::error!(%pair, "recording the stop at the server time: {e:?}"),
    }
}

/// Stops a pair that ships (or would) while a resource is short.
pub fn stop_for(sb: &Standby, h: &PairHandle, reason: StopReason, what: &str, s: &Shortage) {
    let l = h.record.lock().expect("record").lifecycle.clone();
    if l.holds() {
        return;
    }
    if l.apply(PairOp::Stop(reason)).is_err() {
        return;
    }
    // The reason is told before the state shows it: whoever sees the stop sees why.
    let msg = format!(
        "{what} has {} free, at or below its limit of {}: ingest stopped ({}); the pair resumes by itself above {}",
        human(s.free),
        human(s.limit),
        reason.as_str(),
        human(s.limit + s.limit / 2)
    );
    h.runtime.lock().expect("runtime").fail(msg);
    if h.apply(&sb.store, PairOp::Stop(reason)).is_ok() {
        h.send_run_mode();
    }
}

/// Resumes a pair the standby stopped for `reason`, once the resource is back.
fn resume_after(sb: &Standby, h: &PairHandle, reason: StopReason) {
    if h.record.lock().expect("record").lifecycle.stop_reason != Some(reason) {
        return;
    }
    if let Ok(l) = h.apply(&sb.store, PairOp::Resume) {
        let pair = h.record.lock().expect("record").pair_id.clone();
        tracing::info!(%pair, state = l.state.label(), "resource back above its limit: the pair resumes by itself");
        h.send_run_mode();
    }
}

/// Prunes every pair by its retention policy (and reclaims), to make room.
async fn prune_all(sb: &Arc<Standby>) {
    for h in sb.registry.all() {
        let (sb2, h2) = (sb.clone(), h.clone());
        match tokio::task::spawn_blocking(move || super::retention::prune(&sb2, &h2, false, true)).await {
            Ok(Ok(r)) => {
                tracing::info!(pair = %r.pair_id, removed = r.removed.len(), "pruned to make room on the data filesystem")
            }
            Ok(Err(e)) => tracing::warn!("prune for space: {e:?}"),
            Err(e) => tracing::warn!("prune for space panicked: {e}"),
        }
    }
    // WAL files still named by an unflushed memtable hold space that a flush gives back.
    let store = sb.store.clone();
    match tokio::task::spawn_blocking(move || store.flush()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("flushing the store for space: {e}"),
        Err(e) => tracing::warn!("flushing the store for space panicked: {e}"),
    }
}
