//! Keeping points in shape: pin/unpin, retention policy (and a preview of a proposed one),
//! prune, verification of stored chunks, storage report. Checks run in the usual order:
//! unknown pair or point (404), parameters (400), state (409); a refusal changes nothing.

use super::points::resolve_point;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::pair::{OpError, PairHandle};
use crate::standby::retention::{self, PruneError};
use crate::standby::{storage, verify};
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drpair_retention::Policy;
use drpair_types::{
    ErrorCode, PruneReport, PruneRequest, RecoveryPoint, RetentionUpdate, RetentionView, StorageReport, VerifyRequest,
    VerifyState, VerifyStatus,
};
use std::time::Duration;

/// A JSON body, or a 400 naming what is wrong with it. An empty body is the default.
fn body<T: Default>(b: Result<Json<T>, JsonRejection>) -> ApiResult<T> {
    match b {
        Ok(Json(v)) => Ok(v),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(ApiFailure::param("body", format!("request body: {}", e.body_text()))),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> ApiResult<T> {
    tokio::task::spawn_blocking(f).await.map_err(ApiFailure::internal)
}

pub async fn pin(
    State(sb): State<AppState>,
    Path((pair, point)): Path<(String, String)>,
) -> ApiResult<Json<RecoveryPoint>> {
    set_pin(sb, pair, point, true).await
}

pub async fn unpin(
    State(sb): State<AppState>,
    Path((pair, point)): Path<(String, String)>,
) -> ApiResult<Json<RecoveryPoint>> {
    set_pin(sb, pair, point, false).await
}

async fn set_pin(sb: AppState, pair: String, point: String, pinned: bool) -> ApiResult<Json<RecoveryPoint>> {
    let (pair_no, p) = resolve_point(&sb, &pair, &point).await?;
    if p.pinned == pinned {
        return Ok(Json(p));
    }
    // Read again and write under the marks lock: the point as resolved may be stale by now
    // (a verification may have marked it meanwhile), and its other marks must stay.
    let (store, id) = (sb.store.clone(), p.id);
    let written = blocking(move || {
        let _marks = verify::POINT_MARKS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut q) = store.get_point(pair_no, id)? else {
            return Err(drpair_store::StoreError::PointNotFound { pair_no, id });
        };
        q.pinned = pinned;
        store.update_point(pair_no, &q).map(|()| q)
    })
    .await?
    .map_err(|e| match e {
        drpair_store::StoreError::PointNotFound { id, .. } => {
            ApiFailure::new(ErrorCode::PointNotFound, format!("pair '{pair}' has no recovery point {id} any more"))
        }
        e => ApiFailure::internal(e),
    })?;
    tracing::info!(pair = %pair, point = id, pinned, "recovery point {}", if pinned { "pinned" } else { "unpinned" });
    Ok(Json(written))
}

pub async fn get_retention(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<RetentionView>> {
    let (_, h) = find_pair(&sb, &pair)?;
    Ok(Json(retention::view(&sb, &h)))
}

/// The policy a retention update asks for, checked as `PUT …/retention` and
/// `POST …/retention/preview` both check it: `None` returns the pair to the standby's default.
fn proposed_policy(sb: &AppState, h: &PairHandle, u: &RetentionUpdate) -> ApiResult<Option<Policy>> {
    if u.reset {
        if u.grid.is_some() || u.keep_last.is_some() {
            return Err(ApiFailure::param("reset", "reset returns the pair to the default policy: give it alone"));
        }
        return Ok(None);
    }
    if u.grid.is_none() && u.keep_last.is_none() {
        return Err(ApiFailure::param("body", "give grid, keep_last, or reset"));
    }
    let (current, _) = retention::policy_of(sb, h);
    let grid = match &u.grid {
        Some(g) => g.parse().map_err(|e: drpair_retention::PolicyError| ApiFailure::param("grid", e.to_string()))?,
        None => current.grid,
    };
    let policy = Policy::new(grid, u.keep_last.unwrap_or(current.keep_last))
        .map_err(|e| ApiFailure::param(if u.grid.is_some() { "grid" } else { "keep_last" }, e.to_string()))?;
    Ok(Some(policy))
}

pub async fn put_retention(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    b: Result<Json<RetentionUpdate>, JsonRejection>,
) -> ApiResult<Json<RetentionView>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let u = body(b)?;
    let new = proposed_policy(&sb, &h, &u)?;
    h.update(&sb.store, |rec| {
        rec.retention = new;
        Ok::<_, OpError>(())
    })
    .map_err(|e| ApiFailure::internal(format!("{e:?}")))?;
    let view = retention::view(&sb, &h);
    tracing::info!(pair = %id, grid = %view.grid, keep_last = view.keep_last, default = view.is_default, "retention policy set");
    Ok(Json(view))
}

/// `POST /api/v1/pairs/{pair}/retention/preview`: what the policy a `PUT …/retention` body
/// proposes would remove and keep of the pair's points now, and why (a dry run: `dry_run`
/// is true). Nothing changes: not the pair's policy, not its points, not its last prune, and
/// no task is made.
pub async fn preview_retention(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    b: Result<Json<RetentionUpdate>, JsonRejection>,
) -> ApiResult<Json<PruneReport>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let u = body(b)?;
    let policy = proposed_policy(&sb, &h, &u)?.unwrap_or_else(|| sb.retention.clone());
    let sb2 = sb.clone();
    let report = blocking(move || retention::preview(&sb2, &h, &policy)).await?.map_err(prune_failure)?;
    Ok(Json(report))
}

fn prune_failure(e: PruneError) -> ApiFailure {
    match e {
        PruneError::Busy(m) => ApiFailure::new(ErrorCode::InvalidPairState, m),
        PruneError::Store(m) => ApiFailure::internal(m),
    }
}

pub async fn prune(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    b: Result<Json<PruneRequest>, JsonRejection>,
) -> ApiResult<Json<PruneReport>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let req = body(b)?;
    let sb2 = sb.clone();
    let report = blocking(move || retention::prune(&sb2, &h, req.dry_run, false)).await?.map_err(prune_failure)?;
    Ok(Json(report))
}

pub async fn start_verify(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    b: Result<Json<VerifyRequest>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<VerifyStatus>)> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req = body(b)?;
    if let Some(p) = req.point {
        resolve_point(&sb, &pair, &p.to_string()).await?;
    } else if h.runtime.lock().expect("runtime").points == 0 {
        return Err(ApiFailure::new(
            ErrorCode::InvalidPairState,
            format!("pair '{id}' has no recovery point to verify yet"),
        ));
    }
    let status = verify::start(&sb, &h, req.point, false)
        .map_err(|e| ApiFailure::new(ErrorCode::InvalidPairState, e.to_string()))?;
    if !req.wait {
        let s = status.lock().expect("verify").to_view();
        return Ok((StatusCode::ACCEPTED, Json(s)));
    }
    loop {
        let s = status.lock().expect("verify").to_view();
        if s.state != VerifyState::Running {
            return Ok((StatusCode::OK, Json(s)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn get_verify(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<VerifyStatus>> {
    let (id, h) = find_pair(&sb, &pair)?;
    verify::status(&h).map(Json).ok_or_else(|| {
        ApiFailure::new(
            ErrorCode::NotFound,
            format!("pair '{id}' was never verified; start one with POST /api/v1/pairs/{id}/verify"),
        )
    })
}

pub async fn storage_report(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<StorageReport>> {
    let (_, h) = find_pair(&sb, &pair)?;
    let sb2 = sb.clone();
    Ok(Json(blocking(move || storage::report(&sb2, &h)).await?.map_err(ApiFailure::internal)?))
}
