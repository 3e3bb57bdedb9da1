//! The standby itself: everything its tasks share (the store, the pairs, the settings, the
//! drills and tasks), handed to every connection, API call and schedule.

use super::drill::live::Drills;
use super::pair::Registry;
use super::tasks;
use drpair_store::Store;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Everything the standby's tasks share.
pub struct Standby {
    pub store: Store,
    pub registry: Registry,
    pub token: Option<String>,
    /// New pairs start copying at once (else they wait for `start --type start`).
    pub auto_start: bool,
    /// Disks that only grew are taken when the agent comes back with them.
    pub adopt_growth: bool,
    /// The data filesystem's reserve and the memory floor.
    pub resources: super::resources::Resources,
    /// The standby-wide bandwidth limit (pairs' own limits are in their records).
    pub bandwidth: super::wide_limit::Bandwidth,
    pub register_lock: Mutex<()>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The default retention policy of pairs without their own.
    pub retention: drpair_retention::Policy,
    /// How often pairs are pruned (zero: never by itself).
    pub prune_interval: std::time::Duration,
    /// How often every point is verified (zero: never by itself).
    pub verify_interval: std::time::Duration,
    /// Points read over longer than this (and not app-consistent) are `window_exceeded`.
    pub max_read_window: std::time::Duration,
    /// The data dir (drills keep their scratch overlays in `drills/` below it).
    pub data_dir: std::path::PathBuf,
    /// Drills being served.
    pub drills: Drills,
    /// Instant failover sessions running now (`instant/`).
    pub instant: super::instant::Sessions,
    /// Agents protecting recovered disks, supervised now (`protect/`).
    pub protections: super::protect::live::Protections,
    /// Long operations, their progress and logs (kept in `tasks/` below the data dir).
    pub tasks: Arc<tasks::Tasks>,
    /// The link's TLS identity (`None`: started with `insecure_plaintext`).
    pub identity: Option<super::identity::LinkIdentity>,
    /// Where failover targets, failback sources and dump images may be (`paths::check`).
    pub allowed_paths: Vec<String>,
    /// Paths a drill's check command cannot reach (`drill/sandbox.rs`).
    pub check_denied: Vec<std::path::PathBuf>,
    /// API tokens and their roles.
    pub tokens: super::tokens::Tokens,
    /// Agents' enrollments and certificates.
    pub credentials: super::credentials::Credentials,
    /// How long a certificate issued to an agent is valid (renewed at two thirds).
    pub agent_cert_ttl: std::time::Duration,
    /// Who did what (API calls that change state, enrollments, failed authentications).
    pub audit: super::audit::AuditLog,
    /// Tells operators when something needs them (issue 26).
    pub notify: Arc<super::notify::Notifier>,
    /// One-time download links of disk images (in memory only).
    pub downloads: super::downloads::Downloads,
    /// The port the link is bound to (set once it listens).
    pub link_port: std::sync::atomic::AtomicU16,
    /// Becomes true when the standby is asked to stop: long-lived answers (the panel's push
    /// streams) end, so the API's graceful shutdown does not wait on them.
    pub stopping: tokio::sync::watch::Sender<bool>,
    pub(super) next_conn: AtomicU64,
    pub(super) next_request: AtomicU64,
}

impl Standby {
    pub fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_request(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }
}
