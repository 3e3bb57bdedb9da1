//! Why reading a disk of a recovery point failed. Each message names the disk and chunk.

use crate::StoreError;
use drpair_types::{Epoch, PointId};

pub use drpair_types::ErrorClass;

/// Why a [`crate::PointReader`] could not be opened or could not read.
#[derive(Debug, thiserror::Error)]
pub enum PointReadError {
    /// The pair has no committed point with this id.
    #[error("pair #{pair_no}: no recovery point {point}")]
    PointNotFound { pair_no: u32, point: PointId },
    /// The pair has fewer disks.
    #[error("pair #{pair_no} has {count} disk(s), numbered from 0; disk {disk} does not exist")]
    DiskNotFound { pair_no: u32, disk: u32, count: usize },
    /// A read reaches past the end of the disk.
    #[error("disk {disk}: bytes {offset}+{len} reach past its end at {size}")]
    OutOfRange { disk: u32, offset: u64, len: u64, size: u64 },
    /// The version index has no entry for the chunk at or before the point: a point that was
    /// never written in full (the chunk was never written up to then).
    #[error("disk {disk} chunk {chunk}: no version at or before epoch {epoch}")]
    NoVersion { disk: u32, chunk: u64, epoch: Epoch },
    /// The stored chunk is intact but not as long as the disk's chunk.
    #[error("disk {disk} chunk {chunk}: stored length {stored} differs from {expected}")]
    Length { disk: u32, chunk: u64, stored: usize, expected: usize },
    /// The chunk the point names could not be read back: missing, damaged (blake3 mismatch,
    /// bad header), not decompressible, or rocksdb failed.
    #[error("disk {disk} chunk {chunk} at epoch {epoch}: {source}")]
    Chunk { disk: u32, chunk: u64, epoch: Epoch, source: StoreError },
    /// The version index could not be read.
    #[error("disk {disk} at epoch {epoch}: reading the version index: {source}")]
    Index { disk: u32, epoch: Epoch, source: StoreError },
}

impl PointReadError {
    /// Transient when the store's error is; everything else is permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            PointReadError::Chunk { source, .. } | PointReadError::Index { source, .. } if source.is_retryable() => {
                ErrorClass::Transient
            }
            _ => ErrorClass::Permanent,
        }
    }

    /// The store's error underneath, when there is one.
    pub fn store_error(&self) -> Option<&StoreError> {
        match self {
            PointReadError::Chunk { source, .. } | PointReadError::Index { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_disk_and_chunk() {
        let e = PointReadError::NoVersion { disk: 1, chunk: 7, epoch: 9 };
        assert_eq!(e.to_string(), "disk 1 chunk 7: no version at or before epoch 9");
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = PointReadError::Chunk {
            disk: 0,
            chunk: 3,
            epoch: 5,
            source: StoreError::MissingChunk { hash: "ab".into() },
        };
        assert_eq!(e.to_string(), "disk 0 chunk 3 at epoch 5: chunk ab: not in the store");
        assert!(matches!(e.store_error(), Some(StoreError::MissingChunk { .. })));
        assert_eq!(e.class(), ErrorClass::Permanent);
        let e = PointReadError::Length { disk: 0, chunk: 2, stored: 10, expected: 4096 };
        assert_eq!(e.to_string(), "disk 0 chunk 2: stored length 10 differs from 4096");
    }
}
