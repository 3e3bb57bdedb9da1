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
use drpair_types::{ErrorCode, FailbackRequest, FailbackStatus, FailoverRequest, FailoverStatus};

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
