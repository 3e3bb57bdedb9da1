//! Where a file holds data: `lseek(SEEK_DATA/SEEK_HOLE)` over a byte range. Holes read as
//! zeros and need neither reading nor storing; the change map skips them when it rebuilds its
//! summary, and a pass plans around the holes of a sparse disk image.
//!
//! A filesystem without hole support reports the whole file as data (the kernel's default),
//! which is always correct, only slower.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

/// The data segments `(from, to)` (byte offsets, `to` exclusive) of `file` within
/// `start..end`, ascending and clipped to the range. Everything else in the range is a hole.
pub fn data_segments(file: &File, start: u64, end: u64) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    let mut at = start;
    while at < end {
        let Some(data) = seek(file, at, libc::SEEK_DATA)? else { break };
        if data >= end {
            break;
        }
        let hole = seek(file, data, libc::SEEK_HOLE)?.unwrap_or(end).min(end);
        out.push((data, hole));
        at = hole;
    }
    Ok(out)
}

/// `lseek` to the next data or hole at or after `at`; `None` when there is none (ENXIO).
fn seek(file: &File, at: u64, whence: libc::c_int) -> io::Result<Option<u64>> {
    let off = libc::off_t::try_from(at).map_err(|_| io::Error::other(format!("offset {at} out of range")))?;
    // SAFETY: a valid open descriptor kept open by `file`; lseek passes no memory.
    let r = unsafe { libc::lseek(file.as_raw_fd(), off, whence) };
    if r < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENXIO) { Ok(None) } else { Err(e) };
    }
    Ok(Some(r as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn finds_the_data_between_holes() {
        let dir = tempfile::tempdir().unwrap();
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).open(dir.path().join("x")).unwrap();
        let mib = 1u64 << 20;
        f.set_len(64 * mib).unwrap();
        f.write_all_at(&[1u8; 4096], 8 * mib).unwrap();
        f.write_all_at(&[2u8; 4096], 40 * mib + 4096).unwrap();
        let all = data_segments(&f, 0, 64 * mib).unwrap();
        // A filesystem may round a segment out to its block or extent size, never less.
        assert_eq!(all.len(), 2, "{all:?}");
        assert!(all[0].0 <= 8 * mib && all[0].1 >= 8 * mib + 4096 && all[0].1 < 40 * mib);
        assert!(all[1].0 <= 40 * mib + 4096 && all[1].1 >= 40 * mib + 8192);
        // Clipped to the range asked.
        let part = data_segments(&f, 8 * mib + 100, 40 * mib).unwrap();
        assert_eq!(part.len(), 1);
        assert_eq!(part[0].0, 8 * mib + 100);
        assert!(data_segments(&f, 48 * mib, 64 * mib).unwrap().is_empty());
        assert!(data_segments(&f, 64 * mib, 80 * mib).unwrap().is_empty(), "past the end");
    }
}
