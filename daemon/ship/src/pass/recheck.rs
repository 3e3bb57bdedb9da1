//! The recheck: chunks written between the cut and the end of a spooled pass's reads are read
//! again, once, right before the spool ships, and replace what was spooled for them.
//!
//! A spooled epoch is read within a short window after its cut, but a database keeps writing
//! meanwhile: a checkpoint can update `pg_control` on one disk after the WAL holding its record
//! was read on another, and the point then names a checkpoint it does not hold. The tracker
//! knows which chunks were written since the cut; reading those again (a few chunks: the WAL's
//! tail, the control file, some pages) leaves only the milliseconds of that second read for
//! such a tear instead of the whole read window. The point's content is then the disks' state
//! just after its reads, never older than its cut.
//!
//! Skipped (the spool ships as read) when the tracker cannot tell (scan), when the spool
//! overflowed (some chunks were already sent), or when more than [`MAX_CHUNKS`] were written.

use super::{PassCtx, PassError, PassSummary, Spool, chunks_per_read};
use crate::{ReadRequest, Reader, hash_chunk, is_zero};
use drpair_wire::{ChunkBody, ChunkItem};
use std::sync::Arc;
use std::time::Duration;

/// The chunks written since the epoch's cut, per disk as `(first, count)` runs; `None` when
/// the tracker cannot tell.
pub type Recheck = Arc<dyn Fn() -> Option<Vec<Vec<(u64, u64)>>> + Send + Sync>;

/// Most chunks read again; past it the writes are too many for a short second read.
pub const MAX_CHUNKS: u64 = 4096;

/// Reads again the chunks written since the cut and puts them in the spool in place of what
/// it holds for them. Returns how many chunks were read again.
pub(super) fn run(ctx: &PassCtx, reader: &Reader, spool: &Spool, sum: &mut PassSummary) -> Result<u64, PassError> {
    let Some(recheck) = &ctx.recheck else { return Ok(0) };
    if spool.usage().overflowed {
        return Ok(0);
    }
    let Some(runs) = recheck() else { return Ok(0) };
    let total: u64 = runs.iter().flatten().map(|r| r.1).sum();
    if total == 0 || total > MAX_CHUNKS {
        if total > 0 {
            tracing::info!(
                epoch = ctx.epoch,
                chunks = total,
                "recheck skipped: too many chunks written during the reads"
            );
        }
        return Ok(0);
    }
    let mut requests = Vec::new();
    for (d, disk_runs) in runs.iter().enumerate() {
        let Some((_, g)) = ctx.disks.get(d) else { continue };
        let per = chunks_per_read(g);
        for &(first, count) in disk_runs {
            let end = (first + count).min(g.chunk_count());
            let mut f = first;
            while f < end {
                let n = per.min(end - f);
                requests.push(ReadRequest { disk: d as u32, first_chunk: f, chunk_count: n as u32, tag: 1 });
                f += n;
            }
        }
    }
    let wanted: u64 = requests.iter().map(|r| u64::from(r.chunk_count)).sum();
    let mut items = Vec::new();
    // Submitted from another thread while this one takes the blocks: the reader's buffers
    // come back only as blocks are taken.
    std::thread::scope(|scope| -> Result<(), PassError> {
        let feeder = scope.spawn(|| -> Result<(), PassError> {
            for r in requests {
                reader.submit(r)?;
            }
            Ok(())
        });
        let mut got = 0u64;
        let mut failed = None;
        while got < wanted && failed.is_none() {
            let b = match reader.completions().recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(b)) => b,
                Ok(Err(e)) => {
                    failed = Some(PassError::from(e));
                    break;
                }
                Err(_) => {
                    failed = Some(PassError::Aborted);
                    break;
                }
            };
            let g = ctx.disks[b.disk as usize].1;
            for i in 0..b.chunk_count {
                let c = b.first_chunk + u64::from(i);
                let len = g.chunk_len(c) as usize;
                let data = &b.chunk(i)[..len];
                let body = if is_zero(data) {
                    sum.zero += 1;
                    ChunkBody::Zero
                } else {
                    sum.data += 1;
                    sum.payload_bytes += len as u64;
                    ChunkBody::Data {
                        hash: hash_chunk(data),
                        raw_len: len as u32,
                        compressed: false,
                        payload: data.to_vec(),
                    }
                };
                sum.chunks += 1;
                items.push(ChunkItem { disk: b.disk, index: c, body });
            }
            got += u64::from(b.chunk_count);
        }
        // Stopped early: take what is still read so the feeder's submissions can finish.
        while failed.is_some() && !feeder.is_finished() {
            let _ = reader.completions().recv_timeout(Duration::from_millis(20));
        }
        let fed = feeder.join().map_err(|_| PassError::Aborted)?;
        match failed {
            Some(e) => Err(e),
            None => fed,
        }
    })?;
    let got = items.len() as u64;
    spool.supersede(items);
    Ok(got)
}
