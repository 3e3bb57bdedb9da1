//! The connection loop: after admission, each frame is read and handed on (chunks to ingest,
//! queries answered, an epoch's end committed) until the connection ends.

use super::Session;
use super::admission::{check_agent, handshake, refuse};
use super::covered;
use super::refusals::refused_unauthenticated;
use super::{BULK_AFTER_BYTES, ConnError, INGEST_PARALLEL};
use crate::link::meter::LinkMeter;
use crate::link::{
    AbortOnDrop, HEARTBEAT, LinkError, LinkReader, LinkStream, STALL_AFTER, finish_writer, read_msg_watched,
    read_msg_within, spawn_writer,
};
use crate::standby::Standby;
use crate::standby::failover::failback_error::FailbackError;
use crate::standby::ingest::{self, IngestError, Ingested};
use crate::standby::pair::{OpError, SessionHandle};
use crate::standby::{dump, source_verify};
use crate::timefmt::now_ms;
use drpair_pair::PairOp;
use drpair_tls::Fingerprint;
use drpair_types::{DiskGeometry, Epoch, PairId, StopReason};
use drpair_wire::{AgentMsg, RefuseCode, StandbyMsg, encode};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

/// Largest first message (the Hello) read from a peer not yet admitted.
const HELLO_MAX_BYTES: u32 = 64 << 10;

/// Serves one connection (TLS done; `cert`: the fingerprint of the agent's certificate, if it
/// presented one) until it ends.
pub(super) async fn serve(
    sb: Arc<Standby>,
    stream: LinkStream,
    peer: SocketAddr,
    cert: Option<Fingerprint>,
    meter: Arc<LinkMeter>,
) {
    let (mut rd, wr) = tokio::io::split(stream);
    let (lanes, writer) = spawn_writer(wr, 64, None);
    let tx = lanes.bulk.clone();
    let mut buf = Vec::new();
    let first = read_msg_within::<_, AgentMsg>(&mut rd, &mut buf, HELLO_MAX_BYTES);
    let hello = match tokio::time::timeout(Duration::from_secs(15), first).await {
        Ok(Ok(AgentMsg::Hello(h))) => h,
        Ok(Ok(AgentMsg::Enroll { pair_id, secret, public_key })) => {
            super::enroll::enroll(&sb, &tx, peer, &pair_id, &secret, &public_key).await;
            return finish(tx, writer).await;
        }
        Ok(Ok(other)) => {
            refused_unauthenticated(peer, "hello", &format!("first message {} instead of Hello", other.name()));
            refuse(&tx, RefuseCode::BadRequest, format!("expected Hello as the first message, got {}", other.name()))
                .await;
            return finish(tx, writer).await;
        }
        Ok(Err(e)) => {
            refused_unauthenticated(peer, "hello", &format!("link handshake failed: {e}"));
            refuse(&tx, RefuseCode::BadRequest, e.to_string()).await;
            return finish(tx, writer).await;
        }
        Err(_) => {
            refused_unauthenticated(peer, "timeout", "no Hello within 15s");
            return finish(tx, writer).await;
        }
    };
    drop(buf);
    let pair = match handshake(&sb, &hello, peer, cert) {
        Ok(p) => p,
        Err((RefuseCode::AccessDenied, message)) => {
            // Not authenticated: nothing of it reaches a pair's history.
            refused_unauthenticated(peer, "credential", &message);
            sb.audit.record_link(peer, "authenticate", &hello.pair_id, Err(&message));
            refuse(&tx, RefuseCode::AccessDenied, message).await;
            return finish(tx, writer).await;
        }
        Err((code, message)) => {
            tracing::warn!(%peer, pair = %hello.pair_id, "connection refused: {message}");
            if let Ok(id) = PairId::new(hello.pair_id.clone()) {
                if let Some(h) = sb.registry.get(&id) {
                    let mut rt = h.runtime.lock().expect("runtime");
                    rt.fail(format!("connection from {peer} refused: {message}"));
                    rt.fatal = code.needs_operator().then(|| message.clone());
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
            {
                let mut rt = handle.runtime.lock().expect("runtime");
                rt.fail(format!("connection from {peer} refused: {message}"));
                rt.fatal = code.needs_operator().then(|| message.clone());
            }
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
        rt.fatal = None;
        rt.ever_connected = true;
        rt.since_unix_ms = now_ms();
        rt.agent_version = hello.agent_version.clone();
        rt.progress = Default::default();
        rt.pass_started = None;
        // Reads are paced by the pair's limit and the standby-wide one from now on.
        meter.limit_by(vec![rt.link.bucket.clone(), sb.bandwidth.global.clone()]);
        rt.link.connected(meter.clone());
    }
    crate::standby::bandwidth::apply_pair(&sb, &handle);
    let _heartbeat = heartbeat(handle.clone(), lanes.urgent.clone());
    drop(lanes);
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
        cert,
        meter: meter.clone(),
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
            match e {
                ConnError::Link { source, .. } if source.is_checksum() => rt.link.frames_refused_checksum += 1,
                ConnError::Link { source: LinkError::Stalled(_), .. } => rt.link.stalls += 1,
                _ => {}
            }
        }
        rt.link.ended(&meter, result.as_ref().err().map(|e| e.to_string()).as_deref());
        current
    };
    if let Err(e) = &result {
        let _ = tx.send(encode(&StandbyMsg::Error { message: e.to_string() }).expect("encode")).await;
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

pub(super) async fn finish(tx: mpsc::Sender<Vec<u8>>, writer: tokio::task::JoinHandle<()>) {
    drop(tx);
    finish_writer(writer, Duration::from_secs(5)).await;
}

/// The standby's heartbeat to an admitted agent: a Ping every [`HEARTBEAT`], and the pace
/// the agent should send at whenever it changes (within a quarter second), on the urgent
/// lane (never behind queued frames; skipped, not queued, when even that lane is full).
fn heartbeat(handle: Arc<crate::standby::pair::PairHandle>, urgent: mpsc::Sender<Vec<u8>>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let step = Duration::from_millis(250);
        let mut tick = tokio::time::interval(step);
        let mut since_ping = Duration::ZERO;
        let mut paced = None;
        loop {
            tick.tick().await;
            since_ping += step;
            let (pace, ping) = {
                let mut rt = handle.runtime.lock().expect("runtime");
                let ping = (since_ping >= HEARTBEAT).then(|| rt.link.ping());
                (rt.link.pace, ping)
            };
            let mut msgs = vec![];
            if paced != Some(pace) {
                msgs.push(StandbyMsg::Pace { bytes_per_sec: pace });
            }
            if let Some(seq) = ping {
                since_ping = Duration::ZERO;
                msgs.push(StandbyMsg::Ping { seq });
            }
            for m in msgs {
                match urgent.try_send(encode(&m).expect("encode")) {
                    Ok(()) if matches!(m, StandbyMsg::Pace { .. }) => paced = Some(pace),
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                    _ => {}
                }
            }
        }
    }))
}

impl Session {
    async fn run(&mut self, rd: &mut LinkReader, me: &SessionHandle) -> Result<(), ConnError> {
        let mut buf = Vec::new();
        loop {
            let msg = tokio::select! {
                m = read_msg_watched::<_, AgentMsg>(rd, &mut buf, &self.meter, STALL_AFTER) => m,
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
                        Some((reason, true)) => Err(ConnError::Ended(reason)),
                        None => Err(ConnError::Ended("ended by the standby".into())),
                    };
                }
            };
            let msg = match msg {
                Ok(m) => m,
                Err(LinkError::Closed) => return Ok(()),
                Err(source) => return Err(ConnError::Link { pair: self.pair_id.clone(), source }),
            };
            self.reap()?;
            self.handle.runtime.lock().expect("runtime").stats.bytes_on_wire +=
                (buf.len() + drpair_wire::HEADER_LEN) as u64;
            match msg {
                AgentMsg::Hello(_) => return Err(ConnError::Protocol("Hello sent twice".into())),
                AgentMsg::Enroll { .. } => {
                    return Err(ConnError::Protocol("Enroll on an admitted connection".into()));
                }
                AgentMsg::Renew { public_key } => self.renew(&public_key).await?,
                AgentMsg::Have { batch, hashes } => {
                    if hashes.len() > 4096 {
                        return Err(ConnError::Protocol(format!("Have query of {} hashes exceeds 4096", hashes.len())));
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
                    .map_err(|e| ConnError::Store(e.to_string()))?;
                    self.send(StandbyMsg::HaveReply { batch, have }).await;
                }
                AgentMsg::Chunks { epoch, items } => self.chunks(epoch, items).await?,
                AgentMsg::EpochEnd(end) => self.commit(end).await?,
                AgentMsg::Progress(p) => self.progress(p),
                AgentMsg::Pong { seq } => self.handle.runtime.lock().expect("runtime").link.pong(seq),
                AgentMsg::HashesRequest { req, disk, first, count } => self.hashes(req, disk, first, count).await?,
                AgentMsg::DigestsRequest { req, disk, first, count, span } => {
                    self.digests(req, disk, first, count, span).await?
                }
                AgentMsg::DumpMarked { request_id, result } => dump::on_marked(&self.handle, request_id, result),
                AgentMsg::ResyncMarker { request_id, lineage, acked, history_from } => {
                    dump::on_resync_marker(&self.sb, &self.handle, request_id, lineage, acked, history_from)
                }
                AgentMsg::DumpMarker { request_id, marker } => {
                    dump::on_dump_marker(&self.sb, &self.handle, request_id, marker)
                }
                AgentMsg::ResyncRefused { request_id, message } => {
                    dump::on_resync_refused(&self.sb, &self.handle, request_id, message)
                }
                AgentMsg::FailbackWritten { req, result } => {
                    let waiter = self.handle.runtime.lock().expect("runtime").failback_waiters.remove(&req);
                    match waiter {
                        Some(tx) => {
                            let _ = tx.send(result.map_err(FailbackError::AgentWrites));
                        }
                        None => {
                            tracing::warn!(pair = %self.pair_id, req, "failback writes confirmed that no failback waits for")
                        }
                    }
                }
            }
        }
    }

    /// Issues a certificate for the agent's new key; only an agent that authenticated with a
    /// certificate may renew it.
    async fn renew(&mut self, public_key: &[u8]) -> Result<(), ConnError> {
        if self.cert.is_none() {
            return Err(ConnError::Protocol("Renew from an agent without a certificate: enroll it instead".into()));
        }
        match super::enroll::issue(&self.sb, &self.pair_id, public_key) {
            Ok(answer) => self.send(answer).await,
            Err(e) => return Err(ConnError::Protocol(format!("renewing the agent's certificate: {e}"))),
        }
        Ok(())
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

    pub(super) async fn send(&self, m: StandbyMsg) {
        let _ = self.tx.send(encode(&m).expect("encode")).await;
    }

    pub(super) fn geometries(&self) -> Vec<DiskGeometry> {
        self.handle.record.lock().expect("record").disks.iter().map(|d| d.geometry).collect()
    }

    /// Surfaces errors of finished ingest jobs early.
    fn reap(&mut self) -> Result<(), ConnError> {
        while let Some(r) = self.tasks.try_join_next() {
            self.account(r)?;
        }
        Ok(())
    }

    pub(super) fn account(
        &mut self,
        r: Result<Result<Ingested, IngestError>, tokio::task::JoinError>,
    ) -> Result<(), ConnError> {
        let got = r.map_err(ConnError::worker)??;
        self.epoch_stats.add(&got);
        let mut rt = self.handle.runtime.lock().expect("runtime");
        rt.stats.bytes_shipped += got.shipped;
        rt.stats.bytes_stored += got.stored;
        rt.stats.chunks_received += got.chunks;
        rt.stats.chunks_zero += got.zero;
        rt.stats.chunks_dedup += got.dedup;
        rt.stats.data_raw += got.data_raw;
        crate::standby::metrics::ingested(&self.pair_id, &got);
        Ok(())
    }

    pub(super) fn open_epoch(&mut self, epoch: Epoch) -> Result<(), ConnError> {
        match self.open {
            Some(o) if o == epoch => Ok(()),
            Some(o) => Err(ConnError::Protocol(format!(
                "pair '{}': chunks for epoch {epoch} while epoch {o} is open",
                self.pair_id
            ))),
            None => {
                let committed = self.handle.record.lock().expect("record").committed;
                if epoch <= committed {
                    return Err(ConnError::Protocol(format!(
                        "pair '{}': epoch {epoch} does not follow the committed epoch {committed}",
                        self.pair_id
                    )));
                }
                self.open = Some(epoch);
                self.epoch_stats = Ingested::default();
                self.epoch_payload = 0;
                self.covered = vec![covered::Covered::default(); self.geometries().len()];
                Ok(())
            }
        }
    }

    async fn chunks(&mut self, epoch: Epoch, items: Vec<drpair_wire::ChunkItem>) -> Result<(), ConnError> {
        // Nothing is written past the data filesystem's reserve: the pair stops, its open
        // epoch is discarded (never acknowledged), and it resumes by itself once there is room.
        if let Err(short) = self.sb.resources.ingest_allowed() {
            self.handle.runtime.lock().expect("runtime").link.chunks_refused += items.len() as u64;
            let what = "the standby's data filesystem";
            crate::standby::watch::stop_for(&self.sb, &self.handle, StopReason::StoppedDueToLowDisk, what, &short);
            return Err(ConnError::Refused(format!(
                "{what} has {} free, at its reserve of {}: epoch {epoch} not stored (STOPPED_DUE_TO_LOW_DISK)",
                crate::standby::resources::human(short.free),
                crate::standby::resources::human(short.limit)
            )));
        }
        self.open_epoch(epoch)?;
        let disks = self.geometries();
        for it in &items {
            if let Err(e) = ingest::check_item(&self.pair_id, &disks, it) {
                self.handle.runtime.lock().expect("runtime").link.chunks_refused += items.len() as u64;
                return Err(e.into());
            }
            // A run of zero chunks covers its range (checked to fit the disk just above).
            let (first, count) = ingest::span(it);
            let disk = &mut self.covered[it.disk as usize];
            if let Some(chunk) = disk.first_covered(first, first + count) {
                return Err(ConnError::Protocol(format!(
                    "pair '{}' disk {} chunk {chunk}: sent twice in epoch {epoch}",
                    self.pair_id, it.disk
                )));
            }
            disk.cover(first, first + count);
        }
        self.epoch_payload += items
            .iter()
            .map(|i| match &i.body {
                drpair_wire::ChunkBody::Data { payload, .. } => payload.len() as u64,
                _ => 0,
            })
            .sum::<u64>();
        let bulk = self.epoch_payload > BULK_AFTER_BYTES;
        let permit = self.sem.clone().acquire_owned().await.map_err(|e| ConnError::Worker(e.to_string()))?;
        let (store, pair, pair_no) = (self.sb.store.clone(), self.pair_id.clone(), self.pair_no);
        self.tasks.spawn_blocking(move || {
            let r = ingest::ingest(&store, &pair, pair_no, &disks, epoch, items, bulk);
            drop(permit);
            r
        });
        Ok(())
    }
}
