//! Runs of zero chunks: what makes a sparse disk's initial sync cost its data, not its size.
//!
//! An agent sends the holes of a sparse disk as runs ("chunks `first .. first + count` are
//! zero at this epoch") instead of one zero item per chunk. A run costs:
//!
//! - an explicit zero entry (as [`Store::write_versions`]) only for the chunks of the run that
//!   already have a version entry (an older lineage's point kept, or an earlier epoch): cost
//!   proportional to the entries already there, found with one range scan that skips from
//!   chunk to chunk;
//! - for the others, nothing per chunk: the disk's **zero start** (`meta` key `zerofrom · pair ·
//!   disk`, an epoch) says that from that epoch on, a chunk with no version entry at or before
//!   the epoch read reads as zero. [`Store::version_at`] and [`Store::versions_at`] answer
//!   `Zero` for such chunks (at the zero start) instead of `None`.
//!
//! Why that is sound: a committed point at or after the zero start was made by a pass that
//! covered every chunk (an initial or full pass: each chunk sent, or inside a run); a chunk
//! with no entry up to that point was inside a run, and has been zero since. A point older
//! than the zero start reads as before (`None` for a chunk never written). The zero start is
//! written only when absent (it only ever names the first run's epoch) and, like the open
//! epoch's entries, is dropped by [`Store::discard_pending`] when its epoch is abandoned.

use crate::keys::{VERSION_KEY_LEN, decode_version_key, version_key, zero_from_key, zero_from_prefix};
use crate::options::{CF_META, CF_VERSIONS};
use crate::{ChunkVersion, Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};

/// Explicit zero entries written per [`Store::write_versions`] call by a run.
const ENTRY_BATCH: usize = 4096;

impl Store {
    /// Records that chunks `first .. first + count` of `disk` are all zero in the pair's open
    /// epoch `epoch` (see the [module docs](self)); returns how many explicit zero entries it
    /// wrote. Refused like [`Store::write_versions`] when `epoch` is not open, and with
    /// [`StoreError::Range`] for an empty or overflowing run. Unsynced, like the entries.
    pub fn write_zero_run(&self, pair_no: u32, epoch: u64, disk: u32, first: u64, count: u64) -> Result<u64, StoreError> {
        let range_err = |reason: &str| StoreError::Range { pair_no, disk, first, count, reason: reason.to_string() };
        if count == 0 {
            return Err(range_err("a run of zero chunks needs at least one chunk"));
        }
        let end = first.checked_add(count).ok_or_else(|| range_err("end overflows"))?;
        if let Some(committed) = self.latest_committed_epoch(pair_no)?
            && epoch <= committed
        {
            return Err(StoreError::EpochNotOpen { pair_no, epoch, committed });
        }
        let mut written = 0u64;
        let mut entries = Vec::new();
        for chunk in self.chunks_with_entries(pair_no, disk, first, end)? {
            entries.push((disk, chunk, ChunkVersion::Zero));
            if entries.len() == ENTRY_BATCH {
                self.write_versions(pair_no, epoch, &entries)?;
                written += entries.len() as u64;
                entries.clear();
            }
        }
        self.write_versions(pair_no, epoch, &entries)?;
        written += entries.len() as u64;
        if self.zero_from(pair_no, disk)?.is_none() {
            let mut batch = WriteBatch::default();
            batch.put_cf(self.cf(CF_META), zero_from_key(pair_no, disk), epoch.to_be_bytes());
            self.write_unsynced(batch)?;
            tracing::debug!(pair_no, disk, epoch, "zero start recorded: chunks without a version read as zero");
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
        let committed = self.latest_committed_epoch(pair_no)?.unwrap_or(0);
        let prefix = zero_from_prefix(pair_no);
        let mut it = self.db().raw_iterator_cf(self.cf(CF_META));
        it.seek(prefix);
        let mut batch = WriteBatch::default();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            if v.len() != 8 || u64::from_be_bytes(v.try_into().expect("8 bytes")) > committed {
                batch.delete_cf(self.cf(CF_META), k);
            }
            it.next();
        }
        it.status()?;
        let n = batch.len() as u64;
        if n > 0 {
            self.write_synced(batch)?;
        }
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

    #[test]
    fn a_run_costs_only_the_entries_already_there() {
        let (_dir, s) = open_seeded();
        // An older point: chunks 10 and 1000 written.
        s.write_versions(1, 2, &[(0, 10, data(1)), (0, 1000, data(2))]).unwrap();
        commit(&s, 1, 2);
        // The next epoch: the first 1 Mi chunks are one hole, chunk 5 is data.
        let explicit = s.write_zero_run(1, 5, 0, 0, 1 << 20).unwrap();
        assert_eq!(explicit, 2, "only the chunks that had entries");
        s.write_versions(1, 5, &[(0, 5, data(3))]).unwrap();
        commit(&s, 1, 5);
        assert_eq!(s.zero_from(1, 0).unwrap(), Some(5));
        assert_eq!(s.version_at(1, 0, 10, 5).unwrap(), Some((5, ChunkVersion::Zero)), "explicit");
        assert_eq!(s.version_at(1, 0, 77, 5).unwrap(), Some((5, ChunkVersion::Zero)), "no entry: the zero start");
        assert_eq!(s.version_at(1, 0, 5, 9).unwrap(), Some((5, data(3))));
        // The older point reads as before.
        assert_eq!(s.version_at(1, 0, 10, 2).unwrap(), Some((2, data(1))));
        assert_eq!(s.version_at(1, 0, 77, 2).unwrap(), None);
        assert_eq!(s.versions_at(1, 0, 2, 9, 3).unwrap(), vec![None, Some(data(1)), None]);
        let z = Some(ChunkVersion::Zero);
        assert_eq!(s.versions_at(1, 0, 5, 4, 3).unwrap(), vec![z, Some(data(3)), z]);
        assert_eq!(s.versions_at(1, 0, 5, 999, 2).unwrap(), vec![z, z]);
        // Other disks and pairs are not concerned.
        assert_eq!(s.version_at(1, 1, 77, 5).unwrap(), None);
        assert_eq!(s.version_at(2, 0, 77, 5).unwrap(), None);
    }

    #[test]
    fn an_abandoned_run_leaves_nothing() {
        let (_dir, s) = open_seeded();
        s.write_versions(1, 2, &[(0, 10, data(1))]).unwrap();
        commit(&s, 1, 2);
        s.write_zero_run(1, 3, 0, 0, 100).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), Some(3));
        s.discard_pending(1).unwrap();
        assert_eq!(s.zero_from(1, 0).unwrap(), None);
        assert_eq!(s.version_at(1, 0, 10, 9).unwrap(), Some((2, data(1))));
        assert_eq!(s.version_at(1, 0, 11, 9).unwrap(), None);
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
    }
}
