//! One shipping pass: read the chunks an epoch needs, hash them, ask the standby which hashes
//! it already holds, compress and send the rest.
//!
//! ```text
//! plan (change maps) ─▶ feeder ─▶ Reader (io_uring | pread) ─▶ workers: hash, zero, resync
//!                                                                compare, dedup (Have),
//!                                                                compress ─▶ Standby
//! ```
//!
//! With a [`Spool`] (incremental passes), the workers hash the raw chunks into the spool
//! instead, at the disks' speed, and only then is it shipped (dedup asked and compression done
//! per batch): the point's read window no longer depends on the link.
//!
//! Runs on plain threads (the reader owns an io_uring ring on its own thread; workers hash and
//! compress), talking to the standby through the blocking [`Standby`] trait, so memory stays
//! bounded by the reader's buffer pool and the link's frame queue.
//!
//! # Invariants
//!
//! - Every chunk of the epoch is handed to the standby before [`run`] returns `Ok`; the
//!   caller sends the epoch's end only then.
//! - The pass never advances the acknowledged epoch: only the standby's ack does (in the
//!   agent's session). A pass that fails, or whose ack is lost, leaves every chunk it shipped
//!   dirty, so the next epoch ships it again.
//! - A chunk is sent as a hash only when the standby said it holds it (`Have`), and never
//!   during a full copy (`dedup` off).

mod epoch;
mod error;
mod have_gate;
mod holes;
mod level;
mod recheck;
mod resync;
mod spool;
mod stages;
mod throttle;
mod worker;

#[cfg(test)]
mod spool_tests;
#[cfg(test)]
mod tests;

pub use epoch::{PassChoice, choose};
pub use error::PassError;
pub use level::{CompressionCtl, LevelSetting, WorkerCompressor};
pub use recheck::Recheck;
pub use resync::ResyncRanges;
pub use spool::{Spool, SpoolConfig, SpoolUse, clear_dir as clear_spool_dir};
pub use stages::{Stage, StageTimes};

use crate::standby::Standby;
use crate::{Engine, ReadRequest, Reader, ReaderConfig};
use drpair_track::ChangeMap;
use drpair_types::{DiskGeometry, Epoch};
use drpair_wire::PassKind;
use have_gate::HaveGate;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use worker::{Worker, ZeroHashes};

/// Which chunks a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMode {
    /// Only chunks the change map says are dirty.
    Dirty,
    /// Every chunk; each is hashed and compared with the recorded hash (scan, reconcile).
    All,
}

/// The change maps a pass reads and updates, one per disk (the agent's local state, or a
/// plain vector in tests).
pub trait ChangeMaps: Send {
    fn maps(&mut self) -> &mut [ChangeMap];
}

impl ChangeMaps for Vec<ChangeMap> {
    fn maps(&mut self) -> &mut [ChangeMap] {
        self
    }
}

/// Live counters of a pass (read by the progress reporter).
#[derive(Debug, Default)]
pub struct PassProgress {
    pub total: AtomicU64,
    pub done: AtomicU64,
    pub to_ship: AtomicU64,
    pub shipped: AtomicU64,
    pub bytes_read: AtomicU64,
    /// Chunks read again by the recheck, and when it ended (ms since the Unix epoch; 0: none).
    pub rechecked: AtomicU64,
    pub recheck_end_unix_ms: AtomicU64,
    /// Busy time per stage (logged when the pass ends).
    pub stages: StageTimes,
}

/// What a pass needs.
pub struct PassCtx {
    pub maps: Arc<Mutex<dyn ChangeMaps>>,
    pub disks: Vec<(PathBuf, DiskGeometry)>,
    /// How the disks are read (io_uring in the agent).
    pub engine: Engine,
    pub epoch: Epoch,
    pub mode: PassMode,
    pub kind: PassKind,
    pub workers: usize,
    pub compression: Arc<CompressionCtl>,
    /// Where the chunks go, and who answers Have and hash queries.
    pub standby: Arc<dyn Standby>,
    pub progress: Arc<PassProgress>,
    pub abort: Arc<AtomicBool>,
    /// While set, no more chunks are read (paused): the pass waits where it is.
    pub hold: Arc<AtomicBool>,
    /// Ask the standby which hashes it holds and send those as hashes only (off for a full
    /// copy).
    pub dedup: bool,
    /// A differential resync: the standby's range digests to compare with (mode `All`).
    pub resync: Option<Arc<ResyncRanges>>,
    /// Called once every chunk of the pass has been read (before hashing, compressing and
    /// sending finish): an app-consistent cut thaws the applications here.
    pub reads_done: Option<ReadsDone>,
    /// Read the whole epoch into this spool first, then ship it (incremental passes; `None`:
    /// read while sending).
    pub spool: Option<Arc<Spool>>,
    /// With a spool: which chunks were written since the cut (read again before shipping).
    pub recheck: Option<Recheck>,
}

/// See [`PassCtx::reads_done`]; safe to call more than once (only the first call acts).
pub type ReadsDone = Arc<dyn Fn() + Send + Sync>;

/// What a pass sent.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PassSummary {
    pub chunks: u64,
    pub zero: u64,
    pub dedup: u64,
    pub data: u64,
    pub payload_bytes: u64,
}

impl PassSummary {
    fn add(&mut self, o: &PassSummary) {
        self.chunks += o.chunks;
        self.zero += o.zero;
        self.dedup += o.dedup;
        self.data += o.data;
        self.payload_bytes += o.payload_bytes;
    }
}

/// Bytes per read request (runs are cut to this many bytes): large sequential reads keep a
/// scan close to the disk's streaming rate; the pool of 12 buffers bounds memory to 48 MiB.
const READ_BYTES: u64 = 4 << 20;
const READ_BUFFERS: usize = 12;
/// Payload bytes per Chunks frame.
const FRAME_BYTES: usize = 1 << 20;

/// Chunks per read of a full pass (and per range of a differential resync).
pub fn chunks_per_read(g: &DiskGeometry) -> u64 {
    (READ_BYTES / g.chunk_size.bytes() as u64).max(1)
}

fn plan(ctx: &PassCtx) -> Vec<ReadRequest> {
    let mut st = ctx.maps.lock().expect("maps");
    let mut reqs = Vec::new();
    for (d, m) in st.maps().iter().enumerate() {
        let g = m.geometry();
        let per = chunks_per_read(&g);
        let runs: Vec<(u64, u64)> = match ctx.mode {
            PassMode::All => {
                (0..g.chunk_count()).step_by(per as usize).map(|f| (f, per.min(g.chunk_count() - f))).collect()
            }
            PassMode::Dirty => m.dirty_runs(per),
        };
        for (first, count) in runs {
            reqs.push(ReadRequest { disk: d as u32, first_chunk: first, chunk_count: count as u32, tag: 0 });
        }
    }
    reqs
}

/// Runs the pass to the end (or the first error).
pub fn run(ctx: PassCtx) -> Result<PassSummary, PassError> {
    // Sparse disks: holes ship as zero runs, unread (holes.rs).
    let (reqs, zero_runs) = holes::plan(&ctx).unwrap_or_else(|| (plan(&ctx), Vec::new()));
    let total: u64 =
        reqs.iter().map(|r| r.chunk_count as u64).sum::<u64>() + zero_runs.iter().map(|z| z.2).sum::<u64>();
    ctx.progress.total.store(total, Ordering::Relaxed);
    let holes = holes::ship(&ctx, &zero_runs)?;
    if reqs.is_empty() {
        return Ok(holes);
    }
    let reader = Reader::spawn(
        ctx.disks.clone(),
        ReaderConfig { engine: ctx.engine, max_read_bytes: READ_BYTES as usize, buffers: READ_BUFFERS, queue_depth: 8 },
    )?;
    let ctx = Arc::new(ctx);
    let zero = Arc::new(ZeroHashes::default());
    let gate = Arc::new(HaveGate::default());
    let summary = Arc::new(Mutex::new(PassSummary::default()));
    let failed: Arc<Mutex<Option<PassError>>> = Arc::new(Mutex::new(None));
    let n_reqs = reqs.len();
    let completions = reader.completions().clone();
    // Dropped (by `quit`) when the last block is taken or a worker fails: the other workers,
    // waiting for a block that will not come, stop at once instead of at their next timeout
    // (which added up to 200 ms to every pass: a third of a 1% catch-up).
    let (quit_tx, quit_rx) = crossbeam_channel::bounded::<()>(0);
    let quit_tx = &Mutex::new(Some(quit_tx));
    let quit = |q: &Mutex<Option<crossbeam_channel::Sender<()>>>| drop(q.lock().expect("quit").take());
    std::thread::scope(|s| {
        let feeder = {
            let ctx = ctx.clone();
            let reader = &reader;
            s.spawn(move || -> Result<(), PassError> {
                for r in reqs {
                    if wait_while_held(&ctx).is_err() {
                        break;
                    }
                    reader.submit(r)?;
                }
                Ok(())
            })
        };
        let remaining = Arc::new(AtomicU64::new(n_reqs as u64));
        let mut handles = vec![];
        for _ in 0..ctx.workers.max(1) {
            let (ctx, zero, gate, summary, failed, completions, remaining, quit_rx) = (
                ctx.clone(),
                zero.clone(),
                gate.clone(),
                summary.clone(),
                failed.clone(),
                completions.clone(),
                remaining.clone(),
                quit_rx.clone(),
            );
            handles.push(s.spawn(move || {
                let mut w = Worker::new(&ctx, &zero, &gate);
                while remaining.load(Ordering::Acquire) > 0 && !ctx.abort.load(Ordering::Relaxed) {
                    // Some(None): no block within 200 ms (look at the abort flag again).
                    let got = ctx.progress.stages.time(Stage::ReadWait, || {
                        crossbeam_channel::select! {
                            recv(completions) -> b => b.ok().map(Some),
                            recv(quit_rx) -> _ => None,
                            default(Duration::from_millis(200)) => Some(None),
                        }
                    });
                    let block = match got {
                        Some(Some(b)) => b,
                        Some(None) => continue,
                        None => break,
                    };
                    if remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
                        quit(quit_tx);
                        if let Some(done) = &ctx.reads_done {
                            done();
                        }
                    }
                    let r = block.map_err(PassError::from).and_then(|b| w.block(b));
                    if let Err(e) = r {
                        ctx.abort.store(true, Ordering::Relaxed);
                        failed.lock().expect("failed").get_or_insert(e);
                        quit(quit_tx);
                        break;
                    }
                }
                summary.lock().expect("summary").add(&w.sum);
            }));
        }
        for h in handles {
            let _ = h.join();
        }
        // Workers stopped early (error or abort): drop what is still read so buffers go back
        // to the pool and a feeder blocked on backpressure can finish.
        while !feeder.is_finished() {
            let _ = completions.recv_timeout(Duration::from_millis(20));
        }
        if let Ok(Err(e)) = feeder.join() {
            ctx.abort.store(true, Ordering::Relaxed);
            failed.lock().expect("failed").get_or_insert(e);
        }
    });
    if let Some(e) = failed.lock().expect("failed").take() {
        return Err(e);
    }
    if ctx.abort.load(Ordering::Relaxed) {
        return Err(PassError::Aborted);
    }
    let mut s = *summary.lock().expect("summary");
    s.add(&holes);
    if let Some(spool) = &ctx.spool {
        let again = recheck::run(&ctx, &reader, spool, &mut s)?;
        if again > 0 {
            ctx.progress.rechecked.store(again, Ordering::Relaxed);
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            ctx.progress.recheck_end_unix_ms.store(now as u64, Ordering::Release);
        }
        drop(reader);
        ship_spool(&ctx, spool, &mut s)?;
    }
    Ok(s)
}

/// Waits while the pass is held (an operator's pause): whatever reads are in flight, nothing
/// more is read or shipped until it is released. `Aborted` when the pass stops meanwhile.
fn wait_while_held(ctx: &PassCtx) -> Result<(), PassError> {
    while ctx.hold.load(Ordering::Relaxed) && !ctx.abort.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
    }
    if ctx.abort.load(Ordering::Relaxed) { Err(PassError::Aborted) } else { Ok(()) }
}

/// Hands one frame to the standby once the pass is not held; the time it waited for the link
/// goes to the adaptive compression, its chunks to the progress.
fn ship_frame(ctx: &PassCtx, items: Vec<drpair_wire::ChunkItem>) -> Result<(), PassError> {
    wait_while_held(ctx)?;
    let n = items.len() as u64;
    let waited = ctx.progress.stages.time(Stage::Send, || ctx.standby.send_chunks(ctx.epoch, items))?;
    ctx.compression.record_send_wait(waited);
    ctx.progress.shipped.fetch_add(n, Ordering::Relaxed);
    Ok(())
}

/// Bytes an item takes on the link (about: its payload, or a small envelope).
fn item_bytes(i: &drpair_wire::ChunkItem) -> u64 {
    match &i.body {
        drpair_wire::ChunkBody::Data { payload, .. } => payload.len() as u64,
        _ => 64,
    }
}

/// Have queries in flight while the spool ships: the batches asked about run this far
/// ahead of the one being sent, so the round trip of a long link overlaps the sending.
const HAVE_WINDOW: usize = 8;

/// Ships what the workers spooled: per batch of about a frame, the standby is asked which
/// hashes it holds (those go as hashes), the rest is compressed, then the frame is sent. The
/// questions run [`HAVE_WINDOW`] batches ahead of the sending: no batch waits a round trip.
fn ship_spool(ctx: &PassCtx, spool: &Spool, sum: &mut PassSummary) -> Result<(), PassError> {
    let mut comp = ctx.compression.compressor();
    let mut replaced = PassSummary::default();
    let mut ahead: std::collections::VecDeque<(Vec<drpair_wire::ChunkItem>, Vec<(usize, crate::HaveTicket)>)> =
        Default::default();
    let mut send = |mut items: Vec<drpair_wire::ChunkItem>,
                    asked: Vec<(usize, crate::HaveTicket)>,
                    sum: &mut PassSummary|
     -> Result<(), PassError> {
        wait_while_held(ctx)?;
        ctx.progress.stages.time(Stage::Have, || worker::apply_have(&mut items, asked, sum))?;
        worker::compress_spooled(&mut comp, ctx, &mut items, sum);
        throttle::wait(items.iter().map(item_bytes).sum());
        ship_frame(ctx, items)
    };
    let shipped = spool
        .drain(
            FRAME_BYTES as u64,
            |old| {
                replaced.chunks += 1;
                match &old.body {
                    drpair_wire::ChunkBody::Zero => replaced.zero += 1,
                    drpair_wire::ChunkBody::Data { payload, .. } => {
                        replaced.data += 1;
                        replaced.payload_bytes += payload.len() as u64;
                    }
                    drpair_wire::ChunkBody::Known(_) => replaced.dedup += 1,
                    // Never spooled (holes.rs plans no runs for a spooled pass).
                    drpair_wire::ChunkBody::ZeroRun { count } => replaced.zero += count,
                }
            },
            |items| {
                let asked = if ctx.dedup { worker::ask_have(ctx, &items) } else { vec![] };
                ahead.push_back((items, asked));
                if ahead.len() > HAVE_WINDOW {
                    let (items, asked) = ahead.pop_front().expect("a batch ahead");
                    send(items, asked, sum)?;
                }
                Ok(())
            },
        )
        .and_then(|()| {
            while let Some((items, asked)) = ahead.pop_front() {
                send(items, asked, sum)?;
            }
            Ok(())
        });
    sum.chunks -= replaced.chunks;
    sum.zero -= replaced.zero;
    sum.data -= replaced.data;
    sum.dedup -= replaced.dedup;
    sum.payload_bytes -= replaced.payload_bytes;
    shipped
}
