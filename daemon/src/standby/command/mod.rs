//! The command layer between the HTTP API and the pairs. Each operator action on a pair is a
//! typed [`PairCommand`]; [`execute`] locks the pair's record, resolves what the command names
//! (replay points, stop positions), applies it and says what happened ([`Outcome`]). The API
//! only parses requests into commands and renders outcomes; it maps [`CommandError`] to HTTP
//! in one place.
//!
//! Checks run in a fixed order and the first failure answers, with nothing changed:
//! contradictory parameters and a missing confirmation (naming the parameter), an unknown
//! point, then the pair's state (naming the state).

mod error;
mod lifecycle;
mod outcome;
mod start;

pub use error::CommandError;
pub use outcome::Outcome;

use super::Standby;
use super::pair::PairHandle;
use drpair_types::{PairId, RestartRequest, ResumeRequest, StartRequest};
use std::sync::Arc;

/// An operator action on a pair.
#[derive(Debug)]
pub enum PairCommand {
    /// Stop shipping; the agent keeps tracking changes. Allowed where the pair's state
    /// machine allows `PairOp::Pause`.
    Pause,
    /// Resume from paused or stopped. In the dump workflow, `resync` resumes in resync mode,
    /// `resync` + `reinit` (confirmed) re-initialises, and a plain resume abandons the dump.
    Resume {
        /// The request as given.
        request: ResumeRequest,
        /// Why the body is not bare (`{}` or empty), if it is not: a plain resume takes no
        /// parameters, and is refused naming `body` with this message.
        not_bare: Option<String>,
    },
    /// Stop by the operator. Allowed where the state machine allows `PairOp::Stop`.
    Stop,
    /// Restart in a new lineage (confirmed): points deleted or kept until the new baseline.
    /// Allowed where the state machine allows `PairOp::Restart`.
    Restart(RestartRequest),
    /// Start (`PairOp::Start`), resume (`PairOp::Resume`; with a from position a confirmed
    /// replay, `PairOp::Replay`, which the agent's change history must reach) or reload (a
    /// confirmed restart), optionally with a stop position; a running pair given only a stop
    /// position keeps running.
    Start(StartRequest),
    /// Take disks that only grew (state *Configuration changed*) without a restart.
    AdoptGrowth,
}

/// Deletes pair `id` (confirmed by its id): points, records and the chunks only it used.
pub async fn delete(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    id: &PairId,
    confirm: Option<&str>,
    by: &str,
) -> Result<drpair_types::PairDeletion, CommandError> {
    lifecycle::confirmed(id, confirm, "deleting a pair deletes every recovery point of it and its records")?;
    let d = super::delete::delete(sb, h, id, by).await.map_err(|e| CommandError::op(id, e))?;
    Ok(drpair_types::PairDeletion {
        pair_id: id.clone(),
        points_deleted: d.points,
        chunks_reclaimed: d.chunks_reclaimed,
        bytes_reclaimed: d.bytes_reclaimed,
        message: format!(
            "pair '{id}' deleted: {} recovery point(s) and its records removed, {} chunk(s) only it used reclaimed ({} bytes); its agent is refused and decommissions itself",
            d.points, d.chunks_reclaimed, d.bytes_reclaimed
        ),
    })
}

/// Runs `cmd` on pair `id` (whose handle is `h`).
pub async fn execute(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    id: &PairId,
    cmd: PairCommand,
) -> Result<Outcome, CommandError> {
    match cmd {
        PairCommand::Pause => lifecycle::pause(sb, h, id),
        PairCommand::Resume { request, not_bare } => lifecycle::resume(sb, h, id, request, not_bare).await,
        PairCommand::Stop => lifecycle::stop(sb, h, id),
        PairCommand::Restart(req) => lifecycle::restart(sb, h, id, req).await,
        PairCommand::Start(req) => start::start(sb, h, id, req).await,
        PairCommand::AdoptGrowth => {
            let taken = super::reconfigure::adopt_growth(sb, h).await.map_err(|e| CommandError::op(id, e))?;
            Ok(Outcome::new(
                format!(
                    "pair '{id}' took its grown disks ({}); older points keep their size, the new chunks are copied",
                    taken.join("; ")
                ),
                0,
            ))
        }
    }
}
