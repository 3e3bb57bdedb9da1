//! Byte layouts of every key and of the version index values: the only place that knows them.
//!
//! All integers are big-endian so that rocksdb's bytewise order is numeric order.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `versions` | `pair u32 · disk u32 · chunk u64 · (u64::MAX - epoch) u64` (24 bytes; newest epoch first) | `0` (zero chunk) or `1 · hash[32]` |
//! | `pending` | `pair u32 · epoch u64 · disk u32 · chunk u64` (24 bytes) | empty |
//! | `epochs` | same as `pending` | empty |
//! | `refs` | `hash[32] · pair u32 · disk u32 · chunk u64 · epoch u64` (56 bytes) | empty |
//! | `reclaim` | `hash[32]` | empty |
//! | `sizes` | `hash[32]` | `raw_len u32 · stored_len u32` |
//! | `meta` | `format` | `u32`: the store's layout version |
//! | `meta` | `sweep · pair u32 · from u64 · to u64` | empty: a prune's sweep still to finish |
//! | `meta` | `zerofrom · pair u32 · disk u32` | `u64`: the disk's zero start (`versions/zero_runs.rs`) |
//! | `points` | `pair u32 · epoch u64` (12 bytes) | JSON `RecoveryPoint` |
//! | `pairs` | pair id bytes | JSON pair record (opaque) |
//! | `meta` | `next_pair_no` | `u32` |
//! | `chunks` | blake3 hash (32 bytes) | see `chunks.rs` |

use crate::{ChunkVersion, StoreError};

/// Length of a `versions` key.
pub(crate) const VERSION_KEY_LEN: usize = 24;
/// Length of a `pending` key.
pub(crate) const PENDING_KEY_LEN: usize = 24;
/// Length of a `points` key.
pub(crate) const POINT_KEY_LEN: usize = 12;
/// `meta` key of the next pair number to hand out.
pub(crate) const META_NEXT_PAIR_NO: &[u8] = b"next_pair_no";
/// `meta` key of the store's layout version.
pub(crate) const META_FORMAT: &[u8] = b"format";
/// Prefix of the `meta` keys of unfinished prune sweeps.
pub(crate) const META_SWEEP: &[u8] = b"sweep";
/// Length of a `meta` sweep key.
pub(crate) const SWEEP_KEY_LEN: usize = 5 + 4 + 8 + 8;
/// Prefix of the `meta` keys of the disks' zero starts.
pub(crate) const META_ZERO_FROM: &[u8] = b"zerofrom";
/// Length of a `meta` zero start key.
pub(crate) const ZERO_FROM_KEY_LEN: usize = 8 + 4 + 4;
/// Length of a `refs` key.
pub(crate) const REF_KEY_LEN: usize = 56;

const TAG_ZERO: u8 = 0;
const TAG_DATA: u8 = 1;

/// `versions` key of `chunk` of `disk` of pair `pair_no`, as written at `epoch`.
pub(crate) fn version_key(pair_no: u32, disk: u32, chunk: u64, epoch: u64) -> [u8; VERSION_KEY_LEN] {
    let mut k = [0u8; VERSION_KEY_LEN];
    k[0..4].copy_from_slice(&pair_no.to_be_bytes());
    k[4..8].copy_from_slice(&disk.to_be_bytes());
    k[8..16].copy_from_slice(&chunk.to_be_bytes());
    k[16..24].copy_from_slice(&(u64::MAX - epoch).to_be_bytes());
    k
}

/// A decoded `versions` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct VersionKey {
    pub pair_no: u32,
    pub disk: u32,
    pub chunk: u64,
    pub epoch: u64,
}

pub(crate) fn decode_version_key(k: &[u8]) -> Result<VersionKey, StoreError> {
    let k: &[u8; VERSION_KEY_LEN] = k
        .try_into()
        .map_err(|_| StoreError::bad_record("versions key", format!("length {} instead of 24", k.len())))?;
    Ok(VersionKey {
        pair_no: u32::from_be_bytes(k[0..4].try_into().expect("4 bytes")),
        disk: u32::from_be_bytes(k[4..8].try_into().expect("4 bytes")),
        chunk: u64::from_be_bytes(k[8..16].try_into().expect("8 bytes")),
        epoch: u64::MAX - u64::from_be_bytes(k[16..24].try_into().expect("8 bytes")),
    })
}

/// Prefix of every key of one pair in `versions`, `pending` and `points`.
pub(crate) fn pair_prefix(pair_no: u32) -> [u8; 4] {
    pair_no.to_be_bytes()
}

/// An exclusive upper bound for every key of length `key_len` that starts with `prefix`:
/// the prefix followed by more 0xFF bytes than any such key has. Unlike "prefix + 1" it
/// cannot overflow.
pub(crate) fn prefix_end(prefix: &[u8], key_len: usize) -> Vec<u8> {
    let mut end = prefix.to_vec();
    end.resize(key_len.max(prefix.len()) + 1, 0xFF);
    end
}

/// `pending` key: the version entry (`pair_no`, `disk`, `chunk`, `epoch`) is uncommitted.
pub(crate) fn pending_key(pair_no: u32, epoch: u64, disk: u32, chunk: u64) -> [u8; PENDING_KEY_LEN] {
    let mut k = [0u8; PENDING_KEY_LEN];
    k[0..4].copy_from_slice(&pair_no.to_be_bytes());
    k[4..12].copy_from_slice(&epoch.to_be_bytes());
    k[12..16].copy_from_slice(&disk.to_be_bytes());
    k[16..24].copy_from_slice(&chunk.to_be_bytes());
    k
}

/// The `versions` key a `pending` key stands for.
pub(crate) fn decode_pending_key(k: &[u8]) -> Result<VersionKey, StoreError> {
    let k: &[u8; PENDING_KEY_LEN] =
        k.try_into().map_err(|_| StoreError::bad_record("pending key", format!("length {} instead of 24", k.len())))?;
    Ok(VersionKey {
        pair_no: u32::from_be_bytes(k[0..4].try_into().expect("4 bytes")),
        epoch: u64::from_be_bytes(k[4..12].try_into().expect("8 bytes")),
        disk: u32::from_be_bytes(k[12..16].try_into().expect("4 bytes")),
        chunk: u64::from_be_bytes(k[16..24].try_into().expect("8 bytes")),
    })
}

/// `epochs` key: the version entry (`pair_no`, `disk`, `chunk`, `epoch`) exists. Same layout
/// as `pending`, so a pair's entries of an epoch range are one range of keys.
pub(crate) fn epochs_key(pair_no: u32, epoch: u64, disk: u32, chunk: u64) -> [u8; PENDING_KEY_LEN] {
    pending_key(pair_no, epoch, disk, chunk)
}

/// `refs` key: the version entry (`pair_no`, `disk`, `chunk`, `epoch`) names the chunk `hash`.
pub(crate) fn ref_key(hash: &[u8; 32], pair_no: u32, disk: u32, chunk: u64, epoch: u64) -> [u8; REF_KEY_LEN] {
    let mut k = [0u8; REF_KEY_LEN];
    k[0..32].copy_from_slice(hash);
    k[32..56].copy_from_slice(&version_key(pair_no, disk, chunk, epoch));
    k
}

/// The `versions` key a `refs` key points at.
pub(crate) fn decode_ref_key(k: &[u8]) -> Result<VersionKey, StoreError> {
    if k.len() != REF_KEY_LEN {
        return Err(StoreError::bad_record("refs key", format!("length {} instead of 56", k.len())));
    }
    decode_version_key(&k[32..])
}

/// `meta` key of a prune sweep of the pair's entries with epoch in `from..=to`.
pub(crate) fn sweep_key(pair_no: u32, from: u64, to: u64) -> [u8; SWEEP_KEY_LEN] {
    let mut k = [0u8; SWEEP_KEY_LEN];
    k[0..5].copy_from_slice(META_SWEEP);
    k[5..9].copy_from_slice(&pair_no.to_be_bytes());
    k[9..17].copy_from_slice(&from.to_be_bytes());
    k[17..25].copy_from_slice(&to.to_be_bytes());
    k
}

/// `meta` key of the zero start of `disk` of pair `pair_no`.
pub(crate) fn zero_from_key(pair_no: u32, disk: u32) -> [u8; ZERO_FROM_KEY_LEN] {
    let mut k = [0u8; ZERO_FROM_KEY_LEN];
    k[0..8].copy_from_slice(META_ZERO_FROM);
    k[8..12].copy_from_slice(&pair_no.to_be_bytes());
    k[12..16].copy_from_slice(&disk.to_be_bytes());
    k
}

/// Prefix of the `meta` zero start keys of every disk of pair `pair_no`.
pub(crate) fn zero_from_prefix(pair_no: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k.copy_from_slice(&zero_from_key(pair_no, 0)[..12]);
    k
}

/// `(from, to)` of a sweep key.
pub(crate) fn decode_sweep_key(k: &[u8]) -> Result<(u32, u64, u64), StoreError> {
    if k.len() != SWEEP_KEY_LEN || !k.starts_with(META_SWEEP) {
        return Err(StoreError::bad_record("sweep key", format!("{} bytes, not a sweep key", k.len())));
    }
    Ok((
        u32::from_be_bytes(k[5..9].try_into().expect("4 bytes")),
        u64::from_be_bytes(k[9..17].try_into().expect("8 bytes")),
        u64::from_be_bytes(k[17..25].try_into().expect("8 bytes")),
    ))
}

/// `sizes` value: raw and stored length of a chunk.
pub(crate) fn encode_sizes(raw_len: u32, stored_len: u32) -> [u8; 8] {
    let mut v = [0u8; 8];
    v[0..4].copy_from_slice(&raw_len.to_le_bytes());
    v[4..8].copy_from_slice(&stored_len.to_le_bytes());
    v
}

/// `(raw_len, stored_len)` of a `sizes` value, None when malformed.
pub(crate) fn decode_sizes(v: &[u8]) -> Option<(u32, u32)> {
    let v: &[u8; 8] = v.try_into().ok()?;
    Some((u32::from_le_bytes(v[0..4].try_into().ok()?), u32::from_le_bytes(v[4..8].try_into().ok()?)))
}

/// `points` key of the point of pair `pair_no` at `epoch`; also the prefix of that epoch's
/// `pending` keys.
pub(crate) fn point_key(pair_no: u32, epoch: u64) -> [u8; POINT_KEY_LEN] {
    let mut k = [0u8; POINT_KEY_LEN];
    k[0..4].copy_from_slice(&pair_no.to_be_bytes());
    k[4..12].copy_from_slice(&epoch.to_be_bytes());
    k
}

/// Value of a `versions` entry.
pub(crate) fn encode_version(v: ChunkVersion) -> Vec<u8> {
    match v {
        ChunkVersion::Zero => vec![TAG_ZERO],
        ChunkVersion::Data(h) => {
            let mut out = Vec::with_capacity(33);
            out.push(TAG_DATA);
            out.extend_from_slice(&h);
            out
        }
    }
}

/// Decodes a `versions` value; `key` only names the entry in the error.
pub(crate) fn decode_version(key: &VersionKey, v: &[u8]) -> Result<ChunkVersion, StoreError> {
    match (v.first(), v.len()) {
        (Some(&TAG_ZERO), 1) => Ok(ChunkVersion::Zero),
        (Some(&TAG_DATA), 33) => Ok(ChunkVersion::Data(v[1..].try_into().expect("32 bytes"))),
        _ => Err(StoreError::bad_record(
            format!("version entry pair #{} disk {} chunk {} epoch {}", key.pair_no, key.disk, key.chunk, key.epoch),
            format!("unknown layout (tag {:?}, {} bytes)", v.first(), v.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn newest_epoch_sorts_first() {
        assert!(version_key(1, 0, 5, 9) < version_key(1, 0, 5, 3));
        assert!(version_key(1, 0, 5, u64::MAX) < version_key(1, 0, 5, 0));
        assert!(version_key(1, 0, 5, 0) < version_key(1, 0, 6, u64::MAX));
    }

    #[test]
    fn prefix_end_bounds_every_key_of_the_prefix() {
        let end = prefix_end(&pair_prefix(u32::MAX), VERSION_KEY_LEN);
        assert!(version_key(u32::MAX, u32::MAX, u64::MAX, 0).as_slice() < end.as_slice());
        let end = prefix_end(&pair_prefix(7), VERSION_KEY_LEN);
        assert!(version_key(7, u32::MAX, u64::MAX, 0).as_slice() < end.as_slice());
        assert!(version_key(8, 0, 0, u64::MAX).as_slice() > end.as_slice());
    }

    #[test]
    fn version_values_round_trip_and_reject_garbage() {
        let k = VersionKey { pair_no: 1, disk: 2, chunk: 3, epoch: 4 };
        for v in [ChunkVersion::Zero, ChunkVersion::Data([7; 32])] {
            assert_eq!(decode_version(&k, &encode_version(v)).unwrap(), v);
        }
        for bad in [&[][..], &[0, 0][..], &[1; 5][..], &[2][..]] {
            let e = decode_version(&k, bad).unwrap_err().to_string();
            assert!(e.starts_with("version entry pair #1 disk 2 chunk 3 epoch 4:"), "{e}");
        }
    }

    proptest! {
        #[test]
        fn version_keys_round_trip(p: u32, d: u32, c: u64, e: u64) {
            let k = version_key(p, d, c, e);
            prop_assert_eq!(
                decode_version_key(&k).unwrap(),
                VersionKey { pair_no: p, disk: d, chunk: c, epoch: e }
            );
            let pk = pending_key(p, e, d, c);
            prop_assert_eq!(
                decode_pending_key(&pk).unwrap(),
                VersionKey { pair_no: p, disk: d, chunk: c, epoch: e }
            );
            prop_assert!(pk.starts_with(&point_key(p, e)));
            prop_assert!(k.starts_with(&pair_prefix(p)));
        }

        #[test]
        fn version_key_order_is_pair_disk_chunk_then_newest_epoch(
            a in (0u32..4, 0u32..4, 0u64..8, any::<u64>()),
            b in (0u32..4, 0u32..4, 0u64..8, any::<u64>()),
        ) {
            let ka = version_key(a.0, a.1, a.2, a.3);
            let kb = version_key(b.0, b.1, b.2, b.3);
            let model_a = (a.0, a.1, a.2, std::cmp::Reverse(a.3));
            let model_b = (b.0, b.1, b.2, std::cmp::Reverse(b.3));
            prop_assert_eq!(ka.cmp(&kb), model_a.cmp(&model_b));
        }

        #[test]
        fn pending_and_point_key_order_is_numeric(
            a in (any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>()),
            b in (any::<u32>(), any::<u64>(), any::<u32>(), any::<u64>()),
        ) {
            prop_assert_eq!(pending_key(a.0, a.1, a.2, a.3).cmp(&pending_key(b.0, b.1, b.2, b.3)), a.cmp(&b));
            prop_assert_eq!(point_key(a.0, a.1).cmp(&point_key(b.0, b.1)), (a.0, a.1).cmp(&(b.0, b.1)));
        }
    }
}
