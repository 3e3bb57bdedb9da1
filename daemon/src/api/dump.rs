//! The third-party dump workflow over HTTP: `POST /api/v1/pairs/{pair}/{suspend,
//! skip-to-resync-marker, markers/dump, dump/load, resume-apply}` (resume in resync mode is
//! `POST …/resume {"resync": true}`, see `control`), and `GET …/dump`.
//!
//! Checks run in the usual order: unknown pair (404), parameters (400, naming the parameter;
//! for a dump image: it must exist and match the disk), then the pair's state (409, naming
//! the step to take next). A refusal changes nothing.

use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::dump::{self, FlowError};
use crate::standby::pair::PairHandle;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use drpair_types::{
    ActionResponse, DumpMarkerRequest, DumpMarkerResponse, DumpStatus, ErrorCode, LoadDumpRequest, PairStatus,
};

impl From<FlowError> for ApiFailure {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::State(m) => ApiFailure::new(ErrorCode::InvalidPairState, m),
            FlowError::Param(p, m) => ApiFailure::param(p, m),
            FlowError::Timeout(m) => ApiFailure::new(ErrorCode::Timeout, m),
            FlowError::Internal(m) => ApiFailure::internal(m),
        }
    }
}

fn done(h: &PairHandle, message: String) -> Json<ActionResponse> {
    Json(ActionResponse { message, points_deleted: 0, status: h.status() })
}

pub async fn suspend(sb: State<AppState>, Path(pair): Path<String>, raw: Bytes) -> ApiResult<Json<ActionResponse>> {
    let (_, h) = find_pair(&sb, &pair)?;
    super::control::no_params(&raw)?;
    let m = dump::suspend(&sb, &h).await?;
    Ok(done(&h, m))
}

pub async fn skip_to_resync_marker(
    sb: State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    let (_, h) = find_pair(&sb, &pair)?;
    super::control::no_params(&raw)?;
    let m = dump::skip_to_resync_marker(&sb, &h).await?;
    Ok(done(&h, m))
}

pub async fn mark(sb: State<AppState>, Path(pair): Path<String>, raw: Bytes) -> ApiResult<Json<DumpMarkerResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: DumpMarkerRequest = if raw.iter().all(u8::is_ascii_whitespace) {
        DumpMarkerRequest::default()
    } else {
        super::control::body(&raw)?
    };
    let marker = dump::mark(&sb, &h, &req).await?;
    let message = format!(
        "pair '{id}': dump marker recorded at epoch {} (cut at {}); next: drpair resume {id} --resync",
        marker.epoch, marker.time
    );
    Ok(Json(DumpMarkerResponse { message, marker, status: h.status() }))
}

pub async fn load(
    sb: State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<(StatusCode, Json<ActionResponse>)> {
    let (_, h) = find_pair(&sb, &pair)?;
    let req: LoadDumpRequest = super::control::body(&raw)?;
    let m = dump::load(&sb, &h, &req).await?;
    Ok((StatusCode::ACCEPTED, done(&h, m)))
}

pub async fn resume_apply(
    sb: State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    super::control::no_params(&raw)?;
    let p = dump::resume_apply(&sb, &h).await?;
    Ok(done(
        &h,
        format!(
            "pair '{id}': apply resumed; the dump is recovery point {} (dump-marker); the agent ships the chunks changed after it, then the pair is verified against the source",
            p.id
        ),
    ))
}

pub async fn get(sb: State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<DumpStatus>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let s: PairStatus = h.status();
    s.dump.map(Json).ok_or_else(|| {
        ApiFailure::new(
            ErrorCode::NotFound,
            format!("pair '{id}' has no dump workflow; start one with drpair suspend {id}"),
        )
    })
}
