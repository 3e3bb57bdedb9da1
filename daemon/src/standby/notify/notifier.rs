//! The notifier: what has been told and what waits in the outbox, the journal, test
//! notifications, and one attempt to deliver to a target.

use super::outbox::Outbox;
use super::tracker::{Condition, Draft};
use super::{smtp, webhook};
use crate::config::notify::{NotifyConfig, Target, TargetKind, pattern_matches};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::notify::{
    Notification, NotificationStatus, NotifyStatus, NotifyTarget, NotifyTestReport, NotifyTestResult, Severity,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The standby's notifications: configuration, outbox and delivery.
pub struct Notifier {
    pub(super) cfg: NotifyConfig,
    host: String,
    pub(super) started_ms: u64,
    pub(super) outbox: Mutex<Outbox>,
    /// One per target (same order as `cfg.targets`): wakes its delivery task.
    pub(super) wake: Vec<Arc<tokio::sync::Notify>>,
}

impl Notifier {
    /// Loads the outbox and the told conditions from the store.
    pub fn open(cfg: NotifyConfig, store: drpair_store::Store) -> anyhow::Result<Arc<Self>> {
        let names: Vec<String> = cfg.targets.iter().map(|t| t.name.clone()).collect();
        let outbox = Outbox::open(store, &names)?;
        if outbox.queued() > 0 {
            tracing::info!(queued = outbox.queued(), "notifications from before the restart wait to be delivered");
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map_or_else(|_| "standby".into(), |h| h.trim().to_string());
        let wake = cfg.targets.iter().map(|_| Arc::new(tokio::sync::Notify::new())).collect();
        Ok(Arc::new(Self { cfg, host, started_ms: now_ms(), outbox: Mutex::new(outbox), wake }))
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.cfg
    }

    /// The targets a notification about `pair`, routed at `route`, goes to.
    fn targets_for(&self, pair: Option<&str>, route: Severity) -> Vec<String> {
        self.cfg
            .targets
            .iter()
            .filter(|t| route >= t.min_severity)
            .filter(|t| match pair {
                Some(p) => t.pairs.is_empty() || t.pairs.iter().any(|pat| pattern_matches(pat, p)),
                None => true,
            })
            .map(|t| t.name.clone())
            .collect()
    }

    fn notification(&self, id: u64, d: &Draft, now: u64) -> Notification {
        Notification {
            id,
            status: d.status,
            kind: d.kind.clone(),
            key: d.key.clone(),
            severity: d.severity,
            pair: d.pair.clone(),
            summary: d.summary.clone(),
            message: d.message.clone(),
            time: rfc3339_ms(now),
            time_unix_ms: now,
            since: rfc3339_ms(d.since_ms),
            standby: self.host.clone(),
        }
    }

    /// Compares `current` with what has been told; queues what that calls for.
    pub fn observe(&self, now: u64, current: Vec<Condition>) {
        let mut ob = self.outbox.lock().expect("outbox");
        let (drafts, changed) = ob.state.told.step(now, self.cfg.hold.as_millis() as u64, current);
        self.queue(&mut ob, drafts, changed, now);
    }

    /// Tells of a single event (a failed drill): not a condition, nothing to resolve.
    pub fn raise(
        &self,
        kind: &'static str,
        key: String,
        severity: Severity,
        pair: Option<&str>,
        summary: String,
        message: String,
    ) {
        let now = now_ms();
        let d = Draft {
            status: NotificationStatus::Event,
            key,
            kind: kind.into(),
            severity,
            route: severity,
            pair: pair.map(str::to_string),
            summary,
            message,
            since_ms: now,
        };
        let mut ob = self.outbox.lock().expect("outbox");
        self.queue(&mut ob, vec![d], false, now);
    }

    fn queue(&self, ob: &mut Outbox, drafts: Vec<Draft>, changed: bool, now: u64) {
        let mut woken = false;
        for d in &drafts {
            let id = ob.next_id();
            let n = self.notification(id, d, now);
            journal(&n);
            let targets = self.targets_for(n.pair.as_deref(), d.route);
            if let Err(e) = ob.push(n, targets) {
                tracing::error!("notification {id} could not be queued (it was logged above): {e}");
            }
            woken = true;
        }
        if changed && drafts.is_empty() {
            if let Err(e) = ob.save_state() {
                tracing::error!("saving the told conditions: {e}");
            }
        }
        if woken {
            self.wake.iter().for_each(|w| w.notify_one());
        }
    }

    /// What the API shows.
    pub fn status(&self) -> NotifyStatus {
        let ob = self.outbox.lock().expect("outbox");
        NotifyStatus {
            targets: self
                .cfg
                .targets
                .iter()
                .map(|t| {
                    let s = ob.stats(&t.name);
                    NotifyTarget {
                        name: t.name.clone(),
                        kind: kind_name(t).into(),
                        destination: destination(t),
                        min_severity: t.min_severity,
                        pairs: t.pairs.clone(),
                        pending: ob.pending_for(&t.name),
                        delivered: s.delivered,
                        failed_attempts: s.failed_attempts,
                        last_delivered_at: s.last_delivered_ms.map(rfc3339_ms),
                        last_error: s.last_error.clone(),
                    }
                })
                .collect(),
            queued: ob.queued(),
            conditions: ob.active(),
            hold_seconds: self.cfg.hold.as_secs(),
        }
    }

    /// `drpair notify test`: one test notification, sent now to `target` (or every target),
    /// outside the queue, so the answer says whether it arrived.
    pub async fn test(self: &Arc<Self>, target: Option<&str>) -> Result<NotifyTestReport, String> {
        let targets: Vec<Target> = match target {
            Some(name) => match self.cfg.targets.iter().find(|t| t.name == name) {
                Some(t) => vec![t.clone()],
                None => {
                    return Err(format!(
                        "no notification target is named '{name}' (configured: {})",
                        self.names().unwrap_or_else(|| "none".into())
                    ));
                }
            },
            None if self.cfg.targets.is_empty() => {
                return Err(
                    "no notification target is configured ([[standby.notify.targets]] in the standby's config)".into(),
                );
            }
            None => self.cfg.targets.clone(),
        };
        let now = now_ms();
        let id = self
            .outbox
            .lock()
            .expect("outbox")
            .next_id_saved()
            .map_err(|e| format!("saving the notification counter: {e}"))?;
        let d = Draft {
            status: NotificationStatus::Test,
            key: "test".into(),
            kind: "test".into(),
            severity: Severity::Info,
            route: Severity::Info,
            pair: None,
            summary: "Test notification from drpair".into(),
            message: "Sent by `drpair notify test`: if you read this, this target reaches you.".into(),
            since_ms: now,
        };
        let n = self.notification(id, &d, now);
        let mut results = Vec::new();
        for t in targets {
            let t0 = Instant::now();
            let r = deliver(&t, &n).await;
            tracing::info!(target = %t.name, ok = r.is_ok(), "test notification: {}", r.as_ref().unwrap_or_else(|e| e));
            let ok = r.is_ok();
            results.push(NotifyTestResult {
                target: t.name.clone(),
                ok,
                detail: r.unwrap_or_else(|e| e),
                duration_ms: t0.elapsed().as_millis() as u64,
            });
        }
        Ok(NotifyTestReport { results })
    }

    fn names(&self) -> Option<String> {
        (!self.cfg.targets.is_empty())
            .then(|| self.cfg.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", "))
    }
}

fn kind_name(t: &Target) -> &'static str {
    match t.kind {
        TargetKind::Webhook { .. } => "webhook",
        TargetKind::Smtp(_) => "smtp",
    }
}

fn destination(t: &Target) -> String {
    match &t.kind {
        TargetKind::Webhook { url, .. } => webhook::shown(url),
        TargetKind::Smtp(s) => format!("smtp://{}:{} → {}", s.host, s.port, s.to.join(", ")),
    }
}

/// The journal gets every notification, whatever the targets.
fn journal(n: &Notification) {
    let pair = n.pair.as_deref().unwrap_or("-");
    let status = format!("{:?}", n.status).to_lowercase();
    match n.severity {
        Severity::Error => tracing::error!(id = n.id, kind = %n.kind, pair, status, "notification: {}", n.summary),
        Severity::Warning => tracing::warn!(id = n.id, kind = %n.kind, pair, status, "notification: {}", n.summary),
        Severity::Info => tracing::info!(id = n.id, kind = %n.kind, pair, status, "notification: {}", n.summary),
    }
}

/// One attempt to deliver `n` to `t`, off the async threads, bounded by the target's timeout.
pub(super) async fn deliver(t: &Target, n: &Notification) -> Result<String, String> {
    let (t2, n2) = (t.clone(), n.clone());
    let attempt = tokio::task::spawn_blocking(move || match &t2.kind {
        TargetKind::Webhook { url, secret } => {
            webhook::send(url, secret.as_ref(), t2.ca_pem.as_deref(), t2.timeout, &n2)
        }
        TargetKind::Smtp(s) => smtp::send(s, t2.ca_pem.as_deref(), t2.timeout, &n2),
    });
    match tokio::time::timeout(t.timeout + Duration::from_secs(5), attempt).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(format!("the delivery panicked: {e}")),
        Err(_) => Err(format!("no answer within {}", humantime::format_duration(t.timeout))),
    }
}
