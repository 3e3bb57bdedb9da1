//! The standby's own schedule: pruning each pair by its retention policy (with space
//! reclaim), verifying its points, and refreshing its storage report. Runs in the background
//! on blocking threads, so replication is never stalled behind it.

use super::Standby;
use super::pair::PairHandle;
use crate::timefmt::now_ms;
use std::sync::Arc;
use std::time::Duration;

/// How often the schedule looks at the pairs.
const TICK: Duration = Duration::from_secs(5);
/// How often the storage report of each pair is refreshed by itself.
const STORAGE_EVERY_MS: u64 = 10 * 60 * 1000;

/// Starts the schedule; first finishes what a crash interrupted.
pub fn spawn(sb: Arc<Standby>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let store = sb.store.clone();
        let _ = tokio::task::spawn_blocking(move || super::retention::recover_interrupted(&store)).await;
        let started = now_ms();
        let mut storage_done: std::collections::HashMap<String, u64> = Default::default();
        loop {
            tokio::time::sleep(TICK).await;
            for h in sb.registry.all() {
                let now = now_ms();
                if due(sb.prune_interval, last_prune(&h).unwrap_or(started), now) {
                    let (sb2, h2) = (sb.clone(), h.clone());
                    let r = tokio::task::spawn_blocking(move || super::retention::prune(&sb2, &h2, false, true)).await;
                    match r {
                        Ok(Ok(_)) | Ok(Err(super::retention::PruneError::Busy(_))) => {}
                        Ok(Err(super::retention::PruneError::Store(e))) => {
                            h.runtime.lock().expect("runtime").fail(format!("scheduled prune failed: {e}"));
                        }
                        Err(e) => tracing::warn!("scheduled prune panicked: {e}"),
                    }
                }
                if due(sb.verify_interval, last_verify(&h).unwrap_or(started), now)
                    && h.runtime.lock().expect("runtime").points > 0
                {
                    let _ = super::verify::start(&sb, &h, None, true);
                }
                let key = h.record.lock().expect("record").pair_id.to_string();
                if now.saturating_sub(storage_done.get(&key).copied().unwrap_or(0)) >= STORAGE_EVERY_MS {
                    storage_done.insert(key, now);
                    let (sb2, h2) = (sb.clone(), h.clone());
                    let _ = tokio::task::spawn_blocking(move || super::storage::report(&sb2, &h2)).await;
                }
            }
        }
    })
}

fn due(interval: Duration, last_ms: u64, now_ms: u64) -> bool {
    !interval.is_zero() && now_ms.saturating_sub(last_ms) >= interval.as_millis() as u64
}

fn last_prune(h: &PairHandle) -> Option<u64> {
    h.record.lock().expect("record").last_prune.as_ref().map(|p| p.finished_unix_ms)
}

fn last_verify(h: &PairHandle) -> Option<u64> {
    let running = h.runtime.lock().expect("runtime").verify.clone();
    match running {
        Some(s) => {
            let s = s.lock().expect("verify");
            Some(s.finished_unix_ms.unwrap_or(u64::MAX))
        }
        None => h.record.lock().expect("record").verify.as_ref().and_then(|v| v.finished_unix_ms),
    }
}
