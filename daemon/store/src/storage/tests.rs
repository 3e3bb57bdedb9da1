//! Tests of the storage report on a small hand-computed example: totals and per-point
//! figures, sharing between points and with another pair, zero chunks counted as entries but
//! not as bytes, open epochs left out.

use super::*;
use crate::test_support::{open_temp, point, record};
use crate::{PairId, StoredChunk};

fn commit(s: &Store, pair_no: u32, epoch: u64) {
    let name = format!("p{pair_no}");
    s.commit_point(pair_no, &point(&name, epoch), &PairId::new(&name).unwrap(), &record(&name, epoch)).unwrap();
}

/// A stored chunk of `len` bytes: its version and stored length (header included).
fn put(s: &Store, tag: u8, len: usize, zstd: bool) -> (ChunkVersion, u64) {
    let data: Vec<u8> = (0..len).map(|i| (i % 7).to_le_bytes()[0] ^ tag).collect();
    let h = *blake3::hash(&data).as_bytes();
    let raw_len = u32::try_from(len).unwrap();
    let stored = if zstd {
        let z = zstd::bulk::compress(&data, 3).unwrap();
        s.put_chunk(&h, StoredChunk { compressed: true, raw_len, payload: &z }).unwrap()
    } else {
        s.put_chunk(&h, StoredChunk { compressed: false, raw_len, payload: &data }).unwrap()
    };
    (ChunkVersion::Data(h), stored)
}

fn totals(versions: u64, written: u64, distinct: u64, stored: u64, unique: u64) -> ChunkTotals {
    ChunkTotals {
        versions,
        written_bytes: written,
        distinct_bytes: distinct,
        stored_bytes: stored,
        unique_bytes: unique,
    }
}

#[test]
fn storage_report_of_a_small_example() {
    let (_dir, s) = open_temp();
    let (p, sp) = put(&s, 1, 1000, true);
    let (q, sq) = put(&s, 2, 2000, false);
    let (r, sr) = put(&s, 3, 3000, true);
    let (t, st) = put(&s, 4, 500, false);
    assert_eq!((sq, st), (2005, 505), "raw chunks: header + bytes");
    let z = ChunkVersion::Zero;
    // Pair 1, point 1: P, Q, a zero chunk, T (which pair 2 also names).
    s.write_versions(1, 1, &[(0, 0, p), (0, 1, q), (0, 2, z), (0, 3, t)]).unwrap();
    commit(&s, 1, 1);
    // Point 2: R twice (same content at two places), P again (shared with point 1), a zero.
    s.write_versions(1, 2, &[(0, 0, r), (0, 1, p), (1, 4, r), (0, 5, z)]).unwrap();
    commit(&s, 1, 2);
    // Open epoch 3 names Q: not counted, but Q is not point 1's alone any more.
    s.write_versions(1, 3, &[(0, 6, q)]).unwrap();
    s.write_versions(2, 1, &[(0, 0, t)]).unwrap();
    commit(&s, 2, 1);

    let report = s.pair_storage(1).unwrap();
    let point1 = totals(4, 1000 + 2000 + 500, 3500, sp + sq + st, 0);
    // R is named twice, by point 2 only: unique to it.
    let point2 = totals(4, 3000 + 1000 + 3000, 4000, sr + sp, sr);
    assert_eq!(report.per_point, [(1, point1), (2, point2)].into());
    // The pair: P, Q, R are its own (T is pair 2's too).
    let pair_unique = sp + sq + sr;
    assert_eq!(report.total, totals(8, 10_500, 6500, sp + sq + sr + st, pair_unique));
    assert_eq!(report.pair_unique_bytes, pair_unique);

    let other = s.pair_storage(2).unwrap();
    assert_eq!(other.total, totals(1, 500, 500, st, 0));
    assert_eq!(other.per_point, [(1, totals(1, 500, 500, st, 0))].into());
    assert_eq!(s.pair_storage(9).unwrap(), PairStorage::default(), "no points, nothing");

    // Point 1 removed: its entries still seen (the zero, T) now count as point 2's; P and Q
    // at point 1 are gone (replaced at point 2).
    assert_eq!(s.remove_points(1, &[1]).unwrap().versions, 2);
    let report = s.pair_storage(1).unwrap();
    assert_eq!(report.per_point, [(2, totals(6, 7500, 4500, sr + sp + st, sr + sp))].into());
    assert_eq!(report.total, totals(6, 7500, 4500, sr + sp + st, sp + sr));
}
