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

    /// The standby's per-chunk versions of `disk`'s chunks `first..first + count` in its
    /// newest point (`None`: it holds no version of that chunk).
    fn hashes(&self, disk: u32, first: u64, count: u64) -> Result<Vec<Option<WireVersion>>, PassError>;

    /// Hands one frame of `epoch`'s chunks to the standby (returns once it is queued), and
    /// says how long it waited for room on the link: the adaptive compression level follows
    /// that backpressure.
    fn send_chunks(&self, epoch: Epoch, items: Vec<ChunkItem>) -> Result<Duration, PassError>;
}
