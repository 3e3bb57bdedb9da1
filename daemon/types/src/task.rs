//! Tasks: every long operation of a standby (verify, online verify, dump load, failover,
//! failback, prune, a restart's baseline, drill start) as one record an operator can list,
//! follow and read the log of (`GET /api/v1/tasks`, `drpair tasks`).

use crate::PairId;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A task's number: unique on its standby, increasing, never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::str::FromStr for TaskId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.trim()
            .parse::<u64>()
            .ok()
            .filter(|&n| n > 0)
            .map(TaskId)
            .ok_or_else(|| format!("'{s}' is not a task id (a positive whole number, as `drpair tasks list` shows)"))
    }
}

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TaskKind {
    /// Re-reading and re-hashing stored points.
    Verify,
    /// The agent compares its disks with the newest point (online verify).
    SourceVerify,
    /// A third-party dump image loaded into the store.
    DumpLoad,
    /// A point written onto the DR site's disks.
    Failover,
    /// Changes made after a failover brought back.
    Failback,
    /// Points removed by the retention policy.
    Prune,
    /// A restart's copy of every chunk, until its baseline point commits.
    Baseline,
    /// A drill's exports prepared.
    DrillStart,
}

impl TaskKind {
    pub const ALL: [TaskKind; 8] = [
        TaskKind::Verify,
        TaskKind::SourceVerify,
        TaskKind::DumpLoad,
        TaskKind::Failover,
        TaskKind::Failback,
        TaskKind::Prune,
        TaskKind::Baseline,
        TaskKind::DrillStart,
    ];

    /// The name used in the API, the CLI and logs.
    pub fn name(self) -> &'static str {
        match self {
            TaskKind::Verify => "verify",
            TaskKind::SourceVerify => "source-verify",
            TaskKind::DumpLoad => "dump-load",
            TaskKind::Failover => "failover",
            TaskKind::Failback => "failback",
            TaskKind::Prune => "prune",
            TaskKind::Baseline => "baseline",
            TaskKind::DrillStart => "drill-start",
        }
    }
}

impl fmt::Display for TaskKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a task stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    Running,
    /// Ended with its result.
    Ok,
    /// Ended without its result (see `message`).
    Failed,
}

impl TaskState {
    pub fn is_over(self) -> bool {
        self != TaskState::Running
    }
}

/// One task (`GET /api/v1/tasks/{id}`, and each item of the list).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    pub id: TaskId,
    pub kind: TaskKind,
    /// The pair it works on.
    pub pair: PairId,
    /// Who started it: `api` (an operator, through the API, CLI or panel), `schedule` (the
    /// standby's own maintenance schedule) or `agent` (asked by the pair's agent).
    pub started_by: String,
    pub started_unix_ms: u64,
    pub ended_unix_ms: Option<u64>,
    pub state: TaskState,
    /// 0 to 100.
    pub progress_percent: f64,
    /// The last step, or the result / why it failed.
    pub message: String,
    /// Lines in its log.
    pub log_lines: u64,
}

/// `GET /api/v1/tasks[?pair=&running=]`: newest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskList {
    pub tasks: Vec<TaskInfo>,
}

/// One line of a task's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLogLine {
    pub unix_ms: u64,
    pub text: String,
}

/// `GET /api/v1/tasks/{id}/log[?from=N]`: lines from number `from` (0-based) on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskLog {
    pub id: TaskId,
    pub state: TaskState,
    /// Number of the first line returned.
    pub from: u64,
    pub lines: Vec<TaskLogLine>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_and_refuse_nonsense() {
        assert_eq!("17".parse::<TaskId>(), Ok(TaskId(17)));
        assert!("0".parse::<TaskId>().is_err());
        assert!("x".parse::<TaskId>().unwrap_err().contains("not a task id"));
    }

    #[test]
    fn kinds_serialize_as_their_names() {
        for k in TaskKind::ALL {
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.name()));
        }
    }
}
