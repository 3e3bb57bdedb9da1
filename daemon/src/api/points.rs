//! Recovery points: list, get one, cut one now.

use super::{ApiFailure, ApiResult, AppState, find_pair};
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use drpair_types::{CreatePointRequest, CreatePointResponse, ErrorCode, RecoveryPoint};
use drpair_wire::{QuiesceRequest, StandbyMsg, encode};
use std::path::{Component, Path as FsPath};
use std::time::Duration;

/// Most mount points one cut may freeze.
const MAX_FREEZE: usize = 16;
/// Range of `thaw_budget_ms`.
const THAW_BUDGET_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only the newest `limit` points (still oldest first).
    limit: Option<usize>,
    /// Only the points older than this one (its id): the page before it.
    before: Option<String>,
}

/// `GET /api/v1/pairs/{pair}/points[?limit=N][&before=ID]`: the pair's points, oldest first;
/// with `before`, only those whose id is below ID (with `limit`, the newest N of them: the
/// page that ends just before ID).
pub async fn list(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> ApiResult<Json<Vec<RecoveryPoint>>> {
    let Query(q) = q.map_err(|e| {
        let text = e.body_text();
        ApiFailure::param(if text.contains("unknown field") { "query" } else { "limit" }, text)
    })?;
    let (_, h) = find_pair(&sb, &pair)?;
    let before = match q.before.as_deref() {
        Some(b) => Some(
            b.trim()
                .parse::<u64>()
                .map_err(|_| ApiFailure::param("before", format!("before '{b}' is not a point id (a number)")))?,
        ),
        None => None,
    };
    let pair_no = h.record.lock().expect("record").pair_no;
    let store = sb.store.clone();
    let mut points = tokio::task::spawn_blocking(move || store.list_points(pair_no))
        .await
        .map_err(ApiFailure::internal)?
        .map_err(ApiFailure::internal)?;
    if let Some(b) = before {
        points.retain(|p| p.id < b);
    }
    if let Some(n) = q.limit {
        points.drain(..points.len().saturating_sub(n));
    }
    Ok(Json(points))
}

/// Resolves a point id from a path (`latest` or a number).
pub async fn resolve_point(sb: &AppState, pair: &str, point: &str) -> ApiResult<(u32, RecoveryPoint)> {
    let (id, h) = find_pair(sb, pair)?;
    let pair_no = h.record.lock().expect("record").pair_no;
    let store = sb.store.clone();
    let found = if point == "latest" {
        tokio::task::spawn_blocking(move || {
            store.list_points(pair_no).map(|ps| drpair_types::latest_recoverable(&ps).map(|c| c.point.clone()))
        })
        .await
    } else {
        let n: u64 = point.parse().map_err(|_| {
            ApiFailure::param("point", format!("point '{point}' is not a point id (a number) or 'latest'"))
        })?;
        tokio::task::spawn_blocking(move || store.get_point(pair_no, n)).await
    };
    let found = found.map_err(ApiFailure::internal)?.map_err(ApiFailure::internal)?;
    let p = found.ok_or_else(|| {
        ApiFailure::new(ErrorCode::PointNotFound, format!("pair '{id}' has no recovery point '{point}'"))
    })?;
    Ok((pair_no, p))
}

pub async fn get_one(
    State(sb): State<AppState>,
    Path((pair, point)): Path<(String, String)>,
) -> ApiResult<Json<RecoveryPoint>> {
    Ok(Json(resolve_point(&sb, &pair, &point).await?.1))
}

/// `POST /api/v1/pairs/{pair}/points`: asks the agent to cut now. With `wait`, answers once
/// the cut is a committed point (200), else at once (202).
pub async fn create(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    body: Result<Json<CreatePointRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<CreatePointResponse>)> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return Err(ApiFailure::param("body", format!("request body: {}", e.body_text()))),
    };
    let timeout = req.timeout_seconds.unwrap_or(600);
    if timeout == 0 || timeout > 86_400 {
        return Err(ApiFailure::param("timeout_seconds", "timeout_seconds must be between 1 and 86400"));
    }
    let quiesce = quiesce_request(&req)?;
    let l = h.record.lock().expect("record").lifecycle.clone();
    if l.holds() {
        return Err(ApiFailure::new(
            ErrorCode::InvalidPairState,
            format!("pair '{id}' is {}: nothing is shipped, so no point can be cut; resume it first", l.state.label()),
        ));
    }
    let session = h.runtime.lock().expect("runtime").session.clone();
    let Some(session) = session else {
        return Err(ApiFailure::new(
            ErrorCode::InvalidPairState,
            format!("pair '{id}': the agent is not connected, so no cut can be made now"),
        ));
    };
    let request_id = sb.next_request();
    // Subscribe before asking, so the commit cannot be missed.
    let mut commits = h.commits.subscribe();
    let conn_id = session.conn_id;
    session
        .tx
        .send(encode(&StandbyMsg::CutRequest { request_id, quiesce: quiesce.clone() }).expect("encode"))
        .await
        .map_err(|_| ApiFailure::new(ErrorCode::InvalidPairState, format!("pair '{id}': the agent disconnected")))?;
    // A waiting call must never keep the link alive: its sender goes now, so a connection the
    // standby ends is seen closed by its writer at once.
    drop(session);
    match &quiesce {
        Some(q) => tracing::info!(
            pair = %id,
            request_id,
            freeze = ?q.freeze,
            hooks = q.hooks,
            budget_ms = ?q.budget_ms,
            "app-consistent cut requested"
        ),
        None => tracing::info!(pair = %id, request_id, "cut requested"),
    }
    if !req.wait {
        return Ok((StatusCode::ACCEPTED, Json(CreatePointResponse { request_id, point: None })));
    }
    // The request lives in the connection that took it: when that connection ends before the
    // cut is committed, the call fails at once with why, instead of waiting out its timeout.
    let ended = || -> Option<String> {
        let rt = h.runtime.lock().expect("runtime");
        if rt.session.as_ref().is_some_and(|s| s.conn_id == conn_id) {
            return None;
        }
        Some(rt.failures.back().cloned().unwrap_or_else(|| "the agent disconnected".into()))
    };
    let wait = async {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                got = commits.recv() => match got {
                    Ok(c) if c.request_ids.contains(&request_id) => return Ok(c.point),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return Err(ApiFailure::internal("pair closed")),
                },
                _ = tick.tick() => {
                    let Some(why) = ended() else { continue };
                    // A commit announced just before the end still counts.
                    while let Ok(c) = commits.try_recv() {
                        if c.request_ids.contains(&request_id) {
                            return Ok(c.point);
                        }
                    }
                    return Err(ApiFailure::new(
                        ErrorCode::InvalidPairState,
                        format!(
                            "pair '{id}': cut request {request_id} was not committed: the agent's connection ended first ({why}); nothing of it was kept, request the point again once the agent is back"
                        ),
                    ));
                }
            }
        }
    };
    match tokio::time::timeout(Duration::from_secs(timeout), wait).await {
        Ok(Ok(point)) => Ok((StatusCode::OK, Json(CreatePointResponse { request_id, point: Some(point) }))),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ApiFailure::new(
            ErrorCode::Timeout,
            format!("pair '{id}': cut request {request_id} not committed within {timeout}s; it may still commit later"),
        )),
    }
}

/// Checks the app-consistent fields of a cut request; `Some` when the agent is to quiesce.
fn quiesce_request(req: &CreatePointRequest) -> ApiResult<Option<QuiesceRequest>> {
    if req.freeze.len() > MAX_FREEZE {
        return Err(ApiFailure::param(
            "freeze",
            format!("freeze lists {} mount points; at most {MAX_FREEZE}", req.freeze.len()),
        ));
    }
    for (i, f) in req.freeze.iter().enumerate() {
        let p = FsPath::new(f);
        let why = if f.is_empty() {
            Some("is empty")
        } else if f.contains('\0') {
            Some("contains a NUL byte")
        } else if !p.is_absolute() {
            Some("is not an absolute path")
        } else if p.components().any(|c| c == Component::ParentDir) {
            Some("must not contain '..'")
        } else {
            None
        };
        if let Some(why) = why {
            return Err(ApiFailure::param("freeze", format!("freeze mount point '{f}' {why}")));
        }
        if req.freeze[..i].iter().any(|g| FsPath::new(g) == p) {
            return Err(ApiFailure::param("freeze", format!("freeze mount point '{f}' is listed twice")));
        }
    }
    let wanted = !req.freeze.is_empty() || req.hooks;
    if let Some(b) = req.thaw_budget_ms {
        if !wanted {
            return Err(ApiFailure::param("thaw_budget_ms", "thaw_budget_ms needs freeze or hooks"));
        }
        if !THAW_BUDGET_MS.contains(&b) {
            return Err(ApiFailure::param("thaw_budget_ms", "thaw_budget_ms must be between 100 and 60000"));
        }
    }
    Ok(wanted.then(|| QuiesceRequest { freeze: req.freeze.clone(), hooks: req.hooks, budget_ms: req.thaw_budget_ms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(freeze: &[&str], hooks: bool, thaw_budget_ms: Option<u64>) -> CreatePointRequest {
        CreatePointRequest {
            freeze: freeze.iter().map(|s| s.to_string()).collect(),
            hooks,
            thaw_budget_ms,
            ..Default::default()
        }
    }

    /// The refused parameter and the message.
    fn refused(r: CreatePointRequest) -> (String, String) {
        let e = quiesce_request(&r).unwrap_err().0;
        assert_eq!(e.code, ErrorCode::InvalidParameter);
        (e.parameter.unwrap(), e.message)
    }

    #[test]
    fn plain_cuts_do_not_quiesce() {
        assert_eq!(quiesce_request(&req(&[], false, None)).unwrap(), None);
    }

    #[test]
    fn app_consistent_requests_pass_through() {
        let q = quiesce_request(&req(&["/data", "/var/lib/pg/"], false, Some(1500))).unwrap().unwrap();
        assert_eq!(
            q,
            QuiesceRequest { freeze: vec!["/data".into(), "/var/lib/pg/".into()], hooks: false, budget_ms: Some(1500) }
        );
        let q = quiesce_request(&req(&[], true, None)).unwrap().unwrap();
        assert_eq!(q, QuiesceRequest { freeze: vec![], hooks: true, budget_ms: None });
        for b in [100, 60_000] {
            assert!(quiesce_request(&req(&[], true, Some(b))).is_ok(), "{b}");
        }
        let many: Vec<String> = (0..MAX_FREEZE).map(|i| format!("/m{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(quiesce_request(&req(&many, false, None)).unwrap().unwrap().freeze.len(), MAX_FREEZE);
    }

    #[test]
    fn bad_mount_points_are_refused() {
        let freeze = |f: &[&str]| refused(req(f, false, None));
        assert_eq!(freeze(&[""]), ("freeze".into(), "freeze mount point '' is empty".into()));
        assert_eq!(freeze(&["data"]).1, "freeze mount point 'data' is not an absolute path");
        assert_eq!(freeze(&["/mnt/../etc"]).1, "freeze mount point '/mnt/../etc' must not contain '..'");
        assert_eq!(freeze(&["/a\0b"]).1, "freeze mount point '/a\0b' contains a NUL byte");
        assert_eq!(freeze(&["/data", "/srv", "/data/"]).1, "freeze mount point '/data/' is listed twice");
        let many: Vec<String> = (0..=MAX_FREEZE).map(|i| format!("/m{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(freeze(&many).1, "freeze lists 17 mount points; at most 16");
    }

    #[test]
    fn thaw_budgets_are_checked() {
        let (param, msg) = refused(req(&[], false, Some(2000)));
        assert_eq!((param.as_str(), msg.as_str()), ("thaw_budget_ms", "thaw_budget_ms needs freeze or hooks"));
        for b in [0, 99, 60_001] {
            assert_eq!(
                refused(req(&["/data"], false, Some(b))).1,
                "thaw_budget_ms must be between 100 and 60000",
                "{b}"
            );
        }
    }
}
