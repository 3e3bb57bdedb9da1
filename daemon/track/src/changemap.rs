//! The change map: per disk, a persistent, memory-mapped record of the epoch in which each
//! chunk last changed, and of the hash of each chunk as the agent last read it.
//!
//! File layout (`disk-N.chmap`): the [header](crate::header) (4096 bytes), then `chunk_count`
//! little-endian u64 epochs (0 = unchanged since the lineage began), then `chunk_count`
//! 32-byte blake3 hashes (all zero = unknown). A chunk's epoch is the larger of its entry and
//! the header's base epoch: creating a map or starting a new lineage stamps every chunk by
//! setting the base epoch, not by writing each entry.
//!
//! **Costs that do not grow with the disk.** The file is sparse: untouched entries are holes
//! (no blocks, no resident pages). A region of 512 chunks (one page of entries, plus its 16 KiB
//! of hashes) gets its blocks the first time this process writes to it (`fallocate`), so a
//! full filesystem is an error from [`ChangeMap::mark`] rather than a SIGBUS in a mapped write.
//! An in-memory summary (the newest entry per region, rebuilt at open from the file's data
//! extents) lets [`ChangeMap::changed_since`], [`ChangeMap::dirty_runs`] and
//! [`ChangeMap::dirty_count`] skip untouched regions without reading them.
//!
//! Entries are written to the mapping without msync: a killed process loses nothing (the pages
//! live in the page cache), and an OS crash or power loss is caught by the clean-shutdown flag,
//! which stays false while a process owns the map. Header changes that matter (acknowledged
//! epoch, cuts, lineage, history start, clean flag, suspect flag) are msync'ed at once. The
//! file is held under an exclusive `flock` while open, so two agents cannot own one map.
//!
//! The history start ([`ChangeMap::history_from`]) says how far back the change history
//! reaches: "which chunks changed since epoch E" is complete only for E ≥ it. It rises when
//! older history is lost (joining an existing pair, a tracking gap) and drops to 0 only with
//! a new lineage, whose every chunk is stamped.

mod error;
mod grow;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod sparse_tests;
mod summary;

pub use error::ChangeMapError;

use crate::header::{self, HEADER_SIZE, Header, get_u64, put_u64};
use drpair_types::{DiskGeometry, Epoch, Lineage};
use memmap2::MmapMut;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use summary::{REGION_CHUNKS, Summary};

/// A blake3 hash of a chunk's content.
pub type Hash = [u8; 32];

const EPOCH_LEN: usize = 8;
const HASH_LEN: usize = 32;
const UNKNOWN_HASH: Hash = [0u8; 32];

/// The change map of one disk. See the [module docs](self).
pub struct ChangeMap {
    path: PathBuf,
    /// Kept open: it holds the exclusive `flock`.
    _file: File,
    mmap: MmapMut,
    header: Header,
    count: u64,
    /// Offset of the first hash entry.
    hash_base: usize,
    /// Newest entry per region, and the regions given blocks (see the module docs).
    summary: Summary,
}

/// A change map opened by [`ChangeMap::open`].
#[derive(Debug)]
pub struct Opened {
    pub map: ChangeMap,
    /// Whether the previous owner closed the map with [`ChangeMap::close_clean`]. When false,
    /// changes may have gone unrecorded (crash, kill, power loss): tracking has a gap.
    pub was_clean: bool,
}

impl ChangeMap {
    /// Creates a new map file (fails if it exists): every chunk stamped `stamp_all` (1 for
    /// "everything must be copied", 0 for "nothing changed") through the base epoch, the
    /// entries left sparse, acknowledged epoch 0, next epoch `max(stamp_all, 1)`, no cut yet,
    /// history from epoch 0, clean flag false (the running process owns the map), hashes
    /// unknown. On failure the half-made file is removed.
    pub fn create(
        path: &Path,
        geometry: DiskGeometry,
        lineage: Lineage,
        stamp_all: Epoch,
    ) -> Result<Self, ChangeMapError> {
        let file = OpenOptions::new().read(true).write(true).create_new(true).open(path).map_err(io_err(path))?;
        let header = Header {
            geometry,
            lineage,
            acked: 0,
            next_epoch: stamp_all.max(1),
            last_cut: 0,
            clean: false,
            suspect: None,
            history_from: 0,
            base_epoch: stamp_all,
        };
        Self::init(path, file, header).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    fn init(path: &Path, file: File, header: Header) -> Result<Self, ChangeMapError> {
        lock(&file, path)?;
        let count = header.geometry.chunk_count();
        let len = file_len(count).ok_or_else(|| ChangeMapError::Io {
            path: path.to_path_buf(),
            source: io::Error::other(format!("{count} chunks make a change map too large for this system")),
        })?;
        file.set_len(len as u64).map_err(io_err(path))?;
        // The header's page now; the entries' pages when first written (all zero until then).
        allocate(&file, path, 0, HEADER_SIZE as u64)?;
        let mmap = map(&file, path)?;
        let mut map = Self::assemble(path, file, mmap, header, Summary::empty(count));
        // The header last: a crash before it leaves no magic, hence `Damaged`.
        let header = map.header.clone();
        map.commit_header(header)?;
        map._file.sync_all().map_err(io_err(path))?;
        sync_parent(path)?;
        tracing::debug!(path = %path.display(), chunks = count, base_epoch = map.header.base_epoch, "change map created");
        Ok(map)
    }

    /// Opens an existing map and checks it against `geometry`: magic, version, header crc,
    /// field ranges, exact file length, then geometry. Reports whether the previous owner shut
    /// down cleanly, then sets the clean flag to false and flushes the header (we own it now).
    /// A refused map is left untouched.
    pub fn open(path: &Path, geometry: DiskGeometry) -> Result<Opened, ChangeMapError> {
        let file = match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(ChangeMapError::Missing { path: path.to_path_buf() });
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        lock(&file, path)?;
        let damaged = |reason: String| ChangeMapError::Damaged { path: path.to_path_buf(), reason };
        let len = file.metadata().map_err(io_err(path))?.len();
        if len < HEADER_SIZE as u64 {
            return Err(damaged(header::HeaderError::Truncated(len).to_string()));
        }
        let mmap = map(&file, path)?;
        let header = Header::decode(&mmap[..HEADER_SIZE]).map_err(|e| damaged(e.to_string()))?;
        let count = header.geometry.chunk_count();
        let expected = file_len(count).map(|l| l as u64);
        if expected != Some(len) {
            return Err(damaged(format!(
                "file is {len} bytes long, but {count} chunks need {} bytes (truncated or extended)",
                expected.map_or_else(|| "more than addressable".to_string(), |l| l.to_string())
            )));
        }
        if header.geometry != geometry {
            return Err(ChangeMapError::GeometryMismatch {
                path: path.to_path_buf(),
                recorded: header.geometry,
                actual: geometry,
            });
        }
        let was_clean = header.clean;
        let summary =
            Summary::build(&file, &mmap[HEADER_SIZE..HEADER_SIZE + idx(count) * EPOCH_LEN], HEADER_SIZE as u64)
                .map_err(io_err(path))?;
        let mut map = Self::assemble(path, file, mmap, header, summary);
        map.commit_header(Header { clean: false, ..map.header.clone() })?;
        tracing::debug!(path = %path.display(), was_clean, acked = map.acked(), "change map opened");
        Ok(Opened { map, was_clean })
    }

    fn assemble(path: &Path, file: File, mmap: MmapMut, header: Header, summary: Summary) -> Self {
        let count = header.geometry.chunk_count();
        let hash_base = HEADER_SIZE + idx(count) * EPOCH_LEN;
        Self { path: path.to_path_buf(), _file: file, mmap, header, count, hash_base, summary }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn geometry(&self) -> DiskGeometry {
        self.header.geometry
    }

    pub fn chunk_count(&self) -> u64 {
        self.count
    }

    pub fn lineage(&self) -> Lineage {
        self.header.lineage
    }

    /// The newest epoch the standby committed in this lineage (0 = none yet).
    pub fn acked(&self) -> Epoch {
        self.header.acked
    }

    /// The epoch new changes are stamped with (the one the next cut closes).
    pub fn next_epoch(&self) -> Epoch {
        self.header.next_epoch
    }

    /// The epoch closed by the latest cut of this lineage (0 = none).
    pub fn last_cut(&self) -> Epoch {
        self.header.last_cut
    }

    /// The oldest epoch E for which [`changed_since(E)`](Self::changed_since) is complete: how
    /// far back a replay (or a dump marker, or failback) can reach. 0 = the whole lineage.
    pub fn history_from(&self) -> Epoch {
        self.header.history_from
    }

    /// Epoch of the chunk's last change; 0 also for a chunk out of range.
    pub fn epoch_of(&self, chunk: u64) -> Epoch {
        if chunk >= self.count {
            return 0;
        }
        self.entry(chunk).max(self.header.base_epoch)
    }

    /// The chunk's own entry (without the base epoch); reads nothing for an untouched region.
    fn entry(&self, chunk: u64) -> Epoch {
        if self.summary.newest(chunk / REGION_CHUNKS) == 0 {
            return 0;
        }
        get_u64(&self.mmap, epoch_off(chunk))
    }

    /// Changed after the acknowledged epoch (false for a chunk out of range).
    pub fn is_dirty(&self, chunk: u64) -> bool {
        self.epoch_of(chunk) > self.header.acked
    }

    /// Stamps `chunk` with `epoch` if that is newer than its epoch; never lowers it.
    pub fn mark(&mut self, chunk: u64, epoch: Epoch) -> Result<(), ChangeMapError> {
        self.check(chunk)?;
        self.stamp(chunk, epoch)
    }

    /// [`mark`](Self::mark) for chunks `first..first + count`; all in range or nothing changes.
    pub fn mark_range(&mut self, first: u64, count: u64, epoch: Epoch) -> Result<(), ChangeMapError> {
        if count == 0 {
            return Ok(());
        }
        let last = first
            .checked_add(count - 1)
            .ok_or(ChangeMapError::ChunkOutOfRange { chunk: u64::MAX, count: self.count })?;
        self.check(last)?;
        for chunk in first..=last {
            self.stamp(chunk, epoch)?;
        }
        Ok(())
    }

    /// Marks every chunk covering bytes `offset..offset + len` (for kernel trackers: sector
    /// ranges). Bytes past the end of a short last chunk still map to it; a range reaching a
    /// chunk past the end of the disk is refused and changes nothing. `len == 0` marks nothing.
    pub fn mark_bytes(&mut self, offset: u64, len: u64, epoch: Epoch) -> Result<(), ChangeMapError> {
        if len == 0 {
            return Ok(());
        }
        let shift = self.header.geometry.chunk_size.shift();
        let end = offset
            .checked_add(len - 1)
            .ok_or(ChangeMapError::ChunkOutOfRange { chunk: u64::MAX >> shift, count: self.count })?;
        let first = offset >> shift;
        let last = end >> shift;
        self.mark_range(first, last - first + 1, epoch)
    }

    /// Number of chunks changed after the acknowledged epoch: regions whose newest entry
    /// and the base epoch are both acknowledged are not read.
    pub fn dirty_count(&self) -> u64 {
        let acked = self.header.acked;
        (0..self.summary.regions())
            .map(|r| {
                let (first, end) = self.region_chunks(r);
                if self.header.base_epoch > acked {
                    end - first
                } else if self.summary.newest(r) <= acked {
                    0
                } else {
                    (first..end).filter(|&c| self.entry(c) > acked).count() as u64
                }
            })
            .sum()
    }

    /// Chunks whose epoch is newer than `epoch`, ascending. Complete only for `epoch` ≥
    /// [`history_from`](Self::history_from): older changes may be missing. Regions with no
    /// newer entry are skipped unread (every chunk of one is listed when the base epoch is
    /// newer).
    pub fn changed_since(&self, epoch: Epoch) -> impl Iterator<Item = u64> + '_ {
        let base_newer = self.header.base_epoch > epoch;
        (0..self.summary.regions()).filter(move |&r| base_newer || self.summary.newest(r) > epoch).flat_map(move |r| {
            let (first, end) = self.region_chunks(r);
            (first..end).filter(move |&c| base_newer || self.entry(c) > epoch)
        })
    }

    /// Chunks `first..end` of region `r`.
    fn region_chunks(&self, r: u64) -> (u64, u64) {
        let first = r * REGION_CHUNKS;
        (first, (first + REGION_CHUNKS).min(self.count))
    }

    /// Runs `(first, count)` of contiguous dirty chunks, each at most `max_run` long (0 counts
    /// as 1), ascending: for batching reads.
    pub fn dirty_runs(&self, max_run: u64) -> Vec<(u64, u64)> {
        let max_run = max_run.max(1);
        let mut runs = Vec::new();
        let mut current: Option<(u64, u64)> = None;
        for chunk in self.changed_since(self.header.acked) {
            current = match current {
                Some((first, n)) if first + n == chunk && n < max_run => Some((first, n + 1)),
                Some(run) => {
                    runs.push(run);
                    Some((chunk, 1))
                }
                None => Some((chunk, 1)),
            };
        }
        runs.extend(current);
        runs
    }

    /// The chunk's hash as the agent last read it; `None` when unknown or out of range.
    pub fn hash(&self, chunk: u64) -> Option<Hash> {
        if chunk >= self.count {
            return None;
        }
        let at = self.hash_off(chunk);
        let mut hash = UNKNOWN_HASH;
        hash.copy_from_slice(&self.mmap[at..at + HASH_LEN]);
        (hash != UNKNOWN_HASH).then_some(hash)
    }

    /// Records (or, with `None`, forgets) the chunk's hash.
    pub fn set_hash(&mut self, chunk: u64, hash: Option<Hash>) -> Result<(), ChangeMapError> {
        self.check(chunk)?;
        self.write_hash(chunk, &hash.unwrap_or(UNKNOWN_HASH))
    }

    /// Forgets the recorded hashes of chunks `first..first + count` (their content changed
    /// without being read, e.g. a hole shipped as zero), reading and writing only the parts of
    /// the file that hold hashes: untouched regions stay holes. All in range or nothing.
    pub fn forget_hashes(&mut self, first: u64, count: u64) -> Result<(), ChangeMapError> {
        if count == 0 {
            return Ok(());
        }
        let last = first
            .checked_add(count - 1)
            .ok_or(ChangeMapError::ChunkOutOfRange { chunk: u64::MAX, count: self.count })?;
        self.check(last)?;
        let (from, to) = (self.hash_off(first) as u64, (self.hash_off(last) + HASH_LEN) as u64);
        for (a, b) in crate::extents::data_segments(&self._file, from, to).map_err(io_err(&self.path))? {
            // Data segments hold blocks: writing them cannot fault for want of space.
            self.mmap[a as usize..b as usize].fill(0);
        }
        Ok(())
    }

    /// The scan tracker's comparison: if `hash` differs from the recorded hash (or none is
    /// recorded), stamps the chunk `epoch` (never lowering it), records the hash and returns
    /// true. The stamp is written before the hash, so an interrupted call leaves the chunk
    /// dirty rather than matching and clean.
    pub fn observe(&mut self, chunk: u64, hash: Hash, epoch: Epoch) -> Result<bool, ChangeMapError> {
        self.check(chunk)?;
        if self.hash(chunk) == Some(hash) {
            return Ok(false);
        }
        self.stamp(chunk, epoch)?;
        self.write_hash(chunk, &hash)?;
        Ok(true)
    }

    /// Begins a cut: returns `E = next_epoch`, sets last cut = E and next epoch = E + 1, and
    /// flushes the header. Changes observed from now on are stamped E + 1.
    pub fn begin_cut(&mut self) -> Result<Epoch, ChangeMapError> {
        let epoch = self.header.next_epoch;
        let next = epoch.checked_add(1).ok_or_else(|| ChangeMapError::Damaged {
            path: self.path.clone(),
            reason: "the epoch counter is exhausted".into(),
        })?;
        self.commit_header(Header { last_cut: epoch, next_epoch: next, ..self.header.clone() })?;
        Ok(epoch)
    }

    /// The standby committed `epoch`: the acknowledged epoch becomes `epoch` (never lowered;
    /// an older epoch is a no-op). Flushes the entries, then the header, so no change newer
    /// than `epoch` can be lost behind a durable acknowledgement. Refuses an epoch that was not
    /// cut yet in this lineage.
    pub fn set_acked(&mut self, epoch: Epoch) -> Result<(), ChangeMapError> {
        if epoch > self.header.last_cut {
            return Err(ChangeMapError::NotCut { path: self.path.clone(), epoch, last_cut: self.header.last_cut });
        }
        if epoch <= self.header.acked {
            return Ok(());
        }
        self.flush()?;
        self.commit_header(Header { acked: epoch, ..self.header.clone() })
    }

    /// Adopts the standby's checkpoint (joining an existing pair): sets the lineage and the
    /// acknowledged epoch, next epoch = max(next epoch, acked + 1), last cut = max(last cut,
    /// acked), history from = max(history from, acked) (nothing is known of the changes the
    /// checkpoint already holds).
    pub fn adopt(&mut self, lineage: Lineage, acked: Epoch) -> Result<(), ChangeMapError> {
        let h = &self.header;
        let header = Header {
            lineage,
            acked,
            next_epoch: h.next_epoch.max(acked.saturating_add(1)),
            last_cut: h.last_cut.max(acked),
            history_from: h.history_from.max(acked),
            ..h.clone()
        };
        self.commit_header(header)
    }

    /// Tracking had a gap (changes may have gone unrecorded since `epoch`, normally the
    /// acknowledged one): history from = max(history from, min(`epoch`, last cut)), so that
    /// no replay from an older epoch is answered from an incomplete history. Durable on
    /// return; never lowers the history start.
    pub fn limit_history(&mut self, epoch: Epoch) -> Result<(), ChangeMapError> {
        let history_from = self.header.history_from.max(epoch.min(self.header.last_cut));
        if history_from == self.header.history_from {
            return Ok(());
        }
        self.commit_header(Header { history_from, ..self.header.clone() })
    }

    /// The standby's head is now its point `epoch` (it rolled back to replay from there):
    /// the acknowledged epoch becomes `epoch`, so every chunk changed after it is dirty again.
    /// Normally this lowers it; it may also raise it to a cut epoch the standby committed but
    /// whose acknowledgement was lost. Entries are flushed first, then the header (lowering
    /// only makes more chunks dirty, so a crash in between loses nothing). Rewinding to the
    /// acknowledged epoch is a no-op.
    ///
    /// Refused, changing nothing, with [`ChangeMapError::HistoryTooShort`] when `epoch` is
    /// older than [`history_from`](Self::history_from) (the changes since then are not all
    /// known), and with [`ChangeMapError::NotCut`] when `epoch` was not cut in this lineage.
    pub fn rewind(&mut self, epoch: Epoch) -> Result<(), ChangeMapError> {
        let h = &self.header;
        if epoch < h.history_from {
            return Err(ChangeMapError::HistoryTooShort {
                path: self.path.clone(),
                epoch,
                history_from: h.history_from,
            });
        }
        if epoch > h.last_cut {
            return Err(ChangeMapError::NotCut { path: self.path.clone(), epoch, last_cut: h.last_cut });
        }
        if epoch == h.acked {
            return Ok(());
        }
        let from = h.acked;
        self.flush()?;
        self.commit_header(Header { acked: epoch, ..self.header.clone() })?;
        tracing::info!(path = %self.path.display(), from, to = epoch, "change map rewound: acknowledged epoch moved");
        Ok(())
    }

    /// Starts over in a new lineage: every chunk stamped `stamp_all` (the base epoch; the
    /// entries cleared and their blocks given back), hashes forgotten, acknowledged epoch 0,
    /// no cut yet, history from 0, next epoch = max(next epoch, stamp_all) so epochs keep
    /// growing. The suspect flag is left to the caller.
    ///
    /// Crash-safe order: first the acknowledged epoch drops to 0 (durably), which only ever
    /// makes more chunks dirty; then the entries; then the new lineage, base epoch and history
    /// start (a crash before that keeps the old, possibly shorter, history, and with the
    /// entries cleared, the old base epoch: every chunk at least as dirty as before, since
    /// nothing is acknowledged).
    pub fn reset(&mut self, lineage: Lineage, stamp_all: Epoch) -> Result<(), ChangeMapError> {
        self.commit_header(Header { acked: 0, ..self.header.clone() })?;
        self.clear_entries()?;
        self.flush()?;
        let header = Header {
            lineage,
            acked: 0,
            last_cut: 0,
            history_from: 0,
            next_epoch: self.header.next_epoch.max(stamp_all),
            base_epoch: stamp_all,
            ..self.header.clone()
        };
        self.commit_header(header)
    }

    /// Marks the map suspect (tracking may have missed changes: the next pass must scan) with a
    /// short reason (cut to 64 bytes), or clears the mark with `None`.
    pub fn set_suspect(&mut self, reason: Option<&str>) -> Result<(), ChangeMapError> {
        let suspect = reason.map(|r| header::truncate_reason(r).to_string());
        self.commit_header(Header { suspect, ..self.header.clone() })
    }

    /// Why the map is suspect, if it is.
    pub fn suspect(&self) -> Option<String> {
        self.header.suspect.clone()
    }

    /// Writes everything to disk (msync of the whole map).
    pub fn flush(&self) -> Result<(), ChangeMapError> {
        self.mmap.flush().map_err(io_err(&self.path))
    }

    /// Flushes the entries, then sets the clean flag and flushes the header.
    pub fn close_clean(mut self) -> Result<(), ChangeMapError> {
        self.flush()?;
        self.commit_header(Header { clean: true, ..self.header.clone() })?;
        tracing::debug!(path = %self.path.display(), "change map closed cleanly");
        Ok(())
    }

    fn check(&self, chunk: u64) -> Result<(), ChangeMapError> {
        if chunk < self.count { Ok(()) } else { Err(ChangeMapError::ChunkOutOfRange { chunk, count: self.count }) }
    }

    /// Stamps an in-range chunk with `epoch` unless it already has a newer or equal one
    /// (the base epoch counts: a chunk at the base epoch keeps its entry untouched).
    fn stamp(&mut self, chunk: u64, epoch: Epoch) -> Result<(), ChangeMapError> {
        if epoch <= self.epoch_of(chunk) {
            return Ok(());
        }
        self.own_region(chunk)?;
        put_u64(&mut self.mmap, epoch_off(chunk), epoch);
        self.summary.raise(chunk, epoch);
        Ok(())
    }

    fn write_hash(&mut self, chunk: u64, hash: &Hash) -> Result<(), ChangeMapError> {
        let at = self.hash_off(chunk);
        if self.mmap[at..at + HASH_LEN] == hash[..] {
            return Ok(());
        }
        self.own_region(chunk)?;
        self.mmap[at..at + HASH_LEN].copy_from_slice(hash);
        Ok(())
    }

    /// Gives the pages of the chunk's region (its epochs and hashes) their blocks before the
    /// first write to them by this process: a mapped write to a hole on a full filesystem
    /// would kill the process (SIGBUS); this makes it an error instead.
    fn own_region(&mut self, chunk: u64) -> Result<(), ChangeMapError> {
        let r = chunk / REGION_CHUNKS;
        if self.summary.take_allocation(r) {
            return Ok(());
        }
        let (first, end) = self.region_chunks(r);
        let n = (end - first) as u64;
        let res = allocate(&self._file, &self.path, epoch_off(first) as u64, n * EPOCH_LEN as u64)
            .and_then(|()| allocate(&self._file, &self.path, self.hash_off(first) as u64, n * HASH_LEN as u64));
        if res.is_err() {
            self.summary.forget_allocation(r);
        }
        res
    }

    /// Zeroes every entry (epochs and hashes), giving their blocks back where the filesystem
    /// can punch holes.
    fn clear_entries(&mut self) -> Result<(), ChangeMapError> {
        let len = (self.mmap.len() - HEADER_SIZE) as u64;
        if !punch(&self._file, &self.path, HEADER_SIZE as u64, len)? {
            self.mmap[HEADER_SIZE..].fill(0);
        }
        self.summary.clear();
        Ok(())
    }

    fn hash_off(&self, chunk: u64) -> usize {
        self.hash_base + idx(chunk) * HASH_LEN
    }

    /// Writes `header` to the mapping and msyncs it. On failure the previous header is put
    /// back in the mapping and kept in memory, so the operation changes nothing we know of.
    fn commit_header(&mut self, header: Header) -> Result<(), ChangeMapError> {
        header.encode_into(&mut self.mmap[..HEADER_SIZE]);
        if let Err(e) = self.mmap.flush_range(0, HEADER_SIZE) {
            self.header.encode_into(&mut self.mmap[..HEADER_SIZE]);
            return Err(io_err(&self.path)(e));
        }
        self.header = header;
        Ok(())
    }
}

impl fmt::Debug for ChangeMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangeMap")
            .field("path", &self.path)
            .field("geometry", &self.header.geometry)
            .field("lineage", &self.header.lineage)
            .field("acked", &self.header.acked)
            .field("next_epoch", &self.header.next_epoch)
            .field("last_cut", &self.header.last_cut)
            .field("history_from", &self.header.history_from)
            .field("suspect", &self.header.suspect)
            .finish_non_exhaustive()
    }
}

/// Index into the mapping for a chunk number known to be below the chunk count: the entries
/// of all chunks fit the mapping, whose length is a `usize`, so this never truncates.
#[allow(clippy::cast_possible_truncation)]
fn idx(chunk: u64) -> usize {
    chunk as usize
}

fn epoch_off(chunk: u64) -> usize {
    HEADER_SIZE + idx(chunk) * EPOCH_LEN
}

/// Length of the file for `count` chunks, if addressable.
fn file_len(count: u64) -> Option<usize> {
    let count = usize::try_from(count).ok()?;
    count.checked_mul(EPOCH_LEN + HASH_LEN)?.checked_add(HEADER_SIZE).filter(|l| u64::try_from(*l).is_ok())
}

/// Gives `offset..offset + len` of the file its blocks now: a write to a mapped page of a
/// sparse file on a full filesystem kills the process (SIGBUS); here it is an error.
fn allocate(file: &File, path: &Path, offset: u64, len: u64) -> Result<(), ChangeMapError> {
    // SAFETY: a valid open descriptor; the call only allocates blocks for the range.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), offset as libc::off_t, len as libc::off_t) };
    match rc {
        0 => Ok(()),
        // A filesystem without fallocate (tmpfs has it; some network ones do not): the map
        // stays sparse, as before.
        libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        e => Err(io_err(path)(io::Error::from_raw_os_error(e))),
    }
}

/// Punches a hole over `offset..offset + len` (the range reads as zeros and holds no
/// blocks). `false` when the filesystem cannot: the caller writes zeros instead.
fn punch(file: &File, path: &Path, offset: u64, len: u64) -> Result<bool, ChangeMapError> {
    // SAFETY: a valid open descriptor; the call only deallocates blocks of the range, which
    // our shared mapping then reads as zeros.
    let rc = unsafe {
        libc::fallocate(
            file.as_raw_fd(),
            libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
            offset as libc::off_t,
            len as libc::off_t,
        )
    };
    if rc == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => Ok(false),
        _ => Err(io_err(path)(e)),
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> ChangeMapError + '_ {
    move |source| ChangeMapError::Io { path: path.to_path_buf(), source }
}

/// Takes the exclusive `flock` that makes us the map's only owner.
fn lock(file: &File, path: &Path) -> Result<(), ChangeMapError> {
    // SAFETY: `flock` only acts on the descriptor, which `file` keeps open for the whole call;
    // no memory is passed to the kernel.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    let source = if e.kind() == io::ErrorKind::WouldBlock {
        io::Error::new(
            io::ErrorKind::WouldBlock,
            "in use by another process (is another agent running with this state directory?)",
        )
    } else {
        e
    };
    Err(ChangeMapError::Io { path: path.to_path_buf(), source })
}

fn map(file: &File, path: &Path) -> Result<MmapMut, ChangeMapError> {
    // SAFETY: the file is open read-write and held under our exclusive `flock` for as long as
    // the mapping lives, so no cooperating process writes or truncates it meanwhile. The bytes
    // are only ever read as plain integers and hashes (no references into the mapping escape a
    // method, and no value in it is trusted as a length or offset without a check).
    unsafe { MmapMut::map_mut(file) }.map_err(io_err(path))
}

/// Makes the new directory entry durable.
fn sync_parent(path: &Path) -> Result<(), ChangeMapError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(parent).and_then(|d| d.sync_all()).map_err(io_err(path))
}

#[cfg(test)]
mod tests;
