//! Tests of verification on real chunks: a corrupted, an undecompressable and a missing
//! chunk are each reported once per version with exactly the points that see it; the other
//! points are intact; `only` restricts to one point; open epochs are nobody's; progress can
//! stop a run.

use super::*;
use crate::options::CF_CHUNKS;
use crate::test_support::{open_temp, point, record};
use crate::{PairId, StoreError};

fn commit(s: &Store, pair_no: u32, epoch: u64) {
    let name = format!("p{pair_no}");
    s.commit_point(pair_no, &point(&name, epoch), &PairId::new(&name).unwrap(), &record(&name, epoch)).unwrap();
}

fn content(tag: u8) -> Vec<u8> {
    (0..4096 + usize::from(tag)).map(|i| i.to_le_bytes()[0].wrapping_mul(tag | 1) ^ tag).collect()
}

fn hash(data: &[u8]) -> Hash {
    *blake3::hash(data).as_bytes()
}

/// Stores chunk `tag` zstd-compressed; returns its hash.
fn good(s: &Store, tag: u8) -> Hash {
    let data = content(tag);
    let z = zstd::bulk::compress(&data, 3).unwrap();
    let raw_len = u32::try_from(data.len()).unwrap();
    let h = hash(&data);
    s.put_chunk(&h, StoredChunk { compressed: true, raw_len, payload: &z }).unwrap();
    h
}

/// Stores under the hash of chunk `tag` raw bytes that differ from it in one bit.
fn corrupt(s: &Store, tag: u8) -> Hash {
    let data = content(tag);
    let mut bad = data.clone();
    bad[100] ^= 1;
    let raw_len = u32::try_from(data.len()).unwrap();
    let h = hash(&data);
    s.put_chunk(&h, StoredChunk { compressed: false, raw_len, payload: &bad }).unwrap();
    h
}

fn all(_: VerifyProgress) -> bool {
    true
}

/// Pair 1: points 1..=4 over chunks 0..6 of disk 0, and an open epoch 5.
///
/// | chunk | 1 | 2 | 3 | 4 | 5 (open) |
/// |---|---|---|---|---|---|
/// | 0 | A | | | | |
/// | 1 | B (corrupt) | | | E | I (missing) |
/// | 2 | C | G (missing) | | F | |
/// | 3 | zero | | | | |
/// | 5 | | | H (not zstd) | zero | |
///
/// Pair 2 names B too.
struct Fixture {
    b: Hash,
    g: Hash,
    h: Hash,
}

fn fixture(s: &Store) -> Fixture {
    let (a, c, e, f) = (good(s, 1), good(s, 3), good(s, 5), good(s, 6));
    let b = corrupt(s, 2);
    let g = good(s, 7);
    let h = hash(&content(8));
    s.put_chunk(&h, StoredChunk { compressed: true, raw_len: 4104, payload: b"not zstd at all" }).unwrap();
    let i = good(s, 9);
    let d = |h: Hash| ChunkVersion::Data(h);
    s.write_versions(1, 1, &[(0, 0, d(a)), (0, 1, d(b)), (0, 2, d(c)), (0, 3, ChunkVersion::Zero)]).unwrap();
    commit(s, 1, 1);
    s.write_versions(1, 2, &[(0, 2, d(g))]).unwrap();
    commit(s, 1, 2);
    s.write_versions(1, 3, &[(0, 5, d(h))]).unwrap();
    commit(s, 1, 3);
    s.write_versions(1, 4, &[(0, 1, d(e)), (0, 2, d(f)), (0, 5, ChunkVersion::Zero)]).unwrap();
    commit(s, 1, 4);
    s.write_versions(1, 5, &[(0, 1, d(i))]).unwrap();
    s.write_versions(2, 1, &[(3, 9, d(b))]).unwrap();
    commit(s, 2, 1);
    // G and I are lost after being named.
    s.db().delete_cf(s.cf(CF_CHUNKS), g).unwrap();
    s.db().delete_cf(s.cf(CF_CHUNKS), i).unwrap();
    s.flush().unwrap();
    Fixture { b, g, h }
}

fn damaged(disk: u32, chunk: u64, epoch: u64, hash: &Hash, reason: &str, points: &[u64]) -> Damaged {
    Damaged { disk, chunk, epoch, hash: hash_hex(hash), reason: reason.into(), points: points.to_vec() }
}

/// Reasons as the outcome words them (checked below by their substance).
fn reasons(out: &VerifyOutcome) -> Vec<String> {
    out.damaged.iter().map(|d| d.reason.clone()).collect()
}

#[test]
fn damaged_and_missing_chunks_are_reported_with_the_points_that_see_them() {
    let (_dir, s) = open_temp();
    let f = fixture(&s);
    let out = s.verify_points(1, None, all).unwrap();
    assert_eq!(out.points, [1, 2, 3, 4]);
    let r = reasons(&out);
    assert_eq!(r.len(), 3, "{out:?}");
    assert!(r[0].contains("hash mismatch"), "{}", r[0]);
    assert_eq!(r[1], "missing");
    assert!(r[2].contains("zstd decompression failed"), "{}", r[2]);
    assert_eq!(
        out.damaged,
        [
            // B: every point up to 4 (E replaces it); I, written in the open epoch over it,
            // hides nothing.
            damaged(0, 1, 1, &f.b, &r[0], &[1, 2, 3]),
            // G: points 2 and 3 (F replaces it at 4); C under it is intact.
            damaged(0, 2, 2, &f.g, "missing", &[2, 3]),
            damaged(0, 5, 3, &f.h, &r[2], &[3]),
        ]
    );
    assert_eq!(out.intact_points(), [4]);
    // Distinct chunks read: A, B, C, E, F, G, H (I is no point's; zeros are not read);
    // bytes: every stored one but the missing G.
    assert_eq!(out.chunks_checked, 7);
    assert!(out.bytes_checked > 4096 + 4, "{}", out.bytes_checked);
    // The other pair's version of B is its own report.
    let other = s.verify_points(2, None, all).unwrap();
    assert_eq!(other.damaged, [damaged(3, 9, 1, &f.b, &r[0], &[1])]);
    assert!(other.intact_points().is_empty());
}

#[test]
fn only_restricts_verification_to_one_point() {
    let (_dir, s) = open_temp();
    let f = fixture(&s);
    let mismatch = |out: &VerifyOutcome| reasons(out).first().cloned().unwrap_or_default();
    let out = s.verify_points(1, Some(2), all).unwrap();
    assert_eq!(out.points, [2]);
    let m = mismatch(&out);
    assert_eq!(out.damaged, [damaged(0, 1, 1, &f.b, &m, &[2]), damaged(0, 2, 2, &f.g, "missing", &[2])]);
    assert!(out.intact_points().is_empty());
    // Chunks only other points see are not read: A, B, G (C is hidden by G at point 2).
    assert_eq!(out.chunks_checked, 3);
    let out = s.verify_points(1, Some(1), all).unwrap();
    assert_eq!(out.damaged.len(), 1);
    assert_eq!(out.damaged[0].points, [1]);
    let out = s.verify_points(1, Some(4), all).unwrap();
    assert!(out.damaged.is_empty(), "{out:?}");
    assert_eq!(out.intact_points(), [4]);
    // A point that is not one (an open epoch, another pair's, none at all) is refused.
    for (pair_no, id) in [(1, 5), (1, 99), (3, 1)] {
        let e = s.verify_points(pair_no, Some(id), all).unwrap_err();
        assert!(matches!(e, StoreError::PointNotFound { pair_no: p, id: i } if p == pair_no && i == id), "{e}");
    }
}

#[test]
fn a_pair_without_damage_is_all_intact_and_progress_can_stop_it() {
    let (_dir, s) = open_temp();
    let a = good(&s, 1);
    // 3000 chunks: progress is asked every 1024.
    let items: Vec<_> =
        (0..3000u64).map(|c| (0, c, if c % 2 == 0 { ChunkVersion::Data(a) } else { ChunkVersion::Zero })).collect();
    s.write_versions(1, 1, &items).unwrap();
    commit(&s, 1, 1);
    s.write_versions(1, 2, &items[..10]).unwrap();
    commit(&s, 1, 2);
    let mut calls = Vec::new();
    let out = s
        .verify_points(1, None, |p| {
            calls.push(p);
            true
        })
        .unwrap();
    assert!(out.damaged.is_empty());
    assert_eq!(out.intact_points(), [1, 2]);
    assert_eq!(out.chunks_checked, 1, "one chunk, read once");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].chunk, 1023);
    let out = s.verify_points(1, None, |_| false).unwrap();
    assert!(out.points.is_empty(), "stopped: no point verified");
    assert!(out.intact_points().is_empty());
    // No points at all: nothing to verify.
    assert_eq!(s.verify_points(7, None, all).unwrap(), VerifyOutcome::default());
}
