//! Pair records (opaque to the store), pair numbers, and wiping a pair's history.

use crate::keys::{META_NEXT_PAIR_NO, POINT_KEY_LEN, VERSION_KEY_LEN, pair_prefix, prefix_end};
use crate::options::{CF_EPOCHS, CF_META, CF_PAIRS, CF_PENDING, CF_POINTS, CF_VERSIONS};
use crate::{PairId, Store, StoreError};
use rocksdb::{IteratorMode, WriteBatch};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The stored bytes of a pair record.
pub(crate) fn encode_pair<T: Serialize>(pair_id: &PairId, record: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(record).map_err(|e| StoreError::bad_record(format!("pair '{pair_id}' record"), e))
}

impl Store {
    /// Stores the daemon's record of a pair (JSON, not interpreted here). Synced.
    pub fn put_pair<T: Serialize>(&self, pair_id: &PairId, record: &T) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_PAIRS), pair_id.as_str(), encode_pair(pair_id, record)?);
        self.write_synced(batch)
    }

    /// Removes a pair's record (unregistering it). Synced. Its points, versions and pair
    /// number are untouched: see [`Store::wipe_pair`].
    pub fn delete_pair(&self, pair_id: &PairId) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_PAIRS), pair_id.as_str());
        self.write_synced(batch)
    }

    /// Every pair record, in pair id order.
    pub fn load_pairs<T: DeserializeOwned>(&self) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        for item in self.db().iterator_cf(self.cf(CF_PAIRS), IteratorMode::Start) {
            let (k, v) = item?;
            let record = serde_json::from_slice(&v)
                .map_err(|e| StoreError::bad_record(format!("pair '{}' record", String::from_utf8_lossy(&k)), e))?;
            out.push(record);
        }
        Ok(out)
    }

    /// Hands out the next pair number: 1, 2, 3, … never reused, also across restarts. Synced.
    pub fn allocate_pair_no(&self) -> Result<u32, StoreError> {
        let _records = self.lock_records();
        let meta = self.cf(CF_META);
        let next = match self.db().get_pinned_cf(meta, META_NEXT_PAIR_NO)? {
            None => 1,
            Some(v) => u32::from_be_bytes(v.as_ref().try_into().map_err(|_| {
                StoreError::bad_record("pair number counter", format!("{} bytes instead of 4", v.len()))
            })?),
        };
        let after = next.checked_add(1).ok_or(StoreError::PairNumbersExhausted)?;
        let mut batch = WriteBatch::default();
        batch.put_cf(meta, META_NEXT_PAIR_NO, after.to_be_bytes());
        self.write_synced(batch)?;
        Ok(next)
    }

    /// Deletes every version entry, pending entry, recovery point and zero start of the pair, in one
    /// synced batch of range deletions. The chunks the entries named become reclaim
    /// candidates first (reclaim deletes those no other entry names); the pair record and
    /// number stay.
    pub fn wipe_pair(&self, pair_no: u32) -> Result<(), StoreError> {
        let _records = self.lock_records();
        self.bump_rewrite();
        self.list_pair_candidates(pair_no)?;
        let prefix = pair_prefix(pair_no);
        let mut batch = WriteBatch::default();
        for (cf, key_len) in [
            (CF_VERSIONS, VERSION_KEY_LEN),
            (CF_PENDING, VERSION_KEY_LEN),
            (CF_EPOCHS, VERSION_KEY_LEN),
            (CF_POINTS, POINT_KEY_LEN),
        ] {
            batch.delete_range_cf(self.cf(cf), prefix.to_vec(), prefix_end(&prefix, key_len));
        }
        self.drop_zero_from(&mut batch, pair_no, |_| true)?;
        self.write_synced(batch)?;
        tracing::info!(pair_no, "pair history wiped");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{Record, open_seeded, point, record};
    use crate::{ChunkVersion, PairId, Store};

    #[test]
    fn pair_records_round_trip() {
        let (_dir, s) = open_seeded();
        let (a, b) = (PairId::new("web-01").unwrap(), PairId::new("db-02").unwrap());
        s.put_pair(&a, &record("web-01", 1)).unwrap();
        s.put_pair(&b, &record("db-02", 1)).unwrap();
        s.put_pair(&a, &record("web-01", 2)).unwrap();
        let all: Vec<Record> = s.load_pairs().unwrap();
        assert_eq!(all, [record("db-02", 1), record("web-01", 2)]);
        s.delete_pair(&b).unwrap();
        assert_eq!(s.load_pairs::<Record>().unwrap(), [record("web-01", 2)]);
        // A record of the wrong shape names the pair.
        s.put_pair(&b, &"not a record").unwrap();
        let e = s.load_pairs::<Record>().unwrap_err();
        assert!(e.to_string().starts_with("pair 'db-02' record:"), "{e}");
    }

    #[test]
    fn pair_numbers_are_never_reused_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.allocate_pair_no().unwrap(), 1);
        assert_eq!(s.allocate_pair_no().unwrap(), 2);
        s.wipe_pair(2).unwrap();
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        assert_eq!(s.allocate_pair_no().unwrap(), 3);
        let clones: Vec<u32> = std::thread::scope(|t| {
            let hs: Vec<_> = (0..4).map(|_| t.spawn(|| s.clone().allocate_pair_no().unwrap())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let mut sorted = clones.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, [4, 5, 6, 7]);
    }

    #[test]
    fn wipe_pair_removes_only_that_pair() {
        let (_dir, s) = open_seeded();
        let h = *blake3::hash(b"x").as_bytes();
        s.put_chunk(&h, crate::StoredChunk { compressed: false, raw_len: 1, payload: b"x" }).unwrap();
        for (pair_no, name) in [(1, "a"), (2, "b"), (3, "c")] {
            let id = PairId::new(name).unwrap();
            s.write_versions(pair_no, 5, &[(0, 0, ChunkVersion::Data(h)), (1, 9, ChunkVersion::Zero)]).unwrap();
            s.commit_point(pair_no, &point(name, 5), &id, &record(name, 5)).unwrap();
            s.write_versions(pair_no, 6, &[(0, 1, ChunkVersion::Zero)]).unwrap();
        }
        s.flush().unwrap();
        s.wipe_pair(2).unwrap();
        assert!(s.list_points(2).unwrap().is_empty());
        assert_eq!(s.version_at(2, 0, 0, u64::MAX).unwrap(), None);
        assert_eq!(s.versions_at(2, 1, u64::MAX, 0, 10).unwrap(), vec![None; 10]);
        assert_eq!(s.discard_pending(2).unwrap(), 0);
        for pair_no in [1, 3] {
            assert_eq!(s.list_points(pair_no).unwrap().len(), 1);
            assert_eq!(s.version_at(pair_no, 0, 0, 5).unwrap(), Some((5, ChunkVersion::Data(h))));
            assert_eq!(s.version_at(pair_no, 1, 9, 5).unwrap(), Some((5, ChunkVersion::Zero)));
            assert_eq!(s.discard_pending(pair_no).unwrap(), 1);
        }
        assert_eq!(s.has_chunks(&[h]).unwrap(), [true], "chunks stay");
        assert_eq!(s.load_pairs::<Record>().unwrap().len(), 3, "records stay");
    }
}
