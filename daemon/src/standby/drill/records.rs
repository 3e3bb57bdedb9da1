//! A drill's record in the store: written at each change of its evidence, the pair's newest
//! [`KEPT_DRILLS`] kept (their evidence files with them), read back with the running drills
//! as they are now.

use super::evidence;
use crate::standby::Standby;
use crate::standby::pair::PairHandle;
use drpair_types::{DrillState, DrillStatus};

/// Drill records kept per pair.
const KEPT_DRILLS: usize = 200;

/// Writes `s` as the evidence of its drill (the store keeps each pair's newest [`KEPT_DRILLS`]).
pub(super) fn record(sb: &Standby, h: &PairHandle, s: &DrillStatus) {
    let pair_no = h.record.lock().expect("record").pair_no;
    let requested = drpair_types::parse_time_ms(&s.requested_at).unwrap_or(0);
    let written =
        sb.store.put_drill(pair_no, requested, &s.id, s).and_then(|()| sb.store.trim_drills(pair_no, KEPT_DRILLS));
    match written {
        Err(e) => tracing::error!(pair = %s.pair_id, drill = %s.id, "recording the drill: {e}"),
        // Trimmed records take their evidence files with them.
        Ok(trimmed) if trimmed > 0 => match sb.store.list_drills::<DrillStatus>(pair_no) {
            Ok(kept) => {
                let kept = kept.into_iter().map(|d| d.id).collect();
                evidence::prune(&sb.data_dir, s.pair_id.as_str(), &kept);
            }
            Err(e) => tracing::error!(pair = %s.pair_id, "listing the drills kept: {e}"),
        },
        Ok(_) => {}
    }
}

/// The pair's drills, oldest first, the running ones as they are now.
pub fn records(sb: &Standby, h: &PairHandle) -> Result<Vec<DrillStatus>, drpair_store::StoreError> {
    let pair_no = h.record.lock().expect("record").pair_no;
    let mut v: Vec<DrillStatus> = sb.store.list_drills(pair_no)?;
    for d in v.iter_mut().filter(|d| d.state == DrillState::Running) {
        if let Some(live) = sb.drills.get(&d.id) {
            *d = live;
        }
    }
    Ok(v)
}
