//! The sampler behind the panel's charts: every pair's status every [`INTERVAL`], kept in its
//! [`History`](super::pair::Trend).

use super::Standby;
use super::pair::{INTERVAL, PairHandle};
use crate::timefmt::now_ms;

/// Samples one pair now.
pub fn sample(h: &PairHandle) {
    let s = h.status();
    h.trend.lock().expect("trend").record(&s, now_ms());
}

/// Samples every pair every [`INTERVAL`], for as long as the standby runs.
pub fn spawn(sb: std::sync::Arc<Standby>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tick.tick().await;
            for h in sb.registry.all() {
                sample(&h);
            }
        }
    })
}
