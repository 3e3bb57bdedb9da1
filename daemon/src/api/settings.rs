//! `GET/PUT /api/v1/pairs/{pair}/settings` (a pair's own bandwidth limit and RPO target;
//! operator) and
//! `GET/PUT /api/v1/standby/settings` (the standby-wide limit; admin). A change is in force
//! within a second, on the live connection.

use super::control::body;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::Standby;
use crate::standby::bandwidth;
use crate::standby::pair::{OpError, PairHandle, rpo};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use drpair_types::rpo::{RpoSetting, parse_rpo, parse_rpo_setting, rpo_text};
use drpair_types::{PairSettings, RpoTargetSource, Schedule, SettingsUpdate, StandbySettings};
use serde::Deserialize;

fn view(h: &PairHandle) -> PairSettings {
    let rec = h.record.lock().expect("record");
    let rt = h.runtime.lock().expect("runtime");
    let rpo = rpo::in_force(&rec, rt.rpo_default);
    PairSettings {
        pair_id: rec.pair_id.to_string(),
        bandwidth: rec.bandwidth.clone().unwrap_or_else(|| "unlimited".into()),
        bandwidth_limit_bytes_per_second: (rt.link.limit.0 > 0).then_some(rt.link.limit.0),
        rpo_target: rpo.map_or_else(|| "off".into(), |(t, _, _)| rpo_text(t)),
        rpo_target_seconds: rpo.map(|(t, _, _)| t),
        rpo_error_seconds: rpo.map(|(_, e, _)| e),
        // The pair's own `off` decides too (over a default).
        rpo_target_source: rpo.map(|(_, _, s)| s).or(rec.rpo_target_off.then_some(RpoTargetSource::Pair)),
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
    if u.bandwidth.is_none() && u.rpo_target.is_none() && u.rpo_error.is_none() {
        return Err(ApiFailure::param(
            "body",
            "give bandwidth (a rate, a schedule, or \"unlimited\"), rpo_target or rpo_error (30s, 5m, 2h, 1d, off, or default)",
        ));
    }
    // Everything is checked before anything changes.
    let bandwidth = match &u.bandwidth {
        Some(text) => {
            let schedule = Schedule::parse(text).map_err(|e| ApiFailure::param("bandwidth", e))?;
            let setting = (schedule.is_timed() || schedule.at(0, 0).is_some()).then(|| schedule.to_string());
            Some((schedule, setting))
        }
        None => None,
    };
    let rpo = rpo_update(&h, &u)?;
    h.update(&sb.store, |rec| {
        if let Some((_, setting)) = &bandwidth {
            rec.bandwidth = setting.clone();
        }
        if let Some(r) = rpo {
            rec.rpo_target_secs = r.target;
            rec.rpo_error_secs = r.error;
            rec.rpo_target_off = r.off;
        }
        Ok::<_, OpError>(())
    })
    .map_err(|e| ApiFailure::internal(format!("{e:?}")))?;
    if let Some((schedule, _)) = &bandwidth {
        bandwidth::apply_pair(&sb, &h);
        tracing::info!(pair = %id, bandwidth = %schedule, "bandwidth limit set");
    }
    if let Some(r) = rpo {
        h.runtime.lock().expect("runtime").rpo_seen = None;
        let text = |s: Option<u64>| s.map_or_else(|| "default".to_string(), rpo_text);
        let target = if r.off { "off".to_string() } else { text(r.target) };
        tracing::info!(pair = %id, rpo_target = %target, rpo_error = %text(r.error), "RPO target set");
    }
    Ok(Json(view(&h)))
}

/// A pair's own RPO setting as an update leaves it.
#[derive(Debug, Clone, Copy)]
struct RpoUpdate {
    target: Option<u64>,
    error: Option<u64>,
    off: bool,
}

/// The pair's own RPO target, error threshold and `off` after `u` (None: `u` leaves them as
/// they are). `default` drops the pair's own target (the standby's default applies), `off`
/// sets none even over a default. The error threshold must be over the target and needs a
/// target of the pair's own; a target changed or turned off takes its threshold along.
fn rpo_update(h: &PairHandle, u: &SettingsUpdate) -> ApiResult<Option<RpoUpdate>> {
    if u.rpo_target.is_none() && u.rpo_error.is_none() {
        return Ok(None);
    }
    let rec = h.record.lock().expect("record").clone();
    let (target, off) = match &u.rpo_target {
        Some(t) => match parse_rpo_setting(t).map_err(|e| ApiFailure::param("rpo_target", e))? {
            RpoSetting::Seconds(s) => (Some(s), false),
            RpoSetting::Off => (None, true),
            RpoSetting::Default => (None, false),
        },
        None => (rec.rpo_target_secs, rec.rpo_target_off),
    };
    let error = match &u.rpo_error {
        Some(t) if t.trim().eq_ignore_ascii_case("default") => None,
        Some(t) => parse_rpo(t).map_err(|e| ApiFailure::param("rpo_error", e))?,
        None if u.rpo_target.is_some() => None,
        None => rec.rpo_error_secs,
    };
    match (target, error) {
        (None, Some(_)) => Err(ApiFailure::param(
            "rpo_error",
            "an error threshold needs an RPO target of the pair's own: set rpo_target too",
        )),
        (Some(t), Some(e)) if e <= t => Err(ApiFailure::param(
            "rpo_error",
            format!("the error threshold ({}) must be over the target ({})", rpo_text(e), rpo_text(t)),
        )),
        (target, error) => Ok(Some(RpoUpdate { target, error, off })),
    }
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
