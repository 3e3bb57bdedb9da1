//! One agent connection: handshake, then chunks, queries and epoch commits.
//!
//! Invariants kept here:
//! - an epoch becomes a recovery point only in [`drpair_store::Store::commit_point`] (one
//!   synced batch), and only then is it acknowledged;
//! - versions of an epoch that is not committed are discarded when its connection ends (and
//!   at startup), before another connection of the pair may write;
//! - anything refused (bad frame, out-of-range chunk, hash mismatch, epoch that does not
//!   chain) ends the connection and changes nothing committed.

use super::Standby;
use super::dump_flow;
use super::ingest::{self, Ingested};
use super::registry::{Committed, DiskRecord, OpError, PairHandle, PairRecord, SessionHandle};
use super::source_verify;
use crate::link::{LinkError, read_msg, spawn_writer};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::{Lifecycle, PairOp};
use drpair_types::{ChunkSize, Consistency, DiskGeometry, Epoch, PairId, PointKind, PointSizes, RecoveryPoint};
use drpair_types::{DumpStep, PairState, StopReason};
use drpair_wire::{AgentMsg, EpochEnd, Hello, RefuseCode, StandbyMsg, StartMode, WireVersion, encode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// Frames being verified and stored at once per connection (bounds memory; backpressure).
const INGEST_PARALLEL: usize = 4;
/// Past this many payload bytes in one epoch, chunks are written in bulk (without the WAL).
const BULK_AFTER_BYTES: u64 = 64 << 20;
/// Largest range one hash request may ask for.
const MAX_HASH_RANGE: u64 = 65536;

/// Serves one connection until it ends.
pub async fn serve(sb: Arc<Standby>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (mut rd, wr) = stream.into_split();
    let (tx, writer) = spawn_writer(wr, 64);
    let mut buf = Vec::new();
    let hello = match tokio::time::timeout(Duration::from_secs(15), read_msg::<_, AgentMsg>(&mut rd, &mut buf)).await {
        Ok(Ok(AgentMsg::Hello(h))) => h,
        Ok(Ok(other)) => {
            refuse(&tx, RefuseCode::BadRequest, format!("expected Hello as the first message, got {}", other.name()))
                .await;
            return finish(tx, writer).await;
        }
        Ok(Err(e)) => {
            tracing::warn!(%peer, "link handshake failed: {e}");
            refuse(&tx, RefuseCode::BadRequest, e.to_string()).await;
            return finish(tx, writer).await;
        }
        Err(_) => {
            tracing::warn!(%peer, "no Hello within 15s; closing");
            return finish(tx, writer).await;
        }
    };
    let pair = match handshake(&sb, &hello, peer) {
        Ok(p) => p,
        Err((code, message)) => {
            tracing::warn!(%peer, pair = %hello.pair_id, "connection refused: {message}");
            if let Ok(id) = PairId::new(hello.pair_id.clone()) {
                if let Some(h) = sb.registry.get(&id) {
                    h.runtime.lock().expect("runtime").fail(format!("connection from {peer} refused: {message}"));
                }
            }
            refuse(&tx, code, message).await;
            return finish(tx, writer).await;
        }
    };
    let (handle, registered) = pair;
    let conn_id = sb.next_conn();
    let handle_of_conn = SessionHandle::new(conn_id, tx.clone());
    // Take over from an earlier connection of this pair: tell it to stop, wait until it has
    // discarded its open epoch.
    let old = handle.runtime.lock().expect("runtime").session.take();
    if let Some(old) = old {
        tracing::warn!(pair = %hello.pair_id, "a new connection from {peer} replaces connection {}", old.conn_id);
        old.end(&format!("replaced by a newer connection of the same pair from {peer}"), true);
    }
    let guard = match tokio::time::timeout(Duration::from_secs(60), handle.session_lock.clone().lock_owned()).await {
        Ok(g) => g,
        Err(_) => {
            refuse(
                &tx,
                RefuseCode::BadRequest,
                "the previous connection of this pair did not end within 60s; retry later".into(),
            )
            .await;
            return finish(tx, writer).await;
        }
    };
    // Checks against the record are made under the session lock: an operator's restart or
    // replay changes the record only while holding it.
    let mode = match check_agent(&sb, &handle, &hello, peer) {
        Ok(m) => m,
        Err((code, message)) => {
            tracing::warn!(%peer, pair = %hello.pair_id, "connection refused: {message}");
            handle.runtime.lock().expect("runtime").fail(format!("connection from {peer} refused: {message}"));
            refuse(&tx, code, message).await;
            drop(guard);
            return finish(tx, writer).await;
        }
    };
    let (pair_no, lineage, committed, pair_id, full_copy) = {
        let r = handle.record.lock().expect("record");
        (r.pair_no, r.lineage, r.committed, r.pair_id.clone(), r.restart.as_ref().is_some_and(|x| x.full_copy))
    };
    let store = sb.store.clone();
    match tokio::task::spawn_blocking(move || store.discard_pending(pair_no)).await {
        Ok(Ok(n)) if n > 0 => tracing::info!(pair = %pair_id, "discarded {n} chunk versions of an uncommitted epoch"),
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            refuse(&tx, RefuseCode::BadRequest, format!("standby store error: {e}")).await;
            return finish(tx, writer).await;
        }
        Err(e) => tracing::error!("discard task: {e}"),
    }
    {
        let mut rt = handle.runtime.lock().expect("runtime");
        rt.session = Some(handle_of_conn.clone());
        rt.ever_connected = true;
        rt.since_unix_ms = now_ms();
        rt.agent_version = hello.agent_version.clone();
        rt.progress = Default::default();
        rt.pass_started = None;
    }
    if let Err(e) = handle.apply(&sb.store, PairOp::AgentConnected) {
        tracing::error!(pair = %pair_id, "recording the connection: {e:?}");
    }
    let run = handle.run_mode();
    tracing::info!(pair = %pair_id, %peer, registered, committed, ?mode, ?run, "agent connected");
    let welcome = StandbyMsg::Welcome { lineage, committed, registered, mode, run, full_copy };
    let _ = tx.send(encode(&welcome).expect("encode")).await;
    let mut s = Session {
        sb: sb.clone(),
        handle: handle.clone(),
        pair_id: pair_id.clone(),
        pair_no,
        tx: tx.clone(),
        open: None,
        tasks: JoinSet::new(),
        sem: Arc::new(Semaphore::new(INGEST_PARALLEL)),
        epoch_stats: Ingested::default(),
        covered: vec![],
        epoch_payload: 0,
    };
    let result = s.run(&mut rd, &handle_of_conn).await;
    // Let in-flight ingest jobs end before anything of the open epoch is discarded.
    while s.tasks.join_next().await.is_some() {}
    let still_current = {
        let mut rt = handle.runtime.lock().expect("runtime");
        let current = rt.session.as_ref().is_some_and(|h| h.conn_id == conn_id);
        if current {
            rt.session = None;
            rt.since_unix_ms = now_ms();
            rt.progress.pass = None;
            // Calls waiting for this agent's answer hear that it is gone.
            rt.dump_waiters.clear();
            rt.failback_waiters.clear();
        }
        if let Err(e) = &result {
            rt.fail(format!("connection from {peer} ended: {e}"));
            rt.stats.chunks_errored += 1;
        }
        current
    };
    if let Err(e) = &result {
        let _ = tx.send(encode(&StandbyMsg::Error { message: e.clone() }).expect("encode")).await;
    }
    if s.open.is_some() && still_current {
        let store = sb.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.discard_pending(pair_no)).await;
    }
    // This connection's agent was asked for an online verify it never finished: no other
    // connection will (one replacing it starts afresh).
    let why = match &result {
        Ok(()) => "the agent's connection ended during the online verify".to_string(),
        Err(e) => format!("the agent's connection ended during the online verify ({e})"),
    };
    source_verify::fail(&sb, &handle, &why);
    if still_current && let Err(e) = handle.apply(&sb.store, PairOp::AgentDisconnected) {
        tracing::error!(pair = %pair_id, "recording the disconnection: {e:?}");
    }
    tracing::info!(pair = %pair_id, %peer, "agent disconnected");
    drop(guard);
    drop(s);
    // The last sender but `tx`: while it lived, the writer could not see the channel close,
    // so `finish` waited its full 5 s before the agent saw the connection end.
    drop(handle_of_conn);
    finish(tx, writer).await;
}

async fn finish(tx: mpsc::Sender<Vec<u8>>, writer: tokio::task::JoinHandle<()>) {
    drop(tx);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
}

async fn refuse(tx: &mpsc::Sender<Vec<u8>>, code: RefuseCode, message: String) {
    let _ = tx.send(encode(&StandbyMsg::Refused { code, message }).expect("encode")).await;
}

/// Checks the Hello against the registry; registers a new pair. Returns the pair and whether
/// it was registered now.
fn handshake(sb: &Standby, h: &Hello, peer: SocketAddr) -> Result<(Arc<PairHandle>, bool), (RefuseCode, String)> {
    let bad = |m: String| (RefuseCode::BadRequest, m);
    let pair_id = PairId::new(h.pair_id.clone()).map_err(|e| bad(e.to_string()))?;
    if let Some(t) = &sb.token {
        if !h.token.as_deref().is_some_and(|g| crate::api::auth::token_eq(g, t)) {
            return Err((
                RefuseCode::AccessDenied,
                format!(
                    "pair '{pair_id}': missing or wrong token (give the agent the standby's token with --token-file)"
                ),
            ));
        }
    }
    if h.disks.is_empty() || h.disks.len() > 64 {
        return Err(bad(format!("pair '{pair_id}': an agent must offer 1 to 64 disks, got {}", h.disks.len())));
    }
    let mut disks = Vec::new();
    for (i, d) in h.disks.iter().enumerate() {
        let cs = ChunkSize::new(d.chunk_size).map_err(|e| bad(format!("disk {i}: {e}")))?;
        let g = DiskGeometry::new(d.size_bytes, cs).map_err(|e| bad(format!("disk {i}: {e}")))?;
        disks.push(DiskRecord { path: d.path.clone(), geometry: g });
    }
    let _reg = sb.register_lock.lock().expect("register lock");
    let Some(handle) = sb.registry.get(&pair_id) else {
        if let (Some(l), false) = (h.state.lineage, h.reinit) {
            return Err((
                RefuseCode::LineageMismatch,
                format!(
                    "the standby has no record of pair '{pair_id}', but this agent's state (lineage {l}, checkpoint epoch {}) says it replicated to a standby before. \
                 If the standby was rebuilt, start the agent once with --reinit to begin a new baseline (a full copy); otherwise point it at the standby that holds the pair",
                    h.state.acked
                ),
            ));
        }
        let pair_no = sb.store.allocate_pair_no().map_err(|e| bad(format!("standby store error: {e}")))?;
        let lifecycle = if sb.auto_start {
            Lifecycle::new().apply(PairOp::Start).expect("a new pair can start")
        } else {
            Lifecycle::new()
        };
        let record = PairRecord::register(
            pair_id.clone(),
            pair_no,
            disks,
            h.host.clone(),
            peer.ip().to_string(),
            h.tracker.clone(),
            lifecycle,
        );
        sb.store.put_pair(&pair_id, &record).map_err(|e| bad(format!("standby store error: {e}")))?;
        tracing::info!(pair = %pair_id, pair_no, lineage = %record.lineage, "registered new pair from {peer}");
        let handle = PairHandle::new(record, None, 0);
        sb.registry.insert(handle.clone());
        return Ok((handle, true));
    };
    Ok((handle, false))
}

/// Checks an agent against the pair's record (under the session lock) and says how it
/// starts: continue, start over in a restarted pair's new lineage, or rewind to a replayed
/// point. Records where the agent now runs from.
fn check_agent(
    sb: &Standby,
    handle: &PairHandle,
    h: &Hello,
    peer: SocketAddr,
) -> Result<StartMode, (RefuseCode, String)> {
    let bad = |m: String| (RefuseCode::BadRequest, m);
    let rec = handle.record.lock().expect("record").clone();
    let pair_id = rec.pair_id.clone();
    if let Some(m) = rec.geometry_mismatch(&h.disks) {
        return Err((
            RefuseCode::GeometryMismatch,
            format!(
                "{m}. The recovery points were cut with the registered geometry: restore the registered disks and sizes, or restart replication of the pair (a new baseline)"
            ),
        ));
    }
    if h.reinit {
        return Err((
            RefuseCode::Unsupported,
            format!(
                "pair '{pair_id}' is registered on this standby with {} recovery point checkpoint(s); a new baseline deletes its recovery points: use `drpair restart {pair_id}` instead of --reinit",
                rec.committed
            ),
        ));
    }
    let mut mode = StartMode::Continue;
    let dump_head = rec.dump.as_ref().is_some_and(|d| d.step == DumpStep::Verifying && d.point == Some(rec.committed));
    if dump_head && h.state.lineage == Some(rec.lineage) && h.state.acked < rec.committed {
        // The head is a loaded dump of the agent's dump point: ship what changed after it.
        mode = StartMode::FromDump { epoch: rec.committed };
    } else if rec.restart.is_some() && h.state.lineage != Some(rec.lineage) {
        // Restarted: whatever the agent had, it starts over in the new lineage.
        mode = StartMode::NewBaseline { epoch_floor: rec.epoch_floor };
    } else if let Some(l) = h.state.lineage {
        if l != rec.lineage {
            return Err((
                RefuseCode::LineageMismatch,
                format!(
                    "this agent's state is in lineage {l}, but pair '{pair_id}' on the standby is in lineage {}. \
                 The pair was restarted or the state dir belongs to another pair: move the agent's state dir away to rejoin with a differential resync",
                    rec.lineage
                ),
            ));
        }
        if h.state.acked > rec.committed {
            match rec.rewound {
                Some(r) if r.to == rec.committed && h.state.acked <= r.from => {
                    mode = StartMode::Rewind { to: r.to };
                }
                _ => {
                    return Err((
                        RefuseCode::CheckpointMismatch,
                        format!(
                            "this agent was acknowledged epoch {} but the standby's newest committed epoch of pair '{pair_id}' is {}: the standby lost committed data (restored from an older copy?). Restart replication of the pair",
                            h.state.acked, rec.committed
                        ),
                    ));
                }
            }
        }
        if rec.committed > h.state.last_cut.max(h.state.acked) {
            return Err((
                RefuseCode::CheckpointMismatch,
                format!(
                    "the standby committed epoch {} of pair '{pair_id}', which this agent never cut (its last cut is {}): the agent's state dir is older than the standby's data. Move the state dir away to rejoin with a differential resync",
                    rec.committed, h.state.last_cut
                ),
            ));
        }
    }
    let addr = peer.ip().to_string();
    let history = h.state.lineage.map(|_| h.state.history_from);
    handle
        .update(&sb.store, |rec| {
            rec.source_host = h.host.clone();
            rec.source_address = addr;
            rec.tracker = h.tracker.clone();
            for (a, b) in rec.disks.iter_mut().zip(&h.disks) {
                a.path = b.path.clone();
            }
            if mode == StartMode::Continue {
                rec.agent_history_from = history;
            }
            Ok::<_, OpError>(())
        })
        .map_err(|e| bad(format!("standby store error: {e:?}")))?;
    Ok(mode)
}

struct Session {
    sb: Arc<Standby>,
    handle: Arc<PairHandle>,
    pair_id: PairId,
    pair_no: u32,
    tx: mpsc::Sender<Vec<u8>>,
    /// The epoch being received, if any.
    open: Option<Epoch>,
    tasks: JoinSet<Result<Ingested, String>>,
    sem: Arc<Semaphore>,
    epoch_stats: Ingested,
    /// Per disk: which chunks the open epoch has received.
    covered: Vec<Vec<u64>>,
    /// Payload bytes received in the open epoch.
    epoch_payload: u64,
}

impl Session {
    async fn run(&mut self, rd: &mut tokio::net::tcp::OwnedReadHalf, me: &SessionHandle) -> Result<(), String> {
        let mut buf = Vec::new();
        loop {
            let msg = tokio::select! {
                m = read_msg::<_, AgentMsg>(rd, &mut buf) => m,
                _ = me.kill.notified() => {
                    let why = me.kill_reason.lock().expect("kill reason").clone();
                    return match why {
                        Some((reason, false)) => {
                            tracing::info!(pair = %self.pair_id, "connection ended by the standby: {reason}");
                            // Never waits: an agent that reads nothing must not hold up the
                            // call that ends its connection (it then reconnects with backoff).
                            let _ = self.tx.try_send(encode(&StandbyMsg::Reconnect { reason }).expect("encode"));
                            Ok(())
                        }
                        Some((reason, true)) => Err(reason),
                        None => Err("ended by the standby".into()),
                    };
                }
            };
            let msg = match msg {
                Ok(m) => m,
                Err(LinkError::Closed) => return Ok(()),
                Err(e) => return Err(format!("pair '{}': {e}", self.pair_id)),
            };
            self.reap()?;
            self.handle.runtime.lock().expect("runtime").stats.bytes_on_wire +=
                (buf.len() + drpair_wire::HEADER_LEN) as u64;
            match msg {
                AgentMsg::Hello(_) => return Err("Hello sent twice".into()),
                AgentMsg::Have { batch, hashes } => {
                    if hashes.len() > 4096 {
                        return Err(format!("Have query of {} hashes exceeds 4096", hashes.len()));
                    }
                    // Answered in place: a few bloom-filter and memtable probes, and the
                    // agent's workers wait on the answer. During a restart's baseline each
                    // chunk held is read back and verified first: a restart is how operators
                    // repair doubts, so a hash alone is not trusted then.
                    let verify = self.handle.record.lock().expect("record").restart.is_some();
                    let store = &self.sb.store;
                    let have = tokio::task::block_in_place(|| {
                        if verify { store.has_verified_chunks(&hashes) } else { store.has_chunks(&hashes) }
                    })
                    .map_err(|e| e.to_string())?;
                    self.send(StandbyMsg::HaveReply { batch, have }).await;
                }
                AgentMsg::Chunks { epoch, items } => self.chunks(epoch, items).await?,
                AgentMsg::EpochEnd(end) => self.commit(end).await?,
                AgentMsg::Progress(p) => self.progress(p),
                AgentMsg::HashesRequest { req, disk, first, count } => self.hashes(req, disk, first, count).await?,
                AgentMsg::DigestsRequest { req, disk, first, count, span } => {
                    self.digests(req, disk, first, count, span).await?
                }
                AgentMsg::DumpMarked { request_id, result } => dump_flow::on_marked(&self.handle, request_id, result),
                AgentMsg::ResyncMarker { request_id, lineage, acked, history_from } => {
                    dump_flow::on_resync_marker(&self.sb, &self.handle, request_id, lineage, acked, history_from)
                }
                AgentMsg::DumpMarker { request_id, marker } => {
                    dump_flow::on_dump_marker(&self.sb, &self.handle, request_id, marker)
                }
                AgentMsg::ResyncRefused { request_id, message } => {
                    dump_flow::on_resync_refused(&self.sb, &self.handle, request_id, message)
                }
                AgentMsg::FailbackWritten { req, result } => {
                    let waiter = self.handle.runtime.lock().expect("runtime").failback_waiters.remove(&req);
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(result);
                        }
                        None => {
                            tracing::warn!(pair = %self.pair_id, req, "failback writes confirmed that no failback waits for")
                        }
                    }
                }
            }
        }
    }

    /// Records a progress report: a new pass may change the state (rescanning), and the
    /// agent's change history may have moved.
    fn progress(&mut self, p: drpair_wire::Progress) {
        let history = p.history_from;
        source_verify::on_progress(&self.sb, &self.handle, &p);
        let began = self.handle.runtime.lock().expect("runtime").set_progress(p);
        if let Some(kind) = began {
            let op = PairOp::PassStarted { reconcile: kind == drpair_wire::PassKind::Reconcile };
            if let Err(e) = self.handle.apply(&self.sb.store, op) {
                tracing::error!(pair = %self.pair_id, "recording the pass: {e:?}");
            }
        }
        // Progress arrives twice a second: write the record only when the history moved.
        let moved = {
            let r = self.handle.record.lock().expect("record");
            history.is_some() && r.agent_history_from != history && r.rewound.is_none() && r.restart.is_none()
        };
        if moved {
            let r = self.handle.update(&self.sb.store, |rec| {
                if rec.rewound.is_none() && rec.restart.is_none() {
                    rec.agent_history_from = history;
                }
                Ok::<_, OpError>(())
            });
            if let Err(e) = r {
                tracing::error!(pair = %self.pair_id, "recording the agent's change history: {e:?}");
            }
        }
    }

    async fn send(&self, m: StandbyMsg) {
        let _ = self.tx.send(encode(&m).expect("encode")).await;
    }

    fn geometries(&self) -> Vec<DiskGeometry> {
        self.handle.record.lock().expect("record").disks.iter().map(|d| d.geometry).collect()
    }

    /// Surfaces errors of finished ingest jobs early.
    fn reap(&mut self) -> Result<(), String> {
        while let Some(r) = self.tasks.try_join_next() {
            self.account(r)?;
        }
        Ok(())
    }

    fn account(&mut self, r: Result<Result<Ingested, String>, tokio::task::JoinError>) -> Result<(), String> {
        let got = r.map_err(|e| e.to_string())??;
        self.epoch_stats.add(&got);
        let mut rt = self.handle.runtime.lock().expect("runtime");
        rt.stats.bytes_shipped += got.shipped;
        rt.stats.bytes_stored += got.stored;
        rt.stats.chunks_received += got.chunks;
        rt.stats.chunks_zero += got.zero;
        rt.stats.chunks_dedup += got.dedup;
        rt.stats.data_raw += got.data_raw;
        super::metrics::ingested(&self.pair_id, &got);
        Ok(())
    }

    fn open_epoch(&mut self, epoch: Epoch) -> Result<(), String> {
        match self.open {
            Some(o) if o == epoch => Ok(()),
            Some(o) => Err(format!("pair '{}': chunks for epoch {epoch} while epoch {o} is open", self.pair_id)),
            None => {
                let committed = self.handle.record.lock().expect("record").committed;
                if epoch <= committed {
                    return Err(format!(
                        "pair '{}': epoch {epoch} does not follow the committed epoch {committed}",
                        self.pair_id
                    ));
                }
                self.open = Some(epoch);
                self.epoch_stats = Ingested::default();
                self.epoch_payload = 0;
                self.covered =
                    self.geometries().iter().map(|g| vec![0u64; g.chunk_count().div_ceil(64) as usize]).collect();
                Ok(())
            }
        }
    }

    async fn chunks(&mut self, epoch: Epoch, items: Vec<drpair_wire::ChunkItem>) -> Result<(), String> {
        self.open_epoch(epoch)?;
        let disks = self.geometries();
        for it in &items {
            ingest::check_item(&self.pair_id, &disks, it)?;
            let words = &mut self.covered[it.disk as usize];
            let (w, b) = ((it.index / 64) as usize, it.index % 64);
            if words[w] & (1 << b) != 0 {
                return Err(format!(
                    "pair '{}' disk {} chunk {}: sent twice in epoch {epoch}",
                    self.pair_id, it.disk, it.index
                ));
            }
            words[w] |= 1 << b;
        }
        self.epoch_payload += items
            .iter()
            .map(|i| match &i.body {
                drpair_wire::ChunkBody::Data { payload, .. } => payload.len() as u64,
                _ => 0,
            })
            .sum::<u64>();
        let bulk = self.epoch_payload > BULK_AFTER_BYTES;
        let permit = self.sem.clone().acquire_owned().await.map_err(|e| e.to_string())?;
        let (store, pair, pair_no) = (self.sb.store.clone(), self.pair_id.clone(), self.pair_no);
        self.tasks.spawn_blocking(move || {
            let r = ingest::ingest(&store, &pair, pair_no, &disks, epoch, items, bulk);
            drop(permit);
            r
        });
        Ok(())
    }

    async fn commit(&mut self, end: EpochEnd) -> Result<(), String> {
        self.open_epoch(end.epoch)?;
        while let Some(r) = self.tasks.join_next().await {
            self.account(r)?;
        }
        let orig = self.handle.record.lock().expect("record").clone();
        // Fenced: a failed-over pair commits nothing from the original side (a failback lets
        // it ship its state again).
        if orig.lifecycle.state == PairState::FailedOver {
            return Err(format!(
                "pair '{}' is {}: the standby's side is the source now; epoch {} is refused",
                self.pair_id,
                orig.lifecycle.state.label(),
                end.epoch
            ));
        }
        let mut rec = orig.clone();
        if end.lineage != rec.lineage {
            return Err(format!(
                "pair '{}': epoch {} is in lineage {}, the pair is in lineage {}",
                self.pair_id, end.epoch, end.lineage, rec.lineage
            ));
        }
        let baseline = rec.committed == 0;
        if baseline {
            for (d, g) in rec.disks.iter().map(|d| d.geometry).enumerate() {
                let have: u64 = self.covered[d].iter().map(|w| w.count_ones() as u64).sum();
                if have != g.chunk_count() {
                    return Err(format!(
                        "pair '{}': baseline epoch {} is incomplete: disk {d} has {have} of {} chunks; nothing committed",
                        self.pair_id,
                        end.epoch,
                        g.chunk_count()
                    ));
                }
            }
        }
        let quiesced = end.quiesce.as_ref().is_some_and(|q| q.achieved);
        if (end.consistency == Consistency::AppConsistent || end.kind == PointKind::AppConsistent) && !quiesced {
            return Err(format!(
                "pair '{}': epoch {} claims to be app-consistent without a successful quiesce; nothing committed",
                self.pair_id, end.epoch
            ));
        }
        let logical: u64 = rec.disks.iter().map(|d| d.geometry.size_bytes).sum();
        let st = self.epoch_stats;
        let now = now_ms();
        let point = RecoveryPoint {
            id: end.epoch,
            pair_id: self.pair_id.clone(),
            epoch: end.epoch,
            lineage: rec.lineage,
            time: rfc3339_ms(end.cut_unix_ms),
            time_unix_ms: end.cut_unix_ms,
            committed_unix_ms: now,
            kind: if baseline { PointKind::Baseline } else { end.kind },
            consistency: end.consistency,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes {
                logical_bytes: logical,
                changed_chunks: st.chunks,
                changed_bytes: st.raw_bytes,
                zero_chunks: st.zero,
                dedup_chunks: st.dedup,
                shipped_bytes: st.shipped,
                stored_bytes: st.stored,
            },
            quiesce: end.quiesce.clone(),
            full_pass: end.full_pass,
            damage: None,
        };
        rec.committed = end.epoch;
        rec.lifecycle = rec.lifecycle.apply(PairOp::PointCommitted).map_err(|e| e.to_string())?;
        let verified = dump_flow::on_verified(&mut rec, end.epoch, end.full_pass, st.chunks, end.dump_check.as_ref());
        let source_verified =
            end.source_verify.as_ref().and_then(|r| source_verify::on_committed(&mut rec, r, end.epoch, st.chunks));
        rec.rewound = None;
        if baseline && let Some(r) = rec.restart.take() {
            if r.keep_points {
                rec.retire_below = Some(end.epoch);
            }
        }
        if let Some((dump_point, false)) = verified {
            self.dump_mismatched(dump_point);
        }
        // Persisted and installed under the record's lock, rebased on what API calls changed
        // since `orig` was read (they were acknowledged: they must not be undone). A dump that
        // matched has its point marked verified before the record says so: whoever sees the
        // verification done sees the mark.
        let (store, pair_no, pid, p2, handle) =
            (self.sb.store.clone(), self.pair_no, self.pair_id.clone(), point.clone(), self.handle.clone());
        let rec = tokio::task::spawn_blocking(move || {
            let mut live = handle.record.lock().expect("record");
            let merged = super::rebase::rebase(&orig, rec, &live, Some(PairOp::PointCommitted));
            store.commit_point(pair_no, &p2, &pid, &merged)?;
            if let Some((dump_point, true)) = verified
                && let Err(e) = mark_verified(&store, pair_no, dump_point)
            {
                tracing::error!(pair = %pid, "marking dump point {dump_point} verified: {e}");
            }
            // Logged and counted before anyone can see the verify ended.
            if let Some(v) = &source_verified {
                source_verify::report(&pid, v);
            }
            *live = merged.clone();
            Ok::<_, drpair_store::StoreError>(merged)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("pair '{}': commit of epoch {} failed: {e}", self.pair_id, end.epoch))?;
        {
            let mut rt = self.handle.runtime.lock().expect("runtime");
            rt.last_point = Some(point.clone());
            rt.points += 1;
        }
        if rec.retire_below.is_some() {
            super::control::retire_old_lineage(&self.sb, &self.handle).await;
        }
        self.check_stop_position(&point).await;
        self.open = None;
        self.covered.clear();
        tracing::info!(pair = %self.pair_id, epoch = end.epoch, kind = ?point.kind, chunks = st.chunks, shipped = st.shipped, "recovery point committed");
        super::metrics::committed(&self.pair_id, &point);
        self.send(StandbyMsg::EpochAck { epoch: end.epoch, point_id: point.id }).await;
        let _ = self.handle.commits.send(Committed { point, request_ids: end.request_ids });
        Ok(())
    }

    /// The pass after a loaded dump found it did not match its point: reported as a failure
    /// (before the commit shows the verification, so whoever sees it done sees the failure).
    fn dump_mismatched(&self, dump_point: Epoch) {
        let msg = format!(
            "pair '{}': the loaded dump did not match its dump point {dump_point}; the differing chunks were repaired from the source (see dump.verification)",
            self.pair_id
        );
        self.handle.runtime.lock().expect("runtime").fail(msg);
    }

    /// Stops the pair when this point reaches its stop position.
    async fn check_stop_position(&mut self, point: &RecoveryPoint) {
        let stopped = self.handle.update(&self.sb.store, |rec| {
            let Some(at) = rec.stop_at.clone() else { return Ok(None) };
            let reason = if at.point.is_some_and(|p| point.id >= p) {
                StopReason::StoppedAtPoint
            } else if at.time_unix_ms.is_some_and(|t| point.time_unix_ms >= t) {
                StopReason::StoppedAtTime
            } else {
                return Ok(None);
            };
            rec.lifecycle = rec.lifecycle.apply(PairOp::Stop(reason))?;
            rec.stop_at = None;
            Ok::<_, OpError>(Some(reason))
        });
        match stopped {
            Ok(None) => {}
            Ok(Some(reason)) => {
                tracing::info!(pair = %self.pair_id, point = point.id, reason = reason.as_str(), "pair stopped at its stop position");
                self.handle.send_run_mode();
            }
            Err(OpError::Refused(e)) => {
                tracing::warn!(pair = %self.pair_id, "stop position reached but not applied: {e}")
            }
            Err(e) => tracing::error!(pair = %self.pair_id, "recording the stop: {e:?}"),
        }
    }

    async fn hashes(&mut self, req: u64, disk: u32, first: u64, count: u64) -> Result<(), String> {
        let versions = self.committed_versions(disk, first, count).await?;
        self.send(StandbyMsg::Hashes { req, disk, first, versions }).await;
        Ok(())
    }

    /// One [`drpair_wire::range_digest`] per `span` chunks of `first..first + count`.
    async fn digests(&mut self, req: u64, disk: u32, first: u64, count: u64, span: u32) -> Result<(), String> {
        if span == 0 || span > 4096 {
            return Err(format!("pair '{}': digest span {span} is outside 1..=4096", self.pair_id));
        }
        let versions = self.committed_versions(disk, first, count).await?;
        let digests = versions.chunks(span as usize).map(|r| drpair_wire::range_digest(r.iter().copied())).collect();
        self.send(StandbyMsg::Digests { req, disk, first, span, digests }).await;
        Ok(())
    }

    /// Versions of a range of a disk in the newest committed point (all `None` before the
    /// first commit); a range outside the disk is refused.
    async fn committed_versions(
        &mut self,
        disk: u32,
        first: u64,
        count: u64,
    ) -> Result<Vec<Option<WireVersion>>, String> {
        let disks = self.geometries();
        let Some(g) = disks.get(disk as usize) else {
            return Err(format!("pair '{}': hash request for disk {disk}, which does not exist", self.pair_id));
        };
        if count > MAX_HASH_RANGE || first.checked_add(count).is_none_or(|e| e > g.chunk_count()) {
            return Err(format!(
                "pair '{}' disk {disk}: hash request {first}+{count} is outside 0..{} or over {MAX_HASH_RANGE}",
                self.pair_id,
                g.chunk_count()
            ));
        }
        let committed = self.handle.record.lock().expect("record").committed;
        let versions = if committed == 0 {
            vec![None; count as usize]
        } else {
            let (store, pair_no) = (self.sb.store.clone(), self.pair_no);
            tokio::task::spawn_blocking(move || store.versions_at(pair_no, disk, committed, first, count))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|v| {
                    v.map(|v| match v {
                        drpair_store::ChunkVersion::Zero => WireVersion::Zero,
                        drpair_store::ChunkVersion::Data(h) => WireVersion::Data(h),
                    })
                })
                .collect()
        };
        Ok(versions)
    }
}

/// Marks point `point` verified (a loaded dump that matched the source).
fn mark_verified(store: &drpair_store::Store, pair_no: u32, point: Epoch) -> Result<(), drpair_store::StoreError> {
    if let Some(mut p) = store.get_point(pair_no, point)? {
        p.verified_at = Some(rfc3339_ms(now_ms()));
        store.update_point(pair_no, &p)?;
    }
    Ok(())
}
