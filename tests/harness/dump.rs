//! Helpers for the third-party dump workflow tests: the workflow's API calls, and a writer
//! that keeps changing a device (logging when it wrote where) while the workflow runs.

use crate::lifecycle::action;
use crate::{Api, Reply, step};
use drpair_types::{DumpStatus, DumpStep, PairState, PairStatus};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{Value, json};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes a writer writes at a time (O_DIRECT).
pub const BLOCK: u64 = 4096;

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// The pair's dump status; panics with the status when there is none.
pub fn dump_status(s: &PairStatus) -> &DumpStatus {
    s.dump.as_ref().unwrap_or_else(|| panic!("pair {} has no dump status: {s:?}", s.pair_id))
}

/// Asserts the pair's state and dump step.
pub fn expect_step(api: &Api, pair: &str, state: PairState, dump: DumpStep) -> PairStatus {
    let s = api.status(pair);
    assert_eq!(s.state, state, "{}", s.state_explanation);
    assert_eq!(dump_status(&s).step, dump, "{:?}", dump_status(&s).events);
    s
}

/// `POST …/markers/dump`.
pub fn mark(api: &Api, pair: &str, body: &Value) -> Reply {
    action(api, pair, "markers/dump", body)
}

/// `POST …/dump/load` for `disk` from `image`.
pub fn load(api: &Api, pair: &str, disk: u32, image: &Path) -> Reply {
    action(api, pair, "dump/load", &json!({"disk": disk, "image": image.display().to_string()}))
}

/// A thread writing random 4 KiB blocks with O_DIRECT into `path` (a device) every few
/// milliseconds, logging (time ms before the write, byte offset).
pub struct Writer {
    stop: Arc<AtomicBool>,
    pub log: Arc<Mutex<Vec<(u64, u64)>>>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    /// Writes `per_second` blocks a second inside `0..len` of `path`.
    pub fn start(path: &Path, len: u64, per_second: u64, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (s, l, p): (_, _, PathBuf) = (stop.clone(), log.clone(), path.to_path_buf());
        let handle = std::thread::spawn(move || {
            let f = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&p).expect("open O_DIRECT");
            let mut rng = StdRng::seed_from_u64(seed);
            let layout = std::alloc::Layout::from_size_align(BLOCK as usize, 4096).expect("layout");
            // SAFETY: non-zero size; freed below.
            let ptr = unsafe { std::alloc::alloc(layout) };
            // SAFETY: ptr is valid for BLOCK bytes.
            let buf = unsafe { std::slice::from_raw_parts_mut(ptr, BLOCK as usize) };
            let pause = Duration::from_micros(1_000_000 / per_second.max(1));
            while !s.load(Ordering::Relaxed) {
                rng.fill_bytes(buf);
                let off = rng.random_range(0..len / BLOCK) * BLOCK;
                let t = now_ms();
                f.write_all_at(buf, off).expect("O_DIRECT write");
                l.lock().expect("log").push((t, off));
                std::thread::sleep(pause);
            }
            f.sync_all().expect("fsync");
            // SAFETY: allocated above with this layout.
            unsafe { std::alloc::dealloc(ptr, layout) };
        });
        Self { stop, log, handle: Some(handle) }
    }

    /// Stops and returns the log.
    pub fn stop(mut self) -> Vec<(u64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.join().expect("writer thread");
        }
        let log = self.log.lock().expect("log").clone();
        step(format!("writer stopped after {} writes", log.len()));
        log
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Chunk indexes where two files differ (both `chunk_size`-aligned reads).
pub fn differing_chunks(a: &Path, b: &Path, chunk_size: u64) -> Vec<u64> {
    let (fa, fb) = (std::fs::File::open(a).expect("open a"), std::fs::File::open(b).expect("open b"));
    let len = fa.metadata().expect("len").len().max(crate::image::file_len(b));
    let (mut ba, mut bb) = (vec![0u8; chunk_size as usize], vec![0u8; chunk_size as usize]);
    let mut out = vec![];
    for c in 0..len.div_ceil(chunk_size) {
        let na = fa.read_at(&mut ba, c * chunk_size).unwrap_or(0);
        let nb = fb.read_at(&mut bb, c * chunk_size).unwrap_or(0);
        if ba[..na] != bb[..nb] {
            out.push(c);
        }
    }
    out
}
