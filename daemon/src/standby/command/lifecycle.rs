//! Pause, resume, stop and restart: the pair's state changes that need no position.

use super::super::Standby;
use super::super::control::{self, RestartOpts};
use super::super::dump;
use super::super::pair::PairHandle;
use super::{CommandError, Outcome};
use drpair_pair::PairOp;
use drpair_types::{PairId, RestartRequest, ResumeRequest, StopReason};
use std::sync::Arc;

/// Applies `op`, tells the agent, and says the pair is `done`.
fn simple(sb: &Arc<Standby>, h: &PairHandle, id: &PairId, op: PairOp, done: &str) -> Result<Outcome, CommandError> {
    let l = h.apply(&sb.store, op).map_err(|e| CommandError::op(id, e))?;
    h.send_run_mode();
    Ok(Outcome::new(format!("pair '{id}' {done}; state: {}", l.state.label()), 0))
}

pub(super) fn pause(sb: &Arc<Standby>, h: &PairHandle, id: &PairId) -> Result<Outcome, CommandError> {
    simple(sb, h, id, PairOp::Pause, "paused: nothing is shipped, the agent keeps tracking changes")
}

pub(super) fn stop(sb: &Arc<Standby>, h: &PairHandle, id: &PairId) -> Result<Outcome, CommandError> {
    simple(sb, h, id, PairOp::Stop(StopReason::Normal), "stopped")
}

/// Resume: from paused or stopped; in the dump workflow, `resync` resumes in resync mode (the
/// agent sends its resync and dump markers), `resync` + `reinit` + `confirm` re-initialises (a
/// full restart), and a plain resume abandons the dump.
pub(super) async fn resume(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    id: &PairId,
    req: ResumeRequest,
    not_bare: Option<String>,
) -> Result<Outcome, CommandError> {
    if req.reinit && !req.resync {
        return Err(CommandError::param(
            "reinit",
            "reinit goes with resync (`drpair resume PAIR --resync --reinit --force`)",
        ));
    }
    if req.confirm.is_some() && !req.reinit {
        return Err(CommandError::param("confirm", "confirm goes with reinit"));
    }
    if req.reinit {
        confirmed(
            id,
            req.confirm.as_deref(),
            "re-initialising deletes every recovery point of the pair and copies everything again",
        )?;
        let n = dump::reinit(sb, h).await?;
        h.send_run_mode();
        return Ok(Outcome::new(restart_message(id, n, RestartOpts::default()), n));
    }
    if req.resync {
        let m = dump::resync(sb, h).await?;
        return Ok(Outcome::new(
            format!(
                "pair '{id}': resync marker received and processed; dump marker processed (epoch {}): apply is suspended until the dump is loaded. Next: drpair standby load-dump {id} --disk N --image FILE, then drpair standby resume-apply {id}",
                m.epoch
            ),
            0,
        ));
    }
    let state = h.record.lock().expect("record").lifecycle.state;
    if state.in_dump_workflow() {
        let m = dump::abandon(sb, h).await?;
        h.send_run_mode();
        return Ok(Outcome::new(m, 0));
    }
    if let Some(m) = not_bare {
        return Err(CommandError::param("body", m));
    }
    simple(sb, h, id, PairOp::Resume, "resumed from its recovery checkpoint")
}

pub(super) const RESTART_WARNING: &str = "restarting deletes every recovery point of the pair";

/// A destructive action must name the pair it destroys.
pub(crate) fn confirmed(id: &PairId, confirm: Option<&str>, what: &str) -> Result<(), CommandError> {
    match confirm {
        Some(c) if c == id.as_str() => Ok(()),
        Some(c) => Err(CommandError::param(
            "confirm",
            format!("confirm is '{c}', not the pair id '{id}'; {what}: confirm with {{\"confirm\": \"{id}\"}}"),
        )),
        None => Err(CommandError::param("confirm", format!("{what}: confirm with {{\"confirm\": \"{id}\"}}"))),
    }
}

pub(super) fn restart_message(id: &PairId, deleted: u64, opts: RestartOpts) -> String {
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

pub(super) async fn restart(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    id: &PairId,
    req: RestartRequest,
) -> Result<Outcome, CommandError> {
    confirmed(id, Some(req.confirm.as_str()).filter(|c| !c.is_empty()), RESTART_WARNING)?;
    let opts = RestartOpts { full_copy: req.full_copy, keep_points: req.keep_points_until_synced };
    let deleted = control::restart(sb, h, opts).await.map_err(|e| CommandError::op(id, e))?;
    Ok(Outcome::new(restart_message(id, deleted, opts), deleted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::ErrorCode;

    #[test]
    fn confirmation_must_name_the_pair() {
        let id = PairId::new("web-01").unwrap();
        assert!(confirmed(&id, Some("web-01"), "x").is_ok());
        for c in [None, Some("web-02"), Some("")] {
            let e = confirmed(&id, c, "x").unwrap_err();
            assert_eq!(e.parameter(), Some("confirm"));
            assert_eq!(e.code(), ErrorCode::InvalidParameter);
        }
    }
}
