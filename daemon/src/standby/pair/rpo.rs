//! A pair against its RPO target (issue 26): its current RPO is the age of its newest
//! committed point (the registration's age before the first), its level `ok` below the
//! target, `warning` from the target, `error` from the error threshold (twice the target
//! unless set). The standby's watcher evaluates every pair once a second
//! ([`tick`]), so a change of level is logged (the journal) when it happens, not when
//! someone asks; status shows the level and since when ([`state`]).
//!
//! The target in force ([`in_force`]) is the pair's own, else the standby's default
//! (`[standby] rpo_target` / `rpo_error`, [`RpoDefault`]) unless the pair was set `off`;
//! status says whose it is.

use super::handle::PairHandle;
use super::record::PairRecord;
use super::runtime::PairRuntime;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::rpo::RpoDefault;
use drpair_types::rpo::rpo_text;
use drpair_types::{RpoLevel, RpoState, RpoTargetSource};

/// The RPO target in force, its error threshold (the one set, or twice the target) and
/// whose it is: the pair's own; else, unless the pair is set `off`, the standby's default.
pub fn in_force(rec: &PairRecord, default: Option<RpoDefault>) -> Option<(u64, u64, RpoTargetSource)> {
    let twice = |t: u64| t.saturating_mul(2);
    if let Some(t) = rec.rpo_target_secs {
        return Some((t, rec.rpo_error_secs.unwrap_or(twice(t)), RpoTargetSource::Pair));
    }
    if rec.rpo_target_off {
        return None;
    }
    default.map(|d| (d.target_secs, d.error_secs.unwrap_or(twice(d.target_secs)), RpoTargetSource::Standby))
}

/// Milliseconds since the epoch of the newest committed point (or the registration).
fn newest_ms(rec: &PairRecord, rt: &PairRuntime) -> u64 {
    rt.last_point.as_ref().map_or(rec.registered_unix_ms, |p| p.time_unix_ms)
}

/// The pair's RPO state at `now` (None without a target), remembering in `rt` when the level
/// last changed. A level first seen (at start) is dated from the newest point: `warning` and
/// `error` from when the RPO crossed their thresholds, `ok` from the point itself.
pub fn state(rec: &PairRecord, rt: &mut PairRuntime, now: u64) -> Option<RpoState> {
    let (target, error, source) = in_force(rec, rt.rpo_default)?;
    let newest = newest_ms(rec, rt);
    let rpo = now.saturating_sub(newest) as f64 / 1000.0;
    let level = RpoLevel::of(rpo, target, error);
    let since = match rt.rpo_seen {
        Some((seen, since)) if seen == level => since,
        seen => {
            let crossed = match level {
                RpoLevel::Error => newest + error * 1000,
                RpoLevel::Warning => newest + target * 1000,
                // Back to ok: when it was seen; ok from the start: since the newest point.
                RpoLevel::Ok if seen.is_some() => now,
                RpoLevel::Ok => newest,
            };
            let since = crossed.min(now);
            if let Some((from, _)) = seen {
                log_change(rec, from, level, rpo, target, error);
            }
            rt.rpo_seen = Some((level, since));
            since
        }
    };
    Some(RpoState {
        state: level,
        since: rfc3339_ms(since),
        since_unix_ms: since,
        rpo_seconds: (rpo * 10.0).round() / 10.0,
        target_seconds: target,
        error_seconds: error,
        target_source: source,
    })
}

fn log_change(rec: &PairRecord, from: RpoLevel, to: RpoLevel, rpo: f64, target: u64, error: u64) {
    let pair = &rec.pair_id;
    let (t, e) = (rpo_text(target), rpo_text(error));
    match to {
        RpoLevel::Ok => {
            tracing::info!(%pair, from = from.as_str(), "RPO back to ok: the newest point is {rpo:.0}s old (target {t})")
        }
        RpoLevel::Warning => {
            tracing::warn!(%pair, from = from.as_str(), "RPO warning: the newest point is {rpo:.0}s old, at or over the target of {t}")
        }
        RpoLevel::Error => {
            tracing::error!(%pair, from = from.as_str(), "RPO error: the newest point is {rpo:.0}s old, at or over the error threshold of {e} (target {t})")
        }
    }
}

/// Evaluates the pair's RPO now (the watcher's once-a-second call).
pub fn tick(h: &PairHandle) {
    let rec = h.record.lock().expect("record");
    let mut rt = h.runtime.lock().expect("runtime");
    state(&rec, &mut rt, now_ms());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::test_record;

    #[test]
    fn levels_and_since() {
        let mut rec = test_record(drpair_types::PairState::Replicating, 0);
        rec.registered_unix_ms = 1_000_000;
        let mut rt = PairRuntime::default();
        assert!(state(&rec, &mut rt, 1_010_000).is_none(), "no target, no state");
        rec.rpo_target_secs = Some(30);
        let s = state(&rec, &mut rt, 1_010_000).unwrap();
        assert_eq!((s.state, s.since_unix_ms, s.rpo_seconds, s.error_seconds), (RpoLevel::Ok, 1_000_000, 10.0, 60));
        let s = state(&rec, &mut rt, 1_045_000).unwrap();
        assert_eq!((s.state, s.since_unix_ms), (RpoLevel::Warning, 1_030_000), "dated from the crossing");
        let s = state(&rec, &mut rt, 1_050_000).unwrap();
        assert_eq!((s.state, s.since_unix_ms), (RpoLevel::Warning, 1_030_000), "the same level keeps its date");
        let s = state(&rec, &mut rt, 1_061_000).unwrap();
        assert_eq!((s.state, s.since_unix_ms), (RpoLevel::Error, 1_060_000));
        rec.rpo_error_secs = Some(100);
        let s = state(&rec, &mut rt, 1_062_000).unwrap();
        assert_eq!((s.state, s.error_seconds), (RpoLevel::Warning, 100), "a set threshold replaces 2x");
        rt.last_point = Some(drpair_types::RecoveryPoint { time_unix_ms: 1_061_500, ..test_point() });
        let s = state(&rec, &mut rt, 1_063_000).unwrap();
        assert_eq!((s.state, s.since_unix_ms, s.rpo_seconds), (RpoLevel::Ok, 1_063_000, 1.5), "back to ok when seen");
    }

    #[test]
    fn the_standby_default_applies_unless_the_pair_has_its_own_or_is_off() {
        let mut rec = test_record(drpair_types::PairState::Replicating, 0);
        rec.registered_unix_ms = 1_000_000;
        let mut rt = PairRuntime::default();
        let d = RpoDefault { target_secs: 30, error_secs: None };
        assert_eq!(in_force(&rec, None), None);
        assert_eq!(in_force(&rec, Some(d)), Some((30, 60, RpoTargetSource::Standby)));
        let d = RpoDefault { target_secs: 30, error_secs: Some(45) };
        rt.rpo_default = Some(d);
        let s = state(&rec, &mut rt, 1_040_000).unwrap();
        assert_eq!(
            (s.state, s.target_seconds, s.error_seconds, s.target_source),
            (RpoLevel::Warning, 30, 45, RpoTargetSource::Standby)
        );
        assert_eq!(serde_json::to_value(&s).unwrap()["target_source"], "standby");
        rec.rpo_target_secs = Some(100);
        assert_eq!(in_force(&rec, Some(d)), Some((100, 200, RpoTargetSource::Pair)), "the pair's own wins");
        rec.rpo_target_secs = None;
        rec.rpo_target_off = true;
        assert_eq!(in_force(&rec, Some(d)), None, "off: no target, default or not");
        assert!(state(&rec, &mut rt, 1_040_000).is_none());
    }

    fn test_point() -> drpair_types::RecoveryPoint {
        use drpair_types::{Consistency, PairId, PointKind, PointSizes};
        drpair_types::RecoveryPoint {
            id: 1,
            pair_id: PairId::new("rpo-1").unwrap(),
            epoch: 1,
            lineage: drpair_types::Lineage::nil(),
            time: String::new(),
            time_unix_ms: 0,
            committed_unix_ms: 0,
            kind: PointKind::Scheduled,
            consistency: Consistency::Fuzzy,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes::default(),
            quiesce: None,
            full_pass: false,
            damage: None,
            read_window_ms: None,
            window_exceeded: false,
        }
    }
}
