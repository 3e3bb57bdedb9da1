//! Unit tests of the change map: persistence, damage, geometry, ranges, cuts.

use super::*;
use drpair_types::ChunkSize;
use std::io::{Seek, SeekFrom, Write};

const CHUNK: u64 = 4096;

fn geometry(size: u64) -> DiskGeometry {
    DiskGeometry::new(size, ChunkSize::new(CHUNK).unwrap()).unwrap()
}

fn lineage() -> Lineage {
    Lineage::new_v4()
}

struct Fixture {
    _dir: tempfile::TempDir,
    path: PathBuf,
    geometry: DiskGeometry,
}

fn fixture(size: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk-0.chmap");
    Fixture { _dir: dir, path, geometry: geometry(size) }
}

type Snapshot = (Vec<Epoch>, Vec<Option<Hash>>, Epoch, Epoch, Epoch, Lineage, Epoch);

fn snapshot(map: &ChangeMap) -> Snapshot {
    let n = map.chunk_count();
    (
        (0..n).map(|c| map.epoch_of(c)).collect(),
        (0..n).map(|c| map.hash(c)).collect(),
        map.acked(),
        map.next_epoch(),
        map.last_cut(),
        map.lineage(),
        map.history_from(),
    )
}

#[test]
fn create_stamps_everything_and_refuses_an_existing_file() {
    let f = fixture(10 * CHUNK);
    let l = lineage();
    let map = ChangeMap::create(&f.path, f.geometry, l, 1).unwrap();
    assert_eq!(map.chunk_count(), 10);
    assert_eq!(map.lineage(), l);
    assert_eq!((map.acked(), map.next_epoch(), map.last_cut()), (0, 1, 0));
    assert_eq!(map.dirty_count(), 10);
    assert_eq!(map.dirty_runs(4), vec![(0, 4), (4, 4), (8, 2)]);
    assert!((0..10).all(|c| map.hash(c).is_none()));
    assert_eq!(std::fs::metadata(&f.path).unwrap().len(), 4096 + 10 * 40);
    drop(map);
    let err = ChangeMap::create(&f.path, f.geometry, l, 1).unwrap_err();
    assert!(matches!(err, ChangeMapError::Io { .. }), "{err}");

    let g = fixture(10 * CHUNK);
    let map = ChangeMap::create(&g.path, g.geometry, l, 0).unwrap();
    assert_eq!((map.dirty_count(), map.next_epoch()), (0, 1));
    let h = fixture(10 * CHUNK);
    let map = ChangeMap::create(&h.path, h.geometry, l, 7).unwrap();
    assert_eq!((map.epoch_of(9), map.next_epoch()), (7, 7));
}

#[test]
fn close_clean_then_open_says_clean() {
    let f = fixture(8 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    map.mark(3, 1).unwrap();
    map.set_hash(5, Some([9; 32])).unwrap();
    let before = snapshot(&map);
    map.close_clean().unwrap();
    let opened = ChangeMap::open(&f.path, f.geometry).unwrap();
    assert!(opened.was_clean);
    assert_eq!(snapshot(&opened.map), before);
    // The new owner holds it: the flag is false again on disk.
    drop(opened);
    assert!(!ChangeMap::open(&f.path, f.geometry).unwrap().was_clean);
}

#[test]
fn kill_without_close_is_detected_and_keeps_marks() {
    let f = fixture(8 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    let e = map.begin_cut().unwrap();
    map.set_acked(e).unwrap();
    map.mark_range(2, 3, 2).unwrap();
    map.observe(7, [1; 32], 2).unwrap();
    let before = snapshot(&map);
    drop(map); // like kill -9: no close_clean
    let opened = ChangeMap::open(&f.path, f.geometry).unwrap();
    assert!(!opened.was_clean);
    assert_eq!(snapshot(&opened.map), before);
    assert_eq!(opened.map.changed_since(1).collect::<Vec<_>>(), vec![2, 3, 4, 7]);
}

#[test]
fn a_second_owner_is_refused() {
    let f = fixture(4 * CHUNK);
    let _map = ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap();
    let err = ChangeMap::open(&f.path, f.geometry).unwrap_err();
    assert!(err.to_string().contains("another process"), "{err}");
}

#[test]
fn missing_file() {
    let f = fixture(4 * CHUNK);
    let err = ChangeMap::open(&f.path, f.geometry).unwrap_err();
    assert!(matches!(err, ChangeMapError::Missing { .. }));
    assert!(err.is_tracking_gap());
}

fn damage(f: &Fixture, at: u64) {
    let mut file = OpenOptions::new().write(true).read(true).open(&f.path).unwrap();
    let mut b = [0u8; 1];
    file.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut file, &mut b).unwrap();
    file.seek(SeekFrom::Start(at)).unwrap();
    file.write_all(&[b[0] ^ 0x01]).unwrap();
}

#[test]
fn flipped_header_byte_is_damage() {
    for at in [0u64, 8, 20, 33, 60, 80, 100, 152, 160, 168] {
        let f = fixture(4 * CHUNK);
        ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap().close_clean().unwrap();
        let original = std::fs::read(&f.path).unwrap();
        damage(&f, at);
        let err = ChangeMap::open(&f.path, f.geometry).unwrap_err();
        match &err {
            ChangeMapError::Damaged { reason, .. } => {
                let expect = match at {
                    0 => "magic",
                    // 3 flipped to 2: the previous version, still read, fails its checksum.
                    8 if reason.contains("checksum") => "checksum",
                    8 => "version",
                    _ => "checksum",
                };
                assert!(reason.contains(expect), "byte {at}: {reason}");
            }
            other => panic!("byte {at}: {other}"),
        }
        assert!(err.is_tracking_gap());
        assert!(err.to_string().contains("damaged"));
        // Refusing changes nothing but the byte we flipped.
        let now = std::fs::read(&f.path).unwrap();
        let diff: Vec<_> = (0..now.len()).filter(|i| now[*i] != original[*i]).collect();
        assert_eq!(diff, vec![usize::try_from(at).unwrap()]);
    }
}

#[test]
fn truncated_or_extended_file_is_damage() {
    let f = fixture(4 * CHUNK);
    ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap().close_clean().unwrap();
    let good = std::fs::read(&f.path).unwrap();
    let full = 4096 + 4 * 40;
    assert_eq!(good.len(), full);
    for len in [0, 100, 4095, 4096, full - 1, full + 1, full + 40] {
        let mut bytes = good.clone();
        bytes.resize(len, 0);
        std::fs::write(&f.path, &bytes).unwrap();
        let err = ChangeMap::open(&f.path, f.geometry).unwrap_err();
        assert!(matches!(err, ChangeMapError::Damaged { .. }), "{len}: {err}");
        assert_eq!(std::fs::read(&f.path).unwrap(), bytes, "a refused open changes nothing");
    }
    std::fs::write(&f.path, &good).unwrap();
    assert!(ChangeMap::open(&f.path, f.geometry).unwrap().was_clean);
}

#[test]
fn wrong_geometry_is_refused_with_both_sizes() {
    let f = fixture(4 * CHUNK + 512);
    ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap().close_clean().unwrap();
    let before = std::fs::read(&f.path).unwrap();
    let bigger = geometry(8 * CHUNK);
    let err = ChangeMap::open(&f.path, bigger).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, ChangeMapError::GeometryMismatch { .. }));
    assert!(msg.contains(&(4 * CHUNK + 512).to_string()), "{msg}");
    assert!(msg.contains(&(8 * CHUNK).to_string()), "{msg}");
    assert!(msg.contains("drpair restart"), "{msg}");
    // Same chunk count, other chunk size.
    let other_chunks = DiskGeometry::new(4 * CHUNK + 512, ChunkSize::new(8192).unwrap()).unwrap();
    assert!(matches!(ChangeMap::open(&f.path, other_chunks).unwrap_err(), ChangeMapError::GeometryMismatch { .. }));
    assert_eq!(std::fs::read(&f.path).unwrap(), before, "a refused open changes nothing");
    assert!(ChangeMap::open(&f.path, f.geometry).unwrap().was_clean);
}

#[test]
fn out_of_range_chunks_change_nothing() {
    let f = fixture(4 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    let before = snapshot(&map);
    let oor = |r: Result<_, ChangeMapError>| matches!(r, Err(ChangeMapError::ChunkOutOfRange { count: 4, .. }));
    assert!(oor(map.mark(4, 1)));
    assert!(oor(map.mark(u64::MAX, 1)));
    assert!(oor(map.mark_range(2, 3, 1)));
    assert!(oor(map.mark_range(u64::MAX, 2, 1)));
    assert!(oor(map.mark_bytes(3 * CHUNK, CHUNK + 1, 1)));
    assert!(oor(map.mark_bytes(u64::MAX, 2, 1)));
    assert!(oor(map.set_hash(4, Some([1; 32]))));
    assert!(oor(map.observe(4, [1; 32], 1).map(|_| ())));
    assert_eq!(snapshot(&map), before);
    assert_eq!((map.epoch_of(4), map.is_dirty(4), map.hash(4)), (0, false, None));
    let msg = map.mark(9, 1).unwrap_err().to_string();
    assert!(msg.contains("chunk 9") && msg.contains("4 chunks"), "{msg}");
}

#[test]
fn mark_bytes_on_a_short_last_chunk() {
    let f = fixture(3 * CHUNK + 100);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    assert_eq!(map.chunk_count(), 4);
    map.mark_bytes(3 * CHUNK + 99, 1, 1).unwrap(); // the disk's last byte
    assert_eq!(map.changed_since(0).collect::<Vec<_>>(), vec![3]);
    map.mark_bytes(3 * CHUNK - 1, 2, 2).unwrap(); // straddles chunks 2 and 3
    assert_eq!((map.epoch_of(2), map.epoch_of(3)), (2, 2));
    map.mark_bytes(CHUNK, 0, 3).unwrap(); // empty: nothing
    assert_eq!(map.epoch_of(1), 0);
    assert!(map.mark_bytes(4 * CHUNK, 1, 3).is_err());
    map.mark_bytes(0, 3 * CHUNK + 100, 4).unwrap(); // the whole disk
    assert_eq!(map.changed_since(3).count(), 4);
}

#[test]
fn marks_never_lower_an_epoch() {
    let f = fixture(2 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    map.mark(0, 5).unwrap();
    map.mark(0, 3).unwrap();
    map.mark_range(0, 2, 4).unwrap();
    assert_eq!((map.epoch_of(0), map.epoch_of(1)), (5, 4));
}

#[test]
fn cuts_and_acks() {
    let f = fixture(4 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap();
    assert!(matches!(map.set_acked(1), Err(ChangeMapError::NotCut { epoch: 1, last_cut: 0, .. })));
    let e1 = map.begin_cut().unwrap();
    assert_eq!((e1, map.last_cut(), map.next_epoch()), (1, 1, 2));
    map.mark(2, map.next_epoch()).unwrap(); // a write after the cut
    map.set_acked(e1).unwrap();
    assert_eq!(map.acked(), 1);
    assert_eq!(map.changed_since(map.acked()).collect::<Vec<_>>(), vec![2]);
    assert_eq!(map.dirty_count(), 1);
    map.set_acked(0).unwrap(); // older: no-op
    assert_eq!(map.acked(), 1);
    let e2 = map.begin_cut().unwrap();
    assert_eq!(e2, 2);
    map.set_acked(e2).unwrap();
    assert_eq!(map.dirty_count(), 0);
    // History stays answerable: what changed since epoch 0?
    assert_eq!(map.changed_since(0).count(), 4);
    assert_eq!(map.changed_since(1).collect::<Vec<_>>(), vec![2]);
}

#[test]
fn observe_stamps_only_on_a_different_hash() {
    let f = fixture(2 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    assert!(map.observe(0, [1; 32], 1).unwrap()); // unknown -> changed
    assert!(!map.observe(0, [1; 32], 2).unwrap());
    assert_eq!(map.epoch_of(0), 1);
    assert!(map.observe(0, [2; 32], 3).unwrap());
    assert_eq!((map.epoch_of(0), map.hash(0)), (3, Some([2; 32])));
    map.set_hash(0, None).unwrap();
    assert_eq!(map.hash(0), None);
}

#[test]
fn adopt_and_reset() {
    let f = fixture(4 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    let joined = lineage();
    map.adopt(joined, 40).unwrap();
    assert_eq!((map.lineage(), map.acked(), map.next_epoch(), map.last_cut()), (joined, 40, 41, 40));
    map.mark(1, 41).unwrap();
    map.set_hash(1, Some([3; 32])).unwrap();
    let fresh = lineage();
    map.reset(fresh, 1).unwrap();
    assert_eq!((map.lineage(), map.acked(), map.next_epoch(), map.last_cut()), (fresh, 0, 41, 0));
    assert_eq!(map.dirty_count(), 4);
    assert!((0..4).all(|c| map.epoch_of(c) == 1 && map.hash(c).is_none()));
    map.reset(lineage(), 100).unwrap();
    assert_eq!(map.next_epoch(), 100);
    map.close_clean().unwrap();
    let reopened = ChangeMap::open(&f.path, f.geometry).unwrap().map;
    assert_eq!((reopened.next_epoch(), reopened.epoch_of(3)), (100, 100));
}

#[test]
fn suspect_persists() {
    let f = fixture(4 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    assert_eq!(map.suspect(), None);
    map.set_suspect(Some("ring overrun on /dev/sdb")).unwrap();
    drop(map);
    let mut map = ChangeMap::open(&f.path, f.geometry).unwrap().map;
    assert_eq!(map.suspect().as_deref(), Some("ring overrun on /dev/sdb"));
    map.set_suspect(Some(&"x".repeat(100))).unwrap();
    assert_eq!(map.suspect().unwrap().len(), 64);
    map.set_suspect(None).unwrap();
    drop(map);
    assert_eq!(ChangeMap::open(&f.path, f.geometry).unwrap().map.suspect(), None);
}

#[test]
fn dirty_runs_split_at_clean_chunks_and_max_run() {
    let f = fixture(12 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    for c in [0, 1, 2, 3, 4, 6, 9, 10, 11] {
        map.mark(c, 1).unwrap();
    }
    assert_eq!(map.dirty_runs(3), vec![(0, 3), (3, 2), (6, 1), (9, 3)]);
    assert_eq!(map.dirty_runs(0), (0..12).filter(|c| map.is_dirty(*c)).map(|c| (c, 1)).collect::<Vec<_>>());
    assert_eq!(map.dirty_runs(u64::MAX), vec![(0, 5), (6, 1), (9, 3)]);
}

/// A map with chunk `c` changed in epoch `c + 1` for `c` in 0..4, epochs 1..=4 cut and
/// acknowledged.
fn four_epochs(f: &Fixture) -> ChangeMap {
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 0).unwrap();
    for c in 0..4 {
        map.mark(c, map.next_epoch()).unwrap();
        let e = map.begin_cut().unwrap();
        assert_eq!(e, c + 1);
    }
    map.set_acked(4).unwrap();
    assert_eq!(map.dirty_count(), 0);
    map
}

/// Closes `map` cleanly or drops it (like a kill), then opens it again.
fn reopen(f: &Fixture, map: ChangeMap, clean: bool) -> ChangeMap {
    if clean {
        map.close_clean().unwrap();
    } else {
        drop(map);
    }
    let opened = ChangeMap::open(&f.path, f.geometry).unwrap();
    assert_eq!(opened.was_clean, clean);
    opened.map
}

#[test]
fn history_start_follows_create_adopt_and_reset() {
    for clean in [true, false] {
        let f = fixture(4 * CHUNK);
        let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap();
        assert_eq!(map.history_from(), 0);
        assert_eq!(map.changed_since(0).count(), 4);
        map.adopt(lineage(), 40).unwrap();
        assert_eq!((map.acked(), map.history_from()), (40, 40));
        let mut map = reopen(&f, map, clean);
        assert_eq!(map.history_from(), 40);
        // Adopting an older checkpoint does not bring back history the map never had.
        map.adopt(lineage(), 10).unwrap();
        assert_eq!((map.acked(), map.last_cut(), map.history_from()), (10, 40, 40));
        let mut map = reopen(&f, map, clean);
        assert_eq!(map.history_from(), 40);
        // A new lineage stamps every chunk: its whole history is known.
        map.reset(lineage(), 50).unwrap();
        assert_eq!((map.acked(), map.last_cut(), map.history_from()), (0, 0, 0));
        let map = reopen(&f, map, clean);
        assert_eq!(map.history_from(), 0);
    }
}

#[test]
fn limit_history_rises_up_to_the_last_cut_and_persists() {
    for clean in [true, false] {
        let uncut = fixture(4 * CHUNK);
        let mut map = ChangeMap::create(&uncut.path, uncut.geometry, lineage(), 0).unwrap();
        map.limit_history(5).unwrap();
        assert_eq!(map.history_from(), 0, "nothing cut yet");
        let f = fixture(4 * CHUNK);
        let mut map = four_epochs(&f);
        map.limit_history(2).unwrap();
        assert_eq!(map.history_from(), 2);
        map.limit_history(1).unwrap();
        assert_eq!(map.history_from(), 2, "never lowered");
        let before = snapshot(&map);
        let mut map = reopen(&f, map, clean);
        assert_eq!(snapshot(&map), before);
        map.limit_history(99).unwrap();
        assert_eq!(map.history_from(), 4, "capped at the last cut");
        assert_eq!((map.acked(), map.dirty_count()), (4, 0), "acknowledged and entries untouched");
        let map = reopen(&f, map, clean);
        assert_eq!(map.history_from(), 4);
    }
}

#[test]
fn rewind_makes_later_changes_dirty_again_and_persists() {
    for clean in [true, false] {
        let f = fixture(4 * CHUNK);
        let mut map = four_epochs(&f);
        map.mark(3, map.next_epoch()).unwrap(); // a write of the open epoch 5
        map.rewind(2).unwrap();
        assert_eq!(map.acked(), 2);
        assert_eq!((0..4).filter(|c| map.is_dirty(*c)).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(map.dirty_runs(8), [(2, 2)]);
        assert_eq!((map.last_cut(), map.next_epoch(), map.history_from()), (4, 5, 0), "cuts untouched");
        let mut map = reopen(&f, map, clean);
        assert_eq!((map.acked(), map.dirty_count()), (2, 2));
        // Again to the same epoch: nothing to do; to 0: everything changed is dirty.
        let before = snapshot(&map);
        map.rewind(2).unwrap();
        assert_eq!(snapshot(&map), before);
        map.rewind(0).unwrap();
        assert_eq!(map.dirty_count(), 4);
        // Forward, to a cut epoch whose acknowledgement was lost.
        map.rewind(3).unwrap();
        assert_eq!(map.changed_since(map.acked()).collect::<Vec<_>>(), [3]);
        let map = reopen(&f, map, clean);
        assert_eq!((map.acked(), map.dirty_count()), (3, 1));
    }
}

#[test]
fn rewind_refuses_epochs_beyond_the_history_or_the_last_cut() {
    let f = fixture(4 * CHUNK);
    let mut map = four_epochs(&f);
    map.limit_history(2).unwrap();
    let before = snapshot(&map);
    let err = map.rewind(1).unwrap_err();
    assert!(matches!(err, ChangeMapError::HistoryTooShort { epoch: 1, history_from: 2, .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("the change history of this map reaches back to epoch 2, not 1"), "{msg}");
    assert!(msg.contains(&f.path.display().to_string()), "{msg}");
    assert!(!err.is_tracking_gap());
    let err = map.rewind(5).unwrap_err();
    assert!(matches!(err, ChangeMapError::NotCut { epoch: 5, last_cut: 4, .. }), "{err}");
    assert_eq!(snapshot(&map), before, "refusals change nothing");
    map.rewind(2).unwrap();
    assert_eq!(map.dirty_count(), 2);
    // A map that joined a pair at 40 cannot replay from before it.
    map.adopt(lineage(), 40).unwrap();
    let err = map.rewind(39).unwrap_err();
    assert!(matches!(err, ChangeMapError::HistoryTooShort { epoch: 39, history_from: 40, .. }), "{err}");
    map.rewind(40).unwrap();
    let mut map = reopen(&f, map, false);
    assert!(matches!(map.rewind(39), Err(ChangeMapError::HistoryTooShort { history_from: 40, .. })));
}

#[test]
fn a_map_of_the_previous_format_version_is_damage() {
    let f = fixture(4 * CHUNK);
    let mut map = ChangeMap::create(&f.path, f.geometry, lineage(), 1).unwrap();
    map.begin_cut().unwrap();
    map.close_clean().unwrap();
    // Rewrite the header as version 1 wrote it: no history start, crc at 152.
    let mut bytes = std::fs::read(&f.path).unwrap();
    bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
    bytes[152..164].fill(0);
    let crc = crc32fast::hash(&bytes[..152]);
    bytes[152..156].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&f.path, &bytes).unwrap();
    let err = ChangeMap::open(&f.path, f.geometry).unwrap_err();
    match &err {
        ChangeMapError::Damaged { reason, .. } => {
            assert!(reason.contains("unsupported format version 1"), "{reason}");
        }
        other => panic!("{other}"),
    }
    // The agent moves it aside and resyncs: a tracking gap, and the file is left as found.
    assert!(err.is_tracking_gap());
    assert_eq!(std::fs::read(&f.path).unwrap(), bytes);
}
