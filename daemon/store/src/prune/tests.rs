//! Tests of removing points: every remaining point reads as before, exactly the entries no
//! remaining point sees go (with their index keys, their chunks listed for reclaim), refusals
//! change nothing, and journalled sweeps finish after a crash, never touch open epochs and
//! stop when the pair's history is rewritten under them.

use super::*;
use crate::keys::{VersionKey, decode_ref_key, decode_version, decode_version_key, pair_prefix};
use crate::options::{CF_RECLAIM, CF_REFS, CF_VERSIONS};
use crate::test_support::{open_temp, point, record};
use crate::{ChunkVersion, Hash, PairId, StoredChunk};
use proptest::prelude::*;
use rocksdb::{Direction, IteratorMode};
use std::collections::BTreeMap;

const DISKS: u32 = 2;
const CHUNKS: u64 = 6;

/// Real chunk contents, one per tag (distinct lengths, so distinct hashes).
fn content(tag: u8) -> Vec<u8> {
    (0..200 + 3 * usize::from(tag)).map(|i| i.to_le_bytes()[0] ^ tag).collect()
}

/// Stores the chunk of `tag` (zstd for even tags, raw for odd ones) and returns its version.
fn chunk(s: &Store, tag: u8) -> ChunkVersion {
    let data = content(tag);
    let hash = *blake3::hash(&data).as_bytes();
    let raw_len = u32::try_from(data.len()).unwrap();
    if tag.is_multiple_of(2) {
        let z = zstd::bulk::compress(&data, 3).unwrap();
        s.put_chunk(&hash, StoredChunk { compressed: true, raw_len, payload: &z }).unwrap();
    } else {
        s.put_chunk(&hash, StoredChunk { compressed: false, raw_len, payload: &data }).unwrap();
    }
    ChunkVersion::Data(hash)
}

fn name(pair_no: u32) -> String {
    format!("p{pair_no}")
}

fn id(pair_no: u32) -> PairId {
    PairId::new(name(pair_no)).unwrap()
}

fn commit(s: &Store, pair_no: u32, epoch: u64) {
    s.commit_point(pair_no, &point(&name(pair_no), epoch), &id(pair_no), &record(&name(pair_no), epoch)).unwrap();
}

fn pin(s: &Store, pair_no: u32, epoch: u64) {
    let mut p = point(&name(pair_no), epoch);
    p.pinned = true;
    s.update_point(pair_no, &p).unwrap();
}

fn epochs(s: &Store, pair_no: u32) -> Vec<u64> {
    s.list_points(pair_no).unwrap().iter().map(|p| p.epoch).collect()
}

/// What every chunk of every disk reads as at `at`.
fn image(s: &Store, pair_no: u32, at: u64) -> Vec<Vec<Option<ChunkVersion>>> {
    (0..DISKS).map(|d| s.versions_at(pair_no, d, at, 0, CHUNKS).unwrap()).collect()
}

/// Every version entry of the pair: (disk, chunk, epoch) → version.
fn entries(s: &Store, pair_no: u32) -> BTreeMap<(u32, u64, u64), ChunkVersion> {
    let prefix = pair_prefix(pair_no);
    let mode = IteratorMode::From(&prefix, Direction::Forward);
    s.db()
        .iterator_cf(s.cf(CF_VERSIONS), mode)
        .map(Result::unwrap)
        .take_while(|(k, _)| k.starts_with(&prefix))
        .map(|(k, v)| {
            let vk = decode_version_key(&k).unwrap();
            ((vk.disk, vk.chunk, vk.epoch), decode_version(&vk, &v).unwrap())
        })
        .collect()
}

/// Keys of a whole column family.
fn keys(s: &Store, cf: &str) -> Vec<Vec<u8>> {
    s.db().iterator_cf(s.cf(cf), IteratorMode::Start).map(|r| r.unwrap().0.to_vec()).collect()
}

/// Invariant 4 after sweeps (which delete entries one by one, never by range): the pair's
/// `epochs` keys are exactly its entries, its `refs` keys exactly its entries naming a chunk.
fn assert_indexed(s: &Store, pair_no: u32) {
    let entries = entries(s, pair_no);
    let prefix = pair_prefix(pair_no);
    let indexed: Vec<(u32, u64, u64)> = keys(s, CF_EPOCHS)
        .iter()
        .filter(|k| k.starts_with(&prefix))
        .map(|k| decode_pending_key(k).map(|vk| (vk.disk, vk.chunk, vk.epoch)).unwrap())
        .collect();
    let mut expect: Vec<_> = entries.keys().copied().collect();
    expect.sort_by_key(|&(d, c, e)| (e, d, c));
    assert_eq!(indexed, expect, "epochs index of pair {pair_no}");
    let refs: BTreeMap<(u32, u64, u64), Hash> = keys(s, CF_REFS)
        .iter()
        .map(|k| (decode_ref_key(k).unwrap(), <Hash>::try_from(&k[..32]).unwrap()))
        .filter(|(vk, _)| vk.pair_no == pair_no)
        .map(|(vk, h)| ((vk.disk, vk.chunk, vk.epoch), h))
        .collect();
    let named: BTreeMap<(u32, u64, u64), Hash> = entries
        .iter()
        .filter_map(|(k, v)| match v {
            ChunkVersion::Data(h) => Some((*k, *h)),
            ChunkVersion::Zero => None,
        })
        .collect();
    assert_eq!(refs, named, "refs index of pair {pair_no}");
}

fn reclaim_listed(s: &Store) -> Vec<Hash> {
    keys(s, CF_RECLAIM).iter().map(|k| <Hash>::try_from(&k[..]).unwrap()).collect()
}

/// Committed entries of pair 1: (disk, chunk) → epoch → version.
type Model = BTreeMap<(u32, u64), BTreeMap<u64, ChunkVersion>>;

/// The entries of `model` that some point of `points` sees: the first point at or after an
/// entry's epoch reads that entry, not a newer one.
fn seen(model: &Model, points: &BTreeSet<u64>) -> BTreeMap<(u32, u64, u64), ChunkVersion> {
    let mut out = BTreeMap::new();
    for (&(d, c), versions) in model {
        for (&e, &v) in versions {
            let Some(&reader) = points.range(e..).next() else { continue };
            if versions.range(..=reader).next_back().map(|(&x, _)| x) == Some(e) {
                out.insert((d, c, e), v);
            }
        }
    }
    out
}

/// One committed epoch of the random history.
#[derive(Debug, Clone)]
struct Step {
    gap: u64,
    /// (disk, chunk, tag of the content, or None for a zero chunk)
    writes: Vec<(u32, u64, Option<u8>)>,
    pin: bool,
    remove: bool,
    flush: bool,
}

fn writes() -> impl Strategy<Value = Vec<(u32, u64, Option<u8>)>> {
    prop::collection::vec((0..DISKS, 0..CHUNKS, prop::option::weighted(0.85, 0u8..40)), 0..7)
}

fn step() -> impl Strategy<Value = Step> {
    (1u64..4, writes(), prop::bool::weighted(0.15), prop::bool::weighted(0.5), prop::bool::weighted(0.1))
        .prop_map(|(gap, writes, pin, remove, flush)| Step { gap, writes, pin, remove, flush })
}

/// Writes `writes` at `epoch` (last write of a chunk wins, as within one epoch); returns the
/// versions written.
fn write(s: &Store, pair_no: u32, epoch: u64, writes: &[(u32, u64, Option<u8>)]) -> BTreeMap<(u32, u64), ChunkVersion> {
    let items: BTreeMap<(u32, u64), ChunkVersion> =
        writes.iter().map(|&(d, c, t)| ((d, c), t.map_or(ChunkVersion::Zero, |t| chunk(s, t)))).collect();
    let list: Vec<_> = items.iter().map(|(&(d, c), &v)| (d, c, v)).collect();
    s.write_versions(pair_no, epoch, &list).unwrap();
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Random history of pair 1 (pair 2, a witness, commits the disk-0 writes at the same
    /// epochs, sharing chunks), an open epoch, pinned points; then a random subset of the
    /// removable points goes, mixed with ids that are not points.
    #[test]
    fn removing_points_keeps_exactly_what_remaining_points_see(
        steps in prop::collection::vec(step(), 2..14),
        open in writes(),
        strangers in prop::collection::vec(0u64..60, 0..3),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let mut model = Model::new();
        let mut open_model: BTreeMap<(u32, u32, u64, u64), ChunkVersion> = BTreeMap::new();
        let (mut clock, mut pinned, mut chosen) = (0u64, BTreeSet::new(), BTreeSet::new());
        for st in &steps {
            clock += st.gap;
            for ((d, c), v) in write(&s, 1, clock, &st.writes) {
                model.entry((d, c)).or_default().insert(clock, v);
            }
            let disk0: Vec<_> = st.writes.iter().copied().filter(|w| w.0 == 0).collect();
            write(&s, 2, clock, &disk0);
            commit(&s, 1, clock);
            commit(&s, 2, clock);
            if st.pin {
                pin(&s, 1, clock);
                pinned.insert(clock);
            } else if st.remove {
                chosen.insert(clock);
            }
            if st.flush {
                s.flush().unwrap();
            }
        }
        let newest = clock;
        let open_epoch = clock + 1;
        for ((d, c), v) in write(&s, 1, open_epoch, &open) {
            open_model.insert((1, d, c, open_epoch), v);
        }
        let points: BTreeSet<u64> = epochs(&s, 1).into_iter().collect();
        let before: BTreeMap<u64, _> = points.iter().map(|&p| (p, image(&s, 1, p))).collect();
        let all_before = entries(&s, 1);
        let pair2 = entries(&s, 2);

        // (c) The newest point, or a pinned one, is refused and nothing changes, even when
        // asked together with removable points.
        let removable: Vec<u64> = chosen.iter().copied().filter(|&e| e != newest).collect();
        let mut refused = vec![vec![newest], removable.iter().copied().chain([newest]).collect()];
        if let Some(&p) = pinned.iter().next() {
            refused.push(removable.iter().copied().chain([p]).collect());
        }
        for ids in refused {
            let e = s.remove_points(1, &ids).unwrap_err();
            prop_assert!(matches!(e, StoreError::InvalidPoint { pair_no: 1, .. }), "{}", e);
            prop_assert_eq!(&epochs(&s, 1), &points.iter().copied().collect::<Vec<_>>());
            prop_assert_eq!(&entries(&s, 1), &all_before);
            prop_assert!(s.pairs_with_sweeps().unwrap().is_empty());
        }

        // (d) Ids that are not points of the pair are ignored.
        let strangers: Vec<u64> =
            strangers.into_iter().chain([u64::MAX]).filter(|x| !points.contains(x)).collect();
        let ids: Vec<u64> = removable.iter().copied().chain(strangers.iter().copied()).collect();
        let doomed: BTreeSet<u64> = removable.iter().copied().collect();
        let kept: BTreeSet<u64> = points.difference(&doomed).copied().collect();
        let out = s.remove_points(1, &ids).unwrap();

        // Expected: entries no kept point sees go; an entry is examined when a removed point
        // lies between it and the next kept point.
        let survivors = seen(&model, &kept);
        let committed: usize = model.values().map(BTreeMap::len).sum();
        let examined = model
            .values()
            .flat_map(BTreeMap::keys)
            .filter(|&&e| {
                let next_kept = kept.range(e..).next().copied().unwrap_or(u64::MAX);
                doomed.range(e..next_kept).next().is_some()
            })
            .count();
        prop_assert_eq!(out, PruneOutcome {
            points: doomed.len() as u64,
            versions: (committed - survivors.len()) as u64,
            examined: examined as u64,
            interrupted: false,
        });
        let check = |s: &Store| -> Result<(), TestCaseError> {
            prop_assert_eq!(epochs(s, 1), kept.iter().copied().collect::<Vec<_>>());
            // (a) Every remaining point reads exactly as before.
            for &p in &kept {
                prop_assert_eq!(&image(s, 1, p), &before[&p], "point {}", p);
            }
            // (b) No entry remains that no remaining point sees; open epochs are untouched.
            let mut expect = survivors.clone();
            expect.extend(open_model.iter().map(|(&(_, d, c, e), &v)| ((d, c, e), v)));
            prop_assert_eq!(&entries(s, 1), &expect);
            prop_assert_eq!(&entries(s, 2), &pair2, "the witness pair is untouched");
            assert_indexed(s, 1);
            assert_indexed(s, 2);
            prop_assert!(s.pairs_with_sweeps().unwrap().is_empty());
            Ok(())
        };
        check(&s)?;
        // Every chunk named by a deleted entry is a reclaim candidate.
        let listed = reclaim_listed(&s);
        for (k, v) in &all_before {
            let deleted = !survivors.contains_key(k) && !open_model.contains_key(&(1, k.0, k.1, k.2));
            if let (true, ChunkVersion::Data(h)) = (deleted, v) {
                prop_assert!(listed.contains(h), "entry {:?} deleted without listing its chunk", k);
            }
        }
        prop_assert_eq!(s.remove_points(1, &[]).unwrap(), PruneOutcome::default());
        prop_assert_eq!(s.remove_points(1, &strangers).unwrap(), PruneOutcome::default());

        // Space reclaim then keeps exactly the chunks some entry (of either pair) names.
        let named: BTreeSet<Hash> = entries(&s, 1)
            .values()
            .chain(entries(&s, 2).values())
            .filter_map(|v| match v { ChunkVersion::Data(h) => Some(*h), ChunkVersion::Zero => None })
            .collect();
        let ever: BTreeSet<Hash> = all_before
            .values()
            .chain(pair2.values())
            .filter_map(|v| match v { ChunkVersion::Data(h) => Some(*h), ChunkVersion::Zero => None })
            .collect();
        let r = s.reclaim().unwrap();
        prop_assert_eq!(r.chunks_deleted, ever.difference(&named).count() as u64);
        for h in &ever {
            prop_assert_eq!(s.has_chunks(&[*h]).unwrap()[0], named.contains(h));
        }
        drop(s);
        let s = Store::open(dir.path()).unwrap();
        check(&s)?;
    }
}

/// Pair 1 with points 2, 4, 6, 8 (real chunks, two disks) and an open epoch 9.
fn four_points(s: &Store) {
    let epoch = |e: u64, chunks: &[u64], tag: u8| {
        let items: Vec<_> = chunks
            .iter()
            .flat_map(|&c| (0..DISKS).map(move |d| (d, c)))
            .map(|(d, c)| (d, c, chunk(s, tag + u8::try_from(c).unwrap())))
            .collect();
        s.write_versions(1, e, &items).unwrap();
        commit(s, 1, e);
    };
    epoch(2, &[0, 1, 2, 3, 4, 5], 0);
    epoch(4, &[1, 2], 10);
    epoch(6, &[2, 3], 20);
    epoch(8, &[0, 5], 30);
    s.write_versions(1, 9, &[(0, 4, chunk(s, 39))]).unwrap();
}

fn ver(s: &Store, disk: u32, chunk: u64, epoch: u64) -> Option<ChunkVersion> {
    s.get_version(&VersionKey { pair_no: 1, disk, chunk, epoch }).unwrap()
}

#[test]
fn removing_the_newest_or_a_pinned_point_is_refused_naming_it() {
    let (_dir, s) = open_temp();
    four_points(&s);
    pin(&s, 1, 4);
    let e = s.remove_points(1, &[6, 8]).unwrap_err();
    assert!(e.to_string().contains("recovery point 8: the newest point is never removed"), "{e}");
    let e = s.remove_points(1, &[4, 6]).unwrap_err();
    assert_eq!(e.to_string(), "pair #1 recovery point 4: pinned: unpin it first");
    assert_eq!(epochs(&s, 1), [2, 4, 6, 8]);
    // Ids that are no point of this pair (an epoch without point, another pair's) are ignored.
    assert_eq!(s.remove_points(1, &[3, 5, 100]).unwrap(), PruneOutcome::default());
    assert_eq!(s.remove_points(2, &[4]).unwrap(), PruneOutcome::default());
    assert_eq!(epochs(&s, 1), [2, 4, 6, 8]);
}

#[test]
fn a_journalled_sweep_is_finished_after_a_crash_and_redoing_it_is_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let s = Store::open(dir.path()).unwrap();
    four_points(&s);
    s.flush().unwrap();
    let at = |s: &Store| [2, 8].map(|p| image(s, 1, p));
    let images = at(&s);
    let all = entries(&s, 1);
    // The synced batch of `remove_points(1, &[4, 6])` and then a crash before the sweep.
    let mut batch = WriteBatch::default();
    for e in [4, 6] {
        batch.delete_cf(s.cf(CF_POINTS), point_key(1, e));
    }
    batch.put_cf(s.cf(CF_META), sweep_key(1, 3, 6), []);
    s.write_synced(batch).unwrap();
    drop(s);

    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.pairs_with_sweeps().unwrap(), [1]);
    assert_eq!(entries(&s, 1), all, "nothing swept yet");
    let out = s.finish_sweeps(1).unwrap();
    // Chunk 2 at epoch 4 (both disks) was only point 4's; chunk 1 at 4 and chunks 2 and 3 at 6
    // are still seen by point 8. Examined: the 8 entries of epochs 3..=6.
    assert_eq!(out, PruneOutcome { points: 0, versions: 2, examined: 8, interrupted: false });
    assert_eq!(ver(&s, 0, 2, 4), None);
    assert_eq!(ver(&s, 1, 2, 4), None);
    assert!(ver(&s, 0, 1, 4).is_some() && ver(&s, 0, 2, 6).is_some());
    assert_eq!(at(&s), images);
    assert!(s.pairs_with_sweeps().unwrap().is_empty());
    assert_indexed(&s, 1);
    assert!(reclaim_listed(&s).contains(&<Hash>::try_from(&content_hash(12)[..]).unwrap()));
    // Finishing again does nothing.
    assert_eq!(s.finish_sweeps(1).unwrap(), PruneOutcome::default());
    // A sweep whose last batch was written but whose journal key survived (a redo): nothing
    // more is deleted, and the key goes.
    let after = entries(&s, 1);
    s.db().put_cf(s.cf(CF_META), sweep_key(1, 3, 6), []).unwrap();
    assert_eq!(s.finish_sweeps(1).unwrap(), PruneOutcome { versions: 0, examined: 6, ..PruneOutcome::default() });
    assert_eq!(entries(&s, 1), after);
    assert!(s.pairs_with_sweeps().unwrap().is_empty());
    drop(s);
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(entries(&s, 1), after);
    assert_eq!(at(&s), images);
}

fn content_hash(tag: u8) -> Hash {
    *blake3::hash(&content(tag)).as_bytes()
}

#[test]
fn sweeps_never_touch_open_epochs() {
    let (_dir, s) = open_temp();
    four_points(&s);
    let open = ver(&s, 0, 4, 9);
    assert!(open.is_some());
    // Point 4 gone, and a journalled sweep over every epoch (as a leftover could be).
    let mut batch = WriteBatch::default();
    batch.delete_cf(s.cf(CF_POINTS), point_key(1, 4));
    batch.put_cf(s.cf(CF_META), sweep_key(1, 0, u64::MAX), []);
    s.write_synced(batch).unwrap();
    let images = [2, 6, 8].map(|p| image(&s, 1, p));
    let out = s.finish_sweeps(1).unwrap();
    // Only chunk 2 at 4 (both disks) goes; every entry is looked at, the open one included.
    assert_eq!(out, PruneOutcome { points: 0, versions: 2, examined: 25, interrupted: false });
    assert_eq!(ver(&s, 0, 4, 9), open, "open epoch entry kept");
    assert_eq!([2, 6, 8].map(|p| image(&s, 1, p)), images);
    // The open epoch commits as it was written.
    commit(&s, 1, 9);
    assert_eq!(s.version_at(1, 0, 4, 9).unwrap(), Some((9, open.unwrap())));
    assert_indexed(&s, 1);
}

#[test]
fn sweeps_resume_only_their_own_pair() {
    let (_dir, s) = open_temp();
    four_points(&s);
    for e in [1, 2] {
        s.write_versions(2, e, &[(0, 0, chunk(&s, 50 + u8::try_from(e).unwrap()))]).unwrap();
        commit(&s, 2, e);
    }
    s.write_versions(2, 3, &[(0, 0, chunk(&s, 53))]).unwrap();
    commit(&s, 2, 3);
    let mut batch = WriteBatch::default();
    batch.delete_cf(s.cf(CF_POINTS), point_key(2, 2));
    batch.put_cf(s.cf(CF_META), sweep_key(2, 2, 2), []);
    s.write_synced(batch).unwrap();
    assert_eq!(s.pairs_with_sweeps().unwrap(), [2]);
    // Pruning pair 1 leaves pair 2's sweep alone; pair 2's own prune call finishes it.
    assert_eq!(s.remove_points(1, &[4]).unwrap().points, 1);
    assert_eq!(s.pairs_with_sweeps().unwrap(), [2]);
    let out = s.remove_points(2, &[]).unwrap();
    assert_eq!(out, PruneOutcome { points: 0, versions: 1, examined: 1, interrupted: false });
    assert!(s.pairs_with_sweeps().unwrap().is_empty());
}

#[test]
fn a_history_rewrite_during_a_sweep_stops_it_and_keeps_its_journal() {
    // 8 batches of doomed entries: point 2 rewrites chunks 0..N, point 3 rewrites them again,
    // so removing point 2 dooms all of point 2's entries.
    const N: u64 = 8 * SWEEP_BATCH as u64;
    let (_dir, s) = open_temp();
    let base = chunk(&s, 1);
    for e in 1..=4u64 {
        let v = if e == 1 { base } else { ChunkVersion::Zero };
        let n = if e == 4 { 1 } else { N };
        let items: Vec<_> = (0..n).map(|c| (0, c, v)).collect();
        s.write_versions(1, e, &items).unwrap();
        commit(&s, 1, e);
    }
    s.flush().unwrap();
    let sweeper = {
        let s = s.clone();
        std::thread::spawn(move || s.remove_points(1, &[2]))
    };
    // Wait for the sweep's first batch of deletions (epoch 2, chunks in order from 0), then
    // start a history rewrite: the sweep cannot write its next batch before it ends.
    let t0 = std::time::Instant::now();
    while ver(&s, 0, 0, 2).is_some() {
        assert!(t0.elapsed().as_secs() < 60, "the sweep never wrote a batch");
        std::thread::yield_now();
    }
    {
        let _records = s.lock_records();
        s.bump_rewrite();
    }
    let out = sweeper.join().unwrap().unwrap();
    assert!(out.interrupted, "{out:?}");
    assert_eq!(out.points, 1);
    assert!(out.versions >= SWEEP_BATCH as u64 && out.versions < N, "{out:?}");
    assert_eq!(s.pairs_with_sweeps().unwrap(), [1], "journal key kept");
    assert!(ver(&s, 0, N - 1, 2).is_some(), "the rest of the sweep was not written");
    // The rewrite itself: back to point 3 (point 4 and its entry go).
    s.rollback_pair(1, &id(1), &record("p1", 3), 3).unwrap();
    assert_eq!(epochs(&s, 1), [1, 3]);
    // The next prune call resumes the sweep against the points as they are now.
    let rest = s.finish_sweeps(1).unwrap();
    assert!(!rest.interrupted);
    assert_eq!(out.versions + rest.versions, N);
    assert!(s.pairs_with_sweeps().unwrap().is_empty());
    assert!(entries(&s, 1).keys().all(|&(_, _, e)| e != 2));
    assert_eq!(s.versions_at(1, 0, 3, 0, N).unwrap(), vec![Some(ChunkVersion::Zero); usize::try_from(N).unwrap()]);
    assert_eq!(s.versions_at(1, 0, 1, 0, 2).unwrap(), vec![Some(base); 2]);
    assert_indexed(&s, 1);
}

#[test]
fn a_sweep_batch_is_not_written_after_a_history_rewrite() {
    let (_dir, s) = open_temp();
    four_points(&s);
    let generation = s.rewrite_gen();
    s.rollback_pair(1, &id(1), &record("p1", 8), 8).unwrap();
    let mut batch = WriteBatch::default();
    let vk = VersionKey { pair_no: 1, disk: 0, chunk: 2, epoch: 4 };
    s.delete_version(&mut batch, &vk, ver(&s, 0, 2, 4));
    let journal = sweep_key(1, 3, 4);
    s.db().put_cf(s.cf(CF_META), journal, []).unwrap();
    assert!(!s.write_sweep_batch(batch, generation, Some(&journal)).unwrap());
    assert!(ver(&s, 0, 2, 4).is_some(), "not deleted");
    assert_eq!(s.pairs_with_sweeps().unwrap(), [1], "journal kept");
}
