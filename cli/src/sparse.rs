//! Writing a disk image sparse: all-zero 64 KiB blocks of a regular file become holes.
//!
//! Blocks are cut at fixed offsets (multiples of [`BLOCK`] from the start of the image),
//! whatever sizes the network reads come in. A block is written by offset
//! (`pwrite`), so skipping a zero block is the "seek instead of write"; the file gets its full
//! length from `set_len` at the end, which also covers a trailing zero block. In non-sparse
//! mode (block devices, whose old contents must be overwritten) every block is written.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;

/// Unit of the zero check: all-zero blocks of this size become holes.
pub const BLOCK: usize = 64 << 10;

/// Writes an image block by block, leaving all-zero blocks as holes when `sparse`.
pub struct SparseWriter<'f> {
    file: &'f File,
    sparse: bool,
    offset: u64,
    block: Vec<u8>,
    zero_bytes: u64,
}

/// What a [`SparseWriter`] wrote: `bytes` in all, of which `zero_bytes` in all-zero blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SparseStats {
    pub bytes: u64,
    pub zero_bytes: u64,
}

impl<'f> SparseWriter<'f> {
    /// `file` must be empty when `sparse` (holes read as zeros only in a fresh file).
    pub fn new(file: &'f File, sparse: bool) -> Self {
        Self { file, sparse, offset: 0, block: Vec::with_capacity(BLOCK), zero_bytes: 0 }
    }

    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            if self.block.is_empty() && data.len() >= BLOCK {
                let (whole, rest) = data.split_at(BLOCK);
                self.put(whole)?;
                data = rest;
                continue;
            }
            let take = (BLOCK - self.block.len()).min(data.len());
            self.block.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.block.len() == BLOCK {
                self.flush_block()?;
            }
        }
        Ok(())
    }

    fn flush_block(&mut self) -> io::Result<()> {
        let block = std::mem::take(&mut self.block);
        let result = self.put(&block);
        self.block = block;
        self.block.clear();
        result
    }

    fn put(&mut self, block: &[u8]) -> io::Result<()> {
        let zero = is_zero(block);
        if zero {
            self.zero_bytes += block.len() as u64;
        }
        if !(zero && self.sparse) {
            self.file.write_all_at(block, self.offset)?;
        }
        self.offset += block.len() as u64;
        Ok(())
    }

    /// Writes the last partial block, sets the file's length (sparse mode) and syncs.
    pub fn finish(mut self) -> io::Result<SparseStats> {
        if !self.block.is_empty() {
            self.flush_block()?;
        }
        if self.sparse {
            self.file.set_len(self.offset)?;
        }
        self.file.sync_all()?;
        Ok(SparseStats { bytes: self.offset, zero_bytes: self.zero_bytes })
    }
}

fn is_zero(buf: &[u8]) -> bool {
    let words = buf.chunks_exact(16);
    let tail = words.remainder();
    words.into_iter().all(|w| u128::from_ne_bytes(w.try_into().unwrap_or([1; 16])) == 0) && tail.iter().all(|&b| b == 0)
}

/// Why a copy stopped early.
#[derive(Debug)]
pub enum CopyError {
    /// The body broke off after `received` bytes.
    Read { received: u64, source: io::Error },
    /// Writing the image failed.
    Write(io::Error),
}

/// Copies `reader` into `writer` until end of body; returns the bytes received.
pub fn copy_sparse(
    reader: &mut impl Read,
    writer: &mut SparseWriter,
    mut progress: impl FnMut(u64),
) -> Result<u64, CopyError> {
    let mut buf = vec![0u8; 4 * BLOCK];
    let mut received = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(received),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(CopyError::Read { received, source }),
        };
        writer.write(&buf[..n]).map_err(CopyError::Write)?;
        received += n as u64;
        progress(n as u64);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    pub(crate) fn temp_path(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("drpair-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        let _ = std::fs::remove_file(&p);
        p
    }

    /// An image of `blocks` blocks plus a short tail, non-zero only where `data(i)` says.
    fn image(blocks: usize, tail: usize, data: impl Fn(usize) -> bool) -> Vec<u8> {
        let mut v = vec![0u8; blocks * BLOCK + tail];
        for (i, block) in v.chunks_mut(BLOCK).enumerate() {
            if data(i) {
                block.iter_mut().enumerate().for_each(|(j, b)| *b = u8::try_from(j % 251).unwrap_or(0) + 1);
            }
        }
        v
    }

    /// Feeds `img` in reads of odd sizes, as a network would.
    fn write_in_odd_pieces(img: &[u8], sparse: bool, path: &std::path::Path) -> SparseStats {
        let file = File::create(path).unwrap();
        let mut w = SparseWriter::new(&file, sparse);
        let mut reader = io::Cursor::new(img);
        let mut pieces = [1usize, 4093, BLOCK, 3 * BLOCK + 7, 100_000].into_iter().cycle();
        let mut buf = vec![0u8; 5 * BLOCK];
        loop {
            let n = reader.read(&mut buf[..pieces.next().unwrap()]).unwrap();
            if n == 0 {
                break;
            }
            w.write(&buf[..n]).unwrap();
        }
        w.finish().unwrap()
    }

    #[test]
    fn zero_check() {
        assert!(is_zero(&[]));
        assert!(is_zero(&[0; 33]));
        let mut v = vec![0u8; BLOCK];
        v[BLOCK - 1] = 1;
        assert!(!is_zero(&v));
        v[BLOCK - 1] = 0;
        v[17] = 9;
        assert!(!is_zero(&v));
    }

    #[test]
    fn mostly_zero_image_is_identical_and_sparse() {
        // 64 blocks (4 MiB), data in blocks 0, 10 and 63, a non-zero 1000-byte tail.
        let mut img = image(64, 1000, |i| matches!(i, 0 | 10 | 63 | 64));
        let path = temp_path("sparse.img");
        let stats = write_in_odd_pieces(&img, true, &path);
        assert_eq!(stats, SparseStats { bytes: img.len() as u64, zero_bytes: 61 * BLOCK as u64 });
        assert_eq!(std::fs::read(&path).unwrap(), img);
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.len(), img.len() as u64);
        assert!(meta.blocks() * 512 < img.len() as u64 / 4, "{} blocks of 512 allocated", meta.blocks());

        // A trailing zero block is a hole too, and the length is still right.
        img.truncate(64 * BLOCK);
        img[63 * BLOCK..].fill(0);
        let stats = write_in_odd_pieces(&img, true, &path);
        assert_eq!(stats.zero_bytes, 62 * BLOCK as u64);
        assert_eq!(std::fs::read(&path).unwrap(), img);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn non_sparse_mode_writes_every_block() {
        // Over old contents (as on a block device): zero blocks must overwrite them.
        let path = temp_path("dense.img");
        std::fs::write(&path, vec![0xAAu8; 8 * BLOCK]).unwrap();
        let img = image(8, 0, |i| i == 3);
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        let mut w = SparseWriter::new(&file, false);
        let got = copy_sparse(&mut io::Cursor::new(&img), &mut w, |_| {}).unwrap();
        assert_eq!(got, img.len() as u64);
        assert_eq!(w.finish().unwrap(), SparseStats { bytes: img.len() as u64, zero_bytes: 7 * BLOCK as u64 });
        assert_eq!(std::fs::read(&path).unwrap(), img);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn read_errors_report_bytes_received() {
        struct Breaks(usize);
        impl Read for Breaks {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "peer disconnected"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(7);
                self.0 -= n;
                Ok(n)
            }
        }
        let path = temp_path("broken.img");
        let file = File::create(&path).unwrap();
        let mut w = SparseWriter::new(&file, true);
        match copy_sparse(&mut Breaks(300_000), &mut w, |_| {}) {
            Err(CopyError::Read { received, .. }) => assert_eq!(received, 300_000),
            other => panic!("{other:?}"),
        }
        std::fs::remove_file(&path).unwrap();
    }
}
