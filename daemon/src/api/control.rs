//! Driving a pair: `POST /api/v1/pairs/{pair}/{restart,start,pause,resume,stop}`.
//!
//! Checks run in a fixed order and the first failure answers, with nothing changed:
//! unknown pair (404), malformed or contradictory parameters and a missing confirmation
//! (400, naming the parameter), an unknown point (404), then the pair's state (409, naming
//! the state).

use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::control::{self, RestartOpts};
use crate::standby::dump;
use crate::standby::pair::{OpError, PairHandle, StopAtRecord};
use crate::timefmt::{now_ms, rfc3339_ms};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use drpair_pair::PairOp;
use drpair_types::{
    ActionResponse, Checkpoint, ErrorCode, PairId, PointSpec, RecoveryPoint, RestartRequest, ResumeRequest,
    StartRequest, StartType, StopReason, parse_time_ms,
};
use std::sync::Arc;

fn op_failure(id: &PairId, e: OpError) -> ApiFailure {
    match e {
        OpError::Refused(r) => ApiFailure::new(ErrorCode::InvalidPairState, format!("pair '{id}': {r}")),
        OpError::Store(m) => ApiFailure::internal(format!("pair '{id}': {m}")),
    }
}

/// A JSON object body as `T` (serde would also take an array for a struct: refused here).
pub(super) fn body<T: serde::de::DeserializeOwned>(raw: &Bytes) -> ApiResult<T> {
    let bad = |m: String| ApiFailure::param("body", format!("request body: {m}"));
    let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    if !v.is_object() {
        return Err(bad("expected a JSON object".into()));
    }
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// Pause, resume and stop take no parameters: an empty body or `{}`.
pub(super) fn no_params(raw: &Bytes) -> ApiResult<()> {
    let text = std::str::from_utf8(raw).map_err(|_| ApiFailure::param("body", "request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(());
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(m) if m.is_empty() => Ok(()),
        Ok(m) => Err(ApiFailure::param(
            "body",
            format!("unknown field '{}': this action takes no parameters", m.keys().next().expect("non-empty")),
        )),
        Err(e) => Err(ApiFailure::param("body", format!("request body: {e}"))),
    }
}

/// A destructive action must name the pair it destroys.
fn confirmed(id: &PairId, confirm: Option<&str>, what: &str) -> ApiResult<()> {
    match confirm {
        Some(c) if c == id.as_str() => Ok(()),
        Some(c) => Err(ApiFailure::param(
            "confirm",
            format!("confirm is '{c}', not the pair id '{id}'; {what}: confirm with {{\"confirm\": \"{id}\"}}"),
        )),
        None => Err(ApiFailure::param("confirm", format!("{what}: confirm with {{\"confirm\": \"{id}\"}}"))),
    }
}

fn answer(h: &PairHandle, message: String, points_deleted: u64) -> Json<ActionResponse> {
    Json(ActionResponse { message, points_deleted, status: h.status() })
}

async fn simple(sb: AppState, pair: String, raw: Bytes, op: PairOp, done: &str) -> ApiResult<Json<ActionResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    no_params(&raw)?;
    let l = h.apply(&sb.store, op).map_err(|e| op_failure(&id, e))?;
    h.send_run_mode();
    Ok(answer(&h, format!("pair '{id}' {done}; state: {}", l.state.label()), 0))
}

pub async fn pause(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    simple(sb, pair, raw, PairOp::Pause, "paused: nothing is shipped, the agent keeps tracking changes").await
}

/// Resume: from paused or stopped; in the dump workflow, `{"resync": true}` resumes in resync
/// mode (the agent sends its resync and dump markers), `{"resync": true, "reinit": true,
/// "confirm": PAIR}` re-initialises (a full restart), and a plain resume abandons the dump.
pub async fn resume(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: ResumeRequest =
        if raw.iter().all(u8::is_ascii_whitespace) { ResumeRequest::default() } else { body(&raw)? };
    if req.reinit && !req.resync {
        return Err(ApiFailure::param(
            "reinit",
            "reinit goes with resync (`drpair resume PAIR --resync --reinit --force`)",
        ));
    }
    if req.confirm.is_some() && !req.reinit {
        return Err(ApiFailure::param("confirm", "confirm goes with reinit"));
    }
    if req.reinit {
        confirmed(
            &id,
            req.confirm.as_deref(),
            "re-initialising deletes every recovery point of the pair and copies everything again",
        )?;
        let n = dump::reinit(&sb, &h).await?;
        h.send_run_mode();
        return Ok(answer(&h, restart_message(&id, n, RestartOpts::default()), n));
    }
    if req.resync {
        let m = dump::resync(&sb, &h).await?;
        return Ok(answer(
            &h,
            format!(
                "pair '{id}': resync marker received and processed; dump marker processed (epoch {}): apply is suspended until the dump is loaded. Next: drpair standby load-dump {id} --disk N --image FILE, then drpair standby resume-apply {id}",
                m.epoch
            ),
            0,
        ));
    }
    let state = h.record.lock().expect("record").lifecycle.state;
    if state.in_dump_workflow() {
        let m = dump::abandon(&sb, &h).await?;
        h.send_run_mode();
        return Ok(answer(&h, m, 0));
    }
    simple(sb, pair, raw, PairOp::Resume, "resumed from its recovery checkpoint").await
}

pub async fn stop(State(sb): State<AppState>, Path(pair): Path<String>, raw: Bytes) -> ApiResult<Json<ActionResponse>> {
    simple(sb, pair, raw, PairOp::Stop(StopReason::StoppedByUser), "stopped").await
}

const RESTART_WARNING: &str = "restarting deletes every recovery point of the pair";

fn restart_message(id: &PairId, deleted: u64, opts: RestartOpts) -> String {
    let kept = if opts.keep_points {
        "the old points are kept read-only until the new baseline completes".to_string()
    } else {
        format!("{deleted} recovery point(s) deleted")
    };
    let how =
        if opts.full_copy { "every chunk's bytes" } else { "every chunk (those the standby holds as verified hashes)" };
    format!(
        "pair '{id}' restarted in a new lineage: {kept}; copying {how}; not ready for failover until the new baseline completes"
    )
}

pub async fn restart(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: RestartRequest = body(&raw)?;
    confirmed(&id, Some(req.confirm.as_str()).filter(|c| !c.is_empty()), RESTART_WARNING)?;
    let opts = RestartOpts { full_copy: req.full_copy, keep_points: req.keep_points_until_synced };
    let deleted = control::restart(&sb, &h, opts).await.map_err(|e| op_failure(&id, e))?;
    Ok(answer(&h, restart_message(&id, deleted, opts), deleted))
}

/// The start request, checked: times parsed, contradictions refused.
struct StartPlan {
    from_time_ms: Option<u64>,
    stop_at: Option<StopAtRecord>,
}

fn plan_start(req: &StartRequest, committed_or_floor: u64) -> ApiResult<StartPlan> {
    let time = |name: &str, v: &Option<String>| -> ApiResult<Option<u64>> {
        v.as_deref().map(|t| parse_time_ms(t).map_err(|e| ApiFailure::param(name, e))).transpose()
    };
    if req.from_point.is_some() && req.from_time.is_some() {
        return Err(ApiFailure::param("from_time", "give from_point or from_time, not both"));
    }
    if req.stop_at_point.is_some() && req.stop_at_time.is_some() {
        return Err(ApiFailure::param("stop_at_time", "give stop_at_point or stop_at_time, not both"));
    }
    let from_time_ms = time("from_time", &req.from_time)?;
    let stop_time = time("stop_at_time", &req.stop_at_time)?;
    let from_param = if req.from_point.is_some() { "from_point" } else { "from_time" };
    let has_from = req.from_point.is_some() || req.from_time.is_some();
    match req.start_type {
        StartType::Start if has_from => {
            return Err(ApiFailure::param(
                from_param,
                "a first start has no recovery point to replay from; a from position goes with type resume",
            ));
        }
        StartType::Reload if has_from => {
            return Err(ApiFailure::param(
                from_param,
                "reload copies everything again; a from position goes with type resume",
            ));
        }
        StartType::Start | StartType::Resume if req.full_copy || req.keep_points_until_synced => {
            let p = if req.full_copy { "full_copy" } else { "keep_points_until_synced" };
            return Err(ApiFailure::param(p, format!("{p} applies to type reload only")));
        }
        _ => {}
    }
    if let Some(p) = req.stop_at_point
        && p <= committed_or_floor
    {
        return Err(ApiFailure::param(
            "stop_at_point",
            format!(
                "point {p} is not ahead of the pair (its newest epoch is {committed_or_floor}); give a later point"
            ),
        ));
    }
    if let Some(t) = stop_time
        && t <= now_ms()
    {
        return Err(ApiFailure::param(
            "stop_at_time",
            format!("{} is not in the future (now is {})", rfc3339_ms(t), rfc3339_ms(now_ms())),
        ));
    }
    let stop_at = (req.stop_at_point.is_some() || stop_time.is_some())
        .then(|| StopAtRecord { point: req.stop_at_point, time_unix_ms: stop_time });
    Ok(StartPlan { from_time_ms, stop_at })
}

/// Finds the replay point of a start request (current lineage only).
async fn replay_point(
    sb: &AppState,
    h: &PairHandle,
    id: &PairId,
    req: &StartRequest,
    plan: &StartPlan,
) -> ApiResult<Option<RecoveryPoint>> {
    let (pair_no, lineage) = {
        let r = h.record.lock().expect("record");
        (r.pair_no, r.lineage)
    };
    let store = sb.store.clone();
    let points = tokio::task::spawn_blocking(move || store.list_points(pair_no))
        .await
        .map_err(ApiFailure::internal)?
        .map_err(ApiFailure::internal)?;
    let points: Vec<RecoveryPoint> = points.into_iter().filter(|p| p.lineage == lineage).collect();
    if let Some(t) = plan.from_time_ms {
        let p = control::point_at_or_before(&points, t).cloned().ok_or_else(|| {
            let oldest = points
                .first()
                .map(|p| format!("the oldest is {} at {}", p.id, p.time))
                .unwrap_or_else(|| "it has none".into());
            ApiFailure::param(
                "from_time",
                format!("pair '{id}' has no recovery point at or before {}; {oldest}", rfc3339_ms(t)),
            )
        })?;
        return Ok(Some(p));
    }
    let wanted = match &req.from_point {
        None => return Ok(None),
        Some(PointSpec::Id(n)) => *n,
        Some(PointSpec::Text(t)) if t.contains(':') => {
            let c: Checkpoint = t.parse().map_err(|e| ApiFailure::param("from_point", format!("'{t}': {e}")))?;
            if c.lineage != lineage {
                return Err(ApiFailure::param(
                    "from_point",
                    format!(
                        "checkpoint '{t}' is from lineage {}, but pair '{id}' is in lineage {lineage} (it was restarted since)",
                        c.lineage
                    ),
                ));
            }
            c.epoch
        }
        Some(PointSpec::Text(t)) => t.trim().parse().map_err(|_| {
            ApiFailure::param("from_point", format!("'{t}' is not a point id or a recovery checkpoint LINEAGE:EPOCH"))
        })?,
    };
    points.into_iter().find(|p| p.id == wanted).map(Some).ok_or_else(|| {
        ApiFailure::new(
            ErrorCode::PointNotFound,
            format!("pair '{id}' has no recovery point {wanted} in its current lineage"),
        )
    })
}

pub async fn start(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let req: StartRequest = body(&raw)?;
    let head = {
        let r = h.record.lock().expect("record");
        if req.start_type == StartType::Reload { r.committed.max(r.epoch_floor) } else { r.committed }
    };
    let plan = plan_start(&req, head)?;
    let from = replay_point(&sb, &h, &id, &req, &plan).await?;
    match req.start_type {
        StartType::Reload => confirmed(&id, req.confirm.as_deref(), RESTART_WARNING)?,
        _ if from.is_some() => {
            confirmed(&id, req.confirm.as_deref(), "a replay deletes the recovery points after the from position")?
        }
        _ => {}
    }
    let (message, deleted) = match (req.start_type, &from) {
        (StartType::Start, _) => {
            let l = h.apply(&sb.store, PairOp::Start).map_err(|e| op_failure(&id, e))?;
            (format!("pair '{id}' started: the first copy begins; state: {}", l.state.label()), 0)
        }
        (StartType::Resume, None) => {
            let running = !h.record.lock().expect("record").lifecycle.holds();
            if running && plan.stop_at.is_some() {
                // A running pair only takes the new stop position.
                (format!("pair '{id}' keeps running; it stops at the stop position"), 0)
            } else {
                let l = h.apply(&sb.store, PairOp::Resume).map_err(|e| op_failure(&id, e))?;
                (format!("pair '{id}' resumed from its recovery checkpoint; state: {}", l.state.label()), 0)
            }
        }
        (StartType::Resume, Some(p)) => {
            // Refuse on the state before the history: a pair that cannot replay at all says so.
            h.record.lock().expect("record").lifecycle.apply(PairOp::Replay).map_err(|e| op_failure(&id, e.into()))?;
            let history = h.record.lock().expect("record").agent_history_from;
            control::history_reaches(history, p.epoch)
                .map_err(|m| ApiFailure::new(ErrorCode::InvalidPairState, format!("pair '{id}': {m}")))?;
            let n = control::replay(&sb, &h, p).await.map_err(|e| op_failure(&id, e))?;
            (
                format!(
                    "pair '{id}' replays from point {}: {n} later point(s) deleted; the agent ships again every chunk changed since",
                    p.id
                ),
                n,
            )
        }
        (StartType::Reload, _) => {
            let opts = RestartOpts { full_copy: req.full_copy, keep_points: req.keep_points_until_synced };
            let n = control::restart(&sb, &h, opts).await.map_err(|e| op_failure(&id, e))?;
            (restart_message(&id, n, opts), n)
        }
    };
    if let Some(at) = plan.stop_at {
        set_stop_at(&sb, &h, &id, at)?;
    }
    h.send_run_mode();
    Ok(answer(&h, message, deleted))
}

fn set_stop_at(sb: &AppState, h: &Arc<PairHandle>, id: &PairId, at: StopAtRecord) -> ApiResult<()> {
    h.update(&sb.store, |rec| {
        rec.stop_at = Some(at);
        Ok(())
    })
    .map_err(|e| op_failure(id, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(t: StartType) -> StartRequest {
        StartRequest {
            start_type: t,
            from_point: None,
            from_time: None,
            stop_at_point: None,
            stop_at_time: None,
            confirm: None,
            full_copy: false,
            keep_points_until_synced: false,
        }
    }

    fn param_of(r: ApiResult<StartPlan>) -> String {
        match r {
            Err(ApiFailure(e)) => {
                assert_eq!(e.code, ErrorCode::InvalidParameter);
                e.parameter.unwrap()
            }
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn contradictions_name_the_parameter() {
        let mut r = req(StartType::Resume);
        r.from_point = Some(PointSpec::Id(3));
        r.from_time = Some("2026-01-01T00:00:00Z".into());
        assert_eq!(param_of(plan_start(&r, 5)), "from_time");
        let mut r = req(StartType::Start);
        r.from_point = Some(PointSpec::Id(3));
        assert_eq!(param_of(plan_start(&r, 5)), "from_point");
        let mut r = req(StartType::Reload);
        r.from_time = Some("2026-01-01T00:00:00Z".into());
        assert_eq!(param_of(plan_start(&r, 5)), "from_time");
        let mut r = req(StartType::Resume);
        r.full_copy = true;
        assert_eq!(param_of(plan_start(&r, 5)), "full_copy");
        let mut r = req(StartType::Resume);
        r.stop_at_point = Some(5);
        assert_eq!(param_of(plan_start(&r, 5)), "stop_at_point");
        r.stop_at_point = Some(6);
        assert!(plan_start(&r, 5).unwrap().stop_at.is_some());
        let mut r = req(StartType::Resume);
        r.stop_at_time = Some("2001-01-01T00:00:00Z".into());
        assert_eq!(param_of(plan_start(&r, 5)), "stop_at_time");
        r.stop_at_time = Some("soon".into());
        assert_eq!(param_of(plan_start(&r, 5)), "stop_at_time");
        r.stop_at_point = Some(9);
        assert_eq!(param_of(plan_start(&r, 5)), "stop_at_time");
    }

    #[test]
    fn confirmation_must_name_the_pair() {
        let id = PairId::new("web-01").unwrap();
        assert!(confirmed(&id, Some("web-01"), "x").is_ok());
        for c in [None, Some("web-02"), Some("")] {
            let ApiFailure(e) = confirmed(&id, c, "x").unwrap_err();
            assert_eq!(e.parameter.as_deref(), Some("confirm"));
        }
    }

    #[test]
    fn bodies_are_json_objects() {
        for bad in ["[]", "[\"web-01\"]", "\"web-01\"", "{\"confirm\":1}", "{\"confirm\":\"a\",\"x\":1}", "{"] {
            let Err(ApiFailure(e)) = body::<RestartRequest>(&Bytes::from(bad)) else { panic!("{bad} accepted") };
            assert_eq!(e.parameter.as_deref(), Some("body"), "{bad}");
        }
        let r: RestartRequest = body(&Bytes::from("{}")).unwrap();
        assert!(r.confirm.is_empty(), "a missing confirm is refused by the confirmation check, naming it");
    }

    #[test]
    fn empty_bodies_only() {
        for ok in ["", "  ", "{}", " { } "] {
            assert!(no_params(&Bytes::from(ok)).is_ok(), "{ok:?}");
        }
        for bad in ["{\"x\":1}", "[", "nope"] {
            assert!(no_params(&Bytes::from(bad)).is_err(), "{bad:?}");
        }
    }
}
