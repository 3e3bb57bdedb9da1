//! `GET /api/v1/pairs` and `GET /api/v1/pairs/{pair}`.

use super::{ApiResult, AppState, find_pair};
use axum::Json;
use axum::extract::{Path, State};
use drpair_types::{PairStatus, PairSummary};

pub async fn list(State(sb): State<AppState>) -> Json<Vec<PairSummary>> {
    Json(sb.registry.all().iter().map(|h| h.summary()).collect())
}

pub async fn status(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<PairStatus>> {
    let (_, h) = find_pair(&sb, &pair)?;
    Ok(Json(h.status()))
}
