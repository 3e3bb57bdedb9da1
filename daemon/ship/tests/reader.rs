//! The reader returns exactly the bytes of the requested chunks, through both engines, from
//! image files (O_DIRECT and buffered) and from a real loop device; refuses requests beyond
//! the disk; blocks submitters instead of growing memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use drpair_ship::{Engine, ReadError, ReadRequest, Reader, ReaderConfig, disk_size, open_disk};
use drpair_types::{ChunkSize, DiskGeometry};
use rand::{Rng, RngCore, SeedableRng};

const ODD_SIZE: usize = (10 << 20) + 1234;

fn random_file(dir: &Path, size: usize, seed: u64) -> (tempfile::NamedTempFile, Vec<u8>) {
    let mut data = vec![0u8; size];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    let mut f = tempfile::NamedTempFile::new_in(dir).unwrap();
    f.write_all(&data).unwrap();
    f.flush().unwrap();
    (f, data)
}

fn geometry(size: u64) -> DiskGeometry {
    DiskGeometry::new(size, ChunkSize::new(64 << 10).unwrap()).unwrap()
}

/// Random runs (including the short last chunk and runs larger than one buffer) through
/// `engine`; every block must equal the file's bytes and each request must be covered exactly.
fn random_runs_match(path: &Path, data: &[u8], engine: Engine, cfg: ReaderConfig) -> Engine {
    let g = geometry(data.len() as u64);
    let reader = Reader::spawn(vec![(path.to_path_buf(), g)], ReaderConfig { engine, ..cfg }).unwrap();
    let chunks = g.chunk_count();
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut requests: Vec<ReadRequest> = (0..300u64)
        .map(|tag| {
            let count = rng.random_range(1..=40u32).min(chunks as u32);
            let first = rng.random_range(0..=chunks - count as u64);
            ReadRequest { disk: 0, first_chunk: first, chunk_count: count, tag }
        })
        .collect();
    // Always include the tail and the whole disk.
    requests.push(ReadRequest { disk: 0, first_chunk: chunks - 1, chunk_count: 1, tag: 1000 });
    requests.push(ReadRequest { disk: 0, first_chunk: 0, chunk_count: chunks as u32, tag: 1001 });

    let mut covered: HashMap<u64, Vec<(u64, u32)>> = HashMap::new();
    std::thread::scope(|s| {
        let reader = &reader;
        let reqs = &requests;
        s.spawn(move || {
            for r in reqs {
                reader.submit(*r).unwrap();
            }
        });
        let expected_chunks: u64 = requests.iter().map(|r| r.chunk_count as u64).sum();
        let mut seen = 0u64;
        while seen < expected_chunks {
            let block = reader.completions().recv_timeout(Duration::from_secs(30)).expect("completion").unwrap();
            let off = g.chunk_offset(block.first_chunk) as usize;
            let end = (g.chunk_offset(block.first_chunk + block.chunk_count as u64) as usize).min(data.len());
            assert_eq!(block.buf.len(), end - off, "block {:?}", (block.first_chunk, block.chunk_count));
            assert!(
                block.buf[..] == data[off..end],
                "bytes differ at chunks {}+{}",
                block.first_chunk,
                block.chunk_count
            );
            assert_eq!(block.buf.as_ptr() as usize % 4096, 0);
            for (i, c) in block.chunks() {
                assert_eq!(c.len(), g.chunk_len(i) as usize);
            }
            covered.entry(block.tag).or_default().push((block.first_chunk, block.chunk_count));
            seen += block.chunk_count as u64;
        }
    });
    for r in &requests {
        let mut parts = covered.remove(&r.tag).unwrap_or_default();
        parts.sort();
        let mut next = r.first_chunk;
        for (first, count) in parts {
            assert_eq!(first, next, "tag {} covered with a gap or overlap", r.tag);
            next += count as u64;
        }
        assert_eq!(next, r.first_chunk + r.chunk_count as u64, "tag {}", r.tag);
    }
    assert!(reader.allocated_buffers() <= cfg.buffers);
    let used = reader.engine();
    let stats = reader.finish().unwrap();
    assert_eq!(stats.errors, 0);
    used
}

#[test]
fn odd_sized_image_both_engines() {
    let dir = tempfile::tempdir().unwrap();
    let (f, data) = random_file(dir.path(), ODD_SIZE, 1);
    assert!(open_disk(f.path()).unwrap().direct, "ext4 /tmp supports O_DIRECT");
    let cfg = ReaderConfig { buffers: 8, ..Default::default() };
    assert_eq!(random_runs_match(f.path(), &data, Engine::IoUring, cfg), Engine::IoUring);
    assert_eq!(random_runs_match(f.path(), &data, Engine::Pread, cfg), Engine::Pread);
    // Small buffers: every run is split into single chunks.
    let tiny = ReaderConfig { buffers: 3, queue_depth: 2, max_read_bytes: 4096, ..Default::default() };
    random_runs_match(f.path(), &data, Engine::IoUring, tiny);
}

/// A ramfs mounted on a temporary directory (refuses O_DIRECT); unmounted on drop.
struct Ramfs(tempfile::TempDir);

impl Ramfs {
    fn mount() -> Result<Ramfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "ramfs", "drpair-test"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount unavailable: {e}"))?;
        if !out.status.success() {
            return Err(format!("cannot mount ramfs: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(Ramfs(dir))
    }
}

impl Drop for Ramfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn odd_sized_image_buffered_where_o_direct_is_refused() {
    let ramfs = match Ramfs::mount() {
        Ok(r) => r,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    let (f, data) = random_file(ramfs.0.path(), ODD_SIZE, 2);
    assert!(!open_disk(f.path()).unwrap().direct, "ramfs refuses O_DIRECT");
    random_runs_match(f.path(), &data, Engine::IoUring, ReaderConfig::default());
    random_runs_match(f.path(), &data, Engine::Pread, ReaderConfig::default());
    drop(f);
}

#[test]
fn odd_sized_image_on_tmpfs() {
    // tmpfs takes O_DIRECT since Linux 6.6, refuses it before: either way the bytes match.
    let shm = Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("skipped: no /dev/shm");
        return;
    }
    let (f, data) = random_file(shm, ODD_SIZE, 10);
    random_runs_match(f.path(), &data, Engine::IoUring, ReaderConfig::default());
}

/// A loop device, detached on drop (also when the test fails).
struct LoopDevice(PathBuf);

impl LoopDevice {
    fn attach(file: &Path) -> Result<LoopDevice, String> {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(file)
            .output()
            .map_err(|e| format!("losetup unavailable: {e}"))?;
        if !out.status.success() {
            return Err(format!("losetup failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
        Ok(LoopDevice(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())))
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.0).status();
    }
}

#[test]
fn odd_sized_image_through_loop_device() {
    let dir = tempfile::tempdir().unwrap();
    let (f, data) = random_file(dir.path(), ODD_SIZE, 3);
    let dev = match LoopDevice::attach(f.path()) {
        Ok(dev) => dev,
        Err(reason) => {
            eprintln!("skipped: {reason}");
            return;
        }
    };
    // A loop device exposes whole 512-byte sectors: the 1234-byte tail becomes 1024.
    let size = disk_size(&dev.0).unwrap();
    assert_eq!(size, (ODD_SIZE / 512 * 512) as u64, "BLKGETSIZE64 of {}", dev.0.display());
    let d = open_disk(&dev.0).unwrap();
    assert!(d.direct && d.size == size);
    drop(d);
    let data = &data[..size as usize];
    assert_eq!(random_runs_match(&dev.0, data, Engine::IoUring, ReaderConfig::default()), Engine::IoUring);
    random_runs_match(&dev.0, data, Engine::Pread, ReaderConfig::default());
}

#[test]
fn request_beyond_disk_end_is_refused_naming_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (f, data) = random_file(dir.path(), 300_000, 4);
    let g = geometry(data.len() as u64);
    let reader = Reader::spawn(vec![(f.path().into(), g)], ReaderConfig::default()).unwrap();
    let chunks = g.chunk_count(); // 5
    let path = f.path().display().to_string();
    for (first, count) in [(chunks, 1), (chunks - 2, 3), (u64::MAX, 2)] {
        let e = reader.submit(ReadRequest { disk: 0, first_chunk: first, chunk_count: count, tag: 7 }).unwrap_err();
        assert!(matches!(e, ReadError::OutOfRange { disk: 0, .. }), "{e}");
        let m = e.to_string();
        assert!(m.contains("disk 0") && m.contains(&path) && m.contains("beyond the disk end"), "{m}");
    }
    let e = reader.submit(ReadRequest { disk: 1, first_chunk: 0, chunk_count: 1, tag: 0 }).unwrap_err();
    assert_eq!(e.to_string(), "no disk 1: this reader has 1 disk(s)");
    let e = reader.submit(ReadRequest { disk: 0, first_chunk: 0, chunk_count: 0, tag: 0 }).unwrap_err();
    assert!(matches!(e, ReadError::EmptyRequest { .. }), "{e}");
    // Nothing was queued.
    assert!(reader.completions().recv_timeout(Duration::from_millis(100)).is_err());
    assert_eq!(reader.finish().unwrap().reads, 0);
}

#[test]
fn disk_that_shrank_gives_an_error_naming_disk_and_offset() {
    for engine in [Engine::IoUring, Engine::Pread] {
        let dir = tempfile::tempdir().unwrap();
        let (f, data) = random_file(dir.path(), 1 << 20, 5);
        let g = geometry(data.len() as u64);
        let reader = Reader::spawn(vec![(f.path().into(), g)], ReaderConfig { engine, ..Default::default() }).unwrap();
        f.as_file().set_len(200_000).unwrap();
        reader.submit(ReadRequest { disk: 0, first_chunk: 2, chunk_count: 4, tag: 9 }).unwrap();
        let e = reader.completions().recv_timeout(Duration::from_secs(10)).unwrap().unwrap_err();
        let m = e.to_string();
        // Chunk 2 starts at 131072; the disk now ends at 200000: the read gets up to there,
        // then hits the end of the disk.
        assert!(matches!(e, ReadError::UnexpectedEof { disk: 0, tag: 9, offset: 200_000, .. }), "{m}");
        assert!(m.contains(&f.path().display().to_string()) && m.contains("offset 200000"), "{engine:?}: {m}");
        assert_eq!(e.tag(), Some(9));
        assert_eq!(reader.finish().unwrap().errors, 1);
    }
}

#[test]
fn multiple_disks_with_different_chunk_sizes() {
    let dir = tempfile::tempdir().unwrap();
    let (a, da) = random_file(dir.path(), 100_000, 6);
    let (b, db) = random_file(dir.path(), 5 << 20, 7);
    let ga = DiskGeometry::new(da.len() as u64, ChunkSize::new(4096).unwrap()).unwrap();
    let gb = DiskGeometry::new(db.len() as u64, ChunkSize::new(4 << 20).unwrap()).unwrap();
    let reader = Reader::spawn(vec![(a.path().into(), ga), (b.path().into(), gb)], ReaderConfig::default()).unwrap();
    // Buffers grow to the largest chunk size; a 4 MiB chunk is one block.
    assert_eq!(reader.buffer_bytes(), 4 << 20);
    assert_eq!(reader.chunks_per_block(0), Some(1024));
    assert_eq!(reader.chunks_per_block(1), Some(1));
    reader.submit(ReadRequest { disk: 1, first_chunk: 0, chunk_count: 2, tag: 1 }).unwrap();
    reader.submit(ReadRequest { disk: 0, first_chunk: 0, chunk_count: ga.chunk_count() as u32, tag: 2 }).unwrap();
    let mut got = 0;
    while got < 3 {
        let block = reader.completions().recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
        let (g, data) = if block.disk == 0 { (ga, &da) } else { (gb, &db) };
        let off = g.chunk_offset(block.first_chunk) as usize;
        assert!(block.buf[..] == data[off..off + block.buf.len()]);
        assert_eq!(
            block.buf.len() as u64,
            (g.chunk_offset(block.first_chunk + block.chunk_count as u64)).min(g.size_bytes) - off as u64
        );
        got += 1;
    }
}

#[test]
fn submit_blocks_when_all_buffers_are_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let (f, data) = random_file(dir.path(), 1 << 20, 8);
    let g = geometry(data.len() as u64);
    let cfg = ReaderConfig { buffers: 2, max_read_bytes: 64 << 10, ..Default::default() };
    let reader = Reader::spawn(vec![(f.path().into(), g)], cfg).unwrap();
    let submitted = std::sync::atomic::AtomicU32::new(0);
    std::thread::scope(|s| {
        let (reader, submitted) = (&reader, &submitted);
        let submitter = s.spawn(move || {
            for i in 0..6u64 {
                reader.submit(ReadRequest { disk: 0, first_chunk: i, chunk_count: 1, tag: i }).unwrap();
                submitted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        });
        // No consumer: two buffers, two submissions, then the third blocks.
        std::thread::sleep(Duration::from_millis(500));
        assert_eq!(submitted.load(std::sync::atomic::Ordering::SeqCst), 2, "submit must block, not queue more");
        assert!(!submitter.is_finished());
        assert_eq!(reader.allocated_buffers(), 2);
        assert_eq!(reader.completions().len(), 2, "both reads completed and wait for a consumer");
        // Consuming frees buffers and lets the submitter go on.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut got = 0;
        while got < 6 {
            let b = reader.completions().recv_deadline(deadline).expect("completions flow once consumed").unwrap();
            assert!(b.buf[..] == data[b.first_chunk as usize * 65536..][..65536]);
            got += 1;
        }
        submitter.join().unwrap();
    });
    assert_eq!(reader.allocated_buffers(), 2, "buffers were recycled, never more than 2");
}

#[test]
fn finish_drains_in_flight_and_completions_stay_readable() {
    let dir = tempfile::tempdir().unwrap();
    let (f, data) = random_file(dir.path(), 4 << 20, 9);
    let g = geometry(data.len() as u64);
    let reader = Reader::spawn(vec![(f.path().into(), g)], ReaderConfig::default()).unwrap();
    let rx = reader.completions().clone();
    reader.submit(ReadRequest { disk: 0, first_chunk: 0, chunk_count: 64, tag: 0 }).unwrap();
    let stats = reader.finish().unwrap();
    assert_eq!(stats.bytes, data.len() as u64);
    let total: usize = rx.iter().map(|b| b.unwrap().buf.len()).sum();
    assert_eq!(total, data.len());
    // Dropping a reader with work queued does not hang either.
    let reader = Reader::spawn(vec![(f.path().into(), g)], ReaderConfig::default()).unwrap();
    reader.submit(ReadRequest { disk: 0, first_chunk: 0, chunk_count: 64, tag: 0 }).unwrap();
    drop(reader);
}

/// Ad-hoc measurement, not a test:
/// `DRPAIR_BENCH_DIR=/var/tmp cargo test --release -p drpair-ship --test reader -- --ignored --nocapture measure`
/// Reads a 1 GiB file sequentially in 1 MiB blocks after dropping the page cache.
#[test]
#[ignore]
fn measure_engines() {
    let dir = std::env::var("DRPAIR_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    let size: usize = std::env::var("DRPAIR_BENCH_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(1024) << 20;
    let path = Path::new(&dir).join("drpair-ship-bench.img");
    if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(size as u64) {
        let mut f = std::fs::File::create(&path).unwrap();
        let mut rng = rand::rngs::StdRng::seed_from_u64(0);
        let mut buf = vec![0u8; 1 << 20];
        for _ in 0..size >> 20 {
            rng.fill_bytes(&mut buf);
            f.write_all(&buf).unwrap();
        }
        f.sync_all().unwrap();
    }
    let g = geometry(size as u64);
    #[rustfmt::skip]
    let runs = [
        (Engine::IoUring, 16, 1 << 20), (Engine::Pread, 1, 1 << 20), (Engine::IoUring, 1, 1 << 20),
        (Engine::IoUring, 4, 1 << 20), (Engine::IoUring, 32, 1 << 20),
        (Engine::IoUring, 16, 64 << 10), (Engine::Pread, 1, 64 << 10),
    ];
    for (engine, qd, max_read_bytes) in runs {
        std::fs::write("/proc/sys/vm/drop_caches", "3").expect("drop caches (needs root)");
        let cfg = ReaderConfig { engine, queue_depth: qd, max_read_bytes, ..Default::default() };
        let reader = Reader::spawn(vec![(path.clone(), g)], cfg).unwrap();
        let per = reader.chunks_per_block(0).unwrap();
        let t = Instant::now();
        let mut bytes = 0usize;
        std::thread::scope(|s| {
            let r = &reader;
            s.spawn(move || {
                let mut first = 0;
                while first < g.chunk_count() {
                    let n = per.min((g.chunk_count() - first) as u32);
                    r.submit(ReadRequest { disk: 0, first_chunk: first, chunk_count: n, tag: 0 }).unwrap();
                    first += n as u64;
                }
            });
            while bytes < size {
                bytes += r.completions().recv().unwrap().unwrap().buf.len();
            }
        });
        let secs = t.elapsed().as_secs_f64();
        println!(
            "{:?} qd {qd} reads of {} KiB, O_DIRECT {}: {:.0} MB/s ({:.2} s)",
            reader.engine(),
            max_read_bytes >> 10,
            reader.is_direct(0).unwrap(),
            bytes as f64 / secs / 1e6,
            secs
        );
    }
}
