//! The pack ledger: per pack object, how many of its bytes still hold a live chunk
//! (column family `packs`, key: pack id, 16 bytes).
//!
//! Record: `version u8 (1) · pack_len u32 · chunks u32 · chunk_bytes u32 · live_chunks u32 ·
//! live_bytes u32`, all LE (21 bytes). `chunks`/`chunk_bytes`: what the pack held when it was
//! written (the chunk area, index trailer excluded); `live_*`: the chunks some `packed` entry
//! still locates in it.
//!
//! # Invariants
//! 1. **Every pack a `packed` entry names has a record**, written in the batch that writes the
//!    pack's first entries (`Packs::index_uploaded`, the rewrite's switch).
//! 2. **`live_chunks` never counts fewer entries than name the pack**: it is decremented only
//!    in the batch that deletes or moves an entry naming that pack, by exactly those entries,
//!    under [`Packs::lock_ledger`] (so two updates never read the same old record). It may
//!    count more (an entry overwritten without its old pack being told), which only keeps a
//!    pack longer.
//! 3. **A record goes in the batch that takes its `live_chunks` to 0**, and only then may the
//!    object be deleted; a pack object without a record is garbage (the orphan sweep,
//!    `sweep.rs`, deletes it unless it is being uploaded).

use super::Packs;
use super::location::Location;
use crate::options::{CF_META, CF_PACKED, CF_PACKS};
use crate::{Hash, Store, StoreError};
use rocksdb::WriteBatch;
use std::collections::HashMap;

const RECORD_VERSION: u8 = 1;
const RECORD_LEN: usize = 21;
/// `meta` key present once the ledger covers every `packed` entry (stores of the first S3
/// slice had entries and no ledger: it is built from them on open).
const META_LEDGER: &[u8] = b"packs_ledger";

/// One pack's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct PackRecord {
    pub pack_len: u32,
    pub chunks: u32,
    pub chunk_bytes: u32,
    pub live_chunks: u32,
    pub live_bytes: u32,
}

impl PackRecord {
    pub(crate) fn encode(&self) -> [u8; RECORD_LEN] {
        let mut v = [0u8; RECORD_LEN];
        v[0] = RECORD_VERSION;
        for (i, n) in
            [self.pack_len, self.chunks, self.chunk_bytes, self.live_chunks, self.live_bytes].into_iter().enumerate()
        {
            v[1 + 4 * i..5 + 4 * i].copy_from_slice(&n.to_le_bytes());
        }
        v
    }

    pub(crate) fn decode(pack: &uuid::Uuid, v: &[u8]) -> Result<PackRecord, StoreError> {
        let bad = |reason: String| StoreError::bad_record(format!("ledger record of pack {pack}"), reason);
        if v.len() != RECORD_LEN || v[0] != RECORD_VERSION {
            return Err(bad(format!("{} bytes, version {:?}: not a version 1 record", v.len(), v.first())));
        }
        let at = |i: usize| u32::from_le_bytes(v[1 + 4 * i..5 + 4 * i].try_into().expect("4 bytes"));
        let r =
            PackRecord { pack_len: at(0), chunks: at(1), chunk_bytes: at(2), live_chunks: at(3), live_bytes: at(4) };
        if r.live_chunks > r.chunks || r.live_bytes > r.chunk_bytes || r.chunk_bytes > r.pack_len {
            return Err(bad(format!("inconsistent counts {r:?}")));
        }
        Ok(r)
    }

    /// Share of the chunk area still live (1 for an empty area).
    pub(crate) fn live_fraction(&self) -> f64 {
        if self.chunk_bytes == 0 { 1.0 } else { f64::from(self.live_bytes) / f64::from(self.chunk_bytes) }
    }
}

/// What the packs hold, summed over the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackUsage {
    /// Pack objects some chunk entry names.
    pub packs: u64,
    /// Their bytes (whole objects).
    pub pack_bytes: u64,
    /// Bytes of the chunks still named.
    pub live_bytes: u64,
    /// Bytes of chunks no longer named (freed by rewriting or deleting their packs).
    pub garbage_bytes: u64,
    /// Packs whose live share is under the rewrite threshold (rewritten by the next reclaim).
    pub sparse_packs: u64,
}

pub(crate) fn pack_key(pack: &uuid::Uuid) -> [u8; 16] {
    *pack.as_bytes()
}

impl Packs {
    /// Held while a ledger record is read, changed and written back (invariant 2).
    pub(crate) fn lock_ledger(&self) -> std::sync::MutexGuard<'_, ()> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record of `pack`, None when it has none.
    pub(crate) fn record(&self, store: &Store, pack: &uuid::Uuid) -> Result<Option<PackRecord>, StoreError> {
        store.db().get_pinned_cf(store.cf(CF_PACKS), pack_key(pack))?.map(|v| PackRecord::decode(pack, &v)).transpose()
    }

    /// Every record, in pack id order.
    pub(crate) fn records(&self, store: &Store) -> Result<Vec<(uuid::Uuid, PackRecord)>, StoreError> {
        let mut out = Vec::new();
        let mut it = store.db().raw_iterator_cf(store.cf(CF_PACKS));
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let id = uuid::Uuid::from_slice(k)
                .map_err(|_| StoreError::bad_record("pack ledger key", format!("{} bytes, not a pack id", k.len())))?;
            out.push((id, PackRecord::decode(&id, v)?));
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Adds to `batch` the deletion of the `packed` entries of `hashes` and the matching
    /// ledger updates; returns the packs left with no live chunk (their records deleted in
    /// `batch`: delete their objects once `batch` is durable). The caller holds
    /// [`Packs::lock_ledger`] until `batch` is written.
    pub(crate) fn drop_entries(
        &self,
        store: &Store,
        batch: &mut WriteBatch,
        hashes: &[Hash],
    ) -> Result<Vec<uuid::Uuid>, StoreError> {
        let mut dead: HashMap<uuid::Uuid, (u32, u32)> = HashMap::new();
        for hash in hashes {
            if let Some(raw) = store.db().get_pinned_cf(store.cf(CF_PACKED), hash)? {
                let loc = Location::decode(hash, &raw)?;
                let d = dead.entry(loc.pack).or_default();
                d.0 += 1;
                d.1 += loc.len;
            }
            batch.delete_cf(store.cf(CF_PACKED), hash);
        }
        self.debit(store, batch, &dead)
    }

    /// Adds to `batch` the ledger updates for `dead` (pack → chunks, bytes no longer named
    /// there); returns the packs emptied (records deleted in `batch`).
    pub(crate) fn debit(
        &self,
        store: &Store,
        batch: &mut WriteBatch,
        dead: &HashMap<uuid::Uuid, (u32, u32)>,
    ) -> Result<Vec<uuid::Uuid>, StoreError> {
        let mut emptied = Vec::new();
        for (pack, &(chunks, bytes)) in dead {
            let Some(mut r) = self.record(store, pack)? else {
                tracing::warn!(%pack, "a chunk entry named a pack with no ledger record");
                continue;
            };
            r.live_chunks = r.live_chunks.saturating_sub(chunks);
            r.live_bytes = r.live_bytes.saturating_sub(bytes);
            if r.live_chunks == 0 {
                batch.delete_cf(store.cf(CF_PACKS), pack_key(pack));
                emptied.push(*pack);
            } else {
                batch.put_cf(store.cf(CF_PACKS), pack_key(pack), r.encode());
            }
        }
        Ok(emptied)
    }

    /// Sums the ledger; `below`: the rewrite threshold.
    pub(crate) fn usage(&self, store: &Store, below: f64) -> Result<PackUsage, StoreError> {
        let mut u = PackUsage::default();
        for (_, r) in self.records(store)? {
            u.packs += 1;
            u.pack_bytes += u64::from(r.pack_len);
            u.live_bytes += u64::from(r.live_bytes);
            u.garbage_bytes += u64::from(r.chunk_bytes - r.live_bytes);
            if r.live_fraction() < below {
                u.sparse_packs += 1;
            }
        }
        Ok(u)
    }

    /// Builds the ledger from the `packed` entries when the store has none yet (a store of
    /// the first S3 slice). A pack's chunks that no entry names any more are unknown then:
    /// its record counts only the live ones (garbage shows from then on).
    pub(crate) fn ensure_ledger(&self, store: &Store) -> Result<(), StoreError> {
        if store.db().get_pinned_cf(store.cf(CF_META), META_LEDGER)?.is_some() {
            return Ok(());
        }
        let _l = self.lock_ledger();
        let mut records: HashMap<uuid::Uuid, PackRecord> = HashMap::new();
        let mut it = store.db().raw_iterator_cf(store.cf(CF_PACKED));
        it.seek_to_first();
        while let (Some(k), Some(v)) = (it.key(), it.value()) {
            let hash: Hash = k.try_into().map_err(|_| StoreError::bad_record("packed key", "not a hash"))?;
            let loc = Location::decode(&hash, v)?;
            let r = records.entry(loc.pack).or_default();
            r.pack_len = loc.pack_len;
            r.chunks += 1;
            r.live_chunks += 1;
            r.chunk_bytes += loc.len;
            r.live_bytes += loc.len;
            it.next();
        }
        it.status()?;
        let mut batch = WriteBatch::default();
        for (pack, r) in &records {
            batch.put_cf(store.cf(CF_PACKS), pack_key(pack), r.encode());
        }
        batch.put_cf(store.cf(CF_META), META_LEDGER, []);
        store.write_synced(batch)?;
        if !records.is_empty() {
            tracing::info!(packs = records.len(), "pack ledger built from the chunk entries");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_refuse_garbage() {
        let id = uuid::Uuid::new_v4();
        let r = PackRecord { pack_len: 1000, chunks: 4, chunk_bytes: 900, live_chunks: 2, live_bytes: 300 };
        assert_eq!(PackRecord::decode(&id, &r.encode()).unwrap(), r);
        assert!((r.live_fraction() - 1.0 / 3.0).abs() < 1e-9);
        assert!(PackRecord::decode(&id, &r.encode()[..20]).is_err());
        let mut v = r.encode();
        v[0] = 2;
        assert!(PackRecord::decode(&id, &v).is_err());
        let over = PackRecord { live_chunks: 5, ..r };
        let e = PackRecord::decode(&id, &over.encode()).unwrap_err().to_string();
        assert!(e.contains(&id.to_string()) && e.contains("inconsistent"), "{e}");
    }
}
