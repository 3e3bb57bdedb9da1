//! Which point "latest" means: the newest point a server can be started from, and why.
//!
//! A point is trusted when it is app-consistent, or when its reads finished within the
//! standby's read-window bound (`window_exceeded` is false), and no verification found it
//! damaged. Drills, failover `--latest`, exports and offline recovery of `latest` all choose
//! with [`latest_recoverable`], so every "latest" in drpair means the same point.

use crate::{Consistency, RecoveryPoint};

/// The point "latest" resolves to, and the reason, for the operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Chosen<'a> {
    pub point: &'a RecoveryPoint,
    /// Why this point: what it is, and which newer points were passed over.
    pub reason: String,
}

/// Whether `p` can be trusted to start from (see the module's rules).
pub fn trusted(p: &RecoveryPoint) -> bool {
    p.damage.is_none() && (p.consistency == Consistency::AppConsistent || !p.window_exceeded)
}

fn window(p: &RecoveryPoint) -> String {
    match p.read_window_ms {
        Some(ms) => format!("read in {:.1} s", ms as f64 / 1000.0),
        None => "read window not recorded".into(),
    }
}

/// The newest trusted point of `points` (oldest first); when none is trusted, the newest point,
/// saying so. `None` only when there is no point at all.
pub fn latest_recoverable(points: &[RecoveryPoint]) -> Option<Chosen<'_>> {
    let newest = points.last()?;
    let Some(at) = points.iter().rposition(trusted) else {
        return Some(Chosen {
            point: newest,
            reason: format!(
                "point {}: the newest point; no point is app-consistent or read within the read-window bound, so it may need crash recovery a database cannot finish ({})",
                newest.id,
                window(newest)
            ),
        });
    };
    let p = &points[at];
    let what = if p.consistency == Consistency::AppConsistent {
        "app-consistent".to_string()
    } else {
        format!("{}, {}", p.consistency.as_str(), window(p))
    };
    let skipped: Vec<String> = points[at + 1..].iter().map(|q| q.id.to_string()).collect();
    let reason = if skipped.is_empty() {
        format!("point {}: the newest point ({what})", p.id)
    } else {
        format!(
            "point {}: the newest recoverable point ({what}); newer point(s) {} skipped: damaged, or read over longer than the read-window bound",
            p.id,
            skipped.join(", ")
        )
    };
    Some(Chosen { point: p, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{PairId, PointKind, PointSizes};

    fn point(id: u64, consistency: Consistency, window_ms: u64, exceeded: bool) -> RecoveryPoint {
        RecoveryPoint {
            id,
            pair_id: PairId::new("web-01").unwrap(),
            epoch: id,
            lineage: crate::Lineage::nil(),
            time: String::new(),
            time_unix_ms: id * 1000,
            committed_unix_ms: id * 1000,
            kind: PointKind::Scheduled,
            consistency,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes::default(),
            quiesce: None,
            full_pass: false,
            damage: None,
            read_window_ms: Some(window_ms),
            window_exceeded: exceeded,
        }
    }

    #[test]
    fn the_newest_point_within_the_bound_or_app_consistent_is_chosen() {
        let pts = vec![
            point(1, Consistency::Fuzzy, 300, false),
            point(2, Consistency::AppConsistent, 9000, false),
            point(3, Consistency::Fuzzy, 9000, true),
            point(4, Consistency::Fuzzy, 7000, true),
        ];
        let c = latest_recoverable(&pts).unwrap();
        assert_eq!(c.point.id, 2);
        assert!(c.reason.contains("app-consistent") && c.reason.contains("3, 4 skipped"), "{}", c.reason);
        let c = latest_recoverable(&pts[..1]).unwrap();
        assert_eq!(c.point.id, 1);
        assert!(c.reason.contains("the newest point (fuzzy, read in 0.3 s)"), "{}", c.reason);
    }

    #[test]
    fn with_no_trusted_point_the_newest_is_chosen_and_said_to_be_doubtful() {
        let pts = vec![point(1, Consistency::Fuzzy, 5000, true), point(2, Consistency::Fuzzy, 6000, true)];
        let c = latest_recoverable(&pts).unwrap();
        assert_eq!(c.point.id, 2);
        assert!(c.reason.contains("no point is app-consistent or read within"), "{}", c.reason);
        assert!(latest_recoverable(&[]).is_none());
    }

    #[test]
    fn a_damaged_point_is_skipped() {
        let mut pts = vec![point(1, Consistency::Fuzzy, 100, false), point(2, Consistency::AppConsistent, 100, false)];
        pts[1].damage = Some(crate::PointDamage { found_at: String::new(), chunks: 1, sample: vec![] });
        assert_eq!(latest_recoverable(&pts).unwrap().point.id, 1);
    }
}
