//! One worker of a pass: hashes a read block, records the hashes in the change map, decides
//! what ships, asks the standby which hashes it holds, compresses the rest and hands frames of
//! about 1 MiB to the standby.

use super::have_gate::HaveGate;
use super::{FRAME_BYTES, PassCtx, PassError, PassMode, PassSummary, Stage, WorkerCompressor, throttle};
use crate::HaveTicket;
use crate::{ReadBlock, hash_chunk, is_zero};
use drpair_wire::{ChunkBody, ChunkItem};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering;

/// One chunk of a block once read: (index, offset in the block, length, all zero, hash).
pub(super) type ReadChunk = (u64, usize, usize, bool, [u8; 32]);

/// Blake3 of an all-zero chunk of `len` bytes, cached for the two lengths a disk has.
#[derive(Default)]
pub(super) struct ZeroHashes(Mutex<HashMap<usize, [u8; 32]>>);

impl ZeroHashes {
    pub(super) fn get(&self, len: usize) -> [u8; 32] {
        *self.0.lock().expect("zero hashes").entry(len).or_insert_with(|| hash_chunk(&vec![0u8; len]))
    }
}

pub(super) struct Worker<'a> {
    pub(super) ctx: &'a PassCtx,
    pub(super) zero: &'a ZeroHashes,
    gate: &'a HaveGate,
    pub(super) sum: PassSummary,
    comp: WorkerCompressor,
}

impl<'a> Worker<'a> {
    pub(super) fn new(ctx: &'a PassCtx, zero: &'a ZeroHashes, gate: &'a HaveGate) -> Self {
        Worker { ctx, zero, gate, sum: PassSummary::default(), comp: ctx.compression.compressor() }
    }

    pub(super) fn block(&mut self, b: ReadBlock) -> Result<(), PassError> {
        let ctx = self.ctx;
        let d = b.disk as usize;
        let g = ctx.disks[d].1;
        let cs = g.chunk_size.bytes() as usize;
        // Hash outside the lock.
        let chunks: Vec<ReadChunk> = ctx.progress.stages.time(Stage::Hash, || {
            (0..b.chunk_count as u64)
                .map(|i| {
                    let c = b.first_chunk + i;
                    let off = i as usize * cs;
                    let len = g.chunk_len(c) as usize;
                    let data = &b.buf[off..off + len];
                    let z = is_zero(data);
                    let h = if z { self.zero.get(len) } else { hash_chunk(data) };
                    (c, off, len, z, h)
                })
                .collect()
        });
        ctx.progress.bytes_read.fetch_add(b.buf.len() as u64, Ordering::Relaxed);
        // The test throttle stands for a slow link: a spooled pass pays it when it ships.
        if ctx.spool.is_none() {
            throttle::wait(b.buf.len() as u64);
        }
        if let Some(r) = &ctx.resync {
            self.resync_block(r, b.disk, b.first_chunk, &chunks)?;
        }
        let ship = ctx.progress.stages.time(Stage::Map, || self.to_ship(d, &chunks))?;
        ctx.progress.to_ship.fetch_add(ship.len() as u64, Ordering::Relaxed);
        let items = self.bodies(&b, &ship)?;
        self.sum.chunks += items.len() as u64;
        match &ctx.spool {
            Some(spool) => {
                let mut direct = Vec::new();
                for item in items {
                    direct.extend(spool.push(item)?);
                }
                // What did not fit goes over the link now, at its speed.
                compress_spooled(&mut self.comp, ctx, &mut direct, &mut self.sum);
                throttle::wait(direct.iter().map(super::item_bytes).sum());
                self.send_framed(direct)?;
            }
            None => self.send_framed(items)?,
        }
        ctx.progress.done.fetch_add(b.chunk_count as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Decides what ships, recording hashes in the change map.
    fn to_ship(&self, d: usize, chunks: &[ReadChunk]) -> Result<Vec<ReadChunk>, PassError> {
        let ctx = self.ctx;
        let mut ship = Vec::new();
        let mut st = ctx.maps.lock().expect("maps");
        let m = &mut st.maps()[d];
        for &(c, off, len, z, h) in chunks {
            let dirty = match ctx.mode {
                PassMode::All => {
                    m.observe(c, h, ctx.epoch)?;
                    m.is_dirty(c)
                }
                PassMode::Dirty => {
                    m.set_hash(c, Some(h))?;
                    m.is_dirty(c)
                }
            };
            if dirty {
                ship.push((c, off, len, z, h));
            }
        }
        Ok(ship)
    }

    /// The body of each chunk that ships: zero flag, a hash the standby holds, or the
    /// (compressed) bytes.
    fn bodies(&mut self, b: &ReadBlock, ship: &[ReadChunk]) -> Result<Vec<ChunkItem>, PassError> {
        let ctx = self.ctx;
        let mut items = Vec::with_capacity(ship.len());
        let candidates: Vec<_> = ship.iter().filter(|x| !x.3).collect();
        // A spooled pass asks when it ships (the link's round trips stay out of the reads).
        let have = if candidates.is_empty() || !ctx.dedup || ctx.spool.is_some() || !self.gate.ask() {
            vec![]
        } else {
            let v =
                ctx.progress.stages.time(Stage::Have, || self.ask_have(candidates.iter().map(|x| x.4).collect()))?;
            self.gate.answered(v.len(), v.iter().filter(|&&held| held).count());
            v
        };
        let mut have = have.into_iter();
        for &(c, off, len, z, h) in ship {
            let body = if z {
                self.sum.zero += 1;
                ChunkBody::Zero
            } else if have.next().unwrap_or(false) {
                self.sum.dedup += 1;
                ChunkBody::Known(h)
            } else if ctx.spool.is_some() {
                // Compressed when it ships: the read window holds the reads and hashes only.
                self.sum.data += 1;
                self.sum.payload_bytes += len as u64;
                let payload = b.buf[off..off + len].to_vec();
                ChunkBody::Data { hash: h, raw_len: len as u32, compressed: false, payload }
            } else {
                let data = &b.buf[off..off + len];
                self.sum.data += 1;
                match ctx.progress.stages.time(Stage::Compress, || self.comp.compress(data, &ctx.compression)) {
                    Some(p) => {
                        self.sum.payload_bytes += p.len() as u64;
                        ChunkBody::Data { hash: h, raw_len: len as u32, compressed: true, payload: p }
                    }
                    None => {
                        self.sum.payload_bytes += len as u64;
                        ChunkBody::Data { hash: h, raw_len: len as u32, compressed: false, payload: data.to_vec() }
                    }
                }
            };
            items.push(ChunkItem { disk: b.disk, index: c, body });
        }
        Ok(items)
    }

    /// Frames of about 1 MiB of payload: small enough to pipeline, large enough to be cheap.
    fn send_framed(&self, items: Vec<ChunkItem>) -> Result<(), PassError> {
        let mut frame = Vec::new();
        let mut bytes = 0;
        for item in items {
            bytes += super::item_bytes(&item) as usize;
            frame.push(item);
            if bytes >= FRAME_BYTES {
                super::ship_frame(self.ctx, std::mem::take(&mut frame))?;
                bytes = 0;
            }
        }
        if !frame.is_empty() {
            super::ship_frame(self.ctx, frame)?;
        }
        Ok(())
    }

    /// Asks the standby which of these hashes it holds; waits for the answer.
    fn ask_have(&self, hashes: Vec<[u8; 32]>) -> Result<Vec<bool>, PassError> {
        let asked = hashes.len();
        let v = self.ctx.standby.have(hashes)?;
        if v.len() != asked {
            return Err(PassError::HaveCount { got: v.len(), asked });
        }
        Ok(v)
    }
}

/// The Have queries of a batch's data chunks, sent without waiting (at most 4096 hashes per
/// query, as the standby answers).
pub(super) fn ask_have(ctx: &PassCtx, items: &[ChunkItem]) -> Vec<(usize, HaveTicket)> {
    let hashes: Vec<[u8; 32]> = items
        .iter()
        .filter_map(|i| match &i.body {
            ChunkBody::Data { hash, .. } => Some(*hash),
            _ => None,
        })
        .collect();
    hashes.chunks(4096).map(|part| (part.len(), ctx.standby.have_start(part.to_vec()))).collect()
}

/// Turns the data chunks the standby holds into hashes, from the answers to [`ask_have`],
/// moving them from `data` to `dedup` in the summary.
pub(super) fn apply_have(
    items: &mut [ChunkItem],
    asked: Vec<(usize, HaveTicket)>,
    sum: &mut PassSummary,
) -> Result<(), PassError> {
    let mut have = Vec::new();
    for (n, ticket) in asked {
        let answer = ticket.wait()?;
        if answer.len() != n {
            return Err(PassError::HaveCount { got: answer.len(), asked: n });
        }
        have.extend(answer);
    }
    let mut have = have.into_iter();
    for item in items.iter_mut() {
        if let ChunkBody::Data { hash, payload, .. } = &item.body
            && have.next().unwrap_or(false)
        {
            sum.dedup += 1;
            sum.data -= 1;
            sum.payload_bytes -= payload.len() as u64;
            item.body = ChunkBody::Known(*hash);
        }
    }
    Ok(())
}

/// Compresses the spooled data chunks (read raw) as they ship, where zstd shrinks them.
pub(super) fn compress_spooled(
    comp: &mut WorkerCompressor,
    ctx: &PassCtx,
    items: &mut [ChunkItem],
    sum: &mut PassSummary,
) {
    for item in items.iter_mut() {
        if let ChunkBody::Data { hash, raw_len, compressed: false, payload } = &item.body
            && let Some(packed) = ctx.progress.stages.time(Stage::Compress, || comp.compress(payload, &ctx.compression))
        {
            sum.payload_bytes = sum.payload_bytes - payload.len() as u64 + packed.len() as u64;
            item.body = ChunkBody::Data { hash: *hash, raw_len: *raw_len, compressed: true, payload: packed };
        }
    }
}
