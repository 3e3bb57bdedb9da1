//! The pack format and the `packed` column family's values.
//!
//! A pack object: `"DRPACK01"` · the chunks' stored values back to back (each exactly as
//! shipped: `format · raw_len · payload`) · its index: per chunk `hash[32] · offset u32 LE ·
//! length u32 LE`, then `count u32 LE · crc32 of the index entries u32 LE · "DRPKIDX1"`. The
//! index at the end makes a pack self-describing (what a rebuild from the bucket reads);
//! reads use the local `packed` family and fetch only the bytes of the chunks they need.
//!
//! `packed` value: `pack id[16] · offset u32 LE · length u32 LE · pack length u32 LE`
//! (28 bytes).

use crate::StoreError;
use crate::chunks::{Hash, hash_hex};

pub(crate) const PACK_MAGIC: &[u8; 8] = b"DRPACK01";
pub(crate) const INDEX_MAGIC: &[u8; 8] = b"DRPKIDX1";
const ENTRY_LEN: usize = 40;
const LOCATION_LEN: usize = 28;

/// Where a chunk's stored value lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Location {
    pub pack: uuid::Uuid,
    pub offset: u32,
    pub len: u32,
    pub pack_len: u32,
}

impl Location {
    pub(crate) fn encode(&self) -> [u8; LOCATION_LEN] {
        let mut v = [0u8; LOCATION_LEN];
        v[0..16].copy_from_slice(self.pack.as_bytes());
        v[16..20].copy_from_slice(&self.offset.to_le_bytes());
        v[20..24].copy_from_slice(&self.len.to_le_bytes());
        v[24..28].copy_from_slice(&self.pack_len.to_le_bytes());
        v
    }

    /// Decodes a `packed` value; `hash` names the entry in the error. The span must lie in
    /// the pack.
    pub(crate) fn decode(hash: &Hash, v: &[u8]) -> Result<Location, StoreError> {
        let bad = |reason: String| StoreError::bad_record(format!("pack location of chunk {}", hash_hex(hash)), reason);
        let v: &[u8; LOCATION_LEN] = v.try_into().map_err(|_| bad(format!("{} bytes instead of 28", v.len())))?;
        let u32_at = |i: usize| u32::from_le_bytes(v[i..i + 4].try_into().expect("4 bytes"));
        let loc = Location {
            pack: uuid::Uuid::from_bytes(v[0..16].try_into().expect("16 bytes")),
            offset: u32_at(16),
            len: u32_at(20),
            pack_len: u32_at(24),
        };
        if u64::from(loc.offset) + u64::from(loc.len) > u64::from(loc.pack_len) {
            return Err(bad(format!("span {}+{} beyond the pack's {} bytes", loc.offset, loc.len, loc.pack_len)));
        }
        Ok(loc)
    }
}

/// Appends the index trailer to a pack whose chunks are `entries` (hash, offset, length).
pub(crate) fn finish_pack(bytes: &mut Vec<u8>, entries: &[(Hash, u32, u32)]) {
    let start = bytes.len();
    for (hash, offset, len) in entries {
        bytes.extend_from_slice(hash);
        bytes.extend_from_slice(&offset.to_le_bytes());
        bytes.extend_from_slice(&len.to_le_bytes());
    }
    let crc = crc32fast::hash(&bytes[start..]);
    let count = u32::try_from(entries.len()).expect("a pack holds far fewer than 2^32 chunks");
    bytes.extend_from_slice(&count.to_le_bytes());
    bytes.extend_from_slice(&crc.to_le_bytes());
    bytes.extend_from_slice(INDEX_MAGIC);
}

/// The index of a whole pack object, checked (magics, crc, spans within the chunk area).
pub(crate) fn read_index(pack: &[u8]) -> Result<Vec<(Hash, u32, u32)>, String> {
    if pack.len() < 8 + 16 || &pack[..8] != PACK_MAGIC || &pack[pack.len() - 8..] != INDEX_MAGIC {
        return Err("not a drpair pack (magic)".into());
    }
    let tail = pack.len() - 16;
    let count = u32::from_le_bytes(pack[tail..tail + 4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(pack[tail + 4..tail + 8].try_into().expect("4 bytes"));
    let index_len = count.checked_mul(ENTRY_LEN).filter(|n| *n <= tail - 8).ok_or("index longer than the pack")?;
    let index = &pack[tail - index_len..tail];
    if crc32fast::hash(index) != crc {
        return Err("index checksum mismatch".into());
    }
    let area_end = tail - index_len;
    index
        .chunks_exact(ENTRY_LEN)
        .map(|e| {
            let hash: Hash = e[0..32].try_into().expect("32 bytes");
            let offset = u32::from_le_bytes(e[32..36].try_into().expect("4 bytes"));
            let len = u32::from_le_bytes(e[36..40].try_into().expect("4 bytes"));
            if (offset as usize) < 8 || offset as usize + len as usize > area_end {
                return Err(format!("chunk {} span {offset}+{len} outside the chunk area", hash_hex(&hash)));
            }
            Ok((hash, offset, len))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_round_trip_and_refuse_garbage() {
        let loc = Location { pack: uuid::Uuid::new_v4(), offset: 8, len: 100, pack_len: 200 };
        assert_eq!(Location::decode(&[1; 32], &loc.encode()).unwrap(), loc);
        assert!(Location::decode(&[1; 32], &[0; 27]).is_err());
        let beyond = Location { offset: 150, ..loc };
        let e = Location::decode(&[1; 32], &beyond.encode()).unwrap_err().to_string();
        assert!(e.contains("beyond the pack"), "{e}");
    }

    #[test]
    fn pack_index_round_trips_and_detects_damage() {
        let mut pack = PACK_MAGIC.to_vec();
        pack.extend_from_slice(&[7; 10]);
        pack.extend_from_slice(&[8; 5]);
        let entries = [([1; 32], 8, 10), ([2; 32], 18, 5)];
        finish_pack(&mut pack, &entries);
        assert_eq!(read_index(&pack).unwrap(), entries);
        let mut bad = pack.clone();
        bad[30] ^= 1;
        assert!(read_index(&bad).unwrap_err().contains("checksum"));
        assert!(read_index(&pack[..pack.len() - 1]).is_err());
    }
}
