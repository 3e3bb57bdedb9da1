//! The image's bytes, written in large sequential writes and hashed.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Bytes gathered before one write.
pub(crate) const WRITE_BUF: usize = 8 << 20;

/// Writes the image in large sequential writes, hashing every byte; zero runs become holes
/// when `sparse` (a fresh file of the image's length, so holes read as zeros).
pub(crate) struct ImageWriter<'f> {
    file: &'f File,
    sparse: bool,
    buf: Vec<u8>,
    /// Image offset of `buf[0]`; `buf_at + buf.len()` is the image produced so far.
    buf_at: u64,
    hasher: blake3::Hasher,
    zero_chunk: Vec<u8>,
}

impl<'f> ImageWriter<'f> {
    pub(crate) fn new(file: &'f File, sparse: bool, chunk_size: usize) -> Self {
        let cap = WRITE_BUF + chunk_size;
        Self {
            file,
            sparse,
            buf: Vec::with_capacity(cap),
            buf_at: 0,
            hasher: blake3::Hasher::new(),
            zero_chunk: vec![0; chunk_size],
        }
    }

    pub(crate) fn data(&mut self, d: &[u8]) -> io::Result<()> {
        self.hasher.update(d);
        self.buf.extend_from_slice(d);
        self.flush_if_full()
    }

    /// `len` zero bytes (at most one chunk).
    pub(crate) fn zeros(&mut self, len: usize) -> io::Result<()> {
        self.hasher.update(&self.zero_chunk[..len]);
        if self.sparse {
            self.flush()?;
            self.buf_at += len as u64;
            return Ok(());
        }
        self.buf.resize(self.buf.len() + len, 0);
        self.flush_if_full()
    }

    fn flush_if_full(&mut self) -> io::Result<()> {
        if self.buf.len() >= WRITE_BUF { self.flush() } else { Ok(()) }
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.buf_at)?;
            self.buf_at += self.buf.len() as u64;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes what is left, syncs, and returns the image's blake3.
    pub(crate) fn finish(mut self) -> io::Result<blake3::Hash> {
        self.flush()?;
        self.file.sync_all()?;
        Ok(self.hasher.finalize())
    }
}
