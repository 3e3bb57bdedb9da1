//! Online verify against the source (`POST /api/v1/pairs/{pair}/verify-source`): the agent
//! reads and hashes every chunk of its disks, compares them with the newest recovery point,
//! reports the chunks that differ although it recorded no change to them (a write its tracker
//! never saw, or damage on either side), and ships them in the same pass; the point that
//! commits the pass (the *repair point*) equals the source again.

use serde::{Deserialize, Serialize};

/// Where an online verify stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceVerifyState {
    /// Asked of the agent; its pass has not begun.
    Requested,
    /// The agent is reading and comparing every chunk.
    Running,
    /// The pass was committed (with or without mismatches: see `mismatched_chunks`).
    Done,
    /// The pass ended without a result (agent disconnected, standby restarted, tracking gap).
    Failed,
}

impl SourceVerifyState {
    /// A verify in this state is still going on.
    pub fn is_active(self) -> bool {
        matches!(self, SourceVerifyState::Requested | SourceVerifyState::Running)
    }

    /// The words an operator sees.
    pub fn label(self) -> &'static str {
        match self {
            SourceVerifyState::Requested => "requested",
            SourceVerifyState::Running => "running",
            SourceVerifyState::Done => "done",
            SourceVerifyState::Failed => "failed",
        }
    }
}

/// The running or last online verify of a pair (`GET …/verify-source`, `source_verify` in
/// status).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceVerifyStatus {
    pub state: SourceVerifyState,
    pub requested_unix_ms: u64,
    pub finished_unix_ms: Option<u64>,
    /// The point the source was compared with (the newest when the pass started).
    pub against_point: Option<u64>,
    pub progress_percent: f64,
    pub chunks_compared: u64,
    /// Chunks that differed from the point although the tracker recorded no change.
    pub mismatched_chunks: u64,
    /// Chunks shipped by the pass (mismatches repaired plus ordinary changes).
    pub shipped_chunks: u64,
    /// Up to 50 mismatched chunks.
    pub sample: Vec<MismatchedChunk>,
    /// The point that committed the pass (the repair).
    pub repair_point: Option<u64>,
    /// Plain words: what happened / why it failed.
    pub message: String,
    /// The task that runs (or ran) this operation: `GET /api/v1/tasks/{id}` and its `/log`.
    /// Absent in records written before tasks existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<crate::TaskId>,
}

/// One chunk of one disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchedChunk {
    pub disk: u32,
    pub chunk: u64,
}

/// Mismatched chunks listed in [`SourceVerifyStatus::sample`].
pub const SOURCE_VERIFY_SAMPLE: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_on_the_wire() {
        assert_eq!(serde_json::to_string(&SourceVerifyState::Running).unwrap(), "\"running\"");
        let s = SourceVerifyStatus {
            state: SourceVerifyState::Done,
            requested_unix_ms: 1,
            finished_unix_ms: Some(2),
            against_point: Some(7),
            progress_percent: 100.0,
            chunks_compared: 10,
            mismatched_chunks: 1,
            shipped_chunks: 1,
            sample: vec![MismatchedChunk { disk: 0, chunk: 3 }],
            repair_point: Some(8),
            message: "m".into(),
            task: Some(crate::TaskId(4)),
        };
        let j = serde_json::to_value(&s).unwrap();
        assert_eq!(j["state"], "done");
        assert_eq!(j["task"], 4);
        // A record written before tasks existed has no `task`.
        let mut old = j.clone();
        old.as_object_mut().unwrap().remove("task");
        assert_eq!(serde_json::from_value::<SourceVerifyStatus>(old).unwrap().task, None);
        assert_eq!(j["sample"][0]["chunk"], 3);
        assert_eq!(serde_json::from_value::<SourceVerifyStatus>(j).unwrap(), s);
        assert!(SourceVerifyState::Requested.is_active() && !SourceVerifyState::Failed.is_active());
    }
}
