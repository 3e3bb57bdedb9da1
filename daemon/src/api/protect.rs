//! Protection while failed over: `POST /api/v1/pairs/{pair}/protect-recovered` (an agent
//! protects the failed-over pair's recovered disks under a new pair) and
//! `POST /api/v1/pairs/{pair}/unprotect-recovered` (it stops; the new pair stays). Both answer
//! the protection (`ProtectionStatus`), also in the pair's status as `protected_by`.

use super::control::body;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::protect::{self, ProtectError};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use drpair_types::{ErrorCode, ProtectRecoveredRequest, ProtectionStatus, UnprotectRecoveredRequest};

fn failure(e: ProtectError) -> ApiFailure {
    match e {
        ProtectError::Param(p, m) => ApiFailure::param(p, m),
        ProtectError::State(m) | ProtectError::Refused(m) => ApiFailure::new(ErrorCode::InvalidPairState, m),
        ProtectError::Internal(m) => ApiFailure::internal(m),
    }
}

pub async fn protect(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ProtectionStatus>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let req: ProtectRecoveredRequest =
        if raw.iter().all(u8::is_ascii_whitespace) { ProtectRecoveredRequest::default() } else { body(&raw)? };
    let sb2 = sb.clone();
    let s = tokio::task::spawn_blocking(move || protect::start(&sb2, &h, req))
        .await
        .map_err(|e| ApiFailure::internal(e.to_string()))?
        .map_err(failure)?;
    Ok(Json(s))
}

pub async fn unprotect(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ProtectionStatus>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let req: UnprotectRecoveredRequest =
        if raw.iter().all(u8::is_ascii_whitespace) { UnprotectRecoveredRequest::default() } else { body(&raw)? };
    let by = req.operator.unwrap_or_else(|| "api".into());
    let sb2 = sb.clone();
    let s = tokio::task::spawn_blocking(move || protect::stop(&sb2, &h, &format!("stopped by {by}")))
        .await
        .map_err(|e| ApiFailure::internal(e.to_string()))?
        .map_err(failure)?;
    Ok(Json(s))
}
