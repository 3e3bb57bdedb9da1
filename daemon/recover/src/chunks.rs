//! The chunks of the disk at the point, read through the store's [`PointReader`], in spans
//! and by several threads; a chunk that cannot be read is reported, not fatal.

use crate::{DamageReason, RecoverError};
use drpair_store::{ChunkVersion, Hash, PointChunk, PointReadError, PointReader, StoreError, hash_hex};

/// One chunk of the image, as recovered.
pub(crate) enum Content {
    Zero,
    Data(Vec<u8>),
    Damaged { hash: Option<String>, reason: DamageReason, detail: String },
}

/// The chunks of one disk at one point.
pub(crate) struct DiskChunks {
    pub(crate) point: PointReader,
}

impl DiskChunks {
    /// Chunks `first..first + count`, read and verified by up to `readers` threads.
    pub(crate) fn read_span(&self, first: u64, count: u64, readers: usize) -> Result<Vec<Content>, RecoverError> {
        let versions = self.versions(first, count)?;
        let mut out: Vec<Content> = Vec::with_capacity(versions.len());
        let mut wanted: Vec<(usize, Hash)> = Vec::new();
        for (i, v) in versions.into_iter().enumerate() {
            let c = first + i as u64;
            out.push(match v {
                Ok(Some(ChunkVersion::Zero)) => Content::Zero,
                Ok(Some(ChunkVersion::Data(h))) => {
                    wanted.push((i, h));
                    Content::Zero // replaced below
                }
                Ok(None) => Content::Damaged {
                    hash: None,
                    reason: DamageReason::NoVersion,
                    detail: format!("no version at or before epoch {}", self.point.epoch()),
                },
                Err(e) => {
                    Content::Damaged { hash: None, reason: DamageReason::BadVersion, detail: format!("chunk {c}: {e}") }
                }
            });
        }
        let read_part = |part: &[(usize, Hash)]| -> Vec<Content> {
            part.iter().map(|(i, h)| self.read_chunk(first + *i as u64, h)).collect()
        };
        let per = wanted.len().div_ceil(readers.max(1)).max(1);
        let read: Vec<Content> = if wanted.len() <= per {
            read_part(&wanted)
        } else {
            std::thread::scope(|s| {
                let parts: Vec<_> = wanted.chunks(per).map(|part| s.spawn(move || read_part(part))).collect();
                parts.into_iter().flat_map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect()
            })
        };
        for ((i, _), content) in wanted.iter().zip(read) {
            out[*i] = content;
        }
        Ok(out)
    }

    /// The version of each chunk of the span. A span whose index scan fails is looked up chunk
    /// by chunk, so that one bad entry costs only its own chunk.
    fn versions(&self, first: u64, count: u64) -> Result<Vec<Result<Option<ChunkVersion>, String>>, RecoverError> {
        match self.point.versions(first, count) {
            Ok(v) => Ok(v.into_iter().map(Ok).collect()),
            Err(PointReadError::Index { source, .. }) if source.is_retryable() => Err(source.into()),
            Err(_) => Ok((first..first + count)
                .map(|c| self.point.version(c).map_err(|e| e.store_error().map_or(e.to_string(), ToString::to_string)))
                .collect()),
        }
    }

    fn read_chunk(&self, c: u64, h: &Hash) -> Content {
        let damaged = |reason, detail| Content::Damaged { hash: Some(hash_hex(h)), reason, detail };
        match self.point.load(c, Some(ChunkVersion::Data(*h))) {
            Ok(PointChunk::Data(d)) => Content::Data(d),
            Ok(PointChunk::Zero(_)) => Content::Zero,
            Err(PointReadError::Length { stored, expected, .. }) => damaged(
                DamageReason::Corrupt,
                format!("chunk {}: holds {stored} bytes, the disk's chunk {c} has {expected}", hash_hex(h)),
            ),
            Err(PointReadError::Chunk { source, .. }) => {
                let reason = match source {
                    StoreError::MissingChunk { .. } => DamageReason::MissingChunk,
                    StoreError::Corrupt { .. } => DamageReason::Corrupt,
                    StoreError::Decompress { .. } => DamageReason::Decompress,
                    _ => DamageReason::Unreadable,
                };
                damaged(reason, source.to_string())
            }
            Err(e) => damaged(DamageReason::Unreadable, e.to_string()),
        }
    }
}
