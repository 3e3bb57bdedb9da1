//! The standby's pairs: the persisted record of each pair, its runtime view (connection,
//! progress, counters) and how its status is derived from both.

use crate::timefmt::{age_seconds, now_ms, rfc3339_ms};
use drpair_types::{
    AgentInfo, Checkpoint, DiskGeometry, DiskInfo, Epoch, Lineage, PairId, PairState, PairStats, PairStatus,
    PairSummary, PassInfo, RecoveryPoint,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
}

impl PairRecord {
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
    /// Tells the connection to end (a newer one of the same pair arrived).
    pub kill: Arc<Notify>,
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
}

impl PairRuntime {
    pub fn fail(&mut self, msg: String) {
        tracing::warn!("{msg}");
        if self.failures.len() >= 20 {
            self.failures.pop_front();
        }
        self.failures.push_back(format!("{} {msg}", rfc3339_ms(now_ms())));
    }

    /// Records a progress report; restarts the ETA clock when a new pass begins.
    pub fn set_progress(&mut self, p: Progress) {
        let new_pass = p.pass.is_some() && (self.progress.pass != p.pass || self.progress.epoch != p.epoch);
        if new_pass || p.pass.is_none() {
            self.pass_started = p.pass.map(|_| (Instant::now(), p.chunks_done));
        }
        self.progress = p;
    }
}

/// One pair: its record and runtime, and the channel announcing commits.
pub struct PairHandle {
    pub record: Mutex<PairRecord>,
    pub runtime: Mutex<PairRuntime>,
    pub commits: broadcast::Sender<Committed>,
    /// Held by the connection serving the pair: at most one writes its epochs at a time.
    pub session_lock: Arc<tokio::sync::Mutex<()>>,
}

impl PairHandle {
    pub fn new(record: PairRecord, last_point: Option<RecoveryPoint>, points: u64) -> Arc<Self> {
        let runtime = PairRuntime { last_point, points, ..Default::default() };
        Arc::new(Self {
            record: Mutex::new(record),
            runtime: Mutex::new(runtime),
            commits: broadcast::channel(64).0,
            session_lock: Default::default(),
        })
    }

    fn state(rec: &PairRecord, rt: &PairRuntime) -> PairState {
        if rt.session.is_none() {
            return if rt.ever_connected || rec.committed > 0 {
                PairState::Disconnected
            } else {
                PairState::Initiating
            };
        }
        match rt.progress.pass {
            _ if rec.committed == 0 => PairState::InitialSync,
            Some(PassKind::Reconcile) => PairState::Rescanning,
            _ => PairState::Replicating,
        }
    }

    fn explanation(state: PairState, rt: &PairRuntime) -> String {
        match state {
            PairState::Initiating => "Registered; waiting for the agent to start the first copy.".into(),
            PairState::InitialSync => {
                "Copying every chunk of every disk; not ready for failover until the baseline completes.".into()
            }
            PairState::Replicating => "Shipping changes; recovery points are being committed.".into(),
            PairState::Rescanning => format!(
                "Comparing chunk hashes with the standby after a tracking gap ({}); only differing chunks are shipped.",
                rt.progress.reason.as_deref().unwrap_or("reason not given")
            ),
            PairState::Disconnected => {
                "The agent is not connected; it resumes from the recovery checkpoint when it reconnects.".into()
            }
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
        }
    }

    pub fn status(&self) -> PairStatus {
        let rec = self.record.lock().expect("record lock").clone();
        let rt = self.runtime.lock().expect("runtime lock");
        let state = Self::state(&rec, &rt);
        let agent = rt.ever_connected.then(|| AgentInfo {
            host: rec.source_host.clone(),
            address: rec.source_address.clone(),
            tracker: rec.tracker.clone(),
            version: rt.agent_version.clone(),
            connected: rt.session.is_some(),
            since: rfc3339_ms(rt.since_unix_ms),
        });
        PairStatus {
            pair_id: rec.pair_id.clone(),
            state,
            state_label: state.label().into(),
            state_explanation: Self::explanation(state, &rt),
            ready_for_failover: rec.committed > 0,
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
            stats: Self::stats(&rec, &rt),
            failure_messages: rt.failures.iter().cloned().collect(),
            stop_reason: None,
            registered_at: rfc3339_ms(rec.registered_unix_ms),
        }
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
        }
    }
}

/// All pairs of this standby, by id.
#[derive(Default)]
pub struct Registry {
    pairs: Mutex<HashMap<PairId, Arc<PairHandle>>>,
}

impl Registry {
    pub fn get(&self, id: &PairId) -> Option<Arc<PairHandle>> {
        self.pairs.lock().expect("registry lock").get(id).cloned()
    }

    pub fn insert(&self, h: Arc<PairHandle>) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::ChunkSize;

    fn record(committed: Epoch) -> PairRecord {
        PairRecord {
            pair_id: PairId::new("p").unwrap(),
            pair_no: 1,
            lineage: Lineage::nil(),
            disks: vec![DiskRecord {
                path: "/d".into(),
                geometry: DiskGeometry::new(1 << 20, ChunkSize::DEFAULT).unwrap(),
            }],
            committed,
            registered_unix_ms: now_ms(),
            source_host: "h".into(),
            source_address: "127.0.0.1".into(),
            tracker: "scan".into(),
        }
    }

    fn session() -> SessionHandle {
        SessionHandle { conn_id: 1, tx: mpsc::channel(1).0, kill: Arc::new(Notify::new()) }
    }

    #[test]
    fn state_table() {
        // (connected, ever connected, committed, pass) -> state, ready for failover
        let table = [
            (false, false, 0, None, PairState::Initiating, false),
            (true, true, 0, Some(PassKind::Initial), PairState::InitialSync, false),
            (true, true, 0, None, PairState::InitialSync, false),
            (true, true, 5, Some(PassKind::Scan), PairState::Replicating, true),
            (true, true, 5, None, PairState::Replicating, true),
            (true, true, 5, Some(PassKind::Reconcile), PairState::Rescanning, true),
            (false, true, 0, None, PairState::Disconnected, false),
            (false, false, 5, None, PairState::Disconnected, true),
        ];
        for (connected, ever, committed, pass, want, ready) in table {
            let h = PairHandle::new(record(committed), None, 0);
            {
                let mut rt = h.runtime.lock().unwrap();
                rt.session = connected.then(session);
                rt.ever_connected = ever;
                rt.progress.pass = pass;
            }
            let s = h.status();
            assert_eq!(s.state, want, "{connected} {ever} {committed} {pass:?}");
            assert_eq!(s.ready_for_failover, ready);
            assert_eq!(s.state_label, want.label());
        }
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
