//! `suspend` and `standby skip-to-resync-marker`: the first steps of the dump workflow.

use super::errors::Res;
use super::flow::{agent_back, dump_of, from_op, record, refused, update};
use super::record::DumpRecord;
use crate::standby::Standby;
use crate::standby::control::{self};
use crate::standby::pair::PairHandle;
use drpair_pair::PairOp;
use drpair_types::DumpStep;
use std::sync::Arc;

/// `suspend`: the agent stops shipping without its checkpoint moving (an epoch in flight is
/// abandoned, not committed); tracking goes on.
pub async fn suspend(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<String> {
    let before = record(h);
    before.lifecycle.apply(PairOp::Suspend).map_err(|r| refused(&before, r))?;
    let was_connected = h.runtime.lock().expect("runtime").session.is_some();
    let _guard = control::quiesce(h, "suspended for a third-party dump; reconnect to hold")
        .await
        .map_err(|e| from_op(&before, e))?;
    let id = update(sb, h, |rec| {
        rec.lifecycle = rec.lifecycle.apply(PairOp::Suspend).map_err(|r| refused(rec, r))?;
        let mut d = DumpRecord::new(rec.committed, rec.disks.len());
        let checkpoint = match rec.committed {
            0 => "no recovery point yet: the dump seeds the pair".to_string(),
            c => format!("recovery checkpoint epoch {c}"),
        };
        d.note(
            &rec.pair_id,
            format!(
                "suspended for a third-party dump: the agent ships nothing and keeps its {checkpoint}; tracking goes on"
            ),
        );
        rec.dump = Some(d);
        Ok(rec.pair_id.clone())
    })?;
    h.runtime.lock().expect("runtime").progress = Default::default();
    drop(_guard);
    // The agent learns of the suspension when it reconnects, and only from then on does it
    // cut the epochs a dump point is resolved to: say so if it is not back.
    if !(was_connected && agent_back(h).await) {
        return Ok(format!(
            "pair '{id}' suspended: nothing is shipped and its recovery checkpoint stays where it is. Its agent is not connected: start it and wait until status shows it connected before taking the dump (a dump taken earlier cannot be given a dump point). Next: drpair standby skip-to-resync-marker {id}"
        ));
    }
    Ok(format!(
        "pair '{id}' suspended: nothing is shipped and its recovery checkpoint stays where it is; the agent keeps tracking changes. Next: drpair standby skip-to-resync-marker {id}"
    ))
}

/// `standby skip-to-resync-marker`: purge what is queued for the pair and wait for the
/// agent's resync marker.
pub async fn skip_to_resync_marker(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<String> {
    let before = record(h);
    before.lifecycle.apply(PairOp::SkipToResyncMarker).map_err(|r| refused(&before, r))?;
    let (store, pair_no) = (sb.store.clone(), before.pair_no);
    let purged = control::blocking(move || store.discard_pending(pair_no)).await.map_err(|e| from_op(&before, e))?;
    let id = update(sb, h, |rec| {
        rec.lifecycle = rec.lifecycle.apply(PairOp::SkipToResyncMarker).map_err(|r| refused(rec, r))?;
        let id = rec.pair_id.clone();
        let d = dump_of(rec)?;
        d.step = DumpStep::AwaitingResyncMarker;
        d.purged_versions = purged;
        d.note(
            &id,
            format!(
                "purged the outbound queue ({purged} chunk version(s) of unfinished epochs); waiting for a resync marker from the agent"
            ),
        );
        Ok(id)
    })?;
    Ok(format!(
        "pair '{id}': queue purged ({purged} chunk version(s)); the standby waits for a resync marker. Take the dump now, then: drpair marker dump {id}"
    ))
}
