//! Tasks: `GET /api/v1/tasks[?pair=P&running=true]`, `GET /api/v1/tasks/{id}`,
//! `GET /api/v1/tasks/{id}/log[?from=N]`.

use super::{ApiFailure, ApiResult, AppState, find_pair};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use drpair_types::{ErrorCode, TaskId, TaskInfo, TaskList, TaskLog};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pair: Option<String>,
    #[serde(default)]
    running: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    #[serde(default)]
    from: u64,
}

/// Every task kept, newest first; of one pair (404 if unknown), or running ones only.
pub async fn list(
    State(sb): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<TaskList>> {
    let Query(q) = q.map_err(|e| ApiFailure::param("query", e.body_text()))?;
    let pair = match q.pair.as_deref() {
        Some(raw) => Some(find_pair(&sb, raw)?.0),
        None => None,
    };
    Ok(Json(TaskList { tasks: sb.tasks.list(pair.as_ref(), q.running) }))
}

fn task_id(raw: &str) -> ApiResult<TaskId> {
    raw.parse().map_err(|e: String| ApiFailure::param("id", e))
}

fn not_found(id: TaskId) -> ApiFailure {
    ApiFailure::new(ErrorCode::NotFound, format!("task {id} is not known to this standby (see GET /api/v1/tasks)"))
}

pub async fn get_one(State(sb): State<AppState>, Path(raw): Path<String>) -> ApiResult<Json<TaskInfo>> {
    let id = task_id(&raw)?;
    sb.tasks.get(id).map(Json).ok_or_else(|| not_found(id))
}

pub async fn log(
    State(sb): State<AppState>,
    Path(raw): Path<String>,
    q: Result<Query<LogQuery>, QueryRejection>,
) -> ApiResult<Json<TaskLog>> {
    let id = task_id(&raw)?;
    let Query(q) = q.map_err(|e| ApiFailure::param("from", e.body_text()))?;
    sb.tasks.log(id, q.from).map(Json).ok_or_else(|| not_found(id))
}
