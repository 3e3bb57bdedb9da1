//! Why a step of the dump workflow was refused or failed ([`FlowError`]), and why probing or
//! loading an image failed ([`DumpLoadError`]).

use super::format::ImageFormat;
use drpair_store::StoreError;
use std::io;
use std::path::{Path, PathBuf};

/// Why a step was refused or failed.
#[derive(Debug)]
pub enum FlowError {
    /// The pair's state does not allow the step now (409); the message names the next step.
    State(String),
    /// A parameter is wrong (400).
    Param(&'static str, String),
    /// The agent did not answer in time (504).
    Timeout(String),
    /// The store failed (500).
    Internal(String),
}

pub type Res<T> = Result<T, FlowError>;

/// Why probing or loading an image failed. Every message names the image.
#[derive(Debug, thiserror::Error)]
pub enum DumpLoadError {
    /// The image path is relative (the daemon's working directory is not the operator's).
    #[error("image path {} is relative: give an absolute path", .path.display())]
    RelativePath {
        /// The path as given.
        path: PathBuf,
    },
    /// Nothing exists at the path.
    #[error("image {} does not exist", .path.display())]
    NotFound {
        /// The image path.
        path: PathBuf,
    },
    /// The path names a directory, FIFO, socket or character device.
    #[error("image {} is a {kind}, not a regular file or block device", .path.display())]
    NotAFile {
        /// The image path.
        path: PathBuf,
        /// What it is instead.
        kind: &'static str,
    },
    /// The image (or the file converted from it) cannot be examined or opened for reading.
    #[error("cannot open image {}: {source}", .path.display())]
    Access {
        /// The path that could not be opened.
        path: PathBuf,
        /// The system's reason (permission denied, I/O error, ...).
        source: io::Error,
    },
    /// The format given by the operator contradicts the image's content.
    #[error("image {} was given as {given}, but its content is {detected}", .path.display())]
    FormatMismatch {
        /// The image path.
        path: PathBuf,
        /// The format the operator gave.
        given: ImageFormat,
        /// The format found in the content (qcow2 magic or not).
        detected: ImageFormat,
    },
    /// The image does not hold exactly as many bytes as the pair's disk.
    #[error(
        "image {} holds {image_size} bytes ({format}), but disk {disk} of the pair has {disk_size} bytes: \
         the image must be exactly the size of the disk",
        .path.display()
    )]
    SizeMismatch {
        /// The image path.
        path: PathBuf,
        /// The image's format.
        format: ImageFormat,
        /// The disk of the pair the image was meant for.
        disk: u32,
        /// Size of the image (virtual size for qcow2).
        image_size: u64,
        /// Size of the pair's disk.
        disk_size: u64,
    },
    /// `qemu-img` (needed for qcow2) is not installed.
    #[error("qemu-img not found: install qemu-utils to load qcow2 images (image {})", .path.display())]
    QemuImgMissing {
        /// The qcow2 image.
        path: PathBuf,
    },
    /// `qemu-img` failed or gave output that could not be understood.
    #[error("qemu-img {step} of image {} failed: {detail}", .path.display())]
    QemuImg {
        /// `info` or `convert`.
        step: &'static str,
        /// The qcow2 image.
        path: PathBuf,
        /// Exit status and qemu-img's own message, or why its output was refused.
        detail: String,
    },
    /// The scratch directory or the raw file converted into it could not be created.
    #[error("cannot convert image {} in scratch directory {}: {source}", .path.display(), .dir.display())]
    Scratch {
        /// The qcow2 image.
        path: PathBuf,
        /// The scratch directory.
        dir: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// Reading the image failed.
    #[error("read image {} at byte {offset}: {source}", .path.display())]
    Read {
        /// The file read (for qcow2, the raw file converted from it).
        path: PathBuf,
        /// Byte offset of the failed read.
        offset: u64,
        /// The system's reason.
        source: io::Error,
    },
    /// The image ended before the disk's size while loading (it changed after probing).
    #[error("image {} ends before byte {end} of {size}: was it changed while loading?", .path.display())]
    Truncated {
        /// The file read (for qcow2, the raw file converted from it).
        path: PathBuf,
        /// End of the read that hit the end of the file.
        end: u64,
        /// The size the image had when probed.
        size: u64,
    },
    /// The dump epoch is not newer than the base epoch given with it.
    #[error("dump epoch {epoch} for image {} must be newer than the base epoch {base}", .path.display())]
    EpochBeforeBase {
        /// The image path.
        path: PathBuf,
        /// The dump epoch D.
        epoch: u64,
        /// The base epoch.
        base: u64,
    },
    /// The pair already has a point at or after the dump epoch: the load would change it.
    #[error(
        "cannot load image {} at dump epoch {epoch}: pair #{pair_no} already has a recovery point at epoch \
         {committed}, and committed points never change",
        .path.display()
    )]
    EpochNotOpen {
        /// The image path.
        path: PathBuf,
        /// The pair's number in the store.
        pair_no: u32,
        /// The dump epoch D.
        epoch: u64,
        /// The pair's newest committed epoch.
        committed: u64,
    },
    /// zstd could not set up a compression context or compress a chunk.
    #[error("compressing chunk {chunk} of image {} failed: {source}", .path.display())]
    Compress {
        /// The image path.
        path: PathBuf,
        /// The chunk (`u64::MAX`: setting up the compressor).
        chunk: u64,
        /// zstd's reason.
        source: io::Error,
    },
    /// A worker thread could not be started.
    #[error("cannot start a thread to load image {}: {source}", .path.display())]
    Thread {
        /// The image path.
        path: PathBuf,
        /// The system's reason.
        source: io::Error,
    },
    /// The store refused or failed a read or write.
    #[error("loading image {}: store: {source}", .path.display())]
    Store {
        /// The image path.
        path: PathBuf,
        /// The store's error.
        source: StoreError,
    },
    /// The load was cancelled through [`LoadProgress::cancel`].
    #[error("loading image {} was cancelled", .path.display())]
    Cancelled {
        /// The image path.
        path: PathBuf,
    },
}

impl DumpLoadError {
    /// A store error, with the epoch refusal turned into its own message.
    pub(super) fn store(path: &Path, source: StoreError) -> Self {
        match source {
            StoreError::EpochNotOpen { pair_no, epoch, committed } => {
                DumpLoadError::EpochNotOpen { path: path.into(), pair_no, epoch, committed }
            }
            source => DumpLoadError::Store { path: path.into(), source },
        }
    }
}
