//! Records API calls in the audit log: every call that changes something (any method but
//! GET/HEAD/OPTIONS), and every refused authentication whatever the method, with the identity
//! the authentication layer found ([`ApiIdentity`]), the caller's address and the outcome.

use super::AppState;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use std::net::SocketAddr;

/// Who made an API call, as the authentication layer established it (set on the response).
#[derive(Debug, Clone)]
pub struct ApiIdentity(pub String);

/// Why the API refused a call, in its own words (set on the response by `ApiFailure`), so the
/// audit log says more than the status code.
#[derive(Debug, Clone)]
pub struct RefusalWords(pub String);

pub async fn record_calls(State(sb): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let peer = req
        .extensions()
        .get::<ConnectInfo<crate::https::Peer>>()
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |c| c.0.0);
    let resp = next.run(req).await;
    let status = resp.status();
    let changes = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    let refused_auth = status == axum::http::StatusCode::UNAUTHORIZED || status == axum::http::StatusCode::FORBIDDEN;
    if changes || refused_auth {
        let identity = resp.extensions().get::<ApiIdentity>().map_or("anonymous".to_string(), |i| i.0.clone());
        let pair = path.strip_prefix("/api/v1/pairs/").and_then(|r| r.split('/').next()).unwrap_or("").to_string();
        let action = format!("{method} {path}");
        let result = if status.is_success() {
            Ok(())
        } else {
            Err(match resp.extensions().get::<RefusalWords>() {
                Some(w) => format!("HTTP {}: {}", status.as_u16(), w.0),
                None => format!("HTTP {}", status.as_u16()),
            })
        };
        let entry = crate::standby::audit::entry(
            &identity,
            peer,
            &action,
            &pair,
            result.as_ref().map(|_| ()).map_err(String::as_str),
        );
        let sb = sb.clone();
        let _ = tokio::task::spawn_blocking(move || sb.audit.record(entry)).await;
    }
    resp
}
