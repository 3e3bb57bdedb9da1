//! Recovery points: list, get one, cut one now.

use super::{ApiFailure, ApiResult, AppState, find_pair};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drpair_types::{CreatePointRequest, CreatePointResponse, ErrorCode, RecoveryPoint};
use drpair_wire::{StandbyMsg, encode};
use std::time::Duration;

pub async fn list(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<Vec<RecoveryPoint>>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let pair_no = h.record.lock().expect("record").pair_no;
    let store = sb.store.clone();
    let points = tokio::task::spawn_blocking(move || store.list_points(pair_no))
        .await
        .map_err(ApiFailure::internal)?
        .map_err(ApiFailure::internal)?;
    Ok(Json(points))
}

/// Resolves a point id from a path (`latest` or a number).
pub async fn resolve_point(sb: &AppState, pair: &str, point: &str) -> ApiResult<(u32, RecoveryPoint)> {
    let (id, h) = find_pair(sb, pair)?;
    let pair_no = h.record.lock().expect("record").pair_no;
    let store = sb.store.clone();
    let found = if point == "latest" {
        tokio::task::spawn_blocking(move || store.latest_point(pair_no)).await
    } else {
        let n: u64 = point.parse().map_err(|_| {
            ApiFailure::param("point", format!("point '{point}' is not a point id (a number) or 'latest'"))
        })?;
        tokio::task::spawn_blocking(move || store.get_point(pair_no, n)).await
    };
    let found = found.map_err(ApiFailure::internal)?.map_err(ApiFailure::internal)?;
    let p = found.ok_or_else(|| {
        ApiFailure::new(ErrorCode::PointNotFound, format!("pair '{id}' has no recovery point '{point}'"))
    })?;
    Ok((pair_no, p))
}

pub async fn get_one(
    State(sb): State<AppState>,
    Path((pair, point)): Path<(String, String)>,
) -> ApiResult<Json<RecoveryPoint>> {
    Ok(Json(resolve_point(&sb, &pair, &point).await?.1))
}

/// `POST /api/v1/pairs/{pair}/points`: asks the agent to cut now. With `wait`, answers once
/// the cut is a committed point (200), else at once (202).
pub async fn create(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    body: Result<Json<CreatePointRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<CreatePointResponse>)> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return Err(ApiFailure::param("body", format!("request body: {}", e.body_text()))),
    };
    let timeout = req.timeout_seconds.unwrap_or(600);
    if timeout == 0 || timeout > 86_400 {
        return Err(ApiFailure::param("timeout_seconds", "timeout_seconds must be between 1 and 86400"));
    }
    let l = h.record.lock().expect("record").lifecycle.clone();
    if l.holds() {
        return Err(ApiFailure::new(
            ErrorCode::InvalidPairState,
            format!("pair '{id}' is {}: nothing is shipped, so no point can be cut; resume it first", l.state.label()),
        ));
    }
    let session = h.runtime.lock().expect("runtime").session.clone();
    let Some(session) = session else {
        return Err(ApiFailure::new(
            ErrorCode::InvalidPairState,
            format!("pair '{id}': the agent is not connected, so no cut can be made now"),
        ));
    };
    let request_id = sb.next_request();
    // Subscribe before asking, so the commit cannot be missed.
    let mut commits = h.commits.subscribe();
    session
        .tx
        .send(encode(&StandbyMsg::CutRequest { request_id, quiesce: None }).expect("encode"))
        .await
        .map_err(|_| ApiFailure::new(ErrorCode::InvalidPairState, format!("pair '{id}': the agent disconnected")))?;
    tracing::info!(pair = %id, request_id, "cut requested");
    if !req.wait {
        return Ok((StatusCode::ACCEPTED, Json(CreatePointResponse { request_id, point: None })));
    }
    let wait = async {
        loop {
            match commits.recv().await {
                Ok(c) if c.request_ids.contains(&request_id) => return Ok(c.point),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(_) => return Err(ApiFailure::internal("pair closed")),
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(timeout), wait).await {
        Ok(Ok(point)) => Ok((StatusCode::OK, Json(CreatePointResponse { request_id, point: Some(point) }))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiFailure::new(
            ErrorCode::Timeout,
            format!("pair '{id}': cut request {request_id} not committed within {timeout}s; it may still commit later"),
        )),
    }
}
