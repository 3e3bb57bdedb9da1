//! The agent: tracks which chunks of its disks change and ships them to the standby.
//!
//! Invariants kept here:
//! - the acknowledged checkpoint advances only on the standby's EpochAck, which the standby
//!   sends only after the epoch is committed;
//! - every chunk whose epoch is newer than the acknowledged one is shipped again in the next
//!   epoch (so an interrupted epoch loses nothing);
//! - after a tracking gap (unclean stop, lost or damaged change map) the agent reconciles with
//!   the standby's hashes and scans every chunk: a differential resync, never a silent full
//!   copy and never a silent skip.

pub mod decommission;
mod dial;
pub mod dump;
pub mod enroll;
pub mod failback;
pub mod link;
pub mod priority;
pub mod quiesce;
pub mod session;
pub mod spool;
pub mod state;

use crate::config::{AgentConfig, CompressionSetting};
use anyhow::{Context, Result};
use drpair_ship::pass::{CompressionCtl, LevelSetting, PassError};
use drpair_track::Tracker;
use drpair_types::{DiskGeometry, ErrorClass};
use state::LocalState;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// Worth retrying (link loss, standby restart).
    #[error("{0}")]
    Transient(String),
    /// The standby refused us for a reason retrying cannot fix; the message says what to do.
    #[error("{0}")]
    Permanent(String),
    /// The pair was deleted on the standby: decommission and hold.
    #[error("{0}")]
    Deleted(String),
    /// The standby ended the connection on purpose and expects us back at once.
    #[error("{0}")]
    Reconnect(String),
    /// An epoch's pass stopped; the next connection ships the epoch again.
    #[error("epoch {epoch}: {source}")]
    Pass { epoch: drpair_types::Epoch, source: PassError },
}

impl SessionError {
    /// Transient or permanent. A failed pass is transient whatever its cause: nothing of it
    /// was acknowledged, and the next connection ships the epoch again.
    pub fn class(&self) -> ErrorClass {
        match self {
            SessionError::Permanent(_) | SessionError::Deleted(_) => ErrorClass::Permanent,
            SessionError::Transient(_) | SessionError::Reconnect(_) | SessionError::Pass { .. } => {
                ErrorClass::Transient
            }
        }
    }
}

/// The pass's compression setting for the agent's.
fn level_setting(c: CompressionSetting) -> LevelSetting {
    match c {
        CompressionSetting::Auto => LevelSetting::Auto,
        CompressionSetting::Off => LevelSetting::Off,
        CompressionSetting::Zstd(l) => LevelSetting::Zstd(l),
    }
}

/// Everything a connection of the agent needs.
pub struct Agent {
    pub cfg: AgentConfig,
    pub disks: Vec<(PathBuf, DiskGeometry)>,
    pub local: Arc<Mutex<LocalState>>,
    pub tracker: Arc<Mutex<Box<dyn Tracker>>>,
    pub compression: Arc<CompressionCtl>,
    pub bytes_read_total: AtomicU64,
    /// Why the next connection must reconcile (a tracking gap not yet repaired).
    pub gap: Mutex<Option<String>>,
    pub host: String,
    /// A suspension for a third-party dump (persisted in the state dir).
    pub dump: Mutex<Option<dump::DumpState>>,
    /// Where incremental epochs are spooled (`None`: read while sending).
    pub spool: Option<drpair_ship::pass::SpoolConfig>,
    /// How the standby is reached (TLS set up once, so reconnects resume the session).
    pub dialer: dial::Dialer,
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// Runs the agent until `shutdown` resolves or the standby refuses it for good. `ready` is
/// called once the disks and change maps are open and tracking has started, before the first
/// connection to the standby (systemd's READY=1).
pub async fn run(
    cfg: AgentConfig,
    shutdown: impl std::future::Future<Output = ()>,
    ready: impl FnOnce(),
) -> Result<()> {
    let mut disks = Vec::new();
    for p in &cfg.disks {
        let size = drpair_ship::disk_size(p).with_context(|| format!("disk {}", p.display()))?;
        let g = DiskGeometry::new(size, cfg.chunk_size).with_context(|| format!("disk {}", p.display()))?;
        disks.push((p.clone(), g));
    }
    let geoms: Vec<DiskGeometry> = disks.iter().map(|d| d.1).collect();
    let paths: Vec<String> = disks.iter().map(|d| d.0.display().to_string()).collect();
    let mut local = state::open(&cfg.state_dir, &cfg.pair, &paths, &geoms)?;
    let setup = drpair_track::TrackerSetup {
        disks: cfg.disks.clone(),
        state_dir: cfg.state_dir.clone(),
        pair: cfg.pair.to_string(),
        tracefs_buffer_kib: cfg.tracefs_buffer_kib,
    };
    let mut tracker = drpair_track::tracker_by_name(&cfg.tracker, &setup)?;
    // Tracking starts before the first copy.
    if let Some(g) = tracker.start(&mut local.maps)? {
        local.gap.get_or_insert(g);
    }
    if let Some(g) = &local.gap {
        tracing::warn!(pair = %cfg.pair, "tracking gap: {g}; a differential resync will run");
    }
    let spool = cfg.spool.as_ref().map(|s| spool::prepare(s, &cfg.disks));
    let dialer = dial::Dialer::new(&cfg)?;
    let agent = Arc::new(Agent {
        dialer,
        spool,
        compression: Arc::new(CompressionCtl::new(level_setting(cfg.compression), cfg.workers)),
        gap: Mutex::new(local.gap.take()),
        local: Arc::new(Mutex::new(local)),
        tracker: Arc::new(Mutex::new(tracker)),
        bytes_read_total: AtomicU64::new(0),
        host: hostname(),
        dump: Mutex::new(dump::DumpState::load(&cfg.state_dir)),
        disks,
        cfg,
    });
    tracing::info!(pair = %agent.cfg.pair, disks = agent.disks.len(), standby = %agent.cfg.standby, tracker = %agent.cfg.tracker, "agent starting");
    ready();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(500);
    let outcome = loop {
        let abort = Arc::new(AtomicBool::new(false));
        let started = std::time::Instant::now();
        let r = tokio::select! {
            r = session::run(agent.clone(), abort.clone()) => r,
            _ = &mut shutdown => {
                abort.store(true, Ordering::Relaxed);
                break Ok(None);
            }
        };
        abort.store(true, Ordering::Relaxed);
        match r {
            Ok(()) => break Ok(None),
            Err(SessionError::Deleted(m)) => {
                tracing::error!(pair = %agent.cfg.pair, "the standby deleted this pair: {m}");
                break Ok(Some(m));
            }
            Err(SessionError::Permanent(m)) => {
                tracing::error!(pair = %agent.cfg.pair, "standby refused this agent: {m}");
                break Err(anyhow::anyhow!("standby refused this agent: {m}"));
            }
            Err(SessionError::Reconnect(why)) => {
                tracing::info!(pair = %agent.cfg.pair, "the standby ended the connection: {why}; reconnecting now");
                backoff = Duration::from_millis(500);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                    _ = &mut shutdown => break Ok(None),
                }
            }
            Err(e @ (SessionError::Transient(_) | SessionError::Pass { .. })) => {
                // A connection that served for a while starts the backoff over.
                if started.elapsed() > Duration::from_secs(5) {
                    backoff = Duration::from_millis(500);
                }
                tracing::warn!(pair = %agent.cfg.pair, "link down: {e}; retrying in {backoff:?}");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = &mut shutdown => break Ok(None),
                }
                // At most about 5 s between tries, so a healed link is used again at once; a
                // little jitter keeps many agents from trying in step.
                let jitter = Duration::from_millis(u64::from(std::process::id() % 7) * 100);
                backoff = (backoff * 2).min(Duration::from_secs(4)) + jitter;
            }
        }
    };
    // A pass may still be winding down on its threads; wait for it to release the maps.
    let mut local = agent.local.clone();
    let tracker = agent.tracker.clone();
    let (pair, state_dir) = (agent.cfg.pair.clone(), agent.cfg.state_dir.clone());
    drop(agent);
    let mut tries = 0;
    let local = loop {
        match Arc::try_unwrap(local) {
            Ok(m) => break Some(m),
            Err(l) if tries < 300 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
                local = l;
            }
            Err(_) => break None,
        }
    };
    match local {
        Some(m) => {
            // The tracker first (it may keep recording while the agent is down and accounts
            // for that at the next start), then the maps: a clean stop of both or neither.
            match tracker.lock().expect("tracker").stop() {
                Ok(()) => {
                    m.into_inner().expect("maps").close_clean()?;
                    tracing::info!("change maps closed cleanly");
                }
                Err(e) => tracing::warn!("stopping the tracker failed ({e}); the next start reconciles"),
            }
        }
        None => tracing::warn!("change maps still in use at exit; the next start reconciles"),
    }
    if let Some(why) = outcome? {
        let removed = decommission::decommission(&pair, &state_dir)?;
        tracing::warn!(%pair, ?removed, "decommissioned: tracking stopped, its tracefs instance and change maps removed");
        let hold = format!(
            "pair {pair} was deleted on the standby; this agent is decommissioned and holds (ships nothing). Stop it, or start it with --reinit to protect this server again as a new pair. The standby said: {why}"
        );
        tracing::error!("{hold}");
        shutdown.await;
    }
    Ok(())
}
