//! What every step of the dump workflow shares: reading and changing the pair's record, the
//! refusals that name the next step, and waiting for the agent.

use super::errors::{FlowError, Res};
use super::record::DumpRecord;
use crate::standby::Standby;
use crate::standby::pair::{OpError, PairHandle, PairRecord};
use drpair_pair::Refusal;
use drpair_types::PairId;
use std::time::Duration;

/// How long a request waits for a disconnected agent to come back.
pub(super) const AGENT_RECONNECT: Duration = Duration::from_secs(15);

pub(super) fn internal(e: impl std::fmt::Display) -> FlowError {
    FlowError::Internal(e.to_string())
}

/// A record update that failed outside the step's own checks.
impl From<OpError> for FlowError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Store(m) | OpError::Refused(Refusal { message: m, .. }) => FlowError::Internal(m),
        }
    }
}

pub(super) fn from_op(rec: &PairRecord, e: OpError) -> FlowError {
    match e {
        OpError::Refused(r) => refused(rec, r),
        OpError::Store(m) => FlowError::Internal(m),
    }
}

/// A refusal of the state machine, with the step to take instead.
pub(super) fn refused(rec: &PairRecord, r: Refusal) -> FlowError {
    not_now(rec, &r.message)
}

pub(super) fn not_now(rec: &PairRecord, why: &str) -> FlowError {
    FlowError::State(format!("pair '{}': {why}; next step: {}", rec.pair_id, super::status::next_step(rec)))
}

pub(super) fn record(h: &PairHandle) -> PairRecord {
    h.record.lock().expect("record").clone()
}

pub(super) fn pair_id(h: &PairHandle) -> PairId {
    h.record.lock().expect("record").pair_id.clone()
}

pub(super) fn dump_of(rec: &mut PairRecord) -> Res<&mut DumpRecord> {
    let id = rec.pair_id.clone();
    rec.dump.as_mut().ok_or_else(|| FlowError::Internal(format!("pair '{id}' has no dump record in a dump state")))
}

/// Changes the pair's record under its lock and persists it ([`PairHandle::update`]): what
/// the session or another call changed meanwhile is kept, and the step's checks see the
/// record as it is.
pub(super) fn update<T>(sb: &Standby, h: &PairHandle, change: impl FnOnce(&mut PairRecord) -> Res<T>) -> Res<T> {
    h.update(&sb.store, change)
}

/// Waits up to [`AGENT_RECONNECT`] for the pair's agent to be connected; returns whether it is.
pub(super) async fn agent_back(h: &PairHandle) -> bool {
    let deadline = tokio::time::Instant::now() + AGENT_RECONNECT;
    loop {
        if h.runtime.lock().expect("runtime").session.is_some() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
