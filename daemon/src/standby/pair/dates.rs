//! The dates the reference workflow (DMS) shows of a pair, kept in its record: each is
//! derived from how a change moved the lifecycle (or the settings), wherever the change was
//! made, so no action can forget one.

use super::runtime::PairRuntime;
use crate::timefmt::rfc3339_ms;
use drpair_pair::Lifecycle;
use drpair_types::PairState;
use drpair_types::dates::PairDatesView;
use serde::{Deserialize, Serialize};

/// Milliseconds since the Unix epoch of what happened to the pair.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PairDates {
    pub fresh_start_unix_ms: Option<u64>,
    pub start_unix_ms: Option<u64>,
    pub stop_unix_ms: Option<u64>,
    pub last_stop_unix_ms: Option<u64>,
    pub full_load_start_unix_ms: Option<u64>,
    pub full_load_finish_unix_ms: Option<u64>,
    pub update_unix_ms: Option<u64>,
}

/// Sets the dates `d` from how a change moved the lifecycle from `b` to `a` (at `now`);
/// `settings` says whether the pair's settings (retention, stop position, disks) changed too.
pub fn note(b: &Lifecycle, a: &Lifecycle, settings: bool, d: &mut PairDates, now: u64) {
    let fresh = (!b.started && a.started) || (!b.restarting && a.restarting);
    if fresh {
        d.fresh_start_unix_ms = Some(now);
        d.start_unix_ms = Some(now);
        d.full_load_start_unix_ms = Some(now);
        d.full_load_finish_unix_ms = None;
        d.stop_unix_ms = None;
    }
    if !b.has_baseline && a.has_baseline {
        d.full_load_finish_unix_ms = Some(now);
    }
    let stopped = |s: PairState| s == PairState::Stopped;
    if !stopped(b.state) && stopped(a.state) {
        d.stop_unix_ms = Some(now);
        d.last_stop_unix_ms = Some(now);
    }
    // Leaving a hold for a running state is a resume (a start's own was set above).
    if b.holds() && !a.holds() && !fresh {
        d.start_unix_ms = Some(now);
    }
    if !stopped(a.state) {
        d.stop_unix_ms = None;
    }
    if b.state != a.state || fresh || settings {
        d.update_unix_ms = Some(now);
    }
}

/// The dates as status shows them (`registered`: when the pair was created).
pub fn view(d: &PairDates, l: &Lifecycle, registered: u64, rt: &PairRuntime, now: u64) -> PairDatesView {
    let t = |ms: Option<u64>| ms.map(rfc3339_ms);
    let until = d.stop_unix_ms.unwrap_or(now);
    let p = &rt.progress;
    let full_load_progress_percent = if l.has_baseline {
        100.0
    } else if p.pass == Some(drpair_wire::PassKind::Initial) && p.chunks_total > 0 {
        ((p.chunks_done as f64 * 1000.0 / p.chunks_total as f64).round() / 10.0).min(100.0)
    } else {
        0.0
    };
    PairDatesView {
        fresh_start_date: t(d.fresh_start_unix_ms),
        start_date: t(d.start_unix_ms),
        stop_date: t(d.stop_unix_ms),
        full_load_start_date: t(d.full_load_start_unix_ms),
        full_load_finish_date: t(d.full_load_finish_unix_ms),
        elapsed_time_millis: d.fresh_start_unix_ms.map_or(0, |s| until.saturating_sub(s)),
        full_load_progress_percent,
        last_stop_time: t(d.last_stop_unix_ms),
        create_time: rfc3339_ms(registered),
        update_time: rfc3339_ms(d.update_unix_ms.unwrap_or(registered)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::{PairRecord, test_record};
    use drpair_pair::PairOp;
    use drpair_types::StopReason;

    fn step(rec: &mut PairRecord, op: PairOp, now: u64) {
        let before = rec.clone();
        rec.lifecycle = rec.lifecycle.apply(op).unwrap();
        rec.note_dates(&before, now);
    }

    fn view_of(r: &PairRecord, now: u64) -> PairDatesView {
        view(&r.dates, &r.lifecycle, r.registered_unix_ms, &PairRuntime::default(), now)
    }

    #[test]
    fn each_date_follows_the_lifecycle() {
        let mut r = test_record(PairState::Initiating, 0);
        r.lifecycle = drpair_pair::Lifecycle { connected: true, ..drpair_pair::Lifecycle::new() };
        step(&mut r, PairOp::Start, 1_000);
        let d = r.dates.clone();
        assert_eq!(
            (d.fresh_start_unix_ms, d.start_unix_ms, d.full_load_start_unix_ms),
            (Some(1_000), Some(1_000), Some(1_000))
        );
        step(&mut r, PairOp::PointCommitted, 2_000);
        assert_eq!(r.dates.full_load_finish_unix_ms, Some(2_000));
        step(&mut r, PairOp::Stop(StopReason::Normal), 3_000);
        assert_eq!((r.dates.stop_unix_ms, r.dates.last_stop_unix_ms), (Some(3_000), Some(3_000)));
        let v = view_of(&r, 9_000);
        assert_eq!(v.elapsed_time_millis, 2_000, "up to the stop");
        assert_eq!(v.full_load_progress_percent, 100.0);
        step(&mut r, PairOp::Resume, 4_000);
        assert_eq!(
            (r.dates.start_unix_ms, r.dates.stop_unix_ms, r.dates.last_stop_unix_ms),
            (Some(4_000), None, Some(3_000))
        );
        assert_eq!(r.dates.fresh_start_unix_ms, Some(1_000), "a resume is not a fresh start");
        step(&mut r, PairOp::Restart, 5_000);
        assert_eq!((r.dates.fresh_start_unix_ms, r.dates.full_load_finish_unix_ms), (Some(5_000), None));
        assert_eq!(r.dates.update_unix_ms, Some(5_000));
        assert_eq!(view_of(&r, 9_000).full_load_progress_percent, 0.0);
    }
}
