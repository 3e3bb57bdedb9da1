//! A pair's last successes (issue 26): when it last committed a point, last passed a
//! verification of its stored chunks, last passed an online verify against the source, last
//! passed a drill and last committed an app-consistent point. An operator (or an alert rule)
//! reads "nothing failed" only next to "and this last succeeded at T": a pair that quietly
//! stops verifying or drilling shows it here. Each is `null` until it first happens.

use crate::ids::PointId;
use serde::{Deserialize, Serialize};

/// One success: when, and of what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSuccess {
    /// RFC 3339 time (UTC, milliseconds).
    pub at: String,
    pub at_unix_ms: u64,
    /// The point it concerns: the point committed, the point a drill served, the point an
    /// online verify compared with; none for a verification of every stored point.
    #[serde(default)]
    pub point: Option<PointId>,
    /// What succeeded, in words (`3 point(s) intact`, `drill web-01-…: check passed`).
    #[serde(default)]
    pub detail: String,
}

/// `last_successes` in a pair's status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastSuccesses {
    /// The newest committed point (time: its cut, as the RPO counts it).
    #[serde(default)]
    pub point: Option<LastSuccess>,
    /// The last verification of stored chunks that found every point it read intact (time:
    /// when it finished).
    #[serde(default)]
    pub verify: Option<LastSuccess>,
    /// The last online verify against the source that found no chunk differing.
    #[serde(default)]
    pub source_verify: Option<LastSuccess>,
    /// The last drill that passed: its exports were served and its check, if it had one,
    /// exited 0 (time: ready, or the check's end).
    #[serde(default)]
    pub drill: Option<LastSuccess>,
    /// The newest app-consistent point committed (time: its cut).
    #[serde(default)]
    pub app_consistent_point: Option<LastSuccess>,
}

impl LastSuccesses {
    /// Each kind with its name as status and the metrics call it.
    pub fn each(&self) -> [(&'static str, Option<&LastSuccess>); 5] {
        [
            ("point", self.point.as_ref()),
            ("verify", self.verify.as_ref()),
            ("source_verify", self.source_verify.as_ref()),
            ("drill", self.drill.as_ref()),
            ("app_consistent_point", self.app_consistent_point.as_ref()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_is_null() {
        let v = serde_json::to_value(LastSuccesses::default()).unwrap();
        for k in ["point", "verify", "source_verify", "drill", "app_consistent_point"] {
            assert!(v[k].is_null(), "{k}: {v}");
        }
        let back: LastSuccesses = serde_json::from_str("{}").unwrap();
        assert_eq!(back, LastSuccesses::default(), "an older answer without any still reads");
        let one = LastSuccesses {
            drill: Some(LastSuccess {
                at: "2026-01-01T00:00:00.000Z".into(),
                at_unix_ms: 1_767_225_600_000,
                point: Some(4),
                detail: "drill d".into(),
            }),
            ..Default::default()
        };
        assert_eq!(one.each().iter().filter(|(_, s)| s.is_some()).count(), 1);
        assert_eq!(serde_json::to_value(&one).unwrap()["drill"]["at_unix_ms"], 1_767_225_600_000u64);
    }
}
