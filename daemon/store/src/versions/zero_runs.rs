//! Runs of zero chunks: what makes a sparse disk's initial sync cost its data, not its size.
//!
//! An agent sends the holes of a sparse disk as runs ("chunks `first .. first + count` are
//! zero at this epoch") instead of one zero item per chunk. The disk's **zero start** (`meta`
//! key `zerofrom · pair · disk`, an epoch *Z*) says: at a point *P* ≥ *Z*, a chunk with no
//! version entry at or before *P* reads as zero ([`Store::version_at`] and
//! [`Store::versions_at`] answer `Zero` at *Z* for it instead of `None`). A run costs:
//!
//! - in the pair's **first** epoch (no committed point: a first copy, or after a restart
//!   that wiped the history), the zero start is set to that epoch, and explicit zero entries
//!   are written only for the run's chunks that already have an entry (written earlier in
//!   the same epoch): one seek per such chunk, nothing per chunk of a hole;
//! - later, with a zero start: the same, explicit entries only where entries exist (the
//!   chunks that held data since);
//! - later, without a zero start (the pair's first point was copied chunk by chunk): an
//!   explicit zero entry for every chunk of the run, as if each had been sent as `Zero`.
//!
//! Why that is sound. (1) The zero start is only ever set in the pair's first epoch, which
//! is a complete copy: committing it makes every chunk of every disk readable, so every
//! chunk was either sent (an entry) or inside a run of that epoch. Hence a chunk with no
//! entry at any point *P* ≥ *Z* was in a run at *Z* (zero then), and no change of it was
//! shipped up to *P* (a change ships an entry, and invariant 1 ships every change): it is
//! zero at *P*. (2) A run never hides data written before it: a chunk of the run with any
//! entry gets an explicit zero entry at the run's epoch, newer than those entries; data sent
//! after the run (same or later epoch) is an entry newer than (or replacing) that zero. (3)
//! An abandoned epoch takes its zero start with it ([`Store::discard_pending`]); so does a
//! wipe of the pair's history ([`Store::wipe_pair`], a wiping restart) and a rollback to a
//! point older than it. (4) Prune keeps, for every kept point, the newest entry at or before
//! it, and never touches the zero start: a chunk without entries stays so, a chunk with
//! entries keeps the one each kept point reads. A point older than *Z* reads as before.
//! (5) A grown disk's new chunks all ship in the epoch cut with the new size
//! (`reconfigure.rs`), so they are covered like any chunk of a later epoch.

use crate::keys::{
    VERSION_KEY_LEN, ZERO_FROM_KEY_LEN, decode_version_key, version_key, zero_from_key, zero_from_prefix,
};
use crate::options::{CF_META, CF_VERSIONS};
use crate::{ChunkVersion, Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};

/// Explicit zero entries written per [`Store::write_versions`] call by a run.
const ENTRY_BATCH: u64 = 4096;

impl Store {
    /// Records that chunks `first .. first + count` of `disk` are all zero in the pair's open
    /// epoch `epoch` (see the [module docs](self)); returns how many explicit zero entries it
    /// wrote. Refused like [`Store::write_versions`] when `epoch` is not open, and with
    /// [`StoreError::Range`] for an empty or overflowing run. Unsynced, like the entries.
    pub fn write_zero_run(
        &self,
        pair_no: u32,
        epoch: u64,
        disk: u32,
        first: u64,
        count: u64,
    ) -> Result<u64, StoreError> {
        let range_err = |reason: &str| StoreError::Range { pair_no, disk, first, count, reason: reason.to_string() };
        if count == 0 {
            return Err(range_err("a run of zero chunks needs at least one chunk"));
        }
        let end = first.checked_add(count).ok_or_else(|| range_err("end overflows"))?;
        let committed = self.latest_committed_epoch(pair_no)?;
        if let Some(committed) = committed
            && epoch <= committed
        {
            return Err(StoreError::EpochNotOpen { pair_no, epoch, committed });
        }
        // A zero start newer than the newest point is stale (an epoch abandoned, not yet
        // discarded): as good as none.
        let zero_from = self.zero_from(pair_no, disk)?;
        let mut written = 0u64;
        if let Some(committed) = committed
            && zero_from.is_none_or(|z| z > committed)
        {
            // Points copied chunk by chunk: no chunk may read as zero without its entry.
            let mut at = first;
            while at < end {
                let n = ENTRY_BATCH.min(end - at);
                let entries: Vec<_> = (at..at + n).map(|c| (disk, c, ChunkVersion::Zero)).collect();
                self.write_versions(pair_no, epoch, &entries)?;
                written += n;
                at += n;
            }
            return Ok(written);
        }
        let explicit = self.chunks_with_entries(pair_no, disk, first, end)?;
        for part in explicit.chunks(ENTRY_BATCH as usize) {
            let entries: Vec<_> = part.iter().map(|&c| (disk, c, ChunkVersion::Zero)).collect();
            self.write_versions(pair_no, epoch, &entries)?;
            written += part.len() as u64;
        }
        if committed.is_none() && zero_from != Some(epoch) {
            // The pair's first epoch: any older zero start is stale (a wiped history).
            let mut batch = WriteBatch::default();
            batch.put_cf(self.cf(CF_META), zero_from_key(pair_no, disk), epoch.to_be_bytes());
            self.write_unsynced(batch)?;
            tracing::debug!(
                pair_no, disk, epoch, stale = ?zero_from,
                "zero start recorded: chunks without a version read as zero from this epoch"
            );
        }
        Ok(written)
    }

    /// The disk's zero start: from this epoch on, a chunk without a version reads as zero.
    pub fn zero_from(&self, pair_no: u32, disk: u32) -> Result<Option<u64>, StoreError> {
        match self.db().get_pinned_cf(self.cf(CF_META), zero_from_key(pair_no, disk))? {
            None => Ok(None),
            Some(v) => {
                let b: [u8; 8] = v.as_ref().try_into().map_err(|_| {
                    StoreError::bad_record(
                        format!("zero start of pair #{pair_no} disk {disk}"),
                        format!("{} bytes instead of 8", v.len()),
                    )
                })?;
                Ok(Some(u64::from_be_bytes(b)))
            }
        }
    }

    /// What a chunk without a version entry at or before `epoch` reads as: zero (written at
    /// the zero start) when `epoch` is at or after the disk's zero start, else nothing.
    pub(crate) fn missing_version(
        &self,
        pair_no: u32,
        disk: u32,
        epoch: u64,
    ) -> Result<Option<(u64, ChunkVersion)>, StoreError> {
        Ok(self.zero_from(pair_no, disk)?.filter(|z| *z <= epoch).map(|z| (z, ChunkVersion::Zero)))
    }

    /// Drops the pair's zero starts newer than its newest committed point (their epoch was
    /// abandoned); returns how many. Part of [`Store::discard_pending`].
    pub(crate) fn discard_zero_from(&self, pair_no: u32) -> Result<u64, StoreError> {
        let committed = self.latest_committed_epoch(pair_no)?;
        let mut batch = WriteBatch::default();
        let n = self.drop_zero_from(&mut batch, pair_no, |z| committed.is_none_or(|c| z > c))?;
        if n > 0 {
            self.write_synced(batch)?;
            tracing::info!(pair_no, disks = n, "zero starts of an abandoned epoch dropped");
        }
        Ok(n)
    }

    /// Adds to `batch` the deletion of the pair's zero starts for which `drop(epoch)` holds
    /// (and of any malformed one); returns how many. For the history's rewrites (wipe,
    /// rollback), in their own batch.
    pub(crate) fn drop_zero_from(
        &self,
        batch: &mut WriteBatch,
        pair_no: u32,
        drop: impl Fn(u64) -> bool,
    ) -> Result<u64, StoreError> {
        let prefix = zero_from_prefix(pair_no);
        let mut it = self.db().raw_iterator_cf(self.cf(CF_META));
        it.seek(prefix);
        let mut n = 0;
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            let epoch = <[u8; 8]>::try_from(v).map(u64::from_be_bytes);
            if k.len() != ZERO_FROM_KEY_LEN || epoch.is_err() || epoch.is_ok_and(&drop) {
                batch.delete_cf(self.cf(CF_META), k);
                n += 1;
            }
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// The chunks in `first..end` of a disk with at least one version entry, ascending: one
    /// seek per such chunk, nothing per chunk without.
    fn chunks_with_entries(&self, pair_no: u32, disk: u32, first: u64, end: u64) -> Result<Vec<u64>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(version_key(pair_no, disk, end, u64::MAX).to_vec());
        ro.fill_cache(false);
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_VERSIONS), ro);
        it.seek(version_key(pair_no, disk, first, u64::MAX));
        let mut out = Vec::new();
        while let Some(k) = it.key() {
            debug_assert_eq!(k.len(), VERSION_KEY_LEN);
            let vk = decode_version_key(k)?;
            out.push(vk.chunk);
            match vk.chunk.checked_add(1) {
                Some(next) if next < end => it.seek(version_key(pair_no, disk, next, u64::MAX)),
                _ => break,
            }
        }
        it.status()?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{open_seeded, point, record};
    use crate::{PairId, Store};

    fn commit(s: &Store, pair_no: u32, epoch: u64) {
        let name = format!("p{pair_no}");
        let id = PairId::new(&name).unwrap();
        s.commit_point(pair_no, &point(&name, epoch), &id, &record(&name, epoch)).unwrap();
    }

    fn data(b: u8) -> ChunkVersion {
        ChunkVersion::Data([b; 32])
    }

    const Z: Option<ChunkVersion> = Some(ChunkVersion::Zero);

    #[test]
    fn a_first_copy_costs_its_data_and_later_points_read_exactly() {
        let (_dir, s) = open_seeded();
        // Epoch 1, the first copy: one run over a 1 Mi chunk hole, then data over part of it.
        assert_eq!(s.write_zero_run(1, 1, 0, 0, 1 << 20).unwrap(), 0, "no entry per chunk of a hole");
        s.write_versions(1, 1, &[(0, 5, data(1)), (0, 1000, data(2))]).unwrap();
        commit(&s, 1, 1);
        assert_eq!(s.zero_from(1, 0).unwrap(), Some(1));
        assert_eq!(s.version_at(1, 0, 5, 1).unwrap(), Some((1, data(1))), "data sent after the run wins");
        assert_eq!(s.version_at(1, 0, 77, 1).unwrap(), Some((1, ChunkVersion::Zero)));
        assert_eq!(s.versions_at(1, 0, 1, 4, 3).unwrap(), vec![Z, Some(data(1)), Z]);
        // Epoch 2: data over a chunk of the old hole, and a run over a chunk that held data.
        s.write_versions(1, 2, &[(0, 77, data(3))]).unwrap();
        assert_eq!(s.write_zero_run(1, 2, 0, 4, 4).unwrap(), 1, "an explicit zero for chunk 5 only");
        commit(&s, 1, 2);
        assert_eq!(s.versions_at(1, 0, 2, 4, 3).unwrap(), vec![Z, Z, Z]);
        assert_eq!(s.version_at(1, 0, 77, 2).unwrap(), Some((2, data(3))));
        assert_eq!(s.version_at(1, 0, 1000, 2).unwrap(), Some((1, data(2))));
        // Point 1 reads as it was.
        assert_eq!(s.versions_at(1, 0, 1, 4, 3).unwrap(), vec![Z, Some(data(1)), Z]);
        assert_eq!(s.version_at(1, 0, 77, 1).unwrap(), Some((1, ChunkVersion::Zero)));
        // Other disks and pairs are not concerned.
        assert_eq!(s.version_at(1, 1, 77, 2).unwrap(), None);
        assert_eq!(s.version_at(2, 0, 77, 2).unwrap(), None);
        // Prune point 1: point 2 reads the same.
        s.remove_points(1, &[1]).unwrap();
        assert_eq!(s.versions_at(1, 0, 2, 4, 3).unwrap(), vec![Z, Z, Z]);
        assert_eq!(s.version_at(1, 0, 77, 2).unwrap(), Some((2, data(3))));
        assert_eq!(s.version_at(1, 0, 1000, 2).unwrap(), Some((1, data(2))));
        assert_eq!(s.version_at(1, 0, 999, 2).unwrap(), Some((1, ChunkVersion::Zero)));
    }

    #[test]
    fn several_runs_and_disks_in_one_epoch() {
        let (_dir, s) = open_seeded();
        s.write_versions(1, 3, &[(0, 12, data(1))]).unwrap();
        for (disk, first, count) in [(0, 0, 10), (0, 12, 8), (1, 0, 20), (0, 10, 2)] {
            s.write_zero_run(1, 3, disk, first, count).unwrap();
        }
        commit(&s, 1, 3);
        assert_eq!((s.zero_from(1, 0).unwrap(), s.zero_from(1, 1).unwrap()), (Some(3), Some(3)));
        assert!(s.versions_at(1, 0, 3, 0, 20).unwrap().iter().all(|v| *v == Z), "chunk 12 zeroed by the later run");
        assert!(s.versions_at(1, 1, 3, 0, 20).unwrap().iter().all(|v| *v == Z));
    }

    #[test]
    fn an_abandoned_or_wiped_first_copy_leaves_nothing() {
        let (_dir, s) = open_seeded();
        s.write_zero_run(1, 3, 0, 0, 100).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), Some(3));
        s.discard_pending(1).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), None);
        assert_eq!(s.version_at(1, 0, 10, 9).unwrap(), None);
        // A first copy committed, then the history wiped (a restart with wipe).
        s.write_zero_run(1, 4, 0, 0, 100).unwrap();
        commit(&s, 1, 4);
        let id = PairId::new("p1").unwrap();
        s.restart_pair(1, &id, &record("p1", 5), true).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), None);
        assert_eq!(s.version_at(1, 0, 10, 9).unwrap(), None);
        // The new lineage's first copy sets its own zero start.
        s.write_zero_run(1, 6, 0, 50, 50).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), Some(6));
        s.wipe_pair(1).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), None);
    }

    #[test]
    fn after_a_copy_chunk_by_chunk_a_run_writes_every_entry() {
        let (_dir, s) = open_seeded();
        let all: Vec<_> = (0..10).map(|c| (0, c, data(1))).collect();
        s.write_versions(1, 1, &all).unwrap();
        commit(&s, 1, 1);
        assert_eq!(s.write_zero_run(1, 2, 0, 3, 4).unwrap(), 4);
        assert_eq!(s.zero_from(1, 0).unwrap(), None, "only a first copy sets the zero start");
        commit(&s, 1, 2);
        let v = s.versions_at(1, 0, 2, 0, 10).unwrap();
        assert_eq!(v[2..8], [Some(data(1)), Z, Z, Z, Z, Some(data(1))]);
        assert_eq!(s.version_at(1, 0, 12, 2).unwrap(), None, "never written, never zero");
        assert_eq!(s.version_at(1, 0, 4, 1).unwrap(), Some((1, data(1))));
    }

    #[test]
    fn bad_runs_are_refused_and_change_nothing() {
        let (_dir, s) = open_seeded();
        s.write_versions(1, 2, &[(0, 10, data(1))]).unwrap();
        commit(&s, 1, 2);
        assert!(matches!(s.write_zero_run(1, 2, 0, 0, 10), Err(StoreError::EpochNotOpen { .. })));
        assert!(matches!(s.write_zero_run(1, 3, 0, 0, 0), Err(StoreError::Range { .. })));
        assert!(matches!(s.write_zero_run(1, 3, 0, u64::MAX, 2), Err(StoreError::Range { .. })));
        assert_eq!(s.zero_from(1, 0).unwrap(), None);
        assert_eq!(s.version_at(1, 0, 10, 9).unwrap(), Some((2, data(1))));
        assert_eq!(s.version_at(1, 0, 11, 9).unwrap(), None);
    }
}
