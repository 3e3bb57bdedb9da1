//! Opening a protected disk: a regular file (disk image) or a block device, read-only,
//! with O_DIRECT where the filesystem allows it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use crate::buf::{ALIGN, AlignedBuf};
use crate::error::ReadError;

/// `BLKGETSIZE64` = `_IOR(0x12, 114, size_t)`: size of a block device in bytes.
#[cfg(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc64"
))]
const BLKGETSIZE64: u64 = (2 << 29) | ((std::mem::size_of::<usize>() as u64) << 16) | (0x12 << 8) | 114;
/// `BLKGETSIZE64` = `_IOR(0x12, 114, size_t)`: size of a block device in bytes.
#[cfg(not(any(
    target_arch = "powerpc",
    target_arch = "powerpc64",
    target_arch = "mips",
    target_arch = "mips64",
    target_arch = "sparc64"
)))]
const BLKGETSIZE64: u64 = (2 << 30) | ((std::mem::size_of::<usize>() as u64) << 16) | (0x12 << 8) | 114;

/// An open protected disk.
#[derive(Debug)]
pub struct DiskFile {
    pub path: PathBuf,
    /// Opened read-only; with O_DIRECT when `direct`.
    pub file: File,
    /// Reads bypass the page cache (need 4096-aligned buffer, offset and length).
    pub direct: bool,
    /// Size in bytes.
    pub size: u64,
}

/// Size in bytes of a regular file or block device. Anything else is refused with an error
/// naming the path (a FIFO or directory is never opened).
pub fn disk_size(path: &Path) -> Result<u64, ReadError> {
    check_kind(path)?;
    let file = File::open(path).map_err(|source| ReadError::Open { path: path.into(), source })?;
    size_of(path, &file)
}

/// Opens a disk read-only. Tries O_DIRECT first (open plus one aligned probe read); when the
/// filesystem refuses it (EINVAL: ramfs, tmpfs before Linux 6.6, some FUSE) falls back to buffered reads. Logs which.
pub fn open_disk(path: &Path) -> Result<DiskFile, ReadError> {
    check_kind(path)?;
    let open_err = |source| ReadError::Open { path: path.into(), source };
    let refused = |e: &io::Error| matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP));

    let direct = match OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path) {
        Ok(file) => {
            let size = size_of(path, &file)?;
            match probe_direct(&file, size) {
                Ok(()) => Some(DiskFile { path: path.into(), file, direct: true, size }),
                Err(e) if refused(&e) => {
                    tracing::info!(path = %path.display(), error = %e, "O_DIRECT read refused; using buffered reads");
                    None
                }
                Err(e) => return Err(open_err(e)),
            }
        }
        Err(e) if refused(&e) => {
            tracing::info!(path = %path.display(), error = %e, "O_DIRECT open refused; using buffered reads");
            None
        }
        Err(e) => return Err(open_err(e)),
    };
    if let Some(disk) = direct {
        tracing::info!(path = %path.display(), size = disk.size, "disk opened with O_DIRECT");
        return Ok(disk);
    }
    let file = File::open(path).map_err(open_err)?;
    let size = size_of(path, &file)?;
    tracing::info!(path = %path.display(), size, "disk opened buffered (page cache)");
    Ok(DiskFile { path: path.into(), file, direct: false, size })
}

/// Opens the disk again without O_DIRECT (for reads O_DIRECT cannot do).
pub(crate) fn open_buffered(path: &Path) -> Result<File, ReadError> {
    File::open(path).map_err(|source| ReadError::Open { path: path.into(), source })
}

fn check_kind(path: &Path) -> Result<(), ReadError> {
    let meta = std::fs::metadata(path).map_err(|source| ReadError::Open { path: path.into(), source })?;
    let ft = meta.file_type();
    let kind = if ft.is_file() || ft.is_block_device() {
        return Ok(());
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_fifo() {
        "FIFO"
    } else if ft.is_socket() {
        "socket"
    } else {
        "special file"
    };
    Err(ReadError::NotADisk { path: path.into(), kind })
}

fn size_of(path: &Path, file: &File) -> Result<u64, ReadError> {
    let size_err = |source| ReadError::Size { path: path.into(), source };
    let meta = file.metadata().map_err(size_err)?;
    let ft = meta.file_type();
    if ft.is_file() {
        Ok(meta.len())
    } else if ft.is_block_device() {
        let mut size: u64 = 0;
        // SAFETY: BLKGETSIZE64 writes exactly one u64 through the pointer, which points to a
        // live local; the fd is open for the duration of the call.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), BLKGETSIZE64 as _, &mut size as *mut u64) };
        if rc < 0 {
            return Err(size_err(io::Error::last_os_error()));
        }
        Ok(size)
    } else {
        Err(ReadError::NotADisk { path: path.into(), kind: "special file" })
    }
}

/// One aligned read at offset 0: some filesystems accept O_DIRECT at open and refuse reads.
fn probe_direct(file: &File, size: u64) -> io::Result<()> {
    if size == 0 {
        return Ok(());
    }
    let mut buf = AlignedBuf::new(ALIGN);
    loop {
        match file.read_at(&mut buf.full_mut()[..ALIGN], 0) {
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn regular_file_on_disk_filesystem() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&[7u8; 10_000]).unwrap();
        assert_eq!(disk_size(f.path()).unwrap(), 10_000);
        let d = open_disk(f.path()).unwrap();
        assert_eq!(d.size, 10_000);
        // /tmp here is ext4, which supports O_DIRECT; other filesystems may legitimately fall back.
        let mut b = AlignedBuf::new(4096);
        let n = d.file.read_at(&mut b.full_mut()[..4096], 8192).unwrap();
        assert_eq!(n, 10_000 - 8192, "short read at EOF");
    }

    /// A ramfs mounted on a temporary directory (refuses O_DIRECT, unlike tmpfs since
    /// Linux 6.6); unmounted on drop.
    struct Ramfs(tempfile::TempDir);

    impl Ramfs {
        fn mount() -> Option<Ramfs> {
            let dir = tempfile::tempdir().ok()?;
            let ok = std::process::Command::new("mount")
                .args(["-t", "ramfs", "drpair-test"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(Ramfs(dir))
        }
    }

    impl Drop for Ramfs {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(self.0.path()).status();
        }
    }

    #[test]
    fn falls_back_to_buffered_where_o_direct_is_refused() {
        let Some(ramfs) = Ramfs::mount() else {
            eprintln!("skipped: cannot mount a ramfs (needs root)");
            return;
        };
        let path = ramfs.0.path().join("disk.img");
        std::fs::write(&path, [1u8; 5000]).unwrap();
        let d = open_disk(&path).unwrap();
        assert_eq!(d.size, 5000);
        assert!(!d.direct, "ramfs refuses O_DIRECT");
        let mut b = [0u8; 10];
        assert_eq!(d.file.read_at(&mut b, 4995).unwrap(), 5);
        drop(d);
    }

    #[test]
    fn refuses_what_is_not_a_disk() {
        let dir = tempfile::tempdir().unwrap();
        let e = open_disk(dir.path()).unwrap_err();
        assert!(matches!(e, ReadError::NotADisk { kind: "directory", .. }));
        assert!(e.to_string().contains(&*dir.path().to_string_lossy()), "{e}");
        let e = disk_size(Path::new("/dev/null")).unwrap_err();
        assert!(e.to_string().contains("'/dev/null'") && e.to_string().contains("character device"), "{e}");
        let missing = dir.path().join("nope");
        let e = disk_size(&missing).unwrap_err();
        assert!(matches!(e, ReadError::Open { .. }) && e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn blkgetsize64_constant() {
        #[cfg(target_arch = "x86_64")]
        assert_eq!(BLKGETSIZE64, 0x8008_1272);
    }
}
