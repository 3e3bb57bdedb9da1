//! Keeping the secondary indexes (`epochs`, `refs`) and the reclaim candidates in step with
//! the version index, and building them for a store written before they existed.

use crate::keys::{META_FORMAT, VersionKey, decode_version, encode_version, epochs_key, ref_key, version_key};
use crate::options::{CF_EPOCHS, CF_META, CF_RECLAIM, CF_REFS, CF_VERSIONS};
use crate::scan::Scope;
use crate::{ChunkVersion, Hash, Store, StoreError, hash_hex};
use rocksdb::WriteBatch;

/// Layout version of a store whose version entries are all indexed.
const FORMAT_INDEXED: u32 = 2;
/// Entries per batch when building indexes or listing candidates.
const BATCH: usize = 8192;

impl Store {
    /// Adds to `batch` the version entry and its index keys.
    pub(crate) fn put_version(
        &self,
        batch: &mut WriteBatch,
        pair_no: u32,
        disk: u32,
        chunk: u64,
        epoch: u64,
        v: ChunkVersion,
    ) {
        batch.put_cf(self.cf(CF_VERSIONS), version_key(pair_no, disk, chunk, epoch), encode_version(v));
        batch.put_cf(self.cf(CF_EPOCHS), epochs_key(pair_no, epoch, disk, chunk), []);
        if let ChunkVersion::Data(h) = v {
            batch.put_cf(self.cf(CF_REFS), ref_key(&h, pair_no, disk, chunk, epoch), []);
        }
    }

    /// Adds to `batch` the deletion of a version entry (whose value was `v`) and its index
    /// keys; the chunk it named becomes a reclaim candidate.
    pub(crate) fn delete_version(&self, batch: &mut WriteBatch, vk: &VersionKey, v: Option<ChunkVersion>) {
        let VersionKey { pair_no, disk, chunk, epoch } = *vk;
        batch.delete_cf(self.cf(CF_VERSIONS), version_key(pair_no, disk, chunk, epoch));
        batch.delete_cf(self.cf(CF_EPOCHS), epochs_key(pair_no, epoch, disk, chunk));
        if let Some(ChunkVersion::Data(h)) = v {
            batch.delete_cf(self.cf(CF_REFS), ref_key(&h, pair_no, disk, chunk, epoch));
            batch.put_cf(self.cf(CF_RECLAIM), h, []);
        }
    }

    /// The value of one version entry, if it exists.
    pub(crate) fn get_version(&self, vk: &VersionKey) -> Result<Option<ChunkVersion>, StoreError> {
        let key = version_key(vk.pair_no, vk.disk, vk.chunk, vk.epoch);
        match self.db().get_pinned_cf(self.cf(CF_VERSIONS), key)? {
            Some(v) => Ok(Some(decode_version(vk, &v)?)),
            None => Ok(None),
        }
    }

    /// [`StoreError::MissingChunk`] naming the first chunk of `items` that is not stored. The
    /// caller holds the shared reclaim gate until its entries are written.
    pub(crate) fn check_named_chunks<'a>(
        &self,
        items: impl Iterator<Item = &'a ChunkVersion>,
    ) -> Result<(), StoreError> {
        let hashes: Vec<Hash> = items
            .filter_map(|v| match v {
                ChunkVersion::Data(h) => Some(*h),
                ChunkVersion::Zero => None,
            })
            .collect();
        if hashes.is_empty() {
            return Ok(());
        }
        let found = self.has_chunks(&hashes)?;
        match hashes.iter().zip(found).find(|(_, f)| !f) {
            Some((h, _)) => Err(StoreError::MissingChunk { hash: hash_hex(h) }),
            None => Ok(()),
        }
    }

    /// Lists every chunk the pair's version entries name as a reclaim candidate (before a
    /// range deletion of the whole pair), in unsynced batches: a candidate that is still
    /// referenced is simply dropped by reclaim.
    pub(crate) fn list_pair_candidates(&self, pair_no: u32) -> Result<u64, StoreError> {
        let (mut n, mut batch) = (0u64, WriteBatch::default());
        for entry in self.scan_versions(Scope::Pair(pair_no)) {
            if let (_, ChunkVersion::Data(h)) = entry? {
                batch.put_cf(self.cf(CF_RECLAIM), h, []);
                n += 1;
                if batch.len() >= BATCH {
                    self.write_unsynced(std::mem::take(&mut batch))?;
                }
            }
        }
        self.write_unsynced(batch)?;
        Ok(n)
    }

    /// Builds `epochs` and `refs` for a store written before they existed (once; idempotent,
    /// so an interrupted build is simply redone), then records the layout version.
    pub(crate) fn ensure_indexes(&self) -> Result<(), StoreError> {
        let meta = self.cf(CF_META);
        if let Some(v) = self.db().get_cf(meta, META_FORMAT)?
            && v.len() == 4
            && u32::from_be_bytes(v[..].try_into().expect("4 bytes")) >= FORMAT_INDEXED
        {
            return Ok(());
        }
        let (mut n, mut batch) = (0u64, WriteBatch::default());
        for entry in self.scan_versions(Scope::All) {
            let (vk, version) = entry?;
            batch.put_cf(self.cf(CF_EPOCHS), epochs_key(vk.pair_no, vk.epoch, vk.disk, vk.chunk), []);
            if let ChunkVersion::Data(h) = version {
                batch.put_cf(self.cf(CF_REFS), ref_key(&h, vk.pair_no, vk.disk, vk.chunk, vk.epoch), []);
            }
            n += 1;
            if batch.len() >= BATCH {
                self.write_unsynced(std::mem::take(&mut batch))?;
            }
        }
        batch.put_cf(meta, META_FORMAT, FORMAT_INDEXED.to_be_bytes());
        self.write_synced(batch)?;
        if n > 0 {
            tracing::info!(entries = n, "indexed the version entries of a store from an older layout");
        }
        Ok(())
    }

    /// Whether a chunk is stored (exact), without reading its bytes from its blob file (see
    /// [`Store::has_chunks`]): space reclaim asks this of every chunk it deletes.
    pub(crate) fn chunk_exists(&self, hash: &Hash) -> Result<bool, StoreError> {
        Ok(self.has_chunks(std::slice::from_ref(hash))?[0])
    }
}
