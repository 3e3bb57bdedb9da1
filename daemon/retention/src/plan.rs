//! The retention function: a [`Mark`] for every point.
//!
//! The points are sorted by `(time, id)` once; then each point's reason follows from its rank
//! (newest, keep-last), its pin, its age (which rule) and its neighbour in that order: in
//! time order a bucket's points are consecutive, so a point is its bucket's representative
//! (oldest, tie: smallest id) exactly when the point before it lies in an earlier bucket.

use crate::{Grid, Mark, PointInfo, Policy, Reason};

/// Marks for every point, in the order given. Points may come in any order; ids are unique.
///
/// See the crate documentation for the rules. Pure: no I/O, no clock; `now_unix_ms` is the
/// only notion of time. Never panics, whatever the policy (even one that
/// [`Policy::validate`] refuses).
pub fn plan(points: &[PointInfo], policy: &Policy, now_unix_ms: u64) -> Vec<Mark> {
    let mut order: Vec<usize> = (0..points.len()).collect();
    order.sort_unstable_by_key(|&i| (points[i].time_unix_ms, points[i].id));
    let ends = rule_ends(&policy.grid);
    let keep_last = usize::try_from(policy.keep_last).unwrap_or(usize::MAX);

    let mut reasons = vec![Reason::Expired; points.len()];
    for (rank, &i) in order.iter().enumerate() {
        let point = &points[i];
        let newer = order.len() - 1 - rank;
        reasons[i] = if newer == 0 {
            Reason::Newest
        } else if let Some(pin) = point.pin {
            Reason::Pinned(pin)
        } else if newer < keep_last {
            Reason::KeepLast
        } else {
            let previous = rank.checked_sub(1).map(|r| &points[order[r]]);
            grid_reason(&policy.grid, &ends, now_unix_ms, point, previous)
        };
    }
    points.iter().zip(reasons).map(|(point, reason)| Mark { id: point.id, keep: reason.keeps(), reason }).collect()
}

/// Where each rule ends, as an age in milliseconds (saturating; non-decreasing).
fn rule_ends(grid: &Grid) -> Vec<u64> {
    grid.rules
        .iter()
        .scan(0u64, |end, rule| {
            *end = end.saturating_add(rule.span_ms());
            Some(*end)
        })
        .collect()
}

/// What the grid says of `point`; `previous` is the point just before it in time order.
fn grid_reason(grid: &Grid, ends: &[u64], now_unix_ms: u64, point: &PointInfo, previous: Option<&PointInfo>) -> Reason {
    let age = now_unix_ms.saturating_sub(point.time_unix_ms);
    // The first rule that ends after this age; rules of zero span are skipped.
    let rule = ends.partition_point(|&end| end <= age);
    let Some(r) = grid.rules.get(rule) else {
        return Reason::Expired;
    };
    if r.keep_all {
        return Reason::Grid { rule };
    }
    let bucket = |p: &PointInfo| p.time_unix_ms / r.bucket_ms();
    let representative = previous.is_none_or(|p| bucket(p) != bucket(point));
    if representative { Reason::Grid { rule } } else { Reason::Thinned }
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod scenarios;
#[cfg(test)]
mod tests;
