//! Why a chunk could not be compressed or decompressed.

use std::io;

pub use drpair_types::ErrorClass;

/// Why a chunk could not be compressed or decompressed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// stated chunk length {raw_len} exceeds the largest chunk size {max}
    #[error("stated chunk length {raw_len} exceeds the largest chunk size {max}")]
    TooLong { raw_len: u32, max: u32 },
    /// compressed chunk is corrupt or larger than its stated length {raw_len}: {source}
    #[error("compressed chunk is corrupt or larger than its stated length {raw_len}: {source}")]
    Corrupt { raw_len: u32, source: io::Error },
    /// compressed chunk decompressed to {got} bytes, expected {raw_len}
    #[error("compressed chunk decompressed to {got} bytes, expected {raw_len}")]
    LengthMismatch { got: usize, raw_len: u32 },
    /// zstd compression failed: {0}
    #[error("zstd compression failed: {0}")]
    Compress(io::Error),
    /// cannot make a zstd context: {0}
    #[error("cannot make a zstd context: {0}")]
    Context(io::Error),
}

impl CodecError {
    /// Transient or permanent.
    pub fn class(&self) -> ErrorClass {
        match self {
            CodecError::Context(_) => ErrorClass::Transient,
            CodecError::TooLong { .. }
            | CodecError::Corrupt { .. }
            | CodecError::LengthMismatch { .. }
            | CodecError::Compress(_) => ErrorClass::Permanent,
        }
    }
}
