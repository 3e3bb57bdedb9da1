//! Tests of restart, rollback and retire: exactly the right points and versions go, other
//! pairs and the surviving points read as before, and the result survives a reopen.

use super::*;
use crate::test_support::{Record, open_seeded, point, record};
use crate::{ChunkVersion, PairId, Store};
use proptest::prelude::*;
use std::collections::BTreeMap;

const CHUNKS: u64 = 6;

fn data(b: u8) -> ChunkVersion {
    ChunkVersion::Data([b; 32])
}

fn name(pair_no: u32) -> String {
    format!("p{pair_no}")
}

fn id(pair_no: u32) -> PairId {
    PairId::new(name(pair_no)).unwrap()
}

fn commit(s: &Store, pair_no: u32, epoch: u64) -> Result<(), StoreError> {
    s.commit_point(pair_no, &point(&name(pair_no), epoch), &id(pair_no), &record(&name(pair_no), epoch))
}

/// Writes and commits `epoch`: chunk `c` of disks 0 and 1 gets `data(tag + c)` for each `c`
/// in `chunks`.
fn epoch(s: &Store, pair_no: u32, epoch: u64, chunks: &[u64], tag: u8) {
    let items: Vec<_> =
        chunks.iter().flat_map(|&c| [0, 1].map(|d| (d, c, data(tag + u8::try_from(c).unwrap())))).collect();
    s.write_versions(pair_no, epoch, &items).unwrap();
    commit(s, pair_no, epoch).unwrap();
}

/// What every chunk of disks 0 and 1 reads as at `at`.
fn image(s: &Store, pair_no: u32, at: u64) -> Vec<Vec<Option<ChunkVersion>>> {
    (0..2).map(|d| s.versions_at(pair_no, d, at, 0, CHUNKS).unwrap()).collect()
}

fn epochs(s: &Store, pair_no: u32) -> Vec<u64> {
    s.list_points(pair_no).unwrap().iter().map(|p| p.epoch).collect()
}

/// Pairs 1 and 2 with points at 2, 4, 6, 8 and an open epoch 9.
fn four_points(s: &Store) {
    for pair_no in [1, 2] {
        epoch(s, pair_no, 2, &[0, 1, 2, 3, 4, 5], 10);
        epoch(s, pair_no, 4, &[1, 2], 20);
        epoch(s, pair_no, 6, &[2, 3], 30);
        epoch(s, pair_no, 8, &[0, 5], 40);
        s.write_versions(pair_no, 9, &[(0, 4, data(50))]).unwrap();
    }
}

#[test]
fn rollback_removes_exactly_the_later_points_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::test_support::open_at(dir.path());
    four_points(&s);
    s.flush().unwrap();
    let at4 = image(&s, 1, 4);
    let pair2: Vec<_> = [2, 4, 6, 8, 9].map(|e| image(&s, 2, e)).into();
    let removed = s.rollback_pair(1, &id(1), &record("p1", 4), 4).unwrap();
    // Points 6 and 8; versions: 2 chunks × 2 disks at 6 and at 8, and the open epoch's one.
    assert_eq!(removed, Removed { points: 2, versions: 9 });
    let check = |s: &Store| {
        assert_eq!(epochs(s, 1), [2, 4]);
        assert_eq!(s.latest_point(1).unwrap(), Some(point("p1", 4)));
        for at in [4, 5, 6, 8, 9, u64::MAX] {
            assert_eq!(image(s, 1, at), at4, "read at {at}");
        }
        assert_eq!(s.discard_pending(1).unwrap(), 0, "no pending list left");
        assert_eq!(s.load_pairs::<Record>().unwrap(), [record("p1", 4), record("p2", 8)]);
        // The other pair is untouched, its open epoch included.
        assert_eq!(epochs(s, 2), [2, 4, 6, 8]);
        assert_eq!([2, 4, 6, 8, 9].map(|e| image(s, 2, e)).to_vec(), pair2);
    };
    check(&s);
    drop(s);
    check(&crate::test_support::open_at(dir.path()));
}

#[test]
fn after_a_rollback_later_epochs_reopen_and_older_stay_closed() {
    let (_dir, s) = open_seeded();
    four_points(&s);
    s.rollback_pair(1, &id(1), &record("p1", 4), 4).unwrap();
    let at4 = image(&s, 1, 4);
    // Epochs up to the new head stay closed.
    for e in [3, 4] {
        let err = commit(&s, 1, e).unwrap_err();
        assert!(matches!(err, StoreError::EpochNotOpen { pair_no: 1, committed: 4, .. }), "{err}");
    }
    assert!(matches!(s.write_versions(1, 4, &[(0, 0, data(1))]), Err(StoreError::EpochNotOpen { .. })));
    // A dropped epoch number is open again, and none of its old versions shows through.
    epoch(&s, 1, 6, &[0], 60);
    let mut expect = at4.clone();
    for disk in &mut expect {
        disk[0] = Some(data(60));
    }
    assert_eq!(image(&s, 1, 6), expect);
    assert_eq!(image(&s, 1, u64::MAX), expect);
    assert_eq!(image(&s, 1, 4), at4);
    epoch(&s, 1, 7, &[5], 70);
    assert_eq!(s.version_at(1, 0, 5, 8).unwrap(), Some((7, data(75))), "not the dropped epoch 8's");
    assert_eq!(s.version_at(1, 1, 3, u64::MAX).unwrap(), Some((2, data(13))), "not the dropped epoch 6's");
    assert_eq!(epochs(&s, 1), [2, 4, 6, 7]);
}

#[test]
fn rollback_to_the_head_or_to_no_point() {
    let (_dir, s) = open_seeded();
    four_points(&s);
    let err = s.rollback_pair(1, &id(1), &record("p1", 5), 5).unwrap_err();
    assert!(matches!(err, StoreError::PointNotFound { pair_no: 1, id: 5 }), "{err}");
    assert!(s.rollback_pair(3, &id(3), &record("p3", 1), 1).is_err(), "pair without points");
    assert_eq!(epochs(&s, 1), [2, 4, 6, 8]);
    assert_eq!(s.version_at(1, 0, 4, u64::MAX).unwrap(), Some((9, data(50))), "open epoch kept");
    assert_eq!(s.load_pairs::<Record>().unwrap(), [record("p1", 8), record("p2", 8)], "record kept");
    // To the head: only the open epoch goes.
    let at8 = image(&s, 1, 8);
    assert_eq!(s.rollback_pair(1, &id(1), &record("p1", 8), 8).unwrap(), Removed { points: 0, versions: 1 });
    assert_eq!(image(&s, 1, u64::MAX), at8);
    assert_eq!(epochs(&s, 1), [2, 4, 6, 8]);
}

#[test]
fn retire_below_keeps_the_new_lineage_and_drops_the_old() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::test_support::open_at(dir.path());
    four_points(&s); // pair 1's old lineage: 2, 4, 6, 8; open 9 discarded by the restart
    assert_eq!(s.restart_pair(1, &id(1), &record("p1", 0), false).unwrap(), 0);
    // The new lineage's baseline at 10 holds every chunk, then 11 changes one.
    epoch(&s, 1, 10, &[0, 1, 2, 3, 4, 5], 100);
    epoch(&s, 1, 11, &[2], 110);
    s.write_versions(1, 12, &[(1, 3, data(120))]).unwrap();
    s.flush().unwrap();
    let new: Vec<_> = [10, 11].map(|e| image(&s, 1, e)).into();
    let pair2: Vec<_> = [2, 4, 6, 8, 9].map(|e| image(&s, 2, e)).into();
    let err = s.retire_below(1, &id(1), &record("p1", 9), 9).unwrap_err();
    assert!(matches!(err, StoreError::PointNotFound { pair_no: 1, id: 9 }), "{err}");
    assert_eq!(epochs(&s, 1), [2, 4, 6, 8, 10, 11], "a refused retire changes nothing");
    let removed = s.retire_below(1, &id(1), &record("p1", 11), 10).unwrap();
    // Points 2, 4, 6, 8; versions: 2 disks × (6 + 2 + 2 + 2) chunks.
    assert_eq!(removed, Removed { points: 4, versions: 24 });
    let check = |s: &Store| {
        assert_eq!(epochs(s, 1), [10, 11]);
        assert_eq!([10, 11].map(|e| image(s, 1, e)).to_vec(), new);
        assert_eq!(image(s, 1, 8), vec![vec![None; 6]; 2], "nothing older is left");
        assert_eq!(s.load_pairs::<Record>().unwrap()[0], record("p1", 11));
        assert_eq!(epochs(s, 2), [2, 4, 6, 8]);
        assert_eq!([2, 4, 6, 8, 9].map(|e| image(s, 2, e)).to_vec(), pair2);
    };
    check(&s);
    drop(s);
    let s = crate::test_support::open_at(dir.path());
    check(&s);
    assert_eq!(s.version_at(1, 1, 3, u64::MAX).unwrap(), Some((12, data(120))), "open epoch untouched");
    assert_eq!(s.retire_below(1, &id(1), &record("p1", 11), 10).unwrap(), Removed::default(), "again: nothing");
    assert_eq!(s.discard_pending(1).unwrap(), 1);
}

#[test]
fn restart_with_wipe_deletes_the_whole_history() {
    let dir = tempfile::tempdir().unwrap();
    let s = crate::test_support::open_at(dir.path());
    four_points(&s);
    let pair2: Vec<_> = [2, 4, 6, 8, 9].map(|e| image(&s, 2, e)).into();
    assert_eq!(s.restart_pair(1, &id(1), &record("p1", 0), true).unwrap(), 4);
    drop(s);
    let s = crate::test_support::open_at(dir.path());
    assert!(s.list_points(1).unwrap().is_empty());
    assert_eq!(image(&s, 1, u64::MAX), vec![vec![None; 6]; 2]);
    assert_eq!(s.discard_pending(1).unwrap(), 0);
    assert_eq!(s.load_pairs::<Record>().unwrap(), [record("p1", 0), record("p2", 8)]);
    assert_eq!([2, 4, 6, 8, 9].map(|e| image(&s, 2, e)).to_vec(), pair2);
    // The new lineage starts wherever the agent's epochs are.
    epoch(&s, 1, 12, &[3], 120);
    assert_eq!(epochs(&s, 1), [12]);
    assert_eq!(s.version_at(1, 0, 3, 12).unwrap(), Some((12, data(123))));
    assert_eq!(s.version_at(1, 0, 0, 12).unwrap(), None);
    // A pair with nothing stored restarts too.
    assert_eq!(s.restart_pair(3, &id(3), &record("p3", 0), true).unwrap(), 0);
}

#[test]
fn restart_without_wipe_keeps_points_and_drops_the_open_epoch() {
    let (_dir, s) = open_seeded();
    four_points(&s);
    s.write_versions(1, 9, &[(1, 1, ChunkVersion::Zero)]).unwrap();
    let at8 = image(&s, 1, 8);
    assert_eq!(s.restart_pair(1, &id(1), &record("p1", 0), false).unwrap(), 0);
    assert_eq!(epochs(&s, 1), [2, 4, 6, 8]);
    assert_eq!(image(&s, 1, u64::MAX), at8, "the open epoch's versions went with its list");
    assert_eq!(s.discard_pending(1).unwrap(), 0);
    assert_eq!(s.load_pairs::<Record>().unwrap()[0], record("p1", 0));
    assert_eq!(s.version_at(2, 0, 4, u64::MAX).unwrap(), Some((9, data(50))), "other pair's open epoch");
    // The new baseline can reuse the abandoned epoch number without seeing its versions.
    epoch(&s, 1, 9, &[0], 90);
    assert_eq!(s.version_at(1, 0, 4, 9).unwrap(), Some((2, data(14))));
    assert_eq!(s.version_at(1, 1, 1, 9).unwrap(), Some((4, data(21))));
}

/// One step of a random history of pair 1 (pair 2 gets the same commits as a witness).
#[derive(Debug, Clone)]
enum Op {
    Commit {
        gap: u64,
        writes: Vec<(u32, u64, Option<u8>)>,
    },
    Open {
        gap: u64,
        writes: Vec<(u32, u64, Option<u8>)>,
    },
    /// Back to the committed point at this index (modulo their number).
    Rollback(usize),
    /// Retire below the committed point at this index.
    Retire(usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    let writes = || prop::collection::vec((0u32..2, 0u64..CHUNKS, prop::option::of(any::<u8>())), 0..6);
    prop_oneof![
        5 => (1u64..4, writes()).prop_map(|(gap, writes)| Op::Commit { gap, writes }),
        1 => (1u64..4, writes()).prop_map(|(gap, writes)| Op::Open { gap, writes }),
        2 => any::<usize>().prop_map(Op::Rollback),
        1 => any::<usize>().prop_map(Op::Retire),
        1 => Just(Op::Flush),
    ]
}

/// (pair, disk, chunk) → epoch → version, of committed epochs.
type Model = BTreeMap<(u32, u32, u64), BTreeMap<u64, ChunkVersion>>;

fn model_image(m: &Model, pair: u32, at: u64) -> Vec<Vec<Option<ChunkVersion>>> {
    (0..2)
        .map(|d| {
            (0..CHUNKS)
                .map(|c| m.get(&(pair, d, c)).and_then(|v| v.range(..=at).next_back()).map(|(_, v)| *v))
                .collect()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn rollback_and_retire_match_a_model(ops in prop::collection::vec(op(), 1..24)) {
        let (_dir, s) = open_seeded();
        let mut model = Model::new();
        let mut points: Vec<u64> = Vec::new();
        // Entries of pair 1's open epoch (visible to reads past the newest point).
        let mut open_entries = 0u64;
        // Epochs keep growing on the agent, whatever the standby drops.
        let mut clock = 0u64;
        for op in ops {
            match op {
                Op::Commit { gap, ref writes } | Op::Open { gap, ref writes } => {
                    s.discard_pending(1).unwrap();
                    clock += gap;
                    let items: Vec<_> =
                        writes.iter().map(|&(d, c, v)| (d, c, v.map_or(ChunkVersion::Zero, data))).collect();
                    s.write_versions(1, clock, &items).unwrap();
                    if matches!(op, Op::Commit { .. }) {
                        s.write_versions(2, clock, &items).unwrap();
                        for pair in [1, 2] {
                            commit(&s, pair, clock).unwrap();
                            for &(d, c, v) in &items {
                                model.entry((pair, d, c)).or_default().insert(clock, v);
                            }
                        }
                        points.push(clock);
                        open_entries = 0;
                    } else {
                        let distinct: std::collections::BTreeSet<_> = writes.iter().map(|&(d, c, _)| (d, c)).collect();
                        open_entries = distinct.len() as u64;
                    }
                }
                Op::Rollback(i) | Op::Retire(i) if !points.is_empty() => {
                    let at = points[i % points.len()];
                    let rollback = matches!(op, Op::Rollback(_));
                    let doomed = |e: u64| if rollback { e > at } else { e < at };
                    let expect_points = points.iter().filter(|e| doomed(**e)).count() as u64;
                    let mut expect_versions = 0u64;
                    for (_, versions) in model.iter_mut().filter(|((pair, _, _), _)| *pair == 1) {
                        let before = versions.len();
                        versions.retain(|e, _| !doomed(*e));
                        expect_versions += (before - versions.len()) as u64;
                    }
                    let removed = if rollback {
                        expect_versions += std::mem::take(&mut open_entries);
                        s.rollback_pair(1, &id(1), &record("p1", at), at).unwrap()
                    } else {
                        s.retire_below(1, &id(1), &record("p1", at), at).unwrap()
                    };
                    prop_assert_eq!(removed, Removed { points: expect_points, versions: expect_versions });
                    points.retain(|e| !doomed(*e));
                }
                Op::Rollback(_) | Op::Retire(_) => {}
                Op::Flush => s.flush().unwrap(),
            }
            prop_assert_eq!(epochs(&s, 1), points.clone());
            let newest = points.last().copied().unwrap_or(0);
            for at in points.iter().copied().chain([0, newest + 1, u64::MAX]) {
                if open_entries == 0 || at <= newest {
                    prop_assert_eq!(image(&s, 1, at), model_image(&model, 1, at), "pair 1 at {}", at);
                }
                prop_assert_eq!(image(&s, 2, at), model_image(&model, 2, at), "pair 2 at {}", at);
            }
        }
    }
}
