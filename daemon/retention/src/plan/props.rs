//! Properties of `plan` over random points and policies, including hand-built policies that
//! validation would refuse.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use proptest::prelude::*;

use super::tests::DAY0_MS;
use crate::{Grid, Pin, PointInfo, Policy, Reason, Rule, plan};

const NOW: u64 = DAY0_MS + 40 * 86_400_000;

fn pin() -> impl Strategy<Value = Option<Pin>> {
    prop_oneof![
        8 => Just(None),
        1 => prop_oneof![Just(Pin::Operator), Just(Pin::Baseline), Just(Pin::DumpMarker), Just(Pin::Drill)].prop_map(Some),
    ]
}

/// Up to 300 points with unique ids, mostly in the last 40 days, some in the future, many
/// sharing a time.
fn points() -> impl Strategy<Value = Vec<PointInfo>> {
    let time = prop_oneof![
        3 => (NOW - 40 * 86_400_000)..(NOW + 3_600_000),
        1 => (NOW - 7_200_000)..NOW,
        1 => (0u64..50).prop_map(|s| NOW - s * 1000),
    ];
    prop::collection::btree_map(any::<u64>(), (time, pin()), 0..300)
        .prop_map(|by_id| {
            by_id.into_iter().map(|(id, (time_unix_ms, pin))| PointInfo { id, time_unix_ms, pin }).collect()
        })
        .prop_shuffle()
}

fn policy() -> impl Strategy<Value = Policy> {
    let texts = [crate::DEFAULT_GRID, "1x1m(keep=all) | 5x1m | 2x10m", "24x1h", "10x7m | 3x1h 1m | 2x1d", "1x1s"];
    let valid = (prop::sample::select(texts.to_vec()), 0u32..20)
        .prop_map(|(grid, keep_last)| Policy::parse(grid, keep_last).unwrap());
    let rule = (0u32..50, 0u64..7_200_000, any::<bool>()).prop_map(|(count, ms, keep_all)| Rule {
        count,
        interval: Duration::from_millis(ms),
        keep_all,
    });
    let hand_built = (prop::collection::vec(rule, 0..6), 0u32..5)
        .prop_map(|(rules, keep_last)| Policy { grid: Grid { rules }, keep_last });
    prop_oneof![valid, hand_built]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_point_gets_one_mark_and_the_newest_and_pinned_are_kept(points in points(), policy in policy()) {
        let marks = plan(&points, &policy, NOW);
        prop_assert_eq!(marks.len(), points.len());
        for (point, mark) in points.iter().zip(&marks) {
            prop_assert_eq!(point.id, mark.id);
            prop_assert_eq!(mark.keep, mark.reason.keeps());
            if let Some(pin) = point.pin {
                prop_assert!(mark.reason == Reason::Pinned(pin) || mark.reason == Reason::Newest, "{:?}", mark);
            }
            if let Reason::Grid { rule } = mark.reason {
                prop_assert!(rule < policy.grid.rules.len());
            }
        }
        if let Some(newest) = points.iter().max_by_key(|p| (p.time_unix_ms, p.id)) {
            let newest_marks: Vec<_> = marks.iter().filter(|m| m.reason == Reason::Newest).collect();
            prop_assert_eq!(newest_marks.len(), 1);
            prop_assert_eq!(newest_marks[0].id, newest.id);
        }
        let keep_last = marks.iter().filter(|m| m.reason == Reason::KeepLast).count();
        prop_assert!(keep_last < policy.keep_last.max(1) as usize);
    }

    #[test]
    fn a_thinning_rule_keeps_at_most_one_point_per_bucket(points in points(), policy in policy()) {
        let marks = plan(&points, &policy, NOW);
        let mut kept: BTreeSet<(usize, u64)> = BTreeSet::new();
        for (point, mark) in points.iter().zip(&marks) {
            if let Reason::Grid { rule } = mark.reason {
                let r = &policy.grid.rules[rule];
                if !r.keep_all {
                    let bucket = point.time_unix_ms / u64::try_from(r.interval.as_millis()).unwrap().max(1);
                    prop_assert!(kept.insert((rule, bucket)), "rule {} bucket {} twice", rule, bucket);
                }
            }
        }
    }

    #[test]
    fn plan_is_deterministic_and_ignores_input_order(points in points(), policy in policy(), now_offset in 0u64..86_400_000) {
        let now = NOW - now_offset;
        let marks = plan(&points, &policy, now);
        prop_assert_eq!(&marks, &plan(&points, &policy, now));
        let mut reversed = points.clone();
        reversed.reverse();
        let by_id: BTreeMap<u64, _> = marks.iter().map(|m| (m.id, *m)).collect();
        let reversed_by_id: BTreeMap<u64, _> = plan(&reversed, &policy, now).into_iter().map(|m| (m.id, m)).collect();
        prop_assert_eq!(by_id, reversed_by_id);
    }
}
