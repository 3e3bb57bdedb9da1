//! The outbox: notifications queued in the store until every target they are for has taken
//! them, and the delivery task of each target.

use super::tracker::Told;
use crate::timefmt::now_ms;
use drpair_store::Store;
use drpair_types::notify::{ActiveCondition, Notification};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Duration;

/// What survives a restart beside the queue: the next id and the told conditions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Persisted {
    pub next_id: u64,
    #[serde(default)]
    pub told: Told,
}

/// A target a queued notification still waits for.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Pending {
    target: String,
    attempts: u32,
    next_try_ms: u64,
}

/// One queued notification.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Queued {
    n: Notification,
    pending: Vec<Pending>,
}

/// How a target's deliveries went since the standby started.
#[derive(Debug, Clone, Default)]
pub struct TargetStats {
    pub delivered: u64,
    pub failed_attempts: u64,
    pub last_delivered_ms: Option<u64>,
    pub last_error: Option<String>,
    /// Deliveries in the last hour (for `max_per_hour`).
    pub(super) sent: VecDeque<u64>,
    /// The rate limit was logged for the current hold-back.
    pub(super) limited_logged: bool,
}

pub struct Outbox {
    store: Store,
    pub state: Persisted,
    queue: BTreeMap<u64, Queued>,
    pub(super) stats: HashMap<String, TargetStats>,
}

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).expect("notification records encode")
}

impl Outbox {
    /// Loads the queue and state; a queued notification for a target no longer configured
    /// is not sent there (and dropped when it waits for no one else).
    pub fn open(store: Store, targets: &[String]) -> anyhow::Result<Self> {
        let state: Persisted = match store.notify_state()? {
            Some(b) => serde_json::from_slice(&b).unwrap_or_else(|e| {
                tracing::warn!("the told conditions do not decode ({e}); starting afresh");
                Persisted::default()
            }),
            None => Persisted::default(),
        };
        let mut ob = Outbox { store, state, queue: BTreeMap::new(), stats: HashMap::new() };
        for (seq, bytes) in ob.store.list_notices()? {
            let Ok(mut q) = serde_json::from_slice::<Queued>(&bytes) else {
                tracing::warn!(seq, "a queued notification does not decode: dropped");
                ob.store.delete_notice(seq)?;
                continue;
            };
            q.pending.retain(|p| targets.contains(&p.target));
            ob.state.next_id = ob.state.next_id.max(seq + 1);
            if q.pending.is_empty() {
                ob.store.delete_notice(seq)?;
            } else {
                ob.queue.insert(seq, q);
            }
        }
        Ok(ob)
    }

    pub fn next_id(&mut self) -> u64 {
        let id = self.state.next_id.max(1);
        self.state.next_id = id + 1;
        id
    }

    /// An id for a notification that is not queued (a test), saved at once.
    pub fn next_id_saved(&mut self) -> Result<u64, drpair_store::StoreError> {
        let id = self.next_id();
        self.save_state()?;
        Ok(id)
    }

    pub fn save_state(&self) -> Result<(), drpair_store::StoreError> {
        self.store.put_notify_state(&encode(&self.state))
    }

    /// Queues `n` for `targets` in one synced write with the state that produced it.
    pub fn push(&mut self, n: Notification, targets: Vec<String>) -> Result<(), drpair_store::StoreError> {
        let id = n.id;
        let q = Queued {
            n,
            pending: targets.into_iter().map(|target| Pending { target, attempts: 0, next_try_ms: 0 }).collect(),
        };
        if q.pending.is_empty() {
            return self.save_state();
        }
        self.store.put_notice(id, &encode(&q), Some(&encode(&self.state)))?;
        self.queue.insert(id, q);
        self.report_queued();
        Ok(())
    }

    /// Sets the gauge of queued notifications.
    pub fn report_queued(&self) {
        metrics::gauge!("drpair_notify_queued_notifications").set(self.queue.len() as f64);
    }

    pub fn queued(&self) -> u64 {
        self.queue.len() as u64
    }

    pub fn pending_for(&self, target: &str) -> u64 {
        self.queue.values().filter(|q| q.pending.iter().any(|p| p.target == target)).count() as u64
    }

    pub fn stats(&self, target: &str) -> TargetStats {
        self.stats.get(target).cloned().unwrap_or_default()
    }

    pub fn active(&self) -> Vec<ActiveCondition> {
        self.state
            .told
            .conditions
            .iter()
            .map(|(key, e)| ActiveCondition {
                key: key.clone(),
                kind: e.kind.clone(),
                severity: e.severity,
                pair: e.pair.clone(),
                summary: e.summary.clone(),
                since: crate::timefmt::rfc3339_ms(e.since_ms),
                notified: e.told.is_some(),
            })
            .collect()
    }

    /// The oldest notification `target` waits for: (id, notification, when it may be tried).
    pub(super) fn next_for(&self, target: &str) -> Option<(u64, Notification, u64)> {
        self.queue.iter().find_map(|(id, q)| {
            q.pending.iter().find(|p| p.target == target).map(|p| (*id, q.n.clone(), p.next_try_ms))
        })
    }

    /// Takes `target` off notification `id` (delivered or given up); the record goes when no
    /// target waits for it any more.
    pub(super) fn done(&mut self, id: u64, target: &str) -> Result<(), drpair_store::StoreError> {
        let Some(q) = self.queue.get_mut(&id) else { return Ok(()) };
        q.pending.retain(|p| p.target != target);
        if q.pending.is_empty() {
            self.queue.remove(&id);
            self.store.delete_notice(id)
        } else {
            let bytes = encode(&*q);
            self.store.put_notice(id, &bytes, None)
        }
    }

    /// Records a failed attempt; returns when to try again.
    pub(super) fn failed(
        &mut self,
        id: u64,
        target: &str,
        retry_max: Duration,
    ) -> Result<u64, drpair_store::StoreError> {
        let Some(q) = self.queue.get_mut(&id) else { return Ok(0) };
        let Some(p) = q.pending.iter_mut().find(|p| p.target == target) else { return Ok(0) };
        p.attempts += 1;
        p.next_try_ms = now_ms() + backoff_ms(p.attempts, retry_max);
        let next = p.next_try_ms;
        let bytes = encode(&*q);
        self.store.put_notice(id, &bytes, None)?;
        Ok(next)
    }
}

/// Wait after the `attempts`-th failure: 1 s, doubling, at most `max`.
pub fn backoff_ms(attempts: u32, max: Duration) -> u64 {
    let ms = 1000u64.saturating_mul(1 << attempts.saturating_sub(1).min(20));
    ms.min(max.as_millis() as u64)
}

/// When `stats` may send again under `max_per_hour` (None: now).
pub(super) fn limited_until(stats: &mut TargetStats, now: u64, max_per_hour: u32) -> Option<u64> {
    while stats.sent.front().is_some_and(|t| now.saturating_sub(*t) >= 3_600_000) {
        stats.sent.pop_front();
    }
    if stats.sent.len() < max_per_hour as usize {
        stats.limited_logged = false;
        return None;
    }
    stats.sent.front().map(|t| t + 3_600_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_a_second_to_its_cap() {
        let max = Duration::from_secs(300);
        let got: Vec<u64> = (1..=10).map(|a| backoff_ms(a, max) / 1000).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff_ms(60, Duration::from_secs(5)), 5000);
    }

    #[test]
    fn the_rate_limit_holds_back_until_the_oldest_of_the_hour_ages_out() {
        let mut s = TargetStats::default();
        assert_eq!(limited_until(&mut s, 0, 2), None);
        s.sent.extend([1_000, 2_000]);
        assert_eq!(limited_until(&mut s, 3_000, 2), Some(3_601_000));
        assert_eq!(limited_until(&mut s, 3_601_000, 2), None, "the oldest aged out");
    }

    fn note(id: u64) -> Notification {
        Notification {
            id,
            status: drpair_types::notify::NotificationStatus::Event,
            kind: "test".into(),
            key: "k".into(),
            severity: drpair_types::notify::Severity::Error,
            pair: None,
            summary: "s".into(),
            message: "m".into(),
            time: String::new(),
            time_unix_ms: 0,
            since: String::new(),
            standby: "h".into(),
        }
    }

    #[test]
    fn the_queue_survives_a_reopen_and_forgets_targets_no_longer_configured() {
        let dir = tempfile::tempdir().unwrap();
        let targets = vec!["a".to_string(), "b".to_string()];
        {
            let store = Store::open(dir.path()).unwrap();
            let mut ob = Outbox::open(store, &targets).unwrap();
            for _ in 0..3 {
                let id = ob.next_id();
                ob.push(note(id), targets.clone()).unwrap();
            }
            ob.done(1, "a").unwrap();
            ob.done(1, "b").unwrap();
            ob.done(2, "a").unwrap();
            ob.failed(3, "b", Duration::from_secs(5)).unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let ob = Outbox::open(store.clone(), &["b".to_string()]).unwrap();
        assert_eq!(ob.queued(), 2);
        assert_eq!(ob.next_for("b").map(|(id, ..)| id), Some(2), "in order");
        assert_eq!(ob.pending_for("a"), 0, "a is no longer configured");
        let mut ob = Outbox::open(store, &[]).unwrap();
        assert_eq!(ob.queued(), 0, "nobody to deliver to: dropped");
        assert_eq!(ob.next_id(), 4, "ids keep increasing after the queue empties");
    }
}
