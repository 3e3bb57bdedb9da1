//! Scenario tests: a point every second (or minute) for hours or weeks, planned once, planned
//! again later, and planned the way a standby runs it (every few seconds, removing as told).

use std::collections::BTreeMap;

use super::tests::DAY0_MS;
use crate::{Mark, Pin, PointInfo, Policy, Reason, plan};

/// A point every `step_s` seconds from `first_ms` up to `last_ms`; ids count from 1; every
/// `pin_every`th point (if any) is pinned by the operator.
fn points(first_ms: u64, last_ms: u64, step_s: u64, pin_every: Option<u64>) -> Vec<PointInfo> {
    (first_ms..=last_ms)
        .step_by(usize::try_from(step_s * 1000).unwrap())
        .zip(1u64..)
        .map(|(time_unix_ms, id)| PointInfo {
            id,
            time_unix_ms,
            pin: pin_every.filter(|n| id % n == 0).map(|_| Pin::Operator),
        })
        .collect()
}

/// The rule whose span holds a point at `now`, or None past the grid.
fn rule_of(policy: &Policy, now_ms: u64, time_ms: u64) -> Option<usize> {
    let age = now_ms.saturating_sub(time_ms);
    let mut end = 0u64;
    policy.grid.rules.iter().position(|rule| {
        end += u64::try_from(rule.span().as_millis()).unwrap();
        age < end
    })
}

/// Whether the grid decided this mark (rather than newest, a pin or keep-last).
fn by_grid(mark: &Mark) -> bool {
    matches!(mark.reason, Reason::Grid { .. } | Reason::Thinned | Reason::Expired)
}

#[test]
fn default_policy_every_second_for_two_hours() {
    let policy = Policy::default();
    let now = DAY0_MS + 36_017_500; // 10:00:17.5, between two seconds
    let points = points(now - 7_200_500, now - 500, 1, None);
    let marks = plan(&points, &policy, now);

    let mut kept_per_rule = [0usize; 5];
    let mut kept_per_bucket: BTreeMap<(usize, u64), usize> = BTreeMap::new();
    for (point, mark) in points.iter().zip(&marks) {
        let rule = rule_of(&policy, now, point.time_unix_ms).expect("two hours are inside the grid");
        let interval = u64::try_from(policy.grid.rules[rule].interval.as_millis()).unwrap();
        if mark.keep {
            kept_per_rule[rule] += 1;
            *kept_per_bucket.entry((rule, point.time_unix_ms / interval)).or_default() += 1;
        }
        if rule == 0 {
            assert!(mark.keep, "{point:?} is in the last 10 minutes: {mark:?}");
        } else if mark.keep && point.time_unix_ms > now - 7_200_000 + interval {
            // Away from where the data starts, a thinning rule keeps points on the interval.
            assert_eq!(point.time_unix_ms % interval, 0, "{point:?}: {mark:?}");
        }
    }
    // All 600 points of the last 10 minutes. One per minute for the next hour: 59 whole
    // minutes, plus the minute cut by the rule's near edge (its oldest point, at age
    // 10m 17.5s, is in the rule), but not the minute cut by its far edge (its oldest point is
    // in the next rule). One per 10 minutes since: 5 on the 10 minutes, plus the first point.
    assert_eq!(kept_per_rule, [600, 60, 6, 0, 0]);
    assert!(kept_per_bucket.iter().all(|(&(rule, _), &kept)| rule == 0 || kept == 1), "{kept_per_bucket:?}");
    let reasons = |reason: Reason| marks.iter().filter(|m| m.reason == reason).count();
    assert_eq!((reasons(Reason::Newest), reasons(Reason::KeepLast), reasons(Reason::Expired)), (1, 9, 0));
    assert_eq!(marks.iter().filter(|m| !m.keep).count(), 7201 - 666);
}

/// Plans at `t` and at each `t + shift` over the points that existed by then, and checks that
/// retention is stable: within one thinning rule a point keeps its verdict; a point kept later
/// by the grid that already existed was kept before unless it moved to a coarser rule.
fn check_stable(policy: &Policy, all: &[PointInfo], t: u64, shifts_s: &[u64]) {
    let until = |now: u64| all.iter().copied().filter(|p| p.time_unix_ms <= now).collect::<Vec<_>>();
    let before_points = until(t);
    let before = plan(&before_points, policy, t);
    for &shift in shifts_s {
        let t2 = t + shift * 1000;
        let after: BTreeMap<u64, Mark> = plan(&until(t2), policy, t2).into_iter().map(|m| (m.id, m)).collect();
        let mut moved = 0;
        for (point, early) in before_points.iter().zip(&before) {
            let late = &after[&point.id];
            let (r1, r2) = (rule_of(policy, t, point.time_unix_ms), rule_of(policy, t2, point.time_unix_ms));
            let thinning = |r: Option<usize>| r.is_some_and(|r| !policy.grid.rules[r].keep_all);
            if !(by_grid(early) && by_grid(late) && thinning(r2)) {
                continue;
            }
            if r1 == r2 {
                assert_eq!(early.keep, late.keep, "+{shift}s, {point:?}: {early:?} then {late:?}");
            } else if late.keep && !early.keep {
                assert!(r2 > r1, "+{shift}s, {point:?}: kept in rule {r2:?} but thinned in {r1:?}");
                moved += 1;
            }
        }
        // Nested intervals: the oldest point of a coarse bucket is also the oldest of its fine one.
        if policy == &Policy::default() {
            assert_eq!(moved, 0, "+{shift}s");
        }
    }
}

#[test]
fn stable_under_the_default_policy() {
    let t = DAY0_MS + 36_017_500;
    let all = points(t - 3 * 3_600_000, t + 3_600_000, 1, Some(613));
    check_stable(&Policy::default(), &all, t, &[1, 37, 300, 1023, 3600]);
}

#[test]
fn stable_when_rule_edges_cut_buckets() {
    // 7-minute buckets do not nest in 1-minute ones, and 7m and 1h rule spans end mid-bucket.
    let policy = Policy::parse("1x7m(keep=all) | 30x1m | 20x7m | 10x1h", 0).unwrap();
    let t = DAY0_MS + 50_000_000 + 4_321;
    let all = points(t - 20 * 3_600_000, t + 3_600_000, 10, Some(101));
    check_stable(&policy, &all, t, &[10, 180, 300, 420, 1000, 3600]);
}

/// Runs retention the way a standby does: a point every `step_s` seconds, a plan every
/// `every_s` seconds that removes what it is told to; then checks the survivors are what one
/// plan over all the points keeps, with the same reasons.
fn check_history_free(policy: &Policy, first_ms: u64, duration_s: u64, step_s: u64, every_s: u64) {
    let all = points(first_ms, first_ms + duration_s * 1000, step_s, Some(997));
    let mut live: Vec<PointInfo> = Vec::new();
    let mut next = 0;
    let end = first_ms + duration_s * 1000;
    let mut now = first_ms;
    while now <= end {
        while let Some(&point) = all.get(next).filter(|p| p.time_unix_ms <= now) {
            live.push(point);
            next += 1;
        }
        let marks = plan(&live, policy, now);
        let keep: Vec<bool> = marks.iter().map(|m| m.keep).collect();
        let mut keep = keep.into_iter();
        live.retain(|_| keep.next().unwrap());
        now += every_s * 1000;
    }
    let now = now - every_s * 1000;
    let once: Vec<(u64, Reason)> =
        plan(&all, policy, now).into_iter().filter(|m| m.keep).map(|m| (m.id, m.reason)).collect();
    let mut planned: Vec<(u64, Reason)> = plan(&live, policy, now).into_iter().map(|m| (m.id, m.reason)).collect();
    planned.sort_unstable_by_key(|&(id, _)| id);
    assert_eq!(planned, once, "{policy:?}");
    assert!(once.len() < all.len() / 10, "{} of {}", once.len(), all.len());
}

#[test]
fn pruning_as_you_go_keeps_what_one_plan_keeps_over_three_hours() {
    check_history_free(&Policy::default(), DAY0_MS + 12_345_678, 3 * 3600, 1, 10);
}

#[test]
fn pruning_as_you_go_keeps_what_one_plan_keeps_over_forty_days() {
    // Every rule of the default grid, UTC-day buckets and expiry.
    check_history_free(&Policy::default(), DAY0_MS + 12_345_678, 40 * 86_400, 60, 1800);
}
