//! Seeding a pair from a third-party dump: loads a disk image (raw, or qcow2 through
//! `qemu-img`) taken by another tool into the store as the pair's base at a dump epoch *D*.
//!
//! ```text
//! probe ─▶ (qcow2: qemu-img convert to a raw scratch file) ─▶ workers (≤ 4): pread a block,
//!          is_zero / hash_chunk, compare with the base point, zstd, put_chunk_bulk
//!        ─▶ collector: write_dump_versions every 256 MiB of image ─▶ Store::flush
//! ```
//!
//! Chunks are hashed exactly as the agent hashes them, so a dump equal to the live disk
//! deduplicates against what the agent ships later. Entries are written at exactly *D* and are
//! not listed as pending (see `drpair_store`'s `dump.rs`): the caller commits the point at *D*
//! only once [`load`] succeeded. A load that failed or was cancelled leaves the entries of the
//! blocks it finished at *D*; loading again replaces them (every chunk gets an entry, or its
//! entry at *D* is deleted when it equals the base), and
//! [`Store::discard_dump_versions`] removes them.

use drpair_ship::{hash_chunk, is_zero};
use drpair_store::{ChunkVersion, Store, StoreError, StoredChunk};
use drpair_types::DiskGeometry;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// First bytes of every qcow2 image.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// Bytes read per block (rounded down to whole chunks; at least one chunk).
const BLOCK_BYTES: u64 = 4 << 20;
/// Most worker threads.
const MAX_THREADS: usize = 4;
/// Blocks whose entries are written together (256 MiB of image): each write first flushes
/// the chunks written without the WAL, so they are kept few.
const WRITE_EVERY_BLOCKS: usize = 64;
/// zstd level of stored chunks.
const ZSTD_LEVEL: i32 = 3;
/// The qemu-img binary (looked up in `PATH`).
const QEMU_IMG: &str = "qemu-img";
/// How often a running `qemu-img convert` is checked for completion and cancellation.
const CONVERT_POLL: Duration = Duration::from_millis(100);

/// Image formats the loader reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// The disk's bytes, as is (a file or a block device).
    Raw,
    /// A QEMU copy-on-write image, converted to raw with `qemu-img` before loading.
    Qcow2,
}

impl ImageFormat {
    /// The format's name as operators write it: `raw` or `qcow2`.
    pub fn as_str(self) -> &'static str {
        match self {
            ImageFormat::Raw => "raw",
            ImageFormat::Qcow2 => "qcow2",
        }
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ImageFormat {
    type Err = String;

    /// Parses `raw` or `qcow2` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "raw" => Ok(ImageFormat::Raw),
            "qcow2" => Ok(ImageFormat::Qcow2),
            _ => Err(format!("unknown image format '{s}': expected raw or qcow2")),
        }
    }
}

/// What `probe` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageInfo {
    /// The image's format (as detected from its content).
    pub format: ImageFormat,
    /// Size in bytes of the disk the image holds (equal to the disk's size once probed).
    pub virtual_size: u64,
}

/// Why probing or loading an image failed. Every message names the image.
#[derive(Debug, thiserror::Error)]
pub enum DumpLoadError {
    /// The image path is relative (the daemon's working directory is not the operator's).
    #[error("image path {} is relative: give an absolute path", .path.display())]
    RelativePath {
        /// The path as given.
        path: PathBuf,
    },
    /// Nothing exists at the path.
    #[error("image {} does not exist", .path.display())]
    NotFound {
        /// The image path.
        path: PathBuf,
    },
    /// The path names a directory, FIFO, socket or character device.
    #[error("image {} is a {kind}, not a regular file or block device", .path.display())]
    NotAFile {
        /// The image path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The image (or the file converted from it) cannot be examined or opened for reading.
    #[error("cannot open image {}: {source}", .path.display())]
    Access {
        /// The path that could not be opened.
        path: PathBuf,
        /// The system's reason (permission denied, I/O error, ...).
        source: io::Error,
    },
    /// The format given by the operator contradicts the image's content.
    #[error("image {} was given as {given}, but its content is {detected}", .path.display())]
    FormatMismatch {
        /// The image path.
        path: PathBuf,
        /// The format the operator gave.
        given: ImageFormat,
        /// The format found in the content (qcow2 magic or not).
        detected: ImageFormat,
    },
    /// The image does not hold exactly as many bytes as the pair's disk.
    #[error(
        "image {} holds {image_size} bytes ({format}), but disk {disk} of the pair has {disk_size} bytes: \
         the image must be exactly the size of the disk",
        .path.display()
    )]
    SizeMismatch {
        /// The image path.
        path: PathBuf,
        /// The image's format.
        format: ImageFormat,
        /// The disk of the pair the image was meant for.
        disk: u32,
        /// Size of the image (virtual size for qcow2).
        image_size: u64,
        /// Size of the pair's disk.
        disk_size: u64,
    },
    /// `qemu-img` (needed for qcow2) is not installed.
    #[error("qemu-img not found: install qemu-utils to load qcow2 images (image {})", .path.display())]
    QemuImgMissing {
        /// The qcow2 image.
        path: PathBuf,
    },
    /// `qemu-img` failed or gave output that could not be understood.
    #[error("qemu-img {step} of image {} failed: {detail}", .path.display())]
    QemuImg {
        /// `info` or `convert`.
        step: &'static str,
        /// The qcow2 image.
        path: PathBuf,
        /// Exit status and qemu-img's own message, or why its output was refused.
        detail: String,
    },
    /// The scratch directory or the raw file converted into it could not be created.
    #[error("cannot convert image {} in scratch directory {}: {source}", .path.display(), .dir.display())]
    Scratch {
        /// The qcow2 image.
        path: PathBuf,
        /// The scratch directory.
        dir: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Reading the image failed.
    #[error("read image {} at byte {offset}: {source}", .path.display())]
    Read {
        /// The file read (for qcow2, the raw file converted from it).
        path: PathBuf,
        /// Byte offset of the failed read.
        offset: u64,
        /// The system's reason.
        source: io::Error,
    },
    /// The image ended before the disk's size while loading (it changed after probing).
    #[error("image {} ends before byte {end} of {size}: was it changed while loading?", .path.display())]
    Truncated {
        /// The file read (for qcow2, the raw file converted from it).
        path: PathBuf,
        /// End of the read that hit the end of the file.
        end: u64,
        /// The size the image had when probed.
        size: u64,
    },
    /// The dump epoch is not newer than the base epoch given with it.
    #[error("dump epoch {epoch} for image {} must be newer than the base epoch {base}", .path.display())]
    EpochBeforeBase {
        /// The image path.
        path: PathBuf,
        /// The dump epoch D.
        epoch: u64,
        /// The base epoch.
        base: u64,
    },
    /// The pair already has a point at or after the dump epoch: the load would change it.
    #[error(
        "cannot load image {} at dump epoch {epoch}: pair #{pair_no} already has a recovery point at epoch \
         {committed}, and committed points never change",
        .path.display()
    )]
    EpochNotOpen {
        /// The image path.
        path: PathBuf,
        /// The pair's number in the store.
        pair_no: u32,
        /// The dump epoch D.
        epoch: u64,
        /// The pair's newest committed epoch.
        committed: u64,
    },
    /// zstd could not set up a compression context or compress a chunk.
    #[error("compressing chunk {chunk} of image {} failed: {source}", .path.display())]
    Compress {
        /// The image path.
        path: PathBuf,
        /// The chunk (`u64::MAX`: setting up the compressor).
        chunk: u64,
        /// zstd's reason.
        source: io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start a thread to load image {}: {source}", .path.display())]
    Thread {
        /// The image path.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The store refused or failed a read or write.
    #[error("loading image {}: store: {source}", .path.display())]
    Store {
        /// The image path.
        path: PathBuf,
        /// The store's error.
        source: StoreError,
    },
    /// The load was cancelled through [`LoadProgress::cancel`].
    #[error("loading image {} was cancelled", .path.display())]
    Cancelled {
        /// The image path.
        path: PathBuf,
    },
}

impl DumpLoadError {
    /// A store error, with the epoch refusal turned into its own message.
    fn store(path: &Path, source: StoreError) -> Self {
        match source {
            StoreError::EpochNotOpen { pair_no, epoch, committed } => {
                DumpLoadError::EpochNotOpen { path: path.into(), pair_no, epoch, committed }
            }
            source => DumpLoadError::Store { path: path.into(), source },
        }
    }
}

/// Live progress of a load (read by status while it runs); `cancel` stops it between blocks.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Bytes of the image processed so far.
    pub done: AtomicU64,
    /// Bytes of the image to process (its virtual size), set once after probing.
    pub total: AtomicU64,
    /// Set to stop the load: it ends with [`DumpLoadError::Cancelled`] after the blocks in work
    /// (or kills a running `qemu-img convert`).
    pub cancel: AtomicBool,
    /// True while a qcow2 image is being converted to raw (`done` stays 0 meanwhile).
    pub converting: AtomicBool,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadStats {
    /// Chunks read.
    pub chunks: u64,
    /// All-zero chunks (stored as a flag, no data).
    pub zero: u64,
    /// Version entries written at D (content differs from the base point).
    pub entries: u64,
    /// Chunks equal to their version at the base point: no entry.
    pub same_as_base: u64,
    /// Data chunks whose hash the store already held.
    pub dedup: u64,
    /// Bytes newly written to the chunk store.
    pub stored_bytes: u64,
    /// Bytes of the image read.
    pub raw_bytes: u64,
    /// `raw` or `qcow2`.
    pub format: String,
    /// Duration of the load (conversion included), milliseconds.
    pub millis: u64,
}

impl LoadStats {
    fn add(&mut self, o: &LoadStats) {
        self.chunks += o.chunks;
        self.zero += o.zero;
        self.entries += o.entries;
        self.same_as_base += o.same_as_base;
        self.dedup += o.dedup;
        self.stored_bytes += o.stored_bytes;
        self.raw_bytes += o.raw_bytes;
    }
}

/// What to load where.
#[derive(Debug, Clone)]
pub struct DumpLoadSpec {
    /// The pair's number in the store.
    pub pair_no: u32,
    /// The disk of the pair the image holds.
    pub disk: u32,
    /// That disk's geometry: the image must be exactly `size_bytes` long.
    pub geometry: DiskGeometry,
    /// Absolute path of the image (regular file or block device).
    pub image: PathBuf,
    /// The operator's format, or `None` to detect it from the content.
    pub format: Option<ImageFormat>,
    /// The dump epoch D: entries are written at this epoch.
    pub epoch: u64,
    /// The pair's newest committed epoch (0 = none): a chunk equal to its version at `base` gets
    /// no entry at D (and any earlier entry at D for it is deleted: loading again replaces a
    /// previous load).
    pub base: u64,
    /// Where a qcow2 image is converted to raw first (removed afterwards, also on error).
    pub scratch_dir: PathBuf,
}

/// Checks an image before any loading: `image` must be an absolute path to an existing regular
/// file or block device, readable; format detected from the content (qcow2 magic "QFI\xfb" at
/// offset 0, otherwise raw) unless `format` is given (a given format that contradicts the
/// content is refused); the virtual size (file/device size for raw, `qemu-img info
/// --output=json` "virtual-size" for qcow2) must equal `geometry.size_bytes`, else an error
/// naming both sizes and the disk.
pub fn probe(
    image: &Path,
    format: Option<ImageFormat>,
    disk: u32,
    geometry: &DiskGeometry,
) -> Result<ImageInfo, DumpLoadError> {
    let file = open_image(image)?;
    let mut magic = [0u8; 4];
    let got = read_prefix(&file, &mut magic).map_err(|source| DumpLoadError::Read {
        path: image.into(),
        offset: 0,
        source,
    })?;
    let detected = if got == magic.len() && magic == QCOW2_MAGIC { ImageFormat::Qcow2 } else { ImageFormat::Raw };
    if let Some(given) = format
        && given != detected
    {
        return Err(DumpLoadError::FormatMismatch { path: image.into(), given, detected });
    }
    let virtual_size = match detected {
        ImageFormat::Raw => file_size(image, &file)?,
        ImageFormat::Qcow2 => qcow2_virtual_size(image)?,
    };
    if virtual_size != geometry.size_bytes {
        return Err(DumpLoadError::SizeMismatch {
            path: image.into(),
            format: detected,
            disk,
            image_size: virtual_size,
            disk_size: geometry.size_bytes,
        });
    }
    Ok(ImageInfo { format: detected, virtual_size })
}

/// Checks the path and opens it for reading.
fn open_image(image: &Path) -> Result<File, DumpLoadError> {
    if !image.is_absolute() {
        return Err(DumpLoadError::RelativePath { path: image.into() });
    }
    let meta = std::fs::metadata(image).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => DumpLoadError::NotFound { path: image.into() },
        _ => DumpLoadError::Access { path: image.into(), source },
    })?;
    let ft = meta.file_type();
    if !ft.is_file() && !ft.is_block_device() {
        let kind = if ft.is_dir() {
            "directory"
        } else if ft.is_fifo() {
            "FIFO"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_char_device() {
            "character device"
        } else {
            "special file"
        };
        return Err(DumpLoadError::NotAFile { path: image.into(), kind });
    }
    File::open(image).map_err(|source| DumpLoadError::Access { path: image.into(), source })
}

/// Reads up to `buf.len()` bytes at offset 0; fewer only at the end of the file.
fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Size of a regular file or block device (a block device's metadata says 0: seek instead).
fn file_size(path: &Path, mut file: &File) -> Result<u64, DumpLoadError> {
    file.seek(SeekFrom::End(0)).map_err(|source| DumpLoadError::Access { path: path.into(), source })
}

/// Runs qemu-img to completion; a missing binary and a failed run are errors naming `image`.
fn qemu_img(step: &'static str, image: &Path, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, DumpLoadError> {
    let out =
        Command::new(QEMU_IMG).args(args).stdin(Stdio::null()).output().map_err(|e| spawn_error(step, image, e))?;
    if !out.status.success() {
        return Err(DumpLoadError::QemuImg {
            step,
            path: image.into(),
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(out.stdout)
}

fn spawn_error(step: &'static str, image: &Path, e: io::Error) -> DumpLoadError {
    if e.kind() == io::ErrorKind::NotFound {
        DumpLoadError::QemuImgMissing { path: image.into() }
    } else {
        DumpLoadError::QemuImg { step, path: image.into(), detail: format!("cannot run {QEMU_IMG}: {e}") }
    }
}

/// `virtual-size` from `qemu-img info --output=json -f qcow2 IMAGE`.
fn qcow2_virtual_size(image: &Path) -> Result<u64, DumpLoadError> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "virtual-size")]
        virtual_size: u64,
    }
    let args = ["info".as_ref(), "--output=json".as_ref(), "-f".as_ref(), "qcow2".as_ref(), image.as_os_str()];
    let out = qemu_img("info", image, &args)?;
    let info: Info = serde_json::from_slice(&out).map_err(|e| DumpLoadError::QemuImg {
        step: "info",
        path: image.into(),
        detail: format!("unexpected output ({e})"),
    })?;
    Ok(info.virtual_size)
}

/// A file in the scratch directory, removed when dropped.
struct ScratchFile(PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.0.display(), error = %e, "cannot remove converted dump image"),
        }
    }
}

/// `qemu-img convert -f qcow2 -O raw IMAGE RAW`, killed when the load is cancelled.
fn convert_qcow2(image: &Path, raw: &Path, progress: &LoadProgress) -> Result<(), DumpLoadError> {
    let step = "convert";
    let mut child = Command::new(QEMU_IMG)
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(image)
        .arg(raw)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(step, image, e))?;
    // Drained on its own thread so that a chatty qemu-img never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut s = String::new();
            // Best effort: the message only decorates the error.
            let _ = pipe.read_to_string(&mut s);
            s
        })
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if progress.cancel.load(Ordering::Relaxed) => {
                // kill fails only when the child has exited already; wait reaps it either way.
                let _ = child.kill();
                let _ = child.wait();
                return Err(DumpLoadError::Cancelled { path: image.into() });
            }
            Ok(None) => std::thread::sleep(CONVERT_POLL),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DumpLoadError::QemuImg {
                    step,
                    path: image.into(),
                    detail: format!("waiting for it: {e}"),
                });
            }
        }
    };
    let message = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(DumpLoadError::QemuImg {
            step,
            path: image.into(),
            detail: format!("{status}: {}", message.trim()),
        });
    }
    Ok(())
}

/// Loads the image (blocking; call from spawn_blocking). Probes first. Reads the image in
/// blocks of 4 MiB rounded to whole chunks (pread), hashes each chunk with
/// [`drpair_ship::hash_chunk`] (all-zero chunks → [`ChunkVersion::Zero`] without storing),
/// compresses data chunks with zstd level 3 (stored raw when zstd is not smaller), stores them
/// with [`Store::put_chunk_bulk`] (a held hash counts as dedup), compares with the versions at
/// `spec.base` when it is > 0, and writes the entries with [`Store::write_dump_versions`]
/// (every 256 MiB of image: each such write first makes the chunks durable). Work is spread
/// over min(available_parallelism, 4) threads, each taking the next block; memory stays
/// bounded (one block and its compressed chunk per thread). Updates `progress.total` once and
/// `progress.done` per block. Ends with [`Store::flush`]: chunks and entries are durable when
/// it returns.
///
/// A qcow2 image is first converted to `scratch_dir/drpair-dump-<pid>-<pair_no>-<disk>.raw`
/// (sparse; needs up to the disk's size of free space), removed afterwards, also on error.
/// Two threads reading the same new content at once may both store it: `dedup` and
/// `stored_bytes` are then slightly off, the store is not.
pub fn load(store: &Store, spec: &DumpLoadSpec, progress: &LoadProgress) -> Result<LoadStats, DumpLoadError> {
    let started = Instant::now();
    tracing::info!(
        pair_no = spec.pair_no,
        disk = spec.disk,
        image = %spec.image.display(),
        epoch = spec.epoch,
        base = spec.base,
        "dump load started"
    );
    match load_inner(store, spec, progress, started) {
        Ok(stats) => {
            tracing::info!(
                pair_no = spec.pair_no,
                disk = spec.disk,
                image = %spec.image.display(),
                epoch = spec.epoch,
                format = %stats.format,
                chunks = stats.chunks,
                zero = stats.zero,
                entries = stats.entries,
                same_as_base = stats.same_as_base,
                dedup = stats.dedup,
                stored_bytes = stats.stored_bytes,
                raw_bytes = stats.raw_bytes,
                millis = stats.millis,
                "dump load finished"
            );
            Ok(stats)
        }
        Err(e) => {
            tracing::warn!(
                pair_no = spec.pair_no,
                disk = spec.disk,
                image = %spec.image.display(),
                epoch = spec.epoch,
                error = %e,
                "dump load failed"
            );
            Err(e)
        }
    }
}

fn load_inner(
    store: &Store,
    spec: &DumpLoadSpec,
    progress: &LoadProgress,
    started: Instant,
) -> Result<LoadStats, DumpLoadError> {
    let image = spec.image.as_path();
    if spec.epoch <= spec.base {
        return Err(DumpLoadError::EpochBeforeBase { path: image.into(), epoch: spec.epoch, base: spec.base });
    }
    // Checked again with every write; this spares reading the image for nothing.
    let latest = store.latest_point(spec.pair_no).map_err(|e| DumpLoadError::store(image, e))?;
    if let Some(committed) = latest.map(|p| p.epoch)
        && spec.epoch <= committed
    {
        return Err(DumpLoadError::EpochNotOpen {
            path: image.into(),
            pair_no: spec.pair_no,
            epoch: spec.epoch,
            committed,
        });
    }
    let info = probe(image, spec.format, spec.disk, &spec.geometry)?;
    progress.total.store(info.virtual_size, Ordering::Relaxed);
    let cancelled = || DumpLoadError::Cancelled { path: image.into() };
    if progress.cancel.load(Ordering::Relaxed) {
        return Err(cancelled());
    }
    // `_scratch` lives until the end of the load: the converted file goes on every return.
    let (raw_path, _scratch) = match info.format {
        ImageFormat::Raw => (image.to_path_buf(), None),
        ImageFormat::Qcow2 => {
            let scratch_err =
                |source| DumpLoadError::Scratch { path: image.into(), dir: spec.scratch_dir.clone(), source };
            std::fs::create_dir_all(&spec.scratch_dir).map_err(scratch_err)?;
            let name = format!("drpair-dump-{}-{}-{}.raw", std::process::id(), spec.pair_no, spec.disk);
            let raw = spec.scratch_dir.join(name);
            let guard = ScratchFile(raw.clone());
            progress.converting.store(true, Ordering::Relaxed);
            let converted = convert_qcow2(image, &raw, progress);
            progress.converting.store(false, Ordering::Relaxed);
            converted?;
            (raw, Some(guard))
        }
    };
    let file = File::open(&raw_path).map_err(|source| DumpLoadError::Access { path: raw_path.clone(), source })?;
    let size = file_size(&raw_path, &file)?;
    if size != spec.geometry.size_bytes {
        return Err(DumpLoadError::SizeMismatch {
            path: raw_path,
            format: ImageFormat::Raw,
            disk: spec.disk,
            image_size: size,
            disk_size: spec.geometry.size_bytes,
        });
    }
    let mut stats = load_raw(store, spec, &file, &raw_path, progress)?;
    stats.format = info.format.as_str().to_string();
    stats.millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    Ok(stats)
}

/// What the workers share.
struct Work<'a> {
    store: &'a Store,
    spec: &'a DumpLoadSpec,
    file: &'a File,
    /// The file read (the image, or the raw file converted from it).
    path: &'a Path,
    chunks_per_block: u64,
    blocks: u64,
    next_block: AtomicU64,
    /// Set by the collector when the load failed: workers stop taking blocks.
    stop: AtomicBool,
    progress: &'a LoadProgress,
}

/// One processed block, sent to the collector.
struct BlockDone {
    bytes: u64,
    items: Vec<(u32, u64, Option<ChunkVersion>)>,
    stats: LoadStats,
}

/// Per-thread reusable state.
struct Worker {
    buf: Vec<u8>,
    compressed: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
}

/// Reads, stores and records a raw image with the worker threads.
fn load_raw(
    store: &Store,
    spec: &DumpLoadSpec,
    file: &File,
    path: &Path,
    progress: &LoadProgress,
) -> Result<LoadStats, DumpLoadError> {
    let g = &spec.geometry;
    let chunk_bytes = u64::from(g.chunk_size.bytes());
    let chunks_per_block = (BLOCK_BYTES / chunk_bytes).max(1);
    let blocks = g.chunk_count().div_ceil(chunks_per_block);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(MAX_THREADS)
        .min(usize::try_from(blocks).unwrap_or(usize::MAX))
        .max(1);
    let work = Work {
        store,
        spec,
        file,
        path,
        chunks_per_block,
        blocks,
        next_block: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        progress,
    };
    std::thread::scope(|s| {
        // A few finished blocks' entries (small) may wait for the collector; the data itself
        // never leaves its worker.
        let (tx, rx) = mpsc::sync_channel(threads * 2);
        for i in 0..threads {
            let tx = tx.clone();
            let work = &work;
            let spawned = std::thread::Builder::new()
                .name(format!("dump-load-{i}"))
                .spawn_scoped(s, move || run_worker(work, tx));
            if let Err(source) = spawned {
                // The workers already started stop at their next block.
                work.stop.store(true, Ordering::Relaxed);
                return Err(DumpLoadError::Thread { path: spec.image.clone(), source });
            }
        }
        drop(tx);
        let result = collect(&work, rx);
        if result.is_err() {
            work.stop.store(true, Ordering::Relaxed);
        }
        result
    })
}

/// Takes blocks until none is left, the load fails or is cancelled.
fn run_worker(work: &Work<'_>, tx: mpsc::SyncSender<Result<BlockDone, DumpLoadError>>) {
    let zstd = match zstd::bulk::Compressor::new(ZSTD_LEVEL) {
        Ok(z) => z,
        Err(source) => {
            let _ = tx.send(Err(DumpLoadError::Compress { path: work.spec.image.clone(), chunk: u64::MAX, source }));
            return;
        }
    };
    let mut w = Worker { buf: Vec::new(), compressed: Vec::new(), zstd };
    loop {
        if work.stop.load(Ordering::Relaxed) || work.progress.cancel.load(Ordering::Relaxed) {
            return;
        }
        let block = work.next_block.fetch_add(1, Ordering::Relaxed);
        if block >= work.blocks {
            return;
        }
        let done = process_block(work, &mut w, block);
        let failed = done.is_err();
        // A closed channel means the collector gave up: nothing left to do.
        if tx.send(done).is_err() || failed {
            return;
        }
    }
}

/// Reads one block and stores its chunks; returns the entries to write.
fn process_block(work: &Work<'_>, w: &mut Worker, block: u64) -> Result<BlockDone, DumpLoadError> {
    let spec = work.spec;
    let g = &spec.geometry;
    let first = block * work.chunks_per_block;
    let count = work.chunks_per_block.min(g.chunk_count() - first);
    let offset = g.chunk_offset(first);
    let end = g.chunk_offset(first + count).min(g.size_bytes);
    let len = usize::try_from(end - offset).expect("a block is at most 4 MiB");
    w.buf.resize(len, 0);
    work.file.read_exact_at(&mut w.buf, offset).map_err(|source| {
        if source.kind() == io::ErrorKind::UnexpectedEof {
            DumpLoadError::Truncated { path: work.path.into(), end, size: g.size_bytes }
        } else {
            DumpLoadError::Read { path: work.path.into(), offset, source }
        }
    })?;
    let store_err = |e| DumpLoadError::store(&spec.image, e);
    let base = if spec.base > 0 {
        Some(work.store.versions_at(spec.pair_no, spec.disk, spec.base, first, count).map_err(store_err)?)
    } else {
        None
    };
    let mut stats = LoadStats::default();
    let mut items = Vec::with_capacity(len.div_ceil(g.chunk_size.bytes() as usize));
    let mut pos = 0usize;
    for (i, chunk) in (first..first + count).enumerate() {
        let chunk_len = g.chunk_len(chunk);
        let data = &w.buf[pos..pos + chunk_len as usize];
        pos += chunk_len as usize;
        stats.chunks += 1;
        stats.raw_bytes += u64::from(chunk_len);
        let version = if is_zero(data) {
            stats.zero += 1;
            ChunkVersion::Zero
        } else {
            ChunkVersion::Data(hash_chunk(data))
        };
        let at_base = base.as_ref().and_then(|b| b[i]);
        if at_base == Some(version) {
            stats.same_as_base += 1;
            items.push((spec.disk, chunk, None));
            continue;
        }
        if let ChunkVersion::Data(hash) = version {
            w.compressed.clear();
            w.compressed.reserve(zstd::compress_bound(data.len()));
            w.zstd.compress_to_buffer(data, &mut w.compressed).map_err(|source| DumpLoadError::Compress {
                path: spec.image.clone(),
                chunk,
                source,
            })?;
            let stored = if w.compressed.len() < data.len() {
                StoredChunk { compressed: true, raw_len: chunk_len, payload: &w.compressed }
            } else {
                StoredChunk { compressed: false, raw_len: chunk_len, payload: data }
            };
            match work.store.put_chunk_bulk(&hash, stored).map_err(store_err)? {
                0 => stats.dedup += 1,
                n => stats.stored_bytes += n,
            }
        }
        stats.entries += 1;
        items.push((spec.disk, chunk, Some(version)));
    }
    Ok(BlockDone { bytes: end - offset, items, stats })
}

/// Gathers the workers' blocks, writes their entries in batches, then makes everything durable.
fn collect(work: &Work<'_>, rx: mpsc::Receiver<Result<BlockDone, DumpLoadError>>) -> Result<LoadStats, DumpLoadError> {
    let spec = work.spec;
    let store_err = |e| DumpLoadError::store(&spec.image, e);
    let mut stats = LoadStats::default();
    let mut items = Vec::new();
    let (mut batched, mut finished) = (0usize, 0u64);
    for done in rx {
        let done = done?;
        stats.add(&done.stats);
        items.extend(done.items);
        batched += 1;
        finished += 1;
        if batched >= WRITE_EVERY_BLOCKS {
            work.store.write_dump_versions(spec.pair_no, spec.epoch, &items).map_err(store_err)?;
            items.clear();
            batched = 0;
        }
        work.progress.done.fetch_add(done.bytes, Ordering::Relaxed);
    }
    if finished < work.blocks {
        // Workers stop early only when cancelled (errors were returned above).
        return Err(DumpLoadError::Cancelled { path: spec.image.clone() });
    }
    work.store.write_dump_versions(spec.pair_no, spec.epoch, &items).map_err(store_err)?;
    work.store.flush().map_err(store_err)?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{ChunkSize, Consistency, PairId, PointKind, PointSizes, RecoveryPoint};

    const CHUNK: usize = 64 << 10;
    /// 150 full chunks and a short one (whole 512-byte sectors, as qcow2 requires): 3 blocks of 64 chunks.
    const SIZE: usize = 150 * CHUNK + 1536;
    const ZERO_CHUNKS: [usize; 3] = [3, 70, 140];

    fn geometry() -> DiskGeometry {
        DiskGeometry::new(SIZE as u64, ChunkSize::new(CHUNK as u64).unwrap()).unwrap()
    }

    /// Deterministic incompressible bytes (xorshift64*).
    fn noise(seed: u64, out: &mut [u8]) {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for b in out.chunks_mut(8) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
            b.copy_from_slice(&v[..b.len()]);
        }
    }

    /// Random chunks, zero chunks, chunks 10 and 11 identical, chunk 20 compressible, a short
    /// last chunk.
    fn image_bytes() -> Vec<u8> {
        let mut img = vec![0u8; SIZE];
        for (i, c) in img.chunks_mut(CHUNK).enumerate() {
            if ZERO_CHUNKS.contains(&i) {
                continue;
            }
            noise(i as u64 + 1, c);
        }
        let (a, b) = img.split_at_mut(11 * CHUNK);
        b[..CHUNK].copy_from_slice(&a[10 * CHUNK..]);
        for (j, byte) in img[20 * CHUNK..21 * CHUNK].iter_mut().enumerate() {
            *byte = u8::try_from(j % 13).unwrap();
        }
        img
    }

    fn spec(image: &Path, scratch: &Path, epoch: u64, base: u64) -> DumpLoadSpec {
        DumpLoadSpec {
            pair_no: 1,
            disk: 0,
            geometry: geometry(),
            image: image.into(),
            format: None,
            epoch,
            base,
            scratch_dir: scratch.into(),
        }
    }

    fn commit(store: &Store, epoch: u64) {
        let pair_id = PairId::new("dump").unwrap();
        let point = RecoveryPoint {
            id: epoch,
            pair_id: pair_id.clone(),
            epoch,
            lineage: uuid::Uuid::nil(),
            time: "2025-01-01T00:00:00Z".into(),
            time_unix_ms: 1_735_689_600_000,
            committed_unix_ms: 1_735_689_600_000,
            kind: PointKind::DumpMarker,
            consistency: Consistency::CrashConsistent,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes::default(),
            quiesce: None,
            full_pass: false,
            damage: None,
        };
        store.commit_point(1, &point, &pair_id, &serde_json::json!({ "pair": "dump" })).unwrap();
    }

    /// The disk as read from the store at `epoch`: every chunk must have a version.
    fn read_back(store: &Store, epoch: u64) -> Vec<u8> {
        let g = geometry();
        let versions = store.versions_at(1, 0, epoch, 0, g.chunk_count()).unwrap();
        let mut out = Vec::with_capacity(SIZE);
        for (c, v) in versions.into_iter().enumerate() {
            match v.unwrap_or_else(|| panic!("chunk {c}: no version at epoch {epoch}")) {
                ChunkVersion::Zero => out.resize(out.len() + g.chunk_len(c as u64) as usize, 0),
                ChunkVersion::Data(h) => out.extend_from_slice(&store.read_chunk(&h).unwrap()),
            }
        }
        out
    }

    struct Fixture {
        dir: tempfile::TempDir,
        store: Store,
        image: PathBuf,
        bytes: Vec<u8>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let image = dir.path().join("disk.raw");
        let bytes = image_bytes();
        std::fs::write(&image, &bytes).unwrap();
        Fixture { dir, store, image, bytes }
    }

    impl Fixture {
        fn scratch(&self) -> PathBuf {
            self.dir.path().join("scratch")
        }

        fn set_chunk(&mut self, c: usize, seed: Option<u64>) {
            let chunk = &mut self.bytes[c * CHUNK..(c + 1) * CHUNK];
            match seed {
                Some(seed) => noise(seed, chunk),
                None => chunk.fill(0),
            }
            std::fs::write(&self.image, &self.bytes).unwrap();
        }
    }

    #[test]
    fn dump_load_raw_image_stores_every_chunk() {
        let f = fixture();
        let progress = LoadProgress::default();
        let stats = load(&f.store, &spec(&f.image, &f.scratch(), 5, 0), &progress).unwrap();
        let g = geometry();
        assert_eq!(stats.chunks, g.chunk_count());
        assert_eq!(stats.zero, ZERO_CHUNKS.len() as u64);
        assert_eq!(stats.entries, g.chunk_count());
        assert_eq!(stats.same_as_base, 0);
        assert!(stats.dedup >= 1, "{stats:?}");
        assert_eq!(stats.raw_bytes, SIZE as u64);
        assert_eq!(stats.format, "raw");
        assert!(stats.stored_bytes > 0 && stats.stored_bytes < SIZE as u64, "{stats:?}");
        assert_eq!(progress.total.load(Ordering::Relaxed), SIZE as u64);
        assert_eq!(progress.done.load(Ordering::Relaxed), SIZE as u64);
        let versions = f.store.versions_at(1, 0, 5, 0, g.chunk_count()).unwrap();
        for (c, v) in versions.iter().enumerate() {
            let data = &f.bytes[c * CHUNK..(c * CHUNK + g.chunk_len(c as u64) as usize)];
            if ZERO_CHUNKS.contains(&c) {
                assert_eq!(*v, Some(ChunkVersion::Zero), "chunk {c}");
            } else {
                let h = hash_chunk(data);
                assert_eq!(*v, Some(ChunkVersion::Data(h)), "chunk {c}");
                assert_eq!(f.store.read_chunk(&h).unwrap(), data, "chunk {c}");
            }
        }
        assert_eq!(versions[10], versions[11]);
        // The compressible chunk went in as zstd, the noise raw.
        let ChunkVersion::Data(h20) = versions[20].unwrap() else { panic!("chunk 20 is data") };
        assert_eq!(f.store.get_chunk_raw(&h20).unwrap().unwrap()[0], 1);
        let ChunkVersion::Data(h0) = versions[0].unwrap() else { panic!("chunk 0 is data") };
        assert_eq!(f.store.get_chunk_raw(&h0).unwrap().unwrap()[0], 0);
        assert!(f.store.versions_at(1, 0, 4, 0, g.chunk_count()).unwrap().iter().all(Option::is_none));
        assert_eq!(read_back(&f.store, 5), f.bytes);
    }

    #[test]
    fn dump_load_against_a_base_writes_only_changes_and_reload_replaces() {
        let mut f = fixture();
        let scratch = f.scratch();
        load(&f.store, &spec(&f.image, &scratch, 5, 0), &LoadProgress::default()).unwrap();
        commit(&f.store, 5);
        let base_bytes = f.bytes.clone();
        f.set_chunk(30, Some(1000));
        f.set_chunk(ZERO_CHUNKS[1], Some(1001));
        let stats = load(&f.store, &spec(&f.image, &scratch, 9, 5), &LoadProgress::default()).unwrap();
        let n = geometry().chunk_count();
        assert_eq!((stats.entries, stats.same_as_base, stats.chunks), (2, n - 2, n), "{stats:?}");
        assert_eq!(stats.zero, ZERO_CHUNKS.len() as u64 - 1);
        assert_eq!(read_back(&f.store, 9), f.bytes);
        assert_eq!(read_back(&f.store, 5), base_bytes, "the base point is unchanged");
        assert_eq!(f.store.changed_between(1, 0, 5, 9).unwrap(), vec![30, ZERO_CHUNKS[1] as u64]);

        // Loading again after chunk 30 went back to its base content drops its entry at 9.
        f.bytes[30 * CHUNK..31 * CHUNK].copy_from_slice(&base_bytes[30 * CHUNK..31 * CHUNK]);
        std::fs::write(&f.image, &f.bytes).unwrap();
        let stats = load(&f.store, &spec(&f.image, &scratch, 9, 5), &LoadProgress::default()).unwrap();
        assert_eq!((stats.entries, stats.same_as_base), (1, n - 1), "{stats:?}");
        assert_eq!(f.store.version_at(1, 0, 30, 9).unwrap().map(|(e, _)| e), Some(5));
        assert_eq!(f.store.version_at(1, 0, ZERO_CHUNKS[1] as u64, 9).unwrap().map(|(e, _)| e), Some(9));
        assert_eq!(f.store.changed_between(1, 0, 5, 9).unwrap(), vec![ZERO_CHUNKS[1] as u64]);
        assert_eq!(read_back(&f.store, 9), f.bytes);
    }

    #[test]
    fn dump_load_qcow2_image_equals_its_raw_content() {
        let f = fixture();
        let qcow = f.dir.path().join("disk.qcow2");
        let out = Command::new(QEMU_IMG)
            .args(["convert", "-f", "raw", "-O", "qcow2"])
            .arg(&f.image)
            .arg(&qcow)
            .output()
            .expect("qemu-img is installed");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let info = probe(&qcow, None, 0, &geometry()).unwrap();
        assert_eq!(info, ImageInfo { format: ImageFormat::Qcow2, virtual_size: SIZE as u64 });
        let e = probe(&qcow, Some(ImageFormat::Raw), 0, &geometry()).unwrap_err();
        assert!(matches!(e, DumpLoadError::FormatMismatch { .. }), "{e}");
        let scratch = f.scratch();
        let stats = load(&f.store, &spec(&qcow, &scratch, 5, 0), &LoadProgress::default()).unwrap();
        assert_eq!(stats.format, "qcow2");
        assert_eq!(stats.raw_bytes, SIZE as u64);
        assert_eq!(read_back(&f.store, 5), f.bytes);
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "converted file removed");
        // A qcow2 of the wrong size is refused before converting anything.
        let mut wrong = spec(&qcow, &scratch, 6, 0);
        wrong.geometry = DiskGeometry::new(SIZE as u64 + 1, ChunkSize::new(CHUNK as u64).unwrap()).unwrap();
        let e = load(&f.store, &wrong, &LoadProgress::default()).unwrap_err();
        assert!(matches!(e, DumpLoadError::SizeMismatch { format: ImageFormat::Qcow2, .. }), "{e}");
    }

    #[test]
    fn dump_load_probe_refuses_bad_images() {
        let f = fixture();
        let g = geometry();
        let missing = f.dir.path().join("absent.raw");
        let e = probe(&missing, None, 0, &g).unwrap_err();
        assert!(matches!(e, DumpLoadError::NotFound { .. }), "{e}");
        assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
        let e = probe(Path::new("disk.raw"), None, 0, &g).unwrap_err();
        assert!(matches!(e, DumpLoadError::RelativePath { .. }), "{e}");
        assert!(e.to_string().contains("disk.raw"), "{e}");
        let e = probe(f.dir.path(), None, 0, &g).unwrap_err();
        assert!(matches!(e, DumpLoadError::NotAFile { kind: "directory", .. }), "{e}");
        let other = DiskGeometry::new(SIZE as u64 * 2, g.chunk_size).unwrap();
        let e = probe(&f.image, None, 3, &other).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, DumpLoadError::SizeMismatch { .. }), "{e}");
        for part in [SIZE.to_string(), (SIZE * 2).to_string(), "disk 3".into(), f.image.display().to_string()] {
            assert!(msg.contains(&part), "{msg} lacks {part}");
        }
        let e = probe(&f.image, Some(ImageFormat::Qcow2), 0, &g).unwrap_err();
        assert!(
            matches!(e, DumpLoadError::FormatMismatch { given: ImageFormat::Qcow2, detected: ImageFormat::Raw, .. }),
            "{e}"
        );
        assert_eq!(probe(&f.image, Some(ImageFormat::Raw), 0, &g).unwrap().format, ImageFormat::Raw);
        assert_eq!("QCOW2".parse::<ImageFormat>(), Ok(ImageFormat::Qcow2));
        assert!("vmdk".parse::<ImageFormat>().unwrap_err().contains("raw or qcow2"));
    }

    #[test]
    fn dump_load_cancelled_before_start() {
        let f = fixture();
        let progress = LoadProgress::default();
        progress.cancel.store(true, Ordering::Relaxed);
        let e = load(&f.store, &spec(&f.image, &f.scratch(), 5, 0), &progress).unwrap_err();
        assert!(matches!(e, DumpLoadError::Cancelled { .. }), "{e}");
        assert!(e.to_string().contains("cancelled"), "{e}");
        assert_eq!(progress.done.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn dump_load_refuses_committed_epochs() {
        let f = fixture();
        commit(&f.store, 5);
        let e = load(&f.store, &spec(&f.image, &f.scratch(), 5, 0), &LoadProgress::default()).unwrap_err();
        assert!(matches!(e, DumpLoadError::EpochNotOpen { epoch: 5, committed: 5, .. }), "{e}");
        let e = load(&f.store, &spec(&f.image, &f.scratch(), 5, 5), &LoadProgress::default()).unwrap_err();
        assert!(matches!(e, DumpLoadError::EpochBeforeBase { .. }), "{e}");
    }
}
