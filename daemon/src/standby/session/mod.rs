//! One agent connection: admission (handshake, checks), then chunks, queries and epoch
//! commits.
//!
//! Invariants kept here:
//! - an epoch becomes a recovery point only in [`drpair_store::Store::commit_point`] (one
//!   synced batch), and only then is it acknowledged;
//! - versions of an epoch that is not committed are discarded when its connection ends (and
//!   at startup), before another connection of the pair may write;
//! - anything refused (bad frame, out-of-range chunk, hash mismatch, epoch that does not
//!   chain) ends the connection and changes nothing committed.

mod accept;
mod admission;
mod commit;
mod conn;
mod covered;
mod enroll;
mod error;
mod hooks;
mod queries;
mod refusals;

pub use accept::{ConnLimits, accept};
pub use error::ConnError;
pub use refusals::refused_unauthenticated;

use crate::standby::Standby;
use crate::standby::ingest::{IngestError, Ingested};
use crate::standby::pair::PairHandle;
use drpair_types::{Epoch, PairId};
use std::sync::Arc;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// Frames being verified and stored at once per connection (bounds memory; backpressure).
pub(super) const INGEST_PARALLEL: usize = 4;
/// Past this many payload bytes in one epoch, chunks are written in bulk (without the WAL).
pub(super) const BULK_AFTER_BYTES: u64 = 64 << 20;
/// Largest range one hash request may ask for.
pub(super) const MAX_HASH_RANGE: u64 = 65536;

/// One admitted connection of a pair's agent: what it has received of the open epoch.
pub(super) struct Session {
    sb: Arc<Standby>,
    handle: Arc<PairHandle>,
    pair_id: PairId,
    pair_no: u32,
    tx: mpsc::Sender<Vec<u8>>,
    /// The epoch being received, if any.
    open: Option<Epoch>,
    tasks: JoinSet<Result<Ingested, IngestError>>,
    sem: Arc<Semaphore>,
    epoch_stats: Ingested,
    /// Per disk: which chunks the open epoch has received.
    covered: Vec<covered::Covered>,
    /// Payload bytes received in the open epoch.
    epoch_payload: u64,
    /// The fingerprint of the certificate the agent authenticated with, if it did.
    cert: Option<drpair_tls::Fingerprint>,
    /// Bytes on the wire of this connection, and when the last one arrived (stall watch).
    meter: Arc<crate::link::meter::LinkMeter>,
}
