//! Chunk bytes in packs on an S3-compatible object store (`store = "s3"`).
//!
//! Chunks arrive as they do for the local backend (verified by the caller, stored as
//! shipped) and are appended to the **open pack** in memory. A pack holding
//! `pack_bytes` is **sealed** (its index trailer added, `location.rs`) and uploaded in the
//! background with one PUT under a fresh random id, so no write ever replaces an object and
//! nothing relies on conditional writes (garage ignores `If-None-Match`). Once its PUT has
//! completed, the pack's chunks get their `packed` entries (hash → pack, offset, length) and
//! leave memory. Until then they are served from memory: `has_chunks` and reads see them.
//!
//! # Invariants
//! 1. **A committed point never names bytes the bucket does not hold.** Every commit first
//!    seals the open pack and waits for every sealed pack's PUT ([`Packs::flush`], called
//!    where the local backend flushes its unlogged chunks); a failed PUT fails the commit,
//!    which is then retried with the epoch, and the pack stays in memory to be uploaded
//!    again. A `packed` entry is written only after its pack's PUT completed.
//! 2. **Memory is bounded**: at most [`MAX_SEALED`] sealed packs wait in memory besides the
//!    open one; writers wait for uploads beyond that, and fail (retryably, naming the store)
//!    rather than pile up data while the store refuses them.
//! 3. **Every read is verified**: a chunk read back from a pack goes through the same
//!    decode and blake3 check as a local one (`chunks.rs`).
//!
//! A crash loses the open and unuploaded packs, which only hold chunks of epochs not yet
//! committed (their epochs are discarded at start-up and shipped again). A pack uploaded but
//! not yet indexed when the standby died stays in the bucket unreferenced: the orphan sweep
//! deletes it (`sweep.rs`).
//!
//! # Garbage
//! Space reclaim deletes the `packed` entries of chunks no version names and debits their
//! packs in the pack ledger (`ledger.rs`, same batch); a pack left with no live chunk loses
//! its record in that batch and its object right after. Packs whose live share falls under
//! the rewrite threshold have their live chunks copied into new packs (`rewrite.rs`: upload,
//! then switch the entries in one batch, then delete the old objects). Objects under the
//! prefix that no record names, and that are not being uploaded, are deleted by the orphan
//! sweep (`sweep.rs`). The rules and their crash windows are stated in `rewrite.rs`.

mod cache;
#[cfg(test)]
mod garbage_tests;
mod ledger;
mod location;
mod remote;
mod rewrite;
mod settings;
mod sweep;
#[cfg(test)]
mod tests;

pub use ledger::PackUsage;
pub use rewrite::PackTidyOutcome;
pub(crate) use settings::S3Location;
pub use settings::{
    ChunkBackend, DEFAULT_CACHE_BYTES, DEFAULT_ORPHAN_GRACE, DEFAULT_PACK_BYTES, DEFAULT_REWRITE_BELOW, MAX_PACK_BYTES,
    MAX_REWRITE_BELOW, MIN_PACK_BYTES, S3Credentials, S3Settings,
};

use crate::chunks::Hash;
use crate::options::{CF_PACKED, CF_PACKS};
use crate::{Store, StoreError};
use bytes::Bytes;
use cache::{BLOCK, BlockCache};
use location::{Location, PACK_MAGIC, finish_pack};
use remote::Remote;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// Sealed packs that may wait in memory for their upload besides the open one.
pub(crate) const MAX_SEALED: usize = 3;

/// Counters of what went to the bucket (for tests, reports and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Packs uploaded (successful PUTs) since the store opened.
    pub packs_uploaded: u64,
    /// Bytes of those packs.
    pub bytes_uploaded: u64,
    /// PUTs that failed (each retried later).
    pub puts_failed: u64,
    /// Ranged GETs issued for reads.
    pub range_gets: u64,
}

pub(crate) struct Packs {
    remote: Remote,
    pack_bytes: usize,
    shared: Arc<Shared>,
    cache: BlockCache,
    /// See [`Packs::lock_ledger`].
    ledger: Mutex<()>,
    /// One rewrite and sweep at a time.
    tidy: Mutex<()>,
    /// Rewrite threshold (see [`S3Settings::rewrite_below`]).
    rewrite_below: f64,
    /// See [`S3Settings::orphan_grace`].
    orphan_grace: Duration,
    /// Test hook: the rewrite step at which a rewrite stops as if the standby died there.
    #[cfg(test)]
    crash_at: Mutex<Option<&'static str>>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    open: Building,
    sealed: Vec<(Arc<Sealed>, Upload)>,
    /// Packs a rewrite is uploading and has not yet indexed (the orphan sweep skips them,
    /// as it skips `sealed`).
    rewriting: HashSet<uuid::Uuid>,
    stats: PackStats,
}

#[derive(Default)]
struct Building {
    bytes: Vec<u8>,
    at: HashMap<Hash, (u32, u32)>,
    order: Vec<Hash>,
}

struct Sealed {
    id: uuid::Uuid,
    bytes: Bytes,
    at: HashMap<Hash, (u32, u32)>,
}

#[derive(Debug, Clone)]
enum Upload {
    Running,
    Done,
    Failed(String),
}

impl Packs {
    pub(crate) fn connect(s: &S3Settings) -> Result<Packs, StoreError> {
        let mut p = Packs::over(Remote::connect(s)?, s.pack_bytes, s.cache_bytes);
        p.rewrite_below = s.rewrite_below.clamp(0.0, MAX_REWRITE_BELOW);
        p.orphan_grace = s.orphan_grace;
        Ok(p)
    }

    fn over(remote: Remote, pack_bytes: u64, cache_bytes: u64) -> Packs {
        let pack_bytes = pack_bytes.clamp(MIN_PACK_BYTES, MAX_PACK_BYTES) as usize;
        Packs {
            remote,
            pack_bytes,
            shared: Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new() }),
            cache: BlockCache::new(cache_bytes),
            ledger: Mutex::new(()),
            tidy: Mutex::new(()),
            rewrite_below: DEFAULT_REWRITE_BELOW,
            orphan_grace: DEFAULT_ORPHAN_GRACE,
            #[cfg(test)]
            crash_at: Mutex::new(None),
        }
    }

    /// Whether `pack` is being uploaded or indexed by this process: sealed and not yet
    /// indexed, or written by a rewrite not yet switched.
    fn in_flight(&self, pack: &uuid::Uuid) -> bool {
        let st = self.lock();
        st.rewriting.contains(pack) || st.sealed.iter().any(|(p, _)| p.id == *pack)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The store's name for messages (endpoint, bucket, prefix).
    pub(crate) fn name(&self) -> &str {
        self.remote.name()
    }

    pub(crate) fn stats(&self) -> PackStats {
        self.lock().stats
    }

    /// Pack objects and their bytes in the bucket under this store's prefix (one listing).
    pub(crate) fn count_objects(&self) -> Result<(u64, u64), StoreError> {
        self.remote.count_packs()
    }

    /// Whether the chunk waits in memory (open or sealed pack).
    fn waiting(st: &State, hash: &Hash) -> bool {
        st.open.at.contains_key(hash) || st.sealed.iter().any(|(p, _)| p.at.contains_key(hash))
    }

    /// The chunk's stored value when it waits in memory (open or sealed pack).
    fn in_memory(st: &State, hash: &Hash) -> Option<Vec<u8>> {
        if let Some(&(off, len)) = st.open.at.get(hash) {
            return Some(st.open.bytes[off as usize..(off + len) as usize].to_vec());
        }
        st.sealed
            .iter()
            .find_map(|(p, _)| p.at.get(hash).map(|&(off, len)| p.bytes[off as usize..(off + len) as usize].to_vec()))
    }

    /// Called before a frame's chunks are appended: waits while [`MAX_SEALED`] packs wait for
    /// their upload, and fails (naming the store) when one of them failed meanwhile; the
    /// failed ones are sent again.
    pub(crate) fn admit(&self, store: &Store) -> Result<(), StoreError> {
        loop {
            self.index_uploaded(store)?;
            let mut st = self.lock();
            if st.sealed.len() < MAX_SEALED {
                return Ok(());
            }
            if let Some(e) = self.first_failure(&st) {
                self.restart_failed(&mut st);
                return Err(e);
            }
            let _ = self.shared.changed.wait_timeout(st, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Appends a stored value to the open pack (nothing when the chunk is already waiting
    /// in memory); seals and starts uploading the pack once it is full.
    pub(crate) fn append(&self, hash: &Hash, value: &[u8]) {
        let mut st = self.lock();
        if Self::waiting(&st, hash) {
            return;
        }
        if st.open.bytes.is_empty() {
            st.open.bytes.extend_from_slice(PACK_MAGIC);
        }
        let off = u32::try_from(st.open.bytes.len()).expect("packs are at most 1 GiB");
        let len = u32::try_from(value.len()).expect("a chunk is at most 4 MiB");
        st.open.bytes.extend_from_slice(value);
        st.open.at.insert(*hash, (off, len));
        st.open.order.push(*hash);
        if st.open.bytes.len() >= self.pack_bytes {
            self.seal(&mut st);
        }
    }

    /// Seals the open pack (if it holds anything) and starts its upload.
    fn seal(&self, st: &mut State) {
        if st.open.order.is_empty() {
            return;
        }
        let open = std::mem::take(&mut st.open);
        let entries: Vec<(Hash, u32, u32)> = open.order.iter().map(|h| (*h, open.at[h].0, open.at[h].1)).collect();
        let mut bytes = open.bytes;
        finish_pack(&mut bytes, &entries);
        let sealed = Arc::new(Sealed { id: uuid::Uuid::new_v4(), bytes: Bytes::from(bytes), at: open.at });
        tracing::debug!(pack = %sealed.id, bytes = sealed.bytes.len(), chunks = entries.len(), "pack sealed");
        st.sealed.push((sealed.clone(), Upload::Running));
        self.upload(sealed);
    }

    fn upload(&self, pack: Arc<Sealed>) {
        let shared = self.shared.clone();
        let id = pack.id;
        let len = pack.bytes.len() as u64;
        self.remote.spawn_put(self.remote.pack_key(&id), pack.bytes.clone(), move |res| {
            let mut st = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let outcome = match res {
                Ok(()) => {
                    st.stats.packs_uploaded += 1;
                    st.stats.bytes_uploaded += len;
                    Upload::Done
                }
                Err(e) => {
                    st.stats.puts_failed += 1;
                    tracing::warn!(pack = %id, error = %e, "pack upload failed: kept in memory, sent again");
                    Upload::Failed(e.to_string())
                }
            };
            if let Some(slot) = st.sealed.iter_mut().find(|(p, _)| p.id == id) {
                slot.1 = outcome;
            }
            shared.changed.notify_all();
        });
    }

    /// The first failed upload, as an error naming the store.
    fn first_failure(&self, st: &State) -> Option<StoreError> {
        st.sealed.iter().find_map(|(pack, upload)| match upload {
            Upload::Failed(reason) => Some(StoreError::ObjectStore {
                store: self.remote.name().to_string(),
                what: format!("pack {} not uploaded", pack.id),
                reason: reason.clone(),
                retryable: true,
            }),
            _ => None,
        })
    }

    /// Starts again the upload of every failed pack.
    fn restart_failed(&self, st: &mut State) {
        for (pack, upload) in st.sealed.iter_mut() {
            if matches!(upload, Upload::Failed(_)) {
                *upload = Upload::Running;
                self.upload(pack.clone());
            }
        }
    }

    /// Writes the `packed` entries of every pack whose upload completed and lets it leave
    /// memory. Unsynced: the next synced commit makes them durable.
    fn index_uploaded(&self, store: &Store) -> Result<(), StoreError> {
        let done: Vec<Arc<Sealed>> =
            self.lock().sealed.iter().filter(|(_, u)| matches!(u, Upload::Done)).map(|(p, _)| p.clone()).collect();
        if done.is_empty() {
            return Ok(());
        }
        // No entry can name these chunks yet (they were appended only when not held), so no
        // other pack's record is debited: see `ledger.rs`, invariant 2.
        let mut batch = rocksdb::WriteBatch::default();
        for p in &done {
            let pack_len = u32::try_from(p.bytes.len()).expect("packs are at most 1 GiB and an index");
            let mut record = ledger::PackRecord { pack_len, ..Default::default() };
            for (hash, &(offset, len)) in &p.at {
                let loc = Location { pack: p.id, offset, len, pack_len };
                batch.put_cf(store.cf(CF_PACKED), hash, loc.encode());
                record.chunks += 1;
                record.chunk_bytes += len;
            }
            record.live_chunks = record.chunks;
            record.live_bytes = record.chunk_bytes;
            batch.put_cf(store.cf(CF_PACKS), ledger::pack_key(&p.id), record.encode());
        }
        store.write_unsynced(batch)?;
        self.lock().sealed.retain(|(p, _)| !done.iter().any(|d| d.id == p.id));
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Makes every chunk appended so far durable in the bucket and indexed: seals the open
    /// pack, sends failed packs again, waits for every upload, indexes them. Fails (naming
    /// the store) when an upload failed; such packs stay in memory, to be sent again by the
    /// next call.
    pub(crate) fn flush(&self, store: &Store) -> Result<(), StoreError> {
        {
            let mut st = self.lock();
            self.seal(&mut st);
            self.restart_failed(&mut st);
            while st.sealed.iter().any(|(_, u)| matches!(u, Upload::Running)) {
                st = self.shared.changed.wait(st).unwrap_or_else(|e| e.into_inner());
            }
        }
        self.index_uploaded(store)?;
        match self.first_failure(&self.lock()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// For each hash, whether the chunk is held: waiting in memory or indexed in `packed`.
    pub(crate) fn has(&self, store: &Store, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        let mut found = vec![false; hashes.len()];
        let mut ask = Vec::new();
        {
            let st = self.lock();
            for (i, h) in hashes.iter().enumerate() {
                if Self::waiting(&st, h) { found[i] = true } else { ask.push(i) }
            }
        }
        if !ask.is_empty() {
            let keys: Vec<&Hash> = ask.iter().map(|&i| &hashes[i]).collect();
            for (&i, r) in ask.iter().zip(store.db().batched_multi_get_cf(store.cf(CF_PACKED), keys, false)) {
                found[i] = r?.is_some();
            }
        }
        Ok(found)
    }

    /// The stored value of a chunk (as shipped), from memory or from its pack; through the
    /// local cache of pack blocks when `cached`, else exactly its bytes from the bucket
    /// (verify re-reads the bucket). None when not held (or its pack is gone).
    ///
    /// A rewrite may move the chunk and delete its old pack between reading the location and
    /// the GET: a pack found missing is looked up again, and read at its new place.
    pub(crate) fn read(&self, store: &Store, hash: &Hash, cached: bool) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = Self::in_memory(&self.lock(), hash) {
            return Ok(Some(v));
        }
        let mut tried = None;
        loop {
            let Some(raw) = store.db().get_pinned_cf(store.cf(CF_PACKED), hash)? else {
                return Ok(None);
            };
            let loc = Location::decode(hash, &raw)?;
            if tried == Some(loc) {
                return Ok(None);
            }
            match self.read_at(&loc, cached)? {
                Some(v) => return Ok(Some(v)),
                None => tried = Some(loc),
            }
        }
    }

    /// The bytes at `loc`; None when its pack is not in the bucket.
    fn read_at(&self, loc: &Location, cached: bool) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self.remote.pack_key(&loc.pack);
        let (start, end) = (u64::from(loc.offset), u64::from(loc.offset) + u64::from(loc.len));
        if !cached {
            self.lock().stats.range_gets += 1;
            return Ok(self.remote.get_range(&key, start..end)?.map(|b| b.to_vec()));
        }
        let mut out = Vec::with_capacity(loc.len as usize);
        for block in start / BLOCK..end.div_ceil(BLOCK) {
            let bytes = match self.cache.get(loc.pack, block) {
                Some(b) => b,
                None => {
                    let range = block * BLOCK..((block + 1) * BLOCK).min(u64::from(loc.pack_len));
                    self.lock().stats.range_gets += 1;
                    let Some(b) = self.remote.get_range(&key, range.clone())? else { return Ok(None) };
                    if b.len() as u64 != range.end - range.start {
                        return Err(StoreError::ObjectStore {
                            store: self.remote.name().to_string(),
                            what: format!("GET {key} bytes {}..{}", range.start, range.end),
                            reason: format!("{} bytes came back", b.len()),
                            retryable: true,
                        });
                    }
                    self.cache.insert(loc.pack, block, b.clone());
                    b
                }
            };
            let within = |at: u64| usize::try_from(at - block * BLOCK).expect("an offset within a 1 MiB block");
            out.extend_from_slice(&bytes[within(start.max(block * BLOCK))..within(end.min((block + 1) * BLOCK))]);
        }
        Ok(Some(out))
    }
}

impl Store {
    /// Rewrites the sparse packs, then deletes the orphan packs (`rewrite.rs`, `sweep.rs`);
    /// None for the local backend. One at a time; blocking (object store requests).
    pub fn tidy_packs(&self) -> Result<Option<PackTidyOutcome>, StoreError> {
        let Some(p) = self.packs() else { return Ok(None) };
        let _one = p.tidy.lock().unwrap_or_else(|e| e.into_inner());
        let t0 = std::time::Instant::now();
        let mut out = PackTidyOutcome::default();
        p.rewrite_sparse(self, &mut out)?;
        p.sweep_orphans(self, &mut out)?;
        out.seconds = t0.elapsed().as_secs_f64();
        if out.packs_rewritten > 0 || out.orphans_deleted > 0 {
            tracing::info!(
                store = %p.name(),
                packs_rewritten = out.packs_rewritten,
                packs_written = out.packs_written,
                chunks_moved = out.chunks_moved,
                bytes_moved = out.bytes_moved,
                orphans_deleted = out.orphans_deleted,
                bytes_deleted = out.bytes_deleted,
                "packs tidied"
            );
        }
        Ok(Some(out))
    }

    /// What the packs hold (a scan of the ledger, one record per pack), None for the local
    /// backend.
    pub fn pack_usage(&self) -> Result<Option<PackUsage>, StoreError> {
        self.packs().map(|p| p.usage(self, p.rewrite_below)).transpose()
    }

    /// Deletes the objects of packs a synced batch left with no live chunk; a failure
    /// leaves them to the orphan sweep. Returns how many went.
    pub(crate) fn delete_emptied_packs(&self, packs: &[uuid::Uuid]) -> u64 {
        let Some(p) = self.packs() else { return 0 };
        let mut n = 0;
        for pack in packs {
            match p.remote.delete(&p.remote.pack_key(pack)) {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(%pack, error = %e, "deleting an emptied pack failed; the orphan sweep will"),
            }
        }
        n
    }

    /// What went to the object store since the store opened, None for the local backend.
    pub fn pack_stats(&self) -> Option<PackStats> {
        self.packs().map(Packs::stats)
    }

    /// Pack objects and their bytes in the bucket (a listing), None for the local backend.
    pub fn pack_objects(&self) -> Result<Option<(u64, u64)>, StoreError> {
        self.packs().map(Packs::count_objects).transpose()
    }
}
