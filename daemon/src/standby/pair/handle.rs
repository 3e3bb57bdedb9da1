//! The pairs of a standby and the handle of each: its record and runtime under their locks,
//! the one way records change ([`PairHandle::update`], [`PairHandle::apply`]), and what the
//! agent is told to do.

use super::record::PairRecord;
use super::runtime::{Committed, PairRuntime, RetentionDefaults};
use super::trend::Trend;
use drpair_pair::{Lifecycle, PairOp, Refusal};
use drpair_store::Store;
use drpair_types::{PairId, PairState, RecoveryPoint};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Why an operation on a pair failed.
#[derive(Debug)]
pub enum OpError {
    /// The state does not allow it (409).
    Refused(Refusal),
    /// The store failed (500).
    Store(String),
}

impl From<Refusal> for OpError {
    fn from(r: Refusal) -> Self {
        OpError::Refused(r)
    }
}

/// One pair: its record and runtime, and the channel announcing commits.
pub struct PairHandle {
    pub record: Mutex<PairRecord>,
    pub runtime: Mutex<PairRuntime>,
    pub commits: broadcast::Sender<Committed>,
    /// Held by the connection serving the pair: at most one writes its epochs at a time.
    pub session_lock: Arc<tokio::sync::Mutex<()>>,
    /// The short trend behind the panel's charts.
    pub trend: Mutex<Trend>,
}

impl PairHandle {
    pub fn new(record: PairRecord, last_point: Option<RecoveryPoint>, points: u64) -> Arc<Self> {
        let runtime = PairRuntime { last_point, points, ..Default::default() };
        Arc::new(Self {
            record: Mutex::new(record),
            runtime: Mutex::new(runtime),
            commits: broadcast::channel(64).0,
            session_lock: Default::default(),
            trend: Default::default(),
        })
    }

    /// Applies `op` to the pair's lifecycle and persists the record when it changed. An
    /// operator op the state does not allow changes nothing.
    pub fn apply(&self, store: &Store, op: PairOp) -> Result<Lifecycle, OpError> {
        let mut rec = self.record.lock().expect("record");
        let next = rec.lifecycle.apply(op)?;
        if next != rec.lifecycle {
            let mut updated = rec.clone();
            updated.lifecycle = next.clone();
            updated.note_dates(&rec, crate::timefmt::now_ms());
            store.put_pair(&updated.pair_id, &updated).map_err(|e| OpError::Store(e.to_string()))?;
            tracing::info!(pair = %rec.pair_id, from = ?rec.lifecycle.state, to = ?next.state, ?op, "pair state");
            *rec = updated;
        }
        Ok(next)
    }

    /// Changes the record and persists it under the record's lock, so that no change made
    /// meanwhile by another task (an API call, the session) is lost. `change` works on a copy:
    /// when it fails, or changes nothing, nothing is written.
    pub fn update<T, E: From<OpError>>(
        &self,
        store: &Store,
        change: impl FnOnce(&mut PairRecord) -> Result<T, E>,
    ) -> Result<T, E> {
        let mut live = self.record.lock().expect("record");
        let mut rec = live.clone();
        let out = change(&mut rec)?;
        rec.note_dates(&live, crate::timefmt::now_ms());
        if rec != *live {
            store.put_pair(&rec.pair_id, &rec).map_err(|e| OpError::Store(e.to_string()))?;
            *live = rec;
        }
        Ok(out)
    }

    /// Installs `ours`, built from the copy `orig` and already persisted by a store operation
    /// that took a while (a restart deleting points): what others changed since `orig` is
    /// rebased onto it ([`crate::standby::rebase::rebase`], `event` applied again to a lifecycle that
    /// moved) and persisted too. Returns the record installed.
    pub fn install_rebased(
        &self,
        store: &Store,
        orig: &PairRecord,
        ours: PairRecord,
        event: Option<PairOp>,
    ) -> Result<PairRecord, OpError> {
        let mut live = self.record.lock().expect("record");
        let merged = crate::standby::rebase::rebase(orig, ours.clone(), &live, event);
        if merged != ours {
            store.put_pair(&merged.pair_id, &merged).map_err(|e| OpError::Store(e.to_string()))?;
        }
        *live = merged.clone();
        Ok(merged)
    }

    /// Tells the connected agent (if any) to ship or hold, as the lifecycle says.
    pub fn send_run_mode(&self) {
        let run = self.run_mode();
        if let Some(s) = &self.runtime.lock().expect("runtime").session {
            let _ = s.tx.try_send(drpair_wire::encode(&drpair_wire::StandbyMsg::Control { run }).expect("encode"));
        }
    }

    pub fn run_mode(&self) -> drpair_wire::RunMode {
        let (l, failover) = {
            let r = self.record.lock().expect("record");
            (r.lifecycle.clone(), r.failover.as_ref().map(|f| (f.point, f.point_time.clone())))
        };
        if l.failed_over() {
            if l.state == PairState::FailingBack && self.runtime.lock().expect("runtime").failback_ships {
                return drpair_wire::RunMode::Run;
            }
            let (point, at) = failover.unwrap_or_default();
            let until = if l.state == PairState::FailingBack { "the failback ends" } else { "`drpair failback`" };
            return drpair_wire::RunMode::Hold {
                reason: format!(
                    "the pair is {} (to point {point}, cut at {at}): the standby's side is the source now and this server ships nothing until {until}",
                    l.state.label()
                ),
            };
        }
        if l.state.in_dump_workflow() {
            drpair_wire::RunMode::Suspend { reason: format!("the pair is {}", l.state.label()) }
        } else if l.holds() {
            drpair_wire::RunMode::Hold { reason: format!("the pair is {}", l.state.label()) }
        } else {
            drpair_wire::RunMode::Run
        }
    }
}

/// All pairs of this standby, by id.
#[derive(Default)]
pub struct Registry {
    pairs: Mutex<HashMap<PairId, Arc<PairHandle>>>,
    /// The standby's retention defaults, handed to every pair inserted.
    retention: Mutex<Option<RetentionDefaults>>,
    /// The standby's default RPO target, handed to every pair inserted.
    rpo_default: Mutex<Option<drpair_types::rpo::RpoDefault>>,
}

impl Registry {
    pub fn get(&self, id: &PairId) -> Option<Arc<PairHandle>> {
        self.pairs.lock().expect("registry lock").get(id).cloned()
    }

    /// Sets the retention defaults given to the pairs inserted from now on.
    pub fn set_retention_defaults(&self, d: RetentionDefaults) {
        *self.retention.lock().expect("registry lock") = Some(d);
    }

    /// Sets the default RPO target given to the pairs inserted from now on.
    pub fn set_rpo_default(&self, d: Option<drpair_types::rpo::RpoDefault>) {
        *self.rpo_default.lock().expect("registry lock") = d;
    }

    pub fn insert(&self, h: Arc<PairHandle>) {
        if let Some(d) = self.retention.lock().expect("registry lock").clone() {
            h.runtime.lock().expect("runtime lock").retention_defaults = Some(d);
        }
        h.runtime.lock().expect("runtime lock").rpo_default = *self.rpo_default.lock().expect("registry lock");
        let id = h.record.lock().expect("record lock").pair_id.clone();
        self.pairs.lock().expect("registry lock").insert(id, h);
    }

    /// Removes a pair (deleted): its handle lives on only in calls that still hold it.
    pub fn remove(&self, id: &PairId) -> Option<Arc<PairHandle>> {
        self.pairs.lock().expect("registry lock").remove(id)
    }

    /// Sorted by pair id.
    pub fn all(&self) -> Vec<Arc<PairHandle>> {
        let map = self.pairs.lock().expect("registry lock");
        let mut v: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.into_iter().map(|(_, h)| h).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::{StopAtRecord, test_record};

    fn record(committed: drpair_types::Epoch) -> PairRecord {
        let state = if committed > 0 { PairState::Replicating } else { PairState::InitialSync };
        test_record(state, committed)
    }

    /// Two tasks changing different fields at once (the session recording the agent's history,
    /// an API call recording a request): every change survives, in memory and on disk. A
    /// change that fails writes nothing.
    #[test]
    fn concurrent_updates_are_all_kept_and_a_failed_one_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let h = PairHandle::new(record(5), None, 1);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 1..=300 {
                    h.update(&store, |r| Ok::<_, OpError>(r.agent_history_from = Some(i))).unwrap();
                }
            });
            s.spawn(|| {
                for i in 1..=300 {
                    h.update(&store, |r| Ok::<_, OpError>(r.epoch_floor = i)).unwrap();
                }
            });
        });
        let live = h.record.lock().unwrap().clone();
        assert_eq!((live.agent_history_from, live.epoch_floor), (Some(300), 300));
        let stored: Vec<PairRecord> = store.load_pairs().unwrap();
        assert_eq!(stored, vec![live.clone()]);

        let refused = h.update(&store, |r| {
            r.epoch_floor = 1;
            r.lifecycle = r.lifecycle.apply(PairOp::Failback)?;
            Ok::<_, OpError>(())
        });
        assert!(matches!(refused, Err(OpError::Refused(_))), "{refused:?}");
        assert_eq!(*h.record.lock().unwrap(), live);
        assert_eq!(store.load_pairs::<PairRecord>().unwrap(), vec![live]);
    }

    /// A restart's record, persisted by a long store operation, is installed with what an API
    /// call changed meanwhile (here a stop position); both are persisted.
    #[test]
    fn a_record_installed_after_a_long_operation_keeps_what_changed_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let h = PairHandle::new(record(5), None, 1);
        let orig = h.record.lock().unwrap().clone();
        let mut ours = orig.clone();
        ours.lifecycle = ours.lifecycle.apply(PairOp::Restart).unwrap();
        ours.committed = 0;
        ours.epoch_floor = 5;
        store.put_pair(&ours.pair_id, &ours).unwrap();
        let at = StopAtRecord { point: Some(9), ..Default::default() };
        h.update(&store, |r| Ok::<_, OpError>(r.stop_at = Some(at.clone()))).unwrap();
        let installed = h.install_rebased(&store, &orig, ours, Some(PairOp::Restart)).unwrap();
        assert_eq!((installed.committed, installed.epoch_floor, installed.stop_at.clone()), (0, 5, Some(at)));
        assert_eq!(installed.lifecycle.state, PairState::InitialSync);
        assert_eq!(*h.record.lock().unwrap(), installed);
        assert_eq!(store.load_pairs::<PairRecord>().unwrap(), vec![installed]);
    }
}
