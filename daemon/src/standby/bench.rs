//! The store benchmark of `drpair bench` (`POST /api/v1/bench/store`): how fast the standby's
//! store takes chunk bytes, written the way ingest writes them, into a scratch store on the
//! data filesystem (`DATA_DIR/bench-<hex>`, removed afterwards whatever happens). One runs at
//! a time ([`claim`]), and only with twice its bytes and 1 GiB free.
//!
//! The chunks are incompressible and all distinct (a stored hash would be skipped as dedup): a
//! few buffers of pseudo-random bytes per writer, made before the clock starts, each chunk one
//! of them with its number in its first 8 bytes. Each writer does what ingest does with a
//! frame: blake3 of every chunk (the standby's check of what the agent announced), then one
//! [`Store::write_frame`] of [`FRAME_CHUNKS`] chunks with their version entries (an open epoch
//! of a scratch pair). [`INGEST_PARALLEL`] writers share the chunks, as one agent's connection
//! stores that many frames at once; the first [`BULK_AFTER_BYTES`] go through the WAL, the
//! rest without it, as in one epoch of that size. The clock runs from the first write to the
//! end of the flush ([`Store::flush`]) that makes them durable. So the rate is the standby's
//! whole cost per byte after the link: what `drpair bench` adds to the agent's when both run
//! on one host.

use super::resources::{disk_space, human};
use super::session::{BULK_AFTER_BYTES, INGEST_PARALLEL};
use drpair_store::{ChunkVersion, Hash, Store, StoredChunk};
use drpair_types::{BENCH_STORE_CHUNK_SIZE, BenchStoreResult};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// Free space a run leaves beyond twice its bytes (the WAL and the blob files).
const SPARE: u64 = 1 << 30;
/// Buffers of pseudo-random bytes per writer.
const BUFFERS: usize = 16;
/// Chunks per frame (1 MiB of 64 KiB chunks, as the agent frames them).
const FRAME_CHUNKS: u64 = 16;
/// The scratch pair's number and open epoch.
const PAIR_NO: u32 = 1;
const EPOCH: u64 = 1;
/// The scratch directory's name: this prefix and 16 hex digits.
const PREFIX: &str = "bench-";

/// Why a store benchmark did not run or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Another store benchmark is running.
    #[error("{0}")]
    Busy(String),
    /// The data filesystem has too little free space.
    #[error("{0}")]
    Space(String),
    /// The scratch store could not be made, written or flushed.
    #[error("{0}")]
    Failed(String),
}

static RUNNING: AtomicBool = AtomicBool::new(false);

/// The right to run the one store benchmark; given back when dropped.
#[derive(Debug)]
pub struct Claim(());

impl Drop for Claim {
    fn drop(&mut self) {
        RUNNING.store(false, Ordering::SeqCst);
    }
}

/// Takes the right to run a store benchmark, or says that one is running.
pub fn claim() -> Result<Claim, BenchError> {
    RUNNING.compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst).map(|_| Claim(())).map_err(|_| {
        BenchError::Busy("a store benchmark is already running on this standby; try again when it ends".into())
    })
}

/// Removes the scratch directory when dropped (after the store in it is closed).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %self.0.display(), "store benchmark: scratch directory not removed: {e}");
        }
    }
}

/// Writes `bytes` of chunks to a scratch store below `data_dir` and measures it (blocking).
/// `_claim` is held until the scratch directory is gone.
pub fn run(data_dir: &Path, bytes: u64, _claim: Claim) -> Result<BenchStoreResult, BenchError> {
    remove_stale(data_dir);
    let (free, _) =
        disk_space(data_dir).map_err(|e| BenchError::Failed(format!("free space of {}: {e}", data_dir.display())))?;
    let needed = bytes.saturating_mul(2).saturating_add(SPARE);
    if free < needed {
        return Err(BenchError::Space(format!(
            "the data filesystem ({}) has {} free; a store benchmark of {} needs {} (twice its bytes and 1 GiB)",
            data_dir.display(),
            human(free),
            human(bytes),
            human(needed)
        )));
    }
    let run_id = drpair_tls::random_secret()[..16].to_string();
    let scratch = Scratch(data_dir.join(format!("{PREFIX}{run_id}")));
    tracing::info!(bytes, dir = %scratch.0.display(), free, "store benchmark: writing {}", human(bytes));
    let result = measure(&scratch.0, bytes, &run_id);
    drop(scratch);
    match &result {
        Ok(r) => tracing::info!(
            bytes = r.bytes,
            seconds = r.seconds,
            bytes_per_second = r.bytes_per_second,
            "store benchmark: {} in {:.2} s, {:.0} MiB/s",
            human(r.bytes),
            r.seconds,
            r.bytes_per_second / (1u64 << 20) as f64
        ),
        Err(e) => tracing::warn!(bytes, "store benchmark failed: {e}"),
    }
    result
}

/// Opens the scratch store in `dir` (made new), writes and flushes.
fn measure(dir: &Path, bytes: u64, run_id: &str) -> Result<BenchStoreResult, BenchError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| BenchError::Failed(format!("store benchmark: {what}: {e}"));
    std::fs::create_dir(dir).map_err(|e| failed(&format!("making {}", dir.display()), &e))?;
    let store = Store::open(dir).map_err(|e| failed("opening the scratch store", &e))?;
    let chunk = u64::from(BENCH_STORE_CHUNK_SIZE);
    let chunk_len = BENCH_STORE_CHUNK_SIZE as usize;
    let chunks = bytes.div_ceil(chunk);
    let frames = chunks.div_ceil(FRAME_CHUNKS);
    let seed = blake3::hash(run_id.as_bytes());
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let per_writer = BUFFERS.max(FRAME_CHUNKS as usize);
    let mut buffers: Vec<Vec<Vec<u8>>> = (0..INGEST_PARALLEL)
        .map(|w| (0..per_writer).map(|b| noise(seed, (w * per_writer + b) as u64, chunk_len)).collect())
        .collect();
    let started = Instant::now();
    let written = std::thread::scope(|s| {
        let writers: Vec<_> = buffers
            .iter_mut()
            .map(|bufs| {
                let (store, next, stop) = (&store, &next, &stop);
                s.spawn(move || -> Result<(), String> {
                    while !stop.load(Ordering::Relaxed) {
                        let f = next.fetch_add(1, Ordering::Relaxed);
                        if f >= frames {
                            break;
                        }
                        let range = f * FRAME_CHUNKS..((f + 1) * FRAME_CHUNKS).min(chunks);
                        for (k, i) in range.clone().enumerate() {
                            bufs[k][..8].copy_from_slice(&i.to_le_bytes());
                        }
                        let mut frame = Vec::with_capacity(FRAME_CHUNKS as usize);
                        let mut versions = Vec::with_capacity(FRAME_CHUNKS as usize);
                        for (k, i) in range.clone().enumerate() {
                            let raw_len = u32::try_from(chunk.min(bytes - i * chunk)).expect("at most a chunk");
                            let payload = &bufs[k][..raw_len as usize];
                            let hash: Hash = *blake3::hash(payload).as_bytes();
                            frame.push((hash, StoredChunk { compressed: false, raw_len, payload }));
                            versions.push((0, i, ChunkVersion::Data(hash)));
                        }
                        let bulk = range.end * chunk > BULK_AFTER_BYTES;
                        if let Err(e) = store.write_frame(PAIR_NO, EPOCH, &frame, &versions, bulk) {
                            stop.store(true, Ordering::Relaxed);
                            return Err(format!("writing chunks {range:?}: {e}"));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err("a writer panicked".into()))).collect::<Vec<_>>()
    });
    if let Some(e) = written.into_iter().find_map(Result::err) {
        return Err(failed("writing", &e));
    }
    store.flush().map_err(|e| failed("flushing", &e))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(BenchStoreResult {
        bytes,
        seconds,
        bytes_per_second: if seconds > 0.0 { bytes as f64 / seconds } else { 0.0 },
        chunk_size: BENCH_STORE_CHUNK_SIZE,
    })
}

/// `len` pseudo-random bytes (xorshift64*, seeded from `seed` and `n`): incompressible, and
/// cheap to make.
fn noise(seed: blake3::Hash, n: u64, len: usize) -> Vec<u8> {
    let s = seed.as_bytes();
    let mut x = (u64::from_le_bytes(s[..8].try_into().expect("8 bytes")) ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Removes scratch directories a standby left when it stopped mid-run (the caller holds the
/// claim, so none is in use).
fn remove_stale(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix(PREFIX)) else { continue };
        if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) || !e.path().is_dir() {
            continue;
        }
        tracing::warn!(dir = %e.path().display(), "store benchmark: removing the scratch directory of an earlier run");
        let _ = std::fs::remove_dir_all(e.path());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_run_at_a_time() {
        let c = claim().unwrap();
        assert!(matches!(claim(), Err(BenchError::Busy(_))));
        drop(c);
        drop(claim().unwrap());
    }

    #[test]
    fn noise_is_distinct_and_incompressible() {
        let seed = blake3::hash(b"run");
        let (a, b) = (noise(seed, 0, 65536), noise(seed, 1, 65536));
        assert_eq!(a.len(), 65536);
        assert_ne!(a, b);
        let packed = zstd::bulk::compress(&a, 3).unwrap();
        assert!(packed.len() > 65000, "compressed to {}", packed.len());
    }

    #[test]
    fn stale_scratch_directories_go() {
        let d = tempfile::tempdir().unwrap();
        for n in ["bench-0123456789abcdef", "bench-x", "store"] {
            std::fs::create_dir(d.path().join(n)).unwrap();
        }
        remove_stale(d.path());
        assert!(!d.path().join("bench-0123456789abcdef").exists());
        assert!(d.path().join("bench-x").exists() && d.path().join("store").exists());
    }
}
