//! Dump images: the formats the loader reads (raw, or qcow2 through `qemu-img`), the checks
//! made before loading, and the conversion of a qcow2 image to a raw scratch file.

use super::errors::DumpLoadError;
use super::format::{ImageFormat, ImageInfo};
use super::progress::LoadProgress;
use drpair_types::DiskGeometry;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

/// First bytes of every qcow2 image.
const QCOW2_MAGIC: [u8; 4] = *b"QFI\xfb";
/// The qemu-img binary (looked up in `PATH`).
pub(super) const QEMU_IMG: &str = "qemu-img";
/// How often a running `qemu-img convert` is checked for completion and cancellation.
const CONVERT_POLL: Duration = Duration::from_millis(100);

/// Checks an image before any loading: `image` must be an absolute path to an existing regular
/// file or block device, readable; format detected from the content (qcow2 magic "QFI\xfb" at
/// offset 0, otherwise raw) unless `format` is given (a given format that contradicts the
/// content is refused); the virtual size (file/device size for raw, `qemu-img info
/// --output=json` "virtual-size" for qcow2) must equal `geometry.size_bytes`, else an error
/// naming both sizes and the disk.
pub fn probe(
    image: &Path,
    format: Option<ImageFormat>,
    disk: u32,
    geometry: &DiskGeometry,
) -> Result<ImageInfo, DumpLoadError> {
    let file = open_image(image)?;
    let mut magic = [0u8; 4];
    let got = read_prefix(&file, &mut magic).map_err(|source| DumpLoadError::Read {
        path: image.into(),
        offset: 0,
        source,
    })?;
    let detected = if got == magic.len() && magic == QCOW2_MAGIC { ImageFormat::Qcow2 } else { ImageFormat::Raw };
    if let Some(given) = format
        && given != detected
    {
        return Err(DumpLoadError::FormatMismatch { path: image.into(), given, detected });
    }
    let virtual_size = match detected {
        ImageFormat::Raw => file_size(image, &file)?,
        ImageFormat::Qcow2 => qcow2_virtual_size(image)?,
    };
    if virtual_size != geometry.size_bytes {
        return Err(DumpLoadError::SizeMismatch {
            path: image.into(),
            format: detected,
            disk,
            image_size: virtual_size,
            disk_size: geometry.size_bytes,
        });
    }
    Ok(ImageInfo { format: detected, virtual_size })
}

/// Checks the path and opens it for reading.
pub(super) fn open_image(image: &Path) -> Result<File, DumpLoadError> {
    if !image.is_absolute() {
        return Err(DumpLoadError::RelativePath { path: image.into() });
    }
    let meta = std::fs::metadata(image).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => DumpLoadError::NotFound { path: image.into() },
        _ => DumpLoadError::Access { path: image.into(), source },
    })?;
    let ft = meta.file_type();
    if !ft.is_file() && !ft.is_block_device() {
        let kind = if ft.is_dir() {
            "directory"
        } else if ft.is_fifo() {
            "FIFO"
        } else if ft.is_socket() {
            "socket"
        } else if ft.is_char_device() {
            "character device"
        } else {
            "special file"
        };
        return Err(DumpLoadError::NotAFile { path: image.into(), kind });
    }
    File::open(image).map_err(|source| DumpLoadError::Access { path: image.into(), source })
}

/// Reads up to `buf.len()` bytes at offset 0; fewer only at the end of the file.
fn read_prefix(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Size of a regular file or block device (a block device's metadata says 0: seek instead).
pub(super) fn file_size(path: &Path, mut file: &File) -> Result<u64, DumpLoadError> {
    file.seek(SeekFrom::End(0)).map_err(|source| DumpLoadError::Access { path: path.into(), source })
}

/// Runs qemu-img to completion; a missing binary and a failed run are errors naming `image`.
fn qemu_img(step: &'static str, image: &Path, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, DumpLoadError> {
    let out =
        Command::new(QEMU_IMG).args(args).stdin(Stdio::null()).output().map_err(|e| spawn_error(step, image, e))?;
    if !out.status.success() {
        return Err(DumpLoadError::QemuImg {
            step,
            path: image.into(),
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(out.stdout)
}

fn spawn_error(step: &'static str, image: &Path, e: io::Error) -> DumpLoadError {
    if e.kind() == io::ErrorKind::NotFound {
        DumpLoadError::QemuImgMissing { path: image.into() }
    } else {
        DumpLoadError::QemuImg { step, path: image.into(), detail: format!("cannot run {QEMU_IMG}: {e}") }
    }
}

/// `virtual-size` from `qemu-img info --output=json -f qcow2 IMAGE`.
fn qcow2_virtual_size(image: &Path) -> Result<u64, DumpLoadError> {
    #[derive(serde::Deserialize)]
    struct Info {
        #[serde(rename = "virtual-size")]
        virtual_size: u64,
    }
    let args = ["info".as_ref(), "--output=json".as_ref(), "-f".as_ref(), "qcow2".as_ref(), image.as_os_str()];
    let out = qemu_img("info", image, &args)?;
    let info: Info = serde_json::from_slice(&out).map_err(|e| DumpLoadError::QemuImg {
        step: "info",
        path: image.into(),
        detail: format!("unexpected output ({e})"),
    })?;
    Ok(info.virtual_size)
}

/// A file in the scratch directory, removed when dropped.
pub(super) struct ScratchFile(pub(super) PathBuf);

impl Drop for ScratchFile {
    fn drop(&mut self) {
        match std::fs::remove_file(&self.0) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(path = %self.0.display(), error = %e, "cannot remove converted dump image"),
        }
    }
}

/// `qemu-img convert -f qcow2 -O raw IMAGE RAW`, killed when the load is cancelled.
pub(super) fn convert_qcow2(image: &Path, raw: &Path, progress: &LoadProgress) -> Result<(), DumpLoadError> {
    let step = "convert";
    let mut child = Command::new(QEMU_IMG)
        .args(["convert", "-f", "qcow2", "-O", "raw"])
        .arg(image)
        .arg(raw)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| spawn_error(step, image, e))?;
    // Drained on its own thread so that a chatty qemu-img never blocks on a full pipe.
    let stderr = child.stderr.take().map(|mut pipe| {
        std::thread::spawn(move || {
            let mut s = String::new();
            // Best effort: the message only decorates the error.
            let _ = pipe.read_to_string(&mut s);
            s
        })
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if progress.cancel.load(Ordering::Relaxed) => {
                // kill fails only when the child has exited already; wait reaps it either way.
                let _ = child.kill();
                let _ = child.wait();
                return Err(DumpLoadError::Cancelled { path: image.into() });
            }
            Ok(None) => std::thread::sleep(CONVERT_POLL),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(DumpLoadError::QemuImg {
                    step,
                    path: image.into(),
                    detail: format!("waiting for it: {e}"),
                });
            }
        }
    };
    let message = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(DumpLoadError::QemuImg {
            step,
            path: image.into(),
            detail: format!("{status}: {}", message.trim()),
        });
    }
    Ok(())
}
