//! API tokens: `GET /api/v1/tokens`, `POST /api/v1/tokens` (`{"name", "role", "expires"}`; the
//! secret is in the answer, once), `DELETE /api/v1/tokens/{name}`. Admin only.

use super::control::body;
use super::{ApiFailure, ApiResult, AppState};
use crate::standby::tokens::TokenError;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use drpair_types::{CreatedToken, ErrorCode, NewToken, TokenInfo};

impl From<TokenError> for ApiFailure {
    fn from(e: TokenError) -> Self {
        match &e {
            TokenError::BadName(_) => ApiFailure::param("name", e.to_string()),
            TokenError::Exists(_) | TokenError::Configured(_) => {
                ApiFailure::new(ErrorCode::NotConfigured, e.to_string())
            }
            TokenError::Unknown(_) => ApiFailure::new(ErrorCode::NotFound, e.to_string()),
            TokenError::Io(_) => ApiFailure::internal(e),
        }
    }
}

pub async fn list(State(sb): State<AppState>) -> Json<Vec<TokenInfo>> {
    Json(sb.tokens.list())
}

pub async fn create(State(sb): State<AppState>, raw: Bytes) -> ApiResult<Json<CreatedToken>> {
    let req: NewToken = body(&raw)?;
    let ttl = match req.expires.as_deref() {
        None => None,
        Some(t) => Some(
            humantime::parse_duration(t.trim())
                .ok()
                .filter(|d| d.as_secs() >= 60)
                .and_then(|d| u64::try_from(d.as_millis()).ok())
                .ok_or_else(|| {
                    ApiFailure::param("expires", format!("expires '{t}' must be a duration of 1m or more, e.g. 30d"))
                })?,
        ),
    };
    let (secret, expires) = sb.tokens.create(&req.name, req.role, ttl)?;
    tracing::info!(name = %req.name, role = req.role.as_str(), "API token created");
    Ok(Json(CreatedToken {
        name: req.name,
        role: req.role,
        secret,
        expires_at: expires.map(crate::timefmt::rfc3339_ms),
    }))
}

pub async fn revoke(State(sb): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    sb.tokens.revoke(&name)?;
    tracing::info!(%name, "API token revoked");
    Ok(Json(serde_json::json!({ "name": name, "revoked": true })))
}
