//! Waiting for a pair to reach a state, watching that its agent stays alive meanwhile.

use crate::api::Api;
use crate::process::Daemon;
use drpair_types::PairStatus;
use std::time::Duration;

/// A one-line summary of a status, for progress and failure messages.
pub fn describe(s: &PairStatus) -> String {
    format!(
        "state {:?}, ready {}, checkpoint {:?}, progress {}%, pass {:?}, connected {:?}, shipped {} B, points {}, failures {:?}, online verify {:?}, dump step {:?}",
        s.state,
        s.ready_for_failover,
        s.recovery_checkpoint,
        s.stats.progress_percent,
        s.stats.pass.as_ref().map(|p| (p.epoch, p.kind.as_str(), p.chunks_done, p.chunks_total)),
        s.agent.as_ref().map(|a| a.connected),
        s.stats.bytes_shipped,
        s.stats.points,
        s.failure_messages.last(),
        s.source_verify.as_ref().map(|v| (v.state, &v.message)),
        s.dump.as_ref().map(|d| d.step),
    )
}

/// Polls the pair's status until `pred` holds. If `agent` is given and exits meanwhile, the
/// wait fails at once with its log tail.
pub fn wait_status(
    api: &Api,
    pair: &str,
    mut agent: Option<&mut Daemon>,
    what: &str,
    timeout: Duration,
    mut pred: impl FnMut(&PairStatus) -> bool,
) -> PairStatus {
    crate::wait_until(&format!("pair {pair}: {what}"), timeout, || {
        if let Some(a) = agent.as_deref_mut() {
            if let Some(st) = a.try_exit() {
                panic!("{} exited with {st} while waiting for {what}:\n{}", a.label(), a.tail(40));
            }
        }
        let s = api.try_status(pair)?;
        if pred(&s) { Ok(s) } else { Err(describe(&s)) }
    })
}

/// Waits until a pass of epoch `from_epoch` or later is running (at most 90% done) and has
/// shipped at least `min_bytes` since it was first seen (so that much of its data is in flight, not yet
/// committed). Used to kill a process in the middle of an epoch that carries changes,
/// whichever epoch the scan happens to ship them in.
pub fn wait_epoch_in_flight(
    api: &Api,
    pair: &str,
    agent: &mut Daemon,
    from_epoch: u64,
    min_bytes: u64,
    timeout: Duration,
) -> PairStatus {
    let mut first_seen: Option<(u64, u64)> = None; // (epoch, bytes shipped then)
    wait_status(
        api,
        pair,
        Some(agent),
        &format!("an epoch ≥ {from_epoch} with {min_bytes} bytes in flight"),
        timeout,
        |s| {
            let Some(p) = s.stats.pass.as_ref().filter(|p| p.epoch >= from_epoch) else { return false };
            if first_seen.is_none_or(|(e, _)| e != p.epoch) {
                first_seen = Some((p.epoch, s.stats.bytes_shipped));
            }
            let (_, base) = first_seen.expect("set above");
            // Progress arrives every 0.5 s: stay clear of the pass's end, which may already be
            // committed by the time the status shows 100%.
            p.chunks_total > 0 && p.chunks_done * 10 <= p.chunks_total * 9 && s.stats.bytes_shipped >= base + min_bytes
        },
    )
}

/// Waits until the pair has a committed point (ready for failover).
pub fn wait_ready(api: &Api, pair: &str, agent: &mut Daemon, timeout: Duration) -> PairStatus {
    let s = wait_status(api, pair, Some(agent), "ready for failover", timeout, |s| s.ready_for_failover);
    crate::step(format!("pair {pair} ready: {}", describe(&s)));
    s
}

/// Waits until the standby sees the pair's agent connected (`true`) or not (`false`).
pub fn wait_connected(api: &Api, pair: &str, connected: bool, timeout: Duration) -> PairStatus {
    wait_status(api, pair, None, if connected { "agent connected" } else { "agent disconnected" }, timeout, |s| {
        s.agent.as_ref().is_some_and(|a| a.connected) == connected
    })
}
