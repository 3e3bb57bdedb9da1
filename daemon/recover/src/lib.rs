//! Offline recovery (`drpair debug recover`): one disk of a recovery point rebuilt straight
//! from a standby's store, with no daemon running — for when the standby cannot serve.
//!
//! The reading is the online export's, through the store's [`PointReader`]: each chunk is the
//! newest version at or before the point's epoch, read back and blake3-verified. Where
//! the export stops at the first bad chunk (a client must never mistake a cut stream for a
//! whole image), recovery goes on: a chunk with no version, missing from the store or failing
//! verification is written as zeros and listed in the report with its offset, so the operator
//! gets every readable byte and knows exactly which are not.
//!
//! Invariants:
//! - Nothing is written before every input is checked: the target is acceptable, the store
//!   opens (a running standby holds its lock: [`RecoverError::InUse`]; a missing store is never
//!   created), the pair, the point and the disk exist.
//! - The store is only read: no pending epoch is discarded, no record rewritten (opening it may
//!   replay rocksdb's log and build missing indexes, as every `Store::open` does).
//! - A regular FILE is written as `FILE.partial`, synced, then renamed to FILE; on failure the
//!   partial file is removed. Zero chunks stay holes there. A block device (`--force`) is written
//!   in full, zeros included; it must hold at least the disk and not be in use.
//! - The report's blake3 is of the image's bytes in order, zeros included: blake3 of the file,
//!   or of the device's first `bytes` bytes.

//!
//! Depends on the store and the vocabulary only: the pair's id, number and disks come from the
//! standby's pair record through the store's [`drpair_store::PairFacts`].

mod chunks;
mod error;
mod find;
mod report;
mod target;
mod writer;

/// The bucket's credentials, for a store whose chunks are on an object store.
pub use drpair_store::S3Credentials;
pub use error::RecoverError;
pub use report::{DamageReason, DamagedChunk, MAX_LISTED, RecoverReport};

use chunks::{Content, DiskChunks};
use drpair_store::PointReader;
use drpair_types::{PairId, PointId, standby_store_dir};
use error::io_err;
use find::{find_pair, find_point, open_store};
use std::fmt;
use std::path::PathBuf;
use std::time::Instant;
use target::Target;
use writer::{ImageWriter, WRITE_BUF};

/// Most threads reading and verifying chunks at once.
const MAX_READERS: usize = 8;

/// Which point to recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointSelector {
    Latest,
    Id(PointId),
}

impl fmt::Display for PointSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointSelector::Latest => f.write_str("latest"),
            PointSelector::Id(id) => write!(f, "{id}"),
        }
    }
}

/// What to recover, and where to.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    /// The standby's data dir (the store is in `store/` below it).
    pub data_dir: PathBuf,
    pub pair: PairId,
    pub point: PointSelector,
    pub disk: u32,
    /// A regular file (created) or a block device.
    pub out: PathBuf,
    /// Replace an existing non-empty file; required to write to a block device.
    pub force: bool,
    /// The bucket's credentials, for a store whose chunks are on an object store (reached
    /// where the standby last reached it).
    pub s3_credentials: Option<drpair_store::S3Credentials>,
}

/// Rebuilds disk `opts.disk` of a recovery point into `opts.out`; `progress(done, total)` is
/// called with the bytes produced so far. Damaged chunks do not stop it: see the report.
pub fn recover(opts: &RecoverOptions, mut progress: impl FnMut(u64, u64)) -> Result<RecoverReport, RecoverError> {
    let started = Instant::now();
    let store_dir = standby_store_dir(&opts.data_dir);
    let target = Target::check(&opts.out, opts.force, &store_dir)?;
    let store = open_store(&opts.data_dir, &store_dir, opts.s3_credentials.as_ref())?;
    let rec = find_pair(&store, &store_dir, &opts.pair)?;
    let point = find_point(&store, &rec, opts.point)?;
    // The point's own disks: a point from before a disk grew keeps the old size.
    let disks = rec.geometries_at(point.epoch);
    let g = *disks.get(opts.disk as usize).ok_or_else(|| RecoverError::DiskNotFound {
        pair: rec.pair_id.to_string(),
        disk: opts.disk,
        count: disks.len(),
    })?;
    let out = opts.out.display().to_string();
    let image = target.open(g.size_bytes)?;
    let mut writer = ImageWriter::new(&image.file, target.sparse(), g.chunk_size.bytes() as usize);
    let mut report = RecoverReport {
        pair_id: rec.pair_id.clone(),
        point: point.id,
        point_time: point.time.clone(),
        disk: opts.disk,
        out: out.clone(),
        bytes: g.size_bytes,
        chunk_size: g.chunk_size.bytes(),
        chunks: g.chunk_count(),
        zero_chunks: 0,
        damaged_chunks: 0,
        damaged: Vec::new(),
        blake3: String::new(),
        seconds: 0.0,
    };
    let chunks = DiskChunks { point: PointReader::new(&store, rec.pair_no, opts.disk, g, point.epoch) };
    let span = (WRITE_BUF / g.chunk_size.bytes() as usize).max(1) as u64;
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_READERS);
    let mut first = 0;
    while first < report.chunks {
        let count = span.min(report.chunks - first);
        for (c, content) in (first..).zip(chunks.read_span(first, count, readers)?) {
            let length = g.chunk_len(c);
            let len = length as usize;
            let written = match content {
                Content::Zero => {
                    report.zero_chunks += 1;
                    writer.zeros(len)
                }
                Content::Data(d) => writer.data(&d),
                Content::Damaged { hash, reason, detail } => {
                    report.damaged_chunks += 1;
                    if report.damaged.len() < MAX_LISTED {
                        let offset = g.chunk_offset(c);
                        report.damaged.push(DamagedChunk {
                            disk: opts.disk,
                            chunk: c,
                            offset,
                            length,
                            hash,
                            reason,
                            detail,
                        });
                    }
                    writer.zeros(len)
                }
            };
            written.map_err(io_err(format!("writing {out}")))?;
        }
        first += count;
        progress(g.chunk_offset(first).min(g.size_bytes), g.size_bytes);
    }
    report.blake3 = writer.finish().map_err(io_err(format!("writing {out}")))?.to_hex().to_string();
    target.commit(image)?;
    report.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    tracing::info!(pair = %report.pair_id, point = report.point, disk = report.disk, damaged = report.damaged_chunks, "recovered");
    Ok(report)
}

#[cfg(test)]
mod tests;
