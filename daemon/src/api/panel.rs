//! The web panel: static files compiled into the binary from `web/` (nothing is fetched from
//! anywhere else), served under `/ui/` without a token — the page holds no data; it asks
//! the public `/api/v1` for everything, with the token the operator typed.
//!
//! Every answer carries a Content-Security-Policy that allows only this origin (no inline
//! script, no framing), and `nosniff`.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Router, middleware};

/// (path under /ui/, content type, content).
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../../../web/index.html")),
    ("app.css", "text/css; charset=utf-8", include_str!("../../../web/app.css")),
    ("favicon.svg", "image/svg+xml", include_str!("../../../web/favicon.svg")),
    ("js/main.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/main.js")),
    ("js/api.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/api.js")),
    ("js/dom.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/dom.js")),
    ("js/format.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/format.js")),
    ("js/list.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/list.js")),
    ("js/details.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/details.js")),
    ("js/dump.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/dump.js")),
    ("js/tasks.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/tasks.js")),
    ("js/audit.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/audit.js")),
    ("js/actions.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/actions.js")),
    ("js/link.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/link.js")),
    ("js/rpo.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/rpo.js")),
    ("js/dialog.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/dialog.js")),
    ("js/start.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/start.js")),
    ("js/drills.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/drills.js")),
    ("js/failover.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/failover.js")),
    ("js/verify.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/verify.js")),
    ("js/retention.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/retention.js")),
    ("js/chart.js", "text/javascript; charset=utf-8", include_str!("../../../web/js/chart.js")),
];

pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

fn asset(path: &str) -> Response {
    match ASSETS.iter().find(|(p, _, _)| *p == path) {
        Some((_, ctype, body)) => {
            // The assets change only with the binary: revalidate each load, cheap on loopback.
            ([(header::CONTENT_TYPE, *ctype), (header::CACHE_CONTROL, "no-cache")], *body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "no such panel file\n").into_response(),
    }
}

async fn security_headers(req: axum::extract::Request, next: middleware::Next) -> Response {
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    r
}

/// `/` and `/ui` lead to the panel; `/ui/…` serves its files.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { asset("index.html") }))
        .route("/ui/{*file}", get(|Path(file): Path<String>| async move { asset(&file) }))
        .layer(middleware::from_fn(security_headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_page_imports_is_served() {
        // index.html loads js/main.js; each module imports siblings by './name.js'.
        for (path, _, body) in ASSETS {
            for line in body.lines().filter(|l| l.trim_start().starts_with("import ")) {
                let Some(target) = line.split(['\'', '"']).nth(1) else { continue };
                let name = format!("js/{}", target.trim_start_matches("./"));
                assert!(ASSETS.iter().any(|(p, _, _)| *p == name), "{path} imports {target}, which is not served");
            }
        }
        assert!(ASSETS[0].2.contains("js/main.js"));
    }

    #[test]
    fn nothing_is_loaded_from_elsewhere() {
        for (path, _, body) in ASSETS {
            for needle in ["http://", "https://", "//cdn", "<script>", " on click=", "onclick="] {
                let hits: Vec<_> =
                    body.lines().filter(|l| l.contains(needle) && !l.contains("www.w3.org/2000/svg")).collect();
                assert!(hits.is_empty(), "{path} has {needle}: {hits:?}");
            }
        }
    }
}
