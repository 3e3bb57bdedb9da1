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
use super::errors::DumpLoadError;
use super::format::ImageFormat;
use super::image::{ScratchFile, convert_qcow2, file_size, probe};
use super::progress::{LoadProgress, LoadStats};
use drpair_ship::{hash_chunk, is_zero};
use drpair_store::{ChunkVersion, Store, StoredChunk};
use drpair_types::DiskGeometry;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Instant;

/// Bytes read per block (rounded down to whole chunks; at least one chunk).
const BLOCK_BYTES: u64 = 4 << 20;
/// Most worker threads.
const MAX_THREADS: usize = 4;
/// Blocks whose entries are written together (256 MiB of image): each write first flushes
/// the chunks written without the WAL, so they are kept few.
const WRITE_EVERY_BLOCKS: usize = 64;
/// zstd level of stored chunks.
const ZSTD_LEVEL: i32 = 3;

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
