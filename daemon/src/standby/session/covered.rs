//! The chunks an open epoch has received, one bit per chunk of each disk: a chunk named twice
//! in an epoch is refused, and a baseline commits only when every chunk is covered
//! (`commit.rs`). A run of zero chunks covers its whole range, a word at a time.

/// The first chunk of `first..end` already covered, if any.
pub(super) fn first_covered(words: &[u64], first: u64, end: u64) -> Option<u64> {
    let mut at = first;
    while at < end {
        let (w, b) = ((at / 64) as usize, at % 64);
        let n = (64 - b).min(end - at);
        let mask = if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << b };
        let hit = words[w] & mask;
        if hit != 0 {
            return Some(w as u64 * 64 + u64::from(hit.trailing_zeros()));
        }
        at += n;
    }
    None
}

/// Marks chunks `first..end` covered.
pub(super) fn cover(words: &mut [u64], first: u64, end: u64) {
    let mut at = first;
    while at < end {
        let (w, b) = ((at / 64) as usize, at % 64);
        let n = (64 - b).min(end - at);
        words[w] |= if n == 64 { u64::MAX } else { ((1u64 << n) - 1) << b };
        at += n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_covered_and_found_across_words() {
        let mut w = vec![0u64; 4];
        cover(&mut w, 3, 4);
        assert_eq!(first_covered(&w, 0, 256), Some(3));
        assert_eq!(first_covered(&w, 4, 256), None);
        cover(&mut w, 60, 200);
        assert_eq!((w[1], w[2], w[3]), (u64::MAX, u64::MAX, (1 << 8) - 1));
        assert_eq!(w[0], (1 << 3) | (0xf << 60));
        assert_eq!(first_covered(&w, 4, 256), Some(60));
        assert_eq!(first_covered(&w, 199, 256), Some(199));
        assert_eq!(first_covered(&w, 200, 256), None);
        assert_eq!(first_covered(&w, 5, 60), None);
        let ones: u32 = w.iter().map(|x| x.count_ones()).sum();
        assert_eq!(ones, 141);
    }
}
