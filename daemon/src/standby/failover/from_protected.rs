//! A failback whose recovered side is the pair protecting the recovered disks
//! (`from_protected`): checked when the failback is asked for ([`prepare`]), and its final
//! point cut once the original's state is kept ([`final_point`]), so the comparison sees the
//! recovered disks as they are when the failback writes.

use super::FailoverError;
use super::failback_error::FailbackError;
use super::recovered::ProtectedPoint;
use crate::standby::Standby;
use crate::standby::pair::PairRecord;
use drpair_types::{DiskGeometry, PairState};
use drpair_wire::{StandbyMsg, encode};
use std::time::Duration;

/// How long the protecting agent may take to cut and ship its final point.
const CUT_TIMEOUT: Duration = Duration::from_secs(600);

/// Checks that the original pair `rec` (failed over to `disks`) is protected by a pair of
/// this standby whose agent is connected and whose disks match chunk for chunk. The point is
/// chosen later ([`final_point`]).
pub fn prepare(sb: &Standby, rec: &PairRecord, disks: &[DiskGeometry]) -> Result<ProtectedPoint, FailoverError> {
    let pair = &rec.pair_id;
    // The API prefixes the pair's id to the message.
    let state = FailoverError::State;
    let Some(p) = rec.protected_by.as_ref() else {
        return Err(state(
            "no agent protects its recovered disks (`drpair pairs protect-recovered`); fail back from the disks with --from".into(),
        ));
    };
    if !p.this_standby {
        return Err(state(format!(
            "its recovered disks are protected by pair '{}' on another standby ({}); fail back from the disks with --from",
            p.pair, p.standby
        )));
    }
    if !p.state.active() {
        return Err(state(format!(
            "the protection by pair '{}' is {} ({}): its newest point may be older than the recovered disks; protect them again, or fail back from the disks with --from",
            p.pair,
            drpair_types::ProtectionState::from(p.state).label(),
            p.message
        )));
    }
    let Some(ph) = sb.registry.get(&p.pair) else {
        return Err(state(format!("the protecting pair '{}' is not on this standby any more", p.pair)));
    };
    let prec = ph.record.lock().expect("record").clone();
    if prec.recovered_from.as_ref().is_none_or(|r| &r.pair != pair) {
        return Err(state(format!("pair '{}' does not name '{pair}' as the pair it protects", p.pair)));
    }
    if !prec.lifecycle.ready_for_failover() || prec.lifecycle.state != PairState::Replicating {
        return Err(state(format!(
            "the protecting pair '{}' is {}, not replicating with a complete point: wait for it, or fail back from the disks with --from",
            p.pair,
            prec.lifecycle.state.label()
        )));
    }
    if ph.runtime.lock().expect("runtime").session.is_none() {
        return Err(state(format!(
            "the agent of the protecting pair '{}' is not connected, so no final point can be cut; wait for it (log: {}), or fail back from the disks with --from",
            p.pair,
            crate::standby::protect::agent::log_file(&sb.data_dir, p.pair.as_str()).display()
        )));
    }
    let theirs: Vec<DiskGeometry> = prec.disks.iter().map(|d| d.geometry).collect();
    // A larger disk is fine, unless the original ends within a chunk: that chunk would hash
    // over more bytes on the protecting pair's disk.
    let fits = theirs.len() == disks.len()
        && theirs.iter().zip(disks).all(|(t, o)| {
            let whole = o.size_bytes % u64::from(o.chunk_size.bytes()) == 0;
            t.chunk_size == o.chunk_size && (t.size_bytes == o.size_bytes || (whole && t.size_bytes > o.size_bytes))
        });
    if !fits {
        return Err(state(format!(
            "the disks of the protecting pair '{}' do not match its own chunk for chunk (same count and chunk size; the same size, or larger when the original ends on a chunk boundary); fail back from the disks with --from",
            p.pair
        )));
    }
    Ok(ProtectedPoint { pair: p.pair.clone(), pair_no: prec.pair_no, point: 0, epoch: 0, disks: theirs })
}

/// Asks the protecting agent for a cut and waits for its point; `p` then names it.
pub async fn final_point(sb: &Standby, p: &mut ProtectedPoint) -> Result<(), FailbackError> {
    let agent = |m: String| FailbackError::Agent(format!("the protecting pair '{}': {m}", p.pair));
    let h = sb.registry.get(&p.pair).ok_or_else(|| agent("no longer on this standby".into()))?;
    let session = h.runtime.lock().expect("runtime").session.clone();
    let session = session.ok_or_else(|| agent("its agent is not connected; no final point can be cut".into()))?;
    let request_id = sb.next_request();
    let mut commits = h.commits.subscribe();
    session
        .tx
        .send(encode(&StandbyMsg::CutRequest { request_id, quiesce: None }).expect("encode"))
        .await
        .map_err(|_| agent("its agent disconnected".into()))?;
    drop(session);
    let point = tokio::time::timeout(CUT_TIMEOUT, async {
        loop {
            match commits.recv().await {
                Ok(c) if c.request_ids.contains(&request_id) => return Some(c.point),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten()
    .ok_or_else(|| agent(format!("its final point was not committed within {}s", CUT_TIMEOUT.as_secs())))?;
    p.point = point.id;
    p.epoch = point.epoch;
    p.disks = h.record.lock().expect("record").geometries_at(point.epoch);
    tracing::info!(pair = %p.pair, point = point.id, "failback: the protecting pair's final point");
    Ok(())
}
