//! Authentication and roles: every API and metrics request presents a token
//! (`Authorization: Bearer TOKEN`); missing → 401, unknown or expired → 403 (`AccessDenied`); a
//! role too low for the call → 403 (`Forbidden`) naming the role it needs. The caller
//! ([`Caller`]) reaches handlers as a request extension and the audit log as [`ApiIdentity`].
//! One route takes no token: a one-time download link (`GET /api/v1/downloads/{ticket}`),
//! whose ticket is its credential ([`super::roles::token_free`]).

use super::audit::ApiIdentity;
use super::{ApiFailure, AppState};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drpair_types::{ErrorCode, Role};

/// Who is calling, and what they may do.
#[derive(Debug, Clone)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// The largest `start` body inspected for its role.
const START_BODY_MAX: usize = 64 << 10;

pub async fn require_token(State(sb): State<AppState>, req: Request, next: Next) -> Response {
    if super::roles::token_free(req.method(), req.uri().path()) {
        return with_identity(next.run(req).await, "download link".into());
    }
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let Some(secret) = given else {
        return with_identity(
            ApiFailure::new(
                ErrorCode::AccessDenied,
                "this standby requires a token: send Authorization: Bearer TOKEN (drpair --token or DRPAIR_TOKEN)",
            )
            .into_response(),
            "anonymous".into(),
        );
    };
    let Some((name, role)) = sb.tokens.authenticate(&secret) else {
        let mut r =
            ApiFailure::new(ErrorCode::AccessDenied, "wrong or expired token: the standby refuses it").into_response();
        *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
        return with_identity(r, "unknown token".into());
    };
    let identity = format!("token {name} ({})", role.as_str());
    let (req, start_deletes) = match inspect_start(req).await {
        Ok(x) => x,
        Err(r) => return with_identity(r, identity),
    };
    let needed = super::roles::required(req.method(), req.uri().path(), start_deletes);
    // `metrics` is the lowest role: it passes only where `metrics` is what is needed.
    if role < needed {
        let r = ApiFailure::new(
            ErrorCode::Forbidden,
            format!("this call needs the {} role; token '{name}' has the {} role", needed.as_str(), role.as_str()),
        )
        .into_response();
        return with_identity(r, identity);
    }
    let mut req = req;
    req.extensions_mut().insert(Caller { name, role });
    with_identity(next.run(req).await, identity)
}

fn with_identity(mut r: Response, who: String) -> Response {
    r.extensions_mut().insert(ApiIdentity(who));
    r
}

/// For `POST …/start`: whether the body asks for a reload or a replay (points deleted). The
/// body is read (small) and put back.
async fn inspect_start(req: Request) -> Result<(Request, bool), Response> {
    if req.method() != axum::http::Method::POST || !req.uri().path().ends_with("/start") {
        return Ok((req, false));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, START_BODY_MAX)
        .await
        .map_err(|e| ApiFailure::param("body", format!("request body: {e}")).into_response())?;
    let deletes = serde_json::from_slice::<serde_json::Value>(&bytes).is_ok_and(|v| {
        v.get("type").and_then(|t| t.as_str()) == Some("reload")
            || v.get("from_point").is_some_and(|x| !x.is_null())
            || v.get("from_time").is_some_and(|x| !x.is_null())
    });
    Ok((Request::from_parts(parts, Body::from(bytes)), deletes))
}
