//! Offline recovery (`drpair debug recover`): one disk of a recovery point rebuilt straight
//! from a standby's store, with no daemon running — for when the standby cannot serve.
//!
//! The reading is the online export's ([`crate::standby::export::stream_disk`]): each chunk
//! is the newest version at or before the point's epoch, read back and blake3-verified. Where
//! the export stops at the first bad chunk (a client must never mistake a cut stream for a
//! whole image), recovery goes on: a chunk with no version, missing from the store or failing
//! verification is written as zeros and listed in the report with its offset, so the operator
//! gets every readable byte and knows exactly which are not.
//!
//! Invariants:
//! - Nothing is written before every input is checked: the target is acceptable, the store
//!   opens (a running standby holds its lock: [`RecoverError::InUse`]; a missing store is never
//!   created), the pair, the point and the disk exist.
//! - The store is only read: no pending epoch is discarded, no record rewritten (opening it may
//!   replay rocksdb's log and build missing indexes, as every [`Store::open`] does).
//! - A regular FILE is written as `FILE.partial`, synced, then renamed to FILE; on failure the
//!   partial file is removed. Zero chunks stay holes there. A block device (`--force`) is written
//!   in full, zeros included; it must hold at least the disk and not be in use.
//! - The report's blake3 is of the image's bytes in order, zeros included: blake3 of the file,
//!   or of the device's first `bytes` bytes.

use crate::standby::pair::PairRecord;
use drpair_store::{ChunkVersion, Hash, Store, StoreError};
use drpair_types::{DiskGeometry, Epoch, PairId, PointId, RecoveryPoint};
use serde::Serialize;
use std::ffi::OsString;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bytes gathered before one write (and chunks looked up per index scan: this many bytes' worth).
const WRITE_BUF: usize = 8 << 20;
/// Most threads reading and verifying chunks at once.
const MAX_READERS: usize = 8;
/// Existing point ids named when the one asked for is missing.
const NEAREST: usize = 5;
/// Damaged chunks listed in the report; the count goes on past it.
pub const MAX_LISTED: usize = 100_000;

/// Which point to recover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PointSelector {
    Latest,
    Id(PointId),
}

impl fmt::Display for PointSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PointSelector::Latest => f.write_str("latest"),
            PointSelector::Id(id) => write!(f, "{id}"),
        }
    }
}

/// What to recover, and where to.
#[derive(Debug, Clone)]
pub struct RecoverOptions {
    /// The standby's data dir (the store is in `store/` below it).
    pub data_dir: PathBuf,
    pub pair: PairId,
    pub point: PointSelector,
    pub disk: u32,
    /// A regular file (created) or a block device.
    pub out: PathBuf,
    /// Replace an existing non-empty file; required to write to a block device.
    pub force: bool,
}

/// Why a chunk could not be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageReason {
    /// The version index has no entry for the chunk at or before the point.
    NoVersion,
    /// The chunk's version entry could not be read.
    BadVersion,
    /// The version names a chunk the store does not hold.
    MissingChunk,
    /// The stored chunk fails verification (header, length or blake3).
    Corrupt,
    /// The stored chunk does not decompress.
    Decompress,
    /// rocksdb could not read the stored chunk.
    Unreadable,
}

impl DamageReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DamageReason::NoVersion => "no version",
            DamageReason::BadVersion => "bad version entry",
            DamageReason::MissingChunk => "missing chunk",
            DamageReason::Corrupt => "corrupt",
            DamageReason::Decompress => "does not decompress",
            DamageReason::Unreadable => "unreadable",
        }
    }
}

/// A chunk written as zeros because it could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedChunk {
    pub disk: u32,
    pub chunk: u64,
    /// Byte offset in the image.
    pub offset: u64,
    pub length: u32,
    /// blake3 (hex) of the content the point refers to, when the index names one.
    pub hash: Option<String>,
    pub reason: DamageReason,
    /// The store's message.
    pub detail: String,
}

impl fmt::Display for DamagedChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "disk {} chunk {} at byte {} ({} bytes): {}: {}",
            self.disk,
            self.chunk,
            self.offset,
            self.length,
            self.reason.as_str(),
            self.detail
        )
    }
}

/// What a recovery wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoverReport {
    pub pair_id: PairId,
    pub point: PointId,
    /// Time of the point's cut, RFC 3339 UTC.
    pub point_time: String,
    pub disk: u32,
    pub out: String,
    /// Size of the image (the disk).
    pub bytes: u64,
    pub chunk_size: u32,
    pub chunks: u64,
    /// Chunks the point holds as all zero.
    pub zero_chunks: u64,
    /// Chunks written as zeros because they could not be recovered.
    pub damaged_chunks: u64,
    /// Those chunks, the first [`MAX_LISTED`] of them.
    pub damaged: Vec<DamagedChunk>,
    /// blake3 (hex) of the image written.
    pub blake3: String,
    pub seconds: f64,
}

/// Why a recovery did not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// A process (the standby) holds the store's lock.
    #[error("the store at {dir} is in use (is drpaird running?) — stop the standby first")]
    InUse { dir: String },
    /// The data dir holds no store.
    #[error("no standby store at {dir}: is {data_dir} a standby's data dir? (see --data-dir)")]
    NoStore { dir: String, data_dir: String },
    /// The store failed.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("pair '{pair}' is not in the store at {dir}; {known}")]
    PairNotFound { pair: String, dir: String, known: String },
    #[error("pair '{pair}' has no recovery point {point}; {nearest}")]
    PointNotFound { pair: String, point: String, nearest: String },
    #[error("pair '{pair}' has {count} disk(s), numbered from 0; disk {disk} does not exist")]
    DiskNotFound { pair: String, disk: u32, count: usize },
    /// The output was refused; nothing was written.
    #[error("{0}")]
    Target(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RecoverError {
    let context = context.into();
    move |source| RecoverError::Io { context, source }
}

/// Rebuilds disk `opts.disk` of a recovery point into `opts.out`; `progress(done, total)` is
/// called with the bytes produced so far. Damaged chunks do not stop it: see the report.
pub fn recover(opts: &RecoverOptions, mut progress: impl FnMut(u64, u64)) -> Result<RecoverReport, RecoverError> {
    let started = Instant::now();
    let store_dir = crate::standby::store_dir(&opts.data_dir);
    let target = Target::check(&opts.out, opts.force, &store_dir)?;
    let store = open_store(&opts.data_dir, &store_dir)?;
    let rec = find_pair(&store, &store_dir, &opts.pair)?;
    let point = find_point(&store, &rec, opts.point)?;
    let g = rec.disks.get(opts.disk as usize).map(|d| d.geometry).ok_or_else(|| RecoverError::DiskNotFound {
        pair: rec.pair_id.to_string(),
        disk: opts.disk,
        count: rec.disks.len(),
    })?;
    let out = opts.out.display().to_string();
    let image = target.open(g.size_bytes)?;
    let mut writer = ImageWriter::new(&image.file, target.sparse(), g.chunk_size.bytes() as usize);
    let mut report = RecoverReport {
        pair_id: rec.pair_id.clone(),
        point: point.id,
        point_time: point.time.clone(),
        disk: opts.disk,
        out: out.clone(),
        bytes: g.size_bytes,
        chunk_size: g.chunk_size.bytes(),
        chunks: g.chunk_count(),
        zero_chunks: 0,
        damaged_chunks: 0,
        damaged: Vec::new(),
        blake3: String::new(),
        seconds: 0.0,
    };
    let chunks = DiskChunks { store: &store, pair_no: rec.pair_no, disk: opts.disk, g, epoch: point.epoch };
    let span = (WRITE_BUF / g.chunk_size.bytes() as usize).max(1) as u64;
    let readers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_READERS);
    let mut first = 0;
    while first < report.chunks {
        let count = span.min(report.chunks - first);
        for (c, content) in (first..).zip(chunks.read_span(first, count, readers)?) {
            let length = g.chunk_len(c);
            let len = length as usize;
            let written = match content {
                Content::Zero => {
                    report.zero_chunks += 1;
                    writer.zeros(len)
                }
                Content::Data(d) => writer.data(&d),
                Content::Damaged { hash, reason, detail } => {
                    report.damaged_chunks += 1;
                    if report.damaged.len() < MAX_LISTED {
                        let offset = g.chunk_offset(c);
                        report.damaged.push(DamagedChunk {
                            disk: opts.disk,
                            chunk: c,
                            offset,
                            length,
                            hash,
                            reason,
                            detail,
                        });
                    }
                    writer.zeros(len)
                }
            };
            written.map_err(io_err(format!("writing {out}")))?;
        }
        first += count;
        progress(g.chunk_offset(first).min(g.size_bytes), g.size_bytes);
    }
    report.blake3 = writer.finish().map_err(io_err(format!("writing {out}")))?.to_hex().to_string();
    target.commit(image)?;
    report.seconds = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    tracing::info!(pair = %report.pair_id, point = report.point, disk = report.disk, damaged = report.damaged_chunks, "recovered");
    Ok(report)
}

/// Opens an existing store; a held lock is the standby running.
fn open_store(data_dir: &Path, store_dir: &Path) -> Result<Store, RecoverError> {
    // rocksdb's CURRENT file: present in every store, absent from a directory that is none.
    if !store_dir.join("CURRENT").is_file() {
        return Err(RecoverError::NoStore {
            dir: store_dir.display().to_string(),
            data_dir: data_dir.display().to_string(),
        });
    }
    Store::open(store_dir).map_err(|e| match &e {
        StoreError::Open { source, .. } if source.to_string().to_ascii_lowercase().contains("lock") => {
            RecoverError::InUse { dir: store_dir.display().to_string() }
        }
        _ => e.into(),
    })
}

fn find_pair(store: &Store, store_dir: &Path, pair: &PairId) -> Result<PairRecord, RecoverError> {
    let records: Vec<PairRecord> = store.load_pairs()?;
    let ids: Vec<String> = records.iter().map(|r| r.pair_id.to_string()).collect();
    records.into_iter().find(|r| r.pair_id == *pair).ok_or_else(|| RecoverError::PairNotFound {
        pair: pair.to_string(),
        dir: store_dir.display().to_string(),
        known: if ids.is_empty() { "it holds no pairs".into() } else { format!("it holds: {}", ids.join(", ")) },
    })
}

fn find_point(store: &Store, rec: &PairRecord, sel: PointSelector) -> Result<RecoveryPoint, RecoverError> {
    let found = match sel {
        PointSelector::Latest => store.latest_point(rec.pair_no)?,
        PointSelector::Id(id) => store.get_point(rec.pair_no, id)?,
    };
    if let Some(p) = found {
        return Ok(p);
    }
    let ids: Vec<PointId> = store.list_points(rec.pair_no)?.iter().map(|p| p.id).collect();
    let nearest = match (sel, ids.first(), ids.last()) {
        (_, None, _) | (_, _, None) => "it has no recovery points".to_string(),
        (PointSelector::Latest, Some(_), Some(_)) => format!("it has {} point(s)", ids.len()),
        (PointSelector::Id(id), Some(oldest), Some(newest)) => format!(
            "nearest: {} ({} point(s), {oldest} to {newest})",
            nearest_ids(&ids, id, NEAREST).iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            ids.len()
        ),
    };
    Err(RecoverError::PointNotFound { pair: rec.pair_id.to_string(), point: sel.to_string(), nearest })
}

/// The `n` ids closest to `id`, ascending.
fn nearest_ids(ids: &[PointId], id: PointId, n: usize) -> Vec<PointId> {
    let mut v = ids.to_vec();
    v.sort_by_key(|&x| (x.abs_diff(id), x));
    v.truncate(n);
    v.sort_unstable();
    v
}

/// One chunk of the image, as recovered.
enum Content {
    Zero,
    Data(Vec<u8>),
    Damaged { hash: Option<String>, reason: DamageReason, detail: String },
}

/// The chunks of one disk at one epoch.
struct DiskChunks<'s> {
    store: &'s Store,
    pair_no: u32,
    disk: u32,
    g: DiskGeometry,
    epoch: Epoch,
}

impl DiskChunks<'_> {
    /// Chunks `first..first + count`, read and verified by up to `readers` threads.
    fn read_span(&self, first: u64, count: u64, readers: usize) -> Result<Vec<Content>, RecoverError> {
        let versions = self.versions(first, count)?;
        let mut out: Vec<Content> = Vec::with_capacity(versions.len());
        let mut wanted: Vec<(usize, Hash)> = Vec::new();
        for (i, v) in versions.into_iter().enumerate() {
            let c = first + i as u64;
            out.push(match v {
                Ok(Some(ChunkVersion::Zero)) => Content::Zero,
                Ok(Some(ChunkVersion::Data(h))) => {
                    wanted.push((i, h));
                    Content::Zero // replaced below
                }
                Ok(None) => Content::Damaged {
                    hash: None,
                    reason: DamageReason::NoVersion,
                    detail: format!("no version at or before epoch {}", self.epoch),
                },
                Err(e) => {
                    Content::Damaged { hash: None, reason: DamageReason::BadVersion, detail: format!("chunk {c}: {e}") }
                }
            });
        }
        let read_part = |part: &[(usize, Hash)]| -> Vec<Content> {
            part.iter().map(|(i, h)| self.read_chunk(first + *i as u64, h)).collect()
        };
        let per = wanted.len().div_ceil(readers.max(1)).max(1);
        let read: Vec<Content> = if wanted.len() <= per {
            read_part(&wanted)
        } else {
            std::thread::scope(|s| {
                let parts: Vec<_> = wanted.chunks(per).map(|part| s.spawn(move || read_part(part))).collect();
                parts.into_iter().flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        };
        for ((i, _), content) in wanted.iter().zip(read) {
            out[*i] = content;
        }
        Ok(out)
    }

    /// The version of each chunk of the span. A span whose index scan fails is looked up chunk
    /// by chunk, so that one bad entry costs only its own chunk.
    fn versions(&self, first: u64, count: u64) -> Result<Vec<Result<Option<ChunkVersion>, String>>, RecoverError> {
        let (store, pair_no, disk, epoch) = (self.store, self.pair_no, self.disk, self.epoch);
        match store.versions_at(pair_no, disk, epoch, first, count) {
            Ok(v) => Ok(v.into_iter().map(Ok).collect()),
            Err(e) if e.is_retryable() => Err(e.into()),
            Err(_) => Ok((first..first + count)
                .map(|c| {
                    store.version_at(pair_no, disk, c, epoch).map(|v| v.map(|(_, v)| v)).map_err(|e| e.to_string())
                })
                .collect()),
        }
    }

    fn read_chunk(&self, c: u64, h: &Hash) -> Content {
        let damaged = |reason, detail| Content::Damaged { hash: Some(drpair_store::hash_hex(h)), reason, detail };
        let len = self.g.chunk_len(c) as usize;
        match self.store.read_chunk(h) {
            Ok(d) if d.len() == len => Content::Data(d),
            Ok(d) => damaged(
                DamageReason::Corrupt,
                format!("chunk {}: holds {} bytes, the disk's chunk {c} has {len}", drpair_store::hash_hex(h), d.len()),
            ),
            Err(e) => {
                let reason = match e {
                    StoreError::MissingChunk { .. } => DamageReason::MissingChunk,
                    StoreError::Corrupt { .. } => DamageReason::Corrupt,
                    StoreError::Decompress { .. } => DamageReason::Decompress,
                    _ => DamageReason::Unreadable,
                };
                damaged(reason, e.to_string())
            }
        }
    }
}

/// Writes the image in large sequential writes, hashing every byte; zero runs become holes
/// when `sparse` (a fresh file of the image's length, so holes read as zeros).
struct ImageWriter<'f> {
    file: &'f File,
    sparse: bool,
    buf: Vec<u8>,
    /// Image offset of `buf[0]`; `buf_at + buf.len()` is the image produced so far.
    buf_at: u64,
    hasher: blake3::Hasher,
    zero_chunk: Vec<u8>,
}

impl<'f> ImageWriter<'f> {
    fn new(file: &'f File, sparse: bool, chunk_size: usize) -> Self {
        let cap = WRITE_BUF + chunk_size;
        Self {
            file,
            sparse,
            buf: Vec::with_capacity(cap),
            buf_at: 0,
            hasher: blake3::Hasher::new(),
            zero_chunk: vec![0; chunk_size],
        }
    }

    fn data(&mut self, d: &[u8]) -> io::Result<()> {
        self.hasher.update(d);
        self.buf.extend_from_slice(d);
        self.flush_if_full()
    }

    /// `len` zero bytes (at most one chunk).
    fn zeros(&mut self, len: usize) -> io::Result<()> {
        self.hasher.update(&self.zero_chunk[..len]);
        if self.sparse {
            self.flush()?;
            self.buf_at += len as u64;
            return Ok(());
        }
        self.buf.resize(self.buf.len() + len, 0);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= WRITE_BUF { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.buf_at)?;
            self.buf_at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is left, syncs, and returns the image's blake3.
    fn finish(mut self) -> io::Result<blake3::Hash> {
        self.flush()?;
        self.file.sync_all()?;
        Ok(self.hasher.finalize())
    }
}

/// Where the image goes.
#[derive(Debug, PartialEq, Eq)]
enum Target {
    File { path: PathBuf, partial: PathBuf },
    Device { path: PathBuf },
}

/// An opened target; dropped without [`Target::commit`], `FILE.partial` is removed.
struct OpenImage {
    file: File,
    partial: Option<PathBuf>,
}

impl Drop for OpenImage {
    fn drop(&mut self) {
        if let Some(p) = self.partial.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl Target {
    /// Checks `out` before the store is even opened.
    fn check(out: &Path, force: bool, store_dir: &Path) -> Result<Self, RecoverError> {
        let shown = out.display();
        refuse_inside(out, store_dir)?;
        let refuse = |msg: String| Err(RecoverError::Target(msg));
        match fs::metadata(out) {
            Ok(m) if m.file_type().is_block_device() && !force => {
                refuse(format!("{shown} is a block device: pass --force to overwrite it with the image"))
            }
            Ok(m) if m.file_type().is_block_device() => Ok(Self::Device { path: out.to_path_buf() }),
            Ok(m) if m.is_file() && m.len() > 0 && !force => {
                refuse(format!("refusing to overwrite {shown} ({} bytes): pass --force to replace it", m.len()))
            }
            Ok(m) if !m.is_file() => refuse(format!("{shown} is neither a regular file nor a block device")),
            Ok(_) => Ok(Self::file(out)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::file(out)),
            Err(e) => Err(io_err(format!("cannot check {shown}"))(e)),
        }
    }

    fn file(out: &Path) -> Self {
        let mut partial = OsString::from(out.as_os_str());
        partial.push(".partial");
        Self::File { path: out.to_path_buf(), partial: PathBuf::from(partial) }
    }

    fn sparse(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    /// Opens the target for an image of `size` bytes: a file of that length, or a device that
    /// holds at least that much and that nobody else has open exclusively (mounted, …).
    fn open(&self, size: u64) -> Result<OpenImage, RecoverError> {
        match self {
            Self::File { partial, .. } => {
                let opened = OpenOptions::new().write(true).create(true).truncate(true).open(partial);
                let file = opened.map_err(io_err(format!("cannot create {}", partial.display())))?;
                let image = OpenImage { file, partial: Some(partial.clone()) };
                image.file.set_len(size).map_err(io_err(format!("cannot size {}", partial.display())))?;
                Ok(image)
            }
            Self::Device { path } => {
                let shown = path.display();
                // O_EXCL without O_CREAT on a block device: EBUSY while mounted or held.
                let opened = OpenOptions::new().write(true).custom_flags(libc::O_EXCL).open(path);
                let mut file = opened.map_err(|e| match e.kind() {
                    io::ErrorKind::ResourceBusy => {
                        RecoverError::Target(format!("block device {shown} is in use (mounted?): not writing to it"))
                    }
                    _ => io_err(format!("cannot open {shown}"))(e),
                })?;
                let have = file.seek(SeekFrom::End(0)).map_err(io_err(format!("cannot size {shown}")))?;
                if have < size {
                    return Err(RecoverError::Target(format!(
                        "block device {shown} holds {have} bytes but the disk is {size}: not writing to it"
                    )));
                }
                Ok(OpenImage { file, partial: None })
            }
        }
    }

    /// After the image is complete and synced: renames `FILE.partial` to FILE, durably.
    fn commit(&self, mut image: OpenImage) -> Result<(), RecoverError> {
        if let Self::File { path, partial } = self {
            fs::rename(partial, path).map_err(io_err(format!(
                "cannot rename {} to {}",
                partial.display(),
                path.display()
            )))?;
            image.partial = None;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(format!("cannot sync {}", dir.display())))?;
        }
        Ok(())
    }
}

/// Refuses an `out` inside the store's directory (where a write could damage the store).
fn refuse_inside(out: &Path, store_dir: &Path) -> Result<(), RecoverError> {
    let Ok(store) = fs::canonicalize(store_dir) else {
        return Ok(()); // no store there: open_store says so
    };
    let resolved = match fs::canonicalize(out) {
        Ok(p) => p,
        Err(_) => {
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let dir =
                fs::canonicalize(parent).map_err(io_err(format!("cannot find the directory of {}", out.display())))?;
            match out.file_name() {
                Some(name) => dir.join(name),
                None => return Err(RecoverError::Target(format!("{} names no file", out.display()))),
            }
        }
    };
    if resolved.starts_with(&store) {
        return Err(RecoverError::Target(format!(
            "refusing to write {} inside the store's own directory {}",
            out.display(),
            store_dir.display()
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // small test sizes
mod tests {
    use super::*;
    use crate::standby::pair::DiskRecord;
    use drpair_pair::Lifecycle;
    use drpair_store::{StoredChunk, hash_hex};
    use drpair_types::{ChunkSize, PointSizes};

    const CHUNK: usize = 4096;
    /// Disk 0: ten chunks, the last one short.
    const SIZE0: u64 = 9 * CHUNK as u64 + 1000;
    /// Disk 1: three chunks.
    const SIZE1: u64 = 3 * CHUNK as u64;
    const PAIR: &str = "web-01";

    /// Non-zero bytes that differ per `seed`.
    fn content(seed: u64, len: usize) -> Vec<u8> {
        (0..len as u64).map(|i| ((i * 31 + seed * 7) % 251 + 1) as u8).collect()
    }

    fn point(pair: &str, epoch: u64) -> RecoveryPoint {
        // From JSON, so that fields added later with a default need no change here.
        serde_json::from_value(serde_json::json!({
            "id": epoch, "pair_id": pair, "epoch": epoch, "lineage": uuid::Uuid::nil(),
            "time": format!("2026-01-01T00:00:{epoch:02}Z"), "time_unix_ms": 1_767_225_600_000u64 + epoch * 1000,
            "committed_unix_ms": 1_767_225_600_000u64 + epoch * 1000, "kind": "manual", "consistency": "fuzzy",
            "pinned": false, "verified_at": null, "tested_at": null, "sizes": PointSizes::default(),
        }))
        .expect("point")
    }

    /// Stores `data` (zstd when `compress`) and returns its hash.
    fn put(store: &Store, data: &[u8], compress: bool) -> Hash {
        let hash = *blake3::hash(data).as_bytes();
        let z = zstd::bulk::compress(data, 1).expect("zstd");
        let raw_len = data.len() as u32;
        let chunk = if compress {
            StoredChunk { compressed: true, raw_len, payload: &z }
        } else {
            StoredChunk { compressed: false, raw_len, payload: data }
        };
        store.put_chunk(&hash, chunk).expect("put_chunk");
        hash
    }

    /// A disk's image as the test builds it, and the version entries that say so.
    struct Disk {
        g: DiskGeometry,
        image: Vec<u8>,
    }

    impl Disk {
        fn new(size: u64) -> Self {
            let g = DiskGeometry::new(size, ChunkSize::new(CHUNK as u64).unwrap()).unwrap();
            Self { g, image: vec![0; size as usize] }
        }

        /// Sets chunk `c` to `data` (None: zeros) in the image and the store.
        fn set(&mut self, store: &Store, c: u64, data: Option<Vec<u8>>) -> (u64, ChunkVersion) {
            let (off, len) = (self.g.chunk_offset(c) as usize, self.g.chunk_len(c) as usize);
            match data {
                None => {
                    self.image[off..off + len].fill(0);
                    (c, ChunkVersion::Zero)
                }
                Some(d) => {
                    self.image[off..off + len].copy_from_slice(&d[..len]);
                    (c, ChunkVersion::Data(put(store, &d[..len], c.is_multiple_of(2))))
                }
            }
        }
    }

    /// A data dir whose store holds pair web-01 (two disks; points 5 and 9) and pair db-02
    /// (no points), with the images each point must give.
    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        rec: PairRecord,
        /// (point, [disk 0, disk 1]).
        images: Vec<(PointId, [Vec<u8>; 2])>,
    }

    impl Fixture {
        fn new() -> Self {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(&crate::standby::store_dir(dir.path())).unwrap();
            let (mut d0, mut d1) = (Disk::new(SIZE0), Disk::new(SIZE1));
            let disks = [&d0, &d1].map(|d| DiskRecord { path: "/dev/x".into(), geometry: d.g }).to_vec();
            let pair_no = store.allocate_pair_no().unwrap();
            let new_pair = |id: &str, no, disks| {
                let id = PairId::new(id).unwrap();
                PairRecord::register(id, no, disks, "h".into(), "a".into(), "scan".into(), Lifecycle::new())
            };
            let mut rec = new_pair(PAIR, pair_no, disks.clone());
            store.put_pair(&rec.pair_id, &rec).unwrap();
            let other = new_pair("db-02", store.allocate_pair_no().unwrap(), disks);
            store.put_pair(&other.pair_id, &other).unwrap();

            let mut fx = Self { dir, store, rec: rec.clone(), images: vec![] };
            // Point 5: every third chunk of disk 0 zero, the rest data; disk 1 all data.
            let mut items: Vec<(u32, u64, ChunkVersion)> = vec![];
            for c in 0..d0.g.chunk_count() {
                let (c, v) = d0.set(&fx.store, c, (c % 3 != 1).then(|| content(c, CHUNK)));
                items.push((0, c, v));
            }
            for c in 0..d1.g.chunk_count() {
                let (c, v) = d1.set(&fx.store, c, Some(content(50 + c, CHUNK)));
                items.push((1, c, v));
            }
            fx.commit(&mut rec, 5, &items, [&d0, &d1]);
            // Point 9: chunk 0 rewritten, chunk 5 zeroed, the short last chunk rewritten.
            let items: Vec<_> = [(0, Some(content(100, CHUNK))), (5, None), (9, Some(content(101, CHUNK)))]
                .into_iter()
                .map(|(c, d)| d0.set(&fx.store, c, d))
                .map(|(c, v)| (0, c, v))
                .collect();
            fx.commit(&mut rec, 9, &items, [&d0, &d1]);
            fx
        }

        fn commit(&mut self, rec: &mut PairRecord, epoch: u64, items: &[(u32, u64, ChunkVersion)], disks: [&Disk; 2]) {
            self.store.write_versions(rec.pair_no, epoch, items).unwrap();
            rec.committed = epoch;
            self.store.commit_point(rec.pair_no, &point(PAIR, epoch), &rec.pair_id, rec).unwrap();
            self.images.push((epoch, disks.map(|d| d.image.clone())));
            self.rec = rec.clone();
        }

        fn opts(&self, point: PointSelector, disk: u32, out: &str) -> RecoverOptions {
            RecoverOptions {
                data_dir: self.dir.path().to_path_buf(),
                pair: PairId::new(PAIR).unwrap(),
                point,
                disk,
                out: self.dir.path().join(out),
                force: false,
            }
        }

        /// Closes the store (as a stopped standby leaves it).
        fn close(self) -> Closed {
            Closed { dir: self.dir, rec: self.rec, images: self.images }
        }
    }

    struct Closed {
        dir: tempfile::TempDir,
        rec: PairRecord,
        images: Vec<(PointId, [Vec<u8>; 2])>,
    }

    impl Closed {
        fn opts(&self, point: PointSelector, disk: u32, out: &str) -> RecoverOptions {
            RecoverOptions {
                data_dir: self.dir.path().to_path_buf(),
                pair: self.rec.pair_id.clone(),
                point,
                disk,
                out: self.dir.path().join(out),
                force: false,
            }
        }

        fn reopen(&self) -> Store {
            Store::open(&crate::standby::store_dir(self.dir.path())).unwrap()
        }
    }

    #[test]
    fn every_point_and_disk_is_recovered_exactly() {
        let fx = Fixture::new().close();
        let cases = [(PointSelector::Id(5), 5), (PointSelector::Id(9), 9), (PointSelector::Latest, 9)];
        for (sel, id) in cases {
            let want = &fx.images.iter().find(|(p, _)| *p == id).unwrap().1;
            for disk in [0u32, 1] {
                let name = format!("p{sel}-d{disk}.img");
                let mut seen = vec![];
                let r = recover(&fx.opts(sel, disk, &name), |done, total| seen.push((done, total))).unwrap();
                let image = fs::read(fx.dir.path().join(&name)).unwrap();
                assert!(image == want[disk as usize], "point {sel} disk {disk} differs");
                assert!(!fx.dir.path().join(format!("{name}.partial")).exists());
                let size = want[disk as usize].len() as u64;
                assert_eq!((r.point, r.disk, r.bytes, r.chunk_size), (id, disk, size, CHUNK as u32));
                assert_eq!(r.point_time, format!("2026-01-01T00:00:{id:02}Z"));
                assert_eq!(r.blake3, blake3::hash(&image).to_hex().to_string());
                assert_eq!((r.damaged_chunks, r.damaged.len()), (0, 0));
                let zero = match (disk, id) {
                    (0, 5) => 3,
                    (0, _) => 4,
                    _ => 0,
                };
                assert_eq!((r.chunks, r.zero_chunks), (size.div_ceil(CHUNK as u64), zero), "{sel} disk {disk}");
                assert_eq!(seen.last(), Some(&(size, size)));
                assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
            }
        }
        // The report serialises as documented.
        let r = recover(&fx.opts(PointSelector::Id(5), 0, "json.img"), |_, _| {}).unwrap();
        let j = serde_json::to_value(&r).unwrap();
        for key in ["pair_id", "point", "point_time", "disk", "bytes", "chunks", "zero_chunks", "damaged", "blake3"] {
            assert!(!j[key].is_null(), "{key} in {j}");
        }
    }

    #[test]
    fn zero_chunks_are_holes_in_a_file() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&crate::standby::store_dir(dir.path())).unwrap();
        // 64 chunks of 64 KiB, only the first holds data.
        let g = DiskGeometry::new(4 << 20, ChunkSize::DEFAULT).unwrap();
        let id = PairId::new(PAIR).unwrap();
        let disks = vec![DiskRecord { path: "/dev/x".into(), geometry: g }];
        let mut rec = PairRecord::register(id.clone(), 1, disks, "h".into(), "a".into(), "s".into(), Lifecycle::new());
        let data = content(1, 65536);
        let mut items = vec![(0, 0, ChunkVersion::Data(put(&store, &data, true)))];
        items.extend((1..64).map(|c| (0, c, ChunkVersion::Zero)));
        store.write_versions(1, 3, &items).unwrap();
        rec.committed = 3;
        store.commit_point(1, &point(PAIR, 3), &id, &rec).unwrap();
        drop(store);
        let opts = RecoverOptions {
            data_dir: dir.path().into(),
            pair: id,
            point: PointSelector::Latest,
            disk: 0,
            out: dir.path().join("sparse.img"),
            force: false,
        };
        let r = recover(&opts, |_, _| {}).unwrap();
        assert_eq!(r.zero_chunks, 63);
        let m = fs::metadata(&opts.out).unwrap();
        assert_eq!(m.len(), 4 << 20);
        assert!(m.blocks() * 512 < 1 << 20, "{} sectors allocated: zero chunks were written", m.blocks());
        let mut want = data;
        want.resize(4 << 20, 0);
        assert!(fs::read(&opts.out).unwrap() == want);
    }

    #[test]
    fn damaged_chunks_are_reported_and_written_as_zeros() {
        let fx = Fixture::new();
        let mut rec = fx.rec.clone();
        // Point 12: chunk 2 refers to a chunk stored with bytes that do not match its hash,
        // chunk 6 to a chunk no longer stored (a damaged copy, deleted by verification after
        // the point was committed: versions may only name stored chunks).
        let good = content(200, CHUNK);
        let corrupt_hash = *blake3::hash(&good).as_bytes();
        let mut bad = good.clone();
        bad[100] ^= 1;
        fx.store
            .put_chunk(&corrupt_hash, StoredChunk { compressed: false, raw_len: CHUNK as u32, payload: &bad })
            .unwrap();
        let missing_hash = *blake3::hash(&content(201, CHUNK)).as_bytes();
        fx.store.put_chunk(&missing_hash, StoredChunk { compressed: false, raw_len: 1, payload: b"x" }).unwrap();
        let items = [(0, 2, ChunkVersion::Data(corrupt_hash)), (0, 6, ChunkVersion::Data(missing_hash))];
        fx.store.write_versions(rec.pair_no, 12, &items).unwrap();
        rec.committed = 12;
        fx.store.commit_point(rec.pair_no, &point(PAIR, 12), &rec.pair_id, &rec).unwrap();
        assert_eq!(fx.store.has_verified_chunks(&[missing_hash]).unwrap(), [false]);
        assert_eq!(fx.store.has_chunks(&[missing_hash, corrupt_hash]).unwrap(), [false, true]);
        let mut want = fx.images.iter().find(|(p, _)| *p == 9).unwrap().1[0].clone();
        want[2 * CHUNK..3 * CHUNK].fill(0);
        want[6 * CHUNK..7 * CHUNK].fill(0);
        // A pair whose point has no version for chunk 2 of its disk.
        let g = DiskGeometry::new(4 * CHUNK as u64, ChunkSize::new(CHUNK as u64).unwrap()).unwrap();
        let gappy_id = PairId::new("gappy").unwrap();
        let disks = vec![DiskRecord { path: "/dev/y".into(), geometry: g }];
        let mut gappy =
            PairRecord::register(gappy_id.clone(), 7, disks, "h".into(), "a".into(), "s".into(), Lifecycle::new());
        let items: Vec<_> =
            [0, 1, 3].map(|c| (0, c, ChunkVersion::Data(put(&fx.store, &content(c, CHUNK), false)))).into();
        fx.store.write_versions(7, 4, &items).unwrap();
        gappy.committed = 4;
        fx.store.commit_point(7, &point("gappy", 4), &gappy_id, &gappy).unwrap();
        fx.store.flush().unwrap();
        let fx = fx.close();

        let r = recover(&fx.opts(PointSelector::Latest, 0, "damaged.img"), |_, _| {}).unwrap();
        let image = fs::read(fx.dir.path().join("damaged.img")).unwrap();
        assert!(image == want, "everything but the damaged chunks is exact, those are zeros");
        assert_eq!((r.point, r.chunks, r.damaged_chunks), (12, 10, 2));
        assert_eq!(r.blake3, blake3::hash(&image).to_hex().to_string());
        let [corrupt, missing] = &r.damaged[..] else { panic!("{:?}", r.damaged) };
        assert_eq!((corrupt.disk, corrupt.chunk, corrupt.offset, corrupt.length), (0, 2, 2 * CHUNK as u64, 4096));
        assert_eq!((corrupt.reason, corrupt.hash.as_deref()), (DamageReason::Corrupt, Some(&*hash_hex(&corrupt_hash))));
        assert!(corrupt.detail.contains("hash mismatch"), "{}", corrupt.detail);
        assert_eq!((missing.chunk, missing.offset, missing.reason), (6, 6 * CHUNK as u64, DamageReason::MissingChunk));
        assert_eq!(missing.hash.as_deref(), Some(&*hash_hex(&missing_hash)));
        let shown = corrupt.to_string();
        assert!(shown.starts_with("disk 0 chunk 2 at byte 8192 (4096 bytes): corrupt: chunk "), "{shown}");
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["damaged"][1]["reason"], "missing_chunk");

        // The older point does not see them.
        let r = recover(&fx.opts(PointSelector::Id(9), 0, "p9.img"), |_, _| {}).unwrap();
        assert_eq!(r.damaged_chunks, 0);

        let mut opts = fx.opts(PointSelector::Latest, 0, "gappy.img");
        opts.pair = gappy_id;
        let r = recover(&opts, |_, _| {}).unwrap();
        let [gap] = &r.damaged[..] else { panic!("{:?}", r.damaged) };
        assert_eq!(
            (gap.chunk, gap.offset, gap.reason, gap.hash.as_ref()),
            (2, 2 * CHUNK as u64, DamageReason::NoVersion, None)
        );
        let image = fs::read(&opts.out).unwrap();
        assert!(image[2 * CHUNK..3 * CHUNK].iter().all(|&b| b == 0));
        assert_eq!(&image[3 * CHUNK..], &content(3, CHUNK)[..]);
    }

    /// Runs a recovery that must fail; asserts that it wrote nothing at `opts.out`.
    fn refused(opts: &RecoverOptions) -> String {
        let before = fs::read(&opts.out).ok();
        let e = recover(opts, |_, _| panic!("progress of a refused recovery")).unwrap_err();
        assert_eq!(fs::read(&opts.out).ok(), before, "{e}");
        let mut partial = opts.out.clone().into_os_string();
        partial.push(".partial");
        assert!(!Path::new(&partial).exists(), "{e}");
        e.to_string()
    }

    #[test]
    fn bad_input_is_refused_and_writes_nothing() {
        let fx = Fixture::new().close();
        let store_dir = crate::standby::store_dir(fx.dir.path());

        let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
        o.pair = PairId::new("nope").unwrap();
        let e = refused(&o);
        assert!(e.starts_with("pair 'nope' is not in the store at ") && e.ends_with("it holds: db-02, web-01"), "{e}");

        let e = refused(&fx.opts(PointSelector::Id(7), 0, "x.img"));
        assert_eq!(e, "pair 'web-01' has no recovery point 7; nearest: 5, 9 (2 point(s), 5 to 9)");
        let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
        o.pair = PairId::new("db-02").unwrap();
        assert_eq!(refused(&o), "pair 'db-02' has no recovery point latest; it has no recovery points");

        let e = refused(&fx.opts(PointSelector::Latest, 2, "x.img"));
        assert_eq!(e, "pair 'web-01' has 2 disk(s), numbered from 0; disk 2 does not exist");

        // An existing file needs --force; an empty one may be replaced.
        let mut o = fx.opts(PointSelector::Latest, 1, "old.img");
        fs::write(&o.out, b"precious").unwrap();
        let e = refused(&o);
        assert!(e.starts_with("refusing to overwrite") && e.contains("--force"), "{e}");
        o.force = true;
        recover(&o, |_, _| {}).unwrap();
        assert_eq!(fs::read(&o.out).unwrap(), fx.images[1].1[1]);
        let o = fx.opts(PointSelector::Latest, 1, "empty.img");
        fs::write(&o.out, b"").unwrap();
        recover(&o, |_, _| {}).unwrap();

        // Never into the store's own directory, nor anything but a file or a block device.
        let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
        o.out = store_dir.join("image.img");
        let e = refused(&o);
        assert!(e.contains("inside the store's own directory"), "{e}");
        let files_before = fs::read_dir(&store_dir).unwrap().count();
        o.out = store_dir.join("CURRENT");
        o.force = true;
        refused(&o);
        assert_eq!(fs::read_dir(&store_dir).unwrap().count(), files_before);
        o.out = fx.dir.path().to_path_buf();
        assert!(refused(&o).contains("neither a regular file nor a block device"));
        o.out = fx.dir.path().join("no/such/dir/x.img");
        assert!(refused(&o).starts_with("cannot find the directory of "));

        // A data dir without a store is not made one.
        let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
        o.data_dir = fx.dir.path().join("elsewhere");
        let e = refused(&o);
        assert!(e.starts_with("no standby store at ") && e.contains("--data-dir"), "{e}");
        assert!(!o.data_dir.exists());
        fx.reopen();
    }

    #[test]
    fn a_store_held_by_a_standby_is_in_use() {
        let fx = Fixture::new();
        let e = refused(&fx.opts(PointSelector::Latest, 0, "x.img"));
        let dir = crate::standby::store_dir(fx.dir.path());
        assert_eq!(
            e,
            format!("the store at {} is in use (is drpaird running?) — stop the standby first", dir.display())
        );
    }

    #[test]
    fn nearest_point_ids() {
        let ids = [3, 10, 11, 12, 40, 41];
        assert_eq!(nearest_ids(&ids, 13, 3), [10, 11, 12]);
        assert_eq!(nearest_ids(&ids, 0, 2), [3, 10]);
        assert_eq!(nearest_ids(&ids, 100, 3), [12, 40, 41]);
        assert_eq!(nearest_ids(&[], 5, 3), Vec::<u64>::new());
    }
}
