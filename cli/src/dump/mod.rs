//! Seeding a pair from a third-party dump (a SAN/LVM/cloud snapshot, a disk image on media),
//! so that only the changes made after the dump point cross the link:
//!
//! 1. `drpair suspend PAIR`: the agent ships nothing; its checkpoint stays put.
//! 2. `drpair standby skip-to-resync-marker PAIR`: the standby purges its queue for the pair.
//! 3. (the operator takes the dump) `drpair marker dump PAIR`: the dump point is recorded in
//!    the agent's change history (or drpair freezes, cuts and runs the snapshot command).
//! 4. `drpair resume PAIR --resync` (in `lifecycle.rs`): resync and dump markers; apply is
//!    suspended.
//! 5. `drpair standby load-dump PAIR --disk N --image FILE`, per disk, with a progress bar.
//! 6. `drpair standby resume-apply PAIR`: the dump becomes a recovery point and the agent ships
//!    what changed after it.
//!
//! Invariants: values are checked here (exit code 2) as far as the API's documented rules go
//! ([`DumpMarkerRequest`]); whether the pair's state allows a step is the standby's call (409 →
//! exit code 4, its message naming the next step). Every answer in text form ends with the
//! next step the standby reports (`status.dump.next_step`).

pub mod load;
pub mod marker;
pub mod steps;
#[cfg(test)]
pub(crate) mod tests;

pub use load::load_counts;
pub use marker::{MarkerArgs, render_marker, run_marker};
pub use steps::{StandbyArgs, SuspendArgs, print_dump_action, run_standby, suspend};

use drpair_types::{DumpStatus, DumpStep, PairStatus};
use std::time::Duration;

/// Answer timeout of the workflow's actions: `suspend` and `resume-apply` disconnect the
/// agent, `resume --resync` waits up to a minute for the agent's markers.
pub const DUMP_ACTION_TIMEOUT: Duration = Duration::from_secs(180);

/// The next step the standby reports while a dump workflow is under way (not once it is
/// done or abandoned, e.g. by `resume --resync --reinit`: its "start over" would mislead).
fn next_step(s: &PairStatus) -> Option<&str> {
    let d = s.dump.as_ref()?;
    let under_way = s.state.in_dump_workflow() || d.step == DumpStep::Verifying;
    Some(d.next_step.as_str()).filter(|n| under_way && !n.is_empty())
}

/// The events of a dump workflow shown in `status`: the last `n`.
pub fn last_events(d: &DumpStatus, n: usize) -> Vec<String> {
    d.events[d.events.len().saturating_sub(n)..].iter().map(|e| format!("{}  {}", e.time, e.message)).collect()
}
