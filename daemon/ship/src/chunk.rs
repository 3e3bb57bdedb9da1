//! Per-chunk work: blake3 hash, zero detection, zstd compression and bounded decompression.
//!
//! A [`Compressor`] and a [`Decompressor`] each keep one zstd context: make one per worker
//! thread and reuse it for every chunk.

use std::io;

use drpair_types::ChunkSize;

/// blake3 hash of a chunk's raw bytes.
pub type Hash = [u8; 32];

/// blake3 of `data`.
pub fn hash_chunk(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

/// True when every byte is zero. ORs 256-byte blocks as 16-byte words (the compiler
/// vectorises this) and stops at the first non-zero block: several times faster than
/// `iter().all(|&b| b == 0)` on zero chunks (see `measure_is_zero`).
pub fn is_zero(data: &[u8]) -> bool {
    const BLOCK: usize = 256;
    let mut blocks = data.chunks_exact(BLOCK);
    for block in &mut blocks {
        let mut acc = 0u128;
        for word in block.chunks_exact(16) {
            acc |= u128::from_ne_bytes(word.try_into().expect("16 bytes"));
        }
        if acc != 0 {
            return false;
        }
    }
    blocks.remainder().iter().all(|&b| b == 0)
}

/// Compression setting of a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Off,
    /// zstd at this level (clamped to zstd's range; 0 means zstd's default, 3).
    Zstd(i32),
}

/// A chunk is shipped compressed only when that saves at least 1/32 (~3%) of it.
const MIN_SAVING_DIVISOR: usize = 32;

/// Reusable zstd compressor. One per worker thread.
pub struct Compressor {
    setting: Compression,
    zstd: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Compressor {
    /// Panics only if zstd cannot allocate its context (out of memory).
    pub fn new(c: Compression) -> Self {
        let zstd = zstd::bulk::Compressor::new(0).expect("allocate a zstd compression context");
        let mut this = Compressor { setting: Compression::Off, zstd, scratch: Vec::new() };
        this.set(c);
        this
    }

    /// Changes the setting (e.g. from [`crate::AdaptiveLevel`]); the context is kept.
    pub fn set(&mut self, c: Compression) {
        let c = match c {
            Compression::Off => Compression::Off,
            Compression::Zstd(level) => {
                let range = zstd::compression_level_range();
                Compression::Zstd(level.clamp(*range.start(), *range.end()))
            }
        };
        if let Compression::Zstd(level) = c {
            self.zstd.set_compression_level(level).expect("a level within zstd's range");
        }
        self.setting = c;
    }

    /// The current setting (levels clamped to zstd's range).
    pub fn setting(&self) -> Compression {
        self.setting
    }

    /// The compressed payload, or `None` to ship `data` raw: compression off, or the result
    /// not at least ~3% smaller.
    pub fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        if self.setting == Compression::Off || data.is_empty() {
            return None;
        }
        let limit = data.len() - data.len() / MIN_SAVING_DIVISOR;
        self.scratch.clear();
        self.scratch.reserve(zstd::zstd_safe::compress_bound(data.len()));
        match self.zstd.compress_to_buffer(data, &mut self.scratch) {
            Ok(n) if n < limit => Some(self.scratch[..n].to_vec()),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, len = data.len(), "zstd compression failed; shipping raw");
                None
            }
        }
    }
}

/// Why a compressed chunk was refused.
#[derive(Debug, thiserror::Error)]
pub enum DecompressError {
    /// stated chunk length {raw_len} exceeds the largest chunk size {max}
    #[error("stated chunk length {raw_len} exceeds the largest chunk size {max}")]
    TooLong { raw_len: u32, max: u32 },
    /// compressed chunk is corrupt or larger than its stated length {raw_len}: {source}
    #[error("compressed chunk is corrupt or larger than its stated length {raw_len}: {source}")]
    Corrupt { raw_len: u32, source: io::Error },
    /// compressed chunk decompressed to {got} bytes, expected {raw_len}
    #[error("compressed chunk decompressed to {got} bytes, expected {raw_len}")]
    LengthMismatch { got: usize, raw_len: u32 },
}

/// Reusable zstd decompressor. One per worker thread.
pub struct Decompressor {
    zstd: zstd::bulk::Decompressor<'static>,
}

impl Default for Decompressor {
    fn default() -> Self {
        Self::new()
    }
}

impl Decompressor {
    /// Panics only if zstd cannot allocate its context (out of memory).
    pub fn new() -> Self {
        Decompressor { zstd: zstd::bulk::Decompressor::new().expect("allocate a zstd decompression context") }
    }

    /// Decompresses a payload that must yield exactly `raw_len` bytes. Never allocates more
    /// than `raw_len` (itself at most [`ChunkSize::MAX`]) whatever the payload claims.
    pub fn decompress(&mut self, payload: &[u8], raw_len: u32) -> Result<Vec<u8>, DecompressError> {
        if raw_len > ChunkSize::MAX {
            return Err(DecompressError::TooLong { raw_len, max: ChunkSize::MAX });
        }
        let mut out = Vec::with_capacity(raw_len as usize);
        // The Vec's capacity bounds the output: zstd fails rather than writing more.
        let got = self
            .zstd
            .decompress_to_buffer(payload, &mut out)
            .map_err(|source| DecompressError::Corrupt { raw_len, source })?;
        if got != raw_len as usize {
            return Err(DecompressError::LengthMismatch { got, raw_len });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn hash_is_blake3() {
        assert_eq!(
            hash_chunk(b""),
            *blake3::Hash::from_hex("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
                .unwrap()
                .as_bytes()
        );
        assert_ne!(hash_chunk(b"a"), hash_chunk(b"b"));
    }

    #[test]
    fn zero_detection_sees_every_byte() {
        for len in [0usize, 1, 15, 16, 17, 255, 256, 257, 4096, 65536 + 3] {
            let mut v = vec![0u8; len];
            assert!(is_zero(&v), "len {len}");
            for pos in [0, len / 2, len.saturating_sub(1)] {
                if len == 0 {
                    continue;
                }
                v[pos] = 0x80;
                assert!(!is_zero(&v), "len {len} pos {pos}");
                // unaligned view
                assert_eq!(is_zero(&v[1..]), pos == 0, "len {len} pos {pos}");
                v[pos] = 0;
            }
        }
    }

    #[test]
    fn compress_roundtrip_and_thresholds() {
        let text: Vec<u8> = b"drpair ships chunks. ".iter().cycle().take(65536).copied().collect();
        let mut c = Compressor::new(Compression::Zstd(3));
        let packed = c.compress(&text).expect("text compresses");
        assert!(packed.len() < text.len() / 10);
        let mut d = Decompressor::new();
        assert_eq!(d.decompress(&packed, text.len() as u32).unwrap(), text);

        let mut noise = vec![0u8; 65536];
        rand::rng().fill_bytes(&mut noise);
        assert!(c.compress(&noise).is_none(), "random data ships raw");
        assert!(c.compress(&[]).is_none());

        c.set(Compression::Off);
        assert!(c.compress(&text).is_none());
        c.set(Compression::Zstd(1000));
        assert_eq!(c.setting(), Compression::Zstd(*zstd::compression_level_range().end()));
        assert!(c.compress(&text).is_some());
    }

    #[test]
    fn decompress_never_trusts_lengths() {
        let data = vec![7u8; 65536];
        let packed = Compressor::new(Compression::Zstd(1)).compress(&data).unwrap();
        let mut d = Decompressor::new();
        // Claims fewer bytes than the payload holds: refused, no larger buffer.
        assert!(matches!(d.decompress(&packed, 4096), Err(DecompressError::Corrupt { .. })));
        // Claims more: decompresses, but the length must match exactly.
        assert!(matches!(d.decompress(&packed, 65537), Err(DecompressError::LengthMismatch { got: 65536, .. })));
        // Absurd length from the wire: refused before allocating.
        assert!(matches!(d.decompress(&packed, u32::MAX), Err(DecompressError::TooLong { .. })));
        // Garbage.
        let e = d.decompress(b"not zstd at all", 100).unwrap_err();
        assert!(e.to_string().contains("corrupt"), "{e}");
        // Still usable afterwards.
        assert_eq!(d.decompress(&packed, 65536).unwrap(), data);
    }

    /// Ad-hoc: `cargo test --release -p drpair-ship -- --ignored --nocapture measure_is_zero`
    #[test]
    #[ignore]
    fn measure_is_zero() {
        let data = vec![0u8; 64 << 10];
        let rounds = 20_000;
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            assert!(is_zero(std::hint::black_box(&data)));
        }
        let words = t.elapsed();
        let t = std::time::Instant::now();
        for _ in 0..rounds {
            assert!(std::hint::black_box(&data).iter().all(|&b| b == 0));
        }
        let naive = t.elapsed();
        let gbs = |d: std::time::Duration| (data.len() * rounds) as f64 / d.as_secs_f64() / 1e9;
        println!("is_zero 64 KiB zero chunks: words {:.1} GB/s, iter().all {:.1} GB/s", gbs(words), gbs(naive));
    }
}
