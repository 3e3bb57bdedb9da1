//! The SHA-256 fingerprint of a certificate, written `sha256:` and 64 hex digits (colons
//! between byte pairs are accepted on input, as other tools print them).

use aws_lc_rs::digest::{SHA256, digest};
use std::fmt;
use std::str::FromStr;

/// SHA-256 of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// The fingerprint of a DER-encoded certificate.
    pub fn of(der: &[u8]) -> Self {
        let d = digest(&SHA256, der);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Fingerprint(out)
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a fingerprint was not understood.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("fingerprint {0:?} is not `sha256:` followed by 64 hex digits (as `drpaird standby fingerprint` prints)")]
pub struct FingerprintError(pub String);

impl FromStr for Fingerprint {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || FingerprintError(s.to_string());
        let t = s.trim();
        let hex = t.strip_prefix("sha256:").or_else(|| t.strip_prefix("SHA256:")).ok_or_else(bad)?;
        let digits: Vec<u8> = hex.bytes().filter(|&c| c != b':').collect();
        if digits.len() != 64 {
            return Err(bad());
        }
        let mut out = [0u8; 32];
        for (i, pair) in digits.chunks(2).enumerate() {
            let text = std::str::from_utf8(pair).map_err(|_| bad())?;
            out[i] = u8::from_str_radix(text, 16).map_err(|_| bad())?;
        }
        Ok(Fingerprint(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_colons() {
        let f = Fingerprint::of(b"certificate");
        let text = f.to_string();
        assert!(text.starts_with("sha256:") && text.len() == 7 + 64);
        assert_eq!(text.parse::<Fingerprint>().unwrap(), f);
        let colons: Vec<String> = f.0.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(format!("SHA256:{}", colons.join(":")).parse::<Fingerprint>().unwrap(), f);
    }

    #[test]
    fn refuses_what_is_not_a_fingerprint() {
        for bad in ["", "sha256:", "md5:00", "sha256:zz", &format!("sha256:{}", "0".repeat(63))] {
            assert!(bad.parse::<Fingerprint>().is_err(), "{bad}");
        }
    }
}
