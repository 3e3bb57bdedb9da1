//! The standby: receives, verifies and stores chunks, commits recovery points, and runs the
//! features of its pairs (dump, verify, drills, failover). Control plane of its pairs; the
//! HTTP API and the listeners that serve it are wired in `crate::server` (nothing here
//! imports `crate::api`).
//!
//! The shared state is [`Standby`] (`node.rs`), opened by `boot.rs`; each pair is a
//! [`pair::PairHandle`]; an agent's connection is a [`session`].

pub mod audit;
pub mod bandwidth;
pub mod bench;
mod boot;
pub mod command;
pub mod control;
pub mod credentials;
pub mod delete;
pub mod downloads;
pub mod drill;
pub mod dump;
pub mod expiry;
pub mod export;
pub mod failover;
pub mod identity;
pub mod ingest;
pub mod instant;
pub mod maintenance;
pub mod metrics;
mod node;
pub mod notify;
pub mod pair;
pub mod paths;
pub mod protect;
pub mod rebase;
pub mod reconfigure;
pub mod resources;
pub mod retention;
pub mod session;
pub mod source_verify;
pub mod storage;
pub mod tasks;
pub mod tokens;
pub mod trend;
pub mod verify;
pub mod watch;
pub mod wide_limit;

pub use node::Standby;

/// The store's directory inside a standby's data dir.
pub fn store_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("store")
}
