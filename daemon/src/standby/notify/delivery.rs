//! One task per target: delivers its notifications from the outbox in order, retrying with
//! backoff while it fails, at most `max_per_hour` an hour.

use super::notifier::{Notifier, deliver};
use super::outbox::limited_until;
use crate::timefmt::now_ms;
use std::sync::Arc;
use std::time::Duration;

/// Delivers `target`'s notifications in order, for as long as the standby runs.
pub async fn deliver_loop(n: Arc<Notifier>, index: usize, target: String) {
    let cfg = n.cfg.targets[index].clone();
    let wake = n.wake[index].clone();
    let idle = Duration::from_secs(5);
    loop {
        let now = now_ms();
        let next = n.outbox.lock().expect("outbox").next_for(&target);
        let Some((id, note, not_before)) = next else {
            let _ = tokio::time::timeout(idle, wake.notified()).await;
            continue;
        };
        if now.saturating_sub(note.time_unix_ms) > n.cfg.give_up_after.as_millis() as u64 {
            tracing::error!(target = %target, id, "notification given up after {}: {}", humantime::format_duration(n.cfg.give_up_after), note.summary);
            if let Err(e) = n.outbox.lock().expect("outbox").done(id, &target) {
                tracing::error!("notification queue: {e}");
            }
            continue;
        }
        let limit = {
            let mut ob = n.outbox.lock().expect("outbox");
            let s = ob.stats.entry(target.clone()).or_default();
            let until = limited_until(s, now, n.cfg.max_per_hour);
            if until.is_some() && !s.limited_logged {
                s.limited_logged = true;
                tracing::warn!(target = %target, "{} notifications sent in the last hour (max_per_hour): the next ones wait", n.cfg.max_per_hour);
            }
            until
        };
        let wait_until = limit.unwrap_or(0).max(not_before);
        if wait_until > now {
            let wait = Duration::from_millis(wait_until - now).min(idle);
            let _ = tokio::time::timeout(wait, wake.notified()).await;
            continue;
        }
        let r = deliver(&cfg, &note).await;
        let mut ob = n.outbox.lock().expect("outbox");
        let s = ob.stats.entry(target.clone()).or_default();
        let stored = match r {
            Ok(answer) => {
                s.delivered += 1;
                s.last_delivered_ms = Some(now_ms());
                s.last_error = None;
                s.sent.push_back(now_ms());
                metrics::counter!("drpair_notify_delivered_total", "target" => target.clone()).increment(1);
                tracing::info!(target = %target, id, "notification delivered: {answer}");
                ob.done(id, &target)
            }
            Err(e) => {
                s.failed_attempts += 1;
                s.last_error = Some(e.clone());
                metrics::counter!("drpair_notify_failed_attempts_total", "target" => target.clone()).increment(1);
                let r = ob.failed(id, &target, n.cfg.retry_max_interval);
                if let Ok(next) = &r {
                    let after = Duration::from_millis(next.saturating_sub(now_ms()));
                    tracing::warn!(target = %target, id, "notification not delivered ({e}); next attempt in {}", humantime::format_duration(Duration::from_secs(after.as_secs())));
                }
                r.map(|_| ())
            }
        };
        ob.report_queued();
        if let Err(e) = stored {
            tracing::error!("notification queue: {e}");
        }
    }
}
