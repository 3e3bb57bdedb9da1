//! Failover and failback: `POST|GET /api/v1/pairs/{pair}/failover`,
//! `POST|GET /api/v1/pairs/{pair}/failback`. Both answer 202 once the job has started (its
//! progress is in the GET and in the pair's status).

use super::control::body;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::failover::{self, FailoverError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drpair_types::{ErrorCode, FailbackRequest, FailbackStatus, FailoverRequest, FailoverStatus, InstantStopRequest};

fn failure(pair: &str, e: FailoverError) -> ApiFailure {
    match e {
        FailoverError::Param(p, m) => ApiFailure::param(p, m),
        FailoverError::PointNotFound(m) => ApiFailure::new(ErrorCode::PointNotFound, format!("pair '{pair}': {m}")),
        FailoverError::State(m) => ApiFailure::new(ErrorCode::InvalidPairState, format!("pair '{pair}': {m}")),
        FailoverError::Internal(m) => ApiFailure::internal(m),
    }
}

pub async fn start_failover(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<FailoverStatus>)> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: FailoverRequest = body(&raw)?;
    let s = failover::start(&sb, &h, req).await.map_err(|e| failure(id.as_str(), e))?;
    Ok((StatusCode::ACCEPTED, Json(s)))
}

/// `POST /api/v1/pairs/{pair}/failover/instant/stop`: ends the pair's instant session once the
/// targets carry the machine (409 while it copies; 404 when none runs).
pub async fn stop_instant(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<FailoverStatus>> {
    let (id, _h) = find_pair(&sb, &pair)?;
    let req: InstantStopRequest = if raw.is_empty() { InstantStopRequest::default() } else { body(&raw)? };
    let by = req.operator.unwrap_or_else(|| "api".into());
    let sb2 = sb.clone();
    let pair_id = id.to_string();
    let r = tokio::task::spawn_blocking(move || crate::standby::instant::stop(&sb2, &pair_id, &by))
        .await
        .map_err(|e| ApiFailure::internal(e.to_string()))?;
    match r {
        Ok(s) => Ok(Json(s)),
        Err(crate::standby::instant::StopError::NotRunning(m)) => Err(ApiFailure::new(ErrorCode::NotFound, m)),
        Err(crate::standby::instant::StopError::Copying(m)) => Err(ApiFailure::new(ErrorCode::InvalidPairState, m)),
    }
}

pub async fn get_failover(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<FailoverStatus>> {
    let (id, h) = find_pair(&sb, &pair)?;
    h.status()
        .failover
        .map(Json)
        .ok_or_else(|| ApiFailure::new(ErrorCode::NotFound, format!("pair '{id}' is not failed over")))
}

pub async fn start_failback(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<FailbackStatus>)> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: FailbackRequest = body(&raw)?;
    let s = failover::failback::start(&sb, &h, req).await.map_err(|e| failure(id.as_str(), e))?;
    Ok((StatusCode::ACCEPTED, Json(s)))
}

pub async fn get_failback(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<FailbackStatus>> {
    let (id, h) = find_pair(&sb, &pair)?;
    h.status()
        .failback
        .map(Json)
        .ok_or_else(|| ApiFailure::new(ErrorCode::NotFound, format!("pair '{id}' has not failed back")))
}
