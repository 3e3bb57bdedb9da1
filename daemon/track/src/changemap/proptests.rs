//! Property test: random operations against a plain in-memory model of the change map. After
//! every operation, and after every close and reopen, epochs, dirty set, hashes, acknowledged,
//! next and last cut epochs and the history start must agree with the model; failing
//! operations change nothing.

use super::*;
use drpair_types::ChunkSize;
use proptest::prelude::*;

const CHUNK: u64 = 4096;

#[derive(Debug, Clone)]
enum Op {
    /// Epochs are `next_epoch - back`, like a tracker stamping the open or just-cut epoch.
    Mark {
        chunk: u64,
        back: u64,
    },
    MarkRange {
        first: u64,
        count: u64,
        back: u64,
    },
    MarkBytes {
        offset: u64,
        len: u64,
        back: u64,
    },
    BeginCut,
    /// Acknowledges `last_cut + 1 - back`: `back == 0` is an epoch not cut yet.
    SetAcked {
        back: u64,
    },
    Observe {
        chunk: u64,
        hash: u8,
        back: u64,
    },
    SetHash {
        chunk: u64,
        hash: Option<u8>,
    },
    Adopt {
        acked: u64,
    },
    Reset {
        stamp: u64,
    },
    LimitHistory {
        epoch: u64,
    },
    /// Rewinds to `last_cut + 1 - back`: `back == 0` is an epoch not cut yet.
    Rewind {
        back: u64,
    },
    Reopen {
        clean: bool,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let chunk = 0u64..24;
    let back = 0u64..3;
    prop_oneof![
        4 => (chunk.clone(), back.clone()).prop_map(|(chunk, back)| Op::Mark { chunk, back }),
        2 => (chunk.clone(), 0u64..6, back.clone())
            .prop_map(|(first, count, back)| Op::MarkRange { first, count, back }),
        3 => (0u64..24 * CHUNK, 0u64..3 * CHUNK, back.clone())
            .prop_map(|(offset, len, back)| Op::MarkBytes { offset, len, back }),
        3 => Just(Op::BeginCut),
        3 => (0u64..4).prop_map(|back| Op::SetAcked { back }),
        3 => (chunk.clone(), 1u8..4, back).prop_map(|(chunk, hash, back)| Op::Observe { chunk, hash, back }),
        1 => (chunk, proptest::option::of(1u8..4)).prop_map(|(chunk, hash)| Op::SetHash { chunk, hash }),
        1 => (0u64..30).prop_map(|acked| Op::Adopt { acked }),
        1 => (0u64..30).prop_map(|stamp| Op::Reset { stamp }),
        1 => (0u64..30).prop_map(|epoch| Op::LimitHistory { epoch }),
        2 => (0u64..6).prop_map(|back| Op::Rewind { back }),
        2 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

#[derive(Debug, Clone, PartialEq)]
struct Model {
    epochs: Vec<Epoch>,
    hashes: Vec<Option<Hash>>,
    acked: Epoch,
    next: Epoch,
    last_cut: Epoch,
    lineage: Lineage,
    history_from: Epoch,
}

impl Model {
    fn new(count: u64, lineage: Lineage, stamp_all: Epoch) -> Self {
        let n = usize::try_from(count).unwrap();
        Self {
            epochs: vec![stamp_all; n],
            hashes: vec![None; n],
            acked: 0,
            next: stamp_all.max(1),
            last_cut: 0,
            lineage,
            history_from: 0,
        }
    }

    fn count(&self) -> u64 {
        self.epochs.len() as u64
    }

    fn stamp(&mut self, chunk: u64, epoch: Epoch) {
        let e = &mut self.epochs[usize::try_from(chunk).unwrap()];
        *e = (*e).max(epoch);
    }

    /// Applies a mark of chunks `first..=last`; false (and no change) when out of range.
    fn mark(&mut self, first: u64, last: u64, epoch: Epoch) -> bool {
        if last >= self.count() {
            return false;
        }
        (first..=last).for_each(|c| self.stamp(c, epoch));
        true
    }

    fn dirty(&self) -> Vec<u64> {
        (0..self.count()).filter(|c| self.epochs[usize::try_from(*c).unwrap()] > self.acked).collect()
    }

    fn runs(&self, max: u64) -> Vec<(u64, u64)> {
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for c in self.dirty() {
            match runs.last_mut() {
                Some((f, n)) if *f + *n == c && *n < max => *n += 1,
                _ => runs.push((c, 1)),
            }
        }
        runs
    }
}

fn check(map: &ChangeMap, model: &Model) -> Result<(), TestCaseError> {
    let n = map.chunk_count();
    prop_assert_eq!(n, model.count());
    let epochs: Vec<_> = (0..n).map(|c| map.epoch_of(c)).collect();
    prop_assert_eq!(&epochs, &model.epochs);
    let hashes: Vec<_> = (0..n).map(|c| map.hash(c)).collect();
    prop_assert_eq!(&hashes, &model.hashes);
    prop_assert_eq!(
        (map.acked(), map.next_epoch(), map.last_cut(), map.lineage(), map.history_from()),
        (model.acked, model.next, model.last_cut, model.lineage, model.history_from)
    );
    prop_assert!(model.history_from <= model.last_cut);
    let dirty = model.dirty();
    prop_assert_eq!(map.changed_since(map.acked()).collect::<Vec<_>>(), dirty.clone());
    prop_assert_eq!((0..n).filter(|c| map.is_dirty(*c)).collect::<Vec<_>>(), dirty.clone());
    prop_assert_eq!(map.dirty_count(), dirty.len() as u64);
    prop_assert_eq!(map.dirty_runs(3), model.runs(3));
    Ok(())
}

fn run(size: u64, stamp_all: Epoch, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk-0.chmap");
    let geometry = DiskGeometry::new(size, ChunkSize::new(CHUNK).unwrap()).unwrap();
    let lineage = Lineage::new_v4();
    let mut map = Some(ChangeMap::create(&path, geometry, lineage, stamp_all).unwrap());
    let mut model = Model::new(geometry.chunk_count(), lineage, stamp_all);
    check(map.as_ref().unwrap(), &model)?;
    for op in ops {
        let m = map.as_mut().unwrap();
        let before = model.clone();
        let epoch_back = |back: u64| model.next.saturating_sub(back);
        let ok = match op {
            Op::Mark { chunk, back } => {
                let e = epoch_back(back);
                let expect = model.mark(chunk, chunk, e);
                m.mark(chunk, e).is_ok() == expect
            }
            Op::MarkRange { first, count, back } => {
                let e = epoch_back(back);
                let expect = count == 0 || model.mark(first, first + count - 1, e);
                m.mark_range(first, count, e).is_ok() == expect
            }
            Op::MarkBytes { offset, len, back } => {
                let e = epoch_back(back);
                let expect = len == 0 || model.mark(offset / CHUNK, (offset + len - 1) / CHUNK, e);
                m.mark_bytes(offset, len, e).is_ok() == expect
            }
            Op::BeginCut => {
                let e = m.begin_cut().unwrap();
                let expect = model.next;
                model.last_cut = model.next;
                model.next += 1;
                e == expect
            }
            Op::SetAcked { back } => {
                let e = (model.last_cut + 1).saturating_sub(back);
                let expect = e <= model.last_cut;
                if expect {
                    model.acked = model.acked.max(e);
                }
                m.set_acked(e).is_ok() == expect
            }
            Op::Observe { chunk, hash, back } => {
                let e = epoch_back(back);
                let h = [hash; 32];
                let expect = if chunk < model.count() {
                    let i = usize::try_from(chunk).unwrap();
                    let changed = model.hashes[i] != Some(h);
                    if changed {
                        model.stamp(chunk, e);
                        model.hashes[i] = Some(h);
                    }
                    Ok(changed)
                } else {
                    Err(())
                };
                m.observe(chunk, h, e).map_err(|_| ()) == expect
            }
            Op::SetHash { chunk, hash } => {
                let h = hash.map(|b| [b; 32]);
                let expect = chunk < model.count();
                if expect {
                    model.hashes[usize::try_from(chunk).unwrap()] = h;
                }
                m.set_hash(chunk, h).is_ok() == expect
            }
            Op::Adopt { acked } => {
                let l = Lineage::new_v4();
                model.lineage = l;
                model.acked = acked;
                model.next = model.next.max(acked + 1);
                model.last_cut = model.last_cut.max(acked);
                model.history_from = model.history_from.max(acked);
                m.adopt(l, acked).is_ok()
            }
            Op::Reset { stamp } => {
                let l = Lineage::new_v4();
                let next = model.next.max(stamp);
                model = Model { next, ..Model::new(model.count(), l, stamp) };
                m.reset(l, stamp).is_ok()
            }
            Op::LimitHistory { epoch } => {
                model.history_from = model.history_from.max(epoch.min(model.last_cut));
                m.limit_history(epoch).is_ok()
            }
            Op::Rewind { back } => {
                let e = (model.last_cut + 1).saturating_sub(back);
                match m.rewind(e) {
                    Ok(()) if e >= model.history_from && e <= model.last_cut => {
                        model.acked = e;
                        true
                    }
                    Err(ChangeMapError::HistoryTooShort { epoch, history_from, .. }) => {
                        epoch == e && history_from == model.history_from && e < model.history_from
                    }
                    Err(ChangeMapError::NotCut { epoch, last_cut, .. }) => {
                        epoch == e && last_cut == model.last_cut && e > model.last_cut
                    }
                    _ => false,
                }
            }
            Op::Reopen { clean } => {
                let old = map.take().unwrap();
                if clean {
                    old.close_clean().unwrap();
                } else {
                    drop(old);
                }
                let opened = ChangeMap::open(&path, geometry).unwrap();
                prop_assert_eq!(opened.was_clean, clean);
                map = Some(opened.map);
                true
            }
        };
        prop_assert!(ok, "result of {:?} disagrees with the model (before: {:?})", op, before);
        check(map.as_ref().unwrap(), &model)?;
    }
    // Whatever happened, a final kill and reopen loses nothing.
    drop(map);
    let opened = ChangeMap::open(&path, geometry).unwrap();
    prop_assert!(!opened.was_clean);
    check(&opened.map, &model)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn change_map_matches_model(
        size in 1u64..=20 * CHUNK,
        stamp_all in 0u64..3,
        ops in proptest::collection::vec(op(), 1..60),
    ) {
        run(size, stamp_all, ops)?;
    }
}
