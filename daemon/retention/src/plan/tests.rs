//! Table tests: a policy, a now and points, each with the reason it must get.

use crate::Reason::{self, Expired, KeepLast, Newest, Pinned, Thinned};
use crate::{Grid, Pin, PointInfo, Policy, Rule, plan};

/// 2023-11-14T00:00:00Z: a UTC midnight, so bucket edges fall on round seconds from here.
pub(super) const DAY0_MS: u64 = 1_699_920_000_000;

const fn g(rule: usize) -> Reason {
    Reason::Grid { rule }
}

/// A point: id, seconds after [`DAY0_MS`], pin, and the reason it must get.
type Row = (u64, u64, Option<Pin>, Reason);

struct Case {
    name: &'static str,
    grid: &'static str,
    keep_last: u32,
    /// Seconds after [`DAY0_MS`].
    now: u64,
    /// In the order given to `plan` (deliberately not sorted).
    points: &'static [Row],
}

/// `1x1m(keep=all) | 5x1m | 2x10m` at now = 3630 s: keep-all covers times (3570, 3630], the
/// minute rule (3270, 3570], the 10-minute rule (2070, 3270]; 2070 and older expire.
const SMALL: &str = "1x1m(keep=all) | 5x1m | 2x10m";

const CASES: &[Case] = &[
    Case {
        name: "every rule, its edges, pins and duplicates",
        grid: SMALL,
        keep_last: 1,
        now: 3630,
        points: &[
            (6, 3500, None, Thinned),  // minute [3480, 3540): 3490 is older
            (1, 3629, None, Newest),   //
            (2, 3600, None, g(0)),     // age 30: keep every point
            (3, 3575, None, g(0)),     // age 55
            (4, 3570, None, g(1)),     // age 60: minute [3540, 3600), its oldest point
            (5, 3490, None, g(1)),     // minute [3480, 3540)
            (7, 3539, None, Thinned),  //
            (17, 3430, None, Thinned), // minute [3420, 3480): the pinned 3420 represents it
            (16, 3420, Some(Pin::Drill), Pinned(Pin::Drill)),
            (8, 3280, None, Thinned),  // minute [3240, 3300) is cut by the rule's old edge:
            (9, 3250, None, Thinned),  // its oldest (3250) lies in the 10-minute rule, which
            (10, 3010, None, g(2)),    // keeps 3010 for [3000, 3600)
            (12, 2400, None, Thinned), // same time as 11, larger id
            (11, 2400, None, g(2)),    // [2400, 3000)
            (13, 2100, None, Thinned), // age 1530: [1800, 2400) is cut by the grid's end
            (14, 2000, None, Expired), // age 1630
            (15, 1000, Some(Pin::Operator), Pinned(Pin::Operator)),
        ],
    },
    Case {
        name: "keep_last counts the newest and pinned points among them",
        grid: "1x1m",
        keep_last: 3,
        now: 10_000,
        points: &[
            (1, 1000, None, Expired),
            (2, 2000, None, Expired),
            (3, 3000, None, KeepLast),
            (4, 4000, Some(Pin::Baseline), Pinned(Pin::Baseline)),
            (5, 5000, None, Newest),
        ],
    },
    Case {
        name: "keep_last 0 still keeps the newest",
        grid: "1x1s",
        keep_last: 0,
        now: 10_000,
        points: &[(1, 3000, None, Expired), (2, 5000, None, Newest), (3, 4000, None, Expired)],
    },
    Case {
        name: "every kind of pin survives expiry",
        grid: "1x1m",
        keep_last: 0,
        now: 100_000,
        points: &[
            (1, 10, Some(Pin::Operator), Pinned(Pin::Operator)),
            (2, 20, Some(Pin::Baseline), Pinned(Pin::Baseline)),
            (3, 30, Some(Pin::DumpMarker), Pinned(Pin::DumpMarker)),
            (4, 40, Some(Pin::Drill), Pinned(Pin::Drill)),
            (5, 50, None, Expired),
            (6, 60, None, Newest),
        ],
    },
    Case {
        name: "the newest pinned point is newest",
        grid: "1x1m",
        keep_last: 0,
        now: 90,
        points: &[(1, 50, Some(Pin::Operator), Newest), (2, 40, None, g(0))],
    },
    Case {
        name: "duplicate times: the smallest id represents, the largest is newest",
        grid: "1x1m(keep=all) | 10x1m",
        keep_last: 0,
        now: 3630,
        points: &[
            (11, 3620, None, Newest),
            (10, 3620, None, g(0)),
            (7, 3300, None, Thinned),
            (3, 3300, None, g(1)),
            (5, 3300, None, Thinned),
        ],
    },
    Case {
        name: "future points have age 0",
        grid: "10x1m",
        keep_last: 0,
        now: 1000,
        points: &[
            (1, 1110, None, Thinned), // minute [1080, 1140), in the future
            (2, 1100, None, g(0)),
            (3, 2000, None, Newest),
            (4, 990, None, g(0)),
        ],
    },
];

fn policy(grid: &str, keep_last: u32) -> Policy {
    Policy::parse(grid, keep_last).unwrap_or_else(|e| panic!("{grid}: {e}"))
}

fn info(rows: &[Row]) -> Vec<PointInfo> {
    rows.iter().map(|&(id, secs, pin, _)| PointInfo { id, time_unix_ms: DAY0_MS + secs * 1000, pin }).collect()
}

#[test]
fn table() {
    for case in CASES {
        let points = info(case.points);
        let marks = plan(&points, &policy(case.grid, case.keep_last), DAY0_MS + case.now * 1000);
        assert_eq!(marks.len(), case.points.len(), "{}", case.name);
        for (mark, &(id, secs, _, reason)) in marks.iter().zip(case.points) {
            assert_eq!((mark.id, mark.reason), (id, reason), "{}: point {id} at {secs}s", case.name);
            assert_eq!(mark.keep, reason.keeps(), "{}: point {id}", case.name);
        }
    }
}

#[test]
fn input_order_does_not_change_the_marks() {
    for case in CASES {
        let policy = policy(case.grid, case.keep_last);
        let now = DAY0_MS + case.now * 1000;
        let mut points = info(case.points);
        let forward = plan(&points, &policy, now);
        points.reverse();
        let mut backward = plan(&points, &policy, now);
        backward.reverse();
        assert_eq!(forward, backward, "{}", case.name);
        points.sort_by_key(|p| p.time_unix_ms);
        let mut sorted = plan(&points, &policy, now);
        sorted.sort_by_key(|m| m.id);
        let mut expected = forward.clone();
        expected.sort_by_key(|m| m.id);
        assert_eq!(sorted, expected, "{}", case.name);
    }
}

#[test]
fn no_points_no_marks() {
    assert!(plan(&[], &Policy::default(), DAY0_MS).is_empty());
}

#[test]
fn hand_built_degenerate_policies_still_keep_the_newest_and_never_panic() {
    let points = info(&[(1, 10, None, Expired), (2, 20, Some(Pin::Drill), Expired), (3, 30, None, Expired)]);
    let empty = Policy { grid: Grid { rules: vec![] }, keep_last: 0 };
    let reasons: Vec<Reason> = plan(&points, &empty, DAY0_MS).iter().map(|m| m.reason).collect();
    assert_eq!(reasons, [Expired, Pinned(Pin::Drill), Newest]);

    let zero = |count, ms| Rule { count, interval: std::time::Duration::from_millis(ms), keep_all: false };
    let grid = Grid { rules: vec![zero(0, 1000), zero(5, 0), zero(u32::MAX, u64::MAX), zero(1, 1)] };
    let odd = Policy { grid, keep_last: u32::MAX };
    let marks = plan(&points, &odd, u64::MAX);
    assert!(marks.iter().all(|m| m.keep));
    let marks = plan(&points, &Policy { keep_last: 0, ..odd }, 0);
    assert_eq!(
        marks.iter().map(|m| m.reason).collect::<Vec<_>>(),
        [Reason::Grid { rule: 2 }, Pinned(Pin::Drill), Newest]
    );
}

#[test]
fn reasons_serialise_as_readable_strings() {
    let all = [
        (Newest, "newest"),
        (Pinned(Pin::Operator), "pinned_operator"),
        (Pinned(Pin::Baseline), "pinned_baseline"),
        (Pinned(Pin::DumpMarker), "pinned_dump_marker"),
        (Pinned(Pin::Drill), "pinned_drill"),
        (KeepLast, "keep_last"),
        (g(0), "grid_1"),
        (g(4), "grid_5"),
        (Thinned, "thinned"),
        (Expired, "expired"),
    ];
    for (reason, text) in all {
        assert_eq!(reason.to_string(), text);
        assert_eq!(serde_json::to_string(&reason).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<Reason>(&format!("\"{text}\"")).unwrap(), reason);
    }
    for bad in ["grid_0", "grid_", "grid_+1", "pinned", "kept"] {
        let err = serde_json::from_str::<Reason>(&format!("\"{bad}\"")).unwrap_err().to_string();
        assert!(err.contains(&format!("unknown retention reason '{bad}'")), "{err}");
    }
    let mark = crate::Mark { id: 7, keep: true, reason: g(1) };
    assert_eq!(serde_json::to_string(&mark).unwrap(), r#"{"id":7,"keep":true,"reason":"grid_2"}"#);
    assert_eq!(serde_json::to_string(&Pin::DumpMarker).unwrap(), r#""dump_marker""#);
}
