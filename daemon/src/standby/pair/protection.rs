//! The pair record's part about protection while failed over: on the original pair, the
//! agent protecting its recovered disks ([`ProtectionRecord`]); on the pair that agent
//! registered, where it came from ([`RecoveredFromRecord`]). Types of the record's own (the
//! API's are `drpair_types::protect`), so the API can change without changing this format.

use drpair_types::{PairId, PointId, ProtectionState, ProtectionStatus, RecoveredFrom};
use serde::{Deserialize, Serialize};

/// The agent protecting a failed-over pair's recovered disks: what it was started with (so a
/// standby restart starts it again), and how it is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProtectionRecord {
    /// The new pair.
    pub pair: PairId,
    /// `HOST:PORT` of the link the agent ships to.
    pub standby: String,
    /// The link is this standby's own.
    pub this_standby: bool,
    /// The standby's fingerprint the agent pins (`None`: plaintext link, token).
    pub fingerprint: Option<String>,
    pub failover_point: PointId,
    /// The failover's targets, in disk order (the agent's `--disk`s).
    pub disks: Vec<String>,
    /// The chunk size of the original pair's disks (the agent's `--chunk-size`): chunk
    /// numbers mean the same on both pairs, so a failback compares them one to one.
    pub chunk_size: u32,
    pub tracker: String,
    pub cut_interval: String,
    pub state: RecordedProtectionState,
    pub started_unix_ms: u64,
    pub stopped_unix_ms: Option<u64>,
    pub agent_restarts: u32,
    pub operator: Option<String>,
    pub message: String,
}

/// [`ProtectionState`] as the record keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordedProtectionState {
    Starting,
    Running,
    Stopped,
    Failed,
}

impl From<RecordedProtectionState> for ProtectionState {
    fn from(s: RecordedProtectionState) -> Self {
        match s {
            RecordedProtectionState::Starting => ProtectionState::Starting,
            RecordedProtectionState::Running => ProtectionState::Running,
            RecordedProtectionState::Stopped => ProtectionState::Stopped,
            RecordedProtectionState::Failed => ProtectionState::Failed,
        }
    }
}

impl RecordedProtectionState {
    /// The agent is meant to run (a standby restart starts it again).
    pub fn active(self) -> bool {
        matches!(self, RecordedProtectionState::Starting | RecordedProtectionState::Running)
    }
}

impl ProtectionRecord {
    /// `protected_by` in status. `pid` and `log` come from the running supervisor.
    pub fn to_view(&self, pid: Option<u32>, log: String) -> ProtectionStatus {
        ProtectionStatus {
            pair: self.pair.clone(),
            standby: self.standby.clone(),
            this_standby: self.this_standby,
            failover_point: self.failover_point,
            disks: self.disks.clone(),
            tracker: self.tracker.clone(),
            cut_interval: self.cut_interval.clone(),
            state: self.state.into(),
            started_at: crate::timefmt::rfc3339_ms(self.started_unix_ms),
            stopped_at: self.stopped_unix_ms.map(crate::timefmt::rfc3339_ms),
            agent_pid: pid,
            agent_restarts: self.agent_restarts,
            agent_log: log,
            operator: self.operator.clone(),
            message: self.message.clone(),
        }
    }
}

/// On a failback `from_protected`: the protecting pair and its point taken as the recovered
/// side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtectedSourceRecord {
    pub pair: PairId,
    pub point: PointId,
}

impl ProtectedSourceRecord {
    pub fn to_view(&self) -> drpair_types::ProtectedSource {
        drpair_types::ProtectedSource { pair: self.pair.clone(), point: self.point }
    }
}

/// On a pair registered by a protecting agent: the original pair and its failover point.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveredFromRecord {
    pub pair: PairId,
    pub point: PointId,
}

impl RecoveredFromRecord {
    pub fn to_view(&self) -> RecoveredFrom {
        RecoveredFrom { pair: self.pair.clone(), point: self.point }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_records_keep_their_format() {
        let rec: ProtectionRecord = serde_json::from_value(serde_json::json!({
            "pair": "web-01-recovered", "standby": "127.0.0.1:7700", "this_standby": true,
            "fingerprint": "sha256:ab", "failover_point": 42, "disks": ["/dev/loop3"], "chunk_size": 65536,
            "tracker": "tracefs", "cut_interval": "1m", "state": "running", "started_unix_ms": 1000,
            "stopped_unix_ms": null, "agent_restarts": 2, "operator": "alice", "message": "ok"
        }))
        .unwrap();
        assert!(rec.state.active());
        let v = rec.to_view(Some(7), "/log".into());
        assert_eq!((v.state, v.agent_pid, v.agent_restarts), (ProtectionState::Running, Some(7), 2));
        assert_eq!(serde_json::to_value(&rec).unwrap()["state"], "running");
        for (s, active) in [
            (RecordedProtectionState::Starting, true),
            (RecordedProtectionState::Stopped, false),
            (RecordedProtectionState::Failed, false),
        ] {
            assert_eq!(s.active(), active);
            assert_eq!(ProtectionState::from(s).active(), active);
        }
        let from = RecoveredFromRecord { pair: PairId::new("web-01").unwrap(), point: 42 };
        assert_eq!(serde_json::to_string(&from).unwrap(), r#"{"pair":"web-01","point":42}"#);
    }
}
