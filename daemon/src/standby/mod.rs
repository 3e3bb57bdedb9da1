//! The standby: receives, verifies and stores chunks, commits recovery points, and serves the
//! HTTP API and metrics. Control plane of its pairs.

pub mod control;
pub mod drill;
pub mod dump;
pub mod dump_flow;
pub mod dump_load;
pub mod export;
pub mod failover;
pub mod history;
pub mod ingest;
pub mod maintenance;
pub mod metrics;
pub mod rebase;
#[cfg(test)]
mod record_fixture;
pub mod registry;
pub mod retention;
pub mod session;
pub mod source_verify;
pub mod storage;
pub mod tasks;
pub mod verify;

use crate::config::StandbyConfig;
use anyhow::{Context, Result};
use drpair_store::Store;
use registry::{PairHandle, PairRecord, Registry};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;

/// The store's directory inside a standby's data dir.
pub fn store_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("store")
}

/// Everything the standby's tasks share.
pub struct Standby {
    pub store: Store,
    pub registry: Registry,
    pub token: Option<String>,
    /// New pairs start copying at once (else they wait for `start --type start`).
    pub auto_start: bool,
    pub register_lock: Mutex<()>,
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
    /// The default retention policy of pairs without their own.
    pub retention: drpair_retention::Policy,
    /// How often pairs are pruned (zero: never by itself).
    pub prune_interval: std::time::Duration,
    /// How often every point is verified (zero: never by itself).
    pub verify_interval: std::time::Duration,
    /// The data dir (drills keep their scratch overlays in `drills/` below it).
    pub data_dir: std::path::PathBuf,
    /// Drills being served.
    pub drills: drill::Drills,
    /// Long operations, their progress and logs (kept in `tasks/` below the data dir).
    pub tasks: Arc<tasks::Tasks>,
    next_conn: AtomicU64,
    next_request: AtomicU64,
}

impl Standby {
    /// Opens the store and loads every pair; an epoch left half-received by a crash is
    /// discarded here, before anything can read or write it.
    pub fn open(cfg: &StandbyConfig) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
        let store = Store::open(&store_dir(&cfg.data_dir)).context("opening the standby store")?;
        // Overlays of drills that ran when the standby stopped: throw-away by definition.
        let _ = std::fs::remove_dir_all(cfg.data_dir.join("drills"));
        let registry = Registry::default();
        registry.set_retention_defaults(retention::Defaults {
            policy: cfg.retention.clone(),
            prune_interval: cfg.prune_interval,
        });
        for mut rec in store.load_pairs::<PairRecord>().context("loading pairs")? {
            let n = store.discard_pending(rec.pair_no)?;
            if n > 0 {
                tracing::info!(pair = %rec.pair_id, "discarded {n} chunk versions of an epoch that was not committed before the standby stopped");
            }
            // A failover or failback cut short: recorded as failed (the pair stays failed over).
            let failover_cut_short = failover::after_restart(&mut rec);
            let failback_cut_short = failover::failback::after_restart(&mut rec);
            // No agent is connected yet; held states (paused, stopped) stay as they were.
            let after = rec.lifecycle.apply(drpair_pair::PairOp::StandbyStarted).expect("events never fail");
            let load_cut_short = dump_flow::after_restart(&mut rec);
            let verify_cut_short = source_verify::after_restart(&mut rec);
            let drills_cut_short = drill::after_restart(&store, rec.pair_no)?;
            if drills_cut_short > 0 {
                tracing::info!(pair = %rec.pair_id, "{drills_cut_short} drill(s) ended by the standby's stop recorded as failed");
            }
            if after != rec.lifecycle || load_cut_short || verify_cut_short || failover_cut_short || failback_cut_short
            {
                rec.lifecycle = after;
                store.put_pair(&rec.pair_id, &rec)?;
            }
            let points = store.list_points(rec.pair_no)?;
            let last = points.last().cloned();
            tracing::info!(pair = %rec.pair_id, points = points.len(), committed = rec.committed, "pair loaded");
            registry.insert(PairHandle::new(rec, last, points.len() as u64));
        }
        Ok(Arc::new(Self {
            store,
            registry,
            token: cfg.token.clone(),
            auto_start: cfg.auto_start,
            register_lock: Mutex::new(()),
            metrics: metrics::install(),
            retention: cfg.retention.clone(),
            prune_interval: cfg.prune_interval,
            verify_interval: cfg.verify_interval,
            data_dir: cfg.data_dir.clone(),
            drills: drill::Drills::default(),
            tasks: tasks::Tasks::open(&cfg.data_dir.join("tasks")).context("opening the task list")?,
            next_conn: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
        }))
    }

    pub fn next_conn(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::Relaxed)
    }

    pub fn next_request(&self) -> u64 {
        self.next_request.fetch_add(1, Ordering::Relaxed)
    }
}

/// Runs the standby until `shutdown` resolves. `ready` is called once both listeners serve.
pub async fn run(
    cfg: StandbyConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ready: impl FnOnce(),
) -> Result<()> {
    let sb = Standby::open(&cfg)?;
    for h in sb.registry.all() {
        control::retire_old_lineage(&sb, &h).await;
    }
    let link =
        TcpListener::bind(cfg.listen).await.with_context(|| format!("cannot listen on {} (link)", cfg.listen))?;
    let api = TcpListener::bind(cfg.api_listen)
        .await
        .with_context(|| format!("cannot listen on {} (api)", cfg.api_listen))?;
    let (link_addr, api_addr) = (link.local_addr()?, api.local_addr()?);
    // Tests and scripts read the bound addresses (port 0 picks a free one).
    std::fs::write(cfg.data_dir.join("link.addr"), link_addr.to_string())?;
    std::fs::write(cfg.data_dir.join("api.addr"), api_addr.to_string())?;
    tracing::info!(%link_addr, %api_addr, data_dir = %cfg.data_dir.display(), "standby serving");
    let sb2 = sb.clone();
    let accept = tokio::spawn(async move {
        loop {
            match link.accept().await {
                Ok((stream, peer)) => {
                    tokio::spawn(session::serve(sb2.clone(), stream, peer));
                }
                Err(e) => {
                    tracing::warn!("link accept: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
    });
    let schedule = maintenance::spawn(sb.clone());
    let sampler = history::spawn(sb.clone());
    ready();
    let app = crate::api::router(sb.clone());
    axum::serve(api, app).with_graceful_shutdown(shutdown).await.context("api server")?;
    accept.abort();
    schedule.abort();
    sampler.abort();
    sb.store.flush().ok();
    tracing::info!("standby stopped");
    Ok(())
}
