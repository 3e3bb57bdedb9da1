//! Bearer-token authentication: when the standby has a token, every API and metrics request
//! must present it (`Authorization: Bearer TOKEN`): missing → 401, wrong → 403 (both `AccessDenied`).

use super::audit::ApiIdentity;
use super::{ApiFailure, AppState};
use crate::token::token_eq;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drpair_types::ErrorCode;

pub async fn require_token(State(sb): State<AppState>, req: Request, next: Next) -> Response {
    let mut resp = check(&sb, req, next).await;
    let who = resp.extensions().get::<ApiIdentity>().is_none().then(|| ApiIdentity("anonymous".into()));
    if let Some(w) = who {
        resp.extensions_mut().insert(w);
    }
    resp
}

async fn check(sb: &AppState, req: Request, next: Next) -> Response {
    let Some(want) = &sb.token else {
        return next.run(req).await;
    };
    let given = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if token_eq(t.trim(), want) => {
            let mut r = next.run(req).await;
            r.extensions_mut().insert(ApiIdentity("token (shared)".into()));
            r
        }
        Some(_) => {
            let mut r = ApiFailure::new(ErrorCode::AccessDenied, "wrong token: the standby refuses it").into_response();
            *r.status_mut() = axum::http::StatusCode::FORBIDDEN;
            r
        }
        None => ApiFailure::new(
            ErrorCode::AccessDenied,
            "this standby requires a token: send Authorization: Bearer TOKEN (drpair --token or DRPAIR_TOKEN)",
        )
        .into_response(),
    }
}
