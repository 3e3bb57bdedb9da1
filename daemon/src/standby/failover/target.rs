//! The standby-side disks of a failover and a failback: block devices or files given by path.
//! Opened and checked before anything changes (so a bad path is a clear 400 and nothing is
//! fenced); block devices are opened exclusively, so a mounted one is refused.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Alignment of O_DIRECT buffers, offsets and lengths.
pub const ALIGN: usize = 4096;

/// One opened side.
pub struct Side {
    pub path: PathBuf,
    /// Buffered access (reads, unaligned tails, sync).
    pub file: File,
    /// O_DIRECT access for aligned writes, when the device or filesystem has it.
    pub direct: Option<File>,
    pub block_device: bool,
    /// A regular file that starts empty: all-zero chunks need not be written.
    pub sparse: bool,
}

/// Why a side cannot be used.
#[derive(Debug)]
pub enum SideError {
    /// The request is wrong (400).
    Bad(String),
    /// The side is busy, or holds data the request did not agree to overwrite (409).
    Busy(String),
}

fn absolute(raw: &str) -> Result<PathBuf, SideError> {
    let p = PathBuf::from(raw);
    if raw.is_empty() || !p.is_absolute() {
        return Err(SideError::Bad(format!("'{raw}' is not an absolute path on the standby's host")));
    }
    Ok(p)
}

fn open_error(p: &Path, e: std::io::Error) -> SideError {
    match e.raw_os_error() {
        Some(libc::EBUSY) => SideError::Busy(format!(
            "{} is in use (mounted, or held by another program); unmount it first",
            p.display()
        )),
        _ => SideError::Bad(format!("cannot open {}: {e}", p.display())),
    }
}

fn size_of(f: &File) -> std::io::Result<u64> {
    let mut f = f;
    f.seek(SeekFrom::End(0))
}

fn too_small(p: &Path, have: u64, need: u64) -> SideError {
    SideError::Bad(format!("{} holds {have} bytes; the disk needs {need}", p.display()))
}

/// Opens a failover target for a disk of `need` bytes. A block device must be at least that
/// large; a regular file is created, or (with `force`) emptied, and sized to the disk.
pub fn open_target(raw: &str, need: u64, force: bool) -> Result<Side, SideError> {
    Ok(target(raw, need, force, true)?.expect("opened"))
}

/// Checks a failover target as [`open_target`] would, changing nothing (so that of several
/// targets, none is touched when one is refused).
pub fn check_target(raw: &str, need: u64, force: bool) -> Result<(), SideError> {
    target(raw, need, force, false).map(|_| ())
}

fn target(raw: &str, need: u64, force: bool, open: bool) -> Result<Option<Side>, SideError> {
    let path = absolute(raw)?;
    let meta = std::fs::metadata(&path);
    match meta {
        Ok(m) if m.file_type().is_block_device() => {
            let open_dev = |direct: bool| {
                let flags = libc::O_EXCL | if direct { libc::O_DIRECT } else { 0 };
                OpenOptions::new().read(true).write(true).custom_flags(flags).open(&path)
            };
            let file = open_dev(false).map_err(|e| open_error(&path, e))?;
            let have = size_of(&file).map_err(|e| open_error(&path, e))?;
            if have < need {
                return Err(too_small(&path, have, need));
            }
            if !open {
                return Ok(None);
            }
            // The exclusive hold is per open file: the O_DIRECT handle opens without O_EXCL.
            let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&path).ok();
            Ok(Some(Side { path, file, direct, block_device: true, sparse: false }))
        }
        Ok(m) if m.is_file() => {
            if m.len() > 0 && !force {
                return Err(SideError::Busy(format!(
                    "{} exists and holds {} bytes; pass --force (\"force\": true) to overwrite it",
                    path.display(),
                    m.len()
                )));
            }
            if open { regular(path, need).map(Some) } else { Ok(None) }
        }
        Ok(_) => Err(SideError::Bad(format!("{} is neither a block device nor a regular file", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            match path.parent() {
                Some(dir) if dir.is_dir() => {}
                _ => return Err(SideError::Bad(format!("the directory of {} does not exist", path.display()))),
            }
            if open { regular(path, need).map(Some) } else { Ok(None) }
        }
        Err(e) => Err(open_error(&path, e)),
    }
}

fn regular(path: PathBuf, need: u64) -> Result<Side, SideError> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .map_err(|e| open_error(&path, e))?;
    file.set_len(need).map_err(|e| open_error(&path, e))?;
    let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(&path).ok();
    Ok(Side { path, file, direct, block_device: false, sparse: true })
}

/// Opens a failover target again, as it is (an instant failover resumed after a restart: the
/// target holds what was copied and written so far): it must exist and hold `need` bytes; a
/// block device is held exclusively. Never truncated.
pub fn reopen_target(raw: &str, need: u64) -> Result<Side, SideError> {
    let mut side = open_source(raw, need, true)?;
    side.sparse = false;
    Ok(side)
}

/// Opens the recovered side of a failback: it must exist and hold at least `need` bytes.
/// `write` when the failback writes onto it (direction to-recovered).
pub fn open_source(raw: &str, need: u64, write: bool) -> Result<Side, SideError> {
    let path = absolute(raw)?;
    let meta = std::fs::metadata(&path).map_err(|e| open_error(&path, e))?;
    let block_device = meta.file_type().is_block_device();
    if !block_device && !meta.is_file() {
        return Err(SideError::Bad(format!("{} is neither a block device nor a regular file", path.display())));
    }
    let flags = if block_device && write { libc::O_EXCL } else { 0 };
    let file =
        OpenOptions::new().read(true).write(write).custom_flags(flags).open(&path).map_err(|e| open_error(&path, e))?;
    let have = size_of(&file).map_err(|e| open_error(&path, e))?;
    if have < need {
        return Err(too_small(&path, have, need));
    }
    Ok(Side { path, file, direct: None, block_device, sparse: false })
}

/// Checks that no path is given twice.
pub fn distinct(paths: &[String]) -> Result<(), SideError> {
    for (i, p) in paths.iter().enumerate() {
        if paths[..i].contains(p) {
            return Err(SideError::Bad(format!("{p} is given for two disks")));
        }
    }
    Ok(())
}

/// A buffer whose start is aligned for O_DIRECT (no unsafe: an aligned window of a larger
/// vector).
pub struct DirectWriteBuf {
    raw: Vec<u8>,
    off: usize,
}

impl DirectWriteBuf {
    pub fn new(len: usize) -> Self {
        let raw = vec![0u8; len + ALIGN];
        let off = raw.as_ptr().align_offset(ALIGN);
        Self { raw, off }
    }

    /// Bytes it can hold.
    pub fn capacity(&self) -> usize {
        self.raw.len() - ALIGN
    }

    pub fn slice_mut(&mut self, len: usize) -> &mut [u8] {
        &mut self.raw[self.off..self.off + len]
    }

    pub fn slice(&self, len: usize) -> &[u8] {
        &self.raw[self.off..self.off + len]
    }
}

impl Side {
    /// Writes bytes `range` of `buf` at `at`, straight from the buffer: its aligned part
    /// through O_DIRECT when the side has it, a short tail (and everything, without O_DIRECT
    /// or at an unaligned place) buffered.
    pub fn write_from(&self, buf: &DirectWriteBuf, range: std::ops::Range<usize>, at: u64) -> std::io::Result<()> {
        let data = &buf.slice(range.end)[range.start..];
        let direct = match &self.direct {
            Some(d) if at % ALIGN as u64 == 0 && range.start % ALIGN == 0 => Some(d),
            _ => None,
        };
        let head = if direct.is_some() { data.len() / ALIGN * ALIGN } else { 0 };
        if let Some(d) = direct
            && head > 0
        {
            d.write_all_at(&data[..head], at)?;
        }
        if head < data.len() {
            self.file.write_all_at(&data[head..], at + head as u64)?;
        }
        Ok(())
    }

    /// Makes every write durable.
    pub fn sync(&self) -> std::io::Result<()> {
        self.file.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_checked_before_use() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t.img");
        assert!(matches!(open_target("relative.img", 4096, false), Err(SideError::Bad(_))));
        assert!(matches!(open_target("/no/such/dir/x.img", 4096, false), Err(SideError::Bad(_))));
        // A check creates nothing; a new file is created at the disk's size and is sparse.
        check_target(f.to_str().unwrap(), 1 << 20, false).unwrap();
        assert!(!f.exists());
        let s = open_target(f.to_str().unwrap(), 1 << 20, false).unwrap();
        assert!(s.sparse && !s.block_device);
        assert_eq!(std::fs::metadata(&f).unwrap().len(), 1 << 20);
        // Aligned (O_DIRECT), aligned with a short tail, and unaligned (buffered).
        let mut buf = DirectWriteBuf::new(8192 + 100);
        buf.slice_mut(8192).fill(7);
        buf.slice_mut(8192 + 100)[8192..].fill(9);
        s.write_from(&buf, 0..8192, 4096).unwrap();
        s.write_from(&buf, 0..4196, 1 << 18).unwrap();
        s.write_from(&buf, 8192..8292, 3).unwrap();
        s.sync().unwrap();
        drop(s);
        // Data is there: refused without force, emptied with it.
        let e = open_target(f.to_str().unwrap(), 1 << 20, false).err().unwrap();
        assert!(matches!(&e, SideError::Busy(m) if m.contains("--force")), "{e:?}");
        let back = std::fs::read(&f).unwrap();
        assert_eq!(
            (back[3], back[102], back[103], back[4096], back[12287], back[12288], back[1 << 19]),
            (9, 9, 0, 7, 7, 0, 0)
        );
        assert!(back[1 << 18..(1 << 18) + 4196].iter().all(|&b| b == 7) && back[(1 << 18) + 4196] == 0);
        open_target(f.to_str().unwrap(), 1 << 20, true).unwrap();
        assert!(std::fs::read(&f).unwrap().iter().all(|&b| b == 0));
        // A source must exist and be large enough.
        assert!(
            matches!(open_source(f.to_str().unwrap(), 2 << 20, false), Err(SideError::Bad(m)) if m.contains("needs"))
        );
        assert!(open_source(f.to_str().unwrap(), 1 << 20, false).is_ok());
        assert!(matches!(open_source(dir.path().to_str().unwrap(), 1, false), Err(SideError::Bad(_))));
        assert!(matches!(distinct(&["/a".into(), "/b".into(), "/a".into()]), Err(SideError::Bad(_))));
    }
}
