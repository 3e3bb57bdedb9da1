//! `Start`: the request checked into a plan (times parsed, contradictions refused), the replay
//! point resolved in the current lineage, then start, resume, replay or reload, and the stop
//! position recorded.

use super::super::Standby;
use super::super::control::{self, RestartOpts};
use super::super::pair::{OpError, PairHandle, StopAtRecord};
use super::lifecycle::{RESTART_WARNING, confirmed, restart_message};
use super::{CommandError, Outcome};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::PairOp;
use drpair_types::{Checkpoint, PairId, PointSpec, RecoveryPoint, StartRequest, StartType, StopReason, parse_time_ms};
use std::sync::Arc;

/// The start request, checked: times parsed, contradictions refused.
#[derive(Debug)]
pub(super) struct StartPlan {
    from_time_ms: Option<u64>,
    stop_at: Option<StopAtRecord>,
}

/// Checks a start request against the pair's newest epoch (`committed_or_floor`).
pub(super) fn plan_start(req: &StartRequest, committed_or_floor: u64) -> Result<StartPlan, CommandError> {
    let time = |name: &'static str, v: &Option<String>| -> Result<Option<u64>, CommandError> {
        v.as_deref().map(|t| parse_time_ms(t).map_err(|e| CommandError::param(name, e))).transpose()
    };
    if req.from_point.is_some() && req.from_time.is_some() {
        return Err(CommandError::param("from_time", "give from_point or from_time, not both"));
    }
    let positions = [req.stop_at_point.is_some(), req.stop_at_time.is_some(), req.stop_at_server_time.is_some()];
    if positions.iter().filter(|p| **p).count() > 1 {
        let p = if req.stop_at_server_time.is_some() { "stop_at_server_time" } else { "stop_at_time" };
        return Err(CommandError::param(p, "give one of stop_at_point, stop_at_time and stop_at_server_time"));
    }
    if req.stop_after_full_load && req.full_load_only {
        return Err(CommandError::param("full_load_only", "give full_load_only or stop_after_full_load, not both"));
    }
    let full_load_stop = if req.full_load_only {
        Some(("full_load_only", StopReason::FullLoadOnlyFinished))
    } else if req.stop_after_full_load {
        Some(("stop_after_full_load", StopReason::StoppedAfterFullLoad))
    } else {
        None
    };
    if let Some((p, _)) = full_load_stop
        && !matches!(req.start_type, StartType::Start | StartType::Reload)
    {
        return Err(CommandError::param(p, format!("{p} goes with type start or reload (a full load)")));
    }
    let from_time_ms = time("from_time", &req.from_time)?;
    let stop_time = time("stop_at_time", &req.stop_at_time)?;
    let server_time = time("stop_at_server_time", &req.stop_at_server_time)?;
    let from_param = if req.from_point.is_some() { "from_point" } else { "from_time" };
    let has_from = req.from_point.is_some() || req.from_time.is_some();
    match req.start_type {
        StartType::Start if has_from => {
            return Err(CommandError::param(
                from_param,
                "a first start has no recovery point to replay from; a from position goes with type resume",
            ));
        }
        StartType::Reload if has_from => {
            return Err(CommandError::param(
                from_param,
                "reload copies everything again; a from position goes with type resume",
            ));
        }
        StartType::Start | StartType::Resume if req.full_copy || req.keep_points_until_synced => {
            let p = if req.full_copy { "full_copy" } else { "keep_points_until_synced" };
            return Err(CommandError::param(p, format!("{p} applies to type reload only")));
        }
        _ => {}
    }
    if let Some(p) = req.stop_at_point
        && p <= committed_or_floor
    {
        return Err(CommandError::param(
            "stop_at_point",
            format!(
                "point {p} is not ahead of the pair (its newest epoch is {committed_or_floor}); give a later point"
            ),
        ));
    }
    for (name, t) in [("stop_at_time", stop_time), ("stop_at_server_time", server_time)] {
        if let Some(t) = t
            && t <= now_ms()
        {
            return Err(CommandError::param(
                name,
                format!("{} is not in the future (now is {})", rfc3339_ms(t), rfc3339_ms(now_ms())),
            ));
        }
    }
    let stop_at =
        (req.stop_at_point.is_some() || stop_time.is_some() || server_time.is_some() || full_load_stop.is_some()).then(
            || StopAtRecord {
                point: req.stop_at_point,
                time_unix_ms: stop_time,
                server_time_unix_ms: server_time,
                after_full_load: full_load_stop.map(|(_, r)| r),
            },
        );
    Ok(StartPlan { from_time_ms, stop_at })
}

/// Finds the replay point of a start request (current lineage only).
async fn replay_point(
    sb: &Arc<Standby>,
    h: &PairHandle,
    id: &PairId,
    req: &StartRequest,
    plan: &StartPlan,
) -> Result<Option<RecoveryPoint>, CommandError> {
    let (pair_no, lineage) = {
        let r = h.record.lock().expect("record");
        (r.pair_no, r.lineage)
    };
    let store = sb.store.clone();
    let points = tokio::task::spawn_blocking(move || store.list_points(pair_no))
        .await
        .map_err(CommandError::internal)?
        .map_err(CommandError::internal)?;
    let points: Vec<RecoveryPoint> = points.into_iter().filter(|p| p.lineage == lineage).collect();
    if let Some(t) = plan.from_time_ms {
        let p = control::point_at_or_before(&points, t).cloned().ok_or_else(|| {
            let oldest = points
                .first()
                .map(|p| format!("the oldest is {} at {}", p.id, p.time))
                .unwrap_or_else(|| "it has none".into());
            CommandError::param(
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
            let c: Checkpoint = t.parse().map_err(|e| CommandError::param("from_point", format!("'{t}': {e}")))?;
            if c.lineage != lineage {
                return Err(CommandError::param(
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
            CommandError::param("from_point", format!("'{t}' is not a point id or a recovery checkpoint LINEAGE:EPOCH"))
        })?,
    };
    points.into_iter().find(|p| p.id == wanted).map(Some).ok_or_else(|| {
        CommandError::PointNotFound(format!("pair '{id}' has no recovery point {wanted} in its current lineage"))
    })
}

/// Start, resume, replay or reload, then the stop position.
pub(super) async fn start(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    id: &PairId,
    req: StartRequest,
) -> Result<Outcome, CommandError> {
    let op = |e: OpError| CommandError::op(id, e);
    let head = {
        let r = h.record.lock().expect("record");
        if req.start_type == StartType::Reload { r.committed.max(r.epoch_floor) } else { r.committed }
    };
    let plan = plan_start(&req, head)?;
    let from = replay_point(sb, h, id, &req, &plan).await?;
    match req.start_type {
        StartType::Reload => confirmed(id, req.confirm.as_deref(), RESTART_WARNING)?,
        _ if from.is_some() => {
            confirmed(id, req.confirm.as_deref(), "a replay deletes the recovery points after the from position")?
        }
        _ => {}
    }
    let (message, deleted) = match (req.start_type, &from) {
        (StartType::Start, _) => {
            let l = h.apply(&sb.store, PairOp::Start).map_err(op)?;
            (format!("pair '{id}' started: the first copy begins; state: {}", l.state.label()), 0)
        }
        (StartType::Resume, None) => {
            let running = !h.record.lock().expect("record").lifecycle.holds();
            if running && plan.stop_at.is_some() {
                // A running pair only takes the new stop position.
                (format!("pair '{id}' keeps running; it stops at the stop position"), 0)
            } else {
                let l = h.apply(&sb.store, PairOp::Resume).map_err(op)?;
                (format!("pair '{id}' resumed from its recovery checkpoint; state: {}", l.state.label()), 0)
            }
        }
        (StartType::Resume, Some(p)) => {
            // Refuse on the state before the history: a pair that cannot replay at all says so.
            h.record.lock().expect("record").lifecycle.apply(PairOp::Replay).map_err(|e| op(e.into()))?;
            let history = h.record.lock().expect("record").agent_history_from;
            control::change_history_reaches(history, p.epoch)
                .map_err(|m| CommandError::State(format!("pair '{id}': {m}")))?;
            let n = control::replay(sb, h, p).await.map_err(op)?;
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
            let n = control::restart(sb, h, opts).await.map_err(op)?;
            (restart_message(id, n, opts), n)
        }
    };
    if let Some(at) = plan.stop_at {
        set_stop_at(sb, h, id, at)?;
    }
    h.send_run_mode();
    Ok(Outcome::new(message, deleted))
}

fn set_stop_at(sb: &Standby, h: &PairHandle, id: &PairId, at: StopAtRecord) -> Result<(), CommandError> {
    h.update(&sb.store, |rec| {
        rec.stop_at = Some(at);
        Ok(())
    })
    .map_err(|e| CommandError::op(id, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::ErrorCode;

    fn req(t: StartType) -> StartRequest {
        StartRequest {
            start_type: t,
            from_point: None,
            from_time: None,
            stop_at_point: None,
            stop_at_time: None,
            stop_at_server_time: None,
            stop_after_full_load: false,
            full_load_only: false,
            confirm: None,
            full_copy: false,
            keep_points_until_synced: false,
        }
    }

    fn param_of(r: Result<StartPlan, CommandError>) -> String {
        match r {
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::InvalidParameter);
                e.parameter().unwrap().to_string()
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
}
