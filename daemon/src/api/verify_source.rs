//! Online verify against the source: `POST /api/v1/pairs/{pair}/verify-source` asks the
//! agent to compare every chunk with the newest point and repair what differs (202 with the
//! request); `GET` the same path shows the running or last one.
//!
//! Checks run in the usual order: unknown pair (404), parameters (400: the call takes none),
//! then the pair's state (409: not replicating, agent not connected, a verify already
//! running). A refusal changes nothing.

use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::source_verify::{self, VerifyError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drpair_types::{ErrorCode, SourceVerifyStatus};

impl From<VerifyError> for ApiFailure {
    fn from(e: VerifyError) -> Self {
        match e {
            VerifyError::State(m) => ApiFailure::new(ErrorCode::InvalidPairState, m),
            VerifyError::Internal(m) => ApiFailure::internal(m),
        }
    }
}

pub async fn start(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<SourceVerifyStatus>)> {
    let (_, h) = find_pair(&sb, &pair)?;
    super::control::no_params(&raw)?;
    let requested = source_verify::request(&sb, &h).await?;
    // The agent may already have begun: show the freshest view.
    let status = h.status().source_verify.unwrap_or(requested);
    Ok((StatusCode::ACCEPTED, Json(status)))
}

pub async fn get(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<SourceVerifyStatus>> {
    let (id, h) = find_pair(&sb, &pair)?;
    h.status().source_verify.map(Json).ok_or_else(|| {
        ApiFailure::new(
            ErrorCode::NotFound,
            format!("pair '{id}' was never verified against the source; start one with POST /api/v1/pairs/{id}/verify-source"),
        )
    })
}
