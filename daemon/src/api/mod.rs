//! The standby's HTTP API (`/api/v1`), and `/metrics`. Errors carry a stable code and map to
//! an HTTP status in one place ([`ApiFailure`]).

pub mod audit;
pub mod auth;
pub mod bench;
pub mod changes;
pub mod control;
pub mod csrf;
pub mod downloads;
pub mod drills;
pub mod dump;
pub mod events;
pub mod failover;
#[cfg(test)]
mod hostile_tests;
pub mod image;
pub mod maintenance;
pub mod notify;
pub mod pairs;
pub mod panel;
pub mod points;
pub mod protect;
pub mod roles;
pub mod security;
pub mod settings;
pub mod tasks;
pub mod tokens;
pub mod trend;
pub mod verify_source;

use crate::standby::Standby;
use crate::standby::command::CommandError;
use crate::standby::pair::PairHandle;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use drpair_types::{ApiError, ErrorCode, PairId};
use std::sync::Arc;

/// An API error: code, message, parameter.
#[derive(Debug)]
pub struct ApiFailure(pub ApiError);

impl ApiFailure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ApiError { code, message: message.into(), parameter: None })
    }

    pub fn param(parameter: &str, message: impl Into<String>) -> Self {
        Self(ApiError { code: ErrorCode::InvalidParameter, message: message.into(), parameter: Some(parameter.into()) })
    }

    pub fn internal(e: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::Internal, e.to_string())
    }
}

/// A command's refusal or failure, with its code and (for a parameter) the parameter's name.
impl From<CommandError> for ApiFailure {
    fn from(e: CommandError) -> Self {
        Self(ApiError { code: e.code(), message: e.to_string(), parameter: e.parameter().map(Into::into) })
    }
}

impl IntoResponse for ApiFailure {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.0.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let words = audit::RefusalWords(format!("{:?}: {}", self.0.code, self.0.message));
        let mut resp = (status, Json(self.0)).into_response();
        resp.extensions_mut().insert(words);
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiFailure>;

/// Shared state of every handler.
pub type AppState = Arc<Standby>;

/// Parses a pair id from the path and finds the pair: 400 for a malformed id, 404 if unknown.
pub fn find_pair(sb: &Standby, raw: &str) -> ApiResult<(PairId, Arc<PairHandle>)> {
    let id = PairId::new(raw).map_err(|e| ApiFailure::param("pair", e.to_string()))?;
    let h = sb
        .registry
        .get(&id)
        .ok_or_else(|| ApiFailure::new(ErrorCode::PairNotFound, format!("pair '{id}' is not known to this standby")))?;
    Ok((id, h))
}

async fn metrics(axum::extract::State(sb): axum::extract::State<AppState>) -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], crate::standby::metrics::render(&sb))
}

async fn not_found() -> ApiFailure {
    ApiFailure::new(ErrorCode::NotFound, "no such API route; see /api/v1/pairs")
}

pub fn router(sb: AppState) -> Router {
    let api = Router::new()
        .route("/api/v1", get(pairs::root))
        .route("/api/v1/pairs", get(pairs::list))
        .route("/api/v1/pairs/{pair}", get(pairs::status).delete(pairs::delete))
        .route("/api/v1/pairs/{pair}/restart", post(control::restart))
        .route("/api/v1/pairs/{pair}/start", post(control::start))
        .route("/api/v1/pairs/{pair}/pause", post(control::pause))
        .route("/api/v1/pairs/{pair}/resume", post(control::resume))
        .route("/api/v1/pairs/{pair}/stop", post(control::stop))
        .route("/api/v1/pairs/{pair}/adopt-growth", post(control::adopt_growth))
        .route("/api/v1/pairs/{pair}/settings", get(settings::get_pair).put(settings::put_pair))
        .route("/api/v1/standby/settings", get(settings::get_standby).put(settings::put_standby))
        .route("/api/v1/pairs/{pair}/suspend", post(dump::suspend))
        .route("/api/v1/pairs/{pair}/skip-to-resync-marker", post(dump::skip_to_resync_marker))
        .route("/api/v1/pairs/{pair}/markers/dump", post(dump::mark))
        .route("/api/v1/pairs/{pair}/dump", get(dump::get))
        .route("/api/v1/pairs/{pair}/dump/load", post(dump::load))
        .route("/api/v1/pairs/{pair}/resume-apply", post(dump::resume_apply))
        .route("/api/v1/pairs/{pair}/verify-source", get(verify_source::get).post(verify_source::start))
        .route("/api/v1/pairs/{pair}/history", get(trend::get))
        .route("/api/v1/pairs/{pair}/failover", get(failover::get_failover).post(failover::start_failover))
        .route("/api/v1/pairs/{pair}/failover/instant/stop", post(failover::stop_instant))
        .route("/api/v1/pairs/{pair}/failback", get(failover::get_failback).post(failover::start_failback))
        .route("/api/v1/pairs/{pair}/protect-recovered", post(protect::protect))
        .route("/api/v1/pairs/{pair}/unprotect-recovered", post(protect::unprotect))
        .route("/api/v1/pairs/{pair}/drills", get(drills::of_pair).post(drills::start))
        .route("/api/v1/pairs/{pair}/enroll", post(security::enroll))
        .route("/api/v1/pairs/{pair}/revoke", post(security::revoke))
        .route("/api/v1/audit", get(security::audit))
        .route("/api/v1/tokens", get(tokens::list).post(tokens::create))
        .route("/api/v1/tokens/{name}", axum::routing::delete(tokens::revoke))
        .route("/api/v1/tasks", get(tasks::list))
        .route("/api/v1/tasks/{id}", get(tasks::get_one))
        .route("/api/v1/tasks/{id}/log", get(tasks::log))
        .route("/api/v1/drills", get(drills::running))
        .route("/api/v1/drills/{id}", get(drills::get_one))
        .route("/api/v1/drills/{id}/stop", post(drills::stop))
        .route("/api/v1/drills/{id}/console", get(drills::console))
        .route("/api/v1/drills/{id}/screenshot", get(drills::screenshot))
        .route("/api/v1/pairs/{pair}/points", get(points::list).post(points::create))
        .route("/api/v1/pairs/{pair}/points/{point}", get(points::get_one))
        .route("/api/v1/pairs/{pair}/points/{point}/pin", post(maintenance::pin))
        .route("/api/v1/pairs/{pair}/points/{point}/unpin", post(maintenance::unpin))
        .route("/api/v1/pairs/{pair}/retention", get(maintenance::get_retention).put(maintenance::put_retention))
        .route("/api/v1/pairs/{pair}/prune", post(maintenance::prune))
        .route("/api/v1/pairs/{pair}/verify", get(maintenance::get_verify).post(maintenance::start_verify))
        .route("/api/v1/pairs/{pair}/storage", get(maintenance::storage_report))
        .route("/api/v1/pairs/{pair}/points/{point}/changes", get(changes::list))
        .route("/api/v1/pairs/{pair}/points/{point}/disks/{disk}/image", get(image::export))
        .route("/api/v1/pairs/{pair}/points/{point}/disks/{disk}/download", post(downloads::create))
        .route("/api/v1/downloads/{ticket}", get(downloads::fetch))
        .route("/api/v1/pairs/{pair}/retention/preview", post(maintenance::preview_retention))
        .route("/api/v1/events", get(events::stream))
        .route("/api/v1/notify", get(notify::status))
        .route("/api/v1/notify/test", post(notify::test))
        .route("/api/v1/bench/sink", post(bench::sink))
        .route("/api/v1/bench/store", post(bench::store))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(sb.clone(), auth::require_token))
        .layer(axum::middleware::from_fn_with_state(sb.clone(), audit::record_calls))
        // Outermost: a cross-site request is refused before anything else looks at it.
        .layer(axum::middleware::from_fn(csrf::refuse_cross_site));
    Router::new().route("/healthz", get(|| async { "ok\n" })).merge(panel::router()).merge(api).with_state(sb)
}
