//! Rewriting a pair's history: restarting it in a new lineage, rolling its head back to a
//! point (replay), and retiring the old lineage once the new baseline is complete.
//!
//! Each operation takes the record lock and ends in ONE synced write batch holding every
//! deletion of committed data and the new pair record: a crash leaves the pair's points,
//! versions and record either all before or all after it. The only work done ahead of that
//! batch is discarding the pair's uncommitted versions ([`Store::discard_pending`], in bounded
//! batches): they belong to an abandoned epoch, which the standby discards at start-up anyway,
//! so an interruption there leaves the "before" state as the daemon sees it.
//!
//! None of these needs the bulk chunks flushed first (unlike `commit_point`): they only remove
//! references to chunks, and the new pair record refers to no chunk.
//!
//! The caller stops the pair's ingest first: versions written concurrently by
//! [`Store::write_versions`] (which takes no lock) are not covered.

use crate::keys::{POINT_KEY_LEN, VERSION_KEY_LEN, pair_prefix, point_key, prefix_end};
use crate::options::{CF_EPOCHS, CF_PAIRS, CF_PENDING, CF_POINTS, CF_VERSIONS};
use crate::scan::Scope;
use crate::{PairId, Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};
use serde::Serialize;

/// What a history operation deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Recovery points deleted.
    pub points: u64,
    /// Version entries deleted (committed ones and those of abandoned epochs).
    pub versions: u64,
}

impl Store {
    /// The pair starts a new lineage. One synced batch: with `wipe`, every version entry and
    /// recovery point of the pair is range-deleted (like [`Store::wipe_pair`]); always, its
    /// `pending` lists; and the pair record is put. Without `wipe`, the uncommitted versions
    /// are discarded first and the points stay until [`Store::retire_below`] drops them.
    /// Returns the number of points deleted (0 without `wipe`).
    pub fn restart_pair<T: Serialize>(
        &self,
        pair_no: u32,
        pair_id: &PairId,
        record: &T,
        wipe: bool,
    ) -> Result<u64, StoreError> {
        let _records = self.lock_records();
        self.bump_rewrite();
        let record = crate::pairs::encode_pair(pair_id, record)?;
        let prefix = pair_prefix(pair_no);
        let mut batch = WriteBatch::default();
        let points = if wipe {
            let (start, end) = (prefix.to_vec(), prefix_end(&prefix, POINT_KEY_LEN));
            let points = self.count_points(&start, &end)?;
            self.list_pair_candidates(pair_no)?;
            for cf in [CF_VERSIONS, CF_EPOCHS] {
                batch.delete_range_cf(self.cf(cf), prefix.to_vec(), prefix_end(&prefix, VERSION_KEY_LEN));
            }
            batch.delete_range_cf(self.cf(CF_POINTS), start, end);
            // No chunk reads as zero without its entry until the new baseline says so.
            self.drop_zero_from(&mut batch, pair_no, |_| true)?;
            points
        } else {
            // A range delete of `pending` alone would leave the listed entries in `versions`,
            // unlisted, and visible at the next committed epoch.
            self.discard_pending_locked(pair_no)?;
            0
        };
        batch.delete_range_cf(self.cf(CF_PENDING), prefix.to_vec(), prefix_end(&prefix, VERSION_KEY_LEN));
        batch.put_cf(self.cf(CF_PAIRS), pair_id.as_str(), record);
        self.write_synced(batch)?;
        tracing::info!(pair_no, pair = %pair_id, wipe, points_deleted = points, "pair restarted in a new lineage");
        Ok(points)
    }

    /// Rolls the pair's head back to its point `to` (replay from it). One synced batch
    /// deletes every point with epoch > `to`, every version entry with epoch > `to` and the
    /// pair's `pending` lists, and puts the pair record. Afterwards [`Store::latest_point`] is
    /// point `to`, a read at any epoch ≥ `to` returns what point `to` holds, and only epochs
    /// newer than `to` can be written and committed.
    ///
    /// Refused with [`StoreError::PointNotFound`] (changing nothing) when `to` is not a point
    /// of the pair.
    pub fn rollback_pair<T: Serialize>(
        &self,
        pair_no: u32,
        pair_id: &PairId,
        record: &T,
        to: u64,
    ) -> Result<Removed, StoreError> {
        let _records = self.lock_records();
        self.bump_rewrite();
        if self.get_point(pair_no, to)?.is_none() {
            return Err(StoreError::PointNotFound { pair_no, id: to });
        }
        let record = crate::pairs::encode_pair(pair_id, record)?;
        let discarded = self.discard_pending_locked(pair_no)?;
        let prefix = pair_prefix(pair_no);
        let mut batch = WriteBatch::default();
        let points = match to.checked_add(1) {
            Some(after) => {
                let (start, end) = (point_key(pair_no, after).to_vec(), prefix_end(&prefix, POINT_KEY_LEN));
                let points = self.count_points(&start, &end)?;
                batch.delete_range_cf(self.cf(CF_POINTS), start, end);
                points
            }
            None => 0,
        };
        let versions = self.delete_versions_where(pair_no, &mut batch, |epoch| epoch > to)?;
        self.drop_zero_from(&mut batch, pair_no, |epoch| epoch > to)?;
        batch.delete_range_cf(self.cf(CF_PENDING), prefix.to_vec(), prefix_end(&prefix, VERSION_KEY_LEN));
        batch.put_cf(self.cf(CF_PAIRS), pair_id.as_str(), record);
        self.write_synced(batch)?;
        let removed = Removed { points, versions: versions + discarded };
        tracing::info!(
            pair_no, pair = %pair_id, epoch = to, points_deleted = removed.points,
            versions_deleted = removed.versions, "pair rolled back to a recovery point"
        );
        Ok(removed)
    }

    /// The new lineage's baseline, committed as point `below`, is complete: one synced batch
    /// deletes every point and every version entry of the pair with epoch < `below` (the old
    /// lineage) and puts the pair record. Points, versions and `pending` lists at or after
    /// `below` are untouched.
    ///
    /// The baseline must hold a version of every chunk of every disk (a restart re-copies
    /// everything); a chunk without one would read as never written afterwards. Refused with
    /// [`StoreError::PointNotFound`] (changing nothing) when `below` is not a point of the
    /// pair, so that a pair always keeps at least that one.
    pub fn retire_below<T: Serialize>(
        &self,
        pair_no: u32,
        pair_id: &PairId,
        record: &T,
        below: u64,
    ) -> Result<Removed, StoreError> {
        let _records = self.lock_records();
        self.bump_rewrite();
        if self.get_point(pair_no, below)?.is_none() {
            return Err(StoreError::PointNotFound { pair_no, id: below });
        }
        let record = crate::pairs::encode_pair(pair_id, record)?;
        let mut batch = WriteBatch::default();
        let (start, end) = (point_key(pair_no, 0).to_vec(), point_key(pair_no, below).to_vec());
        let points = self.count_points(&start, &end)?;
        batch.delete_range_cf(self.cf(CF_POINTS), start, end);
        let versions = self.delete_versions_where(pair_no, &mut batch, |epoch| epoch < below)?;
        batch.put_cf(self.cf(CF_PAIRS), pair_id.as_str(), record);
        self.write_synced(batch)?;
        let removed = Removed { points, versions };
        tracing::info!(
            pair_no, pair = %pair_id, epoch = below, points_deleted = removed.points,
            versions_deleted = removed.versions, "old lineage retired below the new baseline"
        );
        Ok(removed)
    }

    /// Deletes every version entry of the pair with epoch > `after` (a loaded third-party dump
    /// that was abandoned before it became a point) and the uncommitted ones; returns how many.
    /// One synced batch after the discard. Points are not touched: refused with
    /// [`StoreError::EpochNotOpen`] when a point newer than `after` exists.
    pub fn discard_versions_after(&self, pair_no: u32, after: u64) -> Result<u64, StoreError> {
        let _records = self.lock_records();
        self.bump_rewrite();
        if let Some(committed) = self.latest_committed_epoch(pair_no)?
            && committed > after
        {
            return Err(StoreError::EpochNotOpen { pair_no, epoch: after, committed });
        }
        let discarded = self.discard_pending_locked(pair_no)?;
        let mut batch = WriteBatch::default();
        let versions = self.delete_versions_where(pair_no, &mut batch, |epoch| epoch > after)?;
        self.write_synced(batch)?;
        Ok(versions + discarded)
    }

    /// Number of `points` keys in `start..end`.
    fn count_points(&self, start: &[u8], end: &[u8]) -> Result<u64, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(end.to_vec());
        ro.fill_cache(false);
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_POINTS), ro);
        it.seek(start);
        let mut n = 0u64;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// Adds to `batch` the deletion of every version entry of the pair whose epoch satisfies
    /// `doomed` (with its index keys; the chunks become reclaim candidates); returns how
    /// many. A scan of the pair's whole index (the epoch is the last part of the key),
    /// outside the block cache.
    fn delete_versions_where(
        &self,
        pair_no: u32,
        batch: &mut WriteBatch,
        doomed: impl Fn(u64) -> bool,
    ) -> Result<u64, StoreError> {
        let mut n = 0u64;
        for entry in self.scan_versions(Scope::Pair(pair_no)) {
            let (vk, v) = entry?;
            if doomed(vk.epoch) {
                self.delete_version(batch, &vk, Some(v));
                n += 1;
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
