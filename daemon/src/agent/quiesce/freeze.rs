//! Freezing and thawing a filesystem through FIFREEZE/FITHAW on its mount point.

use super::error::QuiesceError;
use super::hold::ms;
use std::ffi::{c_int, c_ulong};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

// The libc crate has no constants for these (nor is it a dependency of this crate):
// FIFREEZE = _IOWR('X', 119, int), FITHAW = _IOWR('X', 120, int) from <linux/fs.h>. The
// encoding gives the same numbers on every Linux architecture (x86, arm, powerpc, mips).
const FIFREEZE: c_ulong = 0xC004_5877;
const FITHAW: c_ulong = 0xC004_5878;
const EPERM: i32 = 1;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;

unsafe extern "C" {
    // The C library's ioctl(2); std links it anyway.
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
}

/// A filesystem frozen by this attempt, through an open fd of its mount point.
pub(super) struct Frozen {
    pub(super) path: PathBuf,
    dir: File,
    pub(super) at: Instant,
    pub(super) took_ms: u64,
}

fn fs_ioctl(dir: &File, request: c_ulong) -> io::Result<()> {
    let arg: c_int = 0;
    // SAFETY: the fd is open for the duration of the call; FIFREEZE and FITHAW take an int
    // argument they ignore, passed by value.
    let rc = unsafe { ioctl(dir.as_raw_fd(), request, arg) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

pub(super) fn freeze_fs(path: &Path) -> Result<Frozen, QuiesceError> {
    let dir = File::open(path).map_err(QuiesceError::Open)?;
    let t = Instant::now();
    fs_ioctl(&dir, FIFREEZE).map_err(|e| match e.raw_os_error() {
        Some(EBUSY) => QuiesceError::AlreadyFrozen,
        Some(EPERM) => QuiesceError::NotPermitted(e),
        _ => QuiesceError::Freeze(e),
    })?;
    Ok(Frozen { path: path.to_path_buf(), dir, at: Instant::now(), took_ms: ms(t.elapsed()) })
}

pub(super) fn thaw_fs(f: &Frozen) -> Result<(), QuiesceError> {
    fs_ioctl(&f.dir, FITHAW).map_err(|e| match e.raw_os_error() {
        Some(EINVAL) => QuiesceError::NotFrozen,
        _ => QuiesceError::Thaw(e),
    })
}
