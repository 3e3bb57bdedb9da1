//! Recovery points: committing an epoch, listing and marking points.

use crate::keys::{POINT_KEY_LEN, VERSION_KEY_LEN, pair_prefix, point_key, prefix_end};
use crate::options::{CF_PAIRS, CF_PENDING, CF_POINTS};
use crate::{PairId, RecoveryPoint, Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};
use serde::Serialize;

/// Names a point in errors.
fn point_what(pair_no: u32, epoch: u64) -> String {
    format!("recovery point pair #{pair_no} epoch {epoch}")
}

fn decode_point(pair_no: u32, epoch: u64, bytes: &[u8]) -> Result<RecoveryPoint, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::bad_record(point_what(pair_no, epoch), e))
}

fn encode_point(pair_no: u32, p: &RecoveryPoint) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(p).map_err(|e| StoreError::bad_record(point_what(pair_no, p.epoch), e))
}

/// Epoch of a `points` key.
fn key_epoch(k: &[u8]) -> Result<u64, StoreError> {
    match k.get(4..POINT_KEY_LEN) {
        Some(e) if k.len() == POINT_KEY_LEN => Ok(u64::from_be_bytes(e.try_into().expect("8 bytes"))),
        _ => Err(StoreError::bad_record("points key", format!("length {} instead of 12", k.len()))),
    }
}

impl Store {
    /// Makes `point.epoch` a recovery point: ONE synced write batch puts the point and the
    /// pair record and drops the pair's `pending` lists up to that epoch (the entries stay:
    /// they are the point's data). Later open epochs keep their lists. Durable on return, so
    /// the epoch may be acknowledged then.
    ///
    /// Refused when the point's id differs from its epoch, its pair id from `pair_id`, or its
    /// epoch is not newer than the pair's newest committed point.
    pub fn commit_point<T: Serialize>(
        &self,
        pair_no: u32,
        point: &RecoveryPoint,
        pair_id: &PairId,
        pair_record: &T,
    ) -> Result<(), StoreError> {
        let invalid = |reason: String| StoreError::InvalidPoint { pair_no, id: point.id, reason };
        if point.id != point.epoch {
            return Err(invalid(format!("id must be the epoch it commits ({})", point.epoch)));
        }
        if point.pair_id != *pair_id {
            return Err(invalid(format!("belongs to pair '{}', not '{pair_id}'", point.pair_id)));
        }
        let _records = self.lock_records();
        self.make_bulk_durable()?;
        if let Some(committed) = self.latest_committed_epoch(pair_no)?
            && point.epoch <= committed
        {
            return Err(StoreError::EpochNotOpen { pair_no, epoch: point.epoch, committed });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_POINTS), point_key(pair_no, point.epoch), encode_point(pair_no, point)?);
        batch.put_cf(self.cf(CF_PAIRS), pair_id.as_str(), crate::pairs::encode_pair(pair_id, pair_record)?);
        let pending_end = match point.epoch.checked_add(1) {
            Some(next) => point_key(pair_no, next).to_vec(),
            None => prefix_end(&pair_prefix(pair_no), VERSION_KEY_LEN),
        };
        batch.delete_range_cf(self.cf(CF_PENDING), point_key(pair_no, 0).to_vec(), pending_end);
        self.write_synced(batch)?;
        tracing::debug!(pair_no, epoch = point.epoch, "recovery point committed");
        Ok(())
    }

    /// Every point of the pair, oldest first.
    pub fn list_points(&self, pair_no: u32) -> Result<Vec<RecoveryPoint>, StoreError> {
        let prefix = pair_prefix(pair_no);
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(prefix_end(&prefix, POINT_KEY_LEN));
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_POINTS), ro);
        it.seek(prefix);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            out.push(decode_point(pair_no, key_epoch(k)?, v)?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// The point with this id (= the epoch it committed).
    pub fn get_point(&self, pair_no: u32, id: u64) -> Result<Option<RecoveryPoint>, StoreError> {
        self.db()
            .get_pinned_cf(self.cf(CF_POINTS), point_key(pair_no, id))?
            .map(|v| decode_point(pair_no, id, &v))
            .transpose()
    }

    /// The newest point of the pair.
    pub fn latest_point(&self, pair_no: u32) -> Result<Option<RecoveryPoint>, StoreError> {
        self.last_point_entry(pair_no, |epoch, v| decode_point(pair_no, epoch, v))
    }

    /// The epoch of the newest point of the pair, without decoding it.
    pub(crate) fn latest_committed_epoch(&self, pair_no: u32) -> Result<Option<u64>, StoreError> {
        self.last_point_entry(pair_no, |epoch, _| Ok(epoch))
    }

    /// Applies `f` to the epoch and value of the pair's last `points` entry.
    fn last_point_entry<R>(
        &self,
        pair_no: u32,
        f: impl FnOnce(u64, &[u8]) -> Result<R, StoreError>,
    ) -> Result<Option<R>, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(pair_prefix(pair_no).to_vec());
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_POINTS), ro);
        it.seek_for_prev(point_key(pair_no, u64::MAX));
        match (it.key(), it.value()) {
            (Some(k), Some(v)) => Ok(Some(f(key_epoch(k)?, v)?)),
            _ => {
                it.status()?;
                Ok(None)
            }
        }
    }

    /// Rewrites a committed point's marks (pinned, verified_at, tested_at, damage). Synced. Anything
    /// else differing from the stored point is refused: a point never changes once committed.
    pub fn update_point(&self, pair_no: u32, point: &RecoveryPoint) -> Result<(), StoreError> {
        let _records = self.lock_records();
        let id = point.id;
        let mut stored = self.get_point(pair_no, id)?.ok_or(StoreError::PointNotFound { pair_no, id })?;
        stored.pinned = point.pinned;
        stored.verified_at.clone_from(&point.verified_at);
        stored.tested_at.clone_from(&point.tested_at);
        stored.damage.clone_from(&point.damage);
        if stored != *point {
            return Err(StoreError::InvalidPoint {
                pair_no,
                id,
                reason: "only pinned, verified_at, tested_at and damage may change once committed".into(),
            });
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_POINTS), point_key(pair_no, id), encode_point(pair_no, point)?);
        self.write_synced(batch)
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{open_temp, point, record};
    use crate::{ChunkVersion, PairId, StoreError};

    #[test]
    fn points_list_oldest_first_per_pair() {
        let (_dir, s) = open_temp();
        let (a, b) = (PairId::new("a").unwrap(), PairId::new("b").unwrap());
        assert_eq!(s.latest_point(1).unwrap(), None);
        for e in [3, 10, 11] {
            s.commit_point(1, &point("a", e), &a, &record("a", e)).unwrap();
        }
        s.commit_point(2, &point("b", 5), &b, &record("b", 5)).unwrap();
        let epochs: Vec<u64> = s.list_points(1).unwrap().iter().map(|p| p.epoch).collect();
        assert_eq!(epochs, [3, 10, 11]);
        assert_eq!(s.latest_point(1).unwrap().unwrap().epoch, 11);
        assert_eq!(s.latest_point(2).unwrap().unwrap(), point("b", 5));
        assert_eq!(s.latest_point(3).unwrap(), None);
        assert_eq!(s.get_point(1, 10).unwrap().unwrap(), point("a", 10));
        assert_eq!(s.get_point(1, 4).unwrap(), None);
        assert!(s.list_points(0).unwrap().is_empty());
    }

    #[test]
    fn committed_points_cannot_change() {
        let (_dir, s) = open_temp();
        let a = PairId::new("a").unwrap();
        s.commit_point(1, &point("a", 7), &a, &record("a", 7)).unwrap();
        // Same or older epoch: neither a new point nor versions may be written there.
        let e = s.commit_point(1, &point("a", 7), &a, &record("a", 7)).unwrap_err();
        assert!(matches!(e, StoreError::EpochNotOpen { pair_no: 1, epoch: 7, committed: 7 }), "{e}");
        let e = s.write_versions(1, 6, &[(0, 0, ChunkVersion::Zero)]).unwrap_err();
        assert!(matches!(e, StoreError::EpochNotOpen { .. }), "{e}");
        // Marks may change, data may not.
        let mut p = point("a", 7);
        p.pinned = true;
        p.verified_at = Some("2025-01-01T00:00:00Z".into());
        s.update_point(1, &p).unwrap();
        assert_eq!(s.get_point(1, 7).unwrap().unwrap(), p);
        p.sizes.changed_chunks += 1;
        assert!(matches!(s.update_point(1, &p).unwrap_err(), StoreError::InvalidPoint { .. }));
        assert!(matches!(s.update_point(1, &point("a", 8)).unwrap_err(), StoreError::PointNotFound { .. }));
    }

    #[test]
    fn commit_refuses_inconsistent_points() {
        let (_dir, s) = open_temp();
        let a = PairId::new("a").unwrap();
        let mut p = point("a", 7);
        p.id = 8;
        assert!(s.commit_point(1, &p, &a, &record("a", 7)).is_err());
        let e = s.commit_point(1, &point("b", 7), &a, &record("a", 7)).unwrap_err();
        assert!(e.to_string().contains("belongs to pair 'b'"), "{e}");
        assert!(s.list_points(1).unwrap().is_empty());
    }
}
