//! One connection of the agent to the standby: handshake, reconcile after a gap, then epochs
//! (cut → pass → end → wait for the commit's ack) until the link drops.

use super::dump;
use super::link::{LinkDown, LinkStandby};
use super::quiesce::QuiescePlan;
use super::{Agent, SessionError};
use crate::link::{finish_writer, read_msg, spawn_writer, write_frame};
use crate::timefmt::now_ms;
use drpair_ship::pass::{self, ResyncRanges};
use drpair_types::Lineage;
use drpair_types::{Epoch, TrackingCounters};
use drpair_wire::{
    AgentMsg, Hello, PassKind, Progress, QuiesceRequest, RefuseCode, RunMode, StandbyMsg, StartMode, WireDisk, encode,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

mod dump_steps;
mod epoch_steps;
mod renew;
mod verify_steps;

use verify_steps::Inconclusive;

type Res<T> = Result<T, SessionError>;

fn transient(m: impl std::fmt::Display) -> SessionError {
    SessionError::Transient(m.to_string())
}

/// Chunks per hash request during a reconcile.
const HASH_SPAN: u64 = 16384;

struct Conn {
    agent: Arc<Agent>,
    out: mpsc::Sender<Vec<u8>>,
    ctl: mpsc::Receiver<Result<StandbyMsg, LinkDown>>,
    /// The standby as the pass sees it (queries and chunks over this connection).
    link: Arc<LinkStandby>,
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
    /// A new key whose certificate was asked for (renewal), until it arrives.
    renewing: Option<drpair_tls::AgentKey>,
}

/// Connects and serves until the link drops (Transient) or the standby refuses (Permanent).
pub async fn run(agent: Arc<Agent>, abort: Arc<AtomicBool>) -> Res<()> {
    let cfg = &agent.cfg;
    let (stream, meter) = agent.dialer.dial().await?;
    let (mut rd, mut wr) = tokio::io::split(stream);
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
        StandbyMsg::Refused { code: RefuseCode::PairDeleted, message } => return Err(SessionError::Deleted(message)),
        StandbyMsg::Refused { code, message } => return Err(SessionError::Permanent(format!("{code:?}: {message}"))),
        other => return Err(transient(format!("unexpected first answer from the standby: {other:?}"))),
    };
    let reconcile = adopt(&agent, lineage, committed, mode).map_err(transient)?;

    // Frames out: one writer task; frames in: one reader task routing hash answers straight
    // to the waiting workers and everything else to this loop.
    // Bulk frames go at the pace the standby asks for (its bandwidth limits), so few wait in
    // queues and the standby's reads are seldom held back; a few frames of depth are enough
    // to keep the link busy (the socket's own buffer covers the bandwidth-delay product).
    let pace = Arc::new(crate::link::meter::Bucket::default());
    let (lanes, writer) = spawn_writer(wr, 4, Some(pace.clone()));
    let out = lanes.bulk.clone();
    // Held (paused, or any hold the standby orders): passes wait, and so do chunk frames not
    // yet in the link's queue.
    let hold = Arc::new(AtomicBool::new(false));
    let link = Arc::new(LinkStandby::new(out.clone(), abort.clone(), hold.clone()));
    // Why the standby asked us to reconnect, if it did: whatever error the session then ends
    // with (a pass cut short by the close), the agent comes back at once.
    let asked: Arc<Mutex<Option<String>>> = Default::default();
    // Failback writes go to their own task: they arrive while the agent holds, and must not
    // wait behind (or be dropped by) a pass.
    let (failback_tx, failback_task) =
        super::failback::spawn(cfg.pair.to_string(), agent.disks.clone(), out.clone(), hold.clone());
    // Why the link went down, as the reader saw it (a stall, a refused frame, the standby's
    // own words before it closed): the session's error says it, whatever the pass saw.
    let down: Arc<Mutex<Option<String>>> = Default::default();
    let (ctl, reader) = link.spawn_reader(
        rd,
        super::link::ReaderSide {
            failback: failback_tx,
            asked: asked.clone(),
            down: down.clone(),
            meter,
            urgent: lanes.urgent,
            hold: hold.clone(),
            pace,
        },
    );
    let mut conn = Conn {
        agent: agent.clone(),
        out,
        ctl,
        link,
        abort,
        resync: None,
        lineage,
        requests: vec![],
        quiesce: None,
        app_due: false,
        hold,
        full_copy,
        suspended: false,
        local_cut_due: false,
        verify: None,
        verify_pass: None,
        renewing: None,
    };
    conn.set_run(&run);
    let r = match (conn.serve(reconcile).await, asked.lock().expect("asked").take()) {
        (Err(SessionError::Transient(_) | SessionError::Pass { .. }), Some(why)) => Err(SessionError::Reconnect(why)),
        (Err(e @ (SessionError::Transient(_) | SessionError::Pass { .. })), None) => {
            match down.lock().expect("down").take() {
                Some(why) if !e.to_string().contains(&why) => Err(SessionError::Transient(format!("{why} ({e})"))),
                _ => Err(e),
            }
        }
        (r, _) => r,
    };
    conn.abort.store(true, Ordering::Relaxed);
    drop(reader);
    drop(conn);
    // Every sender but a pass winding down is gone now: the writer sends what it holds and
    // closes. A second is plenty; a dead link must not hold up the reconnect.
    drop(failback_task);
    finish_writer(writer, Duration::from_secs(1)).await;
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
            Some(Ok(StandbyMsg::Error { message })) => {
                Err(transient(format!("the standby ended the connection: {message}")))
            }
            Some(Ok(StandbyMsg::Reconnect { reason })) => Err(SessionError::Reconnect(reason)),
            Some(Ok(StandbyMsg::Refused { code: RefuseCode::PairDeleted, message })) => {
                Err(SessionError::Deleted(message))
            }
            Some(Ok(StandbyMsg::Refused { code, message })) => {
                Err(SessionError::Permanent(format!("{code:?}: {message}")))
            }
            Some(Ok(StandbyMsg::Certificate { pem, not_after_unix, .. })) => {
                self.take_certificate(&pem, not_after_unix);
                Box::pin(self.next_msg()).await
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
        let mut renew_checked = Instant::now();
        loop {
            let now = Instant::now();
            // Whether cuts come often or not: the certificate's renewal is looked at every 5 s.
            if renew_checked.elapsed() >= Duration::from_secs(5) {
                self.maybe_renew().await?;
                renew_checked = now;
            }
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
    ) -> Res<Option<Result<drpair_wire::SourceCheck, Inconclusive>>> {
        let Some(r) = resync.filter(|r| r.against.is_some()) else { return Ok(None) };
        if let Some(g) = cut_gap {
            return Ok(Some(Err(Inconclusive::LostBeforePass(g.to_string()))));
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
                return Ok(Some(Err(Inconclusive::LostDuringPass(g.clone()))));
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
            compression_level: Some(self.agent.compression.level()),
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
                let req = self.link.next_id();
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
}
