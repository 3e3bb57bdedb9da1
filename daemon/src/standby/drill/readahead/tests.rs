//! The read-ahead starts on reads in order and not on reads here and there, serves exactly
//! the point's bytes (per epoch, in order or not, past chunks it could not read), stays under
//! its memory bound, never wins over a drill's own writes, and ends with its disk.

use super::*;
use crate::standby::drill::disk::DrillDisk;
use drpair_nbd::BlockDev;
use drpair_store::{ChunkVersion, Store, StoredChunk};
use drpair_types::{ChunkSize, DiskGeometry};
use std::time::{Duration, Instant};

/// Disk 0 of pair 1: every chunk written at epoch 2, every third rewritten at epoch 4, and
/// `hole` (if any) never written. Returns the images at 2 and 4.
fn fixture(store: &Store, g: DiskGeometry, hole: Option<u64>) -> [Vec<u8>; 2] {
    let mut images = [Vec::new(), Vec::new()];
    for (i, epoch) in [2u64, 4].into_iter().enumerate() {
        let mut items = Vec::new();
        for c in 0..g.chunk_count() {
            let len = g.chunk_len(c) as usize;
            let rewritten = epoch == 4 && c % 3 == 0;
            // Few distinct contents (stored once) keep a large disk cheap.
            let seed = if rewritten { c % 5 + 10 } else { c % 5 };
            let bytes: Vec<u8> = if seed == 4 {
                vec![0; len]
            } else {
                (0..len as u64).map(|b| ((b + seed * 37) % 251 + 1) as u8).collect()
            };
            let v = if seed == 4 {
                ChunkVersion::Zero
            } else {
                let hash = *blake3::hash(&bytes).as_bytes();
                store
                    .put_chunk(&hash, StoredChunk { compressed: false, raw_len: len as u32, payload: &bytes })
                    .unwrap();
                ChunkVersion::Data(hash)
            };
            if (epoch == 2 || rewritten) && Some(c) != hole {
                items.push((0, c, v));
            }
            images[i].extend_from_slice(&bytes);
        }
        store.write_versions(1, epoch, &items).unwrap();
    }
    images
}

fn open(cs: u64, chunks: u64) -> (tempfile::TempDir, Store, DiskGeometry) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let g = DiskGeometry::new(chunks * cs - 100, ChunkSize::new(cs).unwrap()).unwrap();
    (dir, store, g)
}

/// Reads the whole disk in order, `step` bytes at a time, pausing so the read-ahead runs.
fn read_all(r: &ReadAhead, size: u64, step: u64, pause: Duration) -> Vec<u8> {
    let mut out = vec![0u8; size as usize];
    let mut at = 0;
    while at < size {
        let n = step.min(size - at);
        r.read_at(at, &mut out[at as usize..(at + n) as usize]).unwrap();
        at += n;
        std::thread::sleep(pause);
    }
    out
}

/// Waits until `cond` holds (at most 10 s).
fn until(what: &str, cond: impl Fn() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < Duration::from_secs(10), "still not: {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_streak_of_reads_in_order_is_read_ahead_and_reads_elsewhere_are_not() {
    let cs = 64 * 1024;
    // 1024 chunks; the read-ahead reaches 256 chunks (16 MiB) past the reads.
    let (_dir, store, g) = open(cs, 1024);
    let images = fixture(&store, g, None);
    let plain = PointReader::new(&store, 1, 0, g, 4);
    let r = ReadAhead::new(plain.clone()).unwrap();
    // Two chunks from `c`: the same bytes as a plain read of the point, and as its image.
    let read = |c: u64| {
        let (at, mut got, mut want) = (c * cs, vec![0u8; 2 * cs as usize], vec![0u8; 2 * cs as usize]);
        r.read_at(at, &mut got).unwrap();
        plain.read_at(at, &mut want).unwrap();
        assert!(got == want && want[..] == images[1][at as usize..at as usize + want.len()], "chunk {c}");
    };
    let stream = || {
        let c = lock(&r.shared.cache);
        (c.next, c.streak)
    };
    // Reads further apart than the read-ahead's reach: nothing is read ahead.
    for c in [700, 1000, 400, 900, 600, 300] {
        read(c);
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!((r.cached_bytes(), r.hits()), (0, 0));
    // Two reads in order: the chunks after them are read ahead, and reads take them.
    read(100);
    assert_eq!(r.cached_bytes(), 0, "one read is not a streak");
    read(102);
    until("chunks 104 and 105 read ahead", || r.shared.holds(104) && r.shared.holds(105));
    read(104);
    assert_eq!(r.hits(), 2);
    // A read elsewhere in the middle of the stream: the stream is as it was, nothing is read
    // ahead there, and the next read in order still finds its chunks read ahead.
    let before = stream();
    read(900);
    assert_eq!(stream(), before);
    std::thread::sleep(Duration::from_millis(50));
    assert!((900..920).all(|c| !r.shared.holds(c)));
    read(106);
    assert_eq!(r.hits(), 4);
    // A read elsewhere continued by the next: the stream moves there.
    read(500);
    read(502);
    assert_eq!(stream(), (504, 2));
    until("chunk 504 read ahead", || r.shared.holds(504));
    assert!(r.cached_bytes() <= CACHE_BYTES);
}

#[test]
fn its_threads_end_with_it() {
    let (_dir, store, g) = open(4096, 2000);
    fixture(&store, g, None);
    let r = ReadAhead::new(PointReader::new(&store, 1, 0, g, 2)).unwrap();
    let mut buf = vec![0u8; 8192];
    for at in (0..64 * 1024).step_by(buf.len()) {
        r.read_at(at, &mut buf).unwrap();
    }
    let shared = r.shared.clone();
    drop(r);
    // The threads' shares of the reader (and so of the store) go.
    until("the read-ahead threads ended", || Arc::strong_count(&shared) == 1);
}

#[test]
fn reads_in_order_are_read_ahead_and_each_point_gives_its_own_bytes() {
    let (_dir, store, g) = open(4096, 1500);
    let images = fixture(&store, g, None);
    let at2 = ReadAhead::new(PointReader::new(&store, 1, 0, g, 2)).unwrap();
    let at4 = ReadAhead::new(PointReader::new(&store, 1, 0, g, 4)).unwrap();
    // Interleaved: the two points' read-aheads run side by side over the same chunks.
    let (mut a, mut b) = (vec![0u8; g.size_bytes as usize], vec![0u8; g.size_bytes as usize]);
    let step = 48 * 1024 + 512; // not a multiple of the chunk: reads start and end inside chunks
    let mut at = 0u64;
    while at < g.size_bytes {
        let n = step.min(g.size_bytes - at);
        let r = at as usize..(at + n) as usize;
        at2.read_at(at, &mut a[r.clone()]).unwrap();
        at4.read_at(at, &mut b[r]).unwrap();
        at += n;
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(a == images[0], "point 2");
    assert!(b == images[1], "point 4");
    assert!(at2.hits() > 0 && at4.hits() > 0, "read ahead: {} and {}", at2.hits(), at4.hits());
    // Out of order (backwards, so no streak) gives the same bytes.
    let mut c = vec![0u8; g.size_bytes as usize];
    for i in (0..g.chunk_count()).rev() {
        let (from, to) = (i * 4096, ((i + 1) * 4096).min(g.size_bytes));
        at4.read_at(from, &mut c[from as usize..to as usize]).unwrap();
    }
    assert!(c == images[1]);
}

#[test]
fn a_chunk_it_cannot_read_is_an_error_naming_it_and_the_rest_reads() {
    let (_dir, store, g) = open(4096, 600);
    let hole = 300;
    let images = fixture(&store, g, Some(hole));
    let r = ReadAhead::new(PointReader::new(&store, 1, 0, g, 2)).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    let mut failed = vec![];
    for at in (0..g.size_bytes - buf.len() as u64).step_by(buf.len()) {
        match r.read_at(at, &mut buf) {
            Ok(()) => assert!(buf[..] == images[0][at as usize..at as usize + buf.len()], "at {at}"),
            Err(e) => failed.push((at, e.to_string())),
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let at = hole * 4096 / (64 * 1024) * (64 * 1024);
    assert_eq!(failed, vec![(at, format!("disk 0 chunk {hole}: no version at or before epoch 2"))]);
}

#[test]
fn what_it_holds_stays_under_its_bound() {
    let cs = 64 * 1024;
    let (_dir, store, g) = open(cs, 1024);
    let images = fixture(&store, g, None);
    let r = ReadAhead::new(PointReader::new(&store, 1, 0, g, 4)).unwrap();
    let mut out = vec![0u8; g.size_bytes as usize];
    let mut at = 0;
    while at < g.size_bytes {
        let n = (1u64 << 20).min(g.size_bytes - at);
        r.read_at(at, &mut out[at as usize..(at + n) as usize]).unwrap();
        assert!(r.cached_bytes() <= CACHE_BYTES, "{} bytes held", r.cached_bytes());
        at += n;
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(out == images[1]);
    assert!(r.hits() > 0);
    assert_eq!(read_all(&r, g.size_bytes, 3 << 20, Duration::ZERO), images[1]);
}

#[test]
fn a_drills_writes_win_over_chunks_read_ahead() {
    let (dir, store, g) = open(4096, 400);
    let images = fixture(&store, g, None);
    let disk = DrillDisk::new(PointReader::new(&store, 1, 0, g, 4), &dir.path().join("overlay")).unwrap();
    let mut buf = vec![0u8; 16 * 1024];
    // Reads in order: the chunks after them are read ahead.
    for at in (0..64 * 1024).step_by(buf.len()) {
        disk.read_at(at, &mut buf).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    // Then a write inside chunks the read-ahead may hold: reads see the write.
    disk.write_at(70 * 1024 + 5, b"drill").unwrap();
    let mut back = vec![0u8; 32 * 1024];
    disk.read_at(64 * 1024, &mut back).unwrap();
    let mut want = images[1][64 * 1024..96 * 1024].to_vec();
    want[6 * 1024 + 5..6 * 1024 + 10].copy_from_slice(b"drill");
    assert!(back == want);
}
