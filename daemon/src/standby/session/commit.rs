//! An epoch's end: the epoch's chunks all stored, checked, then committed as a recovery point
//! in one synced batch; only then acknowledged.

use super::hooks;
use super::{ConnError, Session};
use crate::standby::pair::Committed;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::PairOp;
use drpair_types::PairState;
use drpair_types::{Consistency, PointKind, PointSizes, RecoveryPoint};
use drpair_wire::{EpochEnd, StandbyMsg};

impl Session {
    /// Commits the epoch `end` closes once every chunk of it is stored and checked (a
    /// baseline must cover every chunk; an app-consistent claim needs a quiesce), then
    /// acknowledges it.
    pub(super) async fn commit(&mut self, end: EpochEnd) -> Result<(), ConnError> {
        self.open_epoch(end.epoch)?;
        while let Some(r) = self.tasks.join_next().await {
            self.account(r)?;
        }
        let orig = self.handle.record.lock().expect("record").clone();
        // Fenced: a failed-over pair commits nothing from the original side (a failback lets
        // it ship its state again).
        if orig.lifecycle.state == PairState::FailedOver {
            return Err(ConnError::Refused(format!(
                "pair '{}' is {}: the standby's side is the source now; epoch {} is refused",
                self.pair_id,
                orig.lifecycle.state.label(),
                end.epoch
            )));
        }
        let mut rec = orig.clone();
        if end.lineage != rec.lineage {
            return Err(ConnError::Protocol(format!(
                "pair '{}': epoch {} is in lineage {}, the pair is in lineage {}",
                self.pair_id, end.epoch, end.lineage, rec.lineage
            )));
        }
        let baseline = rec.committed == 0;
        if baseline {
            for (d, g) in rec.disks.iter().map(|d| d.geometry).enumerate() {
                let have = self.covered[d].count();
                if have != g.chunk_count() {
                    return Err(ConnError::Protocol(format!(
                        "pair '{}': baseline epoch {} is incomplete: disk {d} has {have} of {} chunks; nothing committed",
                        self.pair_id,
                        end.epoch,
                        g.chunk_count()
                    )));
                }
            }
        }
        let quiesced = end.quiesce.as_ref().is_some_and(|q| q.achieved);
        if (end.consistency == Consistency::AppConsistent || end.kind == PointKind::AppConsistent) && !quiesced {
            return Err(ConnError::Protocol(format!(
                "pair '{}': epoch {} claims to be app-consistent without a successful quiesce; nothing committed",
                self.pair_id, end.epoch
            )));
        }
        let logical: u64 = rec.disks.iter().map(|d| d.geometry.size_bytes).sum();
        let st = self.epoch_stats;
        let now = now_ms();
        let point = RecoveryPoint {
            id: end.epoch,
            pair_id: self.pair_id.clone(),
            epoch: end.epoch,
            lineage: rec.lineage,
            time: rfc3339_ms(end.cut_unix_ms),
            time_unix_ms: end.cut_unix_ms,
            committed_unix_ms: now,
            kind: if baseline { PointKind::Baseline } else { end.kind },
            consistency: end.consistency,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes {
                logical_bytes: logical,
                changed_chunks: st.chunks,
                changed_bytes: st.raw_bytes,
                zero_chunks: st.zero,
                dedup_chunks: st.dedup,
                shipped_bytes: st.shipped,
                stored_bytes: st.stored,
            },
            quiesce: end.quiesce.clone(),
            full_pass: end.full_pass,
            damage: None,
            read_window_ms: Some(end.read_window_ms),
            // An app-consistent point holds what the frozen filesystems held, however long
            // its reads took; any other is as exact as its reads were quick.
            window_exceeded: end.consistency != Consistency::AppConsistent
                && u128::from(end.read_window_ms) > self.sb.max_read_window.as_millis(),
        };
        rec.committed = end.epoch;
        rec.lifecycle = rec.lifecycle.apply(PairOp::PointCommitted).map_err(|e| ConnError::Refused(e.to_string()))?;
        rec.rewound = None;
        let notes = hooks::on_commit(&self.handle, &mut rec, &end, st.chunks, baseline);
        // Persisted and installed under the record's lock, rebased on what API calls changed
        // since `orig` was read (they were acknowledged: they must not be undone). A dump that
        // matched has its point marked verified before the record says so: whoever sees the
        // verification done sees the mark.
        let (store, pair_no, pid, p2, handle) =
            (self.sb.store.clone(), self.pair_no, self.pair_id.clone(), point.clone(), self.handle.clone());
        let rec = tokio::task::spawn_blocking(move || {
            let mut live = handle.record.lock().expect("record");
            let mut merged = crate::standby::rebase::rebase(&orig, rec, &live, Some(PairOp::PointCommitted));
            hooks::note_successes(&mut merged, &p2, &notes);
            store.commit_point(pair_no, &p2, &pid, &merged)?;
            hooks::in_commit(&store, pair_no, &pid, &notes);
            *live = merged.clone();
            Ok::<_, drpair_store::StoreError>(merged)
        })
        .await
        .map_err(ConnError::worker)?
        .map_err(|e| ConnError::Store(format!("pair '{}': commit of epoch {} failed: {e}", self.pair_id, end.epoch)))?;
        {
            let mut rt = self.handle.runtime.lock().expect("runtime");
            rt.last_point = Some(point.clone());
            rt.points += 1;
        }
        self.after_commit(&rec, &point).await;
        self.open = None;
        self.covered.clear();
        tracing::info!(pair = %self.pair_id, epoch = end.epoch, kind = ?point.kind, chunks = st.chunks, shipped = st.shipped, read_window_ms = end.read_window_ms, verify_s = format!("{:.2}", st.verify_ns as f64 / 1e9), store_s = format!("{:.2}", st.store_ns as f64 / 1e9), "recovery point committed");
        if point.window_exceeded {
            tracing::warn!(pair = %self.pair_id, epoch = end.epoch, read_window_ms = end.read_window_ms, max_ms = self.sb.max_read_window.as_millis() as u64, "point read over longer than max_read_window: marked window_exceeded; \"latest\" passes it over");
        }
        crate::standby::metrics::committed(&self.pair_id, &point);
        self.send(StandbyMsg::EpochAck { epoch: end.epoch, point_id: point.id }).await;
        let _ = self.handle.commits.send(Committed { point, request_ids: end.request_ids });
        Ok(())
    }
}
