//! Removing recovery points: their records go at once, and a sweep deletes the chunk
//! versions that no remaining point can see.
//!
//! A version entry of chunk *c* written at epoch *e* is seen by the points *P* with
//! *e ≤ P < n*, where *n* is the epoch of the next newer entry of *c*. Removing points only
//! shrinks that set, and only for entries written after the previous remaining point: so
//! removing points with the previous remaining point *K* sweeps the entries with epoch in
//! *(K, last removed]* — found through the `epochs` index, in time proportional to them, not
//! to the store. An entry there is doomed when the first remaining point *P ≥ e* reads
//! another entry of *c* (a newer one): no remaining point sees it.
//!
//! Crash safety: [`Store::remove_points`] deletes the point records and journals the sweep
//! (a `meta` key) in one synced batch; the sweep's deletions go in batches and the journal
//! key goes with the last one. A sweep interrupted by a crash is finished by
//! [`Store::finish_sweeps`], and redoing one is harmless (each entry is judged against the
//! points that exist then). Concurrent work: commits only add points newer than every entry
//! swept (the newest point is never removed); entries of open epochs (newer than the newest
//! point) are never touched; a history rewrite (rollback, restart, retire, wipe) bumps the
//! history generation, and a sweep that sees it change stops, leaving its journal key for
//! the next run.

use crate::keys::{
    META_SWEEP, PENDING_KEY_LEN, POINT_KEY_LEN, SWEEP_KEY_LEN, decode_pending_key, decode_sweep_key, pair_prefix,
    point_key, prefix_end, sweep_key,
};
use crate::options::{CF_EPOCHS, CF_META, CF_POINTS};
use crate::{Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};
use std::collections::BTreeSet;

/// Entries judged per batch of deletions.
const SWEEP_BATCH: usize = 2048;

/// What removing points did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneOutcome {
    /// Point records deleted.
    pub points: u64,
    /// Version entries deleted (no remaining point sees them).
    pub versions: u64,
    /// Entries looked at by the sweeps.
    pub examined: u64,
    /// A sweep stopped because the pair's history was rewritten meanwhile; its journal key
    /// stays for the next run.
    pub interrupted: bool,
}

impl Store {
    /// Removes the pair's points `ids` and sweeps the versions only they could see. Ids that
    /// are not points of the pair are ignored. Refused, changing nothing, with
    /// [`StoreError::InvalidPoint`] for the pair's newest point (replication continues from
    /// it) or a pinned one (`pinned` set by the operator).
    pub fn remove_points(&self, pair_no: u32, ids: &[u64]) -> Result<PruneOutcome, StoreError> {
        let _prune = self.lock_prune();
        let mut out = PruneOutcome::default();
        {
            let _records = self.lock_records();
            let points = self.list_points(pair_no)?;
            let newest = points.last().map(|p| p.epoch);
            let epochs: BTreeSet<u64> = points.iter().map(|p| p.epoch).collect();
            let doomed: BTreeSet<u64> = ids.iter().copied().filter(|id| epochs.contains(id)).collect();
            for p in points.iter().filter(|p| doomed.contains(&p.epoch)) {
                let refuse = |reason: &str| StoreError::InvalidPoint { pair_no, id: p.epoch, reason: reason.into() };
                if Some(p.epoch) == newest {
                    return Err(refuse("the newest point is never removed: replication continues from it"));
                }
                if p.pinned {
                    return Err(refuse("pinned: unpin it first"));
                }
            }
            if doomed.is_empty() {
                drop(_records);
                return self.finish_sweeps_locked(pair_no, out);
            }
            // Each removed point's sweep starts after the previous remaining point.
            let kept: BTreeSet<u64> = epochs.difference(&doomed).copied().collect();
            let mut sweeps: Vec<(u64, u64)> = Vec::new();
            for &id in &doomed {
                let from = kept.range(..id).next_back().map_or(0, |k| k + 1);
                match sweeps.last_mut() {
                    Some(last) if last.0 == from => last.1 = id,
                    _ => sweeps.push((from, id)),
                }
            }
            let mut batch = WriteBatch::default();
            for &id in &doomed {
                batch.delete_cf(self.cf(CF_POINTS), point_key(pair_no, id));
            }
            for &(from, to) in &sweeps {
                batch.put_cf(self.cf(CF_META), sweep_key(pair_no, from, to), []);
            }
            self.write_synced(batch)?;
            out.points = doomed.len() as u64;
            tracing::info!(pair_no, points = out.points, sweeps = sweeps.len(), "recovery points removed");
        }
        self.finish_sweeps_locked(pair_no, out)
    }

    /// Finishes the pair's journalled sweeps (after a crash, or after one was interrupted).
    pub fn finish_sweeps(&self, pair_no: u32) -> Result<PruneOutcome, StoreError> {
        let _prune = self.lock_prune();
        self.finish_sweeps_locked(pair_no, PruneOutcome::default())
    }

    /// Pairs with an unfinished sweep.
    pub fn pairs_with_sweeps(&self) -> Result<Vec<u32>, StoreError> {
        let mut out: Vec<u32> = self.journalled_sweeps(None)?.into_iter().map(|(p, _, _)| p).collect();
        out.dedup();
        Ok(out)
    }

    fn finish_sweeps_locked(&self, pair_no: u32, mut out: PruneOutcome) -> Result<PruneOutcome, StoreError> {
        for (_, from, to) in self.journalled_sweeps(Some(pair_no))? {
            let done = self.sweep(pair_no, from, to, &mut out)?;
            if !done {
                out.interrupted = true;
                break;
            }
        }
        if out.versions > 0 {
            tracing::info!(pair_no, versions = out.versions, examined = out.examined, "pruned chunk versions");
        }
        Ok(out)
    }

    /// `(pair, from, to)` of the journalled sweeps (of one pair, or all).
    fn journalled_sweeps(&self, pair_no: Option<u32>) -> Result<Vec<(u32, u64, u64)>, StoreError> {
        let mut prefix = META_SWEEP.to_vec();
        if let Some(p) = pair_no {
            prefix.extend_from_slice(&p.to_be_bytes());
        }
        let mut it = self.db().raw_iterator_cf(self.cf(CF_META));
        it.seek(&prefix);
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            if !k.starts_with(&prefix) {
                break;
            }
            if k.len() == SWEEP_KEY_LEN {
                out.push(decode_sweep_key(k)?);
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Deletes the entries with epoch in `from..=to` that no point of the pair sees; false
    /// when stopped by a history rewrite.
    fn sweep(&self, pair_no: u32, from: u64, to: u64, out: &mut PruneOutcome) -> Result<bool, StoreError> {
        let (readers, generation) = {
            let _records = self.lock_records();
            (self.readers(pair_no, from, to)?, self.rewrite_gen())
        };
        let journal = sweep_key(pair_no, from, to);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(match to.checked_add(1) {
            Some(end) => point_key(pair_no, end).to_vec(),
            None => prefix_end(&pair_prefix(pair_no), PENDING_KEY_LEN),
        });
        ro.fill_cache(false);
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_EPOCHS), ro);
        it.seek(point_key(pair_no, from));
        let mut batch = WriteBatch::default();
        // Doomed entries in `batch`: counted in `out.versions` once the batch is written.
        let mut judged = 0usize;
        while let Some(k) = it.key() {
            let vk = decode_pending_key(k)?;
            it.next();
            out.examined += 1;
            // No point at or after it: an open epoch (newer than every point), never swept.
            let Some(&reader) = readers.range(vk.epoch..).next() else { continue };
            let seen = self.version_at(pair_no, vk.disk, vk.chunk, reader)?;
            if seen.is_some_and(|(e, _)| e == vk.epoch) {
                continue;
            }
            let v = self.get_version(&vk)?;
            self.delete_version(&mut batch, &vk, v);
            judged += 1;
            if judged >= SWEEP_BATCH {
                if !self.write_sweep_batch(std::mem::take(&mut batch), generation, None)? {
                    return Ok(false);
                }
                out.versions += judged as u64;
                judged = 0;
            }
        }
        it.status()?;
        let done = self.write_sweep_batch(batch, generation, Some(&journal))?;
        if done {
            out.versions += judged as u64;
        }
        Ok(done)
    }

    /// Epochs of the pair's points from `from` up to the first one at or after `to`: for
    /// every entry with epoch in `from..=to`, the first point at or after it (its reader), if
    /// any. A scan of those `points` keys only, not of every point of the pair: with many
    /// sweeps over many points, decoding the whole list for each made pruning quadratic.
    fn readers(&self, pair_no: u32, from: u64, to: u64) -> Result<BTreeSet<u64>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(prefix_end(&pair_prefix(pair_no), POINT_KEY_LEN));
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_POINTS), ro);
        it.seek(point_key(pair_no, from));
        let mut out = BTreeSet::new();
        while let Some(k) = it.key() {
            let epoch = match k.get(4..POINT_KEY_LEN) {
                Some(e) if k.len() == POINT_KEY_LEN => u64::from_be_bytes(e.try_into().expect("8 bytes")),
                _ => return Err(StoreError::bad_record("points key", format!("length {} instead of 12", k.len()))),
            };
            out.insert(epoch);
            if epoch >= to {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Writes a sweep's deletions unless the history changed since `generation`; with
    /// `journal`, also deletes that journal key, synced. False when stopped.
    fn write_sweep_batch(
        &self,
        mut batch: WriteBatch,
        generation: u64,
        journal: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        let _records = self.lock_records();
        if self.rewrite_gen() != generation {
            tracing::info!("prune sweep stopped: the pair's history was rewritten meanwhile; it resumes later");
            return Ok(false);
        }
        match journal {
            Some(key) => {
                batch.delete_cf(self.cf(CF_META), key);
                self.write_synced(batch)?;
            }
            None => self.write_unsynced(batch)?,
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
