//! Drill evidence: one JSON record per drill, kept apart from the pair record (which every
//! commit rewrites), in the `meta` family under `drill` + pair number + request time + id, so
//! a pair's drills list in the order they were asked for.

use crate::options::CF_META;
use crate::{Store, StoreError};
use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

const PREFIX: &[u8] = b"drill";

fn pair_prefix(pair_no: u32) -> Vec<u8> {
    let mut k = PREFIX.to_vec();
    k.extend_from_slice(&pair_no.to_be_bytes());
    k
}

fn key(pair_no: u32, requested_ms: u64, id: &str) -> Vec<u8> {
    let mut k = pair_prefix(pair_no);
    k.extend_from_slice(&requested_ms.to_be_bytes());
    k.extend_from_slice(id.as_bytes());
    k
}

impl Store {
    /// Writes (or rewrites) the record of drill `id` of the pair, asked for at
    /// `requested_ms`. Synced.
    pub fn put_drill<T: Serialize>(
        &self,
        pair_no: u32,
        requested_ms: u64,
        id: &str,
        record: &T,
    ) -> Result<(), StoreError> {
        let v = serde_json::to_vec(record).map_err(|e| StoreError::bad_record(format!("drill '{id}'"), e))?;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), key(pair_no, requested_ms, id), v);
        self.write_synced(batch)
    }

    /// The pair's drill records, oldest first.
    pub fn list_drills<T: DeserializeOwned>(&self, pair_no: u32) -> Result<Vec<T>, StoreError> {
        let prefix = pair_prefix(pair_no);
        let mut it = self.db().raw_iterator_cf(self.cf(CF_META));
        it.seek(&prefix);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            if !k.starts_with(&prefix) {
                break;
            }
            out.push(serde_json::from_slice(v).map_err(|e| StoreError::bad_record("drill record", e))?);
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Keeps the pair's newest `keep` drill records, deletes the older ones. Synced.
    pub fn trim_drills(&self, pair_no: u32, keep: usize) -> Result<usize, StoreError> {
        let prefix = pair_prefix(pair_no);
        let mut keys = Vec::new();
        let mut it = self.db().raw_iterator_cf(self.cf(CF_META));
        it.seek(&prefix);
        while let Some(k) = it.key() {
            if !k.starts_with(&prefix) {
                break;
            }
            keys.push(k.to_vec());
            it.next();
        }
        it.status()?;
        let excess = keys.len().saturating_sub(keep);
        if excess > 0 {
            let mut batch = WriteBatch::default();
            for k in &keys[..excess] {
                batch.delete_cf(self.cf(CF_META), k);
            }
            self.write_synced(batch)?;
        }
        Ok(excess)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn drills_list_in_request_order_per_pair_and_trim_oldest_first() {
        let (_dir, s) = crate::test_support::open_temp();
        s.put_drill(1, 200, "b", &"second").unwrap();
        s.put_drill(1, 100, "a", &"first").unwrap();
        s.put_drill(2, 50, "x", &"other pair").unwrap();
        s.put_drill(1, 300, "c", &"third").unwrap();
        s.put_drill(1, 200, "b", &"second, updated").unwrap();
        let v: Vec<String> = s.list_drills(1).unwrap();
        assert_eq!(v, ["first", "second, updated", "third"]);
        assert_eq!(s.trim_drills(1, 2).unwrap(), 1);
        let v: Vec<String> = s.list_drills(1).unwrap();
        assert_eq!(v, ["second, updated", "third"]);
        let other: Vec<String> = s.list_drills(2).unwrap();
        assert_eq!(other, ["other pair"], "another pair's drills are untouched");
    }
}
