//! Chunk geometry: how a disk is cut into fixed-size chunks.

use serde::{Deserialize, Serialize};

/// Why a geometry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// chunk size is not a power of two between 4 KiB and 4 MiB
    #[error("chunk size {0} must be a power of two between 4096 (4 KiB) and 4194304 (4 MiB)")]
    ChunkSize(u64),
    /// disk is empty
    #[error("disk size must be larger than zero")]
    EmptyDisk,
    /// disk or chunk count past what drpair protects
    #[error(
        "disk of {size} bytes in chunks of {chunk} is past the limit of {max_bytes} bytes (1 PiB) and {max_chunks} chunks per disk (use larger chunks)",
        max_bytes = DiskGeometry::MAX_BYTES, max_chunks = DiskGeometry::MAX_CHUNKS
    )]
    TooLarge { size: u64, chunk: u32 },
}

/// A chunk size: a power of two between 4 KiB and 4 MiB. Default 64 KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u64", into = "u64")]
pub struct ChunkSize(u32);

impl ChunkSize {
    pub const MIN: u32 = 4096;
    pub const MAX: u32 = 4 << 20;
    pub const DEFAULT: ChunkSize = ChunkSize(64 << 10);

    pub fn new(bytes: u64) -> Result<Self, GeometryError> {
        if bytes.is_power_of_two() && (Self::MIN as u64..=Self::MAX as u64).contains(&bytes) {
            Ok(Self(bytes as u32))
        } else {
            Err(GeometryError::ChunkSize(bytes))
        }
    }

    pub fn bytes(self) -> u32 {
        self.0
    }

    pub fn shift(self) -> u32 {
        self.0.trailing_zeros()
    }
}

impl Default for ChunkSize {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl TryFrom<u64> for ChunkSize {
    type Error = GeometryError;
    fn try_from(v: u64) -> Result<Self, GeometryError> {
        Self::new(v)
    }
}

impl From<ChunkSize> for u64 {
    fn from(c: ChunkSize) -> u64 {
        c.0 as u64
    }
}

/// The geometry of one disk of a pair: its size and chunk size. The last chunk may be short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DiskGeometry {
    pub size_bytes: u64,
    pub chunk_size: ChunkSize,
}

impl DiskGeometry {
    /// Largest disk protected (1 PiB).
    pub const MAX_BYTES: u64 = 1 << 50;
    /// Most chunks of one disk (a bitmap of them is 256 MiB).
    pub const MAX_CHUNKS: u64 = 1 << 31;

    /// A disk's geometry; sizes past [`Self::MAX_BYTES`] or [`Self::MAX_CHUNKS`] are refused
    /// (they come from the wire too: nothing may be sized from them unchecked).
    pub fn new(size_bytes: u64, chunk_size: ChunkSize) -> Result<Self, GeometryError> {
        if size_bytes == 0 {
            return Err(GeometryError::EmptyDisk);
        }
        let g = Self { size_bytes, chunk_size };
        if size_bytes > Self::MAX_BYTES || g.chunk_count() > Self::MAX_CHUNKS {
            return Err(GeometryError::TooLarge { size: size_bytes, chunk: chunk_size.bytes() });
        }
        Ok(g)
    }

    /// Number of chunks, counting a short last chunk.
    pub fn chunk_count(&self) -> u64 {
        self.size_bytes.div_ceil(self.chunk_size.bytes() as u64)
    }

    /// Byte offset of chunk `index`.
    pub fn chunk_offset(&self, index: u64) -> u64 {
        index << self.chunk_size.shift()
    }

    /// Length in bytes of chunk `index` (the last one may be short); 0 when out of range.
    pub fn chunk_len(&self, index: u64) -> u32 {
        let off = self.chunk_offset(index);
        if index >= self.chunk_count() {
            return 0;
        }
        (self.size_bytes - off).min(self.chunk_size.bytes() as u64) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_sizes() {
        assert!(ChunkSize::new(4096).is_ok());
        assert!(ChunkSize::new(4 << 20).is_ok());
        for bad in [0, 2048, 8 << 20, 65535, 3 << 12] {
            assert!(ChunkSize::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn short_last_chunk() {
        let g = DiskGeometry::new(65536 * 3 + 100, ChunkSize::DEFAULT).unwrap();
        assert_eq!(g.chunk_count(), 4);
        assert_eq!(g.chunk_len(2), 65536);
        assert_eq!(g.chunk_len(3), 100);
        assert_eq!(g.chunk_len(4), 0);
        assert_eq!(g.chunk_offset(3), 65536 * 3);
    }
}

#[cfg(test)]
mod hostile_tests {
    use super::*;

    /// Sizes from the wire: any pair is refused or gives a geometry whose chunk count is within
    /// the cap (nothing may be sized past it). Cases: `DRPAIR_FUZZ_CASES` (default 256).
    #[test]
    fn sizes_from_the_wire_are_bounded() {
        let cases: u64 = std::env::var("DRPAIR_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for i in 0..cases.max(64) {
            // xorshift: sizes spread over every magnitude, edges included.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let size = match i % 4 {
                0 => x,
                1 => x >> (x % 64),
                2 => DiskGeometry::MAX_BYTES.wrapping_add(x % 3).wrapping_sub(1),
                _ => u64::MAX - (x % 5),
            };
            let chunk = 1u64 << (x % 40);
            if let Ok(cs) = ChunkSize::new(chunk)
                && let Ok(g) = DiskGeometry::new(size, cs)
            {
                assert!(g.chunk_count() <= DiskGeometry::MAX_CHUNKS && g.size_bytes <= DiskGeometry::MAX_BYTES);
            }
        }
        assert!(DiskGeometry::new(1 << 63, ChunkSize::DEFAULT).is_err(), "the 2^63-byte Hello of the probe");
    }
}
