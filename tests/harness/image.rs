//! Disk images for the tests: random, mixed (random, zero and compressible regions), changed
//! in random chunks; blake3 of files and ranges.

use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// What an image is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Incompressible random bytes everywhere.
    Random,
    /// 1 MiB regions: ~40% random, ~30% zero (left as holes), ~30% compressible text; some
    /// 64 KiB pieces of random regions are zero too.
    Mixed,
}

/// Creates (or replaces) an image of `size` bytes; returns its blake3.
pub fn create_image(path: &Path, size: u64, fill: Fill, seed: u64) -> blake3::Hash {
    let f = OpenOptions::new().create(true).write(true).truncate(true).open(path).expect("create image");
    f.set_len(size).expect("set_len");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; crate::MIB as usize];
    let mut off = 0u64;
    while off < size {
        let len = (size - off).min(crate::MIB) as usize;
        let kind = match fill {
            Fill::Random => 0,
            Fill::Mixed => rng.random_range(0..10u32),
        };
        match kind {
            0..=3 => {
                rng.fill_bytes(&mut buf[..len]);
                if fill == Fill::Mixed {
                    for piece in buf[..len].chunks_mut(64 << 10) {
                        if rng.random_bool(0.15) {
                            piece.fill(0);
                        }
                    }
                }
                f.write_all_at(&buf[..len], off).expect("write image");
            }
            4..=6 => {} // a hole: zeros
            _ => {
                let text = compressible(off, len, &mut rng);
                f.write_all_at(&text, off).expect("write image");
            }
        }
        off += len as u64;
    }
    f.sync_all().expect("sync image");
    hash_file(path).1
}

/// Text-like bytes that zstd compresses well but that are not all zero.
fn compressible(off: u64, len: usize, rng: &mut StdRng) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 128);
    let mut line = 0u64;
    let salt: u32 = rng.random();
    while out.len() < len {
        out.extend_from_slice(
            format!("{off:012x} line {line:08} salt {salt:08x} the quick brown fox jumps over the lazy dog\n")
                .as_bytes(),
        );
        line += 1;
    }
    out.truncate(len);
    out
}

/// `n` distinct chunk indices out of `0..chunk_count`, sorted.
pub fn pick_chunks(chunk_count: u64, n: u64, seed: u64) -> Vec<u64> {
    assert!(n <= chunk_count);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut set = std::collections::BTreeSet::new();
    while (set.len() as u64) < n {
        set.insert(rng.random_range(0..chunk_count));
    }
    set.into_iter().collect()
}

/// Overwrites the given chunks with fresh random bytes (the last chunk may be short); syncs.
pub fn overwrite_chunks(path: &Path, chunk_size: u64, chunks: &[u64], seed: u64) {
    let mut f = OpenOptions::new().write(true).open(path).expect("open image");
    // The end, not the metadata: a block device's metadata says 0 bytes.
    let size = std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).expect("size");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; chunk_size as usize];
    for &c in chunks {
        let off = c * chunk_size;
        assert!(off < size, "chunk {c} is beyond the image");
        let len = (size - off).min(chunk_size) as usize;
        rng.fill_bytes(&mut buf[..len]);
        f.write_all_at(&buf[..len], off).expect("overwrite chunk");
    }
    f.sync_all().expect("sync");
}

/// Size and blake3 of a whole file (or block device).
pub fn hash_file(path: &Path) -> (u64, blake3::Hash) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = blake3::Hasher::new();
    let mut buf = vec![0u8; crate::MIB as usize];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
    }
    (len, h.finalize())
}

/// blake3 of `len` bytes at `offset`.
pub fn hash_range(path: &Path, offset: u64, len: u64) -> blake3::Hash {
    let f = File::open(path).expect("open");
    let mut buf = vec![0u8; len as usize];
    f.read_exact_at(&mut buf, offset).expect("read range");
    blake3::hash(&buf)
}

/// Copies a block device to a file with O_DIRECT reads (bypassing the device's page cache,
/// which a mounted filesystem's data writes do not keep coherent); returns size and blake3.
pub fn copy_device(dev: &Path, out: &Path) -> (u64, blake3::Hash) {
    crate::sh(
        "dd",
        &[
            &format!("if={}", dev.display()),
            &format!("of={}", out.display()),
            "bs=1M",
            "iflag=direct",
            "conv=fsync",
            "status=none",
        ],
    );
    hash_file(out)
}

/// Length of a file.
pub fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("metadata").len()
}

/// Creates (or replaces) a sparse image of `size` zero bytes.
pub fn sparse_image(path: &Path, size: u64) {
    let f = File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
    f.set_len(size).expect("set_len");
}
