//! Cross-site request refusal for every state-changing request (anything but GET, HEAD and
//! OPTIONS).
//!
//! With a token, a cross-site page cannot send the `Authorization` header anyway; this guard
//! also covers a standby run without a token, and any future cookie. A request is refused
//! (403, `AccessDenied`) when the browser says it comes from another site
//! (`Sec-Fetch-Site: cross-site|same-site`), or when its `Origin` is not the host it was
//! sent to. Clients that are not browsers (the CLI, curl, scripts) send neither header and
//! pass.

use super::ApiFailure;
use axum::extract::Request;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use drpair_types::ErrorCode;

/// Why `headers` mark a request as cross-site, if they do.
pub fn cross_site(method: &Method, headers: &HeaderMap) -> Option<String> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return None;
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = get("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return Some(format!("the browser marked it Sec-Fetch-Site: {site}"));
    }
    let origin = get(header::ORIGIN.as_str())?;
    let host = get(header::HOST.as_str()).unwrap_or("");
    let origin_host = origin.split_once("://").map_or("", |(_, rest)| rest).trim_end_matches('/');
    (origin == "null" || !origin_host.eq_ignore_ascii_case(host))
        .then(|| format!("its Origin {origin} is not this standby ({host})"))
}

pub async fn refuse_cross_site(req: Request, next: Next) -> Response {
    match cross_site(req.method(), req.headers()) {
        None => next.run(req).await,
        Some(why) => {
            tracing::warn!(method = %req.method(), uri = %req.uri(), "cross-site request refused: {why}");
            let mut r =
                ApiFailure::new(ErrorCode::AccessDenied, format!("cross-site request refused: {why}")).into_response();
            *r.status_mut() = StatusCode::FORBIDDEN;
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn table() {
        let host = ("host", "127.0.0.1:7701");
        let cases: &[(Method, &[(&str, &str)], bool)] = &[
            // Reads are never refused.
            (Method::GET, &[host, ("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")], false),
            // The CLI and curl send neither header.
            (Method::POST, &[host], false),
            // The panel itself.
            (Method::POST, &[host, ("origin", "http://127.0.0.1:7701"), ("sec-fetch-site", "same-origin")], false),
            (Method::PUT, &[host, ("origin", "http://127.0.0.1:7701")], false),
            // Another site.
            (Method::POST, &[host, ("origin", "https://evil.example"), ("sec-fetch-site", "cross-site")], true),
            (Method::POST, &[host, ("origin", "https://evil.example")], true),
            (Method::POST, &[host, ("sec-fetch-site", "same-site")], true),
            (Method::POST, &[host, ("origin", "null")], true),
            (Method::POST, &[host, ("origin", "http://127.0.0.1:9999")], true),
        ];
        for (m, h, refused) in cases {
            assert_eq!(cross_site(m, &headers(h)).is_some(), *refused, "{m} {h:?}");
        }
    }
}
