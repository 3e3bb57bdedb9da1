//! From a protected disk to what the kernel reports: the whole disk's device number and where
//! the disk lies on it.
//!
//! `block_rq_complete` reports requests on the whole disk, in whole-disk sectors, also when
//! they were issued through a partition. So for a partition the tracker filters on the whole
//! disk and maps each request back: the range `[start, start + size)` (512-byte sectors, from
//! `/sys/dev/block/MAJ:MIN/{start,size}`) is the partition, everything else on that disk is
//! not ours.

use drpair_types::DiskGeometry;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Bytes per sector in block-layer events and in sysfs `start`/`size`.
pub const SECTOR: u64 = 512;

/// The kernel's internal device number (`MAJOR << 20 | MINOR`), as in the event's `dev` field
/// and in filters; not the userspace `makedev` encoding.
pub fn kernel_dev(major: u32, minor: u32) -> u64 {
    (u64::from(major) << 20) | u64::from(minor)
}

/// A protected disk as the block layer sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskDevice {
    pub path: PathBuf,
    /// The device itself (a partition or a whole disk).
    pub major: u32,
    pub minor: u32,
    /// The whole disk holding it (itself when it is not a partition).
    pub disk_major: u32,
    pub disk_minor: u32,
    /// First sector on the whole disk (0 for a whole disk).
    pub start_sector: u64,
    /// Size in sectors.
    pub size_sectors: u64,
}

impl DiskDevice {
    /// Resolves a block device through sysfs (mounted at `sys`, normally `/sys`). Errors name
    /// the path and what is wrong, for `TrackError::Unavailable`.
    pub fn resolve(path: &Path, sys: &Path) -> Result<Self, String> {
        let meta = fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.file_type().is_block_device() {
            return Err(format!(
                "{} is not a block device (tracefs sees only block devices; use the scan tracker)",
                path.display()
            ));
        }
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let node = sys.join(format!("dev/block/{major}:{minor}"));
        let read = |name: &str, dir: &Path| {
            let file = dir.join(name);
            fs::read_to_string(&file)
                .map(|s| s.trim().to_string())
                .map_err(|e| format!("{} ({major}:{minor}): cannot read {}: {e}", path.display(), file.display()))
        };
        let number = |name: &str, dir: &Path| {
            let text = read(name, dir)?;
            text.parse::<u64>().map_err(|_| format!("{}: {} holds '{text}'", path.display(), dir.join(name).display()))
        };
        let size_sectors = number("size", &node)?;
        let (disk_major, disk_minor, start_sector, whole) = if node.join("partition").exists() {
            let real = fs::canonicalize(&node).map_err(|e| format!("{}: {}: {e}", path.display(), node.display()))?;
            let parent =
                real.parent().ok_or_else(|| format!("{}: {} has no parent", path.display(), real.display()))?;
            let dev = read("dev", parent)?;
            let (dmaj, dmin) =
                parse_dev(&dev).ok_or_else(|| format!("{}: {}/dev holds '{dev}'", path.display(), parent.display()))?;
            (dmaj, dmin, number("start", &node)?, parent.to_path_buf())
        } else {
            (major, minor, 0, node.clone())
        };
        // block_rq_complete fires only for request-based (blk-mq) disks; device-mapper, md,
        // zram and other bio-based devices complete bios without requests: tracing them would
        // see nothing and claim no change.
        if !whole.join("mq").exists() {
            return Err(format!(
                "{} is a bio-based device (device-mapper, md, zram, …): the kernel reports no request \
                 completions for it, so tracefs would see none of its writes; protect the disks beneath it, \
                 or use the scan tracker",
                path.display()
            ));
        }
        Ok(Self { path: path.to_path_buf(), major, minor, disk_major, disk_minor, start_sector, size_sectors })
    }

    /// Whether this is a partition of a larger disk.
    pub fn is_partition(&self) -> bool {
        (self.major, self.minor) != (self.disk_major, self.disk_minor)
    }

    /// The whole disk's kernel device number, which events carry.
    pub fn disk_kernel_dev(&self) -> u64 {
        kernel_dev(self.disk_major, self.disk_minor)
    }
}

/// Parses sysfs `dev` ("MAJ:MIN").
pub fn parse_dev(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.trim().split_once(':')?;
    Some((a.parse().ok()?, b.parse().ok()?))
}

/// Where one protected disk's changes go: maps requests on a whole disk to the disk's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Whole-disk kernel device number.
    pub dev: u64,
    pub start_sector: u64,
    pub size_sectors: u64,
    /// Bytes the change map covers (the map's disk size).
    pub map_bytes: u64,
    /// log2 of the chunk size.
    pub chunk_shift: u32,
}

impl Target {
    pub fn new(device: &DiskDevice, geometry: DiskGeometry) -> Self {
        Self {
            dev: device.disk_kernel_dev(),
            start_sector: device.start_sector,
            size_sectors: device.size_sectors,
            map_bytes: geometry.size_bytes,
            chunk_shift: geometry.chunk_size.shift(),
        }
    }

    /// Chunks `(first, last)` (inclusive) of this disk touched by `nr` sectors from `sector` on
    /// whole disk `dev`: the part inside the disk, relative to its start, clamped to the disk
    /// and to the map. `None` when the request misses it.
    pub fn chunks(&self, dev: u64, sector: u64, nr: u64) -> Option<(u64, u64)> {
        if dev != self.dev || nr == 0 {
            return None;
        }
        let disk_end = self.start_sector.saturating_add(self.size_sectors);
        let lo = sector.max(self.start_sector);
        let hi = sector.saturating_add(nr).min(disk_end);
        if lo >= hi {
            return None;
        }
        let first_byte = (lo - self.start_sector).saturating_mul(SECTOR);
        let end_byte = (hi - self.start_sector).saturating_mul(SECTOR).min(self.map_bytes);
        if first_byte >= end_byte {
            return None;
        }
        Some((first_byte >> self.chunk_shift, (end_byte - 1) >> self.chunk_shift))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::ChunkSize;

    fn target(start: u64, sectors: u64, map_bytes: u64) -> Target {
        let g = DiskGeometry::new(map_bytes, ChunkSize::new(64 << 10).unwrap()).unwrap();
        let d = DiskDevice {
            path: "/dev/x".into(),
            major: 259,
            minor: 0,
            disk_major: 7,
            disk_minor: 1,
            start_sector: start,
            size_sectors: sectors,
        };
        Target::new(&d, g)
    }

    /// A sysfs tree for /dev/loop0's numbers, with or without the blk-mq directory.
    fn fake_sys(mq: bool) -> (tempfile::TempDir, PathBuf) {
        let loop0 = PathBuf::from("/dev/loop0");
        let meta = fs::metadata(&loop0).expect("/dev/loop0 exists");
        let (major, minor) = (libc::major(meta.rdev()), libc::minor(meta.rdev()));
        let dir = tempfile::tempdir().unwrap();
        let node = dir.path().join(format!("dev/block/{major}:{minor}"));
        fs::create_dir_all(&node).unwrap();
        fs::write(node.join("size"), "2048\n").unwrap();
        fs::write(node.join("dev"), format!("{major}:{minor}\n")).unwrap();
        if mq {
            fs::create_dir(node.join("mq")).unwrap();
        }
        let sys = dir.path().to_path_buf();
        (dir, sys)
    }

    #[test]
    fn bio_based_devices_are_refused() {
        let (_d, sys) = fake_sys(true);
        let dev = DiskDevice::resolve(Path::new("/dev/loop0"), &sys).unwrap();
        assert_eq!((dev.size_sectors, dev.start_sector, dev.is_partition()), (2048, 0, false));
        let (_d, sys) = fake_sys(false);
        let err = DiskDevice::resolve(Path::new("/dev/loop0"), &sys).unwrap_err();
        assert!(err.contains("bio-based") && err.contains("scan tracker"), "{err}");
        // The real thing, where the machine has one: zram is bio-based.
        if Path::new("/dev/zram0").exists() {
            let err = DiskDevice::resolve(Path::new("/dev/zram0"), Path::new("/sys")).unwrap_err();
            assert!(err.contains("bio-based"), "{err}");
        }
    }

    #[test]
    fn kernel_dev_numbers() {
        assert_eq!(kernel_dev(7, 1), 7340033);
        assert_eq!(kernel_dev(259, 3), (259 << 20) | 3);
        assert_eq!(parse_dev("7:0\n"), Some((7, 0)));
        assert_eq!(parse_dev("7"), None);
    }

    #[test]
    fn whole_disk_mapping() {
        let dev = kernel_dev(7, 1);
        let t = target(0, 2048, 1 << 20); // 1 MiB, 16 chunks of 64 KiB
        assert_eq!(t.chunks(dev, 0, 8), Some((0, 0)));
        assert_eq!(t.chunks(dev, 127, 2), Some((0, 1))); // straddles chunks 0 and 1
        assert_eq!(t.chunks(dev, 128, 128), Some((1, 1)));
        assert_eq!(t.chunks(dev, 2040, 8), Some((15, 15)));
        assert_eq!(t.chunks(dev, 0, 0), None, "a flush covers nothing");
        assert_eq!(t.chunks(kernel_dev(7, 2), 0, 8), None, "another disk");
    }

    #[test]
    fn partition_mapping_and_clamping() {
        let dev = kernel_dev(7, 1);
        // Partition from 1 MiB (sector 2048), 2 MiB long.
        let t = target(2048, 4096, 2 << 20);
        assert_eq!(t.chunks(dev, 0, 2048), None, "before the partition");
        assert_eq!(t.chunks(dev, 2048 + 4096, 8), None, "after the partition");
        assert_eq!(t.chunks(dev, 2048, 1), Some((0, 0)));
        assert_eq!(t.chunks(dev, 2048 + 256, 8), Some((2, 2)));
        // A request overlapping the start is cut to the partition.
        assert_eq!(t.chunks(dev, 2000, 200), Some((0, 1)));
        // Overlapping the end: clamped to the last chunk.
        assert_eq!(t.chunks(dev, 2048 + 4000, 1000), Some((31, 31)));
        // Sectors near u64::MAX never overflow.
        assert_eq!(t.chunks(dev, u64::MAX - 1, u64::MAX), None);
        assert_eq!(t.chunks(dev, 0, u64::MAX), Some((0, 31)));
    }

    #[test]
    fn clamped_to_a_smaller_map() {
        let dev = kernel_dev(7, 1);
        // The device has 1 MiB, the map only 100 KiB (2 chunks, the last short).
        let t = target(0, 2048, 100 << 10);
        assert_eq!(t.chunks(dev, 0, 2048), Some((0, 1)));
        assert_eq!(t.chunks(dev, 190, 8), Some((1, 1)));
        assert_eq!(t.chunks(dev, 190, 100), Some((1, 1)), "cut at the end of the map");
        assert_eq!(t.chunks(dev, 400, 8), None, "past the map");
    }

    #[test]
    fn regular_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("disk.img");
        std::fs::write(&f, [0u8; 512]).unwrap();
        let err = DiskDevice::resolve(&f, Path::new("/sys")).unwrap_err();
        assert!(
            err.ends_with("is not a block device (tracefs sees only block devices; use the scan tracker)"),
            "{err}"
        );
        assert!(DiskDevice::resolve(&dir.path().join("missing"), Path::new("/sys")).is_err());
    }
}
