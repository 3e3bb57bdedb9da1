//! Where the image goes: a regular file (written as FILE.partial, then renamed) or a block
//! device (`--force`), checked before the store is even opened.

use crate::RecoverError;
use crate::error::io_err;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Where the image goes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Target {
    File { path: PathBuf, partial: PathBuf },
    Device { path: PathBuf },
}

/// An opened target; dropped without [`Target::commit`], `FILE.partial` is removed.
pub(crate) struct OpenImage {
    pub(crate) file: File,
    partial: Option<PathBuf>,
}

impl Drop for OpenImage {
    fn drop(&mut self) {
        if let Some(p) = self.partial.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl Target {
    /// Checks `out` before the store is even opened.
    pub(crate) fn check(out: &Path, force: bool, store_dir: &Path) -> Result<Self, RecoverError> {
        let shown = out.display();
        refuse_inside(out, store_dir)?;
        let refuse = |msg: String| Err(RecoverError::Target(msg));
        match fs::metadata(out) {
            Ok(m) if m.file_type().is_block_device() && !force => {
                refuse(format!("{shown} is a block device: pass --force to overwrite it with the image"))
            }
            Ok(m) if m.file_type().is_block_device() => Ok(Self::Device { path: out.to_path_buf() }),
            Ok(m) if m.is_file() && m.len() > 0 && !force => {
                refuse(format!("refusing to overwrite {shown} ({} bytes): pass --force to replace it", m.len()))
            }
            Ok(m) if !m.is_file() => refuse(format!("{shown} is neither a regular file nor a block device")),
            Ok(_) => Ok(Self::file(out)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::file(out)),
            Err(e) => Err(io_err(format!("cannot check {shown}"))(e)),
        }
    }

    fn file(out: &Path) -> Self {
        let mut partial = OsString::from(out.as_os_str());
        partial.push(".partial");
        Self::File { path: out.to_path_buf(), partial: PathBuf::from(partial) }
    }

    pub(crate) fn sparse(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    /// Opens the target for an image of `size` bytes: a file of that length, or a device that
    /// holds at least that much and that nobody else has open exclusively (mounted, …).
    pub(crate) fn open(&self, size: u64) -> Result<OpenImage, RecoverError> {
        match self {
            Self::File { partial, .. } => {
                let opened = OpenOptions::new().write(true).create(true).truncate(true).open(partial);
                let file = opened.map_err(io_err(format!("cannot create {}", partial.display())))?;
                let image = OpenImage { file, partial: Some(partial.clone()) };
                image.file.set_len(size).map_err(io_err(format!("cannot size {}", partial.display())))?;
                Ok(image)
            }
            Self::Device { path } => {
                let shown = path.display();
                // O_EXCL without O_CREAT on a block device: EBUSY while mounted or held.
                let opened = OpenOptions::new().write(true).custom_flags(libc::O_EXCL).open(path);
                let mut file = opened.map_err(|e| match e.kind() {
                    io::ErrorKind::ResourceBusy => {
                        RecoverError::Target(format!("block device {shown} is in use (mounted?): not writing to it"))
                    }
                    _ => io_err(format!("cannot open {shown}"))(e),
                })?;
                let have = file.seek(SeekFrom::End(0)).map_err(io_err(format!("cannot size {shown}")))?;
                if have < size {
                    return Err(RecoverError::Target(format!(
                        "block device {shown} holds {have} bytes but the disk is {size}: not writing to it"
                    )));
                }
                Ok(OpenImage { file, partial: None })
            }
        }
    }

    /// After the image is complete and synced: renames `FILE.partial` to FILE, durably.
    pub(crate) fn commit(&self, mut image: OpenImage) -> Result<(), RecoverError> {
        if let Self::File { path, partial } = self {
            fs::rename(partial, path).map_err(io_err(format!(
                "cannot rename {} to {}",
                partial.display(),
                path.display()
            )))?;
            image.partial = None;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err(format!("cannot sync {}", dir.display())))?;
        }
        Ok(())
    }
}

/// Refuses an `out` inside the store's directory (where a write could damage the store).
fn refuse_inside(out: &Path, store_dir: &Path) -> Result<(), RecoverError> {
    let Ok(store) = fs::canonicalize(store_dir) else {
        return Ok(()); // no store there: open_store says so
    };
    let resolved = match fs::canonicalize(out) {
        Ok(p) => p,
        Err(_) => {
            let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let dir =
                fs::canonicalize(parent).map_err(io_err(format!("cannot find the directory of {}", out.display())))?;
            match out.file_name() {
                Some(name) => dir.join(name),
                None => return Err(RecoverError::Target(format!("{} names no file", out.display()))),
            }
        }
    };
    if resolved.starts_with(&store) {
        return Err(RecoverError::Target(format!(
            "refusing to write {} inside the store's own directory {}",
            out.display(),
            store_dir.display()
        )));
    }
    Ok(())
}
