//! Tests of the version index against an in-memory model, abandonment and reopening.

use super::*;
use crate::test_support::{Record, open_seeded, point, record};
use crate::{PairId, Store};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn data(b: u8) -> ChunkVersion {
    ChunkVersion::Data([b; 32])
}

fn commit(s: &Store, pair_no: u32, epoch: u64) {
    let name = format!("p{pair_no}");
    let id = PairId::new(&name).unwrap();
    s.commit_point(pair_no, &point(&name, epoch), &id, &record(&name, epoch)).unwrap();
}

#[test]
fn reads_see_newest_version_at_or_before_the_epoch() {
    let (_dir, s) = open_seeded();
    s.write_versions(1, 2, &[(0, 5, data(1)), (0, 6, ChunkVersion::Zero)]).unwrap();
    commit(&s, 1, 2);
    s.write_versions(1, 4, &[(0, 5, data(2))]).unwrap();
    commit(&s, 1, 4);
    assert_eq!(s.version_at(1, 0, 5, 1).unwrap(), None);
    assert_eq!(s.version_at(1, 0, 5, 2).unwrap(), Some((2, data(1))));
    assert_eq!(s.version_at(1, 0, 5, 3).unwrap(), Some((2, data(1))));
    assert_eq!(s.version_at(1, 0, 5, 4).unwrap(), Some((4, data(2))));
    assert_eq!(s.version_at(1, 0, 6, 4).unwrap(), Some((2, ChunkVersion::Zero)));
    assert_eq!(s.version_at(1, 1, 5, 4).unwrap(), None, "other disk");
    assert_eq!(s.version_at(2, 0, 5, 4).unwrap(), None, "other pair");
    assert_eq!(s.versions_at(1, 0, 3, 4, 4).unwrap(), vec![None, Some(data(1)), Some(ChunkVersion::Zero), None]);
    assert_eq!(s.versions_at(1, 0, 4, 5, 1).unwrap(), vec![Some(data(2))]);
    assert!(s.versions_at(1, 0, 4, 5, 0).unwrap().is_empty());
}

#[test]
fn changed_between_lists_chunks_written_in_the_window() {
    let (_dir, s) = open_seeded();
    s.write_versions(1, 2, &[(0, 1, data(1)), (0, 5, data(1)), (0, 9, ChunkVersion::Zero), (1, 3, data(1))]).unwrap();
    commit(&s, 1, 2);
    s.write_versions(1, 4, &[(0, 5, data(2)), (0, 7, data(2))]).unwrap();
    commit(&s, 1, 4);
    s.write_versions(1, 6, &[(0, 5, data(3)), (0, 9, data(3))]).unwrap();
    commit(&s, 1, 6);
    s.write_versions(2, 4, &[(0, 2, data(1))]).unwrap();
    assert_eq!(s.changed_between(1, 0, 0, 6).unwrap(), vec![1, 5, 7, 9]);
    assert_eq!(s.changed_between(1, 0, 2, 6).unwrap(), vec![5, 7, 9]);
    assert_eq!(s.changed_between(1, 0, 2, 4).unwrap(), vec![5, 7]);
    assert_eq!(s.changed_between(1, 0, 4, 6).unwrap(), vec![5, 9]);
    assert_eq!(s.changed_between(1, 0, 6, 9).unwrap(), Vec::<u64>::new());
    assert_eq!(s.changed_between(1, 1, 0, 6).unwrap(), vec![3], "other disk");
}

#[test]
fn versions_at_refuses_impossible_ranges() {
    let (_dir, s) = open_seeded();
    let e = s.versions_at(1, 0, 1, u64::MAX, 2).unwrap_err();
    assert!(matches!(e, StoreError::Range { .. }), "{e}");
    assert!(s.versions_at(1, 0, 1, 0, MAX_RANGE_CHUNKS + 1).is_err());
    assert_eq!(s.versions_at(1, 0, 1, u64::MAX - 1, 1).unwrap(), vec![None]);
}

#[test]
fn versions_at_skips_long_histories_and_gaps() {
    let (_dir, s) = open_seeded();
    // Chunk 0 has 40 versions (more than NEXT_BEFORE_SEEK), chunk 1000 one.
    for e in 1..=40u64 {
        s.write_versions(1, e, &[(0, 0, data(u8::try_from(e).unwrap()))]).unwrap();
        commit(&s, 1, e);
    }
    s.write_versions(1, 41, &[(0, 1000, data(99))]).unwrap();
    commit(&s, 1, 41);
    s.flush().unwrap();
    let r = s.versions_at(1, 0, 20, 0, 1001).unwrap();
    assert_eq!(r[0], Some(data(20)));
    assert!(r[1..].iter().all(Option::is_none));
    let r = s.versions_at(1, 0, 41, 0, 1001).unwrap();
    assert_eq!((r[0], r[1000]), (Some(data(40)), Some(data(99))));
    assert_eq!(r.iter().flatten().count(), 2);
}

#[test]
fn abandoned_epoch_is_discarded_and_stays_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::test_support::open_at(dir.path());
    s.write_versions(1, 5, &[(0, 0, data(1)), (0, 1, data(2))]).unwrap();
    s.write_versions(2, 5, &[(0, 0, data(7))]).unwrap();
    commit(&s, 1, 5);
    commit(&s, 2, 5);
    // Epoch 6 of pair 1 never commits; pair 2's open epoch must survive the discard.
    s.write_versions(1, 6, &[(0, 0, data(3)), (0, 2, ChunkVersion::Zero)]).unwrap();
    s.write_versions(1, 7, &[(0, 3, data(4))]).unwrap();
    s.write_versions(2, 6, &[(0, 0, data(8))]).unwrap();
    assert_eq!(s.version_at(1, 0, 0, u64::MAX).unwrap(), Some((6, data(3))), "visible only above 5");
    assert_eq!(s.discard_pending(1).unwrap(), 3);
    assert_eq!(s.discard_pending(1).unwrap(), 0);
    drop(s);
    let s = crate::test_support::open_at(dir.path());
    let at5 = vec![Some(data(1)), Some(data(2)), None, None];
    assert_eq!(s.versions_at(1, 0, 5, 0, 4).unwrap(), at5);
    assert_eq!(s.versions_at(1, 0, u64::MAX, 0, 4).unwrap(), at5);
    assert_eq!(s.version_at(1, 0, 0, u64::MAX).unwrap(), Some((5, data(1))));
    assert_eq!(s.version_at(2, 0, 0, u64::MAX).unwrap(), Some((6, data(8))), "other pair untouched");
    // A commit drops the pending list of its epoch only, so a later discard still finds 6+.
    s.write_versions(2, 7, &[(0, 1, data(9))]).unwrap();
    commit(&s, 2, 6);
    assert_eq!(s.discard_pending(2).unwrap(), 1);
    assert_eq!(s.version_at(2, 0, 1, u64::MAX).unwrap(), None);
    assert_eq!(s.version_at(2, 0, 0, u64::MAX).unwrap(), Some((6, data(8))));
}

#[test]
fn everything_persists_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let chunk = vec![42u8; 10_000];
    let h = *blake3::hash(&chunk).as_bytes();
    {
        let s = crate::test_support::open_at(dir.path());
        assert_eq!(s.allocate_pair_no().unwrap(), 1);
        s.put_chunk(&h, crate::StoredChunk { compressed: false, raw_len: 10_000, payload: &chunk }).unwrap();
        s.write_versions(1, 3, &[(0, 0, ChunkVersion::Data(h))]).unwrap();
        commit(&s, 1, 3); // synced: makes the unsynced chunk and versions durable too
    }
    let s = crate::test_support::open_at(dir.path());
    assert_eq!(s.read_chunk(&h).unwrap(), chunk);
    assert_eq!(s.version_at(1, 0, 0, 3).unwrap(), Some((3, ChunkVersion::Data(h))));
    assert_eq!(s.list_points(1).unwrap(), vec![point("p1", 3)]);
    assert_eq!(s.load_pairs::<Record>().unwrap(), vec![record("p1", 3)]);
    assert_eq!(s.discard_pending(1).unwrap(), 0, "commit dropped the pending list");
    assert_eq!(s.allocate_pair_no().unwrap(), 2);
}

/// One step of a random history: an epoch of one pair, committed or abandoned.
#[derive(Debug, Clone)]
struct Step {
    pair_no: u32,
    epoch_gap: u64,
    writes: Vec<(u32, u64, Option<u8>)>,
    abandon: bool,
    flush: bool,
}

fn step() -> impl Strategy<Value = Step> {
    (
        1u32..=3,
        1u64..4,
        prop::collection::vec((0u32..2, 0u64..12, prop::option::of(any::<u8>())), 0..10),
        prop::bool::weighted(0.25),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(pair_no, epoch_gap, writes, abandon, flush)| Step {
            pair_no,
            epoch_gap,
            writes,
            abandon,
            flush,
        })
}

type Model = BTreeMap<(u32, u32, u64), BTreeMap<u64, ChunkVersion>>;

fn model_at(m: &Model, pair: u32, disk: u32, chunk: u64, epoch: u64) -> Option<(u64, ChunkVersion)> {
    m.get(&(pair, disk, chunk))?.range(..=epoch).next_back().map(|(&e, &v)| (e, v))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn version_index_matches_model(steps in prop::collection::vec(step(), 1..14)) {
        let (_dir, s) = open_seeded();
        let mut model = Model::new();
        let mut last_epoch: BTreeMap<u32, u64> = BTreeMap::new();
        let mut committed: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for st in &steps {
            let epoch = last_epoch.get(&st.pair_no).copied().unwrap_or(0) + st.epoch_gap;
            last_epoch.insert(st.pair_no, epoch);
            let items: Vec<_> = st.writes.iter()
                .map(|&(d, c, v)| (d, c, v.map_or(ChunkVersion::Zero, data)))
                .collect();
            s.write_versions(st.pair_no, epoch, &items).unwrap();
            if st.flush {
                s.flush().unwrap();
            }
            if st.abandon {
                s.discard_pending(st.pair_no).unwrap();
                continue;
            }
            commit(&s, st.pair_no, epoch);
            for &(d, c, v) in &items {
                model.entry((st.pair_no, d, c)).or_default().insert(epoch, v);
            }
            committed.entry(st.pair_no).or_default().push(epoch);
        }
        for pair in 1..=3u32 {
            let epochs = committed.get(&pair).cloned().unwrap_or_default();
            let listed: Vec<u64> = s.list_points(pair).unwrap().iter().map(|p| p.epoch).collect();
            prop_assert_eq!(&listed, &epochs);
            for &e in epochs.iter().chain([0, u64::MAX].iter()) {
                for disk in 0..3u32 {
                    let expect: Vec<_> = (0..14).map(|c| model_at(&model, pair, disk, c, e).map(|x| x.1)).collect();
                    prop_assert_eq!(s.versions_at(pair, disk, e, 0, 14).unwrap(), expect.clone());
                    prop_assert_eq!(s.versions_at(pair, disk, e, 5, 4).unwrap(), expect[5..9].to_vec());
                    for c in 0..14 {
                        prop_assert_eq!(s.version_at(pair, disk, c, e).unwrap(), model_at(&model, pair, disk, c, e));
                    }
                }
            }
        }
    }
}
