//! Proof tools for change tracking: per-block fingerprints of an image, the check that every
//! block that changed is covered by a tracked chunk, and a seeded workload that exercises
//! every write path a filesystem and a raw user of the disk have.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// Granularity of the proof: a filesystem block.
pub const BLOCK: u64 = 4096;

/// blake3 of every 4 KiB block of a file or device (read through O_DIRECT for a device, so
/// no stale page cache is compared).
pub fn block_hashes(path: &Path) -> Vec<[u8; 32]> {
    let direct = std::fs::metadata(path).map(|m| !m.is_file()).unwrap_or(false);
    let mut opts = OpenOptions::new();
    opts.read(true);
    if direct {
        opts.custom_flags(libc::O_DIRECT);
    }
    let mut f = opts.open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut buf = AlignedBuf::new(1 << 20);
    let mut out = Vec::new();
    loop {
        let n = read_full(&mut f, buf.as_mut());
        if n == 0 {
            break;
        }
        for b in buf.as_mut()[..n].chunks(BLOCK as usize) {
            out.push(*blake3::hash(b).as_bytes());
        }
    }
    out
}

fn read_full(f: &mut File, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]).expect("read") {
            0 => break,
            k => n += k,
        }
    }
    n
}

/// Blocks whose content differs between two fingerprints of one image.
pub fn changed_blocks(before: &[[u8; 32]], after: &[[u8; 32]]) -> Vec<u64> {
    assert_eq!(before.len(), after.len(), "images of different sizes");
    (0..before.len() as u64).filter(|&i| before[i as usize] != after[i as usize]).collect()
}

/// Changed blocks that no tracked chunk covers: a non-empty answer means a missed write.
pub fn uncovered_blocks(changed: &[u64], tracked_chunks: &BTreeSet<u64>, chunk_size: u64) -> Vec<u64> {
    changed.iter().copied().filter(|b| !tracked_chunks.contains(&(b * BLOCK / chunk_size))).collect()
}

/// Chunks of disk 0 the standby received after point `since` up to point `point`
/// (`GET …/points/{point}/changes?since=`).
pub fn tracked_chunks(api: &crate::Api, pair: &str, point: u64, since: u64) -> BTreeSet<u64> {
    let r = api.get(&format!("/api/v1/pairs/{pair}/points/{point}/changes?since={since}"));
    assert_eq!(r.status, 200, "changes: {}", r.text());
    let j = r.json();
    let mut out = BTreeSet::new();
    for run in j["disks"][0]["runs"].as_array().expect("runs") {
        let (first, count) = (run[0].as_u64().expect("first"), run[1].as_u64().expect("count"));
        out.extend(first..first + count);
    }
    out
}

/// A page-aligned buffer for O_DIRECT.
pub struct AlignedBuf {
    ptr: *mut u8,
    len: usize,
}

impl AlignedBuf {
    pub fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: the layout has a non-zero size; the memory is freed in Drop with it.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "allocation failed");
        Self { ptr, len }
    }

    pub fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr points to len initialised bytes owned by self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len, 4096).expect("layout");
        // SAFETY: allocated in new with this layout.
        unsafe { std::alloc::dealloc(self.ptr, layout) }
    }
}

/// Writes `blocks` random 4 KiB blocks with O_DIRECT at random block offsets inside
/// `offset..offset + len` of `path` (a device or a file); returns the offsets written.
pub fn direct_writes(path: &Path, offset: u64, len: u64, blocks: u64, rng: &mut StdRng) -> Vec<u64> {
    let f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} O_DIRECT: {e}", path.display()));
    let mut buf = AlignedBuf::new(BLOCK as usize);
    let mut offs = Vec::new();
    for _ in 0..blocks {
        rng.fill_bytes(buf.as_mut());
        let off = offset + rng.random_range(0..len / BLOCK) * BLOCK;
        f.write_all_at(buf.as_mut(), off).expect("O_DIRECT write");
        offs.push(off);
    }
    f.sync_all().expect("fsync");
    offs
}

fn fallocate(f: &File, mode: i32, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: plain syscall on an open descriptor.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), mode, offset as i64, len as i64) };
    assert_eq!(r, 0, "fallocate mode {mode:#x}: {}", std::io::Error::last_os_error());
}

/// What [`every_write_path`] did, for the test's log.
#[derive(Debug, Default)]
pub struct PathsDone {
    pub files_fsynced: u64,
    pub direct_blocks: u64,
    pub unaligned_writes: u64,
    pub punched: u64,
    pub zeroed_ranges: u64,
    pub deleted: u64,
    pub raw_direct: u64,
    pub raw_discards: u64,
    pub raw_zeroouts: u64,
}

/// One seeded round of every write path: on the filesystem mounted at `dir` — new files
/// written and fsynced, O_DIRECT writes into a file, unaligned buffered rewrites with fsync,
/// punch-hole, zero-range, deletes followed by fstrim — and on the raw region
/// `raw_offset..raw_offset + raw_len` of `dev` (outside the filesystem): O_DIRECT writes,
/// discard and write-zeroes.
pub fn every_write_path(dir: &Path, dev: &Path, raw_offset: u64, raw_len: u64, seed: u64) -> PathsDone {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut done = PathsDone::default();
    let round = dir.join(format!("round-{seed}"));
    std::fs::create_dir_all(&round).expect("mkdir");
    // New files, fsynced.
    for i in 0..24 {
        let len = rng.random_range(1..(2 << 20));
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        let p = round.join(format!("file-{i}"));
        let f = File::create(&p).expect("create");
        f.write_all_at(&data, 0).expect("write");
        f.sync_all().expect("fsync");
        done.files_fsynced += 1;
    }
    // O_DIRECT into a preallocated file.
    let direct = round.join("direct.bin");
    {
        let f = File::create(&direct).expect("create");
        f.set_len(8 << 20).expect("size");
        f.sync_all().expect("fsync");
    }
    done.direct_blocks = direct_writes(&direct, 0, 8 << 20, 300, &mut rng).len() as u64;
    // Unaligned buffered rewrites of existing files.
    for _ in 0..200 {
        let p = round.join(format!("file-{}", rng.random_range(0..24)));
        let f = OpenOptions::new().write(true).open(&p).expect("open");
        let size = f.metadata().expect("metadata").len();
        let len = rng.random_range(1..3000);
        let off = rng.random_range(0..size.max(1));
        let mut data = vec![0u8; len];
        rng.fill_bytes(&mut data);
        f.write_all_at(&data, off).expect("unaligned write");
        f.sync_data().expect("fdatasync");
        done.unaligned_writes += 1;
    }
    // Punch holes and zero ranges in files.
    for i in 0..6 {
        let f = OpenOptions::new().write(true).open(round.join(format!("file-{i}"))).expect("open");
        let size = f.metadata().expect("metadata").len();
        if size < 64 << 10 {
            continue;
        }
        let off = rng.random_range(0..size / 2) & !4095;
        if i % 2 == 0 {
            fallocate(&f, libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE, off, 32 << 10);
            done.punched += 1;
        } else {
            fallocate(&f, libc::FALLOC_FL_ZERO_RANGE, off, 32 << 10);
            done.zeroed_ranges += 1;
        }
        f.sync_all().expect("fsync");
    }
    // Deletes, then fstrim discards the freed blocks.
    for i in 12..24 {
        std::fs::remove_file(round.join(format!("file-{i}"))).expect("rm");
        done.deleted += 1;
    }
    crate::sh("sync", &["-f", &round.display().to_string()]);
    crate::sh("fstrim", &[&dir.display().to_string()]);
    // The raw region: O_DIRECT writes, a discard and a write-zeroes.
    done.raw_direct = direct_writes(dev, raw_offset, raw_len, 400, &mut rng).len() as u64;
    for zero in [false, true] {
        let off = raw_offset + rng.random_range(0..raw_len / (1 << 20) - 2) * (1 << 20);
        range_ioctl(dev, if zero { BLKZEROOUT } else { BLKDISCARD }, off, 1 << 20);
        if zero {
            done.raw_zeroouts += 1;
        } else {
            done.raw_discards += 1;
        }
    }
    done
}

/// `_IO(0x12, 119)`: discard a byte range of a block device.
pub const BLKDISCARD: libc::c_ulong = 0x1277;
/// `_IO(0x12, 127)`: write zeroes to a byte range of a block device.
pub const BLKZEROOUT: libc::c_ulong = 0x127f;

/// Discards or zeroes `len` bytes at `offset` of a block device. Issued directly (not with
/// `blkdiscard`, which opens the device exclusively and so refuses while a filesystem on
/// another part of it is mounted).
pub fn range_ioctl(dev: &Path, request: libc::c_ulong, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let f = OpenOptions::new().write(true).open(dev).expect("open device");
    let range: [u64; 2] = [offset, len];
    // SAFETY: the request takes a pointer to two u64 (start, length) that outlive the call.
    let r = unsafe { libc::ioctl(f.as_raw_fd(), request, range.as_ptr()) };
    assert_eq!(r, 0, "ioctl {request:#x} on {}: {}", dev.display(), std::io::Error::last_os_error());
}

/// The tracefs instance an agent of `pair` creates; removed on drop (an agent that stops
/// cleanly leaves it recording on purpose).
pub struct TraceInstance {
    pub dir: std::path::PathBuf,
}

impl TraceInstance {
    pub fn of_pair(pair: &str) -> Self {
        Self::named(&format!("drpair-{pair}"))
    }

    pub fn named(name: &str) -> Self {
        let dir = Path::new("/sys/kernel/tracing/instances").join(name);
        // A leftover from an earlier, interrupted run would be adopted or replaced; start clean.
        let _ = std::fs::remove_dir(&dir);
        Self { dir }
    }

    pub fn exists(&self) -> bool {
        self.dir.exists()
    }

    /// Removes the instance now (as a reboot would).
    pub fn remove(&self) {
        for _ in 0..50 {
            if !self.dir.exists() || std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("cannot remove {}", self.dir.display());
    }
}

impl Drop for TraceInstance {
    fn drop(&mut self) {
        for _ in 0..50 {
            if !self.dir.exists() || std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        eprintln!("warning: could not remove {}", self.dir.display());
    }
}

/// Fills `offset..offset + len` of `path` with seeded random bytes (so that a discard or a
/// write-zeroes there changes the content).
pub fn fill_random(path: &Path, offset: u64, len: u64, seed: u64) {
    let f = OpenOptions::new().write(true).open(path).expect("open");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; 1 << 20];
    let mut off = offset;
    while off < offset + len {
        let n = (offset + len - off).min(buf.len() as u64) as usize;
        rng.fill_bytes(&mut buf[..n]);
        f.write_all_at(&buf[..n], off).expect("fill");
        off += n as u64;
    }
    f.sync_all().expect("fsync");
}
