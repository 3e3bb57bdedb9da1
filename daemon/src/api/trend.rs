//! `GET /api/v1/pairs/{pair}/history[?since=MS]`: the pair's short history (lag, throughput,
//! backlog, progress), oldest first; `since` (milliseconds since the Unix epoch) returns only
//! the samples taken after it, for a chart that polls.

use super::{ApiFailure, ApiResult, AppState, find_pair};
use axum::Json;
use axum::extract::{Path, Query, State};
use drpair_types::PairTrend;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrendQuery {
    since: Option<u64>,
}

pub async fn get(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    q: Result<Query<TrendQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<PairTrend>> {
    let Query(q) = q.map_err(|e| ApiFailure::param("since", e.body_text()))?;
    let (_, h) = find_pair(&sb, &pair)?;
    let status = h.status();
    let view = h.trend.lock().expect("trend").view(&status, q.since.unwrap_or(0));
    Ok(Json(view))
}
