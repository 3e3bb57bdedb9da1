//! Pack rewrite: the live chunks of sparse packs are copied into new packs, and the sparse
//! packs deleted.
//!
//! # The rule
//! A pack is **sparse** when the chunks some `packed` entry still locates in it fill less
//! than `rewrite_below` of its chunk bytes (ledger, `ledger.rs`; default one half,
//! `[standby.s3] rewrite_below`). Sparse packs are taken sparsest first, in groups whose live
//! bytes make about one pack (`pack_bytes`); per group:
//!
//! 1. **read**: each old pack is fetched whole (one GET; under half of it is live, so at
//!    most twice the bytes kept), its own index trailer lists its chunks, and the chunks
//!    whose entry still names this pack are appended to a new pack (each decoded and
//!    blake3-checked on the way; a damaged one is copied as it is and logged, so verify
//!    still reports it);
//! 2. **upload**: the new pack gets a fresh random id, joins the in-flight set (the orphan
//!    sweep skips it) and is PUT; nothing local has changed yet;
//! 3. **switch**: under the ledger lock, one synced batch moves every entry that still
//!    names an old pack of the group to the new one (an entry reclaim deleted meanwhile is
//!    left deleted), writes the new pack's record, and deletes the old packs' records;
//! 4. **delete**: only then are the old objects deleted.
//!
//! # Invariants (kill -9 anywhere)
//! 1. **No `packed` entry ever names a deleted object.** An object is deleted only after
//!    the synced batch that removed its record and moved or deleted every entry naming it
//!    (step 4 after 3; reclaim deletes an emptied pack after its synced batch); the sweep
//!    deletes only objects with no record that are not in flight.
//! 2. **No chunk of a kept point is lost.** The switch moves an entry only to a pack whose
//!    PUT completed, with the same bytes (copied from the pack the entry named); a chunk is
//!    never deleted by a rewrite, only moved.
//! 3. **Leftovers are garbage found later.** Killed after 2 and before 3, the new pack is an
//!    object no record names: the orphan sweep deletes it. Killed after 3 and before 4, the
//!    old packs are such objects too. Killed in 1, or with 3 unwritten, nothing changed.
//!
//! Cost: a rewrite writes at most `rewrite_below / (1 - rewrite_below)` live bytes per
//! garbage byte freed (one at the default one half), and holds at most a group's live bytes
//! plus one old pack in memory.

use super::Packs;
use super::ledger::{PackRecord, pack_key};
use super::location::{Location, PACK_MAGIC, finish_pack, read_index};
use crate::options::{CF_PACKED, CF_PACKS};
use crate::{Hash, Store, StoreError, StoredChunk, hash_hex};
use bytes::Bytes;
use rocksdb::WriteBatch;

/// What a pass of [`Store::tidy_packs`](crate::Store::tidy_packs) did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PackTidyOutcome {
    /// Sparse packs whose live chunks were moved and whose objects were deleted.
    pub packs_rewritten: u64,
    /// New packs written by the rewrite.
    pub packs_written: u64,
    /// Chunks moved, and their bytes.
    pub chunks_moved: u64,
    pub bytes_moved: u64,
    /// Objects deleted by the orphan sweep (no record named them).
    pub orphans_deleted: u64,
    /// Bytes of every object deleted (rewritten packs and orphans).
    pub bytes_deleted: u64,
    pub seconds: f64,
}

/// A chunk copied into the new pack: hash, the pack it came from, its span in the new one.
struct Moved {
    hash: Hash,
    from: uuid::Uuid,
    offset: u32,
    len: u32,
}

impl Packs {
    /// Rewrites every sparse pack (see the module docs).
    pub(crate) fn rewrite_sparse(&self, store: &Store, out: &mut PackTidyOutcome) -> Result<(), StoreError> {
        let mut sparse: Vec<(uuid::Uuid, PackRecord)> =
            self.records(store)?.into_iter().filter(|(_, r)| r.live_fraction() < self.rewrite_below).collect();
        sparse.sort_by(|a, b| a.1.live_fraction().total_cmp(&b.1.live_fraction()));
        let mut group = Vec::new();
        let mut live = 0usize;
        for (id, r) in sparse {
            group.push(id);
            live += r.live_bytes as usize;
            if live >= self.pack_bytes {
                self.rewrite_group(store, &std::mem::take(&mut group), out)?;
                live = 0;
            }
        }
        if !group.is_empty() {
            self.rewrite_group(store, &group, out)?;
        }
        Ok(())
    }

    fn rewrite_group(&self, store: &Store, group: &[uuid::Uuid], out: &mut PackTidyOutcome) -> Result<(), StoreError> {
        // 1. read
        let mut bytes = PACK_MAGIC.to_vec();
        let mut moved: Vec<Moved> = Vec::new();
        let mut read = Vec::with_capacity(group.len());
        for old in group {
            let key = self.remote.pack_key(old);
            let Some(object) = self.remote.get(&key)? else {
                tracing::error!(pack = %old, store = %self.name(), "pack to rewrite is missing from the object store; left as it is");
                continue;
            };
            let index = match read_index(&object) {
                Ok(i) => i,
                Err(reason) => {
                    tracing::error!(pack = %old, store = %self.name(), %reason, "pack to rewrite has an unreadable index; left as it is");
                    continue;
                }
            };
            for (hash, offset, len) in index {
                if !self.names(store, &hash, old)? {
                    continue;
                }
                let value = &object[offset as usize..(offset + len) as usize];
                if let Err(e) = StoredChunk::parse(&hash, value).and_then(|c| c.decode(&hash)) {
                    tracing::warn!(pack = %old, hash = %hash_hex(&hash), error = %e, "damaged chunk copied as it is by a pack rewrite");
                }
                let at = u32::try_from(bytes.len()).expect("a rewritten pack is under 4 GiB");
                bytes.extend_from_slice(value);
                moved.push(Moved { hash, from: *old, offset: at, len });
            }
            read.push((*old, object.len() as u64));
        }
        if read.is_empty() {
            return Ok(());
        }
        let new = uuid::Uuid::new_v4();
        let mut record = PackRecord::default();
        if !moved.is_empty() {
            // 2. upload
            let entries: Vec<(Hash, u32, u32)> = moved.iter().map(|m| (m.hash, m.offset, m.len)).collect();
            finish_pack(&mut bytes, &entries);
            record.pack_len = u32::try_from(bytes.len()).expect("a rewritten pack is under 4 GiB");
            record.chunks = u32::try_from(moved.len()).expect("far fewer than 2^32 chunks");
            record.chunk_bytes = moved.iter().map(|m| m.len).sum();
            self.lock().rewriting.insert(new);
            let put = self.remote.put(&self.remote.pack_key(&new), Bytes::from(bytes));
            if let Err(e) = put {
                self.lock().rewriting.remove(&new);
                return Err(e);
            }
            tracing::info!(pack = %new, from = read.len(), chunks = moved.len(), bytes = record.pack_len, "pack rewrite: new pack uploaded");
            self.crash_point("uploaded").inspect_err(|_| {
                self.lock().rewriting.remove(&new);
            })?;
        }
        // 3. switch
        let switched = {
            let _l = self.lock_ledger();
            let mut batch = WriteBatch::default();
            for m in &moved {
                if self.names(store, &m.hash, &m.from)? {
                    let loc = Location { pack: new, offset: m.offset, len: m.len, pack_len: record.pack_len };
                    batch.put_cf(store.cf(CF_PACKED), m.hash, loc.encode());
                    record.live_chunks += 1;
                    record.live_bytes += m.len;
                }
            }
            for (old, _) in &read {
                batch.delete_cf(store.cf(CF_PACKS), pack_key(old));
            }
            if record.live_chunks > 0 {
                batch.put_cf(store.cf(CF_PACKS), pack_key(&new), record.encode());
            }
            let res = store.write_synced(batch);
            self.lock().rewriting.remove(&new);
            res?;
            record.live_chunks
        };
        tracing::info!(pack = %new, chunks = switched, from = read.len(), "pack rewrite: index switched to the new pack");
        self.crash_point("switched")?;
        out.packs_written += u64::from(switched > 0);
        out.chunks_moved += u64::from(switched);
        out.bytes_moved += u64::from(record.live_bytes);
        // 4. delete (a failure leaves an orphan for the sweep)
        let mut gone = read;
        if switched == 0 && !moved.is_empty() {
            // Every chunk it holds was reclaimed meanwhile: nothing names it.
            gone.push((new, u64::from(record.pack_len)));
        }
        for (pack, len) in gone {
            match self.remote.delete(&self.remote.pack_key(&pack)) {
                Ok(()) => {
                    out.packs_rewritten += u64::from(pack != new);
                    out.bytes_deleted += len;
                }
                Err(e) => tracing::warn!(%pack, error = %e, "deleting a rewritten pack failed; the orphan sweep will"),
            }
        }
        Ok(())
    }

    /// Whether the `packed` entry of `hash` names `pack`.
    fn names(&self, store: &Store, hash: &Hash, pack: &uuid::Uuid) -> Result<bool, StoreError> {
        Ok(match store.db().get_pinned_cf(store.cf(CF_PACKED), hash)? {
            Some(raw) => Location::decode(hash, &raw)?.pack == *pack,
            None => false,
        })
    }

    /// Tests stop a rewrite here, as if the standby died; a no-op otherwise.
    fn crash_point(&self, step: &'static str) -> Result<(), StoreError> {
        #[cfg(test)]
        if *self.crash_at.lock().unwrap_or_else(|e| e.into_inner()) == Some(step) {
            return Err(StoreError::ObjectStore {
                store: self.name().to_string(),
                what: format!("pack rewrite, after step '{step}'"),
                reason: "test crash".into(),
                retryable: true,
            });
        }
        let _ = step;
        Ok(())
    }
}
