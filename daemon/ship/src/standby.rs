//! What a pass needs from the standby, whatever carries it: the agent's TCP link
//! (`drpaird`'s `agent/link.rs`) or [`crate::MemoryStandby`] in tests.
//!
//! Every call blocks the worker thread that makes it; an implementation answers
//! [`PassError::LinkClosed`] (or [`PassError::ClosedWhileWaiting`]) once the connection is
//! gone, and [`PassError::Aborted`] when the session stopped the pass.

use crate::Hash;
use crate::pass::PassError;
use drpair_types::Epoch;
use drpair_wire::{ChunkItem, WireVersion};
use std::time::Duration;

/// The standby as seen by one pass.
pub trait Standby: Send + Sync {
    /// Which of `hashes` the standby holds, in order (one answer per hash is checked by the
    /// caller).
    fn have(&self, hashes: Vec<Hash>) -> Result<Vec<bool>, PassError>;

    /// Asks [`Standby::have`] without waiting for the answer, which [`HaveTicket::wait`]
    /// takes later: several queries may be in flight, so a long link's round trip is paid
    /// once per window, not once per batch. Answered at once where there is no link.
    fn have_start(&self, hashes: Vec<Hash>) -> HaveTicket {
        HaveTicket::Ready(self.have(hashes))
    }

    /// The standby's per-chunk versions of `disk`'s chunks `first..first + count` in its
    /// newest point (`None`: it holds no version of that chunk).
    fn hashes(&self, disk: u32, first: u64, count: u64) -> Result<Vec<Option<WireVersion>>, PassError>;

    /// Hands one frame of `epoch`'s chunks to the standby (returns once it is queued), and
    /// says how long it waited for room on the link: the adaptive compression level follows
    /// that backpressure.
    fn send_chunks(&self, epoch: Epoch, items: Vec<ChunkItem>) -> Result<Duration, PassError>;
}

/// A [`Standby::have_start`] query in flight.
pub enum HaveTicket {
    /// Answered already.
    Ready(Result<Vec<bool>, PassError>),
    /// Waits for the answer when called.
    Pending(Box<dyn FnOnce() -> Result<Vec<bool>, PassError> + Send>),
}

impl HaveTicket {
    /// The answer (waiting for it if it has not come yet).
    pub fn wait(self) -> Result<Vec<bool>, PassError> {
        match self {
            HaveTicket::Ready(r) => r,
            HaveTicket::Pending(f) => f(),
        }
    }
}
