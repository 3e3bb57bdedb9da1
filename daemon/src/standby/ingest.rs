//! Verifying and storing the chunks of one frame (runs on a blocking thread).
//!
//! Nothing reaches the store before it is checked: disk and chunk number in range, the
//! uncompressed length equal to the chunk's length, blake3 of the uncompressed bytes equal to
//! the announced hash. A "known hash" item must name a chunk the store really holds.

use drpair_store::{ChunkVersion, Store, StoredChunk};
use drpair_types::{DiskGeometry, Epoch, ErrorClass, PairId};
use drpair_wire::{ChunkBody, ChunkItem};
use std::time::Instant;

mod zero_runs;
pub use zero_runs::span;

/// Why a frame's chunks were refused or not stored. Each message names the pair, disk and
/// chunk; nothing of a refused frame is recorded in the epoch.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Coordinates or lengths that cannot be right (a disk or chunk that does not exist, a
    /// length that is not the chunk's, a "known" hash the standby does not hold).
    #[error("{0}")]
    Invalid(String),
    /// The bytes do not decompress or do not match their announced hash: damaged on the way.
    #[error("{0}")]
    Corrupt(String),
    /// The store could not take the chunk or its version.
    #[error("{0}")]
    Store(String),
}

impl IngestError {
    /// Damaged bytes may arrive intact when shipped again; invalid items and a failing store
    /// repeat until someone acts.
    pub fn class(&self) -> ErrorClass {
        match self {
            IngestError::Corrupt(_) => ErrorClass::Transient,
            IngestError::Invalid(_) | IngestError::Store(_) => ErrorClass::Permanent,
        }
    }
}

/// What one frame added.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ingested {
    pub chunks: u64,
    pub raw_bytes: u64,
    pub shipped: u64,
    pub stored: u64,
    pub zero: u64,
    pub dedup: u64,
    /// Uncompressed bytes of the chunks sent as data (for the compression ratio).
    pub data_raw: u64,
    /// Nanoseconds spent checking the chunks (decompression and blake3), and storing them
    /// (the frame's write batch): where the standby's ingest time goes.
    pub verify_ns: u64,
    pub store_ns: u64,
}

impl Ingested {
    pub fn add(&mut self, o: &Ingested) {
        self.chunks += o.chunks;
        self.raw_bytes += o.raw_bytes;
        self.shipped += o.shipped;
        self.stored += o.stored;
        self.zero += o.zero;
        self.dedup += o.dedup;
        self.data_raw += o.data_raw;
        self.verify_ns += o.verify_ns;
        self.store_ns += o.store_ns;
    }
}

fn hex(h: &[u8; 32]) -> String {
    h.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks the items' coordinates against the geometry (cheap; done before any work is queued).
pub fn check_item(pair: &PairId, disks: &[DiskGeometry], item: &ChunkItem) -> Result<(), IngestError> {
    let Some(g) = disks.get(item.disk as usize) else {
        return Err(IngestError::Invalid(format!(
            "pair '{pair}': disk {} does not exist (the pair has {} disk(s))",
            item.disk,
            disks.len()
        )));
    };
    if item.index >= g.chunk_count() {
        return Err(IngestError::Invalid(format!(
            "pair '{pair}' disk {} chunk {}: out of range (the disk has {} chunks)",
            item.disk,
            item.index,
            g.chunk_count()
        )));
    }
    zero_runs::check(pair, g, item)
}

/// Verifies and stores one frame's chunks, then records their versions in the open epoch.
/// `bulk` (large epochs) writes chunk data without the WAL; the commit flushes it first.
pub fn ingest(
    store: &Store,
    pair: &PairId,
    pair_no: u32,
    disks: &[DiskGeometry],
    epoch: Epoch,
    items: Vec<ChunkItem>,
    bulk: bool,
) -> Result<Ingested, IngestError> {
    let mut out = Ingested::default();
    let started = Instant::now();
    // Every item checked before anything is stored; runs of zero chunks are recorded apart,
    // once the other items are stored (zero_runs.rs).
    for item in &items {
        check_item(pair, disks, item)?;
    }
    zero_runs::check_overlaps(pair, &items)?;
    let (items, runs) = zero_runs::split(items);
    let mut versions = Vec::with_capacity(items.len());
    // Verified data chunks, stored together once every item of the frame has passed.
    let mut data: Vec<(usize, [u8; 32], bool, u32, &[u8])> = Vec::new();
    for (at_item, item) in items.iter().enumerate() {
        let len = disks[item.disk as usize].chunk_len(item.index);
        let at = || format!("pair '{pair}' disk {} chunk {}", item.disk, item.index);
        out.chunks += 1;
        out.raw_bytes += len as u64;
        let version = match &item.body {
            // (Runs were taken out above.)
            ChunkBody::Zero | ChunkBody::ZeroRun { .. } => {
                out.zero += 1;
                ChunkVersion::Zero
            }
            ChunkBody::Known(hash) => {
                // Checked to be held when the frame is stored (below).
                out.dedup += 1;
                ChunkVersion::Data(*hash)
            }
            ChunkBody::Data { hash, raw_len, compressed, payload } => {
                let (hash, raw_len, compressed) = (*hash, *raw_len, *compressed);
                if raw_len != len {
                    return Err(IngestError::Invalid(format!(
                        "{}: length {raw_len} does not match the chunk's length {len}",
                        at()
                    )));
                }
                let verified = if compressed {
                    // The stated length (checked above) bounds the output.
                    let raw = drpair_codec::decompress(payload, raw_len).map_err(|e| match e {
                        drpair_codec::CodecError::LengthMismatch { got, .. } => {
                            IngestError::Corrupt(format!("{}: decompressed to {got} bytes, expected {len}", at()))
                        }
                        e => IngestError::Corrupt(format!("{}: zstd: {e}", at())),
                    })?;
                    blake3::hash(&raw)
                } else {
                    if payload.len() != len as usize {
                        return Err(IngestError::Invalid(format!(
                            "{}: {} bytes sent raw, expected {len}",
                            at(),
                            payload.len()
                        )));
                    }
                    blake3::hash(payload)
                };
                if verified.as_bytes() != &hash {
                    return Err(IngestError::Corrupt(format!(
                        "{}: hash mismatch (announced {}, computed {}): chunk refused",
                        at(),
                        hex(&hash),
                        verified.to_hex()
                    )));
                }
                out.shipped += payload.len() as u64;
                out.data_raw += u64::from(raw_len);
                data.push((at_item, hash, compressed, raw_len, payload));
                ChunkVersion::Data(hash)
            }
        };
        versions.push((item.disk, item.index, version));
    }
    let verified_at = Instant::now();
    out.verify_ns = nanos(verified_at - started);
    let chunks: Vec<_> = data
        .iter()
        .map(|&(_, hash, compressed, raw_len, payload)| (hash, StoredChunk { compressed, raw_len, payload }))
        .collect();
    let stored = store.write_frame(pair_no, epoch, &chunks, &versions, bulk).map_err(|e| match e {
        drpair_store::StoreError::MissingChunk { hash } => {
            // Only a hash sent as known can be missing: every other one is in the frame.
            let item = items.iter().find(|i| matches!(&i.body, ChunkBody::Known(h) if hex(h) == hash));
            let at = item.map_or_else(
                || format!("pair '{pair}'"),
                |i| format!("pair '{pair}' disk {} chunk {}", i.disk, i.index),
            );
            IngestError::Invalid(format!("{at}: the agent sent hash {hash} as known, but the standby does not hold it"))
        }
        e => match data.first() {
            Some(&(i, ..)) => {
                IngestError::Store(format!("pair '{pair}' disk {} chunk {} and on: {e}", items[i].disk, items[i].index))
            }
            None => IngestError::Store(e.to_string()),
        },
    })?;
    out.stored += stored.iter().sum::<u64>();
    zero_runs::record(store, pair, pair_no, disks, epoch, &runs, &mut out)?;
    out.store_ns = nanos(verified_at.elapsed());
    Ok(out)
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
