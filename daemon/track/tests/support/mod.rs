//! Helpers for the kernel tests: loop devices over sparse files and their partitions, direct
//! and buffered I/O, and a fixture that cleans everything up even when a test panics.
//!
//! These tests need root, tracefs mounted at /sys/kernel/tracing and `losetup`; they fail
//! (never skip) without them. Loop devices are shared with other work on the machine: each
//! test takes free ones with `losetup -f --show` and detaches exactly those.

#![allow(dead_code)]

use drpair_track::{ChangeMap, TracefsConfig, TracefsTracker};
use drpair_types::{ChunkSize, DiskGeometry, Lineage};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TRACEFS: &str = "/sys/kernel/tracing";
pub const KIB: u64 = 1024;
pub const MIB: u64 = 1024 * 1024;
pub const CHUNK: u64 = 64 * KIB;

/// Fails the test when the machine cannot run it.
pub fn require_kernel_support() {
    assert!(
        Path::new(TRACEFS).join("instances").is_dir(),
        "tracefs is not mounted at {TRACEFS} (mount -t tracefs nodev {TRACEFS}); these tests need it"
    );
    let losetup = Command::new("losetup").arg("--version").output();
    assert!(matches!(losetup, Ok(o) if o.status.success()), "losetup is missing; these tests need it");
}

/// Runs a command, panicking with its output when it fails; returns its stdout.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A loop device attached by this test; detached on drop.
#[derive(Debug)]
pub struct LoopDev {
    pub path: PathBuf,
}

/// `losetup -f` races with other attachers: serialize ours and retry.
static LOSETUP: Mutex<()> = Mutex::new(());

impl LoopDev {
    /// Attaches a free loop device over `file` (`-P`: scan partitions).
    pub fn attach(file: &Path, partitions: bool) -> Self {
        let _guard = LOSETUP.lock().unwrap_or_else(|e| e.into_inner());
        let file = file.to_str().unwrap();
        let mut args = vec!["-f", "--show"];
        if partitions {
            args.push("-P");
        }
        args.push(file);
        let mut last = String::new();
        for _ in 0..10 {
            let out = Command::new("losetup").args(&args).output().expect("losetup");
            if out.status.success() {
                let path = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                wait_for(&path);
                return Self { path };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("losetup -f --show {file} failed: {last}");
    }

    /// Adds partition `n` of `sectors` sectors from sector `start` with the BLKPG ioctl
    /// (`addpart`; the device must be attached with `-P`) and returns its device node. The
    /// test kernel has no partition-table parsers, so a table written to the file would not
    /// be read; the partition the kernel makes is the same either way.
    pub fn add_partition(&self, n: u32, start: u64, sectors: u64) -> PathBuf {
        let dev = self.path.to_str().unwrap();
        run("addpart", &[dev, &n.to_string(), &start.to_string(), &sectors.to_string()]);
        let p = PathBuf::from(format!("{dev}p{n}"));
        wait_for(&p);
        p
    }

    /// A queue limit of the device (`/sys/block/loopN/queue/<name>`).
    pub fn queue_limit(&self, name: &str) -> u64 {
        let dev = self.path.file_name().unwrap().to_str().unwrap();
        let text = std::fs::read_to_string(format!("/sys/block/{dev}/queue/{name}")).unwrap();
        text.trim().parse().unwrap()
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let ok = Command::new("losetup").arg("-d").arg(&self.path).status().map(|s| s.success());
        if !matches!(ok, Ok(true)) {
            eprintln!("warning: losetup -d {} failed", self.path.display());
        }
    }
}

fn wait_for(path: &Path) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !path.exists() {
        assert!(Instant::now() < deadline, "{} did not appear", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A sparse backing file of `size` bytes.
pub fn backing_file(dir: &Path, name: &str, size: u64) -> PathBuf {
    let path = dir.join(name);
    File::create(&path).unwrap().set_len(size).unwrap();
    path
}

/// A buffer of `len` bytes aligned to 4096 for O_DIRECT.
pub struct Aligned {
    storage: Vec<u8>,
    start: usize,
    len: usize,
}

impl Aligned {
    pub fn new(len: usize, fill: u8) -> Self {
        let storage = vec![fill; len + 4096];
        let start = storage.as_ptr().align_offset(4096);
        Self { storage, start, len }
    }
    pub fn bytes(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

pub fn open_direct(dev: &Path, write: bool) -> File {
    OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_DIRECT)
        .open(dev)
        .unwrap_or_else(|e| panic!("{}: {e}", dev.display()))
}

/// An O_DIRECT write of `len` bytes at `offset` (both multiples of 4096); returns after the
/// request completed.
pub fn write_direct(dev: &Path, offset: u64, len: usize) {
    let buf = Aligned::new(len, 0xa5);
    open_direct(dev, true).write_all_at(buf.bytes(), offset).unwrap();
}

pub fn read_direct(dev: &Path, offset: u64, len: usize) {
    let mut buf = Aligned::new(len, 0);
    open_direct(dev, false).read_exact_at(buf.bytes_mut(), offset).unwrap();
}

/// A write through the page cache, then fsync.
pub fn write_buffered(dev: &Path, offset: u64, len: usize) {
    let f = OpenOptions::new().write(true).open(dev).unwrap();
    f.write_all_at(&vec![0x5a; len], offset).unwrap();
    f.sync_all().unwrap();
}

pub fn device_size(dev: &Path) -> u64 {
    use std::io::{Seek, SeekFrom};
    File::open(dev).unwrap().seek(SeekFrom::End(0)).unwrap()
}

/// One test's world: a temp dir, the tracker config, and removal of the tracefs instance and
/// state file when dropped. Tests declare it first, so it is dropped last: after the tracker
/// closed its pipes and the loop devices were detached, also when the test panics.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub cfg: TracefsConfig,
}

impl Fixture {
    pub fn new(test: &str) -> Self {
        require_kernel_support();
        let dir = tempfile::tempdir().unwrap();
        let cfg = TracefsConfig {
            instance: format!("drpair-test-{}-{test}", std::process::id()),
            disks: Vec::new(),
            buffer_kib: 1024,
            state_file: dir.path().join("tracefs.state"),
            tracefs_root: PathBuf::from(TRACEFS),
            poll_interval: Duration::from_millis(20),
        };
        Self { dir, cfg }
    }

    pub fn instance_dir(&self) -> PathBuf {
        self.cfg.tracefs_root.join("instances").join(&self.cfg.instance)
    }

    /// A change map per disk of the config, sized like the device, 64 KiB chunks, all clean.
    pub fn maps(&self, tag: &str) -> Vec<ChangeMap> {
        self.cfg
            .disks
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let g = DiskGeometry::new(device_size(d), ChunkSize::new(CHUNK).unwrap()).unwrap();
                ChangeMap::create(&self.dir.path().join(format!("{tag}-{i}.chmap")), g, Lineage::new_v4(), 0).unwrap()
            })
            .collect()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Err(e) = TracefsTracker::remove_instance(&self.cfg) {
            eprintln!("warning: removing instance {}: {e}", self.cfg.instance);
        }
    }
}

/// Chunks of map `map` changed since epoch `since`.
pub fn changed(map: &ChangeMap, since: u64) -> Vec<u64> {
    map.changed_since(since).collect()
}

/// Chunk index of a byte offset.
pub fn chunk(offset: u64) -> u64 {
    offset / CHUNK
}
