//! Drills: `POST|GET /api/v1/pairs/{pair}/drills`, `GET /api/v1/drills[/{id}]`,
//! `POST /api/v1/drills/{id}/stop`, and a booted drill's evidence:
//! `GET /api/v1/drills/{id}/console` (the full console log) and `…/screenshot` (PNG).

use super::control::body;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::drill::{self, DrillError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use drpair_types::{DrillRequest, DrillState, DrillStatus, ErrorCode};

fn failure(pair: &str, e: DrillError) -> ApiFailure {
    match e {
        DrillError::Param(p, m) => ApiFailure::param(p, m),
        DrillError::PointNotFound(m) => ApiFailure::new(ErrorCode::PointNotFound, format!("pair '{pair}': {m}")),
        DrillError::State(m) => ApiFailure::new(ErrorCode::InvalidPairState, format!("pair '{pair}': {m}")),
        DrillError::Internal(m) => ApiFailure::internal(m),
    }
}

/// Starts a drill; answers once its exports are served (201).
pub async fn start(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<DrillStatus>)> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: DrillRequest = if raw.iter().all(u8::is_ascii_whitespace) { DrillRequest::default() } else { body(&raw)? };
    let sb2 = sb.clone();
    let s = tokio::task::block_in_place(|| drill::start(&sb2, &h, req)).map_err(|e| failure(id.as_str(), e))?;
    Ok((StatusCode::CREATED, Json(s)))
}

/// The pair's drills, running and past, newest first.
pub async fn of_pair(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<Vec<DrillStatus>>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let mut v = drill::records(&sb, &h).map_err(ApiFailure::internal)?;
    v.reverse();
    Ok(Json(v))
}

/// Every running drill of this standby.
pub async fn running(State(sb): State<AppState>) -> Json<Vec<DrillStatus>> {
    Json(sb.drills.running())
}

fn find_drill(sb: &AppState, id: &str) -> ApiResult<DrillStatus> {
    if let Some(s) = sb.drills.get(id) {
        return Ok(s);
    }
    for h in sb.registry.all() {
        let found = drill::records(sb, &h).map_err(ApiFailure::internal)?.into_iter().find(|d| d.id == id);
        if let Some(d) = found {
            return Ok(d);
        }
    }
    Err(ApiFailure::new(ErrorCode::NotFound, format!("no drill '{id}' on this standby")))
}

pub async fn get_one(State(sb): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<DrillStatus>> {
    find_drill(&sb, &id).map(Json)
}

/// Stops a running drill (404 unknown; 409 when it already ended).
pub async fn stop(State(sb): State<AppState>, Path(id): Path<String>, raw: Bytes) -> ApiResult<Json<DrillStatus>> {
    super::control::no_params(&raw)?;
    let known = find_drill(&sb, &id)?;
    let sb2 = sb.clone();
    match tokio::task::block_in_place(|| drill::stop(&sb2, &id, DrillState::Stopped)) {
        Some(s) => Ok(Json(s)),
        None => Err(ApiFailure::new(
            ErrorCode::InvalidPairState,
            format!("drill '{id}' already ended ({:?} at {})", known.state, known.ended_at.unwrap_or_default()),
        )),
    }
}

/// A file of a booted drill's evidence, as `content_type` (404: no such drill, or it has none).
fn evidence_file(sb: &AppState, id: &str, name: &str, content_type: &'static str) -> ApiResult<Response> {
    let d = find_drill(sb, id)?;
    let what = if name == drill::evidence::SCREENSHOT { "screenshot" } else { "console log" };
    if d.boot.is_none() {
        return Err(ApiFailure::new(ErrorCode::NotFound, format!("drill '{id}' did not boot a guest: no {what}")));
    }
    let path = drill::evidence::file(&sb.data_dir, &d.id, name)
        .ok_or_else(|| ApiFailure::new(ErrorCode::NotFound, format!("drill '{id}' has no {what} (yet)")))?;
    let bytes = std::fs::read(&path).map_err(ApiFailure::internal)?;
    Ok(([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-store")], bytes).into_response())
}

/// The full console log of a drill's guest (text).
pub async fn console(State(sb): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    tokio::task::block_in_place(|| evidence_file(&sb, &id, drill::evidence::CONSOLE, "text/plain; charset=utf-8"))
}

/// The screenshot of a drill's guest, taken at the console's match or the boot's failure (PNG).
pub async fn screenshot(State(sb): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    tokio::task::block_in_place(|| evidence_file(&sb, &id, drill::evidence::SCREENSHOT, "image/png"))
}
