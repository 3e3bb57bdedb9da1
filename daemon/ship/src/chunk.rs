//! Per-chunk work: blake3 hash and zero detection (compression is `drpair_codec`'s).

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

#[cfg(test)]
mod tests {
    use super::*;

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
