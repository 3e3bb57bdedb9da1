//! Why a running failback stopped ([`FailbackError`]). The message goes into the failback's
//! status and its task's log as the operator reads it; each names the side, byte or point.

use drpair_types::ErrorClass;

/// Why a running failback stopped. Before the check, the pair stays failed over and the
/// operator fails back again; after it, replication goes on from the original side.
#[derive(Debug, thiserror::Error)]
pub enum FailbackError {
    /// The agent could not do its part: read its disks for the original's point, stay
    /// connected, confirm or perform its writes in time.
    #[error("{0}")]
    Agent(String),
    /// The agent answered that it could not write onto the original disk (its words).
    #[error("the agent could not write onto the original disk: {0}")]
    AgentWrites(String),
    /// Reading, writing or syncing a disk of the recovered side failed.
    #[error("{0}")]
    Disk(String),
    /// The store could not answer, read a point or keep a chunk.
    #[error("{0}")]
    Store(String),
    /// The first point after the failback differs from the recovered side: the original
    /// disk was written meanwhile.
    #[error("{0}")]
    Mismatch(String),
    /// The pair's state refused the failover's end.
    #[error("{0}")]
    State(String),
    /// A worker thread of the standby failed.
    #[error("{0}")]
    Worker(String),
}

impl FailbackError {
    /// The agent and worker threads may do better on another try; a failing disk or store,
    /// a mismatch and a refusing state need someone to look first.
    pub fn class(&self) -> ErrorClass {
        match self {
            FailbackError::Agent(_) | FailbackError::AgentWrites(_) | FailbackError::Worker(_) => ErrorClass::Transient,
            FailbackError::Disk(_) | FailbackError::Store(_) | FailbackError::Mismatch(_) | FailbackError::State(_) => {
                ErrorClass::Permanent
            }
        }
    }

    /// A failed worker thread.
    pub fn worker(e: tokio::task::JoinError) -> Self {
        FailbackError::Worker(e.to_string())
    }

    /// A store failure.
    pub fn store(e: impl std::fmt::Display) -> Self {
        FailbackError::Store(e.to_string())
    }
}
