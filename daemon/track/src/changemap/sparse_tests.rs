//! The change map of a huge disk stays small: untouched regions hold no blocks and are not
//! read by "what changed since E".

use super::*;
use drpair_types::ChunkSize;
use std::os::unix::fs::MetadataExt;

/// Blocks the file holds, in bytes.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

#[test]
fn a_huge_map_stays_sparse_and_answers_from_touched_regions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk-0.chmap");
    // 1 TiB in 64 KiB chunks: 16 Mi chunks, a 640 MiB file if it were dense.
    let g = DiskGeometry::new(1 << 40, ChunkSize::DEFAULT).unwrap();
    let mut m = ChangeMap::create(&path, g, Lineage::new_v4(), 1).unwrap();
    assert!(allocated(&path) < 1 << 20, "created sparse: {} bytes", allocated(&path));
    assert_eq!(m.dirty_count(), g.chunk_count(), "every chunk stamped by the base epoch");
    assert_eq!(m.dirty_runs(1 << 20).len(), 16, "whole-disk runs, no entry read");
    let e = m.begin_cut().unwrap();
    m.set_acked(e).unwrap();
    assert_eq!(m.dirty_count(), 0);
    let last = g.chunk_count() - 1;
    for c in [5u64, 6, 7, 1 << 23, last] {
        m.mark(c, e + 1).unwrap();
    }
    m.set_hash(9, Some([3; 32])).unwrap();
    assert_eq!(m.dirty_runs(64), vec![(5, 3), (1 << 23, 1), (last, 1)]);
    assert_eq!(m.dirty_count(), 5);
    assert_eq!(m.epoch_of(4), 1, "the base epoch");
    // Three regions touched: a page of epochs and 16 KiB of hashes each (filesystems may
    // round up to their block size).
    assert!(allocated(&path) < 1 << 20, "{} bytes", allocated(&path));
    let b = m.begin_cut().unwrap();
    m.close_clean().unwrap();

    // Reopened: the summary rebuilt from the file's data, the same answers.
    let mut m = ChangeMap::open(&path, g).unwrap().map;
    assert_eq!(m.dirty_runs(64), vec![(5, 3), (1 << 23, 1), (last, 1)]);
    assert_eq!(m.changed_since(0).count() as u64, g.chunk_count(), "base epoch 1 > 0");
    assert_eq!(m.hash(9), Some([3; 32]));
    m.set_acked(b).unwrap();
    assert_eq!(m.dirty_count(), 0);

    // A new lineage gives the blocks back and stamps everything through the base epoch.
    m.reset(Lineage::new_v4(), 1).unwrap();
    assert_eq!((m.epoch_of(5), m.epoch_of(6), m.hash(9)), (1, 1, None));
    assert_eq!(m.dirty_count(), g.chunk_count());
    assert!(allocated(&path) < 64 << 10, "{} bytes after reset", allocated(&path));
}

#[test]
fn forgetting_the_hashes_of_a_hole_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("disk-0.chmap");
    let g = DiskGeometry::new(1 << 40, ChunkSize::DEFAULT).unwrap();
    let mut m = ChangeMap::create(&path, g, Lineage::new_v4(), 1).unwrap();
    let last = g.chunk_count() - 1;
    for c in [9u64, 10, 1 << 23, last] {
        m.set_hash(c, Some([7; 32])).unwrap();
    }
    let before = allocated(&path);
    // The whole disk but chunk 10: one call, only the regions holding hashes written.
    m.forget_hashes(0, 10).unwrap();
    m.forget_hashes(11, last - 10).unwrap();
    assert_eq!((m.hash(9), m.hash(10), m.hash(1 << 23), m.hash(last)), (None, Some([7; 32]), None, None));
    assert!(allocated(&path) <= before, "{} bytes, {before} before", allocated(&path));
    m.forget_hashes(5, 0).unwrap();
    assert!(m.forget_hashes(last, 2).is_err(), "past the end: nothing forgotten");
    assert!(m.forget_hashes(u64::MAX, 2).is_err());
}
