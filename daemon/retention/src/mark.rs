//! What retention reads (a [`PointInfo`] per point) and what it answers (a [`Mark`] per point).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One point as retention sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PointInfo {
    /// Unique among the points given to one [`plan`](crate::plan).
    pub id: u64,
    pub time_unix_ms: u64,
    /// Set when the point may never be removed.
    pub pin: Option<Pin>,
}

/// Why a point may never be removed (the caller computes these).
///
/// Serialised in snake_case: `"operator"`, `"baseline"`, `"dump_marker"`, `"drill"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pin {
    /// An operator protected the point.
    Operator,
    /// The point is the baseline others depend on.
    Baseline,
    /// The point marks where a dump was taken.
    DumpMarker,
    /// A recovery drill uses the point.
    Drill,
}

impl fmt::Display for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pin::Operator => "operator",
            Pin::Baseline => "baseline",
            Pin::DumpMarker => "dump_marker",
            Pin::Drill => "drill",
        })
    }
}

/// Why a point is kept or removed.
///
/// Serialised as one snake_case string, the same text as `Display` (and as the `reason` of
/// `drpair_types::PointMark`): `newest`, `pinned_operator`, `pinned_baseline`,
/// `pinned_dump_marker`, `pinned_drill`, `keep_last`, `grid_N`, `thinned`, `expired`. In
/// `grid_N`, N counts the rules from 1 like the [`PolicyError`] messages do, while the `rule`
/// field is an index into [`Grid::rules`](crate::Grid), from 0: `Grid { rule: 0 }` is `grid_1`.
///
/// [`PolicyError`]: crate::PolicyError
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Kept: the newest point (largest time, tie: largest id) is always kept.
    Newest,
    /// Kept: the caller pinned the point.
    Pinned(Pin),
    /// Kept: one of the policy's `keep_last` newest points.
    KeepLast,
    /// Kept by grid rule `rule` (an index into `Grid::rules`): every point of a `keep=all`
    /// rule, otherwise the representative (oldest point) of a bucket.
    Grid { rule: usize },
    /// Removed: inside a thinning rule's span but not the representative of its bucket.
    Thinned,
    /// Removed: older than the whole grid's span.
    Expired,
}

impl Reason {
    /// Whether a point with this reason is kept.
    pub fn keeps(&self) -> bool {
        !matches!(self, Reason::Thinned | Reason::Expired)
    }

    /// The reason of a text written by `Display`.
    fn from_code(code: &str) -> Option<Reason> {
        Some(match code {
            "newest" => Reason::Newest,
            "pinned_operator" => Reason::Pinned(Pin::Operator),
            "pinned_baseline" => Reason::Pinned(Pin::Baseline),
            "pinned_dump_marker" => Reason::Pinned(Pin::DumpMarker),
            "pinned_drill" => Reason::Pinned(Pin::Drill),
            "keep_last" => Reason::KeepLast,
            "thinned" => Reason::Thinned,
            "expired" => Reason::Expired,
            _ => {
                let n = code.strip_prefix("grid_")?;
                if !n.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                Reason::Grid { rule: n.parse::<usize>().ok()?.checked_sub(1)? }
            }
        })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Newest => f.write_str("newest"),
            Reason::Pinned(pin) => write!(f, "pinned_{pin}"),
            Reason::KeepLast => f.write_str("keep_last"),
            Reason::Grid { rule } => write!(f, "grid_{}", u128::try_from(*rule).unwrap_or(u128::MAX) + 1),
            Reason::Thinned => f.write_str("thinned"),
            Reason::Expired => f.write_str("expired"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Reason, D::Error> {
        let code = String::deserialize(deserializer)?;
        Reason::from_code(&code).ok_or_else(|| {
            serde::de::Error::custom(format_args!(
                "unknown retention reason '{code}': expected newest, pinned_operator, pinned_baseline, \
                 pinned_dump_marker, pinned_drill, keep_last, grid_N (N from 1), thinned or expired"
            ))
        })
    }
}

/// The verdict on one point: `keep` is `reason.keeps()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mark {
    pub id: u64,
    pub keep: bool,
    pub reason: Reason,
}
