//! The standby's notifications waiting to be delivered (its outbox) and the conditions it has
//! told operators about, kept in the `meta` family so that a restart neither loses an event
//! nor tells one twice: `notice` + sequence number → one notification (opaque bytes, JSON of
//! the standby's own type), `notify_state` → the told conditions.

use crate::options::CF_META;
use crate::{Store, StoreError};
use rocksdb::WriteBatch;

const NOTICE_PREFIX: &[u8] = b"notice";
const NOTIFY_STATE: &[u8] = b"notify_state";

fn notice_key(seq: u64) -> Vec<u8> {
    let mut k = NOTICE_PREFIX.to_vec();
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

impl Store {
    /// Writes (or rewrites) queued notification `seq`, and the told conditions with it when
    /// given, in one synced batch: the event and the state that produced it land together.
    pub fn put_notice(&self, seq: u64, value: &[u8], state: Option<&[u8]>) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), notice_key(seq), value);
        if let Some(s) = state {
            batch.put_cf(self.cf(CF_META), NOTIFY_STATE, s);
        }
        self.write_synced(batch)
    }

    /// Removes notification `seq` (delivered to every target, or given up). Synced.
    pub fn delete_notice(&self, seq: u64) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_META), notice_key(seq));
        self.write_synced(batch)
    }

    /// Every queued notification, oldest first, with its sequence number.
    pub fn list_notices(&self) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let mut it = self.db().raw_iterator_cf(self.cf(CF_META));
        it.seek(NOTICE_PREFIX);
        let mut out = Vec::new();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let Some(seq) = k.strip_prefix(NOTICE_PREFIX) else { break };
            let seq: [u8; 8] = seq.try_into().map_err(|_| StoreError::BadRecord {
                what: "notification key".into(),
                reason: format!("{} bytes after its prefix, not 8", seq.len()),
            })?;
            out.push((u64::from_be_bytes(seq), v.to_vec()));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Writes the told conditions alone (a condition that cleared without a message). Synced.
    pub fn put_notify_state(&self, state: &[u8]) -> Result<(), StoreError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META), NOTIFY_STATE, state);
        self.write_synced(batch)
    }

    /// The told conditions as last written, if ever.
    pub fn notify_state(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db().get_cf(self.cf(CF_META), NOTIFY_STATE)?)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn notices_list_in_order_and_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = crate::Store::open(dir.path()).unwrap();
            s.put_notice(2, b"second", None).unwrap();
            s.put_notice(1, b"first", Some(b"state-1")).unwrap();
            s.put_notice(300, b"third", None).unwrap();
            s.put_drill(1, 1, "d", &"a drill record beside them").unwrap();
            s.delete_notice(2).unwrap();
        }
        let s = crate::Store::open(dir.path()).unwrap();
        let v = s.list_notices().unwrap();
        assert_eq!(v, [(1, b"first".to_vec()), (300, b"third".to_vec())]);
        assert_eq!(s.notify_state().unwrap().as_deref(), Some(&b"state-1"[..]));
        s.put_notify_state(b"state-2").unwrap();
        assert_eq!(s.notify_state().unwrap().as_deref(), Some(&b"state-2"[..]));
    }
}
