//! The version index: which chunk content each chunk of each disk had at each epoch.
//!
//! Entries of the open epoch are listed in `pending` until `commit_point` removes the list
//! (keeping the entries) or `discard_pending` removes both (and the entries' index keys). Reads at epoch *P* see the newest
//! entry with epoch ≤ *P*; a chunk with none reads as zero when *P* is at or after its disk's
//! zero start (runs of zero chunks: `versions/zero_runs.rs`).

use crate::keys::{VERSION_KEY_LEN, decode_pending_key, pair_prefix, pending_key, prefix_end};
use crate::options::CF_PENDING;
use crate::scan::Scope;
use crate::{Hash, Store, StoreError};
use rocksdb::{ReadOptions, WriteBatch};

/// What a chunk of a disk held at some epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkVersion {
    /// All zero bytes (shipped as a flag, no chunk stored).
    Zero,
    /// The stored chunk with this hash.
    Data(Hash),
}

/// Most chunks one `versions_at` call answers (4 Mi chunks = 256 GiB of disk at 64 KiB).
pub const MAX_RANGE_CHUNKS: u64 = 1 << 22;

/// Entries deleted per write batch by `discard_pending`.
const DISCARD_BATCH: usize = 4096;

impl Store {
    /// Records chunk versions of the pair's open epoch `epoch`: version entries with their
    /// index keys, plus their `pending` entries, in one unsynced batch (durable with the next
    /// synced commit). Refused with [`StoreError::EpochNotOpen`] when `epoch` is not newer
    /// than the pair's newest committed point, and with [`StoreError::MissingChunk`] when a
    /// chunk an entry names is not stored (space reclaim deleted it after the writer found it
    /// stored: it must be shipped again).
    pub fn write_versions(
        &self,
        pair_no: u32,
        epoch: u64,
        items: &[(u32, u64, ChunkVersion)],
    ) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let batch = self.versions_batch(pair_no, epoch, items)?;
        let _gate = self.gate_shared();
        self.check_named_chunks(items.iter().map(|(_, _, v)| v))?;
        self.write_unsynced(batch)
    }

    /// The batch [`Store::write_versions`] writes (entries, index keys, `pending` entries),
    /// after checking that `epoch` is open.
    pub(crate) fn versions_batch(
        &self,
        pair_no: u32,
        epoch: u64,
        items: &[(u32, u64, ChunkVersion)],
    ) -> Result<WriteBatch, StoreError> {
        if let Some(committed) = self.latest_committed_epoch(pair_no)?
            && epoch <= committed
        {
            return Err(StoreError::EpochNotOpen { pair_no, epoch, committed });
        }
        let pending = self.cf(CF_PENDING);
        let mut batch = WriteBatch::default();
        for &(disk, chunk, v) in items {
            self.put_version(&mut batch, pair_no, disk, chunk, epoch, v);
            batch.put_cf(pending, pending_key(pair_no, epoch, disk, chunk), []);
        }
        Ok(batch)
    }

    /// Deletes every uncommitted version entry of the pair (all entries listed in `pending`)
    /// and the list itself; returns how many entries went. Synced. Called when an epoch is
    /// abandoned (agent gone mid-epoch, standby restarted). Interrupted, it leaves the
    /// remaining entries listed, so calling it again finishes the job.
    pub fn discard_pending(&self, pair_no: u32) -> Result<u64, StoreError> {
        let _records = self.lock_records();
        self.discard_pending_locked(pair_no)
    }

    /// [`Store::discard_pending`] for a caller that holds the record lock.
    pub(crate) fn discard_pending_locked(&self, pair_no: u32) -> Result<u64, StoreError> {
        let pending = self.cf(CF_PENDING);
        let prefix = pair_prefix(pair_no);
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(prefix.to_vec());
        ro.set_iterate_upper_bound(prefix_end(&prefix, VERSION_KEY_LEN));
        // Don't let a one-off scan evict the blocks the hot paths use.
        ro.fill_cache(false);
        let mut it = self.db().raw_iterator_cf_opt(pending, ro);
        it.seek(prefix);
        let (mut total, mut batch) = (0u64, WriteBatch::default());
        while let Some(k) = it.key() {
            let vk = decode_pending_key(k)?;
            let v = self.get_version(&vk)?;
            self.delete_version(&mut batch, &vk, v);
            batch.delete_cf(pending, k);
            total += 1;
            if batch.len() >= 4 * DISCARD_BATCH {
                self.write_synced(std::mem::take(&mut batch))?;
            }
            it.next();
        }
        it.status()?;
        self.write_synced(batch)?;
        if total > 0 {
            tracing::info!(pair_no, entries = total, "discarded uncommitted chunk versions");
        }
        self.discard_zero_from(pair_no)?;
        Ok(total)
    }

    /// The newest version of one chunk with epoch ≤ `epoch`, with the epoch it was written at
    /// (a chunk never written reads as zero at the disk's zero start, when there is one at or
    /// before `epoch`: `versions/zero_runs.rs`).
    pub fn version_at(
        &self,
        pair_no: u32,
        disk: u32,
        chunk: u64,
        epoch: u64,
    ) -> Result<Option<(u64, ChunkVersion)>, StoreError> {
        // Every entry of this chunk, and nothing after it.
        match self.latest_cursor(pair_no, disk, epoch, chunk, chunk.checked_add(1)).latest(chunk)? {
            None => self.missing_version(pair_no, disk, epoch),
            found => Ok(found),
        }
    }

    /// For chunks `first_chunk .. first_chunk + count` of a disk: the newest version with
    /// epoch ≤ `epoch` (`None`: never written up to then, and `epoch` before the disk's zero
    /// start, see `versions/zero_runs.rs`). One iterator over the range,
    /// stepping forward and seeking only past runs of older versions, so long ranges (export,
    /// "hashes of a range") cost about one sequential scan. At most [`MAX_RANGE_CHUNKS`].
    pub fn versions_at(
        &self,
        pair_no: u32,
        disk: u32,
        epoch: u64,
        first_chunk: u64,
        count: u64,
    ) -> Result<Vec<Option<ChunkVersion>>, StoreError> {
        let range_err =
            |reason: &str| StoreError::Range { pair_no, disk, first: first_chunk, count, reason: reason.to_string() };
        let len = usize::try_from(count)
            .ok()
            .filter(|_| count <= MAX_RANGE_CHUNKS)
            .ok_or_else(|| range_err("more chunks than one call answers (4194304)"))?;
        let end = first_chunk.checked_add(count).ok_or_else(|| range_err("end overflows"))?;
        let mut out = Vec::with_capacity(len);
        if len == 0 {
            return Ok(out);
        }
        let mut cursor = self.latest_cursor(pair_no, disk, epoch, first_chunk, Some(end));
        for chunk in first_chunk..end {
            out.push(cursor.latest(chunk)?.map(|(_, v)| v));
            if cursor.exhausted()? {
                // Nothing left in the range: no later chunk has a version either.
                out.resize(len, None);
                break;
            }
        }
        // Chunks never written read as zero from the disk's zero start on (zero_runs.rs).
        if out.contains(&None)
            && let Some((_, zero)) = self.missing_version(pair_no, disk, epoch)?
        {
            out.iter_mut().filter(|v| v.is_none()).for_each(|v| *v = Some(zero));
        }
        Ok(out)
    }
}

impl Store {
    /// Chunks of a disk with a version written after epoch `after` and at or before `upto`,
    /// ascending: what changed between two points. One scan of the disk's version entries.
    pub fn changed_between(&self, pair_no: u32, disk: u32, after: u64, upto: u64) -> Result<Vec<u64>, StoreError> {
        let mut out: Vec<u64> = Vec::new();
        for entry in self.scan_versions(Scope::Disk(pair_no, disk)) {
            let (vk, _) = entry?;
            if vk.epoch > after && vk.epoch <= upto && out.last() != Some(&vk.chunk) {
                out.push(vk.chunk);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
mod zero_runs;
