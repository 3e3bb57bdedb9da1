//! `GET/PUT /api/v1/pairs/{pair}/settings` (a pair's own bandwidth limit; operator) and
//! `GET/PUT /api/v1/standby/settings` (the standby-wide limit; admin). A change is in force
//! within a second, on the live connection.

use super::control::body;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::Standby;
use crate::standby::bandwidth;
use crate::standby::pair::{OpError, PairHandle};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use drpair_types::{PairSettings, Schedule, SettingsUpdate, StandbySettings};
use serde::Deserialize;

fn view(h: &PairHandle) -> PairSettings {
    let rec = h.record.lock().expect("record");
    let rt = h.runtime.lock().expect("runtime");
    PairSettings {
        pair_id: rec.pair_id.to_string(),
        bandwidth: rec.bandwidth.clone().unwrap_or_else(|| "unlimited".into()),
        bandwidth_limit_bytes_per_second: (rt.link.limit.0 > 0).then_some(rt.link.limit.0),
    }
}

pub async fn get_pair(State(sb): State<AppState>, Path(pair): Path<String>) -> ApiResult<Json<PairSettings>> {
    let (_, h) = find_pair(&sb, &pair)?;
    Ok(Json(view(&h)))
}

pub async fn put_pair(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<PairSettings>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let u: SettingsUpdate = body(&raw)?;
    let Some(text) = u.bandwidth else {
        return Err(ApiFailure::param("body", "give bandwidth (a rate, a schedule, or \"unlimited\")"));
    };
    let schedule = Schedule::parse(&text).map_err(|e| ApiFailure::param("bandwidth", e))?;
    let setting = (schedule.is_timed() || schedule.at(0, 0).is_some()).then(|| schedule.to_string());
    h.update(&sb.store, |rec| {
        rec.bandwidth = setting.clone();
        Ok::<_, OpError>(())
    })
    .map_err(|e| ApiFailure::internal(format!("{e:?}")))?;
    bandwidth::apply_pair(&sb, &h);
    tracing::info!(pair = %id, bandwidth = %schedule, "bandwidth limit set");
    Ok(Json(view(&h)))
}

/// The standby-wide settings' update.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyUpdate {
    pub bandwidth: Option<String>,
}

pub async fn get_standby(State(sb): State<AppState>) -> Json<StandbySettings> {
    Json(bandwidth::standby_settings(&sb))
}

pub async fn put_standby(State(sb): State<AppState>, raw: Bytes) -> ApiResult<Json<StandbySettings>> {
    let u: StandbyUpdate = body(&raw)?;
    let Some(text) = u.bandwidth else {
        return Err(ApiFailure::param("body", "give bandwidth (a rate, a schedule, or \"unlimited\")"));
    };
    let s = set_standby(&sb, &text)?;
    tracing::info!(bandwidth = %s, "standby-wide bandwidth limit set");
    Ok(Json(bandwidth::standby_settings(&sb)))
}

fn set_standby(sb: &Standby, text: &str) -> ApiResult<Schedule> {
    Schedule::parse(text).map_err(|e| ApiFailure::param("bandwidth", e))?;
    let s = sb.bandwidth.set(text).map_err(ApiFailure::internal)?;
    bandwidth::apply_all(sb);
    Ok(s)
}
