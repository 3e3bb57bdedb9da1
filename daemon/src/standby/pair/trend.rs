//! A short trend of each pair for the panel's charts: lag, throughput, backlog and progress
//! sampled every [`INTERVAL`] for the last [`WINDOW`]. In memory only: a restarted standby
//! starts a new trend (the recovery points themselves are the durable record). The sampler
//! that feeds it runs in `standby::trend`.

use drpair_types::{PairStatus, PairTrend, TrendSample};
use std::collections::VecDeque;
use std::time::Duration;

/// Time between samples.
pub const INTERVAL: Duration = Duration::from_secs(2);
/// Trend samples kept per pair.
pub const WINDOW: Duration = Duration::from_secs(60 * 60);
const CAPACITY: usize = (WINDOW.as_secs() / INTERVAL.as_secs()) as usize;

/// One pair's samples and the counters of the previous sample (for rates).
#[derive(Debug, Default)]
pub struct Trend {
    samples: VecDeque<TrendSample>,
    /// (time ms, bytes on the wire, bytes stored) at the previous sample.
    prev: Option<(u64, u64, u64)>,
}

impl Trend {
    /// Adds a sample of `s` taken at `t_ms`; drops the oldest past the window.
    pub fn record(&mut self, s: &PairStatus, t_ms: u64) {
        let (wire, stored) = (s.stats.bytes_on_wire, s.stats.bytes_stored);
        let rate = |now: u64, then: u64, dt_ms: u64| now.saturating_sub(then) as f64 * 1000.0 / dt_ms.max(1) as f64;
        let (wire_rate, stored_rate) = match self.prev {
            // Counters restart from zero with the standby; a drop is not a negative rate.
            Some((t0, w0, s0)) if t_ms > t0 => (rate(wire, w0, t_ms - t0), rate(stored, s0, t_ms - t0)),
            _ => (0.0, 0.0),
        };
        self.prev = Some((t_ms, wire, stored));
        if self.samples.len() == CAPACITY {
            self.samples.pop_front();
        }
        self.samples.push_back(TrendSample {
            t_unix_ms: t_ms,
            state: s.state,
            lag_seconds: s.stats.lag_seconds,
            read_bytes_per_second: s.stats.throughput_bytes_per_second,
            wire_bytes_per_second: wire_rate,
            stored_bytes_per_second: stored_rate,
            backlog_bytes: s.stats.backlog_bytes,
            progress_percent: s.stats.progress_percent,
        });
    }

    /// Samples taken after `since_ms` (all with 0), oldest first.
    pub fn view(&self, pair: &PairStatus, since_ms: u64) -> PairTrend {
        PairTrend {
            pair_id: pair.pair_id.clone(),
            interval_seconds: INTERVAL.as_secs(),
            window_seconds: WINDOW.as_secs(),
            samples: self.samples.iter().filter(|x| x.t_unix_ms > since_ms).cloned().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{Health, HealthLevel, PairId, PairState, PairStats};

    fn status(wire: u64, stored: u64, lag: f64) -> PairStatus {
        PairStatus {
            pair_id: PairId::new("h").unwrap(),
            state: PairState::Replicating,
            state_label: String::new(),
            state_explanation: String::new(),
            ready_for_failover: true,
            lineage: None,
            recovery_checkpoint: None,
            checkpoint: None,
            last_point: None,
            agent: None,
            disks: vec![],
            stats: PairStats { bytes_on_wire: wire, bytes_stored: stored, lag_seconds: lag, ..Default::default() },
            failure_messages: vec![],
            stop_reason: None,
            stop_reason_alias: None,
            dates: Default::default(),
            stop_at: None,
            restart: None,
            change_history_from: None,
            registered_at: String::new(),
            dump: None,
            source_verify: None,
            retention: None,
            verify: None,
            storage: None,
            failover: None,
            failback: None,
            protected_by: None,
            recovered_from: None,
            health: Health { level: HealthLevel::Ok, reason: String::new() },
            allowed_actions: vec![],
            standby_fingerprint: None,
            insecure_plaintext: false,
            configuration_change: None,
            link: Default::default(),
            rpo_state: None,
            last_successes: Default::default(),
        }
    }

    #[test]
    fn rates_between_samples_and_a_bounded_window() {
        let mut h = Trend::default();
        h.record(&status(0, 0, 1.0), 10_000);
        h.record(&status(4_000, 1_000, 2.0), 12_000);
        // The standby restarted: counters went back; no negative rate.
        h.record(&status(100, 0, 3.0), 14_000);
        let v = h.view(&status(0, 0, 0.0), 0);
        let rates: Vec<_> = v.samples.iter().map(|s| (s.wire_bytes_per_second, s.stored_bytes_per_second)).collect();
        assert_eq!(rates, vec![(0.0, 0.0), (2000.0, 500.0), (0.0, 0.0)]);
        assert_eq!(h.view(&status(0, 0, 0.0), 12_000).samples.len(), 1);
        for i in 0..CAPACITY as u64 + 10 {
            h.record(&status(0, 0, 0.0), 20_000 + i * 2000);
        }
        let v = h.view(&status(0, 0, 0.0), 0);
        assert_eq!(v.samples.len(), CAPACITY);
        assert_eq!(v.samples[0].t_unix_ms, 20_000 + 10 * 2000, "the oldest samples are dropped first");
    }
}
