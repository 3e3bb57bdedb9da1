//! Space reclaim: deleting the chunks no version entry names any more.
//!
//! Only candidates are examined: every deletion of an entry naming a chunk lists the chunk
//! in `reclaim` in the same batch. For each candidate the `refs` keys of the chunk are
//! checked against `versions` (a `refs` key whose entry is gone, or names another chunk, is
//! stale and dropped); a chunk with no live reference is deleted with its `sizes` entry.
//! Work is proportional to the candidates and their references, not to the store.
//!
//! Each batch of candidates is judged and written under the exclusive reclaim gate, so a
//! writer cannot make a chunk referenced between the check and the deletion (see
//! `Inner::reclaim_gate`). Interrupted, the remaining candidates stay listed.
//!
//! Deleted chunks free their blob-file space when rocksdb drops or garbage-collects the blob
//! files holding them; [`Store::compact_chunks`] asks for that (see there for when).
//!
//! With packs on an object store (`packs/`), deleting a chunk deletes its `packed` entry and
//! debits its pack in the pack ledger, in the same batch; a pack left with no live chunk
//! loses its record there and its object once the batch is durable. Sparse packs are
//! rewritten and orphans swept by [`Store::tidy_packs`], which the daemon runs after this.

use crate::keys::{REF_KEY_LEN, decode_ref_key, decode_sizes};
use crate::options::{CF_CHUNKS, CF_META, CF_RECLAIM, CF_REFS, CF_SIZES};
use crate::{ChunkVersion, Hash, Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};
use std::time::Instant;

/// Candidates judged per batch (one hold of the exclusive gate).
const RECLAIM_BATCH: usize = 256;

/// Share of garbage in the chunks' blob files from which [`Store::compact_chunks`] rewrites
/// them.
const GC_GARBAGE_SHARE: f64 = 0.25;

/// `meta` key present while deleted chunks still wait for [`Store::compact_chunks`]: written
/// in the batch that deletes them, removed once a compaction has run. A crash during the
/// compaction (the longest step of a prune) leaves it, so the next reclaim — at start-up —
/// compacts although it deletes nothing itself; without it the space never came back until
/// some later prune deleted chunks again.
const META_COMPACT_OWED: &[u8] = b"compact_owed";

/// What a reclaim did.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReclaimOutcome {
    pub candidates: u64,
    pub chunks_deleted: u64,
    pub bytes_freed: u64,
    pub stale_refs: u64,
    /// Pack objects deleted because no chunk in them was named any more (object store).
    pub packs_emptied: u64,
    pub seconds: f64,
}

impl Store {
    /// Judges every listed candidate; deletes the chunks nothing names.
    pub fn reclaim(&self) -> Result<ReclaimOutcome, StoreError> {
        let t0 = Instant::now();
        let mut out = ReclaimOutcome::default();
        // Candidates are judged in hash order, each batch resuming after the last one judged:
        // starting over from the first would step over the deletions of every earlier batch
        // (quadratic in the candidates). One listed meanwhile below that point waits for the
        // next reclaim.
        let mut after: Option<Hash> = None;
        loop {
            let batch = self.next_candidates(after.as_ref(), RECLAIM_BATCH)?;
            let Some(&last) = batch.last() else { break };
            after = Some(last);
            let emptied = self.judge_candidates(&batch, &mut out)?;
            out.packs_emptied += self.delete_emptied_packs(&emptied);
        }
        out.seconds = t0.elapsed().as_secs_f64();
        if out.candidates > 0 {
            tracing::info!(
                candidates = out.candidates,
                chunks_deleted = out.chunks_deleted,
                bytes_freed = out.bytes_freed,
                stale_refs = out.stale_refs,
                "space reclaimed"
            );
        }
        Ok(out)
    }

    /// Number of listed reclaim candidates (a scan of the list).
    pub fn reclaim_candidates(&self) -> Result<u64, StoreError> {
        let mut it = self.db().raw_iterator_cf(self.cf(CF_RECLAIM));
        it.seek_to_first();
        let mut n = 0;
        while it.valid() {
            n += 1;
            it.next();
        }
        it.status()?;
        Ok(n)
    }

    /// Gives back the disk space of deleted chunks. First compacts the chunks column
    /// family's keys (small: the values are in blob files, untouched), so that rocksdb counts
    /// the deleted chunks' blobs as garbage and deletes every blob file holding nothing else.
    /// Then, once garbage makes up a quarter of the blob files' bytes, compacts again
    /// with blob garbage collection on, rewriting the live chunks into new blob files and
    /// dropping the old ones. Blob files are append-only: their partly dead space only comes
    /// back by such a rewrite, which costs the live bytes; letting the garbage reach a
    /// quarter first keeps that below three bytes written per byte freed (space reclaim
    /// stays proportional to what is deleted) and the space overhead below 4/3. Done, it
    /// clears the debt [`Store::compaction_owed`] reports.
    pub fn compact_chunks(&self) -> Result<(), StoreError> {
        // Every memtable first: a WAL file stays on disk while any column family still has
        // unflushed writes in it, chunk data written through the WAL included, so the space
        // freed would not show until the quietest column family flushed.
        self.flush()?;
        self.compact_and_collect()?;
        let mut batch = WriteBatch::default();
        batch.delete_cf(self.cf(CF_META), META_COMPACT_OWED);
        self.write_synced(batch)
    }

    /// Whether chunks were deleted since the last [`Store::compact_chunks`] finished.
    pub fn compaction_owed(&self) -> Result<bool, StoreError> {
        Ok(self.db().get_pinned_cf(self.cf(CF_META), META_COMPACT_OWED)?.is_some())
    }

    /// The compactions of [`Store::compact_chunks`].
    fn compact_and_collect(&self) -> Result<(), StoreError> {
        let cf = self.cf(CF_CHUNKS);
        let mut opts = rocksdb::CompactOptions::default();
        opts.set_bottommost_level_compaction(rocksdb::BottommostLevelCompaction::Force);
        self.db().compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
        let prop =
            |name: &str| -> Result<u64, StoreError> { Ok(self.db().property_int_value_cf(cf, name)?.unwrap_or(0)) };
        let total = prop("rocksdb.live-blob-file-size")?;
        let garbage = prop("rocksdb.live-blob-file-garbage-size")?;
        if garbage == 0 || (garbage as f64) < GC_GARBAGE_SHARE * total as f64 {
            return Ok(());
        }
        // Every blob file is old enough (options.rs: age cutoff 1) while this runs.
        self.db().set_options_cf(cf, &[("enable_blob_garbage_collection", "true")])?;
        self.db().compact_range_cf_opt(cf, None::<&[u8]>, None::<&[u8]>, &opts);
        self.db().set_options_cf(cf, &[("enable_blob_garbage_collection", "false")])?;
        tracing::info!(
            blob_bytes = total,
            garbage_bytes = garbage,
            after = prop("rocksdb.live-blob-file-size")?,
            "chunk blob files rewritten without their garbage"
        );
        Ok(())
    }

    /// Up to `n` listed candidates, in order, after `after`.
    fn next_candidates(&self, after: Option<&Hash>, n: usize) -> Result<Vec<Hash>, StoreError> {
        let mut it = self.db().raw_iterator_cf(self.cf(CF_RECLAIM));
        match after {
            Some(h) => it.seek(h),
            None => it.seek_to_first(),
        }
        let mut out = Vec::with_capacity(n);
        while let Some(k) = it.key() {
            if after.is_some_and(|a| k <= &a[..]) {
                // `after` itself, listed again since it was judged.
            } else if let Ok(h) = <Hash>::try_from(k) {
                out.push(h);
            } else {
                // Not a hash: nothing to judge; drop the key.
                let mut b = WriteBatch::default();
                b.delete_cf(self.cf(CF_RECLAIM), k);
                self.write_unsynced(b)?;
            }
            if out.len() == n {
                break;
            }
            it.next();
        }
        it.status()?;
        Ok(out)
    }

    /// Judges one batch of candidates; returns the packs it emptied (their objects are to be
    /// deleted now that the batch is durable).
    fn judge_candidates(&self, hashes: &[Hash], out: &mut ReclaimOutcome) -> Result<Vec<uuid::Uuid>, StoreError> {
        let _gate = self.gate_exclusive();
        let mut batch = WriteBatch::default();
        let mut dead = Vec::new();
        for hash in hashes {
            out.candidates += 1;
            batch.delete_cf(self.cf(CF_RECLAIM), hash);
            if self.has_live_ref(hash, &mut batch, out)? {
                continue;
            }
            if let Some(bytes) = self.stored_len(hash)? {
                if self.packs().is_some() {
                    dead.push(*hash);
                } else {
                    batch.delete_cf(self.cf(CF_CHUNKS), hash);
                    batch.put_cf(self.cf(CF_META), META_COMPACT_OWED, []);
                }
                out.chunks_deleted += 1;
                out.bytes_freed += bytes;
            }
            batch.delete_cf(self.cf(CF_SIZES), hash);
        }
        let Some(p) = self.packs() else {
            self.write_synced(batch)?;
            return Ok(Vec::new());
        };
        let _ledger = p.lock_ledger();
        let emptied = p.drop_entries(self, &mut batch, &dead)?;
        self.write_synced(batch)?;
        Ok(emptied)
    }

    /// Whether a version entry names `hash`; stale `refs` keys met on the way are deleted.
    fn has_live_ref(&self, hash: &Hash, batch: &mut WriteBatch, out: &mut ReclaimOutcome) -> Result<bool, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(crate::keys::prefix_end(hash, REF_KEY_LEN));
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_REFS), ro);
        it.seek(hash);
        while let Some(k) = it.key() {
            let vk = decode_ref_key(k)?;
            if self.get_version(&vk)? == Some(ChunkVersion::Data(*hash)) {
                return Ok(true);
            }
            batch.delete_cf(self.cf(CF_REFS), k);
            out.stale_refs += 1;
            it.next();
        }
        it.status()?;
        Ok(false)
    }

    /// Stored length of a chunk (from `sizes`, else from the value), None when not stored.
    pub(crate) fn stored_len(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        if let Some(v) = self.db().get_pinned_cf(self.cf(CF_SIZES), hash)?
            && let Some((_, stored)) = decode_sizes(&v)
            && self.chunk_exists(hash)?
        {
            return Ok(Some(u64::from(stored)));
        }
        Ok(self.get_chunk_raw(hash)?.map(|v| v.len() as u64))
    }
}

#[cfg(test)]
mod tests;
