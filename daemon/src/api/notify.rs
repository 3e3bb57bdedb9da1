//! Notifications: `GET /api/v1/notify` (targets, queue, conditions being told) and
//! `POST /api/v1/notify/test` (`{"target": NAME}` or `{}` for every target): one test
//! notification sent at once, each target's answer in the reply.

use super::control::body;
use super::{ApiFailure, ApiResult, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use drpair_types::ErrorCode;
use drpair_types::notify::{NotifyStatus, NotifyTestReport, NotifyTestRequest};

pub async fn status(State(sb): State<AppState>) -> Json<NotifyStatus> {
    Json(sb.notify.status())
}

pub async fn test(State(sb): State<AppState>, raw: Bytes) -> ApiResult<Json<NotifyTestReport>> {
    let req: NotifyTestRequest = if raw.is_empty() { NotifyTestRequest::default() } else { body(&raw)? };
    let configured = !sb.notify.config().targets.is_empty();
    match sb.notify.test(req.target.as_deref()).await {
        Ok(r) => Ok(Json(r)),
        Err(e) if configured => Err(ApiFailure::new(ErrorCode::NotFound, e)),
        Err(e) => Err(ApiFailure::new(ErrorCode::NotConfigured, e)),
    }
}
