//! A pair whose agent came back with other disks (state *Configuration changed*): taking
//! disks that only grew without a restart (`drpair pairs adopt-growth`). A restart takes any
//! change (`control::restart`); both record the old disks as the era of the older points, so
//! a point exported from before keeps its size.

use super::Standby;
use super::control::quiesce;
use super::pair::{OpError, PairHandle};
use drpair_pair::{PairOp, Refusal};
use drpair_types::DiskChangeKind;
use std::sync::Arc;

/// Takes the grown disks the agent offers: the points up to now keep their size, the next
/// epoch ships the new chunks (and a formerly partial last chunk) and is cut with the new
/// sizes. The agent's connection is ended first, so that it comes back to a session sized
/// for the new disks. Returns what was taken, disk by disk.
pub async fn adopt_growth(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Result<Vec<String>, OpError> {
    let check = |rec: &super::pair::PairRecord| -> Result<Vec<String>, OpError> {
        rec.lifecycle.apply(PairOp::AdoptGrowth)?;
        let change = rec.configuration_change().ok_or_else(|| {
            OpError::Refused(Refusal {
                state: rec.lifecycle.state,
                message: "the agent's new disks are not known yet: wait for it to connect".into(),
            })
        })?;
        if let Some(c) = change.changes.iter().find(|c| c.change != DiskChangeKind::Grown) {
            return Err(OpError::Refused(Refusal {
                state: rec.lifecycle.state,
                message: format!(
                    "{}: only disks that grew can be taken without a restart; `drpair restart {}` takes the new disks (a new baseline)",
                    c.describe(),
                    rec.pair_id
                ),
            }));
        }
        Ok(change.changes.iter().map(|c| c.describe()).collect())
    };
    // Refuse before ending any connection.
    check(&h.record.lock().expect("record"))?;
    let _guard = quiesce(h, "an operator adopted the pair's grown disks; reconnect with the new sizes").await?;
    let taken = h.update(&sb.store, |rec| {
        let taken = check(rec)?;
        let offered = rec.reconfigured.take().map(|r| r.offered).unwrap_or_default();
        rec.take_disks(offered);
        rec.lifecycle = rec.lifecycle.apply(PairOp::AdoptGrowth)?;
        Ok::<_, OpError>(taken)
    })?;
    let pair = h.record.lock().expect("record").pair_id.clone();
    tracing::warn!(%pair, "grown disks adopted without a restart: {}", taken.join("; "));
    h.send_run_mode();
    Ok(taken)
}
