//! drpaird: the agent and the standby of drpair.
//!
//! Layers (dependencies run one way): `drpair-types` → `drpair-wire` → `drpair-track` /
//! `drpair-ship` / `drpair-store` → this crate's [`agent`] and [`standby`] → [`api`] →
//! [`server`] → the binary. Storage and tracking know nothing of HTTP or the CLI.

pub mod agent;
pub mod api;
pub mod config;
pub mod https;
pub mod link;
pub mod server;
pub mod standby;
pub mod timefmt;
pub mod token;
