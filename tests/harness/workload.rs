//! Filesystem content for the protected disk: real files copied from the system, generated
//! files, and a background write workload that is stopped (and joined) on drop.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::fs;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Copies regular files from `sources` (recursively, sorted, symlinks skipped) into `dst`
/// until about `limit` bytes were copied. Returns files and bytes copied.
pub fn copy_real_files(sources: &[&Path], dst: &Path, limit: u64) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for src in sources {
        let target = dst.join(src.strip_prefix("/").unwrap_or(src));
        copy_tree(src, &target, limit, &mut files, &mut bytes);
        if bytes >= limit {
            break;
        }
    }
    (files, bytes)
}

fn copy_tree(src: &Path, dst: &Path, limit: u64, files: &mut u64, bytes: &mut u64) {
    let Ok(rd) = fs::read_dir(src) else { return };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        if *bytes >= limit {
            return;
        }
        let Ok(ft) = e.file_type() else { continue };
        let to = dst.join(e.file_name());
        if ft.is_dir() {
            copy_tree(&e.path(), &to, limit, files, bytes);
        } else if ft.is_file() {
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            if len > 16 << 20 {
                continue;
            }
            if fs::create_dir_all(dst).is_ok() && fs::copy(e.path(), &to).is_ok() {
                *files += 1;
                *bytes += len;
            }
        }
    }
}

/// Writes a few generated files: random, zero and text.
pub fn generate_files(dir: &Path, seed: u64) {
    fs::create_dir_all(dir).expect("gen dir");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 8 << 20];
    rng.fill_bytes(&mut buf);
    fs::write(dir.join("random.bin"), &buf).expect("random.bin");
    fs::write(dir.join("zeros.bin"), vec![0u8; 8 << 20]).expect("zeros.bin");
    let text: String =
        (0..100_000).map(|i| format!("{i:08} lorem ipsum dolor sit amet {}\n", i * 7919 % 1000)).collect();
    fs::write(dir.join("text.txt"), text).expect("text.txt");
}

/// A background writer in a directory: creates files of random size and content, rewrites
/// parts of existing ones, deletes old ones, and syncs now and then. Stops on drop.
pub struct Workload {
    stop: Arc<AtomicBool>,
    ops: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

/// Files the workload keeps at most (bounds the space it uses to ~ files × 2 MiB).
const MAX_FILES: usize = 12;

impl Workload {
    pub fn start(dir: &Path, seed: u64) -> Self {
        let dir: PathBuf = dir.join(format!("workload-{seed}"));
        fs::create_dir_all(&dir).expect("workload dir");
        let stop = Arc::new(AtomicBool::new(false));
        let ops = Arc::new(AtomicU64::new(0));
        let (stop2, ops2) = (stop.clone(), ops.clone());
        let handle = std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut live: Vec<PathBuf> = vec![];
            let mut n = 0u64;
            while !stop2.load(Ordering::Relaxed) {
                let op = rng.random_range(0..10u32);
                let r = match op {
                    0..=4 => {
                        let p = dir.join(format!("f{n:06}"));
                        n += 1;
                        let mut data = vec![0u8; rng.random_range(4096..(2 << 20))];
                        rng.fill_bytes(&mut data);
                        live.push(p.clone());
                        fs::write(&p, &data)
                    }
                    5..=7 if !live.is_empty() => {
                        let p = live[rng.random_range(0..live.len())].clone();
                        (|| {
                            let mut f = fs::OpenOptions::new().write(true).open(&p)?;
                            let len = f.metadata()?.len();
                            f.seek(SeekFrom::Start(rng.random_range(0..len.max(1))))?;
                            let mut data = vec![0u8; rng.random_range(512..65536)];
                            rng.fill_bytes(&mut data);
                            f.write_all(&data)
                        })()
                    }
                    8 => {
                        // SAFETY: sync(2) takes no arguments and cannot fail.
                        unsafe { libc::sync() };
                        Ok(())
                    }
                    _ => Ok(()),
                };
                if let Err(e) = r {
                    // A full filesystem or a freeze race is not the test's subject; keep going.
                    eprintln!("workload: {e}");
                    std::thread::sleep(Duration::from_millis(50));
                }
                while live.len() > MAX_FILES {
                    let p = live.remove(0);
                    let _ = fs::remove_file(p);
                }
                ops2.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(15));
            }
        });
        Self { stop, ops, handle: Some(handle) }
    }

    /// Operations done so far.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::Relaxed)
    }

    /// Stops the writer and waits for it; returns the operations it did.
    pub fn stop(mut self) -> u64 {
        self.halt();
        self.ops()
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.halt();
    }
}
