//! One shipping pass: read the chunks an epoch needs, hash them, ask the standby which hashes
//! it already holds, compress and send the rest.
//!
//! Runs on plain threads (the reader owns an io_uring ring on its own thread; workers hash and
//! compress), talking to the async link through bounded channels, so memory stays bounded by
//! the reader's buffer pool and the link's frame queue. Every chunk of the epoch is sent
//! before the caller sends the epoch's end.

use super::compress::CompressionCtl;
use drpair_ship::{Engine, ReadRequest, Reader, ReaderConfig, hash_chunk, is_zero};
use drpair_types::{DiskGeometry, Epoch};
use drpair_wire::{AgentMsg, ChunkBody, ChunkItem, PassKind, WireVersion, encode, range_digest};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Which chunks a pass reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PassMode {
    /// Only chunks the change map says are dirty.
    Dirty,
    /// Every chunk; each is hashed and compared with the recorded hash (scan, reconcile).
    All,
}

/// Where a worker waits for the standby's answer to its Have query.
pub type HaveRoutes = Arc<Mutex<HashMap<u64, crossbeam_channel::Sender<Vec<bool>>>>>;
/// Where a worker waits for the standby's per-chunk hashes of a range.
pub type HashRoutes = Arc<Mutex<HashMap<u64, crossbeam_channel::Sender<Vec<Option<WireVersion>>>>>>;

/// The standby's digests of its newest point, one per `span` chunks of each disk: a
/// differential resync compares each range read with them and asks for per-chunk hashes only
/// where a range differs.
#[derive(Debug, Default)]
pub struct ResyncRanges {
    pub span: u64,
    /// Per disk, one digest per range.
    pub digests: Vec<Vec<[u8; 32]>>,
    pub matched: AtomicU64,
    pub differed: AtomicU64,
    /// Report mismatches with the standby's head, which holds the source as of this epoch (a
    /// loaded third-party dump of it, or the newest point in an online verify): a chunk that
    /// differs from it although the change map saw no change after it is a mismatch.
    pub against: Option<Epoch>,
    /// Chunks that differed from the head with no change after `against` in the change map
    /// when read, (disk, chunk). A write during the pass is only stamped at the tracker's next
    /// collect: [`ResyncRanges::source_check`] filters those out.
    pub mismatch_candidates: Mutex<Vec<(u32, u64)>>,
    /// The tracker cannot date changes (scan): a chunk whose content changed since the agent
    /// last read it may have changed before or after `against`, so only a chunk still as it
    /// was last read can be a mismatch.
    pub undated: bool,
    /// Candidates beyond the list's bound (counted, not listed).
    pub candidates_dropped: AtomicU64,
}

/// Mismatch candidates listed; mismatched chunks named in a check.
const MAX_CANDIDATES: usize = 1 << 16;
const MISMATCH_SAMPLE: usize = drpair_types::SOURCE_VERIFY_SAMPLE;

impl ResyncRanges {
    /// What this resync found of the point it compared with (`compared` chunks read), once
    /// the tracker's changes since the pass's cut are stamped in `maps` with `next` (the epoch
    /// after the pass's): a candidate the tracker did not stamp then is a mismatch (the pass
    /// itself stamps what differed with its own epoch, below `next`). None when the pass was
    /// not asked to compare.
    pub fn source_check(
        &self,
        compared: u64,
        maps: &[drpair_track::ChangeMap],
        next: Epoch,
    ) -> Option<drpair_wire::SourceCheck> {
        let against = self.against?;
        let cands = self.mismatch_candidates.lock().expect("candidates");
        let mut real: Vec<(u32, u64)> =
            cands.iter().copied().filter(|&(d, c)| maps[d as usize].epoch_of(c) < next).collect();
        real.sort_unstable();
        Some(drpair_wire::SourceCheck {
            against,
            compared,
            mismatched: real.len() as u64 + self.candidates_dropped.load(Ordering::Relaxed),
            sample: real.into_iter().take(MISMATCH_SAMPLE).collect(),
        })
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
}

/// What a pass needs.
pub struct PassCtx {
    pub maps: Arc<Mutex<super::state::LocalState>>,
    pub disks: Vec<(PathBuf, DiskGeometry)>,
    pub epoch: Epoch,
    pub mode: PassMode,
    pub kind: PassKind,
    pub workers: usize,
    pub compression: Arc<CompressionCtl>,
    pub out: tokio::sync::mpsc::Sender<Vec<u8>>,
    pub routes: HaveRoutes,
    pub hash_routes: HashRoutes,
    pub next_batch: Arc<AtomicU64>,
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
}

/// See [`PassCtx::reads_done`]; safe to call more than once (only the first call acts).
pub type ReadsDone = Arc<dyn Fn() + Send + Sync>;

/// What a pass sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct PassSummary {
    pub chunks: u64,
    pub zero: u64,
    pub dedup: u64,
    pub data: u64,
    pub payload_bytes: u64,
}

/// Bytes per read request (runs are cut to this many bytes): large sequential reads keep a
/// scan close to the disk's streaming rate; the pool of 12 buffers bounds memory to 48 MiB.
const READ_BYTES: u64 = 4 << 20;
const READ_BUFFERS: usize = 12;
/// Payload bytes per Chunks frame.
const FRAME_BYTES: usize = 1 << 20;
const HAVE_TIMEOUT: Duration = Duration::from_secs(300);

/// Chunks per read of a full pass (and per range of a differential resync).
pub fn chunks_per_read(g: &DiskGeometry) -> u64 {
    (READ_BYTES / g.chunk_size.bytes() as u64).max(1)
}

fn plan(ctx: &PassCtx) -> Vec<ReadRequest> {
    let st = ctx.maps.lock().expect("maps");
    let mut reqs = Vec::new();
    for (d, m) in st.maps.iter().enumerate() {
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

/// Blake3 of an all-zero chunk of `len` bytes, cached for the two lengths a disk has.
struct ZeroHashes(Mutex<HashMap<usize, [u8; 32]>>);

impl ZeroHashes {
    fn get(&self, len: usize) -> [u8; 32] {
        *self.0.lock().expect("zero hashes").entry(len).or_insert_with(|| hash_chunk(&vec![0u8; len]))
    }
}

/// Runs the pass to the end (or the first error).
pub fn run(ctx: PassCtx) -> Result<PassSummary, String> {
    let reqs = plan(&ctx);
    let total: u64 = reqs.iter().map(|r| r.chunk_count as u64).sum();
    ctx.progress.total.store(total, Ordering::Relaxed);
    if reqs.is_empty() {
        return Ok(PassSummary::default());
    }
    let reader = Reader::spawn(
        ctx.disks.clone(),
        ReaderConfig {
            engine: Engine::IoUring,
            max_read_bytes: READ_BYTES as usize,
            buffers: READ_BUFFERS,
            queue_depth: 8,
        },
    )
    .map_err(|e| e.to_string())?;
    let ctx = Arc::new(ctx);
    let zero = Arc::new(ZeroHashes(Mutex::new(HashMap::new())));
    let summary = Arc::new(Mutex::new(PassSummary::default()));
    let failed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let n_reqs = reqs.len();
    let completions = reader.completions().clone();
    std::thread::scope(|s| {
        let feeder = {
            let ctx = ctx.clone();
            let reader = &reader;
            s.spawn(move || {
                for r in reqs {
                    while ctx.hold.load(Ordering::Relaxed) && !ctx.abort.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    if ctx.abort.load(Ordering::Relaxed) {
                        break;
                    }
                    if let Err(e) = reader.submit(r) {
                        return Err(e.to_string());
                    }
                }
                Ok(())
            })
        };
        let remaining = Arc::new(AtomicU64::new(n_reqs as u64));
        let mut handles = vec![];
        for _ in 0..ctx.workers.max(1) {
            let (ctx, zero, summary, failed, completions, remaining) =
                (ctx.clone(), zero.clone(), summary.clone(), failed.clone(), completions.clone(), remaining.clone());
            handles.push(s.spawn(move || {
                let mut w =
                    Worker { ctx: &ctx, zero: &zero, sum: PassSummary::default(), comp: ctx.compression.compressor() };
                while remaining.load(Ordering::Acquire) > 0 && !ctx.abort.load(Ordering::Relaxed) {
                    let block = match completions.recv_timeout(Duration::from_millis(200)) {
                        Ok(b) => b,
                        Err(crossbeam_channel::RecvTimeoutError::Timeout) => continue,
                        Err(_) => break,
                    };
                    if remaining.fetch_sub(1, Ordering::AcqRel) == 1
                        && let Some(done) = &ctx.reads_done
                    {
                        done();
                    }
                    let r = block.map_err(|e| e.to_string()).and_then(|b| w.block(b));
                    if let Err(e) = r {
                        ctx.abort.store(true, Ordering::Relaxed);
                        failed.lock().expect("failed").get_or_insert(e);
                        break;
                    }
                }
                let mut s = summary.lock().expect("summary");
                s.chunks += w.sum.chunks;
                s.zero += w.sum.zero;
                s.dedup += w.sum.dedup;
                s.data += w.sum.data;
                s.payload_bytes += w.sum.payload_bytes;
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
    drop(reader);
    if let Some(e) = failed.lock().expect("failed").take() {
        return Err(e);
    }
    if ctx.abort.load(Ordering::Relaxed) {
        return Err("pass aborted".into());
    }
    let s = *summary.lock().expect("summary");
    Ok(s)
}

struct Worker<'a> {
    ctx: &'a PassCtx,
    zero: &'a ZeroHashes,
    sum: PassSummary,
    comp: super::compress::WorkerCompressor,
}

impl Worker<'_> {
    fn send(&self, msg: &AgentMsg) -> Result<(), String> {
        let frame = encode(msg).map_err(|e| e.to_string())?;
        let t = Instant::now();
        self.ctx.out.blocking_send(frame).map_err(|_| "link closed".to_string())?;
        self.ctx.compression.record_send_wait(t.elapsed());
        Ok(())
    }

    fn block(&mut self, b: drpair_ship::ReadBlock) -> Result<(), String> {
        let ctx = self.ctx;
        let d = b.disk as usize;
        let g = ctx.disks[d].1;
        let cs = g.chunk_size.bytes() as usize;
        // Hash outside the lock.
        let mut chunks = Vec::with_capacity(b.chunk_count as usize);
        for i in 0..b.chunk_count as u64 {
            let c = b.first_chunk + i;
            let off = i as usize * cs;
            let len = g.chunk_len(c) as usize;
            let data = &b.buf[off..off + len];
            let z = is_zero(data);
            let h = if z { self.zero.get(len) } else { hash_chunk(data) };
            chunks.push((c, off, len, z, h));
        }
        ctx.progress.bytes_read.fetch_add(b.buf.len() as u64, Ordering::Relaxed);
        throttle::wait(b.buf.len() as u64);
        if let Some(r) = &ctx.resync {
            self.resync_block(r, b.disk, b.first_chunk, &chunks)?;
        }
        // Decide what ships, recording hashes in the change map.
        let mut ship = Vec::new();
        {
            let mut st = ctx.maps.lock().expect("maps");
            let m = &mut st.maps[d];
            for &(c, off, len, z, h) in &chunks {
                let dirty = match ctx.mode {
                    PassMode::All => {
                        m.observe(c, h, ctx.epoch).map_err(|e| e.to_string())?;
                        m.is_dirty(c)
                    }
                    PassMode::Dirty => {
                        m.set_hash(c, Some(h)).map_err(|e| e.to_string())?;
                        m.is_dirty(c)
                    }
                };
                if dirty {
                    ship.push((c, off, len, z, h));
                }
            }
        }
        ctx.progress.to_ship.fetch_add(ship.len() as u64, Ordering::Relaxed);
        let mut items = Vec::with_capacity(ship.len());
        let candidates: Vec<_> = ship.iter().filter(|x| !x.3).collect();
        let have = if candidates.is_empty() || !ctx.dedup {
            vec![]
        } else {
            self.ask_have(candidates.iter().map(|x| x.4).collect())?
        };
        let mut have = have.into_iter();
        for &(c, off, len, z, h) in &ship {
            let body = if z {
                self.sum.zero += 1;
                ChunkBody::Zero
            } else if have.next().unwrap_or(false) {
                self.sum.dedup += 1;
                ChunkBody::Known(h)
            } else {
                let data = &b.buf[off..off + len];
                self.sum.data += 1;
                match self.comp.compress(data, &ctx.compression) {
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
        self.sum.chunks += items.len() as u64;
        // Frames of about 1 MiB of payload: small enough to pipeline, large enough to be cheap.
        let mut frame = Vec::new();
        let mut bytes = 0;
        for item in items {
            bytes += match &item.body {
                ChunkBody::Data { payload, .. } => payload.len(),
                _ => 64,
            };
            frame.push(item);
            if bytes >= FRAME_BYTES {
                self.send_chunks(std::mem::take(&mut frame))?;
                bytes = 0;
            }
        }
        if !frame.is_empty() {
            self.send_chunks(frame)?;
        }
        ctx.progress.done.fetch_add(b.chunk_count as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Differential resync of one block: when the range's digest equals the standby's, the
    /// standby holds exactly this content, so the hashes read are recorded as known; when it
    /// differs, the standby's per-chunk hashes are recorded. Either way the scan that follows
    /// (`observe`) ships exactly the chunks that differ from the standby.
    fn resync_block(
        &self,
        r: &ResyncRanges,
        disk: u32,
        first: u64,
        chunks: &[(u64, usize, usize, bool, [u8; 32])],
    ) -> Result<(), String> {
        let local =
            chunks.iter().map(|&(_, _, _, z, h)| Some(if z { WireVersion::Zero } else { WireVersion::Data(h) }));
        let theirs = (r.span > 0 && first % r.span == 0)
            .then(|| r.digests.get(disk as usize).and_then(|d| d.get((first / r.span) as usize)))
            .flatten();
        let same = theirs.is_some_and(|t| *t == range_digest(local)) && chunks.len() as u64 <= r.span;
        let known: Vec<Option<[u8; 32]>> = if same {
            r.matched.fetch_add(1, Ordering::Relaxed);
            chunks.iter().map(|c| Some(c.4)).collect()
        } else {
            r.differed.fetch_add(1, Ordering::Relaxed);
            let g = self.ctx.disks[disk as usize].1;
            self.ask_hashes(disk, first, chunks.len() as u64)?
                .into_iter()
                .zip(chunks)
                .map(|(v, &(c, ..))| match v {
                    Some(WireVersion::Data(h)) => Some(h),
                    Some(WireVersion::Zero) => Some(self.zero.get(g.chunk_len(c) as usize)),
                    None => None,
                })
                .collect()
        };
        let mut st = self.ctx.maps.lock().expect("maps");
        let m = &mut st.maps[disk as usize];
        for (&(c, _, _, _, local), h) in chunks.iter().zip(known) {
            if let Some(against) = r.against
                && h != Some(local)
                && m.epoch_of(c) <= against
                && (!r.undated || m.hash(c) == Some(local))
            {
                let mut cands = r.mismatch_candidates.lock().expect("candidates");
                if cands.len() < MAX_CANDIDATES {
                    cands.push((disk, c));
                } else {
                    r.candidates_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            m.set_hash(c, h).map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Asks the standby for its per-chunk hashes of `first..first + count`; waits for them.
    fn ask_hashes(&self, disk: u32, first: u64, count: u64) -> Result<Vec<Option<WireVersion>>, String> {
        let req = self.ctx.next_batch.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.ctx.hash_routes.lock().expect("routes").insert(req, tx);
        self.send(&AgentMsg::HashesRequest { req, disk, first, count })?;
        let v = self.wait_answer(&rx)?;
        if v.len() as u64 != count {
            return Err(format!("standby answered {} hashes for {count}", v.len()));
        }
        Ok(v)
    }

    /// Waits for a routed answer, giving up when the pass aborts or after [`HAVE_TIMEOUT`].
    fn wait_answer<T>(&self, rx: &crossbeam_channel::Receiver<T>) -> Result<T, String> {
        let deadline = Instant::now() + HAVE_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(v) => return Ok(v),
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    if self.ctx.abort.load(Ordering::Relaxed) {
                        return Err("pass aborted".into());
                    }
                    if Instant::now() > deadline {
                        return Err("standby did not answer a query within 300s".into());
                    }
                }
                Err(_) => return Err("link closed while waiting for the standby".into()),
            }
        }
    }

    fn send_chunks(&self, items: Vec<ChunkItem>) -> Result<(), String> {
        let n = items.len() as u64;
        self.send(&AgentMsg::Chunks { epoch: self.ctx.epoch, items })?;
        self.ctx.progress.shipped.fetch_add(n, Ordering::Relaxed);
        Ok(())
    }

    /// Asks the standby which of these hashes it holds; waits for the answer.
    fn ask_have(&self, hashes: Vec<[u8; 32]>) -> Result<Vec<bool>, String> {
        let n = hashes.len();
        let batch = self.ctx.next_batch.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.ctx.routes.lock().expect("routes").insert(batch, tx);
        self.send(&AgentMsg::Have { batch, hashes })?;
        let v = self.wait_answer(&rx)?;
        if v.len() != n {
            return Err(format!("standby answered {} of {n} hashes", v.len()));
        }
        Ok(v)
    }
}

/// Test hook: `DRPAIR_TEST_THROTTLE_BPS` caps the bytes per second a pass reads, so tests can
/// kill processes in the middle of a long epoch, or watch a copy's progress. Idle time earns
/// no credit: a full copy after a quiet spell is as slow as the first one. Unset in
/// production.
mod throttle {
    use std::sync::Mutex;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    /// (bytes per second, when the reads so far are paid for).
    static STATE: OnceLock<Option<(u64, Mutex<Instant>)>> = OnceLock::new();

    pub fn wait(bytes: u64) {
        let st = STATE.get_or_init(|| {
            let bps = std::env::var("DRPAIR_TEST_THROTTLE_BPS").ok()?.parse::<u64>().ok().filter(|b| *b > 0)?;
            tracing::warn!(bps, "test throttle active: reads limited");
            Some((bps, Mutex::new(Instant::now())))
        });
        let Some((bps, paid)) = st else { return };
        let now = Instant::now();
        let due = {
            let mut g = paid.lock().expect("throttle");
            *g = (*g).max(now) + Duration::from_secs_f64(bytes as f64 / *bps as f64);
            *g
        };
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}
