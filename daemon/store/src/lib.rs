//! The standby's store, over rocksdb: chunks, the version index, recovery points and pair
//! records. Knows nothing of the network or HTTP.
//!
//! # Layout
//! Column families (byte layouts in `keys.rs`):
//! - `chunks`: blake3 hash → the chunk as shipped (`format · raw_len · payload`), in BlobDB
//!   blob files, never recompressed. Content addressed: shared by every pair and point.
//! - `versions`: (pair, disk, chunk, epoch newest first) → zero flag or chunk hash. Reading
//!   disk *d* at point *P* is one seek to the newest version ≤ *P*: any point is readable
//!   without materialising it.
//! - `pending`: (pair, epoch, disk, chunk) of every version entry of a not yet committed epoch.
//! - `points`: (pair, epoch) → [`RecoveryPoint`]. A point's id is the epoch it commits.
//! - `pairs`: pair id → the daemon's pair record (opaque JSON).
//! - `epochs`: (pair, epoch, disk, chunk) of every version entry, committed or not: a
//!   pair's entries of an epoch range in one scan (pruning works in time proportional to
//!   what it deletes).
//! - `refs`: (hash, pair, disk, chunk, epoch) of every entry naming a chunk: who refers to a
//!   chunk, without scanning the index.
//! - `reclaim`: chunks that may have lost their last reference (candidates for deletion).
//! - `sizes`: hash → raw and stored length of each chunk (storage report, bytes freed).
//! - `packed`: with chunks on an object store ([`ChunkBackend::S3`]), hash → where the chunk
//!   lies in its pack; `chunks` stays empty then. See `packs/` for the upload-before-commit
//!   invariant.
//! - `meta`: the pair number counter, the layout version, unfinished prune sweeps.
//!
//! # Invariants
//! 1. **A point never changes once committed.** Committing is one synced write batch (point +
//!    pair record + removal of the pair's pending entries up to that epoch): a crash leaves
//!    either the whole point or none of it. Versions can only be written for epochs newer than
//!    the newest committed point, and a point can only be committed at such an epoch
//!    ([`StoreError::EpochNotOpen`] otherwise); `update_point` may change only the
//!    pinned/verified/tested/damage marks. Points only ever go whole, with every version entry only
//!    they could see, in one synced batch: [`Store::wipe_pair`], [`Store::restart_pair`],
//!    [`Store::rollback_pair`] (replay: the head goes back to an older point, and the epochs
//!    after it become open again) and [`Store::retire_below`] (the old lineage, once the new
//!    baseline is complete).
//! 2. **Uncommitted versions are never visible at a committed epoch.** A read at point *P*
//!    only sees versions with epoch ≤ *P*; the open epoch is always newer than every committed
//!    one; an abandoned epoch's entries (listed in `pending`) are deleted by
//!    [`Store::discard_pending`] before a newer epoch can be committed — the daemon calls it
//!    when an agent disconnects mid-epoch and when the standby starts.
//! 3. **Every chunk read back is blake3-verified** ([`Store::read_chunk`]) after
//!    decompression; a mismatch is [`StoreError::Corrupt`] naming the hash.
//! 4. **Every version entry is indexed**: it has its `epochs` key, and one `refs` key when it
//!    names a chunk, written and deleted in the same batch as the entry. A `refs` key may
//!    outlive its entry (range deletions of a whole pair leave them); space reclaim checks
//!    each against `versions` before trusting it. Every deletion of an entry naming a chunk
//!    makes the chunk a reclaim candidate in the same batch (a whole-pair range deletion
//!    lists them first).
//! 5. **A chunk is deleted only when no version entry names it** ([`Store::reclaim`]), under
//!    the exclusive reclaim gate; writers of entries check under the shared gate that the
//!    chunks they name exist ([`StoreError::MissingChunk`] otherwise: ship it again).
//! 6. **Pruning never removes what a kept point sees**: removing points deletes their
//!    records and journals a sweep of their epoch range in one synced batch; the sweep
//!    deletes only entries that no remaining point can see, and stops when the pair's
//!    history is rewritten under it (see `prune.rs`).
//!
//! # Reading
//! Disk *d* as of point *P* is read in one place, [`PointReader`] (`point_reader.rs`): by
//! chunk, by span or by byte range, zero chunks reported without being read, data chunks
//! decompressed and blake3-verified. Walks of the version index go through `scan.rs`: a
//! scan of a pair's, a disk's or every entry, and the cursor behind "newest version at or
//! before an epoch".
//!
//! Chunks and version entries are written without fsync: they become durable with the next
//! synced commit, because all column families share one WAL. Bulk chunks (large epochs) skip
//! the WAL altogether — writing each value once instead of twice — and every commit first
//! flushes the chunks column family if any were written since its last flush. Chunks are
//! deleted by space reclaim, and when found damaged by [`Store::has_verified_chunks`] (so
//! that shipping them again stores them fresh).

mod chunks;
mod drills;
mod dump;
mod error;
mod index;
mod keys;
mod notices;
mod options;
mod packs;
mod pair_facts;
mod pairs;
mod point_reader;
mod points;
mod prune;
mod reclaim;
mod rewrite;
mod scan;
mod stats;
mod storage;
mod verify;
mod versions;

#[cfg(test)]
mod test_support;

pub use chunks::{Hash, StoredChunk, hash_hex};
pub use error::StoreError;
pub use packs::{
    ChunkBackend, DEFAULT_CACHE_BYTES, DEFAULT_ORPHAN_GRACE, DEFAULT_PACK_BYTES, DEFAULT_REWRITE_BELOW, MAX_PACK_BYTES,
    MAX_REWRITE_BELOW, MIN_PACK_BYTES, PackStats, PackTidyOutcome, PackUsage, S3Credentials, S3Settings,
};
pub use pair_facts::{DiskFacts, GeometryEra, PairFacts, geometry_at};
pub use point_reader::{ErrorClass, PointChunk, PointReadError, PointReader, Spans};
pub use prune::PruneOutcome;
pub use reclaim::ReclaimOutcome;
pub use rewrite::Removed;
pub use stats::StoreSizes;
pub use storage::{ChunkTotals, PairStorage};
pub use verify::{Damaged, VerifyOutcome, VerifyProgress};
pub use versions::ChunkVersion;

/// Re-exported so callers name the same types the store stores.
pub use drpair_types::{PairId, RecoveryPoint};

use options::ALL_CFS;
use rocksdb::{ColumnFamily, DB, WriteBatch, WriteOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Handle on the standby store; cheap to clone, shared between threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: DB,
    dir: PathBuf,
    /// Serialises the read-check-write sequences on records (pair numbers, points): they are
    /// rare and must not interleave.
    records: Mutex<()>,
    /// Chunks were written without the WAL since the last flush of the chunks column family:
    /// the next commit must flush it first (see [`Store::put_chunk_bulk`]).
    unflushed_bulk: AtomicBool,
    /// Writers of version entries naming chunks hold it shared while they check that the
    /// chunks exist and write the entries; space reclaim holds it exclusively while it checks
    /// that a chunk has no reference and deletes it. So a chunk is never deleted between a
    /// writer finding it stored and its entry naming it being written.
    reclaim_gate: RwLock<()>,
    /// Bumped (under the record lock) by every history rewrite (restart, rollback, retire,
    /// discard of a dump, wipe): a prune sweep planned before one stops instead of deleting
    /// by a stale plan.
    rewrite_gen: AtomicU64,
    /// One prune at a time.
    prune: Mutex<()>,
    /// The chunk packs on an object store (`store = "s3"`); None: chunks in `chunks`.
    packs: Option<packs::Packs>,
}

/// `meta` key naming the chunk backend the store was created with (absent: local).
const META_BACKEND: &[u8] = b"chunk_backend";
/// `meta` key holding where the object store was last reached (`packs::S3Location`, no
/// credential): what an offline recovery opens.
const META_S3_LOCATION: &[u8] = b"s3_location";

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dir", &self.inner.dir).finish_non_exhaustive()
    }
}

impl Store {
    /// Opens the store in `dir` with its chunks in the local rocksdb, creating the directory
    /// and column families if missing.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Store::open_with(dir, &ChunkBackend::Local)
    }

    /// Opens the store in `dir` with its chunks in `backend`. A store is refused with the
    /// other backend, or with another bucket or prefix, than it was created with.
    pub fn open_with(dir: &Path, backend: &ChunkBackend) -> Result<Store, StoreError> {
        let packs = match backend {
            ChunkBackend::Local => None,
            ChunkBackend::S3(s) => Some(packs::Packs::connect(s)?),
        };
        let store = Store::open_inner(dir, packs)?;
        store.check_backend(backend)?;
        Ok(store)
    }

    /// Checks (and on first use records) the chunk backend against the store's `meta`.
    fn check_backend(&self, backend: &ChunkBackend) -> Result<(), StoreError> {
        let wanted = match backend {
            ChunkBackend::Local => "local".to_string(),
            ChunkBackend::S3(s) => s.identity(),
        };
        let recorded = self
            .db()
            .get_cf(self.cf(options::CF_META), META_BACKEND)?
            .map(|v| String::from_utf8_lossy(&v).into_owned());
        let refuse = |reason: String| Err(StoreError::Backend { dir: self.dir().display().to_string(), reason });
        match recorded {
            Some(r) if r == wanted => {
                if let ChunkBackend::S3(s) = backend {
                    self.record_s3_location(s)?;
                }
                Ok(())
            }
            Some(r) => refuse(format!("its chunks are in '{r}', not '{wanted}' as configured")),
            None if wanted == "local" => Ok(()),
            None => {
                let mut it = self.db().raw_iterator_cf(self.cf(options::CF_CHUNKS));
                it.seek_to_first();
                if it.valid() {
                    return refuse(format!("it holds chunks locally; it cannot be switched to '{wanted}'"));
                }
                it.status()?;
                let mut batch = WriteBatch::default();
                batch.put_cf(self.cf(options::CF_META), META_BACKEND, wanted.as_bytes());
                self.write_synced(batch)?;
                if let ChunkBackend::S3(s) = backend {
                    self.record_s3_location(s)?;
                }
                Ok(())
            }
        }
    }

    /// Records where the object store was reached (when it changed).
    fn record_s3_location(&self, s: &S3Settings) -> Result<(), StoreError> {
        let now = packs::S3Location::of(s).encode();
        if self.db().get_pinned_cf(self.cf(options::CF_META), META_S3_LOCATION)?.as_deref() == Some(&now[..]) {
            return Ok(());
        }
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(options::CF_META), META_S3_LOCATION, now);
        self.write_synced(batch)
    }

    /// Opens an existing store with the chunk backend it records, for offline tools (`debug
    /// recover`): a local store as [`Store::open`]; a store whose chunks are on an object
    /// store reaches it where the standby last did, with `credentials` (refused, naming the
    /// store, without them).
    pub fn open_recorded(dir: &Path, credentials: Option<&S3Credentials>) -> Result<Store, StoreError> {
        let plain = Store::open_inner(dir, None)?;
        let backend = plain.db().get_cf(plain.cf(options::CF_META), META_BACKEND)?;
        if backend.as_deref().is_none_or(|b| b == b"local") {
            return Ok(plain);
        }
        let refuse = |reason: String| StoreError::Backend { dir: dir.display().to_string(), reason };
        let location = plain
            .db()
            .get_cf(plain.cf(options::CF_META), META_S3_LOCATION)?
            .ok_or_else(|| refuse("its chunks are on an object store whose endpoint it does not record (start the standby once with this version)".into()))?;
        let location = packs::S3Location::decode(&location).map_err(refuse)?;
        drop(plain);
        let Some(c) = credentials else {
            return Err(refuse(format!(
                "its chunks are on {}: give the bucket's credentials (DRPAIR_S3_ACCESS_KEY_ID and DRPAIR_S3_SECRET_ACCESS_KEY)",
                location.describe()
            )));
        };
        Store::open_with(dir, &ChunkBackend::S3(location.settings(c)))
    }

    fn open_inner(dir: &Path, packs: Option<packs::Packs>) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open { dir: dir.display().to_string(), source };
        let cache = options::block_cache();
        let db =
            DB::open_cf_descriptors(&options::db_options(), dir, options::cf_descriptors(&cache)).map_err(open_err)?;
        debug_assert!(ALL_CFS.iter().all(|name| db.cf_handle(name).is_some()));
        tracing::info!(dir = %dir.display(), "store opened");
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                dir: dir.to_path_buf(),
                records: Mutex::new(()),
                unflushed_bulk: AtomicBool::new(false),
                reclaim_gate: RwLock::new(()),
                rewrite_gen: AtomicU64::new(0),
                prune: Mutex::new(()),
                packs,
            }),
        })
        .and_then(|s| {
            s.ensure_indexes()?;
            if let Some(p) = s.packs() {
                p.ensure_ledger(&s)?;
            }
            Ok(s)
        })
    }

    /// The directory the store lives in.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Flushes every memtable to files (blob files included) and syncs the WAL.
    pub fn flush(&self) -> Result<(), StoreError> {
        let db = &self.inner.db;
        let cfs: Vec<&ColumnFamily> = ALL_CFS.iter().map(|name| self.cf(name)).collect();
        if let Some(p) = self.packs() {
            p.flush(self)?;
        }
        db.flush_cfs_opt(&cfs, &rocksdb::FlushOptions::default())?;
        db.flush_wal(true)?;
        Ok(())
    }

    /// The object store's packs, when chunks live there.
    pub(crate) fn packs(&self) -> Option<&packs::Packs> {
        self.inner.packs.as_ref()
    }

    /// Where chunk bytes live: `local`, or the object store's name (endpoint, bucket,
    /// prefix; never a credential).
    pub fn chunk_backend_name(&self) -> String {
        self.packs().map_or_else(|| "local".to_string(), |p| p.name().to_string())
    }

    pub(crate) fn db(&self) -> &DB {
        &self.inner.db
    }

    /// A column family handle; every name in [`ALL_CFS`] is opened by [`Store::open`].
    pub(crate) fn cf(&self, name: &str) -> &ColumnFamily {
        self.inner.db.cf_handle(name).expect("Store::open opens every column family")
    }

    /// Writes `batch` with fsync of the WAL: durable on return.
    pub(crate) fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut w = WriteOptions::default();
        w.set_sync(true);
        self.inner.db.write_opt(batch, &w)?;
        Ok(())
    }

    /// Writes `batch` to the WAL without fsync: durable with the next synced write.
    pub(crate) fn write_unsynced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.inner.db.write(batch)?;
        Ok(())
    }

    /// Writes `batch` without the WAL (bulk chunk data): durable only once its memtable is
    /// flushed, which [`Store::make_bulk_durable`] forces before every commit.
    pub(crate) fn write_bulk(&self, batch: WriteBatch) -> Result<(), StoreError> {
        let mut w = WriteOptions::default();
        w.disable_wal(true);
        self.inner.db.write_opt(batch, &w)?;
        // Set after the write: a commit that clears the flag before this point flushes a
        // memtable that already holds the write.
        self.inner.unflushed_bulk.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Flushes the chunks column family if chunks were written without the WAL since the
    /// last flush, so that every chunk a commit may reference is durable before it.
    /// With packs on an object store, seals the open pack and waits for every upload: a
    /// commit never names a chunk the bucket does not hold.
    pub(crate) fn make_bulk_durable(&self) -> Result<(), StoreError> {
        if let Some(p) = self.packs() {
            p.flush(self)?;
        }
        if self.inner.unflushed_bulk.swap(false, Ordering::SeqCst) {
            let mut fo = rocksdb::FlushOptions::default();
            fo.set_wait(true);
            if let Err(e) = self.inner.db.flush_cf_opt(self.cf(options::CF_CHUNKS), &fo) {
                self.inner.unflushed_bulk.store(true, Ordering::SeqCst);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// Shared hold on the reclaim gate (see [`Inner::reclaim_gate`]).
    pub(crate) fn gate_shared(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.inner.reclaim_gate.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Exclusive hold on the reclaim gate.
    pub(crate) fn gate_exclusive(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.inner.reclaim_gate.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes a history rewrite; the caller holds the record lock.
    pub(crate) fn bump_rewrite(&self) {
        self.inner.rewrite_gen.fetch_add(1, Ordering::SeqCst);
    }

    /// The history generation (see [`Inner::rewrite_gen`]).
    pub(crate) fn rewrite_gen(&self) -> u64 {
        self.inner.rewrite_gen.load(Ordering::SeqCst)
    }

    /// Takes the prune lock.
    pub(crate) fn lock_prune(&self) -> MutexGuard<'_, ()> {
        self.inner.prune.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the record lock (see [`Inner::records`]). A poisoned lock only means another
    /// thread panicked between check and write, which left nothing half written (each write
    /// is one batch), so it is taken anyway.
    pub(crate) fn lock_records(&self) -> MutexGuard<'_, ()> {
        self.inner.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
impl Store {
    pub(crate) fn inner_bulk_pending(&self) -> bool {
        self.inner.unflushed_bulk.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_creates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("store");
        let s = Store::open(&path).unwrap();
        s.flush().unwrap();
        assert_eq!(s.dir(), path);
        drop(s);
        Store::open(&path).unwrap();
    }

    #[test]
    fn second_open_of_the_same_dir_names_the_dir() {
        let dir = tempfile::tempdir().unwrap();
        let _s = Store::open(dir.path()).unwrap();
        let e = Store::open(dir.path()).unwrap_err();
        assert!(e.to_string().contains(&dir.path().display().to_string()), "{e}");
        assert!(!e.is_retryable());
    }
}
