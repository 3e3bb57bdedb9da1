//! Why a pass stopped. Each message is the one the agent has always logged and reported; the
//! session prefixes it with the epoch.

use crate::{ErrorClass, ReadError};
use drpair_track::ChangeMapError;

/// Why a pass stopped.
#[derive(Debug, thiserror::Error)]
pub enum PassError {
    /// Reading a disk failed (the message names disk and offset).
    #[error("{0}")]
    Read(#[from] ReadError),
    /// The change map could not be updated.
    #[error("{0}")]
    Map(#[from] ChangeMapError),
    /// A frame could not be encoded.
    #[error("{0}")]
    Encode(String),
    /// The link to the standby is gone.
    #[error("link closed")]
    LinkClosed,
    /// The link went down while a worker waited for an answer.
    #[error("link closed while waiting for the standby")]
    ClosedWhileWaiting,
    /// The standby did not answer a Have or hash query in time.
    #[error("standby did not answer a query within {secs}s")]
    NoAnswer { secs: u64 },
    /// The standby answered a Have query with the wrong number of answers.
    #[error("standby answered {got} of {asked} hashes")]
    HaveCount { got: usize, asked: usize },
    /// The standby answered a hash request with the wrong number of hashes.
    #[error("standby answered {got} hashes for {asked}")]
    HashesCount { got: usize, asked: u64 },
    /// The standby refused a frame (its message names the chunk).
    #[error("standby refused: {0}")]
    Refused(String),
    /// The session stopped the pass (link loss, shutdown).
    #[error("pass aborted")]
    Aborted,
    /// The spool file could not be read back (the chunks are still dirty: the next epoch
    /// reads them again).
    #[error("{0}")]
    Spool(String),
}

impl PassError {
    /// Transient or permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            PassError::Read(e) => e.class(),
            PassError::Map(_) | PassError::Encode(_) | PassError::Refused(_) => ErrorClass::Permanent,
            PassError::LinkClosed
            | PassError::ClosedWhileWaiting
            | PassError::NoAnswer { .. }
            | PassError::HaveCount { .. }
            | PassError::HashesCount { .. }
            | PassError::Spool(_)
            | PassError::Aborted => ErrorClass::Transient,
        }
    }
}
