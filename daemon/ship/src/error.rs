//! Errors of the disk and reader stages.
//!
//! Every message names the object it is about: the disk (index and path) and, for a failed
//! read, the byte offset and the chunks of the request, so a log line alone says where.

use std::io;
use std::path::PathBuf;

pub use drpair_types::ErrorClass;

/// Why a disk could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// disk '{path}': cannot open: {source}
    #[error("disk '{path}': cannot open: {source}")]
    Open { path: PathBuf, source: io::Error },

    /// disk '{path}': is a {kind}, not a regular file or block device
    #[error("disk '{path}': is a {kind}, not a regular file or block device")]
    NotADisk { path: PathBuf, kind: &'static str },

    /// disk '{path}': cannot read its size: {source}
    #[error("disk '{path}': cannot read its size: {source}")]
    Size { path: PathBuf, source: io::Error },

    /// disk {disk} '{path}': the geometry says {geometry_bytes} bytes but the disk has only {disk_bytes}
    #[error("disk {disk} '{path}': the geometry says {geometry_bytes} bytes but the disk has only {disk_bytes}")]
    GeometryMismatch { disk: u32, path: PathBuf, geometry_bytes: u64, disk_bytes: u64 },

    /// invalid reader configuration: {0}
    #[error("invalid reader configuration: {0}")]
    Config(String),

    /// no disk {disk}: this reader has {disks} disk(s)
    #[error("no disk {disk}: this reader has {disks} disk(s)")]
    NoSuchDisk { disk: u32, disks: usize },

    /// disk {disk} '{path}': request for 0 chunks at chunk {first_chunk} (tag {tag})
    #[error("disk {disk} '{path}': request for 0 chunks at chunk {first_chunk} (tag {tag})")]
    EmptyRequest { disk: u32, path: PathBuf, first_chunk: u64, tag: u64 },

    /// disk {disk} '{path}': {chunk_count} chunk(s) from chunk {first_chunk} (tag {tag}) reach beyond the disk end ({disk_chunks} chunks)
    #[error(
        "disk {disk} '{path}': {chunk_count} chunk(s) from chunk {first_chunk} (tag {tag}) reach beyond the disk end ({disk_chunks} chunks)"
    )]
    OutOfRange { disk: u32, path: PathBuf, first_chunk: u64, chunk_count: u32, disk_chunks: u64, tag: u64 },

    /// disk {disk} '{path}' offset {offset}: read failed (chunks {first_chunk}+{chunk_count}, tag {tag}): {source}
    #[error(
        "disk {disk} '{path}' offset {offset}: read failed (chunks {first_chunk}+{chunk_count}, tag {tag}): {source}"
    )]
    Io { disk: u32, path: PathBuf, offset: u64, first_chunk: u64, chunk_count: u32, tag: u64, source: io::Error },

    /// disk {disk} '{path}' offset {offset}: unexpected end of disk (chunks {first_chunk}+{chunk_count}, tag {tag}); did the disk shrink?
    #[error(
        "disk {disk} '{path}' offset {offset}: unexpected end of disk (chunks {first_chunk}+{chunk_count}, tag {tag}); did the disk shrink?"
    )]
    UnexpectedEof { disk: u32, path: PathBuf, offset: u64, first_chunk: u64, chunk_count: u32, tag: u64 },

    /// cannot start the reader thread: {0}
    #[error("cannot start the reader thread: {0}")]
    Spawn(io::Error),

    /// the reader thread has stopped
    #[error("the reader thread has stopped")]
    Stopped,
}

impl ReadError {
    /// Transient or permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            ReadError::Open { source, .. } | ReadError::Size { source, .. } => os_class(source),
            ReadError::Io { source, .. } => os_class(source),
            ReadError::Spawn(_) => ErrorClass::Transient,
            ReadError::NotADisk { .. }
            | ReadError::GeometryMismatch { .. }
            | ReadError::Config(_)
            | ReadError::NoSuchDisk { .. }
            | ReadError::EmptyRequest { .. }
            | ReadError::OutOfRange { .. }
            | ReadError::UnexpectedEof { .. }
            | ReadError::Stopped => ErrorClass::Permanent,
        }
    }

    /// The tag of the request this error belongs to, when it belongs to one.
    pub fn tag(&self) -> Option<u64> {
        match self {
            ReadError::EmptyRequest { tag, .. }
            | ReadError::OutOfRange { tag, .. }
            | ReadError::Io { tag, .. }
            | ReadError::UnexpectedEof { tag, .. } => Some(*tag),
            _ => None,
        }
    }
}

fn os_class(e: &io::Error) -> ErrorClass {
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EINTR | libc::ENOMEM | libc::EBUSY | libc::ENOENT | libc::ENXIO) => {
            ErrorClass::Transient
        }
        _ => ErrorClass::Permanent,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_disk_and_offset() {
        let e = ReadError::Io {
            disk: 2,
            path: "/dev/loop7".into(),
            offset: 65536,
            first_chunk: 1,
            chunk_count: 3,
            tag: 9,
            source: io::Error::from_raw_os_error(libc::EIO),
        };
        let m = e.to_string();
        assert!(m.starts_with("disk 2 '/dev/loop7' offset 65536: read failed (chunks 1+3, tag 9)"), "{m}");
        assert_eq!(e.class(), ErrorClass::Permanent);
        assert_eq!(e.tag(), Some(9));
        let busy = ReadError::Open { path: "/dev/sdz".into(), source: io::Error::from_raw_os_error(libc::EBUSY) };
        assert_eq!(busy.class(), ErrorClass::Transient);
        assert_eq!(busy.tag(), None);
    }
}
