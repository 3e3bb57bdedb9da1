//! What a recovery reports: the image written, and every chunk it could not recover.

use drpair_types::{PairId, PointId};
use serde::Serialize;
use std::fmt;

/// Damaged chunks listed in the report; the count goes on past it.
pub const MAX_LISTED: usize = 100_000;

/// Why a chunk could not be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageReason {
    /// The version index has no entry for the chunk at or before the point.
    NoVersion,
    /// The chunk's version entry could not be read.
    BadVersion,
    /// The version names a chunk the store does not hold.
    MissingChunk,
    /// The stored chunk fails verification (header, length or blake3).
    Corrupt,
    /// The stored chunk does not decompress.
    Decompress,
    /// rocksdb could not read the stored chunk.
    Unreadable,
}

impl DamageReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DamageReason::NoVersion => "no version",
            DamageReason::BadVersion => "bad version entry",
            DamageReason::MissingChunk => "missing chunk",
            DamageReason::Corrupt => "corrupt",
            DamageReason::Decompress => "does not decompress",
            DamageReason::Unreadable => "unreadable",
        }
    }
}

/// A chunk written as zeros because it could not be recovered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DamagedChunk {
    pub disk: u32,
    pub chunk: u64,
    /// Byte offset in the image.
    pub offset: u64,
    pub length: u32,
    /// blake3 (hex) of the content the point refers to, when the index names one.
    pub hash: Option<String>,
    pub reason: DamageReason,
    /// The store's message.
    pub detail: String,
}

impl fmt::Display for DamagedChunk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "disk {} chunk {} at byte {} ({} bytes): {}: {}",
            self.disk,
            self.chunk,
            self.offset,
            self.length,
            self.reason.as_str(),
            self.detail
        )
    }
}

/// What a recovery wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecoverReport {
    pub pair_id: PairId,
    pub point: PointId,
    /// Time of the point's cut, RFC 3339 UTC.
    pub point_time: String,
    pub disk: u32,
    pub out: String,
    /// Size of the image (the disk).
    pub bytes: u64,
    pub chunk_size: u32,
    pub chunks: u64,
    /// Chunks the point holds as all zero.
    pub zero_chunks: u64,
    /// Chunks written as zeros because they could not be recovered.
    pub damaged_chunks: u64,
    /// Those chunks, the first [`MAX_LISTED`] of them.
    pub damaged: Vec<DamagedChunk>,
    /// blake3 (hex) of the image written.
    pub blake3: String,
    pub seconds: f64,
}
