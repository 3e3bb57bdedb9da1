//! What the standby knows of a pair's link now: the live connection's meter, the pair's
//! bandwidth bucket and the limit in force, the heartbeat's round trip, a short history of
//! bytes on the wire (for the rate), and counters named for what they count.

use crate::link::meter::{Bucket, LinkMeter};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::LinkStatus;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// The window the wire rate is measured over.
const RATE_WINDOW: Duration = Duration::from_secs(3);

#[derive(Debug, Default)]
pub struct LinkRuntime {
    /// The live connection's meter.
    pub meter: Option<Arc<LinkMeter>>,
    /// The pair's own limit (its rate set from the pair's setting once a second).
    pub bucket: Arc<Bucket>,
    /// The limit in force now (bytes per second, 0: none) and which setting sets it.
    pub limit: (u64, Option<&'static str>),
    /// The rate the agent is asked to send at (0: as fast as it can): the pair's limit, or
    /// its share of the standby-wide one.
    pub pace: u64,
    /// Bytes received and sent over connections that ended.
    done: (u64, u64),
    /// (when, bytes received in all): a sample a second, for the rate.
    samples: VecDeque<(Instant, u64)>,
    /// The heartbeats in flight: (seq, when sent), the newest few.
    pings: VecDeque<(u64, Instant)>,
    next_seq: u64,
    pub rtt: Option<Duration>,
    pub last_pong: Option<Instant>,
    pub connections: u64,
    pub connections_failed: u64,
    pub stalls: u64,
    pub frames_refused_checksum: u64,
    pub chunks_refused: u64,
    pub last_disconnect: Option<String>,
}

impl LinkRuntime {
    /// A connection was admitted: its meter is the live one.
    pub fn connected(&mut self, meter: Arc<LinkMeter>) {
        self.connections += 1;
        self.meter = Some(meter);
        self.pings.clear();
        self.rtt = None;
        self.last_pong = None;
    }

    /// The connection of `meter` ended (`why`: its failure, if it failed).
    pub fn ended(&mut self, meter: &Arc<LinkMeter>, why: Option<&str>) {
        if self.meter.as_ref().is_some_and(|m| Arc::ptr_eq(m, meter)) {
            self.meter = None;
        }
        self.done.0 += meter.received.load(Ordering::Relaxed);
        self.done.1 += meter.sent.load(Ordering::Relaxed);
        let when = rfc3339_ms(now_ms());
        self.last_disconnect = Some(match why {
            Some(w) => {
                self.connections_failed += 1;
                format!("{when} {w}")
            }
            None => format!("{when} the connection ended normally"),
        });
    }

    /// The next heartbeat's sequence number; remembered to time its answer (a lost answer
    /// only drops out of the few remembered).
    pub fn ping(&mut self) -> u64 {
        self.next_seq += 1;
        if self.pings.len() == 8 {
            self.pings.pop_front();
        }
        self.pings.push_back((self.next_seq, Instant::now()));
        self.next_seq
    }

    /// The agent answered heartbeat `seq`.
    pub fn pong(&mut self, seq: u64) {
        let now = Instant::now();
        self.last_pong = Some(now);
        if let Some(i) = self.pings.iter().position(|(s, _)| *s == seq) {
            self.rtt = Some(now - self.pings[i].1);
            self.pings.drain(..=i);
        }
    }

    fn totals(&self) -> (u64, u64) {
        let (r, s) = self
            .meter
            .as_ref()
            .map(|m| (m.received.load(Ordering::Relaxed), m.sent.load(Ordering::Relaxed)))
            .unwrap_or_default();
        (self.done.0 + r, self.done.1 + s)
    }

    /// Takes a sample of the bytes received (once a second).
    pub fn sample(&mut self, now: Instant) {
        let total = self.totals().0;
        self.samples.push_back((now, total));
        while self.samples.len() > 2 && now.duration_since(self.samples[0].0) > RATE_WINDOW * 3 {
            self.samples.pop_front();
        }
    }

    /// Bytes per second received over the last [`RATE_WINDOW`] (up to now: a stalled link
    /// reads zero once its last bytes are out of the window).
    pub fn rate(&self, now: Instant) -> f64 {
        let total = self.totals().0;
        let Some(&(t0, b0)) = self.samples.iter().find(|(t, _)| now.duration_since(*t) <= RATE_WINDOW) else {
            return 0.0;
        };
        let secs = now.duration_since(t0).as_secs_f64();
        if secs < 0.5 { 0.0 } else { total.saturating_sub(b0) as f64 / secs }
    }

    /// The link's part of a pair's status.
    pub fn status(&self, bandwidth: Option<&str>, agent_read: f64) -> LinkStatus {
        let now = Instant::now();
        let (received, sent) = self.totals();
        let ms = |t: Instant| now.saturating_duration_since(t).as_millis() as u64;
        LinkStatus {
            connected: self.meter.is_some(),
            wire_bytes_per_second: self.rate(now).round(),
            wire_bytes_received: received,
            wire_bytes_sent: sent,
            agent_read_bytes_per_second: agent_read,
            last_byte_ms_ago: self.meter.as_ref().map(|m| ms(m.last_byte())),
            last_ack_ms_ago: self.meter.as_ref().and(self.last_pong).map(ms),
            rtt_ms: self.rtt.map(|d| (d.as_secs_f64() * 1e5).round() / 100.0),
            bandwidth_limit_bytes_per_second: (self.limit.0 > 0).then_some(self.limit.0),
            bandwidth_limited_by: self.limit.1.map(str::to_string),
            bandwidth: bandwidth.unwrap_or("unlimited").to_string(),
            connections: self.connections,
            reconnects: self.connections.saturating_sub(1),
            connections_failed: self.connections_failed,
            stalls: self.stalls,
            frames_refused_checksum: self.frames_refused_checksum,
            chunks_refused: self.chunks_refused,
            last_disconnect: self.last_disconnect.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rate_falls_to_zero_when_bytes_stop() {
        let mut l = LinkRuntime::default();
        let m = Arc::new(LinkMeter::default());
        l.connected(m.clone());
        let t = Instant::now();
        for i in 0..5u64 {
            m.received.store(i * 1_000_000, Ordering::Relaxed);
            l.sample(t + Duration::from_secs(i));
        }
        let r = l.rate(t + Duration::from_secs(4));
        assert!((r - 1_000_000.0).abs() < 1.0, "{r}");
        for i in 5..9u64 {
            l.sample(t + Duration::from_secs(i));
        }
        assert_eq!(l.rate(t + Duration::from_secs(8)), 0.0);
        l.ended(&m, Some("stalled"));
        assert!(l.meter.is_none());
        assert_eq!(l.status(None, 0.0).wire_bytes_received, 4_000_000);
        assert_eq!(l.connections_failed, 1);
    }

    #[test]
    fn heartbeats_time_the_round_trip() {
        let mut l = LinkRuntime::default();
        let a = l.ping();
        let b = l.ping();
        l.pong(9);
        assert!(l.rtt.is_none(), "an answer to no heartbeat times nothing");
        l.pong(b);
        assert!(l.rtt.is_some() && l.last_pong.is_some());
        l.rtt = None;
        l.pong(a);
        assert!(l.rtt.is_none(), "an answer older than the last timed one is dropped");
        for _ in 0..20 {
            l.ping();
        }
        assert_eq!(l.pings.len(), 8, "lost answers do not pile up");
    }
}
