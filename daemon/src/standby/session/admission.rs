//! Admitting an agent: its Hello checked against the registry (a new pair registered), then
//! against the pair's record under the session lock, which says how the agent starts.

use crate::standby::Standby;
use crate::standby::pair::{DiskRecord, OpError, PairHandle, PairRecord, ReconfiguredRecord};
use crate::timefmt::now_ms;
use drpair_pair::{Lifecycle, PairOp};
use drpair_types::DumpStep;
use drpair_types::{ChunkSize, DiskChangeKind, DiskGeometry, PairId};
use drpair_wire::{Hello, RefuseCode, StandbyMsg, StartMode, encode};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Tells the agent why it is not admitted (the connection then ends).
pub(super) async fn refuse(tx: &mpsc::Sender<Vec<u8>>, code: RefuseCode, message: String) {
    let _ = tx.send(encode(&StandbyMsg::Refused { code, message }).expect("encode")).await;
}

/// Who the agent is: with a certificate, the pair it was issued to (and the Hello must claim
/// that pair); without, the token of the standby's `token_file` if it has one (not for a pair
/// whose credentials were revoked); else nobody.
fn authenticate(
    sb: &Standby,
    h: &Hello,
    pair_id: &PairId,
    cert: Option<drpair_tls::Fingerprint>,
) -> Result<(), (RefuseCode, String)> {
    let denied = |m: String| (RefuseCode::AccessDenied, m);
    if let Some(fp) = cert {
        let bound = sb.credentials.pair_of(fp).map_err(|e| denied(e.to_string()))?;
        if &bound != pair_id {
            return Err(denied(format!(
                "this agent's certificate is for pair '{bound}', but it claims pair '{pair_id}': refused, nothing registered"
            )));
        }
        return Ok(());
    }
    if sb.credentials.is_revoked(pair_id) {
        return Err(denied(format!(
            "the credentials of pair '{pair_id}' were revoked: enroll its agent again (drpair pairs enroll {pair_id})"
        )));
    }
    match (&sb.token, &h.token) {
        (Some(t), Some(g)) if crate::token::token_eq(g, t) => Ok(()),
        (Some(_), _) => Err(denied(format!(
            "pair '{pair_id}': no certificate and a missing or wrong token (enroll the agent: drpair pairs enroll {pair_id})"
        ))),
        (None, _) => Err(denied(format!(
            "pair '{pair_id}': this agent has no certificate: enroll it (drpair pairs enroll {pair_id} prints the command)"
        ))),
    }
}

/// Checks the Hello against the registry; registers a new pair. Returns the pair and whether
/// it was registered now.
pub(super) fn handshake(
    sb: &Standby,
    h: &Hello,
    peer: SocketAddr,
    cert: Option<drpair_tls::Fingerprint>,
) -> Result<(Arc<PairHandle>, bool), (RefuseCode, String)> {
    let bad = |m: String| (RefuseCode::BadRequest, m);
    let pair_id = PairId::new(h.pair_id.clone()).map_err(|e| bad(e.to_string()))?;
    authenticate(sb, h, &pair_id, cert)?;
    if let Some(d) = sb.credentials.deleted(&pair_id)
        && !h.reinit
    {
        return Err((
            RefuseCode::PairDeleted,
            format!(
                "pair '{pair_id}' was deleted on this standby at {} by {}: this agent decommissions itself (tracefs instance and change maps removed) and holds. To protect this server again, start its agent with --reinit (a new pair, a full copy)",
                crate::timefmt::rfc3339_ms(d.deleted_unix_ms),
                d.by
            ),
        ));
    }
    if h.disks.is_empty() || h.disks.len() > 64 {
        return Err(bad(format!("pair '{pair_id}': an agent must offer 1 to 64 disks, got {}", h.disks.len())));
    }
    let disks = offered_disks(h)?;
    let _reg = sb.register_lock.lock().expect("register lock");
    let Some(handle) = sb.registry.get(&pair_id) else {
        if let (Some(l), false) = (h.state.lineage, h.reinit) {
            return Err((
                RefuseCode::LineageMismatch,
                format!(
                    "the standby has no record of pair '{pair_id}', but this agent's state (lineage {l}, checkpoint epoch {}) says it replicated to a standby before. \
                 If the standby was rebuilt, start the agent once with --reinit to begin a new baseline (a full copy); otherwise point it at the standby that holds the pair",
                    h.state.acked
                ),
            ));
        }
        let pair_no = sb.store.allocate_pair_no().map_err(|e| bad(format!("standby store error: {e}")))?;
        let lifecycle = if sb.auto_start {
            Lifecycle::new().apply(PairOp::Start).expect("a new pair can start")
        } else {
            Lifecycle::new()
        };
        let record = PairRecord::register(
            pair_id.clone(),
            pair_no,
            disks,
            h.host.clone(),
            peer.ip().to_string(),
            h.tracker.clone(),
            lifecycle,
        );
        sb.store.put_pair(&pair_id, &record).map_err(|e| bad(format!("standby store error: {e}")))?;
        sb.credentials.forget_deleted(&pair_id).map_err(|e| bad(format!("standby credentials error: {e}")))?;
        tracing::info!(pair = %pair_id, pair_no, lineage = %record.lineage, "registered new pair from {peer}");
        let handle = PairHandle::new(record, None, 0);
        sb.registry.insert(handle.clone());
        return Ok((handle, true));
    };
    Ok((handle, false))
}

/// The disks of an agent's Hello as records; a size or chunk size that is not one is refused.
fn offered_disks(h: &Hello) -> Result<Vec<DiskRecord>, (RefuseCode, String)> {
    h.disks
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let cs = ChunkSize::new(d.chunk_size).map_err(|e| (RefuseCode::BadRequest, format!("disk {i}: {e}")))?;
            let g =
                DiskGeometry::new(d.size_bytes, cs).map_err(|e| (RefuseCode::BadRequest, format!("disk {i}: {e}")))?;
            Ok(DiskRecord { path: d.path.clone(), geometry: g })
        })
        .collect()
}

/// Compares the agent's disks with the registered ones. Other disks put the pair in
/// *Configuration changed* (nothing shipped, every point kept), except where nothing needs
/// keeping (a pair that never ran) or disks that only grew are taken by configuration
/// (`adopt_growth`). The registered disks again end that state. Returns whether the pair now
/// waits on a configuration change.
fn take_configuration(sb: &Standby, handle: &PairHandle, h: &Hello) -> Result<bool, (RefuseCode, String)> {
    let rec = handle.record.lock().expect("record").clone();
    let pair_id = rec.pair_id.clone();
    let offered = offered_disks(h)?;
    let changes = rec.disk_changes(&offered);
    let store_err = |e: OpError| (RefuseCode::BadRequest, format!("standby store error: {e:?}"));
    if changes.is_empty() {
        if rec.reconfigured.is_some() {
            tracing::info!(pair = %pair_id, "the agent offers the registered disks again: configuration change withdrawn");
            handle
                .update(&sb.store, |r| {
                    r.reconfigured = None;
                    r.lifecycle = r.lifecycle.apply(PairOp::ConfigRestored).map_err(OpError::from)?;
                    Ok::<_, OpError>(())
                })
                .map_err(store_err)?;
        }
        return Ok(false);
    }
    let described: Vec<String> = changes.iter().map(|c| c.describe()).collect();
    if rec.lifecycle.failed_over() {
        return Err((
            RefuseCode::GeometryMismatch,
            format!(
                "pair '{pair_id}' is {}: its disks cannot change before the failback ({}); start the agent with the registered disks",
                rec.lifecycle.state.label(),
                described.join("; ")
            ),
        ));
    }
    let growth_only = changes.iter().all(|c| c.change == DiskChangeKind::Grown);
    let never_ran = !rec.lifecycle.started && rec.committed == 0 && rec.restart.is_none();
    if never_ran || (growth_only && sb.adopt_growth) {
        let why = if never_ran { "the pair never ran" } else { "adopt_growth is on" };
        tracing::warn!(pair = %pair_id, "disks taken as the agent offers them ({why}): {}", described.join("; "));
        handle
            .update(&sb.store, |r| {
                r.take_disks(offered.clone());
                if r.lifecycle.config_changed {
                    r.lifecycle = r.lifecycle.apply(PairOp::AdoptGrowth).map_err(OpError::from)?;
                }
                Ok::<_, OpError>(())
            })
            .map_err(store_err)?;
        return Ok(false);
    }
    let same_offer = rec.reconfigured.as_ref().is_some_and(|r| r.offered == offered);
    if !same_offer {
        tracing::warn!(
            pair = %pair_id,
            "configuration changed: {}; nothing is shipped until `drpair restart {pair_id}`{}",
            described.join("; "),
            if growth_only { format!(" or `drpair pairs adopt-growth {pair_id}`") } else { String::new() }
        );
    }
    handle
        .update(&sb.store, |r| {
            if !same_offer {
                r.reconfigured = Some(ReconfiguredRecord { detected_unix_ms: now_ms(), offered: offered.clone() });
            }
            r.lifecycle = r.lifecycle.apply(PairOp::ConfigChanged).map_err(OpError::from)?;
            Ok::<_, OpError>(())
        })
        .map_err(store_err)?;
    Ok(true)
}

/// Checks an agent against the pair's record (under the session lock) and says how it
/// starts: continue, start over in a restarted pair's new lineage, or rewind to a replayed
/// point. Records where the agent now runs from.
pub(super) fn check_agent(
    sb: &Standby,
    handle: &PairHandle,
    h: &Hello,
    peer: SocketAddr,
) -> Result<StartMode, (RefuseCode, String)> {
    let bad = |m: String| (RefuseCode::BadRequest, m);
    let pair_id = handle.record.lock().expect("record").pair_id.clone();
    // Deleted while this connection waited for the session lock: nothing of it may be written.
    if sb.credentials.deleted(&pair_id).is_some() {
        return Err((RefuseCode::PairDeleted, format!("pair '{pair_id}' was deleted on this standby")));
    }
    let reconfigured = take_configuration(sb, handle, h)?;
    let rec = handle.record.lock().expect("record").clone();
    if h.reinit {
        return Err((
            RefuseCode::Unsupported,
            format!(
                "pair '{pair_id}' is registered on this standby with {} recovery point checkpoint(s); a new baseline deletes its recovery points: use `drpair restart {pair_id}` instead of --reinit",
                rec.committed
            ),
        ));
    }
    let mut mode = StartMode::Continue;
    let dump_head = rec.dump.as_ref().is_some_and(|d| d.step == DumpStep::Verifying && d.point == Some(rec.committed));
    if dump_head && h.state.lineage == Some(rec.lineage) && h.state.acked < rec.committed {
        // The head is a loaded dump of the agent's dump point: ship what changed after it.
        mode = StartMode::FromDump { epoch: rec.committed };
    } else if rec.restart.is_some() && h.state.lineage != Some(rec.lineage) {
        // Restarted: whatever the agent had, it starts over in the new lineage.
        mode = StartMode::NewBaseline { epoch_floor: rec.epoch_floor };
    } else if let Some(l) = h.state.lineage {
        if l != rec.lineage {
            return Err((
                RefuseCode::LineageMismatch,
                format!(
                    "this agent's state is in lineage {l}, but pair '{pair_id}' on the standby is in lineage {}. \
                 The pair was restarted or the state dir belongs to another pair: move the agent's state dir away to rejoin with a differential resync",
                    rec.lineage
                ),
            ));
        }
        if h.state.acked > rec.committed {
            match rec.rewound {
                Some(r) if r.to == rec.committed && h.state.acked <= r.from => {
                    mode = StartMode::Rewind { to: r.to };
                }
                _ => {
                    return Err((
                        RefuseCode::CheckpointMismatch,
                        format!(
                            "this agent was acknowledged epoch {} but the standby's newest committed epoch of pair '{pair_id}' is {}: the standby lost committed data (restored from an older copy?). Restart replication of the pair",
                            h.state.acked, rec.committed
                        ),
                    ));
                }
            }
        }
        if rec.committed > h.state.last_cut.max(h.state.acked) {
            return Err((
                RefuseCode::CheckpointMismatch,
                format!(
                    "the standby committed epoch {} of pair '{pair_id}', which this agent never cut (its last cut is {}): the agent's state dir is older than the standby's data. Move the state dir away to rejoin with a differential resync",
                    rec.committed, h.state.last_cut
                ),
            ));
        }
    }
    let addr = peer.ip().to_string();
    let history = h.state.lineage.map(|_| h.state.history_from);
    handle
        .update(&sb.store, |rec| {
            rec.source_host = h.host.clone();
            rec.source_address = addr;
            rec.tracker = h.tracker.clone();
            if !reconfigured {
                // The same disks, perhaps renamed (a device renumbered at boot).
                for (a, b) in rec.disks.iter_mut().zip(&h.disks) {
                    a.path = b.path.clone();
                }
            }
            if mode == StartMode::Continue {
                rec.agent_history_from = history;
            }
            Ok::<_, OpError>(())
        })
        .map_err(|e| bad(format!("standby store error: {e:?}")))?;
    Ok(mode)
}
