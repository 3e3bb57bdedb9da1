//! The notifier's tasks: once a second the conditions that hold are read from the standby and
//! handed to [`Notifier::observe`]; one delivery task per target.

use super::conditions;
use super::delivery::deliver_loop;
use crate::standby::Standby;
use crate::timefmt::now_ms;
use std::sync::Arc;
use std::time::Duration;

/// Credentials are read again this often (their files are parsed; they change seldom).
const EXPIRY_EVERY: u64 = 10;

/// Every credential that expires, as (what, name, not-after in unix ms).
fn expiring(sb: &Standby) -> Vec<(String, String, u64)> {
    use drpair_types::expiry::ExpiryRole;
    crate::standby::expiry::expiries(sb)
        .into_iter()
        .map(|e| {
            let what = match e.role {
                ExpiryRole::Server => "server certificate",
                ExpiryRole::Ca => "CA certificate",
                ExpiryRole::Agent => "agent certificate of",
                ExpiryRole::Token => "API token",
            };
            (what.to_string(), e.name, u64::try_from(e.not_after_unix).unwrap_or(0).saturating_mul(1000))
        })
        .collect()
}

/// Reads every condition that holds now and hands them to the notifier; `expiring` are the
/// credentials as last read.
pub fn evaluate(sb: &Standby, expiring: Vec<(String, String, u64)>) {
    let n = &sb.notify;
    let cfg = n.config();
    let now = now_ms();
    let facts = conditions::StandbyFacts {
        now_ms: now,
        started_ms: n.started_ms,
        agent_unseen_ms: cfg.agent_unseen.as_millis() as u64,
        low_disk: sb.resources.disk_shortage(),
        low_memory: sb.resources.memory_shortage(),
        expiring,
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
        let mut credentials = Vec::new();
        for n in 0u64.. {
            tick.tick().await;
            let sb2 = sb.clone();
            let read_again = n % EXPIRY_EVERY == 0;
            let known = std::mem::take(&mut credentials);
            match tokio::task::spawn_blocking(move || {
                let now = if read_again { expiring(&sb2) } else { known };
                evaluate(&sb2, now.clone());
                now
            })
            .await
            {
                Ok(c) => credentials = c,
                Err(e) => tracing::error!("evaluating notifications panicked: {e}"),
            }
        }
    }));
    tasks
}
