//! Bandwidth limits on the link, enforced where the bytes arrive: every connection's reads
//! are paced through its pair's bucket and the standby-wide bucket ([`crate::link::meter`],
//! [`super::wide_limit`]), so TCP's flow control holds the agent back, and each agent is
//! asked to send at its pace. Settings are rates or schedules ([`drpair_types::Schedule`])
//! evaluated once a second in the standby's local time zone; a change through the API is
//! applied at once, with no reconnect.

use super::Standby;
use super::pair::PairHandle;
use super::wide_limit::local_now;
use drpair_types::{Schedule, StandbySettings};
use std::time::Instant;

/// Sets a pair's bucket from its own setting now, and notes the limit in force and the pace
/// its agent is asked to send at.
pub fn apply_pair(sb: &Standby, h: &PairHandle) {
    apply_shared(sb, h, connected(sb), local_now());
}

/// [`apply_pair`] for every pair (after a change of the standby-wide limit).
pub fn apply_all(sb: &Standby) {
    let (sharing, when) = (connected(sb), local_now());
    for h in sb.registry.all() {
        apply_shared(sb, &h, sharing, when);
    }
}

/// Pairs whose agent is connected now (they share the standby-wide limit); at least 1.
fn connected(sb: &Standby) -> u64 {
    let n = sb.registry.all().iter().filter(|p| p.runtime.lock().expect("runtime").link.meter.is_some()).count();
    n.max(1) as u64
}

/// [`apply_pair`] with the number of connected pairs and the local time (weekday, minute)
/// taken once for all of them.
fn apply_shared(sb: &Standby, h: &PairHandle, sharing: u64, (day, minute): (u8, u16)) {
    let setting = h.record.lock().expect("record").bandwidth.clone();
    let own = setting.and_then(|t| Schedule::parse(&t).ok()).and_then(|s| s.at(day, minute)).unwrap_or(0);
    let global = sb.bandwidth.global.rate();
    let mut rt = h.runtime.lock().expect("runtime");
    rt.link.bucket.set_rate(own);
    rt.link.pace = pace(own, global, sharing);
    rt.link.limit = match (own, global) {
        (0, 0) => (0, None),
        (p, g) if g == 0 || (p > 0 && p <= g) => (p, Some("pair")),
        (_, g) => (g, Some("standby")),
    };
}

/// The rate an agent is asked to send at: its pair's limit, or an even share of the
/// standby-wide limit among the connected pairs, whichever is lower (0: unlimited). A hint
/// that keeps queues short; what the standby reads is held to the limits exactly.
fn pace(own: u64, global: u64, sharing: u64) -> u64 {
    let share = if global > 0 { (global / sharing).max(drpair_types::bandwidth::MIN_RATE) } else { 0 };
    match (own, share) {
        (0, s) => s,
        (o, 0) => o,
        (o, s) => o.min(s),
    }
}

/// Once a second: schedules applied, and every link's wire rate sampled.
pub fn tick(sb: &Standby) {
    sb.bandwidth.apply_now();
    let now = Instant::now();
    let (sharing, when) = (connected(sb), local_now());
    for h in sb.registry.all() {
        apply_shared(sb, &h, sharing, when);
        h.runtime.lock().expect("runtime").link.sample(now);
    }
}

/// The standby-wide settings and the rate of every link together.
pub fn standby_settings(sb: &Standby) -> StandbySettings {
    let now = Instant::now();
    let rate = sb.registry.all().iter().map(|h| h.runtime.lock().expect("runtime").link.rate(now)).sum::<f64>();
    let g = sb.bandwidth.global.rate();
    StandbySettings {
        bandwidth: sb.bandwidth.setting().to_string(),
        bandwidth_limit_bytes_per_second: (g > 0).then_some(g),
        wire_bytes_per_second: rate.round(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agents_are_paced_at_the_lower_limit_or_their_share() {
        assert_eq!(pace(0, 0, 3), 0);
        assert_eq!(pace(10, 0, 3), 10);
        assert_eq!(pace(0, 90 << 20, 3), 30 << 20);
        assert_eq!(pace(20 << 20, 90 << 20, 3), 20 << 20);
        assert_eq!(pace(0, 32 << 10, 4), drpair_types::bandwidth::MIN_RATE);
    }
}
