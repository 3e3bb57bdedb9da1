//! Shared-secret checks: the standby's token, given by agents on the link and by clients of
//! the API.

/// Compares in time independent of where the strings differ.
pub fn token_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn token_compare() {
        assert!(super::token_eq("abcdefgh", "abcdefgh"));
        assert!(!super::token_eq("abcdefgh", "abcdefgi"));
        assert!(!super::token_eq("abc", "abcdefgh"));
    }
}
