//! The pair state machine.
//!
//! States ([`PairState`]) fall in two groups:
//! - *running*: initial sync (*Start Replication*), replicating, rescanning and disconnected.
//!   Which one is derived from the agent's connection, the baseline and the pass it runs;
//! - *held*: initiating (never started), paused and stopped. Only an operator (or a stop
//!   position) enters or leaves them; the agent's comings and goings do not change them, and
//!   a connected agent is told to hold: it keeps tracking and ships nothing.
//!
//! Agent events never fail (they report what happened); operator actions fail with a
//! [`Refusal`] naming the state when the state does not allow them, and then change nothing.

use drpair_types::{PairState, StopReason};
use serde::{Deserialize, Serialize};

/// Why an operator action waits for the new disks to be taken.
const RECONFIGURE: &str = "the agent's disks differ from those registered; `drpair restart PAIR` takes the new disks (a new baseline), `drpair pairs adopt-growth PAIR` takes disks that only grew";

/// What can happen to a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairOp {
    /// The standby (re)started: no agent is connected yet.
    StandbyStarted,
    AgentConnected,
    AgentDisconnected,
    /// The agent began a pass; `reconcile` when it compares hashes after a tracking gap.
    PassStarted {
        reconcile: bool,
    },
    /// An epoch of the current lineage became a recovery point.
    PointCommitted,
    /// First run of a pair that never ran (`start --type start`).
    Start,
    /// Leave paused or stopped (`resume`, `start --type resume`).
    Resume,
    Pause,
    /// Stop, by an operator or at a stop position.
    Stop(StopReason),
    /// New lineage, every recovery point deleted, everything copied again (`restart`,
    /// `start --type reload`).
    Restart,
    /// Roll back to an older recovery point and ship again what changed since
    /// (`start --type resume --from-point/--from-time`).
    Replay,
    /// Hold the agent for a third-party dump without moving its checkpoint (`suspend`).
    Suspend,
    /// Purge the pair's queue and wait for the agent's resync marker
    /// (`standby skip-to-resync-marker`).
    SkipToResyncMarker,
    /// The agent's resync marker was processed.
    ResyncMarker,
    /// The agent's dump marker was processed: apply is suspended until the dump is loaded.
    DumpMarker,
    /// The dump is loaded: ship what changed after the dump point (`standby resume-apply`).
    ResumeApply,
    /// Materialise a point on the standby's side and fence the pair (`failover`).
    Failover,
    /// Make the two sides equal again (`failback`).
    Failback,
    /// The failback ended: `done` resumes replication, else the pair stays failed over.
    FailbackEnded {
        done: bool,
    },
    /// The agent came back with other disks than those registered: hold, keep every point.
    ConfigChanged,
    /// The agent came back with the registered disks again.
    ConfigRestored,
    /// Take disks that only grew without a restart (`pairs adopt-growth`).
    AdoptGrowth,
}

impl PairOp {
    /// The operator's word for the action, for refusals.
    pub fn verb(self) -> &'static str {
        match self {
            PairOp::Start => "start",
            PairOp::Resume => "resume",
            PairOp::Pause => "pause",
            PairOp::Stop(_) => "stop",
            PairOp::Restart => "restart",
            PairOp::Replay => "replay from a point",
            PairOp::Suspend => "suspend",
            PairOp::SkipToResyncMarker => "skip to the resync marker of",
            PairOp::ResyncMarker => "process a resync marker for",
            PairOp::DumpMarker => "process a dump marker for",
            PairOp::ResumeApply => "resume apply of",
            PairOp::Failover => "fail over",
            PairOp::Failback => "fail back",
            PairOp::FailbackEnded { .. } => "end the failback of",
            PairOp::AdoptGrowth => "adopt the grown disks of",
            PairOp::StandbyStarted
            | PairOp::AgentConnected
            | PairOp::AgentDisconnected
            | PairOp::PassStarted { .. }
            | PairOp::PointCommitted
            | PairOp::ConfigChanged
            | PairOp::ConfigRestored => "event",
        }
    }
}

/// An operator action the state does not allow. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub state: PairState,
    pub message: String,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// The persisted lifecycle of one pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub state: PairState,
    /// Set exactly when `state` is stopped.
    pub stop_reason: Option<StopReason>,
    /// A complete recovery point of the current lineage exists.
    pub has_baseline: bool,
    /// The pair was started once (explicitly or automatically).
    pub started: bool,
    /// A restart's new baseline is being copied.
    pub restarting: bool,
    /// The agent is connected.
    pub connected: bool,
    /// Apply resumed after a third-party dump: the first pass compares every chunk with the
    /// dump, and the pair is not declared replicating before that point is committed.
    #[serde(default)]
    pub verifying_dump: bool,
    /// The agent offers other disks than those registered: nothing is shipped until a
    /// restart or an adoption of grown disks takes them (or the agent comes back with the
    /// registered ones).
    #[serde(default)]
    pub config_changed: bool,
}

impl Default for Lifecycle {
    fn default() -> Self {
        Self::new()
    }
}

impl Lifecycle {
    /// A registered pair that has not started.
    pub fn new() -> Self {
        Self {
            state: PairState::Initiating,
            stop_reason: None,
            has_baseline: false,
            started: false,
            restarting: false,
            connected: false,
            verifying_dump: false,
            config_changed: false,
        }
    }

    /// Held: the agent must not ship (it keeps tracking).
    pub fn holds(&self) -> bool {
        matches!(
            self.state,
            PairState::Initiating | PairState::Paused | PairState::Stopped | PairState::ConfigurationChanged
        ) || self.state.in_dump_workflow()
            || self.failed_over()
    }

    /// Failed over or failing back: the standby's side is the source now, and only a failback
    /// (or another failover) changes that.
    pub fn failed_over(&self) -> bool {
        matches!(self.state, PairState::FailedOver | PairState::FailingBack)
    }

    /// Failover is possible: a complete point of the current lineage exists and no restart
    /// is copying a new baseline.
    pub fn ready_for_failover(&self) -> bool {
        self.has_baseline && !self.restarting && self.state != PairState::InitialSync
    }

    /// The running state the facts call for.
    fn running(&self) -> PairState {
        if self.config_changed {
            PairState::ConfigurationChanged
        } else if !self.connected {
            PairState::Disconnected
        } else if self.verifying_dump {
            PairState::Rescanning
        } else if !self.has_baseline {
            PairState::InitialSync
        } else {
            PairState::Replicating
        }
    }

    fn refuse(&self, op: PairOp, why: &str) -> Refusal {
        Refusal {
            state: self.state,
            message: format!("cannot {} a pair that is {}: {why}", op.verb(), self.state.label()),
        }
    }

    /// Applies `op`: the lifecycle after it, or why the state does not allow it.
    pub fn apply(&self, op: PairOp) -> Result<Lifecycle, Refusal> {
        use PairState as S;
        let mut n = self.clone();
        let held = self.holds();
        let dump = self.state.in_dump_workflow();
        let operator_op = !matches!(
            op,
            PairOp::StandbyStarted
                | PairOp::AgentConnected
                | PairOp::AgentDisconnected
                | PairOp::PassStarted { .. }
                | PairOp::PointCommitted
                | PairOp::Failover
                | PairOp::Failback
                | PairOp::FailbackEnded { .. }
                | PairOp::ConfigChanged
                | PairOp::ConfigRestored
        );
        if operator_op && self.failed_over() {
            return Err(self.refuse(
                op,
                "the standby's side is the source now; fail back first (`drpair failback PAIR --from DEVICE_OR_FILE --direction to-original|to-recovered`)",
            ));
        }
        match op {
            PairOp::StandbyStarted | PairOp::AgentDisconnected => {
                n.connected = false;
                if !held {
                    n.state = n.running();
                }
            }
            PairOp::AgentConnected => {
                n.connected = true;
                if !held {
                    n.state = n.running();
                }
            }
            PairOp::PassStarted { reconcile } => {
                if matches!(self.state, S::Replicating | S::Rescanning) {
                    n.state = if reconcile || self.verifying_dump { S::Rescanning } else { S::Replicating };
                }
            }
            PairOp::PointCommitted => {
                n.has_baseline = true;
                n.restarting = false;
                n.verifying_dump = false;
                if !held {
                    n.state = n.running();
                }
            }
            PairOp::Start => {
                if self.started {
                    return Err(self.refuse(
                        op,
                        "it has run before; use `start --type resume` to continue or `--type reload` to copy everything again",
                    ));
                }
                n.started = true;
                n.state = n.running();
            }
            PairOp::Resume => match self.state {
                // From a dump step: the workflow is abandoned and shipping goes on from the
                // checkpoint (the agent's change history covers everything since).
                S::Paused
                | S::Stopped
                | S::Suspended
                | S::AwaitingResyncMarker
                | S::AwaitingDumpMarker
                | S::ApplySuspended => {
                    n.stop_reason = None;
                    n.state = n.running();
                }
                S::Initiating => return Err(self.refuse(op, "it never ran; use `start --type start`")),
                S::ConfigurationChanged => return Err(self.refuse(op, RECONFIGURE)),
                _ => return Err(self.refuse(op, "it is not paused or stopped")),
            },
            PairOp::Pause => match self.state {
                S::InitialSync | S::Replicating | S::Rescanning | S::Disconnected | S::ConfigurationChanged => {
                    n.state = S::Paused
                }
                S::Initiating => return Err(self.refuse(op, "it never ran; nothing is being shipped")),
                S::Paused => return Err(self.refuse(op, "it is already paused")),
                S::Suspended | S::AwaitingResyncMarker | S::AwaitingDumpMarker | S::ApplySuspended => {
                    return Err(self.refuse(op, "it is suspended for a dump"));
                }
                S::Stopped => return Err(self.refuse(op, "it is stopped; resume it first")),
                S::FailedOver | S::FailingBack => unreachable!("refused above"),
            },
            PairOp::Stop(reason) => match self.state {
                S::InitialSync
                | S::Replicating
                | S::Rescanning
                | S::Disconnected
                | S::Paused
                | S::ConfigurationChanged => {
                    n.state = S::Stopped;
                    n.stop_reason = Some(reason);
                }
                S::Initiating => return Err(self.refuse(op, "it never ran")),
                S::Stopped => return Err(self.refuse(op, "it is already stopped")),
                S::Suspended | S::AwaitingResyncMarker | S::AwaitingDumpMarker | S::ApplySuspended => {
                    return Err(self.refuse(op, "it is suspended for a dump; `drpair resume` abandons the dump first"));
                }
                S::FailedOver | S::FailingBack => unreachable!("refused above"),
            },
            PairOp::Restart => {
                if !self.started {
                    return Err(self.refuse(op, "it never ran; use `start --type start`"));
                }
                n.has_baseline = false;
                n.restarting = true;
                n.verifying_dump = false;
                // A restart takes the agent's disks as they are now.
                n.config_changed = false;
                n.stop_reason = None;
                n.state = n.running();
            }
            PairOp::Replay if dump => return Err(self.refuse(op, "it is suspended for a dump")),
            PairOp::Replay if self.config_changed => return Err(self.refuse(op, RECONFIGURE)),
            PairOp::Replay => {
                if !self.started {
                    return Err(self.refuse(op, "it never ran; use `start --type start`"));
                }
                if !self.has_baseline {
                    return Err(self.refuse(
                        op,
                        "no recovery point of the current lineage is complete yet; wait for the baseline or use `--type reload`",
                    ));
                }
                n.stop_reason = None;
                n.state = n.running();
            }
            PairOp::Suspend => {
                if self.config_changed {
                    return Err(self.refuse(op, RECONFIGURE));
                }
                if dump {
                    return Err(self.refuse(op, "it is already in the dump workflow"));
                }
                if self.restarting {
                    return Err(self.refuse(
                        op,
                        "a restart's new baseline is being copied; restart with the dump instead: suspend once the pair replicates, or after `drpair restart`'s first point",
                    ));
                }
                n.started = true;
                n.stop_reason = None;
                n.state = S::Suspended;
            }
            PairOp::SkipToResyncMarker => match self.state {
                S::Suspended => n.state = S::AwaitingResyncMarker,
                S::AwaitingResyncMarker => return Err(self.refuse(op, "it already waits for the resync marker")),
                _ if dump => return Err(self.refuse(op, "the resync marker was already processed")),
                _ => return Err(self.refuse(op, "it is not suspended for a dump; run `drpair suspend` first")),
            },
            PairOp::ResyncMarker => match self.state {
                S::AwaitingResyncMarker => n.state = S::AwaitingDumpMarker,
                _ => return Err(self.refuse(op, "the standby is not waiting for a resync marker")),
            },
            PairOp::DumpMarker => match self.state {
                S::AwaitingDumpMarker => n.state = S::ApplySuspended,
                _ => return Err(self.refuse(op, "the standby is not waiting for a dump marker")),
            },
            PairOp::ResumeApply => match self.state {
                S::ApplySuspended if self.has_baseline => {
                    n.verifying_dump = true;
                    n.state = n.running();
                }
                S::ApplySuspended => return Err(self.refuse(op, "no dump has been loaded yet")),
                _ => return Err(self.refuse(op, "apply is not suspended for a dump")),
            },
            PairOp::Failover => match self.state {
                S::FailingBack => return Err(self.refuse(op, "a failback is running; wait for it to end")),
                _ if dump => {
                    return Err(self.refuse(
                        op,
                        "it is in the third-party dump workflow; `drpair resume PAIR` abandons the dump first",
                    ));
                }
                _ if self.restarting => {
                    return Err(self.refuse(
                        op,
                        "a restart is copying a new baseline and no recovery point of the new lineage is complete; fail over once `drpair status` says ready for failover",
                    ));
                }
                _ if !self.has_baseline => {
                    return Err(self.refuse(op, "no recovery point is complete yet: there is nothing to fail over to"));
                }
                _ => {
                    n.stop_reason = None;
                    n.state = S::FailedOver;
                }
            },
            PairOp::Failback => match self.state {
                S::FailedOver => n.state = S::FailingBack,
                S::FailingBack => return Err(self.refuse(op, "a failback is already running")),
                _ => return Err(self.refuse(op, "it is not failed over")),
            },
            PairOp::ConfigChanged => {
                n.config_changed = true;
                if !held {
                    n.state = n.running();
                }
            }
            PairOp::ConfigRestored => {
                n.config_changed = false;
                if self.state == S::ConfigurationChanged {
                    n.state = n.running();
                }
            }
            PairOp::AdoptGrowth => {
                if !self.config_changed {
                    return Err(self.refuse(op, "the agent offers the registered disks; there is nothing to adopt"));
                }
                n.config_changed = false;
                if self.state == S::ConfigurationChanged {
                    n.state = n.running();
                }
            }
            PairOp::FailbackEnded { done } => match self.state {
                S::FailingBack if done => n.state = n.running(),
                S::FailingBack => n.state = S::FailedOver,
                _ => return Err(self.refuse(op, "no failback is running")),
            },
        }
        debug_assert_eq!(n.stop_reason.is_some(), n.state == S::Stopped);
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
