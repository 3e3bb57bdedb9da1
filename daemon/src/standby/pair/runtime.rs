//! What the standby knows of a pair that is not persisted: the agent's connection, its
//! progress, the counters since the standby started, and the features' live state.

use super::results::{FailbackRecord, FailoverRecord, VerifyRecord};
use crate::standby::dump::{AgentAnswer, LoadProgress};
use crate::standby::failover::failback_error::FailbackError;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::RecoveryPoint;
use drpair_wire::{PassKind, Progress};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::sync::{Notify, mpsc};

/// The standby's retention settings, handed to every pair (its status shows them).
#[derive(Debug, Clone)]
pub struct RetentionDefaults {
    pub policy: drpair_retention::Policy,
    pub prune_interval: std::time::Duration,
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
    /// The agent's last connection was refused for a reason only an operator can remove
    /// (lineage, checkpoint, credentials, disks during a failover); cleared when one is admitted.
    pub fatal: Option<String>,
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
    pub dump_waiters: HashMap<u64, tokio::sync::oneshot::Sender<AgentAnswer>>,
    /// The dump image being loaded now: (disk, live progress).
    pub dump_load: Option<(u32, Arc<LoadProgress>)>,
    /// The verification of stored chunks running now (or the last one since start).
    pub verify: Option<Arc<Mutex<VerifyRecord>>>,
    /// The storage report's totals, as last computed.
    pub storage: Option<drpair_types::StorageSummary>,
    /// Points drills use now: retention keeps them.
    pub drill_points: std::collections::HashSet<u64>,
    /// The standby's retention defaults (None in unit tests).
    pub retention_defaults: Option<RetentionDefaults>,
    /// The failover materialising now.
    pub failover: Option<Arc<Mutex<FailoverRecord>>>,
    /// The failback running now.
    pub failback: Option<Arc<Mutex<FailbackRecord>>>,
    /// A failback lets the agent ship (its own state is kept as a point before anything is
    /// overwritten, and the pair replicates again at the end); else a failed-over pair holds.
    pub failback_ships: bool,
    /// The failback waiting for the agent's answer to its writes, by request.
    pub failback_waiters:
        HashMap<u64, tokio::sync::oneshot::Sender<Result<drpair_wire::FailbackWrites, FailbackError>>>,
    /// The link: meter, bandwidth limit, heartbeat, counters.
    pub link: super::link::LinkRuntime,
    /// The RPO level last seen and since when (unix ms): `rpo.rs`.
    pub rpo_seen: Option<(drpair_types::RpoLevel, u64)>,
    /// The standby's default RPO target (its config), for a pair without its own.
    pub rpo_default: Option<drpair_types::rpo::RpoDefault>,
}

/// Counters since the standby started.
#[derive(Debug, Default, Clone)]
pub struct Counters {
    pub bytes_shipped: u64,
    pub bytes_stored: u64,
    pub chunks_received: u64,
    pub chunks_zero: u64,
    pub chunks_dedup: u64,
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
        if p.spool_full && !(self.progress.spool_full && self.progress.epoch == p.epoch) {
            self.fail(format!(
                "spool full: epoch {} did not fit the agent's spool; its last chunks are read as the link takes them, so its point's read window grows, and points are further apart until the link catches up",
                p.epoch
            ));
        }
        // Pass reports carry no tracker counters: keep the last heartbeat's.
        let tracking = p.tracking.or(self.progress.tracking);
        let level = p.compression_level.or(self.progress.compression_level);
        self.progress = p;
        self.progress.tracking = tracking;
        self.progress.compression_level = level;
        if new_pass { self.progress.pass } else { None }
    }

    /// Bytes per second the agent read over the recent samples; zero once the agent has
    /// reported nothing for five seconds (a stalled link does not freeze the last rate).
    pub(super) fn throughput(&self) -> f64 {
        match (self.read_samples.front(), self.read_samples.back()) {
            (_, Some(b)) if b.0.elapsed() > std::time::Duration::from_secs(5) => 0.0,
            (Some(a), Some(b)) if b.0 > a.0 => b.1.saturating_sub(a.1) as f64 / b.0.duration_since(a.0).as_secs_f64(),
            _ => 0.0,
        }
    }
}
