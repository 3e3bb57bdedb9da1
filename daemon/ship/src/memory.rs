//! A standby in memory, for tests of the pass without sockets: it verifies and keeps what it
//! receives like the real one (decompress within the stated length, blake3 against the
//! announced hash, a "known" hash must be held), commits an epoch on request, and can be told
//! to lose an ack, refuse a chunk, or drop the connection after some frames.

use crate::Hash;
use crate::pass::PassError;
use crate::standby::Standby;
use drpair_types::Epoch;
use drpair_wire::{ChunkBody, ChunkItem, WireVersion};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// What the standby did with one epoch's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndOutcome {
    /// Committed and acknowledged.
    Acked(Epoch),
    /// Committed, but the ack never reached the agent.
    AckLost(Epoch),
}

#[derive(Default)]
struct Inner {
    /// Raw bytes by hash (chunks stay once received, as in the store).
    chunks: HashMap<Hash, Vec<u8>>,
    /// Versions received in the open epoch, by (disk, chunk).
    pending: BTreeMap<(u32, u64), WireVersion>,
    /// Newest committed version of each chunk.
    committed: BTreeMap<(u32, u64), WireVersion>,
    epochs: Vec<Epoch>,
    frames: u64,
    have_queries: u64,
    /// Every item received, in order: (epoch, disk, chunk, body kind).
    received: Vec<(Epoch, u32, u64, Received)>,
    lose_next_ack: bool,
    refuse: Option<(u32, u64)>,
    /// Frames accepted before the connection drops.
    drop_after: Option<u64>,
    down: bool,
}

/// How a chunk arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    Zero,
    Known,
    Data { compressed: bool },
}

/// See the module documentation.
#[derive(Default)]
pub struct MemoryStandby {
    inner: Mutex<Inner>,
}

impl MemoryStandby {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().expect("memory standby")
    }

    /// Holds these chunks already (stored by another pair, or an earlier epoch).
    pub fn hold(&self, data: &[u8]) {
        self.lock().chunks.insert(crate::hash_chunk(data), data.to_vec());
    }

    /// The next epoch end commits, but its ack is lost.
    pub fn lose_next_ack(&self) {
        self.lock().lose_next_ack = true;
    }

    /// Refuses any frame holding this chunk, as the standby refuses bad input.
    pub fn refuse_chunk(&self, disk: u32, chunk: u64) {
        self.lock().refuse = Some((disk, chunk));
    }

    /// Accepts `frames` more frames, then the connection drops: every call fails with
    /// [`PassError::LinkClosed`] until [`MemoryStandby::reconnect`].
    pub fn drop_after(&self, frames: u64) {
        let mut g = self.lock();
        g.drop_after = Some(g.frames + frames);
    }

    /// A new connection: what the dropped one sent in the open epoch is discarded (as the
    /// standby discards an uncommitted epoch's versions); chunks received stay.
    pub fn reconnect(&self) {
        let mut g = self.lock();
        g.down = false;
        g.drop_after = None;
        g.pending.clear();
    }

    /// Commits the open epoch: its versions become the newest point.
    pub fn end_epoch(&self, epoch: Epoch) -> Result<EndOutcome, PassError> {
        let mut g = self.lock();
        if g.down {
            return Err(PassError::LinkClosed);
        }
        let pending = std::mem::take(&mut g.pending);
        g.committed.extend(pending);
        g.epochs.push(epoch);
        Ok(if std::mem::take(&mut g.lose_next_ack) { EndOutcome::AckLost(epoch) } else { EndOutcome::Acked(epoch) })
    }

    /// The committed version of a chunk, and its bytes when it holds data.
    pub fn version(&self, disk: u32, chunk: u64) -> Option<WireVersion> {
        self.lock().committed.get(&(disk, chunk)).copied()
    }

    /// The bytes of a chunk held under `hash`.
    pub fn data(&self, hash: &Hash) -> Option<Vec<u8>> {
        self.lock().chunks.get(hash).cloned()
    }

    /// Epochs committed, in order.
    pub fn epochs(&self) -> Vec<Epoch> {
        self.lock().epochs.clone()
    }

    /// Items received (all connections), in order.
    pub fn received(&self) -> Vec<(Epoch, u32, u64, Received)> {
        self.lock().received.clone()
    }

    /// Frames of chunks and Have queries received.
    pub fn counts(&self) -> (u64, u64) {
        let g = self.lock();
        (g.frames, g.have_queries)
    }

    fn check_up(g: &mut Inner) -> Result<(), PassError> {
        if g.drop_after.is_some_and(|n| g.frames >= n) {
            g.down = true;
        }
        if g.down { Err(PassError::LinkClosed) } else { Ok(()) }
    }
}

impl Standby for MemoryStandby {
    fn have(&self, hashes: Vec<Hash>) -> Result<Vec<bool>, PassError> {
        let mut g = self.lock();
        Self::check_up(&mut g)?;
        g.have_queries += 1;
        Ok(hashes.iter().map(|h| g.chunks.contains_key(h)).collect())
    }

    fn hashes(&self, disk: u32, first: u64, count: u64) -> Result<Vec<Option<WireVersion>>, PassError> {
        let mut g = self.lock();
        Self::check_up(&mut g)?;
        Ok((first..first + count).map(|c| g.committed.get(&(disk, c)).copied()).collect())
    }

    fn send_chunks(&self, epoch: Epoch, items: Vec<ChunkItem>) -> Result<Duration, PassError> {
        let mut g = self.lock();
        Self::check_up(&mut g)?;
        if let Some((d, c)) = g.refuse
            && items.iter().any(|i| i.disk == d && i.index == c)
        {
            return Err(PassError::Refused(format!("disk {d} chunk {c}: chunk refused")));
        }
        g.frames += 1;
        for item in items {
            let at = format!("disk {} chunk {}", item.disk, item.index);
            let (version, how) = match item.body {
                ChunkBody::Zero => (WireVersion::Zero, Received::Zero),
                ChunkBody::ZeroRun { count } => {
                    for c in item.index..item.index + count {
                        g.pending.insert((item.disk, c), WireVersion::Zero);
                        g.received.push((epoch, item.disk, c, Received::Zero));
                    }
                    continue;
                }
                ChunkBody::Known(h) => {
                    if !g.chunks.contains_key(&h) {
                        return Err(PassError::Refused(format!("{at}: sent as known, but not held")));
                    }
                    (WireVersion::Data(h), Received::Known)
                }
                ChunkBody::Data { hash, raw_len, compressed, payload } => {
                    let raw = if compressed {
                        drpair_codec::decompress(&payload, raw_len)
                            .map_err(|e| PassError::Refused(format!("{at}: {e}")))?
                    } else {
                        payload
                    };
                    if raw.len() != raw_len as usize || crate::hash_chunk(&raw) != hash {
                        return Err(PassError::Refused(format!("{at}: hash mismatch")));
                    }
                    g.chunks.insert(hash, raw);
                    (WireVersion::Data(hash), Received::Data { compressed })
                }
            };
            g.pending.insert((item.disk, item.index), version);
            g.received.push((epoch, item.disk, item.index, how));
        }
        Ok(Duration::ZERO)
    }
}
