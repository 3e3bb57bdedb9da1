//! Deleting a pair (`drpair pairs delete PAIR`): its points, version index, drill records and
//! record are removed, the chunks no other pair refers to reclaimed, and its agent refused from
//! then on with the reason (it holds, and decommissions itself: tracefs instance and change
//! maps removed). Refused while a drill serves one of its points or a failover or failback
//! uses it.
//!
//! Crash-safe order: the tombstone first (an agent coming back meanwhile is refused, not
//! registered anew), then the history in one synced batch, then the record; a crash in between
//! leaves a record without points that a second delete finishes.

use super::Standby;
use super::control::{blocking, quiesce};
use super::pair::{OpError, PairHandle};
use drpair_pair::Refusal;
use drpair_types::{PairId, PairState};
use std::sync::Arc;

/// What a delete removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deleted {
    pub points: u64,
    pub chunks_reclaimed: u64,
    pub bytes_reclaimed: u64,
}

fn refused(state: PairState, message: String) -> OpError {
    OpError::Refused(Refusal { state, message })
}

/// Why the pair cannot be deleted now, if it cannot.
fn in_use(sb: &Standby, h: &PairHandle, id: &PairId) -> Result<(), OpError> {
    let state = h.record.lock().expect("record").lifecycle.state;
    if matches!(state, PairState::FailedOver | PairState::FailingBack) {
        return Err(refused(
            state,
            format!(
                "cannot delete a pair that is {}: the standby's side is the source now; fail back first",
                state.label()
            ),
        ));
    }
    {
        let rt = h.runtime.lock().expect("runtime");
        if rt.failover.is_some() || rt.failback.is_some() {
            return Err(refused(state, format!("cannot delete pair '{id}': a failover or failback is running")));
        }
    }
    let drills: Vec<String> = sb.drills.running().into_iter().filter(|d| &d.pair_id == id).map(|d| d.id).collect();
    if !drills.is_empty() {
        return Err(refused(
            state,
            format!("cannot delete pair '{id}': drill(s) {} serve its points; stop them first", drills.join(", ")),
        ));
    }
    Ok(())
}

/// Deletes the pair; `by` is who asked (for the agent's refusal and the log).
pub async fn delete(sb: &Arc<Standby>, h: &Arc<PairHandle>, id: &PairId, by: &str) -> Result<Deleted, OpError> {
    in_use(sb, h, id)?;
    let store_err = |e: super::credentials::CredError| OpError::Store(e.to_string());
    sb.credentials.mark_deleted(id, by).map_err(store_err)?;
    let _guard = quiesce(h, "the pair was deleted on the standby").await?;
    // Checked again under the session lock: a drill or failover may have begun meanwhile.
    if let Err(e) = in_use(sb, h, id) {
        sb.credentials.forget_deleted(id).map_err(store_err)?;
        return Err(e);
    }
    let pair_no = h.record.lock().expect("record").pair_no;
    let (store, pid) = (sb.store.clone(), id.clone());
    let points = blocking(move || {
        let n = store.list_points(pair_no)?.len() as u64;
        store.wipe_pair(pair_no)?;
        store.trim_drills(pair_no, 0)?;
        store.delete_pair(&pid)?;
        Ok(n)
    })
    .await?;
    sb.registry.remove(id);
    tracing::warn!(pair = %id, points, by, "pair deleted: its points and records are gone; reclaiming its chunks");
    let store = sb.store.clone();
    let reclaimed = blocking(move || {
        let r = super::retention::reclaim(&store)?;
        store.compact_chunks()?;
        Ok(r)
    })
    .await?;
    tracing::info!(pair = %id, chunks = reclaimed.chunks_deleted, bytes = reclaimed.bytes_freed, "chunks only the deleted pair used are reclaimed");
    Ok(Deleted { points, chunks_reclaimed: reclaimed.chunks_deleted, bytes_reclaimed: reclaimed.bytes_freed })
}
