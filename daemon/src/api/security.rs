//! Agents' credentials and the audit log: `POST /api/v1/pairs/{pair}/enroll` (a single-use
//! secret, `{"ttl": "1h"}`), `POST /api/v1/pairs/{pair}/revoke` (every certificate of the pair;
//! its agent's connection ends at once), `GET /api/v1/audit[?pair=&since=&limit=]`.

use super::control::body;
use super::{ApiFailure, ApiResult, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use drpair_types::{AuditEntry, Enrollment, ErrorCode, PairId, Revocation};
use std::sync::atomic::Ordering;
use std::time::Duration;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EnrollRequest {
    /// How long the secret is valid: `1h` by default, 1 second to 7 days.
    ttl: Option<String>,
}

fn pair_param(raw: &str) -> ApiResult<PairId> {
    PairId::new(raw).map_err(|e| ApiFailure::param("pair", e.to_string()))
}

pub async fn enroll(State(sb): State<AppState>, Path(pair): Path<String>, raw: Bytes) -> ApiResult<Json<Enrollment>> {
    let pair = pair_param(&pair)?;
    let req: EnrollRequest =
        if raw.iter().all(u8::is_ascii_whitespace) { EnrollRequest::default() } else { body(&raw)? };
    let ttl = match req.ttl.as_deref() {
        None => Duration::from_secs(3600),
        Some(t) => humantime::parse_duration(t.trim())
            .ok()
            .filter(|d| (Duration::from_secs(1)..=Duration::from_secs(7 * 86_400)).contains(d))
            .ok_or_else(|| ApiFailure::param("ttl", format!("ttl '{t}' must be a duration from 1s to 7d, e.g. 1h")))?,
    };
    let Some(id) = &sb.identity else {
        return Err(ApiFailure::new(
            ErrorCode::NotConfigured,
            "this standby runs its link in plaintext (insecure_plaintext): agents cannot enroll; they use the token",
        ));
    };
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
    let (secret, expires) = sb.credentials.new_enrollment(&pair, ttl_ms, "api").map_err(ApiFailure::internal)?;
    tracing::info!(%pair, "enrollment secret made, valid until {}", crate::timefmt::rfc3339_ms(expires));
    Ok(Json(Enrollment {
        pair_id: pair.to_string(),
        secret,
        expires_at: crate::timefmt::rfc3339_ms(expires),
        fingerprint: id.fingerprint().to_string(),
        link_port: sb.link_port.load(Ordering::Relaxed),
    }))
}

pub async fn revoke(State(sb): State<AppState>, Path(pair): Path<String>, raw: Bytes) -> ApiResult<Json<Revocation>> {
    let pair = pair_param(&pair)?;
    super::control::no_params(&raw)?;
    let n = sb.credentials.revoke(&pair).map_err(ApiFailure::internal)?;
    let mut ended = false;
    if let Some(h) = sb.registry.get(&pair)
        && let Some(s) = h.runtime.lock().expect("runtime").session.as_ref()
    {
        s.end("the pair's credentials were revoked", true);
        ended = true;
    }
    tracing::warn!(%pair, certificates = n, connection_ended = ended, "credentials revoked");
    Ok(Json(Revocation { pair_id: pair.to_string(), revoked_certificates: n, connection_ended: ended }))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    pair: Option<String>,
    /// RFC 3339 time, or a duration back from now (`1h`, `7d`).
    since: Option<String>,
    limit: Option<usize>,
}

pub async fn audit(
    State(sb): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<AuditEntry>>> {
    let Query(q) = q.map_err(|e| ApiFailure::param("query", e.body_text()))?;
    if let Some(p) = &q.pair {
        pair_param(p)?;
    }
    let since = match q.since.as_deref() {
        None => 0,
        Some(s) => since_ms(s).ok_or_else(|| {
            ApiFailure::param("since", format!("since '{s}' is neither an RFC 3339 time nor a duration like 1h"))
        })?,
    };
    let limit = q.limit.unwrap_or(1000).clamp(1, 100_000);
    let sb2 = sb.clone();
    let entries = tokio::task::spawn_blocking(move || sb2.audit.read(q.pair.as_deref(), since, limit))
        .await
        .map_err(ApiFailure::internal)?;
    Ok(Json(entries))
}

fn since_ms(s: &str) -> Option<u64> {
    if let Ok(d) = humantime::parse_duration(s.trim()) {
        return Some(crate::timefmt::now_ms().saturating_sub(u64::try_from(d.as_millis()).ok()?));
    }
    let t = humantime::parse_rfc3339_weak(s.trim()).ok()?;
    u64::try_from(t.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis()).ok()
}
