//! One connection of the agent to the standby: handshake, reconcile after a gap, then epochs
//! (cut → pass → end → wait for the commit's ack) until the link drops.

use super::dump;
use super::pass::{self, HashRoutes, HaveRoutes, PassCtx, PassMode, PassProgress, ReadsDone, ResyncRanges};
use super::quiesce::{self, QuiescePlan};
use super::{Agent, SessionError};
use crate::link::{AbortOnDrop, LinkError, read_msg, spawn_writer, write_frame};
use crate::timefmt::now_ms;
use drpair_types::Lineage;
use drpair_types::{Consistency, Epoch, PointKind, TrackingCounters};
use drpair_wire::{
    AgentMsg, EpochEnd, Hello, PassKind, Progress, QuiesceRequest, RunMode, StandbyMsg, StartMode, WireDisk, encode,
};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

mod dump_steps;
mod verify_steps;

type Res<T> = Result<T, SessionError>;

fn transient(m: impl std::fmt::Display) -> SessionError {
    SessionError::Transient(m.to_string())
}

/// Chunks per hash request during a reconcile.
const HASH_SPAN: u64 = 16384;

struct Conn {
    agent: Arc<Agent>,
    out: mpsc::Sender<Vec<u8>>,
    ctl: mpsc::Receiver<Result<StandbyMsg, String>>,
    routes: HaveRoutes,
    hash_routes: HashRoutes,
    next_batch: Arc<AtomicU64>,
    abort: Arc<AtomicBool>,
    /// The standby's range digests for the differential resync the next epoch runs.
    resync: Option<Arc<ResyncRanges>>,
    lineage: Lineage,
    /// Cut requests waiting for the next epoch.
    requests: Vec<u64>,
    /// Quiescing asked for by those requests (merged).
    quiesce: Option<QuiesceRequest>,
    /// A scheduled app-consistent cut is due (`app_consistent_interval`).
    app_due: bool,
    /// Ship nothing (paused, stopped, not started): the standby's last word.
    hold: Arc<AtomicBool>,
    /// During the baseline, ship every chunk's bytes (no hash-only chunks).
    full_copy: bool,
    /// Suspended for a third-party dump: held, cutting epochs locally.
    suspended: bool,
    /// A local cut is due now (a suspension began).
    local_cut_due: bool,
    /// An online verify asked for by the standby (its request id), waiting for the next epoch.
    verify: Option<u64>,
    /// The online verify the next epoch's pass is (digests loaded).
    verify_pass: Option<u64>,
}

/// Connects and serves until the link drops (Transient) or the standby refuses (Permanent).
pub async fn run(agent: Arc<Agent>, abort: Arc<AtomicBool>) -> Res<()> {
    let cfg = &agent.cfg;
    let stream = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&cfg.standby))
        .await
        .map_err(|_| transient(format!("connecting to {} timed out", cfg.standby)))?
        .map_err(|e| transient(format!("cannot connect to {}: {e}", cfg.standby)))?;
    let _ = stream.set_nodelay(true);
    let (mut rd, mut wr) = stream.into_split();
    let hello = Hello {
        pair_id: cfg.pair.to_string(),
        token: cfg.token.clone(),
        host: agent.host.clone(),
        agent_version: env!("CARGO_PKG_VERSION").into(),
        tracker: agent.tracker.lock().expect("tracker").name().to_string(),
        disks: agent
            .disks
            .iter()
            .map(|(p, g)| WireDisk {
                path: p.display().to_string(),
                size_bytes: g.size_bytes,
                chunk_size: g.chunk_size.into(),
            })
            .collect(),
        state: agent.local.lock().expect("maps").wire(),
        reinit: cfg.reinit,
    };
    write_frame(&mut wr, &encode(&AgentMsg::Hello(hello)).map_err(transient)?).await.map_err(transient)?;
    let mut buf = Vec::new();
    let welcome = tokio::time::timeout(Duration::from_secs(60), read_msg::<_, StandbyMsg>(&mut rd, &mut buf))
        .await
        .map_err(|_| transient("standby did not answer the handshake within 60s"))?
        .map_err(|e| transient(format!("handshake: {e}")))?;
    let (lineage, committed, mode, run, full_copy) = match welcome {
        StandbyMsg::Welcome { lineage, committed, registered, mode, run, full_copy } => {
            tracing::info!(pair = %cfg.pair, %lineage, committed, registered, ?mode, ?run, full_copy, "connected to standby {}", cfg.standby);
            (lineage, committed, mode, run, full_copy)
        }
        StandbyMsg::Refused { code, message } => return Err(SessionError::Permanent(format!("{code:?}: {message}"))),
        other => return Err(transient(format!("unexpected first answer from the standby: {other:?}"))),
    };
    let reconcile = adopt(&agent, lineage, committed, mode).map_err(transient)?;

    // Frames out: one writer task; frames in: one reader task routing hash answers straight
    // to the waiting workers and everything else to this loop.
    let (out, writer) = spawn_writer(wr, 16);
    let routes: HaveRoutes = Default::default();
    let hash_routes: HashRoutes = Default::default();
    let (ctl_tx, ctl) = mpsc::channel(64);
    let (routes2, hash_routes2) = (routes.clone(), hash_routes.clone());
    let abort2 = abort.clone();
    // Why the standby asked us to reconnect, if it did: whatever error the session then ends
    // with (a pass cut short by the close), the agent comes back at once.
    let asked: Arc<Mutex<Option<String>>> = Default::default();
    let asked2 = asked.clone();
    // Failback writes go to their own task: they arrive while the agent holds, and must not
    // wait behind (or be dropped by) a pass.
    let (failback_tx, _failback_task) = super::failback::spawn(agent.disks.clone(), out.clone());
    let reader = AbortOnDrop(tokio::spawn(async move {
        let mut buf = Vec::new();
        loop {
            match read_msg::<_, StandbyMsg>(&mut rd, &mut buf).await {
                Ok(StandbyMsg::HaveReply { batch, have }) => {
                    if let Some(tx) = routes2.lock().expect("routes").remove(&batch) {
                        let _ = tx.send(have);
                    }
                }
                Ok(StandbyMsg::Hashes { req, versions, .. })
                    if hash_routes2.lock().expect("routes").contains_key(&req) =>
                {
                    if let Some(tx) = hash_routes2.lock().expect("routes").remove(&req) {
                        let _ = tx.send(versions);
                    }
                }
                Ok(m @ (StandbyMsg::FailbackWrite { .. } | StandbyMsg::FailbackEnd { .. })) => {
                    if failback_tx.send(m).await.is_err() {
                        break;
                    }
                }
                Ok(m) => {
                    if let StandbyMsg::Reconnect { reason } = &m {
                        *asked2.lock().expect("asked") = Some(reason.clone());
                    }
                    if ctl_tx.send(Ok(m)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let msg = match e {
                        LinkError::Closed => "standby closed the connection".to_string(),
                        e => e.to_string(),
                    };
                    // A pass in flight stops now instead of reading on for a link that is gone.
                    abort2.store(true, Ordering::Relaxed);
                    let _ = ctl_tx.send(Err(msg)).await;
                    break;
                }
            }
        }
        // Wake every worker still waiting for an answer.
        routes2.lock().expect("routes").clear();
        hash_routes2.lock().expect("routes").clear();
    }));
    let mut conn = Conn {
        agent: agent.clone(),
        out,
        ctl,
        routes,
        hash_routes,
        next_batch: Arc::new(AtomicU64::new(1)),
        abort,
        resync: None,
        lineage,
        requests: vec![],
        quiesce: None,
        app_due: false,
        hold: Arc::new(AtomicBool::new(false)),
        full_copy,
        suspended: false,
        local_cut_due: false,
        verify: None,
        verify_pass: None,
    };
    conn.set_run(&run);
    let r = match (conn.serve(reconcile).await, asked.lock().expect("asked").take()) {
        (Err(SessionError::Transient(_)), Some(why)) => Err(SessionError::Reconnect(why)),
        (r, _) => r,
    };
    conn.abort.store(true, Ordering::Relaxed);
    drop(reader);
    drop(conn);
    let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
    r
}

/// Aligns the local maps with the standby's answer; returns why a reconcile must run.
fn adopt(agent: &Agent, lineage: Lineage, committed: Epoch, mode: StartMode) -> anyhow::Result<Option<String>> {
    let mut st = agent.local.lock().expect("maps");
    let mut gap = agent.gap.lock().expect("gap");
    if let StartMode::NewBaseline { epoch_floor } = mode
        && (st.fresh || st.lineage() != lineage)
    {
        tracing::warn!(pair = %agent.cfg.pair, %lineage, epoch_floor, "the pair was restarted: starting over, every chunk is shipped again");
        st.start_over(lineage, epoch_floor)?;
        *gap = None;
        if agent.dump.lock().expect("dump").take().is_some() {
            dump::DumpState::remove(&agent.cfg.state_dir);
        }
        return Ok(None);
    }
    if let Some(g) = gap.as_deref() {
        let mut d = agent.dump.lock().expect("dump");
        if let Some(d) = d.as_mut().filter(|d| d.verifying.is_none()) {
            d.mark_broken(g);
            d.save(&agent.cfg.state_dir)?;
        }
    }
    let mut reason = None;
    if st.fresh {
        for m in &mut st.maps {
            m.adopt(lineage, committed)?;
        }
        st.fresh = false;
        if committed > 0 {
            reason = Some(gap.clone().unwrap_or_else(|| {
                "the agent has no change map for this pair (first start on this server, or its state was lost)".into()
            }));
        }
    } else if let StartMode::FromDump { epoch } = mode {
        // The standby's head is the loaded dump of our dump point: ship what changed after
        // it, and compare every chunk with the dump on the way.
        if st.rewind(epoch).is_err() {
            st.set_acked(epoch)?;
        }
        let mut d = agent.dump.lock().expect("dump");
        let d = d.get_or_insert_with(|| dump::DumpState::new(lineage, epoch, now_ms()));
        d.verifying = Some(epoch);
        d.save(&agent.cfg.state_dir)?;
        tracing::warn!(pair = %agent.cfg.pair, epoch, "the standby loaded the dump of point {epoch}: shipping what changed since and comparing every chunk");
        reason = Some(format!("verifying the dump loaded as point {epoch}: every chunk is compared with the source"));
    } else if let StartMode::Rewind { to } = mode {
        match st.rewind(to) {
            Ok(()) => {
                tracing::warn!(pair = %agent.cfg.pair, to, "the standby rolled back to point {to}: shipping again every chunk changed since")
            }
            Err(drpair_track::ChangeMapError::HistoryTooShort { history_from, .. }) => {
                reason = Some(format!(
                    "replay from point {to}, older than this agent's change history (from epoch {history_from})"
                ));
            }
            Err(e) => return Err(e.into()),
        }
    } else if committed > st.acked() {
        // The standby committed an epoch whose ack we never received.
        st.set_acked(committed)?;
    }
    if reason.is_none() && committed > 0 {
        reason = gap.clone().or_else(|| st.suspect());
    }
    if let Some(r) = &reason {
        // What changed during the gap is unknown: no replay can reach behind it.
        st.limit_history(committed)?;
        st.set_suspect(Some(r))?;
    }
    *gap = None;
    Ok(reason)
}

impl Conn {
    /// An operator's request (a cut, an online verify) or the app-consistent schedule wants a
    /// cut now.
    fn cut_wanted(&self) -> bool {
        !self.requests.is_empty() || self.app_due || self.verify.is_some()
    }

    /// How to quiesce the applications for the next cut, if it is to be app-consistent.
    fn take_quiesce_plan(&mut self) -> Option<QuiescePlan> {
        let cfg = &self.agent.cfg;
        let due = std::mem::take(&mut self.app_due);
        match self.quiesce.take() {
            Some(r) => Some(QuiescePlan::from_request(&r, &cfg.quiesce, cfg.pair.as_str(), &cfg.state_dir)),
            None if due => Some(QuiescePlan::scheduled(&cfg.quiesce, cfg.pair.as_str(), &cfg.state_dir)),
            None => None,
        }
    }

    /// Queues a cut request for the next epoch; quiescing requests merge (every mount point
    /// asked for is frozen, the tightest budget wins).
    fn request_cut(&mut self, request_id: u64, quiesce: Option<QuiesceRequest>) {
        self.requests.push(request_id);
        if let Some(q) = quiesce {
            let m = self.quiesce.get_or_insert_with(Default::default);
            for f in q.freeze {
                if !m.freeze.contains(&f) {
                    m.freeze.push(f);
                }
            }
            m.hooks |= q.hooks;
            m.budget_ms = match (m.budget_ms, q.budget_ms) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    async fn send(&self, m: &AgentMsg) -> Res<()> {
        let f = encode(m).map_err(transient)?;
        self.out.send(f).await.map_err(|_| transient("link closed"))
    }

    fn set_run(&mut self, run: &RunMode) {
        let hold = run.holds();
        let was_suspended = std::mem::replace(&mut self.suspended, matches!(run, RunMode::Suspend { .. }));
        if self.hold.swap(hold, Ordering::Relaxed) != hold || hold {
            match run {
                RunMode::Hold { reason } | RunMode::Suspend { reason } => {
                    tracing::warn!(pair = %self.agent.cfg.pair, "holding: {reason}; changes are still tracked")
                }
                RunMode::Run => tracing::info!(pair = %self.agent.cfg.pair, "shipping"),
            }
        }
        if self.suspended {
            self.begin_suspension();
        } else if was_suspended || !hold {
            self.end_suspension();
        }
    }

    /// Next control message; link errors end the session. Run/hold orders are obeyed here.
    async fn next_ctl(&mut self) -> Res<StandbyMsg> {
        loop {
            let m = self.next_msg().await?;
            match m {
                StandbyMsg::Control { run } => self.set_run(&run),
                m => return Ok(m),
            }
        }
    }

    async fn next_msg(&mut self) -> Res<StandbyMsg> {
        match self.ctl.recv().await {
            Some(Ok(StandbyMsg::Error { message })) => Err(transient(format!("standby refused: {message}"))),
            Some(Ok(StandbyMsg::Reconnect { reason })) => Err(SessionError::Reconnect(reason)),
            Some(Ok(StandbyMsg::Refused { code, message })) => {
                Err(SessionError::Permanent(format!("{code:?}: {message}")))
            }
            Some(Ok(m)) => Ok(m),
            Some(Err(e)) => Err(transient(e)),
            None => Err(transient("link closed")),
        }
    }

    async fn serve(&mut self, reconcile: Option<String>) -> Res<()> {
        let mut full = None;
        if let Some(reason) = reconcile {
            tracing::warn!(pair = %self.agent.cfg.pair, "differential resync: {reason}");
            self.load_standby_digests(&reason, None).await?;
            full = Some(reason);
        }
        let interval = self.agent.cfg.cut_interval;
        let app_interval = self.agent.cfg.quiesce.interval;
        let mut next_cut_at = Instant::now();
        let mut next_app = app_interval.map(|i| Instant::now() + i);
        let mut last_beat = Instant::now();
        loop {
            let now = Instant::now();
            let hold = self.hold.load(Ordering::Relaxed);
            let next_cut = match next_app {
                Some(at) => next_cut_at.min(at),
                None => next_cut_at,
            };
            if self.suspended && (self.local_cut_due || now >= next_cut_at) {
                self.local_cut().await?;
                next_cut_at = Instant::now() + interval;
                continue;
            }
            if hold || (now < next_cut && !self.cut_wanted()) {
                let wait = if self.suspended {
                    next_cut_at.saturating_duration_since(now).min(Duration::from_secs(5))
                } else if hold {
                    Duration::from_secs(5)
                } else {
                    (next_cut - now).min(Duration::from_secs(5))
                };
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    m = self.next_msg() => {
                        match m? {
                            StandbyMsg::CutRequest { request_id, quiesce } => self.request_cut(request_id, quiesce),
                            StandbyMsg::Control { run } => self.set_run(&run),
                            StandbyMsg::DumpMark(req) => self.dump_mark(req).await?,
                            StandbyMsg::Resync { request_id, dump_epoch } => self.resync(request_id, dump_epoch).await?,
                            StandbyMsg::VerifySource { request_id } => self.request_verify(request_id),
                            other => tracing::debug!("ignored while idle: {other:?}"),
                        }
                    }
                }
                if last_beat.elapsed() >= Duration::from_secs(5) {
                    self.heartbeat().await?;
                    last_beat = Instant::now();
                }
                if self.hold.load(Ordering::Relaxed) || (Instant::now() < next_cut && !self.cut_wanted()) {
                    continue;
                }
            }
            let started = Instant::now();
            if let (Some(at), Some(i)) = (next_app, app_interval)
                && started >= at
            {
                self.app_due = true;
                next_app = Some(started + i);
            }
            if full.is_none()
                && let Some(request_id) = self.verify.take()
            {
                full = Some(self.begin_verify(request_id).await?);
            }
            self.epoch(full.take()).await?;
            next_cut_at = started + interval;
            last_beat = Instant::now();
        }
    }

    /// The comparison with the point the pass compared with (a loaded dump, or the newest
    /// point in an online verify), after stamping what was written during the pass (with the
    /// epoch after this one: changes seen after a cut belong to the next epoch). None when the
    /// pass compared with nothing; an error in words when the tracker lost events at the cut
    /// (`cut_gap`) or during the pass, so that changes cannot be told from mismatches.
    async fn source_check(
        &self,
        resync: Option<Arc<ResyncRanges>>,
        compared: u64,
        cut_gap: Option<&str>,
    ) -> Res<Option<Result<drpair_wire::SourceCheck, String>>> {
        let Some(r) = resync.filter(|r| r.against.is_some()) else { return Ok(None) };
        if let Some(g) = cut_gap {
            return Ok(Some(Err(format!("the tracker lost events before the pass ({g})"))));
        }
        let (local, tracker) = (self.agent.local.clone(), self.agent.tracker.clone());
        tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut st = local.lock().expect("maps");
            let next = st.maps.iter().map(|m| m.next_epoch()).max().unwrap_or(1);
            let c = tracker.lock().expect("tracker").collect(&mut st.maps, next)?;
            if let Some(g) = &c.gap {
                // Unreliable: the next epoch compares everything again.
                let acked = st.acked();
                st.limit_history(acked)?;
                st.set_suspect(Some(g))?;
                return Ok(Some(Err(format!("the tracker lost events during the pass ({g})"))));
            }
            Ok(r.source_check(compared, &st.maps, next).map(Ok))
        })
        .await
        .map_err(transient)?
        .map_err(transient)
    }

    /// A full pass was acknowledged: a dump being verified is done with.
    fn dump_verified(&mut self) {
        let mut d = self.agent.dump.lock().expect("dump");
        if let Some(e) = d.as_ref().and_then(|d| d.verifying) {
            *d = None;
            dump::DumpState::remove(&self.agent.cfg.state_dir);
            tracing::info!(pair = %self.agent.cfg.pair, dump_epoch = e, "the loaded dump is verified against the source");
        }
    }

    /// The tracker's counters, for status and metrics.
    fn tracking(&self) -> TrackingCounters {
        self.agent.tracker.lock().expect("tracker").stats()
    }

    async fn heartbeat(&self) -> Res<()> {
        let local = self.agent.local.clone();
        let (chunks, bytes) =
            tokio::task::spawn_blocking(move || local.lock().expect("maps").dirty_chunks()).await.map_err(transient)?;
        self.send(&AgentMsg::Progress(Progress {
            backlog_chunks: chunks,
            backlog_bytes: bytes,
            bytes_read_total: self.agent.bytes_read_total.load(Ordering::Relaxed),
            history_from: Some(self.agent.local.lock().expect("maps").history_from()),
            tracking: Some(self.tracking()),
            ..Default::default()
        }))
        .await
    }

    /// Fetches the standby's range digests of its newest point for the differential resync
    /// the next epoch runs: that pass reads every chunk, compares each range with these, and
    /// asks for per-chunk hashes only where a range differs. `verify`: the pass is an online
    /// verify against this point (the newest), and reports mismatches with it.
    async fn load_standby_digests(&mut self, reason: &str, verify: Option<Epoch>) -> Res<()> {
        let geoms: Vec<_> = self.agent.disks.iter().map(|d| d.1).collect();
        let total: u64 = geoms.iter().map(|g| g.chunk_count()).sum();
        let span = geoms.iter().map(pass::chunks_per_read).min().unwrap_or(1);
        let dump_epoch =
            self.agent.dump.lock().expect("dump").as_ref().filter(|d| d.broken.is_none()).and_then(|d| d.verifying);
        let against = verify.or(dump_epoch);
        let kind = if verify.is_some() { PassKind::Verify } else { PassKind::Reconcile };
        let undated = !self.agent.tracker.lock().expect("tracker").dates_changes();
        let mut ranges = ResyncRanges { span, against, undated, ..Default::default() };
        let mut done = 0;
        for (d, g) in geoms.iter().enumerate() {
            if pass::chunks_per_read(g) != span {
                return Err(SessionError::Permanent(format!(
                    "disk {d} has chunk size {} while the pair's first disk has another; all disks of a pair share one",
                    g.chunk_size.bytes()
                )));
            }
            let mut digests = Vec::with_capacity(g.chunk_count().div_ceil(span) as usize);
            let mut first = 0;
            while first < g.chunk_count() {
                let count = (HASH_SPAN / span * span).min(g.chunk_count() - first);
                let req = self.next_batch.fetch_add(1, Ordering::Relaxed);
                self.send(&AgentMsg::DigestsRequest { req, disk: d as u32, first, count, span: span as u32 }).await?;
                let got = loop {
                    match self.next_ctl().await? {
                        StandbyMsg::Digests { req: r, digests, .. } if r == req => break digests,
                        StandbyMsg::CutRequest { request_id, quiesce } => self.request_cut(request_id, quiesce),
                        StandbyMsg::VerifySource { request_id } => self.request_verify(request_id),
                        other => tracing::debug!("ignored during resync: {other:?}"),
                    }
                };
                if got.len() as u64 != count.div_ceil(span) {
                    return Err(transient(format!("standby answered {} digests for {count} chunks", got.len())));
                }
                digests.extend(got);
                done += count;
                first += count;
                self.send(&AgentMsg::Progress(Progress {
                    pass: Some(kind),
                    chunks_done: 0,
                    chunks_total: total,
                    reason: Some(reason.into()),
                    ..Default::default()
                }))
                .await?;
            }
            ranges.digests.push(digests);
        }
        tracing::info!(pair = %self.agent.cfg.pair, chunks = done, span, "standby range digests loaded; reading every chunk");
        self.resync = Some(Arc::new(ranges));
        Ok(())
    }

    /// One epoch: cut, pass, end, ack.
    async fn epoch(&mut self, full: Option<String>) -> Res<()> {
        // A full pass reads the whole disk: far too long to keep applications frozen. An
        // app-consistent cut waits for the epoch after it (its requests wait with it).
        let wants_quiesce = self.quiesce.is_some() || self.app_due;
        let (requests, plan) = if full.is_some() && wants_quiesce {
            tracing::info!(pair = %self.agent.cfg.pair, "app-consistent cut deferred until the resync pass is done");
            (vec![], None)
        } else {
            (std::mem::take(&mut self.requests), self.take_quiesce_plan())
        };
        // Quiesce first, then cut: everything the applications wrote before is in the epoch.
        let held = match plan {
            Some(p) => Some(tokio::task::spawn_blocking(move || quiesce::quiesce(p)).await.map_err(transient)?),
            None => None,
        };
        let outcome = Arc::new(Mutex::new(None));
        let release: ReadsDone = {
            let (held, outcome) = (Mutex::new(held), outcome.clone());
            Arc::new(move || {
                let q = held.lock().expect("quiesce").take();
                if let Some(q) = q {
                    *outcome.lock().expect("outcome") = Some(q.release());
                }
            })
        };
        let cut_ms = now_ms();
        let (local, tracker) = (self.agent.local.clone(), self.agent.tracker.clone());
        let cut = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            let mut st = local.lock().expect("maps");
            let e = st.begin_cut()?;
            let c = tracker.lock().expect("tracker").collect(&mut st.maps, e)?;
            if let Some(g) = &c.gap {
                tracing::warn!("tracking gap: {g}; every chunk is read and compared in this epoch");
                let acked = st.acked();
                st.limit_history(acked)?;
                st.set_suspect(Some(g))?;
            }
            Ok((e, c, st.acked(), st.dirty_chunks().0))
        })
        .await;
        let cut = match cut {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(transient(e)),
            Err(e) => Err(transient(e)),
        };
        if cut.is_err() {
            let r = release.clone();
            let _ = tokio::task::spawn_blocking(move || r()).await;
        }
        let (epoch, collected, acked, dirty) = cut?;
        let verify = self.verify_pass.take();
        let reason = full.or(collected.gap.clone());
        let mode = if collected.scan || reason.is_some() { PassMode::All } else { PassMode::Dirty };
        let kind = if acked == 0 {
            PassKind::Initial
        } else if verify.is_some() {
            PassKind::Verify
        } else if reason.is_some() {
            PassKind::Reconcile
        } else if collected.scan {
            PassKind::Scan
        } else {
            PassKind::Incremental
        };
        tracing::info!(pair = %self.agent.cfg.pair, epoch, pass = kind.as_str(), dirty, "cut");
        let progress = Arc::new(PassProgress::default());
        let ctx = PassCtx {
            maps: self.agent.local.clone(),
            disks: self.agent.disks.clone(),
            epoch,
            mode,
            kind,
            workers: self.agent.cfg.workers,
            compression: self.agent.compression.clone(),
            out: self.out.clone(),
            routes: self.routes.clone(),
            hash_routes: self.hash_routes.clone(),
            next_batch: self.next_batch.clone(),
            progress: progress.clone(),
            abort: self.abort.clone(),
            hold: self.hold.clone(),
            dedup: !(self.full_copy && acked == 0),
            resync: if mode == PassMode::All { self.resync.take() } else { None },
            reads_done: Some(release.clone()),
        };
        let resync = ctx.resync.clone();
        if resync.is_some() {
            tracing::info!(pair = %self.agent.cfg.pair, epoch, "differential resync: comparing every range with the standby");
        }
        let reporter = {
            let (out, progress, agent, reason) =
                (self.out.clone(), progress.clone(), self.agent.clone(), reason.clone());
            let base = agent.bytes_read_total.load(Ordering::Relaxed);
            AbortOnDrop(tokio::spawn(async move {
                loop {
                    let p = &progress;
                    let shipped = p.shipped.load(Ordering::Relaxed);
                    let backlog = dirty.max(p.to_ship.load(Ordering::Relaxed)).saturating_sub(shipped);
                    let msg = AgentMsg::Progress(Progress {
                        epoch,
                        pass: Some(kind),
                        chunks_done: p.done.load(Ordering::Relaxed),
                        chunks_total: p.total.load(Ordering::Relaxed),
                        backlog_chunks: backlog,
                        backlog_bytes: backlog * agent.cfg.chunk_size.bytes() as u64,
                        bytes_read_total: base + p.bytes_read.load(Ordering::Relaxed),
                        reason: reason.clone(),
                        history_from: None,
                        tracking: None,
                    });
                    if out.send(encode(&msg).expect("encode")).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }))
        };
        let t0 = Instant::now();
        let summary = tokio::task::spawn_blocking(move || pass::run(ctx)).await.map_err(transient);
        // Thaw now if the pass ended without reading anything (or failed).
        tokio::task::spawn_blocking(move || release()).await.map_err(transient)?;
        let quiesced = outcome.lock().expect("outcome").take();
        if let Some(q) = &quiesced {
            match &q.failure {
                None => {
                    tracing::info!(pair = %self.agent.cfg.pair, epoch, frozen_ms = q.frozen_ms, budget_ms = q.budget_ms, freeze = ?q.freeze, hooks = q.hooks, "app-consistent cut")
                }
                Some(f) => {
                    tracing::warn!(pair = %self.agent.cfg.pair, epoch, "app-consistent attempt failed: {f}; the point is labelled fuzzy")
                }
            }
        }
        let app = quiesced.as_ref().is_some_and(|q| q.achieved);
        drop(reporter);
        self.agent.bytes_read_total.fetch_add(progress.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
        let summary = summary?.map_err(|e| transient(format!("epoch {epoch}: {e}")))?;
        let check =
            self.source_check(resync.clone(), progress.done.load(Ordering::Relaxed), collected.gap.as_deref()).await?;
        let source_verify = verify.map(|request_id| self.verify_report(request_id, epoch, check.clone(), &summary));
        let end = EpochEnd {
            epoch,
            lineage: self.lineage,
            cut_unix_ms: cut_ms,
            kind: if app {
                PointKind::AppConsistent
            } else if requests.is_empty() && source_verify.is_none() {
                PointKind::Scheduled
            } else {
                PointKind::Manual
            },
            // Exactly what was achieved: never more.
            consistency: if app { Consistency::AppConsistent } else { collected.consistency },
            request_ids: requests,
            chunks: summary.chunks,
            full_pass: mode == PassMode::All,
            quiesce: quiesced,
            dump_check: if source_verify.is_none() { check.and_then(Result::ok) } else { None },
            source_verify,
        };
        self.send(&AgentMsg::EpochEnd(end)).await?;
        loop {
            match self.next_ctl().await? {
                StandbyMsg::EpochAck { epoch: e, point_id } if e == epoch => {
                    let local = self.agent.local.clone();
                    let full = mode == PassMode::All;
                    tokio::task::spawn_blocking(move || {
                        let mut st = local.lock().expect("maps");
                        st.set_acked(epoch)?;
                        // Every chunk was compared and the standby holds the result.
                        if full { st.set_suspect(None) } else { Ok(()) }
                    })
                    .await
                    .map_err(transient)?
                    .map_err(transient)?;
                    if mode == PassMode::All {
                        self.dump_verified();
                    }
                    if let Some(r) = &resync {
                        tracing::info!(
                            pair = %self.agent.cfg.pair, epoch,
                            ranges_matched = r.matched.load(Ordering::Relaxed),
                            ranges_differed = r.differed.load(Ordering::Relaxed),
                            "differential resync done"
                        );
                    }
                    tracing::info!(
                        pair = %self.agent.cfg.pair, epoch, point_id, chunks = summary.chunks, data = summary.data, zero = summary.zero,
                        dedup = summary.dedup, payload_bytes = summary.payload_bytes, secs = t0.elapsed().as_secs_f64(), "epoch acknowledged"
                    );
                    break;
                }
                StandbyMsg::CutRequest { request_id, quiesce } => self.request_cut(request_id, quiesce),
                StandbyMsg::VerifySource { request_id } => self.request_verify(request_id),
                other => tracing::debug!("ignored while waiting for ack: {other:?}"),
            }
        }
        self.heartbeat().await
    }
}
