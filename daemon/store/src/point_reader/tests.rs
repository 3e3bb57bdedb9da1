#![allow(clippy::cast_possible_truncation)] // small test sizes

use super::*;
use crate::test_support::{open_temp, point, record};
use crate::{Hash, PairId, StoreError, StoredChunk};
use drpair_types::ChunkSize;

const CS: usize = 4096;
/// Disk 0: five chunks, the last one short.
const SIZE: u64 = 4 * CS as u64 + 1000;
const PAIR: u32 = 1;

fn geometry() -> DiskGeometry {
    DiskGeometry::new(SIZE, ChunkSize::new(CS as u64).unwrap()).unwrap()
}

/// Non-zero bytes that differ per `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((i * 13 + seed * 5) % 251 + 1) as u8).collect()
}

/// Stores `data` (zstd when `compress`) and returns its hash.
fn put(s: &Store, data: &[u8], compress: bool) -> Hash {
    let hash = *blake3::hash(data).as_bytes();
    let z = zstd::bulk::compress(data, 1).unwrap();
    let raw_len = data.len() as u32;
    let chunk = if compress {
        StoredChunk { compressed: true, raw_len, payload: &z }
    } else {
        StoredChunk { compressed: false, raw_len, payload: data }
    };
    s.put_chunk(&hash, chunk).unwrap();
    hash
}

/// The store and the image each point must give (`None`: the chunk was never written).
struct Fixture {
    _dir: tempfile::TempDir,
    store: Store,
    /// (epoch, chunks of disk 0 at that point).
    images: Vec<(u64, Vec<Option<Vec<u8>>>)>,
}

impl Fixture {
    /// Points 2, 4 and 6 of disk 0, overlapping versions; disk 1 has other data at 2.
    fn new() -> Self {
        let (dir, store) = open_temp();
        let g = geometry();
        let id = PairId::new("web-01").unwrap();
        let mut chunks: Vec<Option<Vec<u8>>> = vec![None; g.chunk_count() as usize];
        let mut images = vec![];
        // (epoch, [(chunk, content seed; 0 = zero chunk)])
        let steps: [(u64, &[(u64, u64)]); 3] =
            [(2, &[(0, 1), (1, 2), (2, 0)]), (4, &[(0, 0), (1, 3), (3, 4), (4, 5)]), (6, &[(1, 0), (2, 6)])];
        for (epoch, writes) in steps {
            let mut items = vec![];
            for &(c, seed) in writes {
                let len = g.chunk_len(c) as usize;
                let v = if seed == 0 {
                    chunks[c as usize] = Some(vec![0; len]);
                    ChunkVersion::Zero
                } else {
                    let d = content(seed, len);
                    chunks[c as usize] = Some(d.clone());
                    ChunkVersion::Data(put(&store, &d, seed % 2 == 0))
                };
                items.push((0, c, v));
            }
            if epoch == 2 {
                items.push((1, 0, ChunkVersion::Data(put(&store, &content(99, CS), false))));
            }
            store.write_versions(PAIR, epoch, &items).unwrap();
            store.commit_point(PAIR, &point("web-01", epoch), &id, &record("web-01", epoch)).unwrap();
            images.push((epoch, chunks.clone()));
        }
        Self { _dir: dir, store, images }
    }

    fn reader(&self, epoch: u64) -> PointReader {
        PointReader::open(&self.store, PAIR, epoch, 0, &[geometry(), geometry()]).unwrap()
    }

    fn image(&self, epoch: u64) -> &[Option<Vec<u8>>] {
        &self.images.iter().find(|(e, _)| *e == epoch).unwrap().1
    }
}

#[test]
fn every_point_reads_as_written_chunk_by_chunk() {
    let fx = Fixture::new();
    for epoch in [4, 6] {
        let r = fx.reader(epoch);
        assert_eq!((r.disk(), r.epoch(), r.geometry()), (0, epoch, geometry()));
        let want = fx.image(epoch);
        for (c, w) in want.iter().enumerate() {
            let got = r.chunk(c as u64).unwrap();
            assert_eq!(got.len(), w.as_ref().unwrap().len());
            assert_eq!(&got.clone().into_bytes(), w.as_ref().unwrap(), "point {epoch} chunk {c}");
        }
        let all = r.chunks(0, 5).unwrap();
        let mut image = vec![];
        for c in &all {
            c.append_to(&mut image);
        }
        assert_eq!(image, want.iter().flat_map(|c| c.clone().unwrap()).collect::<Vec<u8>>());
        assert_eq!(image.len() as u64, SIZE);
    }
}

#[test]
fn zero_chunks_are_reported_not_read() {
    let fx = Fixture::new();
    let zeros = |epoch| -> Vec<bool> { fx.reader(epoch).chunks(0, 5).unwrap().iter().map(|c| c.is_zero()).collect() };
    assert_eq!(zeros(4), [true, false, true, false, false]);
    assert_eq!(zeros(6), [true, true, false, false, false]);
    assert_eq!(fx.reader(6).chunk(1).unwrap(), PointChunk::Zero(CS));
    assert!(!PointChunk::Zero(CS).is_empty());
}

#[test]
fn a_point_before_a_chunk_was_written_says_so() {
    let fx = Fixture::new();
    let r = fx.reader(2);
    assert_eq!(r.version(3).unwrap(), None);
    assert_eq!(r.versions(0, 5).unwrap()[3..], [None, None]);
    let e = r.chunk(3).unwrap_err();
    assert!(matches!(e, PointReadError::NoVersion { disk: 0, chunk: 3, epoch: 2 }), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    // What the point does cover reads fine; a range reaching the unwritten chunk fails.
    let mut buf = vec![0u8; 3 * CS];
    r.read_at(0, &mut buf).unwrap();
    assert_eq!(&buf[..CS], &fx.image(2)[0].clone().unwrap()[..]);
    assert!(matches!(r.read_at(3 * CS as u64 - 10, &mut [0u8; 20]), Err(PointReadError::NoVersion { chunk: 3, .. })));
    // The whole disk in spans: the first span is whole, the one with the gap fails, then none.
    let spans: Vec<_> = r.spans(2).collect();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0].as_ref().unwrap().0, 0);
    assert!(matches!(spans[1], Err(PointReadError::NoVersion { chunk: 3, .. })));
}

#[test]
fn range_reads_straddle_chunk_boundaries() {
    let fx = Fixture::new();
    for epoch in [4, 6] {
        let r = fx.reader(epoch);
        let image: Vec<u8> = fx.image(epoch).iter().flat_map(|c| c.clone().unwrap()).collect();
        let cs = CS as u64;
        let cases = [
            (0, SIZE),
            (0, 1),
            (cs - 1, 2),
            (cs - 100, cs + 200),
            (2 * cs + 7, 2 * cs),
            (4 * cs - 3, 1003),
            (SIZE - 1, 1),
            (5, 0),
        ];
        for (offset, len) in cases {
            let mut buf = vec![0xAAu8; len as usize];
            r.read_at(offset, &mut buf).unwrap();
            assert!(buf[..] == image[offset as usize..(offset + len) as usize], "point {epoch} {offset}+{len}");
        }
        let spanned: Vec<u8> = r.spans(2).flat_map(|s| s.unwrap().1).flat_map(|c: PointChunk| c.into_bytes()).collect();
        assert!(spanned == image);
    }
}

#[test]
fn bad_disk_point_or_range_is_refused() {
    let fx = Fixture::new();
    let disks = [geometry()];
    let e = PointReader::open(&fx.store, PAIR, 4, 1, &disks).unwrap_err();
    assert!(matches!(e, PointReadError::DiskNotFound { disk: 1, count: 1, .. }), "{e:?}");
    assert_eq!(e.to_string(), "pair #1 has 1 disk(s), numbered from 0; disk 1 does not exist");
    let e = PointReader::open(&fx.store, PAIR, 5, 0, &disks).unwrap_err();
    assert!(matches!(e, PointReadError::PointNotFound { pair_no: 1, point: 5 }), "{e:?}");
    assert_eq!(e.to_string(), "pair #1: no recovery point 5");
    assert!(PointReader::open(&fx.store, 2, 4, 0, &disks).is_err(), "another pair's points");
    let r = fx.reader(4);
    let e = r.read_at(SIZE - 10, &mut [0u8; 11]).unwrap_err();
    assert!(matches!(e, PointReadError::OutOfRange { disk: 0, offset, len: 11, size: SIZE } if offset == SIZE - 10));
    assert!(r.read_at(u64::MAX, &mut [0u8; 2]).is_err());
    assert!(matches!(r.chunk(5), Err(PointReadError::OutOfRange { .. })));
    assert!(matches!(r.chunks(3, 3), Err(PointReadError::OutOfRange { .. })));
    // Disk 1 has its own versions; the same point reads them.
    let d1 = PointReader::open(&fx.store, PAIR, 4, 1, &[geometry(), geometry()]).unwrap();
    assert_eq!(d1.chunk(0).unwrap().into_bytes(), content(99, CS));
    assert!(matches!(d1.chunk(1), Err(PointReadError::NoVersion { disk: 1, chunk: 1, epoch: 4 })));
}

#[test]
fn damaged_and_short_chunks_are_errors_naming_the_chunk() {
    let fx = Fixture::new();
    let id = PairId::new("web-01").unwrap();
    // Chunk 3: stored bytes that do not hash to their name; chunk 2: an intact chunk too short.
    let good = content(50, CS);
    let hash = *blake3::hash(&good).as_bytes();
    let mut bad = good.clone();
    bad[9] ^= 1;
    fx.store.put_chunk(&hash, StoredChunk { compressed: false, raw_len: CS as u32, payload: &bad }).unwrap();
    let short = put(&fx.store, &content(51, 100), false);
    let items = [(0, 3, ChunkVersion::Data(hash)), (0, 2, ChunkVersion::Data(short))];
    fx.store.write_versions(PAIR, 8, &items).unwrap();
    fx.store.commit_point(PAIR, &point("web-01", 8), &id, &record("web-01", 8)).unwrap();
    let r = fx.reader(8);
    let e = r.chunk(3).unwrap_err();
    assert!(matches!(&e, PointReadError::Chunk { chunk: 3, epoch: 8, source: StoreError::Corrupt { .. }, .. }));
    assert!(e.to_string().starts_with("disk 0 chunk 3 at epoch 8: chunk "), "{e}");
    assert!(e.to_string().contains("hash mismatch"), "{e}");
    let e = r.chunk(2).unwrap_err();
    assert!(matches!(e, PointReadError::Length { chunk: 2, stored: 100, expected: CS, .. }), "{e:?}");
    // The versions themselves are readable, and older points are untouched.
    assert_eq!(r.version(3).unwrap(), Some(ChunkVersion::Data(hash)));
    assert!(fx.reader(6).chunks(0, 5).is_ok());
}
