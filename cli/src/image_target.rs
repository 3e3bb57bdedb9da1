//! Where an exported image goes: a regular file, written as `FILE.partial` and renamed into
//! place once complete, or a block device, written in place.
//!
//! Invariants: an existing non-empty FILE is replaced only with `--force`, and only by the
//! final rename (until then it keeps its old contents); `FILE.partial` is removed on every
//! way out but success (an interrupted process may leave it; the next export truncates it);
//! a block device needs `--force`, must be at least as large as the image, and is opened
//! with `O_EXCL`, which the kernel refuses (EBUSY) while it is mounted or in use.

use crate::client::CliError;
use crate::output;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The output of an export.
#[derive(Debug, PartialEq, Eq)]
pub enum ImageTarget {
    File { path: PathBuf, partial: PathBuf },
    Device { path: PathBuf },
}

/// An opened target; dropping it without [`OpenImage::commit`] removes `FILE.partial`.
pub struct OpenImage {
    pub file: File,
    partial: Option<PathBuf>,
}

impl Drop for OpenImage {
    fn drop(&mut self) {
        if let Some(p) = self.partial.take() {
            let _ = fs::remove_file(p);
        }
    }
}

impl ImageTarget {
    /// Checks `out` before anything is downloaded.
    pub fn check(out: &Path, force: bool) -> Result<Self, CliError> {
        let shown = out.display();
        match fs::metadata(out) {
            Ok(m) if m.file_type().is_block_device() && !force => {
                Err(CliError::Failed(format!("{shown} is a block device: pass --force to overwrite it with the image")))
            }
            Ok(m) if m.file_type().is_block_device() => Ok(Self::Device { path: out.to_path_buf() }),
            Ok(m) if m.is_file() && m.len() > 0 && !force => Err(CliError::Failed(format!(
                "refusing to overwrite {shown} ({}): pass --force to replace it",
                output::format_size(m.len())
            ))),
            Ok(m) if !m.is_file() => {
                Err(CliError::Failed(format!("{shown} is neither a regular file nor a block device")))
            }
            Ok(_) => Ok(Self::file(out)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Self::file(out)),
            Err(e) => Err(CliError::io(format!("cannot check {shown}"), e)),
        }
    }

    /// A regular file target: `out` via `out.partial`.
    pub fn file(out: &Path) -> Self {
        let mut partial = OsString::from(out.as_os_str());
        partial.push(".partial");
        Self::File { path: out.to_path_buf(), partial: PathBuf::from(partial) }
    }

    /// A block device is written in full; a fresh regular file may keep holes.
    pub fn sparse(&self) -> bool {
        matches!(self, Self::File { .. })
    }

    /// Opens the target for an image of `total` bytes.
    pub fn open(&self, total: u64) -> Result<OpenImage, CliError> {
        match self {
            Self::File { partial, .. } => {
                let file = OpenOptions::new().write(true).create(true).truncate(true).open(partial);
                let file = file.map_err(|e| CliError::io(format!("cannot create {}", partial.display()), e))?;
                Ok(OpenImage { file, partial: Some(partial.clone()) })
            }
            Self::Device { path } => Ok(OpenImage { file: open_device(path, total)?, partial: None }),
        }
    }

    /// After the image is complete and synced: renames `FILE.partial` to FILE (durably).
    pub fn commit(&self, mut image: OpenImage) -> Result<(), CliError> {
        if let Self::File { path, partial } = self {
            fs::rename(partial, path)
                .map_err(|e| CliError::io(format!("cannot rename {} to {}", partial.display(), path.display()), e))?;
            image.partial = None;
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(())
    }
}

fn open_device(path: &Path, total: u64) -> Result<File, CliError> {
    let shown = path.display();
    let mut f = OpenOptions::new()
        .write(true)
        // O_EXCL without O_CREAT on a block device: the kernel answers EBUSY while the device
        // is mounted or held by another exclusive opener.
        .custom_flags(libc::O_EXCL)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::ResourceBusy => {
                CliError::Failed(format!("block device {shown} is in use (mounted?): not writing to it"))
            }
            _ => CliError::io(format!("cannot open {shown}"), e),
        })?;
    let size = f.seek(SeekFrom::End(0)).map_err(|e| CliError::io(format!("cannot size {shown}"), e))?;
    if size < total {
        return Err(CliError::Failed(format!(
            "block device {shown} holds {} but the image is {}: not writing to it",
            output::format_size(size),
            output::format_size(total)
        )));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::tests::temp_path;

    #[test]
    fn existing_files_need_force() {
        let out = temp_path("target.img");
        assert_eq!(ImageTarget::check(&out, false).unwrap(), ImageTarget::file(&out));
        fs::write(&out, b"").unwrap();
        assert!(ImageTarget::check(&out, false).is_ok(), "an empty file may be replaced");
        fs::write(&out, b"old image").unwrap();
        let err = ImageTarget::check(&out, false).unwrap_err().to_string();
        assert!(err.starts_with("refusing to overwrite") && err.contains("--force"), "{err}");
        assert!(ImageTarget::check(&out, true).is_ok());
        let dir = out.parent().unwrap();
        let err = ImageTarget::check(dir, true).unwrap_err().to_string();
        assert!(err.contains("neither a regular file nor a block device"), "{err}");
        let t = ImageTarget::file(Path::new("/x/d.img"));
        assert!(matches!(t, ImageTarget::File { ref partial, .. } if partial == Path::new("/x/d.img.partial")));
        fs::remove_file(&out).unwrap();
    }

    #[test]
    fn partial_file_goes_unless_committed() {
        let out = temp_path("commit.img");
        let target = ImageTarget::file(&out);
        let ImageTarget::File { partial, .. } = &target else { unreachable!() };
        drop(target.open(10).unwrap());
        assert!(!partial.exists() && !out.exists(), "dropped: no partial, no file");
        let image = target.open(10).unwrap();
        assert!(partial.exists());
        target.commit(image).unwrap();
        assert!(!partial.exists() && out.exists(), "committed: renamed into place");
        fs::remove_file(&out).unwrap();
    }
}
