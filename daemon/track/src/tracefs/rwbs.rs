//! The operation of a completed request, from its `rwbs` letters.
//!
//! The kernel writes an optional `F` (a cache flush before the request), then the operation:
//! `R` read, `W` write, `D` discard (`DE` secure erase), `F` flush, `Z…` zoned operations, and
//! `N` for any other operation, which notably includes write-zeroes (BLKZEROOUT, fallocate
//! ZERO_RANGE, ext4's lazy inode table init). Then flag letters (`F` FUA, `S` sync, `M`
//! metadata, `A` readahead) that do not matter here.
//!
//! Every operation but a read changes the disk when it covers sectors; flushes cover none
//! (`nr_sector == 0`) and are dropped by the caller. The classes only feed the counters.

/// What a completed request did to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpClass {
    /// Read: changes nothing.
    Read,
    /// Write (also zone append).
    Write,
    /// Discard (trim).
    Discard,
    /// Write-zeroes, secure erase, zone reset: the range reads back as zeroes or garbage.
    Zeroes,
    /// A flush, or letters we do not know: a change if it covers sectors.
    Other,
}

impl OpClass {
    /// Whether a request of this class covering sectors changed them.
    pub fn changes_data(self) -> bool {
        self != OpClass::Read
    }
}

/// Classifies the `rwbs` field (NUL-terminated, or filling the whole array).
pub fn classify(rwbs: &[u8]) -> OpClass {
    let end = rwbs.iter().position(|&b| b == 0).unwrap_or(rwbs.len());
    let letters = &rwbs[..end];
    // A leading F is the preflush flag when an operation letter follows it.
    let op = match letters {
        [b'F', rest @ ..] if !rest.is_empty() && is_op_letter(rest[0]) => rest,
        _ => letters,
    };
    match op {
        [b'R', ..] => OpClass::Read,
        [b'W', ..] => OpClass::Write,
        [b'D', b'E', ..] | [b'E', ..] | [b'N', ..] => OpClass::Zeroes,
        [b'D', ..] => OpClass::Discard,
        [b'Z', b'A', ..] => OpClass::Write,
        [b'Z', ..] => OpClass::Zeroes,
        _ => OpClass::Other,
    }
}

fn is_op_letter(b: u8) -> bool {
    matches!(b, b'R' | b'W' | b'D' | b'E' | b'N' | b'F' | b'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let cases: &[(&[u8], OpClass)] = &[
            (b"R\0\0\0\0\0\0\0\0\0", OpClass::Read),
            (b"RA\0", OpClass::Read),
            (b"RM\0", OpClass::Read),
            (b"FR\0", OpClass::Read),
            (b"W\0", OpClass::Write),
            (b"WS\0", OpClass::Write),
            (b"WFS\0", OpClass::Write),
            (b"FWS\0", OpClass::Write),
            (b"FWFSM\0\0\0\0\0", OpClass::Write),
            (b"D\0", OpClass::Discard),
            (b"DS\0", OpClass::Discard),
            (b"DE\0", OpClass::Zeroes),
            (b"E\0", OpClass::Zeroes),
            (b"N\0", OpClass::Zeroes),
            (b"NS\0", OpClass::Zeroes),
            (b"FN\0", OpClass::Zeroes),
            (b"ZA\0", OpClass::Write),
            (b"ZR\0", OpClass::Zeroes),
            (b"F\0", OpClass::Other),
            (b"FF\0", OpClass::Other),
            (b"FS\0", OpClass::Other),
            (b"\0", OpClass::Other),
            (b"", OpClass::Other),
            (b"WWWWWWWWWW", OpClass::Write), // no NUL: the whole array
        ];
        for (rwbs, class) in cases {
            assert_eq!(classify(rwbs), *class, "{}", String::from_utf8_lossy(rwbs));
        }
        assert!(!OpClass::Read.changes_data());
        assert!(OpClass::Other.changes_data() && OpClass::Zeroes.changes_data());
    }
}
