//! The notifier's tasks: once a second the conditions that hold are read from the standby and
//! handed to [`Notifier::observe`]; one delivery task per target.

use super::conditions;
use super::delivery::deliver_loop;
use crate::standby::Standby;
use crate::timefmt::now_ms;
use std::sync::Arc;
use std::time::Duration;

/// Reads every condition that holds now and hands them to the notifier.
pub fn evaluate(sb: &Standby) {
    let n = &sb.notify;
    let cfg = n.config();
    let now = now_ms();
    let facts = conditions::StandbyFacts {
        now_ms: now,
        started_ms: n.started_ms,
        agent_unseen_ms: cfg.agent_unseen.as_millis() as u64,
        low_disk: sb.resources.disk_shortage(),
        low_memory: sb.resources.memory_shortage(),
        expiring: Vec::new(),
        expiry_warning_ms: cfg.expiry_warning.as_millis() as u64,
    };
    let mut current = conditions::of_standby(&facts);
    for h in sb.registry.all() {
        current.extend(conditions::of_pair(&h.status(), &facts));
    }
    n.observe(now, current);
}

/// Starts the evaluation (once a second) and one delivery task per target.
pub fn spawn(sb: Arc<Standby>) -> Vec<tokio::task::JoinHandle<()>> {
    sb.notify.outbox.lock().expect("outbox").report_queued();
    let mut tasks = Vec::new();
    for (i, t) in sb.notify.cfg.targets.iter().enumerate() {
        let (n, name) = (sb.notify.clone(), t.name.clone());
        tasks.push(tokio::spawn(async move { deliver_loop(n, i, name).await }));
    }
    tasks.push(tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            let sb2 = sb.clone();
            if let Err(e) = tokio::task::spawn_blocking(move || evaluate(&sb2)).await {
                tracing::error!("evaluating notifications panicked: {e}");
            }
        }
    }));
    tasks
}
