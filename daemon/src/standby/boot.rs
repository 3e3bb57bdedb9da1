//! Starting a standby: the store opened, every pair loaded, and what a stop cut short
//! recorded as such before anything can read or write it.

use super::node::Standby;
use super::pair::{PairHandle, PairRecord, Registry, RetentionDefaults};
use super::{drill, dump, failover, metrics, source_verify, store_dir, tasks};
use crate::config::StandbyConfig;
use anyhow::{Context, Result};
use drpair_store::Store;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

impl Standby {
    /// Opens the store and loads every pair; an epoch left half-received by a crash is
    /// discarded here, before anything can read or write it.
    pub fn open(cfg: &StandbyConfig) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&cfg.data_dir)
            .with_context(|| format!("cannot create data dir {}", cfg.data_dir.display()))?;
        let store =
            Store::open_with(&store_dir(&cfg.data_dir), &cfg.chunk_backend).context("opening the standby store")?;
        tracing::info!(chunks = %store.chunk_backend_name(), "chunk store");
        // Overlays of drills that ran when the standby stopped: throw-away by definition.
        // Their guests die with the standby (PR_SET_PDEATHSIG); any left are killed by pidfile.
        let guests = drill::guest::qemu::kill_leftovers(&cfg.data_dir.join("drills"));
        if guests > 0 {
            tracing::warn!("{guests} guest(s) of drills that ran when the standby stopped were killed");
        }
        let _ = std::fs::remove_dir_all(cfg.data_dir.join("drills"));
        // Guests of instant failovers died with the standby too; their sessions resume below.
        let guests = drill::guest::qemu::kill_leftovers(&cfg.data_dir.join("instant"));
        if guests > 0 {
            tracing::warn!("{guests} guest(s) of instant failovers left by the standby's stop were killed");
        }
        let identity = super::identity::LinkIdentity::load(&cfg.data_dir, &cfg.link_security)?;
        let registry = Registry::default();
        registry.set_retention_defaults(RetentionDefaults {
            policy: cfg.retention.clone(),
            prune_interval: cfg.prune_interval,
        });
        registry.set_rpo_default(cfg.rpo_default);
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
            let load_cut_short = dump::after_restart(&mut rec);
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
        let resources = {
            let s = store.clone();
            let unflushed = Box::new(move || s.approximate_sizes().map_or(0, |z| z.memtable_bytes));
            super::resources::Resources::new(cfg.data_dir.clone(), cfg.disk_reserve, cfg.memory_reserve, unflushed)
        };
        let notify = super::notify::Notifier::open(cfg.notify.clone(), store.clone())
            .context("opening the notification queue")?;
        let sb = Arc::new(Self {
            notify,
            store,
            registry,
            token: cfg.token.clone(),
            auto_start: cfg.auto_start,
            adopt_growth: cfg.adopt_growth,
            resources,
            bandwidth: super::wide_limit::Bandwidth::new(&cfg.data_dir, cfg.bandwidth.clone()),
            register_lock: Mutex::new(()),
            metrics: metrics::install(),
            retention: cfg.retention.clone(),
            prune_interval: cfg.prune_interval,
            verify_interval: cfg.verify_interval,
            max_read_window: cfg.max_read_window,
            data_dir: cfg.data_dir.clone(),
            drills: drill::Drills::default(),
            instant: Default::default(),
            protections: Default::default(),
            tasks: tasks::Tasks::open(&cfg.data_dir.join("tasks")).context("opening the task list")?,
            identity,
            credentials: super::credentials::Credentials::open(&cfg.data_dir)?,
            tokens: super::tokens::Tokens::open(&cfg.data_dir, cfg.token.clone())?,
            allowed_paths: cfg.allowed_paths.clone(),
            check_denied: check_denied(cfg),
            agent_cert_ttl: cfg.agent_cert_ttl,
            audit: super::audit::AuditLog::open(&cfg.data_dir),
            downloads: Default::default(),
            stopping: tokio::sync::watch::Sender::new(false),
            link_port: std::sync::atomic::AtomicU16::new(cfg.listen.port()),
            next_conn: AtomicU64::new(1),
            next_request: AtomicU64::new(1),
        });
        let resumed = super::instant::resume::all(&sb);
        if resumed > 0 {
            tracing::warn!("{resumed} instant failover(s) resumed");
        }
        Ok(sb)
    }
}

/// What a drill's check must not reach: the data dir (store, keys, tokens), the token file,
/// the operator's TLS files and `/etc/drpair` (configs, other tokens).
fn check_denied(cfg: &crate::config::StandbyConfig) -> Vec<std::path::PathBuf> {
    let mut v = vec![cfg.data_dir.clone(), "/etc/drpair".into()];
    v.extend(cfg.token_file.clone());
    if let crate::config::StandbyLinkSecurity::Tls { cert, key, client_ca } = &cfg.link_security {
        v.extend([cert, key, client_ca].into_iter().flatten().cloned());
    }
    v
}
