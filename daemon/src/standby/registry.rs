//! The standby's pairs: the persisted record of each pair, its runtime view (connection,
//! progress, counters) and how its status is derived from both.

use crate::timefmt::{age_seconds, now_ms, rfc3339_ms};
use drpair_pair::{Lifecycle, PairOp, Refusal};
use drpair_store::Store;
use drpair_types::{
    AgentInfo, Checkpoint, DiskGeometry, DiskInfo, Epoch, Lineage, PairId, PairState, PairStats, PairStatus,
    PairSummary, PassInfo, RecoveryPoint, RestartInfo, StopAt,
};
use drpair_wire::{PassKind, Progress, WireDisk};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, broadcast, mpsc};

/// One disk as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRecord {
    pub path: String,
    pub geometry: DiskGeometry,
}

/// What the standby persists about a pair (in the `pairs` column family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRecord {
    pub pair_id: PairId,
    pub pair_no: u32,
    pub lineage: Lineage,
    pub disks: Vec<DiskRecord>,
    /// Newest committed epoch (0 = none yet).
    pub committed: Epoch,
    pub registered_unix_ms: u64,
    pub source_host: String,
    pub source_address: String,
    pub tracker: String,
    /// The state machine (persisted on every transition).
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Epochs of this pair's store at or below this belong to an earlier lineage: the agent
    /// cuts above it, so point ids never repeat within a pair.
    #[serde(default)]
    pub epoch_floor: Epoch,
    /// A restart whose new baseline is not complete yet.
    #[serde(default)]
    pub restart: Option<RestartRecord>,
    /// The head was rolled back (replay) and no epoch was committed since.
    #[serde(default)]
    pub rewound: Option<Rewound>,
    /// Where the pair stops by itself.
    #[serde(default)]
    pub stop_at: Option<StopAtRecord>,
    /// Oldest epoch the agent's change history reaches, as it last reported.
    #[serde(default)]
    pub agent_history_from: Option<Epoch>,
    /// Points and versions below this epoch (an old lineage kept until the new baseline)
    /// are to be deleted; set at the baseline's commit, cleared once done.
    #[serde(default)]
    pub retire_below: Option<Epoch>,
    /// The third-party dump workflow in progress, or the last one completed.
    #[serde(default)]
    pub dump: Option<super::dump::DumpRecord>,
    /// The online verify against the source requested or running, or the last one.
    #[serde(default)]
    pub source_verify: Option<drpair_types::SourceVerifyStatus>,
    /// The pair's own retention policy (None: the standby's default).
    #[serde(default)]
    pub retention: Option<drpair_retention::Policy>,
    /// The last prune that ran (not dry runs).
    #[serde(default)]
    pub last_prune: Option<drpair_types::PruneReport>,
    /// The last verification of stored chunks that finished.
    #[serde(default)]
    pub verify: Option<drpair_types::VerifyStatus>,
    /// The failover in force (while failed over or failing back): the point, the targets and
    /// how the materialisation went.
    #[serde(default)]
    pub failover: Option<drpair_types::FailoverStatus>,
    /// The last failback that ended.
    #[serde(default)]
    pub failback: Option<drpair_types::FailbackStatus>,
}

/// A restart in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    pub requested_unix_ms: u64,
    pub full_copy: bool,
    pub keep_points: bool,
    pub kept_points: u64,
}

/// A rollback of the head from epoch `from` to point `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewound {
    pub to: Epoch,
    pub from: Epoch,
}

/// A stop position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAtRecord {
    pub point: Option<Epoch>,
    pub time_unix_ms: Option<u64>,
}

impl PairRecord {
    /// A pair registered now by an agent at `source_address`: a fresh lineage, nothing
    /// committed, no operator action pending.
    pub fn register(
        pair_id: PairId,
        pair_no: u32,
        disks: Vec<DiskRecord>,
        source_host: String,
        source_address: String,
        tracker: String,
        lifecycle: Lifecycle,
    ) -> Self {
        Self {
            pair_id,
            pair_no,
            lineage: uuid::Uuid::new_v4(),
            disks,
            committed: 0,
            registered_unix_ms: now_ms(),
            source_host,
            source_address,
            tracker,
            lifecycle,
            epoch_floor: 0,
            restart: None,
            rewound: None,
            stop_at: None,
            agent_history_from: None,
            retire_below: None,
            dump: None,
            source_verify: None,
            retention: None,
            last_prune: None,
            verify: None,
            failover: None,
            failback: None,
        }
    }

    pub fn checkpoint(&self) -> Option<Checkpoint> {
        (self.committed > 0).then_some(Checkpoint { lineage: self.lineage, epoch: self.committed })
    }

    /// Compares an agent's disks with the registered ones; the error says what differs.
    pub fn geometry_mismatch(&self, disks: &[WireDisk]) -> Option<String> {
        if disks.len() != self.disks.len() {
            return Some(format!(
                "pair '{}' was registered with {} disk(s), the agent offers {}",
                self.pair_id,
                self.disks.len(),
                disks.len()
            ));
        }
        for (i, (have, got)) in self.disks.iter().zip(disks).enumerate() {
            if have.geometry.size_bytes != got.size_bytes || u64::from(have.geometry.chunk_size) != got.chunk_size {
                return Some(format!(
                    "pair '{}' disk {i} ({}): registered size {} bytes with {}-byte chunks, the agent offers {} bytes with {}-byte chunks",
                    self.pair_id,
                    got.path,
                    have.geometry.size_bytes,
                    u64::from(have.geometry.chunk_size),
                    got.size_bytes,
                    got.chunk_size
                ));
            }
        }
        None
    }
}

/// A committed point, announced to API waiters.
#[derive(Debug, Clone)]
pub struct Committed {
    pub point: RecoveryPoint,
    pub request_ids: Vec<u64>,
}

/// The live connection of a pair's agent.
#[derive(Debug, Clone)]
pub struct SessionHandle {
    pub conn_id: u64,
    /// Encoded frames to the agent.
    pub tx: mpsc::Sender<Vec<u8>>,
    /// Tells the connection to end (a newer one of the same pair arrived, or an operator
    /// action needs the pair quiet); see [`SessionHandle::end`].
    pub kill: Arc<Notify>,
    /// Why it was told to end; `true` when that is a failure worth reporting.
    pub kill_reason: Arc<Mutex<Option<(String, bool)>>>,
}

impl SessionHandle {
    pub fn new(conn_id: u64, tx: mpsc::Sender<Vec<u8>>) -> Self {
        Self { conn_id, tx, kill: Arc::new(Notify::new()), kill_reason: Default::default() }
    }

    /// Ends the connection for `reason`; `failure` says whether status shows it as one.
    pub fn end(&self, reason: &str, failure: bool) {
        *self.kill_reason.lock().expect("kill reason") = Some((reason.to_string(), failure));
        self.kill.notify_one();
    }
}

/// What the standby knows of a pair that is not persisted.
#[derive(Debug, Default)]
pub struct PairRuntime {
    pub session: Option<SessionHandle>,
    pub ever_connected: bool,
    pub agent_version: String,
    pub since_unix_ms: u64,
    pub progress: Progress,
    pub pass_started: Option<(Instant, u64)>,
    pub last_point: Option<RecoveryPoint>,
    pub points: u64,
    pub stats: Counters,
    pub failures: VecDeque<String>,
    /// (when, agent's bytes read so far): the last ~10 s, for throughput.
    pub read_samples: VecDeque<(Instant, u64)>,
    /// API calls waiting for the agent's answer to a dump request, by request id.
    pub dump_waiters: HashMap<u64, tokio::sync::oneshot::Sender<super::dump_flow::AgentAnswer>>,
    /// The dump image being loaded now: (disk, live progress).
    pub dump_load: Option<(u32, Arc<super::dump_load::LoadProgress>)>,
    /// The verification of stored chunks running now (or the last one since start).
    pub verify: Option<Arc<Mutex<drpair_types::VerifyStatus>>>,
    /// The storage report's totals, as last computed.
    pub storage: Option<drpair_types::StorageSummary>,
    /// Points drills use now: retention keeps them.
    pub drill_points: std::collections::HashSet<u64>,
    /// The standby's retention defaults (None in unit tests).
    pub retention_defaults: Option<super::retention::Defaults>,
    /// The failover materialising now.
    pub failover: Option<Arc<Mutex<drpair_types::FailoverStatus>>>,
    /// The failback running now.
    pub failback: Option<Arc<Mutex<drpair_types::FailbackStatus>>>,
    /// A failback lets the agent ship (its own state is kept as a point before anything is
    /// overwritten, and the pair replicates again at the end); else a failed-over pair holds.
    pub failback_ships: bool,
    /// The failback waiting for the agent's answer to its writes, by request.
    pub failback_waiters: HashMap<u64, tokio::sync::oneshot::Sender<Result<drpair_wire::FailbackWrites, String>>>,
}

/// Counters since the standby started.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub bytes_shipped: u64,
    pub bytes_stored: u64,
    pub chunks_received: u64,
    pub chunks_zero: u64,
    pub chunks_dedup: u64,
    pub chunks_errored: u64,
    pub bytes_on_wire: u64,
    pub data_raw: u64,
}

impl PairRuntime {
    pub fn fail(&mut self, msg: String) {
        tracing::warn!("{msg}");
        if self.failures.len() >= 20 {
            self.failures.pop_front();
        }
        self.failures.push_back(format!("{} {msg}", rfc3339_ms(now_ms())));
    }

    /// Records a progress report; restarts the ETA clock when a new pass begins. Returns the
    /// kind of pass that began, if one did.
    pub fn set_progress(&mut self, p: Progress) -> Option<PassKind> {
        let new_pass = p.pass.is_some() && (self.progress.pass != p.pass || self.progress.epoch != p.epoch);
        if new_pass || p.pass.is_none() {
            self.pass_started = p.pass.map(|_| (Instant::now(), p.chunks_done));
        }
        let now = Instant::now();
        self.read_samples.push_back((now, p.bytes_read_total));
        while self.read_samples.len() > 2 && now.duration_since(self.read_samples[0].0).as_secs_f64() > 10.0 {
            self.read_samples.pop_front();
        }
        // Pass reports carry no tracker counters: keep the last heartbeat's.
        let tracking = p.tracking.or(self.progress.tracking);
        self.progress = p;
        self.progress.tracking = tracking;
        if new_pass { self.progress.pass } else { None }
    }

    /// Bytes per second the agent read over the recent samples.
    fn throughput(&self) -> f64 {
        match (self.read_samples.front(), self.read_samples.back()) {
            (Some(a), Some(b)) if b.0 > a.0 => b.1.saturating_sub(a.1) as f64 / b.0.duration_since(a.0).as_secs_f64(),
            _ => 0.0,
        }
    }
}

/// Why an operation on a pair failed.
#[derive(Debug)]
pub enum OpError {
    /// The state does not allow it (409).
    Refused(Refusal),
    /// The store failed (500).
    Store(String),
}

impl From<Refusal> for OpError {
    fn from(r: Refusal) -> Self {
        OpError::Refused(r)
    }
}

/// One pair: its record and runtime, and the channel announcing commits.
pub struct PairHandle {
    pub record: Mutex<PairRecord>,
    pub runtime: Mutex<PairRuntime>,
    pub commits: broadcast::Sender<Committed>,
    /// Held by the connection serving the pair: at most one writes its epochs at a time.
    pub session_lock: Arc<tokio::sync::Mutex<()>>,
    /// The short history behind the panel's charts.
    pub history: Mutex<super::history::History>,
}

impl PairHandle {
    pub fn new(record: PairRecord, last_point: Option<RecoveryPoint>, points: u64) -> Arc<Self> {
        let runtime = PairRuntime { last_point, points, ..Default::default() };
        Arc::new(Self {
            record: Mutex::new(record),
            runtime: Mutex::new(runtime),
            commits: broadcast::channel(64).0,
            session_lock: Default::default(),
            history: Default::default(),
        })
    }

    /// Applies `op` to the pair's lifecycle and persists the record when it changed. An
    /// operator op the state does not allow changes nothing.
    pub fn apply(&self, store: &Store, op: PairOp) -> Result<Lifecycle, OpError> {
        let mut rec = self.record.lock().expect("record");
        let next = rec.lifecycle.apply(op)?;
        if next != rec.lifecycle {
            let mut updated = rec.clone();
            updated.lifecycle = next.clone();
            store.put_pair(&updated.pair_id, &updated).map_err(|e| OpError::Store(e.to_string()))?;
            tracing::info!(pair = %rec.pair_id, from = ?rec.lifecycle.state, to = ?next.state, ?op, "pair state");
            *rec = updated;
        }
        Ok(next)
    }

    /// Changes the record and persists it under the record's lock, so that no change made
    /// meanwhile by another task (an API call, the session) is lost. `change` works on a copy:
    /// when it fails, or changes nothing, nothing is written.
    pub fn update<T, E: From<OpError>>(
        &self,
        store: &Store,
        change: impl FnOnce(&mut PairRecord) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut live = self.record.lock().expect("record");
        let mut rec = live.clone();
        let out = change(&mut rec)?;
        if rec != *live {
            store.put_pair(&rec.pair_id, &rec).map_err(|e| OpError::Store(e.to_string()))?;
            *live = rec;
        }
        Ok(out)
    }

    /// Installs `ours`, built from the copy `orig` and already persisted by a store operation
    /// that took a while (a restart deleting points): what others changed since `orig` is
    /// rebased onto it ([`super::rebase::rebase`], `event` applied again to a lifecycle that
    /// moved) and persisted too. Returns the record installed.
    pub fn install_rebased(
        &self,
        store: &Store,
        orig: &PairRecord,
        ours: PairRecord,
        event: Option<PairOp>,
    ) -> Result<PairRecord, OpError> {
        let mut live = self.record.lock().expect("record");
        let merged = super::rebase::rebase(orig, ours.clone(), &live, event);
        if merged != ours {
            store.put_pair(&merged.pair_id, &merged).map_err(|e| OpError::Store(e.to_string()))?;
        }
        *live = merged.clone();
        Ok(merged)
    }

    /// Tells the connected agent (if any) to ship or hold, as the lifecycle says.
    pub fn send_run_mode(&self) {
        let run = self.run_mode();
        if let Some(s) = &self.runtime.lock().expect("runtime").session {
            let _ = s.tx.try_send(drpair_wire::encode(&drpair_wire::StandbyMsg::Control { run }).expect("encode"));
        }
    }

    pub fn run_mode(&self) -> drpair_wire::RunMode {
        let (l, failover) = {
            let r = self.record.lock().expect("record");
            (r.lifecycle.clone(), r.failover.as_ref().map(|f| (f.point, f.point_time.clone())))
        };
        if l.failed_over() {
            if l.state == PairState::FailingBack && self.runtime.lock().expect("runtime").failback_ships {
                return drpair_wire::RunMode::Run;
            }
            let (point, at) = failover.unwrap_or_default();
            let until = if l.state == PairState::FailingBack { "the failback ends" } else { "`drpair failback`" };
            return drpair_wire::RunMode::Hold {
                reason: format!(
                    "the pair is {} (to point {point}, cut at {at}): the standby's side is the source now and this server ships nothing until {until}",
                    l.state.label()
                ),
            };
        }
        if l.state.in_dump_workflow() {
            drpair_wire::RunMode::Suspend { reason: format!("the pair is {}", l.state.label()) }
        } else if l.holds() {
            drpair_wire::RunMode::Hold { reason: format!("the pair is {}", l.state.label()) }
        } else {
            drpair_wire::RunMode::Run
        }
    }

    fn explanation(rec: &PairRecord, rt: &PairRuntime) -> String {
        let l = &rec.lifecycle;
        match l.state {
            PairState::Initiating => {
                "Registered; waiting for `drpair start PAIR --type start` (or for the agent) to begin the first copy."
                    .into()
            }
            PairState::InitialSync if l.restarting => "Restarting: copying every chunk of every disk in a new lineage; not ready for failover until the new baseline completes.".into(),
            PairState::InitialSync => {
                "Copying every chunk of every disk; not ready for failover until the baseline completes.".into()
            }
            PairState::Replicating => "Shipping changes; recovery points are being committed.".into(),
            PairState::Rescanning if l.verifying_dump => "Shipping the chunks changed after the dump point and comparing every chunk with the loaded dump; the pair is declared replicating once that point is committed.".into(),
            PairState::Rescanning => format!(
                "Comparing chunk hashes with the standby after a tracking gap ({}); only differing chunks are shipped.",
                rt.progress.reason.as_deref().unwrap_or("reason not given")
            ),
            PairState::Disconnected => {
                "The agent is not connected; it resumes from the recovery checkpoint when it reconnects.".into()
            }
            PairState::Paused => "Paused by an operator: nothing is shipped; the agent keeps tracking changes, so nothing is lost, and the lag grows until `drpair resume`.".into(),
            PairState::Stopped => format!(
                "Stopped ({}): nothing is shipped; the agent keeps tracking changes. `drpair resume` continues from the recovery checkpoint.",
                l.stop_reason.map(|r| r.as_str()).unwrap_or("no reason recorded")
            ),
            PairState::Suspended => format!(
                "Suspended for a third-party dump: nothing is shipped and the recovery checkpoint stays where it was; the agent keeps tracking changes. Next: {}.",
                super::dump::next_step(rec)
            ),
            PairState::AwaitingResyncMarker => format!(
                "The standby purged its queue for the pair and waits for the agent's resync marker. Next: {}.",
                super::dump::next_step(rec)
            ),
            PairState::AwaitingDumpMarker => {
                "The resync marker was received and processed; waiting for the dump marker.".into()
            }
            PairState::ApplySuspended => format!(
                "The dump marker was processed: apply is suspended; resume after the replica has been reloaded. Next: {}.",
                super::dump::next_step(rec)
            ),
            PairState::FailedOver => super::failover::explanation(rec, rt),
            PairState::FailingBack => super::failover::failback::explanation(rt),
        }
    }

    fn stats(rec: &PairRecord, rt: &PairRuntime) -> PairStats {
        let p = &rt.progress;
        // Percent and ETA describe catching up (initial sync, rescan after a gap); a routine
        // pass of a replicating pair is shown in `pass`, not as lost progress.
        let running = matches!(p.pass, Some(PassKind::Initial | PassKind::Reconcile)) && p.chunks_total > 0;
        let progress_percent = if running {
            (p.chunks_done as f64 * 100.0 / p.chunks_total as f64).min(100.0)
        } else if rec.committed == 0 {
            0.0
        } else {
            100.0
        };
        let (elapsed, eta) = match (running, rt.pass_started) {
            (true, Some((t0, done0))) => {
                let el = t0.elapsed().as_secs_f64();
                let rate = p.chunks_done.saturating_sub(done0) as f64 / el.max(0.001);
                let eta =
                    (rate > 0.0).then(|| (p.chunks_total.saturating_sub(p.chunks_done) as f64 / rate).ceil() as u64);
                (Some(el as u64), eta)
            }
            _ => (None, None),
        };
        let lag = match &rt.last_point {
            Some(pt) => age_seconds(pt.time_unix_ms),
            None => age_seconds(rec.registered_unix_ms),
        };
        PairStats {
            progress_percent: (progress_percent * 10.0).round() / 10.0,
            eta_seconds: eta,
            elapsed_seconds: elapsed,
            pass: p.pass.map(|k| PassInfo {
                epoch: p.epoch,
                kind: k.as_str().into(),
                chunks_done: p.chunks_done,
                chunks_total: p.chunks_total,
                reason: p.reason.clone(),
            }),
            lag_seconds: (lag * 10.0).round() / 10.0,
            backlog_bytes: p.backlog_bytes,
            backlog_chunks: p.backlog_chunks,
            current_epoch: p.epoch.max(rec.committed),
            bytes_read: p.bytes_read_total,
            bytes_shipped: rt.stats.bytes_shipped,
            bytes_stored: rt.stats.bytes_stored,
            chunks_received: rt.stats.chunks_received,
            chunks_zero: rt.stats.chunks_zero,
            chunks_dedup: rt.stats.chunks_dedup,
            chunks_errored: rt.stats.chunks_errored,
            points: rt.points,
            chunks_total: if p.pass.is_some() { p.chunks_total } else { 0 },
            chunks_shipped: if p.pass.is_some() { p.chunks_done } else { 0 },
            chunks_queued: p.backlog_chunks,
            bytes_on_wire: rt.stats.bytes_on_wire,
            compression_ratio: if rt.stats.bytes_shipped > 0 {
                ((rt.stats.data_raw as f64 / rt.stats.bytes_shipped as f64) * 100.0).round() / 100.0
            } else {
                1.0
            },
            throughput_bytes_per_second: rt.throughput().round(),
        }
    }

    pub fn status(&self) -> PairStatus {
        let rec = self.record.lock().expect("record lock").clone();
        let rt = self.runtime.lock().expect("runtime lock");
        let state = rec.lifecycle.state;
        let agent = rt.ever_connected.then(|| AgentInfo {
            host: rec.source_host.clone(),
            address: rec.source_address.clone(),
            tracker: rec.tracker.clone(),
            version: rt.agent_version.clone(),
            connected: rt.session.is_some(),
            since: rfc3339_ms(rt.since_unix_ms),
            tracking: rt.progress.tracking,
        });
        let stats = Self::stats(&rec, &rt);
        let verify = super::verify::status_of(&rec, &rt);
        let health = drpair_types::Health::of(drpair_types::panel::HealthFacts {
            state,
            ready_for_failover: rec.lifecycle.ready_for_failover(),
            lag_seconds: stats.lag_seconds,
            damaged_points: verify.as_ref().map_or(0, |v| v.points_damaged),
        });
        PairStatus {
            pair_id: rec.pair_id.clone(),
            state,
            state_label: state.label().into(),
            state_explanation: Self::explanation(&rec, &rt),
            ready_for_failover: rec.lifecycle.ready_for_failover(),
            lineage: Some(rec.lineage),
            recovery_checkpoint: rec.checkpoint().map(|c| c.to_string()),
            checkpoint: rec.checkpoint(),
            last_point: rt.last_point.clone(),
            agent,
            disks: rec
                .disks
                .iter()
                .enumerate()
                .map(|(i, d)| DiskInfo {
                    index: i as u32,
                    path: d.path.clone(),
                    size_bytes: d.geometry.size_bytes,
                    chunk_size: d.geometry.chunk_size.into(),
                    chunk_count: d.geometry.chunk_count(),
                })
                .collect(),
            stats,
            failure_messages: rt.failures.iter().cloned().collect(),
            stop_reason: rec.lifecycle.stop_reason.map(|r| r.as_str().to_string()),
            stop_at: rec.stop_at.as_ref().map(|s| StopAt { point: s.point, time: s.time_unix_ms.map(rfc3339_ms) }),
            restart: rec.restart.as_ref().map(|r| RestartInfo {
                requested_at: rfc3339_ms(r.requested_unix_ms),
                full_copy: r.full_copy,
                keep_points_until_synced: r.keep_points,
                kept_points: r.kept_points,
            }),
            change_history_from: rec.agent_history_from,
            registered_at: rfc3339_ms(rec.registered_unix_ms),
            dump: super::dump::status(&rec, rt.dump_load.as_ref().map(|(d, p)| (*d, p.as_ref()))),
            source_verify: super::source_verify::status(&rec, &rt),
            retention: rt.retention_defaults.as_ref().map(|d| super::retention::view_of(&rec, d)),
            health,
            verify,
            storage: rt.storage.clone(),
            failover: super::failover::status(&rec, &rt),
            failback: super::failover::failback::status(&rec, &rt),
            allowed_actions: Self::allowed_actions(&rec.lifecycle, rt.session.is_some()),
        }
    }

    /// The operator actions the lifecycle allows now, asked of the state machine itself.
    fn allowed_actions(l: &drpair_pair::Lifecycle, connected: bool) -> Vec<String> {
        use drpair_pair::PairOp as Op;
        let ops = [
            ("start", Op::Start),
            ("resume", Op::Resume),
            ("pause", Op::Pause),
            ("stop", Op::Stop(drpair_types::StopReason::StoppedByUser)),
            ("restart", Op::Restart),
            ("replay", Op::Replay),
            ("failover", Op::Failover),
            ("failback", Op::Failback),
        ];
        let mut v: Vec<String> =
            ops.iter().filter(|(_, op)| l.apply(*op).is_ok()).map(|(n, _)| n.to_string()).collect();
        if !l.holds() && connected {
            v.push("create_point".into());
        }
        v
    }

    pub fn summary(&self) -> PairSummary {
        let s = self.status();
        PairSummary {
            pair_id: s.pair_id,
            state: s.state,
            state_label: s.state_label,
            ready_for_failover: s.ready_for_failover,
            source_host: s.agent.as_ref().map(|a| a.host.clone()),
            source_address: s.agent.as_ref().map(|a| a.address.clone()),
            connected: s.agent.as_ref().is_some_and(|a| a.connected),
            lag_seconds: s.stats.lag_seconds,
            progress_percent: s.stats.progress_percent,
            last_point: s.last_point,
            disks: s.disks.len() as u32,
            health: s.health,
        }
    }
}

/// All pairs of this standby, by id.
#[derive(Default)]
pub struct Registry {
    pairs: Mutex<HashMap<PairId, Arc<PairHandle>>>,
    /// The standby's retention defaults, handed to every pair inserted.
    retention: Mutex<Option<super::retention::Defaults>>,
}

impl Registry {
    pub fn get(&self, id: &PairId) -> Option<Arc<PairHandle>> {
        self.pairs.lock().expect("registry lock").get(id).cloned()
    }

    /// Sets the retention defaults given to the pairs inserted from now on.
    pub fn set_retention_defaults(&self, d: super::retention::Defaults) {
        *self.retention.lock().expect("registry lock") = Some(d);
    }

    pub fn insert(&self, h: Arc<PairHandle>) {
        if let Some(d) = self.retention.lock().expect("registry lock").clone() {
            h.runtime.lock().expect("runtime lock").retention_defaults = Some(d);
        }
        let id = h.record.lock().expect("record lock").pair_id.clone();
        self.pairs.lock().expect("registry lock").insert(id, h);
    }

    /// Sorted by pair id.
    pub fn all(&self) -> Vec<Arc<PairHandle>> {
        let map = self.pairs.lock().expect("registry lock");
        let mut v: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, h)| h).collect()
    }
}

/// A connected, started pair in `state` with one 1 MiB disk, `committed` points in (a
/// baseline exactly when `committed > 0`), for unit tests.
#[cfg(test)]
pub(crate) fn test_record(state: PairState, committed: Epoch) -> PairRecord {
    let lifecycle =
        Lifecycle { state, has_baseline: committed > 0, started: true, connected: true, ..Lifecycle::new() };
    let disks = vec![DiskRecord {
        path: "/d".into(),
        geometry: drpair_types::DiskGeometry::new(1 << 20, drpair_types::ChunkSize::DEFAULT).expect("geometry"),
    }];
    let mut r = PairRecord::register(
        PairId::new("p").expect("id"),
        1,
        disks,
        "h".into(),
        "127.0.0.1".into(),
        "scan".into(),
        lifecycle,
    );
    r.committed = committed;
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(committed: Epoch) -> PairRecord {
        let state = if committed > 0 { PairState::Replicating } else { PairState::InitialSync };
        test_record(state, committed)
    }

    fn session() -> SessionHandle {
        SessionHandle::new(1, mpsc::channel(1).0)
    }

    /// Two tasks changing different fields at once (the session recording the agent's history,
    /// an API call recording a request): every change survives, in memory and on disk. A
    /// change that fails writes nothing.
    #[test]
    fn concurrent_updates_are_all_kept_and_a_failed_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let h = PairHandle::new(record(5), None, 1);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=300 {
                    h.update(&store, |r| Ok::<_, OpError>(r.agent_history_from = Some(i))).unwrap();
                }
            });
            s.spawn(|| {
                for i in 1..=300 {
                    h.update(&store, |r| Ok::<_, OpError>(r.epoch_floor = i)).unwrap();
                }
            });
        });
        let live = h.record.lock().unwrap().clone();
        assert_eq!((live.agent_history_from, live.epoch_floor), (Some(300), 300));
        let stored: Vec<PairRecord> = store.load_pairs().unwrap();
        assert_eq!(stored, vec![live.clone()]);

        let refused = h.update(&store, |r| {
            r.epoch_floor = 1;
            r.lifecycle = r.lifecycle.apply(PairOp::Failback)?;
            Ok::<_, OpError>(())
        });
        assert!(matches!(refused, Err(OpError::Refused(_))), "{refused:?}");
        assert_eq!(*h.record.lock().unwrap(), live);
        assert_eq!(store.load_pairs::<PairRecord>().unwrap(), vec![live]);
    }

    /// A restart's record, persisted by a long store operation, is installed with what an API
    /// call changed meanwhile (here a stop position); both are persisted.
    #[test]
    fn a_record_installed_after_a_long_operation_keeps_what_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let h = PairHandle::new(record(5), None, 1);
        let orig = h.record.lock().unwrap().clone();
        let mut ours = orig.clone();
        ours.lifecycle = ours.lifecycle.apply(PairOp::Restart).unwrap();
        ours.committed = 0;
        ours.epoch_floor = 5;
        store.put_pair(&ours.pair_id, &ours).unwrap();
        let at = StopAtRecord { point: Some(9), time_unix_ms: None };
        h.update(&store, |r| Ok::<_, OpError>(r.stop_at = Some(at.clone()))).unwrap();
        let installed = h.install_rebased(&store, &orig, ours, Some(PairOp::Restart)).unwrap();
        assert_eq!((installed.committed, installed.epoch_floor, installed.stop_at.clone()), (0, 5, Some(at)));
        assert_eq!(installed.lifecycle.state, PairState::InitialSync);
        assert_eq!(*h.record.lock().unwrap(), installed);
        assert_eq!(store.load_pairs::<PairRecord>().unwrap(), vec![installed]);
    }

    #[test]
    fn status_shows_the_lifecycle() {
        use drpair_types::StopReason;
        let h = PairHandle::new(record(5), None, 1);
        let s = h.status();
        assert_eq!((s.state, s.ready_for_failover, s.stop_reason), (PairState::Replicating, true, None));
        let stopped = h.record.lock().unwrap().lifecycle.apply(PairOp::Stop(StopReason::StoppedAtPoint)).unwrap();
        h.record.lock().unwrap().lifecycle = stopped;
        let s = h.status();
        assert_eq!(s.state, PairState::Stopped);
        assert_eq!(s.state_label, "Stopped");
        assert_eq!(s.stop_reason.as_deref(), Some("STOPPED_AT_POINT"));
        assert!(s.state_explanation.contains("STOPPED_AT_POINT"), "{}", s.state_explanation);
        assert!(s.ready_for_failover, "a stopped pair keeps its points");
        let r = PairHandle::new(record(5), None, 1);
        let restarted = r.record.lock().unwrap().lifecycle.apply(PairOp::Restart).unwrap();
        r.record.lock().unwrap().lifecycle = restarted;
        let s = r.status();
        assert_eq!((s.state, s.ready_for_failover), (PairState::InitialSync, false));
        assert!(s.state_explanation.starts_with("Restarting"));
    }

    #[test]
    fn progress_and_eta() {
        let h = PairHandle::new(record(0), None, 0);
        {
            let mut rt = h.runtime.lock().unwrap();
            rt.session = Some(session());
            rt.set_progress(Progress {
                epoch: 1,
                pass: Some(PassKind::Initial),
                chunks_done: 0,
                chunks_total: 100,
                ..Default::default()
            });
            rt.pass_started = Some((Instant::now() - std::time::Duration::from_secs(10), 0));
            rt.set_progress(Progress {
                epoch: 1,
                pass: Some(PassKind::Initial),
                chunks_done: 25,
                chunks_total: 100,
                ..Default::default()
            });
        }
        let s = h.status();
        assert_eq!(s.stats.progress_percent, 25.0);
        let eta = s.stats.eta_seconds.unwrap();
        assert!((29..=31).contains(&eta), "eta {eta}");
        assert_eq!(s.stats.pass.unwrap().kind, "initial");
        // A routine scan pass of a replicating pair does not read as lost progress.
        let r = PairHandle::new(record(5), None, 1);
        {
            let mut rt = r.runtime.lock().unwrap();
            rt.session = Some(session());
            rt.set_progress(Progress {
                epoch: 6,
                pass: Some(PassKind::Scan),
                chunks_done: 3,
                chunks_total: 100,
                ..Default::default()
            });
        }
        let s = r.status();
        assert_eq!(s.stats.progress_percent, 100.0);
        assert_eq!(s.stats.pass.unwrap().chunks_done, 3);
    }

    #[test]
    fn geometry_mismatch_names_the_disk() {
        let r = record(1);
        let same = [WireDisk { path: "/d".into(), size_bytes: 1 << 20, chunk_size: 65536 }];
        assert!(r.geometry_mismatch(&same).is_none());
        let grown = [WireDisk { path: "/d".into(), size_bytes: 2 << 20, chunk_size: 65536 }];
        let m = r.geometry_mismatch(&grown).unwrap();
        assert!(m.contains("disk 0") && m.contains("1048576") && m.contains("2097152"), "{m}");
        assert!(r.geometry_mismatch(&[]).unwrap().contains("1 disk(s)"));
    }
}
