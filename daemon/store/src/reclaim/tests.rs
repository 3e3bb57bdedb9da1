//! Tests of space reclaim on real chunks: exactly the chunks no version entry names go,
//! shared ones stay, stale references are dropped, a reclaimed chunk cannot be named again
//! without being stored again, the disk space really comes back, and a store of the layout
//! before the `epochs`/`refs` indexes is indexed on open (else reclaim would trust no refs).

use super::*;
use crate::keys::{META_FORMAT, encode_version, ref_key, version_key};
use crate::options::{CF_EPOCHS, CF_META, CF_VERSIONS};
use crate::test_support::{point, record};
use crate::{PairId, PruneOutcome, StoredChunk, hash_hex};
use rocksdb::IteratorMode;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn name(pair_no: u32) -> String {
    format!("p{pair_no}")
}

fn id(pair_no: u32) -> PairId {
    PairId::new(name(pair_no)).unwrap()
}

fn commit(s: &Store, pair_no: u32, epoch: u64) {
    s.commit_point(pair_no, &point(&name(pair_no), epoch), &id(pair_no), &record(&name(pair_no), epoch)).unwrap();
}

/// Content of chunk `tag`: `len` bytes, compressible or not.
fn content(tag: u64, len: usize, compressible: bool) -> Vec<u8> {
    let mut x = tag.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let word = if compressible { (x & 3).to_le_bytes() } else { x.to_le_bytes() };
        out.extend_from_slice(&word);
    }
    out.truncate(len);
    out
}

/// A stored chunk: its hash, content and stored length.
#[derive(Debug, Clone)]
struct Real {
    hash: Hash,
    data: Vec<u8>,
    stored: u64,
}

impl Real {
    fn v(&self) -> ChunkVersion {
        ChunkVersion::Data(self.hash)
    }
}

/// Stores chunk `tag` (zstd when compressible, raw otherwise).
fn put(s: &Store, tag: u64, len: usize, compressible: bool) -> Real {
    let data = content(tag, len, compressible);
    let hash = *blake3::hash(&data).as_bytes();
    let raw_len = u32::try_from(len).unwrap();
    let stored = if compressible {
        let z = zstd::bulk::compress(&data, 3).unwrap();
        s.put_chunk(&hash, StoredChunk { compressed: true, raw_len, payload: &z }).unwrap()
    } else {
        s.put_chunk(&hash, StoredChunk { compressed: false, raw_len, payload: &data }).unwrap()
    };
    assert!(stored > 0, "chunk {tag} newly stored");
    Real { hash, data, stored }
}

fn keys(s: &Store, cf: &str) -> Vec<Vec<u8>> {
    s.db().iterator_cf(s.cf(cf), IteratorMode::Start).map(|r| r.unwrap().0.to_vec()).collect()
}

/// Asserts which of `chunks` are stored: those in `kept` read back intact, the others are
/// not in the store.
fn assert_stored(s: &Store, chunks: &BTreeMap<&str, Real>, kept: &[&str]) {
    for (n, c) in chunks {
        if kept.contains(n) {
            assert_eq!(s.has_chunks(&[c.hash]).unwrap(), [true], "{n} kept");
            assert_eq!(s.read_chunk(&c.hash).unwrap(), c.data, "{n} intact");
        } else {
            assert_eq!(s.has_chunks(&[c.hash]).unwrap(), [false], "{n} deleted");
            assert!(matches!(s.read_chunk(&c.hash), Err(StoreError::MissingChunk { .. })), "{n} deleted");
        }
    }
}

fn freed(chunks: &BTreeMap<&str, Real>, names: &[&str]) -> u64 {
    names.iter().map(|n| chunks[n].stored).sum()
}

#[test]
fn reclaim_deletes_exactly_the_chunks_no_version_names() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let mut chunks = BTreeMap::new();
    for (i, n) in ["A", "B", "C", "D", "E", "F", "S", "X"].into_iter().enumerate() {
        let i = u64::try_from(i).unwrap();
        chunks.insert(n, put(&s, i, 3000 + 1000 * usize::try_from(i).unwrap(), i % 2 == 0));
    }
    let v = |n: &str| chunks[n].v();
    // Pair 1: A at chunk 0 (seen by every point), B → C → D at chunk 1, S → X → S at chunk 2.
    s.write_versions(1, 1, &[(0, 0, v("A")), (0, 1, v("B")), (0, 2, v("S"))]).unwrap();
    commit(&s, 1, 1);
    s.write_versions(1, 2, &[(0, 1, v("C")), (0, 2, v("X"))]).unwrap();
    commit(&s, 1, 2);
    s.write_versions(1, 3, &[(0, 1, v("D")), (0, 2, v("S")), (0, 3, ChunkVersion::Zero)]).unwrap();
    commit(&s, 1, 3);
    s.write_versions(1, 4, &[(0, 0, v("E"))]).unwrap();
    commit(&s, 1, 4);
    // Pair 2 shares S and A.
    s.write_versions(2, 1, &[(0, 0, v("S")), (0, 1, v("F"))]).unwrap();
    commit(&s, 2, 1);
    s.write_versions(2, 2, &[(1, 0, v("A"))]).unwrap();
    commit(&s, 2, 2);
    s.flush().unwrap();
    let all: Vec<&str> = chunks.keys().copied().collect();
    assert_eq!(s.reclaim().unwrap().candidates, 0, "nothing deleted yet");
    assert_stored(&s, &chunks, &all);

    // Point 2 goes: only it saw C and X. The candidates are durable with the prune.
    let out = s.remove_points(1, &[2]).unwrap();
    assert_eq!((out.points, out.versions), (1, 2));
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.reclaim_candidates().unwrap(), 2);
    let r = s.reclaim().unwrap();
    assert_eq!((r.candidates, r.chunks_deleted, r.stale_refs), (2, 2, 0));
    assert_eq!(r.bytes_freed, freed(&chunks, &["C", "X"]));
    assert_stored(&s, &chunks, &["A", "B", "D", "E", "F", "S"]);

    // Rolled back to point 3: E (point 4 only) goes.
    s.rollback_pair(1, &id(1), &record("p1", 3), 3).unwrap();
    let r = s.reclaim().unwrap();
    assert_eq!((r.candidates, r.chunks_deleted, r.bytes_freed), (1, 1, freed(&chunks, &["E"])));
    assert_stored(&s, &chunks, &["A", "B", "D", "F", "S"]);

    // Point 1 goes: B (overwritten by D at 3) goes; S's entry at 1 goes but S stays (pair 1
    // at 3, pair 2); A stays (point 3 still reads it).
    let out = s.remove_points(1, &[1]).unwrap();
    assert_eq!((out.points, out.versions), (1, 2));
    let r = s.reclaim().unwrap();
    assert_eq!((r.candidates, r.chunks_deleted, r.bytes_freed), (2, 1, freed(&chunks, &["B"])));
    assert_stored(&s, &chunks, &["A", "D", "F", "S"]);

    // Pair 2 wiped (range deletions leave its `refs` keys): F goes; A and S stay, found
    // referenced by pair 1 before reclaim reaches pair 2's stale keys.
    s.wipe_pair(2).unwrap();
    let r = s.reclaim().unwrap();
    assert_eq!((r.candidates, r.chunks_deleted, r.stale_refs), (3, 1, 1));
    assert_eq!(r.bytes_freed, freed(&chunks, &["F"]));
    assert_stored(&s, &chunks, &["A", "D", "S"]);

    // Idempotent: nothing listed, nothing done.
    let again = s.reclaim().unwrap();
    assert_eq!((again.candidates, again.chunks_deleted, again.bytes_freed, again.stale_refs), (0, 0, 0, 0));

    // Pair 1 wiped too: every chunk goes, and every stale reference with it (A: pair 1's
    // and pair 2's, S: both, D).
    s.wipe_pair(1).unwrap();
    let r = s.reclaim().unwrap();
    assert_eq!((r.candidates, r.chunks_deleted, r.stale_refs), (3, 3, 5));
    assert_eq!(r.bytes_freed, freed(&chunks, &["A", "D", "S"]));
    assert_stored(&s, &chunks, &[]);
    assert!(keys(&s, CF_REFS).is_empty(), "no reference left");
    assert!(keys(&s, CF_SIZES).is_empty(), "no size left");
    assert_eq!(s.reclaim_candidates().unwrap(), 0);
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_stored(&s, &chunks, &[]);
}

#[test]
fn naming_a_chunk_that_reclaim_deleted_is_refused_until_it_is_stored_again() {
    let (_dir, s) = crate::test_support::open_temp();
    let h = put(&s, 1, 5000, true);
    // An abandoned epoch named it: it is a candidate with no reference.
    s.write_versions(1, 1, &[(0, 0, h.v())]).unwrap();
    assert_eq!(s.discard_pending(1).unwrap(), 1);
    // A writer finds it stored (and would not ship it)...
    assert_eq!(s.has_chunks(&[h.hash]).unwrap(), [true]);
    // ... reclaim deletes it meanwhile ...
    assert_eq!(s.reclaim().unwrap().chunks_deleted, 1);
    // ... so naming it is refused, as the writer's cue to ship it again; nothing is written.
    let e = s.write_versions(1, 1, &[(0, 0, h.v()), (0, 1, ChunkVersion::Zero)]).unwrap_err();
    assert!(matches!(&e, StoreError::MissingChunk { hash } if *hash == hash_hex(&h.hash)), "{e}");
    assert_eq!(s.version_at(1, 0, 1, 1).unwrap(), None);
    let e = s.write_dump_versions(1, 1, &[(0, 0, Some(h.v()))]).unwrap_err();
    assert!(matches!(e, StoreError::MissingChunk { .. }), "{e}");
    assert_eq!(s.discard_pending(1).unwrap(), 0);
    // Shipped again, it is stored fresh and may be named.
    let again = put(&s, 1, 5000, true);
    assert_eq!(again.stored, h.stored);
    s.write_versions(1, 1, &[(0, 0, h.v())]).unwrap();
    commit(&s, 1, 1);
    assert_eq!(s.reclaim().unwrap().chunks_deleted, 0);
    assert_eq!(s.read_chunk(&h.hash).unwrap(), h.data);
}

#[test]
fn reclaim_never_deletes_a_chunk_that_a_concurrent_writer_names() {
    let (_dir, s) = crate::test_support::open_temp();
    let chunks: Vec<Real> = (0..4).map(|i| put(&s, i, 2000, true)).collect();
    let done = std::sync::atomic::AtomicBool::new(false);
    let (refused, passes) = std::thread::scope(|t| {
        let reclaimer = t.spawn(|| {
            let mut passes = 0u64;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                s.reclaim().unwrap();
                passes += 1;
            }
            passes
        });
        let mut refused = 0u64;
        for round in 0..200usize {
            let c = &chunks[round % chunks.len()];
            let chunk =
                StoredChunk { compressed: true, raw_len: 2000, payload: &zstd::bulk::compress(&c.data, 3).unwrap() };
            loop {
                s.put_chunk(&c.hash, chunk).unwrap();
                match s.write_versions(1, 1, &[(0, 0, c.v())]) {
                    Ok(()) => break,
                    Err(StoreError::MissingChunk { .. }) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            // Named by an entry: reclaim may not delete it, however often it runs.
            for _ in 0..3 {
                assert_eq!(s.read_chunk(&c.hash).unwrap(), c.data, "round {round}");
                std::thread::yield_now();
            }
            // Abandoned: a candidate again.
            s.discard_pending(1).unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        (refused, reclaimer.join().unwrap())
    });
    eprintln!("{passes} reclaim passes, {refused} writes refused and retried");
    assert!(passes > 0);
}

/// Total size of the store's blob files on disk, and their names.
fn blob_files(dir: &Path) -> (u64, BTreeSet<String>) {
    let mut total = 0;
    let mut names = BTreeSet::new();
    for e in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let n = e.file_name().into_string().unwrap();
        if n.ends_with(".blob") {
            total += e.metadata().unwrap().len();
            names.insert(n);
        }
    }
    (total, names)
}

#[test]
fn compact_chunks_gives_the_space_of_reclaimed_chunks_back() {
    const MIB: f64 = (1 << 20) as f64;
    const CHUNK: usize = 64 << 10;
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    // rocksdb's figure, and the blob files on disk once obsolete ones are deleted.
    let sizes = |s: &Store| {
        s.flush().unwrap();
        let blob = s.approximate_sizes().unwrap().chunk_blob_bytes;
        let t0 = std::time::Instant::now();
        loop {
            let files = blob_files(dir.path());
            if files.0 == blob || t0.elapsed().as_secs() > 10 {
                return (blob, files);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    // 64 MiB of incompressible chunks, one blob file per epoch (4 MiB each): epoch 1 at chunks
    // 0..64 (all rewritten by epoch 2), epochs 3..=16 at chunks 100·e + 0..64 (half of each
    // turned to zeros by epoch 17).
    let mut data = BTreeMap::new();
    for e in 1..=16u64 {
        let base = if e <= 2 { 0 } else { 100 * e };
        let items: Vec<_> = (0..64u64)
            .map(|i| {
                let c = put(&s, e * 1000 + i, CHUNK, false);
                data.insert(c.hash, c.data.clone());
                (0, base + i, c.v())
            })
            .collect();
        s.write_versions(1, e, &items).unwrap();
        commit(&s, 1, e);
        s.flush().unwrap();
    }
    let zeros: Vec<_> = (3..=16u64).flat_map(|e| (0..32).map(move |i| (0, 100 * e + i, ChunkVersion::Zero))).collect();
    s.write_versions(1, 17, &zeros).unwrap();
    commit(&s, 1, 17);
    let (before, (on_disk, files)) = sizes(&s);
    eprintln!(
        "blob files: {:.1} MiB ({} files, {:.1} MiB on disk)",
        before as f64 / MIB,
        files.len(),
        on_disk as f64 / MIB
    );
    assert!(before >= 64 << 20, "{before}");
    let stored = |s: &Store| -> Vec<Hash> {
        let hashes: Vec<Hash> = data.keys().copied().collect();
        hashes.iter().zip(s.has_chunks(&hashes).unwrap()).filter(|(_, f)| *f).map(|(h, _)| *h).collect()
    };

    // 1. Point 1 goes: its file holds garbage only (6% of the bytes). Reclaim alone frees no
    //    disk space; compaction drops that file whole and rewrites nothing else.
    assert_eq!(s.remove_points(1, &[1]).unwrap().versions, 64);
    let r = s.reclaim().unwrap();
    assert_eq!((r.chunks_deleted, r.bytes_freed), (64, 64 * (CHUNK as u64 + 5)));
    s.compact_chunks().unwrap();
    let (after1, (_, files1)) = sizes(&s);
    eprintln!("point 1 pruned: freed {:.1} MiB, blob files {:.1} MiB", r.bytes_freed as f64 / MIB, after1 as f64 / MIB);
    assert!(before - after1 >= r.bytes_freed, "{before} - {after1} < {}", r.bytes_freed);
    assert_eq!(files1.len(), files.len() - 1);
    assert!(files1.is_subset(&files), "nothing rewritten below the garbage threshold");

    // 2. Points 3..=16 go: half of each of their files is garbage (47% of the bytes): the
    //    live chunks are rewritten and the space comes back.
    let out = s.remove_points(1, &(3..=16).collect::<Vec<_>>()).unwrap();
    assert_eq!(out.versions, 14 * 32);
    let r = s.reclaim().unwrap();
    assert_eq!(r.chunks_deleted, 14 * 32);
    s.compact_chunks().unwrap();
    let (after2, (on_disk2, files2)) = sizes(&s);
    let live = (64 + 14 * 32) * (CHUNK as u64 + 5);
    eprintln!(
        "points 3..=16 pruned: freed {:.1} MiB, blob files {:.1} MiB ({:.1} MiB on disk), live chunks {:.1} MiB",
        r.bytes_freed as f64 / MIB,
        after2 as f64 / MIB,
        on_disk2 as f64 / MIB,
        live as f64 / MIB
    );
    assert!(after1 - after2 >= r.bytes_freed, "{after1} - {after2} < {}", r.bytes_freed);
    assert!(after2 < live + live / 50, "{after2} vs live {live}");
    assert!(files2.is_disjoint(&files), "every old file rewritten");
    let left = stored(&s);
    assert_eq!(left.len(), 64 + 14 * 32);
    for h in &left {
        assert_eq!(&s.read_chunk(h).unwrap(), &data[h]);
    }

    // 3. The pair wiped: nothing is left.
    s.wipe_pair(1).unwrap();
    assert_eq!(s.reclaim().unwrap().chunks_deleted, 64 + 14 * 32);
    s.compact_chunks().unwrap();
    let (after3, (on_disk3, _)) = sizes(&s);
    assert_eq!((after3, on_disk3), (0, 0));
    assert!(stored(&s).is_empty());
}

#[test]
fn the_compaction_a_reclaim_owes_is_owed_until_done_even_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    let (a, b) = (put(&s, 1, 8192, false), put(&s, 2, 8192, false));
    s.write_versions(1, 1, &[(0, 0, a.v())]).unwrap();
    commit(&s, 1, 1);
    s.write_versions(1, 2, &[(0, 0, b.v())]).unwrap();
    commit(&s, 1, 2);
    assert!(!s.compaction_owed().unwrap());
    assert_eq!(s.remove_points(1, &[1]).unwrap().versions, 1);
    assert_eq!(s.reclaim().unwrap().chunks_deleted, 1);
    assert!(s.compaction_owed().unwrap());
    // The standby stops (or dies) before compacting: the debt is durable with the deletion,
    // and a reclaim that deletes nothing itself keeps it.
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert!(s.compaction_owed().unwrap());
    assert_eq!(s.reclaim().unwrap().chunks_deleted, 0);
    assert!(s.compaction_owed().unwrap());
    s.compact_chunks().unwrap();
    assert!(!s.compaction_owed().unwrap());
    drop(s);
    assert!(!Store::open(dir.path()).unwrap().compaction_owed().unwrap());
}

#[test]
fn a_store_without_index_keys_is_indexed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let (kept, gone) = {
        let s = Store::open(dir.path()).unwrap();
        let kept = put(&s, 1, 3000, true);
        let gone = put(&s, 2, 3000, false);
        // Entries written as the older layout did: no `epochs`/`refs` keys, no format key.
        for (disk, chunk, epoch, v) in
            [(0, 0, 1, gone.v()), (0, 0, 2, kept.v()), (0, 1, 1, ChunkVersion::Zero), (1, 7, 2, kept.v())]
        {
            s.db().put_cf(s.cf(CF_VERSIONS), version_key(1, disk, chunk, epoch), encode_version(v)).unwrap();
        }
        commit(&s, 1, 1);
        commit(&s, 1, 2);
        s.db().delete_cf(s.cf(CF_META), META_FORMAT).unwrap();
        s.flush().unwrap();
        // Gone from the older layout's point of view too: nothing indexes the entries.
        assert!(keys(&s, CF_EPOCHS).is_empty() && keys(&s, CF_REFS).is_empty());
        (kept, gone)
    };
    let s = Store::open(dir.path()).unwrap();
    let format = s.db().get_cf(s.cf(CF_META), META_FORMAT).unwrap().unwrap();
    assert!(u32::from_be_bytes(format[..].try_into().unwrap()) >= 2);
    assert_eq!(keys(&s, CF_EPOCHS).len(), 4);
    let refs: BTreeSet<Vec<u8>> = keys(&s, CF_REFS).into_iter().collect();
    let expect: BTreeSet<Vec<u8>> = [
        ref_key(&gone.hash, 1, 0, 0, 1).to_vec(),
        ref_key(&kept.hash, 1, 0, 0, 2).to_vec(),
        ref_key(&kept.hash, 1, 1, 7, 2).to_vec(),
    ]
    .into();
    assert_eq!(refs, expect);
    // Reclaim now trusts the references: a chunk named by an old entry stays.
    s.db().put_cf(s.cf(CF_RECLAIM), kept.hash, []).unwrap();
    assert_eq!(s.reclaim().unwrap().chunks_deleted, 0);
    assert_eq!(s.read_chunk(&kept.hash).unwrap(), kept.data);
    // Pruning finds the old entries through `epochs`.
    let out = s.remove_points(1, &[1]).unwrap();
    assert_eq!(out, PruneOutcome { points: 1, versions: 1, examined: 2, interrupted: false });
    assert_eq!(s.reclaim().unwrap().bytes_freed, gone.stored);
    assert_eq!(s.has_chunks(&[gone.hash, kept.hash]).unwrap(), [false, true]);
    // Indexed once: reopening leaves the indexes as they are.
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(keys(&s, CF_EPOCHS).len(), 3);
    assert_eq!(s.version_at(1, 0, 1, 2).unwrap(), Some((1, ChunkVersion::Zero)));
}
