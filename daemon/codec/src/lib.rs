//! drpair-codec: the one zstd codec of drpair, used wherever a chunk is compressed or
//! decompressed (the agent's pass, the standby's ingest, the store's reads).
//!
//! # Invariants
//!
//! - **Wire and store lengths are not trusted.** [`Codec::decompress`] refuses a stated
//!   length above [`MAX_RAW_LEN`] before allocating, allocates at most the stated length, and
//!   requires the output to be exactly that long.
//! - **Compression only when it pays.** [`Codec::compress`] returns `None` (ship raw) when
//!   compression is off or the result is not at least ~3% smaller than the chunk.
//! - **One context per thread.** A [`Codec`] keeps its zstd contexts (made on first use):
//!   make one per worker thread and reuse it; [`decompress`] uses one per calling thread.

mod error;

pub use error::{CodecError, ErrorClass};

use std::cell::RefCell;

/// The largest chunk (and so the largest decompressed output): 4 MiB.
pub const MAX_RAW_LEN: u32 = drpair_types::ChunkSize::MAX;

/// A chunk is shipped compressed only when that saves at least 1/32 (~3%) of it.
const MIN_SAVING_DIVISOR: usize = 32;

/// Compression setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Off,
    /// zstd at this level (clamped to zstd's range; 0 means zstd's default, 3).
    Zstd(i32),
}

/// Largest zstd output for `len` input bytes.
pub fn compress_bound(len: usize) -> usize {
    zstd::zstd_safe::compress_bound(len)
}

/// Compresses at a level and decompresses with a hard output limit. One per thread.
pub struct Codec {
    setting: Compression,
    cctx: Option<zstd::bulk::Compressor<'static>>,
    dctx: Option<zstd::bulk::Decompressor<'static>>,
    scratch: Vec<u8>,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(Compression::Off)
    }
}

impl Codec {
    /// A codec compressing as `c` says (its contexts are made on first use).
    pub fn new(c: Compression) -> Self {
        let mut this = Codec { setting: Compression::Off, cctx: None, dctx: None, scratch: Vec::new() };
        this.set(c);
        this
    }

    /// Changes the setting (e.g. from the adaptive level); the contexts are kept.
    pub fn set(&mut self, c: Compression) {
        self.setting = match c {
            Compression::Off => Compression::Off,
            Compression::Zstd(level) => {
                let range = zstd::compression_level_range();
                Compression::Zstd(level.clamp(*range.start(), *range.end()))
            }
        };
        if let (Compression::Zstd(level), Some(cctx)) = (self.setting, self.cctx.as_mut()) {
            cctx.set_compression_level(level).expect("a level within zstd's range");
        }
    }

    /// The current setting (levels clamped to zstd's range).
    pub fn setting(&self) -> Compression {
        self.setting
    }

    /// The compressed payload, or `None` to ship `data` raw: compression off, the result not
    /// at least ~3% smaller, or zstd failing (logged).
    pub fn compress(&mut self, data: &[u8]) -> Option<Vec<u8>> {
        let Compression::Zstd(level) = self.setting else { return None };
        if data.is_empty() {
            return None;
        }
        let limit = data.len() - data.len() / MIN_SAVING_DIVISOR;
        let r = self.compress_to_scratch(level, data);
        match r {
            Ok(n) if n < limit => Some(self.scratch[..n].to_vec()),
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(error = %e, len = data.len(), "zstd compression failed; shipping raw");
                None
            }
        }
    }

    fn compress_to_scratch(&mut self, level: i32, data: &[u8]) -> Result<usize, CodecError> {
        if self.cctx.is_none() {
            self.cctx = Some(zstd::bulk::Compressor::new(level).map_err(CodecError::Context)?);
        }
        self.scratch.clear();
        self.scratch.reserve(compress_bound(data.len()));
        let cctx = self.cctx.as_mut().expect("compression context");
        cctx.compress_to_buffer(data, &mut self.scratch).map_err(CodecError::Compress)
    }

    /// Decompresses a payload that must yield exactly `raw_len` bytes. Never allocates more
    /// than `raw_len` (itself at most [`MAX_RAW_LEN`]) whatever the payload claims.
    pub fn decompress(&mut self, payload: &[u8], raw_len: u32) -> Result<Vec<u8>, CodecError> {
        if raw_len > MAX_RAW_LEN {
            return Err(CodecError::TooLong { raw_len, max: MAX_RAW_LEN });
        }
        if self.dctx.is_none() {
            self.dctx = Some(zstd::bulk::Decompressor::new().map_err(CodecError::Context)?);
        }
        let dctx = self.dctx.as_mut().expect("decompression context");
        let mut out = Vec::with_capacity(raw_len as usize);
        // The Vec's capacity bounds the output: zstd fails rather than writing more.
        let got =
            dctx.decompress_to_buffer(payload, &mut out).map_err(|source| CodecError::Corrupt { raw_len, source })?;
        if got != raw_len as usize {
            return Err(CodecError::LengthMismatch { got, raw_len });
        }
        Ok(out)
    }
}

thread_local! {
    static THREAD_CODEC: RefCell<Codec> = RefCell::new(Codec::default());
}

/// [`Codec::decompress`] with this thread's codec.
pub fn decompress(payload: &[u8], raw_len: u32) -> Result<Vec<u8>, CodecError> {
    THREAD_CODEC.with(|c| c.borrow_mut().decompress(payload, raw_len))
}

/// Compresses `data` at `level` with this thread's codec, whatever the saving (for stores
/// and tests that always keep zstd).
pub fn compress_at(level: i32, data: &[u8]) -> Result<Vec<u8>, CodecError> {
    THREAD_CODEC.with(|c| {
        let mut c = c.borrow_mut();
        let level = level.clamp(*zstd::compression_level_range().start(), *zstd::compression_level_range().end());
        if let Some(cctx) = c.cctx.as_mut() {
            cctx.set_compression_level(level).map_err(CodecError::Compress)?;
        }
        let n = c.compress_to_scratch(level, data)?;
        Ok(c.scratch[..n].to_vec())
    })
}

#[cfg(test)]
mod tests;
