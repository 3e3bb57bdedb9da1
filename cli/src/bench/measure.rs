//! What `drpair bench` measures on this machine: a disk's sequential O_DIRECT read rate, and
//! BLAKE3 and zstd level 1 on one core, over 64 KiB chunks as the agent cuts them (taken
//! across the whole disk).

use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// The agent's default chunk size.
pub const CHUNK: usize = 64 << 10;
/// One O_DIRECT read.
const READ_BLOCK: usize = 4 << 20;
/// Data sampled from the disk for the CPU measurements.
const SAMPLE: usize = 64 << 20;

/// A rate measured over some bytes.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Rate {
    pub bytes: u64,
    pub seconds: f64,
    pub bytes_per_second: f64,
}

impl Rate {
    pub fn of(bytes: u64, took: Duration) -> Self {
        let seconds = took.as_secs_f64().max(1e-9);
        Self { bytes, seconds, bytes_per_second: bytes as f64 / seconds }
    }
}

/// A buffer aligned for O_DIRECT (4 KiB), freed on drop.
struct Aligned {
    ptr: *mut u8,
    layout: Layout,
}

impl Aligned {
    fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, 4096).expect("layout");
        // SAFETY: the layout has a non-zero size; a null pointer is handled below.
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory for a {len}-byte read buffer");
        Self { ptr, layout }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr points to layout.size() initialised (zeroed) bytes this value owns.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// The disk's size (a block device's or a file's), read from its end.
pub fn size_of(path: &Path) -> std::io::Result<u64> {
    let mut f = File::open(path)?;
    std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0))
}

/// Reads `path` from its start with O_DIRECT in 4 MiB blocks, for `budget` or to its end,
/// whichever comes first. Returns the rate and a sample of [`SAMPLE`] bytes: chunks spread
/// evenly over the whole disk (its start alone, a filesystem's metadata, compresses far
/// better than the rest).
pub fn disk_read(path: &Path, budget: Duration) -> std::io::Result<(Rate, Vec<u8>)> {
    let f = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_DIRECT).open(path)?;
    let size = size_of(path)?;
    let mut buf = Aligned::new(READ_BLOCK);
    let (mut off, start) = (0u64, Instant::now());
    while off < size && start.elapsed() < budget {
        // O_DIRECT wants whole blocks: the last partial block is read whole and cut.
        let n = f.read_at(buf.as_mut(), off)?;
        if n == 0 {
            break;
        }
        off += n.min((size - off) as usize) as u64;
    }
    let rate = Rate::of(off, start.elapsed());
    let chunks = (size / CHUNK as u64).max(1);
    let want = (SAMPLE / CHUNK) as u64;
    let mut sample = Vec::with_capacity(SAMPLE);
    let mut one = Aligned::new(CHUNK);
    for i in 0..want.min(chunks) {
        let at = i * chunks / want.min(chunks) * CHUNK as u64;
        let n = f.read_at(one.as_mut(), at)?;
        sample.extend_from_slice(&one.as_mut()[..n]);
    }
    Ok((rate, sample))
}

/// The share of the sample's chunks that hold data (not all zero): only those are hashed,
/// compressed, shipped and stored; a zero chunk costs its read and a flag.
pub fn data_fraction(sample: &[u8]) -> f64 {
    let total = sample.chunks(CHUNK).count();
    if total == 0 {
        return 1.0;
    }
    let data = sample.chunks(CHUNK).filter(|c| c.iter().any(|&b| b != 0)).count();
    data as f64 / total as f64
}

/// The sample's data chunks (the zero ones taken out), or the whole sample if it is all zero:
/// hashing and compressing zeros says nothing of the data's cost.
pub fn data_chunks(sample: &[u8]) -> Vec<u8> {
    let data: Vec<u8> = sample.chunks(CHUNK).filter(|c| c.iter().any(|&b| b != 0)).flatten().copied().collect();
    if data.is_empty() { sample.to_vec() } else { data }
}

/// Whether `host` (a name or an address) is this machine: a loopback address, or one this
/// machine can bind. Then the agent and the standby share its cores.
pub fn is_this_host(host: &str) -> bool {
    use std::net::ToSocketAddrs;
    let Ok(addrs) = (host, 0u16).to_socket_addrs() else { return false };
    addrs.into_iter().any(|a| a.ip().is_loopback() || std::net::UdpSocket::bind((a.ip(), 0)).is_ok())
}

/// Data for the CPU measurements when no disk is given: half incompressible, half text that
/// compresses about as files do.
pub fn synthetic_sample() -> Vec<u8> {
    let mut out = Vec::with_capacity(SAMPLE);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let words = ["replication ", "recovery point ", "chunk ", "standby ", "agent ", "2026-12-07 ", "INFO ", "\n"];
    while out.len() < SAMPLE {
        let block = out.len() / CHUNK;
        if block.is_multiple_of(2) {
            for _ in 0..CHUNK / 8 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.extend_from_slice(&x.to_le_bytes());
            }
        } else {
            let end = out.len() + CHUNK;
            while out.len() < end {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                out.extend_from_slice(words[(x % words.len() as u64) as usize].as_bytes());
            }
            out.truncate(end);
        }
    }
    out.truncate(SAMPLE);
    out
}

/// Runs `f` over the sample's chunks, again and again, for `budget`; the rate of bytes fed.
fn over_chunks(sample: &[u8], budget: Duration, mut f: impl FnMut(&[u8])) -> Rate {
    let (mut bytes, start) = (0u64, Instant::now());
    'outer: loop {
        for c in sample.chunks(CHUNK) {
            f(c);
            bytes += c.len() as u64;
            if start.elapsed() >= budget {
                break 'outer;
            }
        }
    }
    Rate::of(bytes, start.elapsed())
}

/// BLAKE3 of each chunk, on one core.
pub fn blake3_rate(sample: &[u8], budget: Duration) -> Rate {
    let mut sink = 0u8;
    let r = over_chunks(sample, budget, |c| sink ^= blake3::hash(c).as_bytes()[0]);
    std::hint::black_box(sink);
    r
}

/// zstd at `level` of each chunk, on one core; with the ratio (bytes in / bytes out, a chunk
/// that does not shrink counted as stored whole, as the agent ships it).
pub fn zstd_rate(sample: &[u8], level: i32, budget: Duration) -> (Rate, f64) {
    let mut z = zstd::bulk::Compressor::new(level).expect("zstd compressor");
    let mut out = vec![0u8; zstd::zstd_safe::compress_bound(CHUNK)];
    let (mut fed, mut shipped) = (0u64, 0u64);
    let r = over_chunks(sample, budget, |c| {
        let n = z.compress_to_buffer(c, &mut out).unwrap_or(c.len());
        fed += c.len() as u64;
        shipped += n.min(c.len()) as u64;
    });
    (r, fed as f64 / shipped.max(1) as f64)
}

/// zstd level 1's decompression on one core, in bytes of the sample per second: what the
/// standby spends on each compressed chunk before checking its BLAKE3. Chunks zstd does not
/// shrink ship raw and cost nothing (their bytes count, their time is none).
pub fn unzstd_rate(sample: &[u8], budget: Duration) -> Rate {
    let mut z = zstd::bulk::Compressor::new(1).expect("zstd compressor");
    let packed: Vec<(Vec<u8>, usize)> = sample
        .chunks(CHUNK)
        .filter_map(|c| z.compress(c).ok().filter(|p| p.len() < c.len()).map(|p| (p, c.len())))
        .collect();
    if packed.is_empty() {
        return Rate::of(0, Duration::ZERO);
    }
    let mut d = zstd::bulk::Decompressor::new().expect("zstd decompressor");
    let mut out = vec![0u8; CHUNK];
    let (mut bytes, start) = (0u64, Instant::now());
    loop {
        for (p, raw) in &packed {
            std::hint::black_box(d.decompress_to_buffer(p, &mut out[..*raw]).unwrap_or(0));
        }
        bytes += sample.len() as u64;
        if start.elapsed() >= budget {
            break;
        }
    }
    Rate::of(bytes, start.elapsed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompression_is_measured_on_what_compresses() {
        let text = synthetic_sample();
        let r = unzstd_rate(&text, Duration::from_millis(50));
        assert!(r.bytes > 0 && r.bytes_per_second > 0.0);
        // Noise does not compress: nothing to decompress.
        let noise: Vec<u8> = text.chunks(CHUNK).step_by(2).flatten().copied().collect();
        assert_eq!(unzstd_rate(&noise, Duration::from_millis(20)).bytes, 0);
    }

    #[test]
    fn zero_chunks_are_counted_and_left_out() {
        let mut sample = vec![0u8; 4 * CHUNK];
        sample[CHUNK + 5] = 1;
        assert!((data_fraction(&sample) - 0.25).abs() < 1e-9);
        assert_eq!(data_chunks(&sample).len(), CHUNK);
        assert_eq!(data_chunks(&vec![0u8; CHUNK]).len(), CHUNK);
        assert!(is_this_host("127.0.0.1") && is_this_host("localhost"));
        assert!(!is_this_host("192.0.2.1"), "TEST-NET-1 is nobody's");
    }

    #[test]
    fn the_synthetic_sample_is_half_random_half_text() {
        let s = synthetic_sample();
        assert_eq!(s.len(), SAMPLE);
        let (_, ratio) = zstd_rate(&s, 1, Duration::from_millis(50));
        assert!((1.5..4.0).contains(&ratio), "ratio {ratio}");
    }

    #[test]
    fn a_file_is_read_and_sampled() {
        let dir = std::env::temp_dir().join(format!("drpair-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("disk.img");
        std::fs::write(&p, vec![7u8; 6 << 20]).unwrap();
        match disk_read(&p, Duration::from_secs(5)) {
            Ok((r, sample)) => {
                assert_eq!(r.bytes, 6 << 20);
                assert!(sample.iter().all(|&b| b == 7) && sample.len() == 6 << 20);
            }
            // tmpfs refuses O_DIRECT: nothing to measure there.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            Err(e) => panic!("{e}"),
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
