//! A pair's dates and times as the reference workflow (DMS) names them, flattened into
//! status: RFC 3339 UTC, `None` for what has not happened.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PairDatesView {
    /// The first start, or the last restart or reload (a new baseline).
    pub fresh_start_date: Option<String>,
    /// The last start or resume.
    pub start_date: Option<String>,
    /// When the pair stopped, while it is stopped.
    pub stop_date: Option<String>,
    /// When the baseline copy of the current lineage began.
    pub full_load_start_date: Option<String>,
    /// When the baseline of the current lineage was committed.
    pub full_load_finish_date: Option<String>,
    /// Milliseconds replicated since the fresh start (up to the stop, while stopped).
    pub elapsed_time_millis: u64,
    /// The baseline copy of the current lineage (distinct from a pass's `progress_percent`).
    pub full_load_progress_percent: f64,
    /// The last time the pair stopped (kept after it resumed).
    pub last_stop_time: Option<String>,
    /// When the pair was registered.
    pub create_time: String,
    /// The last change of the pair's state or settings.
    pub update_time: String,
}
