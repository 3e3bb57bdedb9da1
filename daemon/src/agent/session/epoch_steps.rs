//! One epoch of a connection, step by step: take the cut requests, quiesce, cut, run the
//! pass (with a progress reporter), let the applications go, end the epoch, wait for the
//! commit's ack and only then record it.

use super::super::quiesce::{self, QuiescePlan};
use super::verify_steps::Inconclusive;
use super::{Conn, Res, transient};
use crate::agent::SessionError;
use crate::link::AbortOnDrop;
use crate::timefmt::now_ms;
use drpair_ship::pass::{
    self, PassChoice, PassCtx, PassMode, PassProgress, PassSummary, ReadsDone, Recheck, ResyncRanges, Spool,
};
use drpair_ship::{Engine, Standby};
use drpair_track::Collected;
use drpair_types::{Consistency, Epoch, PointKind, QuiesceOutcome};
use drpair_wire::{AgentMsg, EpochEnd, PassKind, Progress, SourceCheck, StandbyMsg, VerifyReport, encode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The applications quiesced for this epoch's cut, if it is app-consistent: `release` lets
/// them go (once; the pass calls it when its reads are done), `outcome` says what was
/// achieved.
struct Quiescing {
    release: ReadsDone,
    outcome: Arc<Mutex<Option<QuiesceOutcome>>>,
}

/// What the cut found.
struct Cut {
    epoch: Epoch,
    collected: Collected,
    acked: Epoch,
    dirty: u64,
}

impl Conn {
    /// One epoch: cut, pass, end, ack.
    pub(super) async fn epoch(&mut self, full: Option<String>) -> Res<()> {
        let (requests, plan) = self.take_cut_requests(full.is_some());
        // Quiesce first, then cut: everything the applications wrote before is in the epoch.
        let quiescing = Self::quiesce(plan).await?;
        let cut_ms = now_ms();
        let cut = self.cut().await;
        if cut.is_err() {
            quiescing.let_go().await;
        }
        let Cut { epoch, collected, acked, dirty } = cut?;
        let verify = self.verify_pass.take();
        let reason = full.or(collected.gap.clone());
        let choice = pass::choose(acked, collected.scan, reason.is_some(), verify.is_some(), self.full_copy);
        tracing::info!(pair = %self.agent.cfg.pair, epoch, pass = choice.kind.as_str(), dirty, "cut");
        let progress = Arc::new(PassProgress::default());
        let (reads_done, read_end) = note_reads_done(quiescing.release.clone());
        let spool = self.spool_for(epoch, choice);
        let ctx = self.pass_ctx(epoch, choice, progress.clone(), reads_done, spool.clone());
        let resync = ctx.resync.clone();
        if resync.is_some() {
            tracing::info!(pair = %self.agent.cfg.pair, epoch, "differential resync: comparing every range with the standby");
        }
        let reporter = self.report_progress(epoch, choice.kind, dirty, reason, progress.clone(), spool.clone());
        let t0 = Instant::now();
        let summary = tokio::task::spawn_blocking(move || pass::run(ctx)).await.map_err(transient);
        // A pass that read nothing never calls reads_done: its window ends with it. Chunks
        // read again by the recheck end it later.
        let read_window_ms = match read_end.load(Ordering::Acquire) {
            0 => now_ms(),
            t => t,
        }
        .max(progress.recheck_end_unix_ms.load(Ordering::Acquire))
        .saturating_sub(cut_ms);
        let rechecked = progress.rechecked.load(Ordering::Relaxed);
        if rechecked > 0 {
            tracing::info!(pair = %self.agent.cfg.pair, epoch, chunks = rechecked, "chunks written during the reads read again before shipping");
        }
        // Thaw now if the pass ended without reading anything (or failed).
        let quiesced = quiescing.finish(&self.agent.cfg.pair, epoch).await?;
        let app = quiesced.as_ref().is_some_and(|q| q.achieved);
        drop(reporter);
        self.agent.bytes_read_total.fetch_add(progress.bytes_read.load(Ordering::Relaxed), Ordering::Relaxed);
        let summary = summary?.map_err(|source| SessionError::Pass { epoch, source })?;
        tracing::info!(
            pair = %self.agent.cfg.pair,
            epoch,
            pass = choice.kind.as_str(),
            seconds = format!("{:.2}", t0.elapsed().as_secs_f64()),
            workers = self.agent.cfg.workers,
            stages = %progress.stages,
            "pass stages (busy seconds summed over the workers)"
        );
        let check =
            self.source_check(resync.clone(), progress.done.load(Ordering::Relaxed), collected.gap.as_deref()).await?;
        let source_verify = verify.map(|request_id| self.verify_report(request_id, epoch, check.clone(), &summary));
        let end = EpochEnd {
            epoch,
            lineage: self.lineage,
            cut_unix_ms: cut_ms,
            kind: point_kind(app, requests.is_empty() && source_verify.is_none()),
            // Exactly what was achieved: never more.
            consistency: if app { Consistency::AppConsistent } else { collected.consistency },
            request_ids: requests,
            chunks: summary.chunks,
            full_pass: choice.mode == PassMode::All,
            quiesce: quiesced,
            dump_check: dump_check(check, &source_verify),
            source_verify,
            read_window_ms,
        };
        self.send(&AgentMsg::EpochEnd(end)).await?;
        self.await_ack(epoch, choice.mode, resync.as_deref(), &summary, t0).await?;
        self.heartbeat().await
    }

    /// The cut requests this epoch answers and how to quiesce for it. A full pass reads the
    /// whole disk: far too long to keep applications frozen. An app-consistent cut waits for
    /// the epoch after it (its requests wait with it).
    fn take_cut_requests(&mut self, full: bool) -> (Vec<u64>, Option<QuiescePlan>) {
        let wants_quiesce = self.quiesce.is_some() || self.app_due;
        if full && wants_quiesce {
            tracing::info!(pair = %self.agent.cfg.pair, "app-consistent cut deferred until the resync pass is done");
            (vec![], None)
        } else {
            (std::mem::take(&mut self.requests), self.take_quiesce_plan())
        }
    }

    /// Quiesces as planned (nothing to do without a plan).
    async fn quiesce(plan: Option<QuiescePlan>) -> Res<Quiescing> {
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
        Ok(Quiescing { release, outcome })
    }

    /// Closes the epoch on every disk and collects the tracker's changes into it.
    async fn cut(&self) -> Res<Cut> {
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
            Ok(Cut { epoch: e, collected: c, acked: st.acked(), dirty: st.dirty_chunks().0 })
        })
        .await;
        match cut {
            Ok(Ok(c)) => Ok(c),
            Ok(Err(e)) => Err(transient(e)),
            Err(e) => Err(transient(e)),
        }
    }

    /// The pass of this epoch, over this connection.
    fn pass_ctx(
        &mut self,
        epoch: Epoch,
        choice: PassChoice,
        progress: Arc<PassProgress>,
        reads_done: ReadsDone,
        spool: Option<Arc<Spool>>,
    ) -> PassCtx {
        let standby: Arc<dyn Standby> = self.link.clone();
        PassCtx {
            maps: self.agent.local.clone(),
            disks: self.agent.disks.clone(),
            engine: Engine::IoUring,
            epoch,
            mode: choice.mode,
            kind: choice.kind,
            workers: self.agent.cfg.workers,
            compression: self.agent.compression.clone(),
            standby,
            progress,
            abort: self.abort.clone(),
            hold: self.hold.clone(),
            dedup: choice.dedup,
            resync: if choice.mode == PassMode::All { self.resync.take() } else { None },
            recheck: spool.as_ref().map(|_| {
                let tracker = self.agent.tracker.clone();
                let recheck: Recheck = Arc::new(move || tracker.lock().expect("tracker").written_since_collect());
                recheck
            }),
            reads_done: Some(reads_done),
            spool,
        }
    }

    /// The spool of an incremental pass. A first copy (of a lineage, or after a restart) and
    /// the passes that read every chunk are long by nature: they are read as they ship.
    fn spool_for(&self, epoch: Epoch, choice: PassChoice) -> Option<Arc<Spool>> {
        let cfg = self.agent.spool.as_ref()?;
        (choice.kind == PassKind::Incremental && choice.mode == PassMode::Dirty)
            .then(|| Arc::new(Spool::new(cfg.clone(), epoch)))
    }

    /// Sends the pass's progress every half second until dropped.
    fn report_progress(
        &self,
        epoch: Epoch,
        kind: PassKind,
        dirty: u64,
        reason: Option<String>,
        progress: Arc<PassProgress>,
        spool: Option<Arc<Spool>>,
    ) -> AbortOnDrop {
        let (out, agent) = (self.out.clone(), self.agent.clone());
        let base = agent.bytes_read_total.load(Ordering::Relaxed);
        AbortOnDrop(tokio::spawn(async move {
            loop {
                let p = &progress;
                let shipped = p.shipped.load(Ordering::Relaxed);
                let backlog = dirty.max(p.to_ship.load(Ordering::Relaxed)).saturating_sub(shipped);
                let used = spool.as_ref().map(|s| s.usage()).unwrap_or_default();
                let msg = AgentMsg::Progress(Progress {
                    epoch,
                    pass: Some(kind),
                    // A spooled pass is done when it is shipped, not when it is read.
                    chunks_done: if spool.is_some() { shipped } else { p.done.load(Ordering::Relaxed) },
                    chunks_total: p.total.load(Ordering::Relaxed),
                    backlog_chunks: backlog,
                    backlog_bytes: backlog * agent.cfg.chunk_size.bytes() as u64,
                    bytes_read_total: base + p.bytes_read.load(Ordering::Relaxed),
                    reason: reason.clone(),
                    history_from: None,
                    tracking: None,
                    spool_bytes: used.bytes,
                    spool_full: used.overflowed,
                    compression_level: Some(agent.compression.level()),
                });
                if out.send(encode(&msg).expect("encode")).await.is_err() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }))
    }

    /// Waits for the standby's ack of `epoch` (answering cut and verify requests meanwhile),
    /// then records it: only now do the epoch's chunks stop being dirty.
    async fn await_ack(
        &mut self,
        epoch: Epoch,
        mode: PassMode,
        resync: Option<&ResyncRanges>,
        summary: &PassSummary,
        t0: Instant,
    ) -> Res<()> {
        loop {
            match self.next_ctl().await? {
                StandbyMsg::EpochAck { epoch: e, point_id } if e == epoch => {
                    self.record_ack(epoch, mode).await?;
                    if let Some(r) = resync {
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
                    return Ok(());
                }
                StandbyMsg::CutRequest { request_id, quiesce } => self.request_cut(request_id, quiesce),
                StandbyMsg::VerifySource { request_id } => self.request_verify(request_id),
                other => tracing::debug!("ignored while waiting for ack: {other:?}"),
            }
        }
    }

    /// The standby committed `epoch`: the acknowledged checkpoint moves; after a full pass
    /// every chunk was compared and the standby holds the result.
    async fn record_ack(&mut self, epoch: Epoch, mode: PassMode) -> Res<()> {
        let local = self.agent.local.clone();
        let full = mode == PassMode::All;
        tokio::task::spawn_blocking(move || {
            let mut st = local.lock().expect("maps");
            st.set_acked(epoch)?;
            if full { st.set_suspect(None) } else { Ok(()) }
        })
        .await
        .map_err(transient)?
        .map_err(transient)?;
        if full {
            self.dump_verified();
        }
        Ok(())
    }
}

impl Quiescing {
    /// Lets the applications go now (a failed cut).
    async fn let_go(&self) {
        let r = self.release.clone();
        let _ = tokio::task::spawn_blocking(move || r()).await;
    }

    /// Lets the applications go if the pass has not, and logs what was achieved.
    async fn finish(self, pair: &drpair_types::PairId, epoch: Epoch) -> Res<Option<QuiesceOutcome>> {
        let release = self.release;
        tokio::task::spawn_blocking(move || release()).await.map_err(transient)?;
        let quiesced = self.outcome.lock().expect("outcome").take();
        if let Some(q) = &quiesced {
            match &q.failure {
                None => {
                    tracing::info!(pair = %pair, epoch, frozen_ms = q.frozen_ms, budget_ms = q.budget_ms, freeze = ?q.freeze, hooks = q.hooks, "app-consistent cut")
                }
                Some(f) => {
                    tracing::warn!(pair = %pair, epoch, "app-consistent attempt failed: {f}; the point is labelled fuzzy")
                }
            }
        }
        Ok(quiesced)
    }
}

/// The kind of point the epoch makes: app-consistent when quiescing was achieved, scheduled
/// when nobody asked for it, manual otherwise.
fn point_kind(app: bool, unrequested: bool) -> PointKind {
    if app {
        PointKind::AppConsistent
    } else if unrequested {
        PointKind::Scheduled
    } else {
        PointKind::Manual
    }
}

/// The dump check the end carries: the comparison with a loaded dump, unless the pass was an
/// online verify (which reports in its own field).
fn dump_check(check: Option<Result<SourceCheck, Inconclusive>>, verify: &Option<VerifyReport>) -> Option<SourceCheck> {
    if verify.is_none() { check.and_then(Result::ok) } else { None }
}

/// Wraps `release` (the applications' thaw) so the time the pass's last read completed is
/// noted (the first call wins): the end of the point's read window.
fn note_reads_done(release: ReadsDone) -> (ReadsDone, Arc<AtomicU64>) {
    let at = Arc::new(AtomicU64::new(0));
    let noted = at.clone();
    let done: ReadsDone = Arc::new(move || {
        let _ = noted.compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire);
        release();
    });
    (done, at)
}
