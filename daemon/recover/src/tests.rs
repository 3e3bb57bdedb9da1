#![allow(clippy::cast_possible_truncation)] // small test sizes

use super::*;
use drpair_store::{ChunkVersion, Hash, Store, StoredChunk, hash_hex};
use drpair_types::{ChunkSize, DiskGeometry, PointSizes, RecoveryPoint};
use serde::Serialize;
use std::fs;
use std::path::Path;

/// The standby's pair record as it stores it (a stand-in: the daemon's type is not a
/// dependency of this crate); recovery reads only some of its fields.
#[derive(Debug, Clone, Serialize)]
struct PairRecord {
    pair_id: PairId,
    pair_no: u32,
    lineage: uuid::Uuid,
    disks: Vec<DiskRecord>,
    committed: u64,
    registered_unix_ms: u64,
    source_host: String,
    source_address: String,
    tracker: String,
}

#[derive(Debug, Clone, Serialize)]
struct DiskRecord {
    path: String,
    geometry: DiskGeometry,
}

impl PairRecord {
    fn register(
        pair_id: PairId,
        pair_no: u32,
        disks: Vec<DiskRecord>,
        source_host: String,
        source_address: String,
        tracker: String,
    ) -> Self {
        let lineage = uuid::Uuid::nil();
        let registered_unix_ms = 1_767_225_600_000;
        Self {
            pair_id,
            pair_no,
            lineage,
            disks,
            committed: 0,
            registered_unix_ms,
            source_host,
            source_address,
            tracker,
        }
    }
}

const CHUNK: usize = 4096;
/// Disk 0: ten chunks, the last one short.
const SIZE0: u64 = 9 * CHUNK as u64 + 1000;
/// Disk 1: three chunks.
const SIZE1: u64 = 3 * CHUNK as u64;
const PAIR: &str = "web-01";

/// Non-zero bytes that differ per `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| ((i * 31 + seed * 7) % 251 + 1) as u8).collect()
}

fn point(pair: &str, epoch: u64) -> RecoveryPoint {
    // From JSON, so that fields added later with a default need no change here.
    serde_json::from_value(serde_json::json!({
        "id": epoch, "pair_id": pair, "epoch": epoch, "lineage": uuid::Uuid::nil(),
        "time": format!("2026-01-01T00:00:{epoch:02}Z"), "time_unix_ms": 1_767_225_600_000u64 + epoch * 1000,
        "committed_unix_ms": 1_767_225_600_000u64 + epoch * 1000, "kind": "manual", "consistency": "fuzzy",
        "pinned": false, "verified_at": null, "tested_at": null, "sizes": PointSizes::default(),
    }))
    .expect("point")
}

/// Stores `data` (zstd when `compress`) and returns its hash.
fn put(store: &Store, data: &[u8], compress: bool) -> Hash {
    let hash = *blake3::hash(data).as_bytes();
    let z = zstd::bulk::compress(data, 1).expect("zstd");
    let raw_len = data.len() as u32;
    let chunk = if compress {
        StoredChunk { compressed: true, raw_len, payload: &z }
    } else {
        StoredChunk { compressed: false, raw_len, payload: data }
    };
    store.put_chunk(&hash, chunk).expect("put_chunk");
    hash
}

/// A disk's image as the test builds it, and the version entries that say so.
struct Disk {
    g: DiskGeometry,
    image: Vec<u8>,
}

impl Disk {
    fn new(size: u64) -> Self {
        let g = DiskGeometry::new(size, ChunkSize::new(CHUNK as u64).unwrap()).unwrap();
        Self { g, image: vec![0; size as usize] }
    }

    /// Sets chunk `c` to `data` (None: zeros) in the image and the store.
    fn set(&mut self, store: &Store, c: u64, data: Option<Vec<u8>>) -> (u64, ChunkVersion) {
        let (off, len) = (self.g.chunk_offset(c) as usize, self.g.chunk_len(c) as usize);
        match data {
            None => {
                self.image[off..off + len].fill(0);
                (c, ChunkVersion::Zero)
            }
            Some(d) => {
                self.image[off..off + len].copy_from_slice(&d[..len]);
                (c, ChunkVersion::Data(put(store, &d[..len], c.is_multiple_of(2))))
            }
        }
    }
}

/// A data dir whose store holds pair web-01 (two disks; points 5 and 9) and pair db-02
/// (no points), with the images each point must give.
struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    rec: PairRecord,
    /// (point, [disk 0, disk 1]).
    images: Vec<(PointId, [Vec<u8>; 2])>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&standby_store_dir(dir.path())).unwrap();
        let (mut d0, mut d1) = (Disk::new(SIZE0), Disk::new(SIZE1));
        let disks = [&d0, &d1].map(|d| DiskRecord { path: "/dev/x".into(), geometry: d.g }).to_vec();
        let pair_no = store.allocate_pair_no().unwrap();
        let new_pair = |id: &str, no, disks| {
            let id = PairId::new(id).unwrap();
            PairRecord::register(id, no, disks, "h".into(), "a".into(), "scan".into())
        };
        let mut rec = new_pair(PAIR, pair_no, disks.clone());
        store.put_pair(&rec.pair_id, &rec).unwrap();
        let other = new_pair("db-02", store.allocate_pair_no().unwrap(), disks);
        store.put_pair(&other.pair_id, &other).unwrap();

        let mut fx = Self { dir, store, rec: rec.clone(), images: vec![] };
        // Point 5: every third chunk of disk 0 zero, the rest data; disk 1 all data.
        let mut items: Vec<(u32, u64, ChunkVersion)> = vec![];
        for c in 0..d0.g.chunk_count() {
            let (c, v) = d0.set(&fx.store, c, (c % 3 != 1).then(|| content(c, CHUNK)));
            items.push((0, c, v));
        }
        for c in 0..d1.g.chunk_count() {
            let (c, v) = d1.set(&fx.store, c, Some(content(50 + c, CHUNK)));
            items.push((1, c, v));
        }
        fx.commit(&mut rec, 5, &items, [&d0, &d1]);
        // Point 9: chunk 0 rewritten, chunk 5 zeroed, the short last chunk rewritten.
        let items: Vec<_> = [(0, Some(content(100, CHUNK))), (5, None), (9, Some(content(101, CHUNK)))]
            .into_iter()
            .map(|(c, d)| d0.set(&fx.store, c, d))
            .map(|(c, v)| (0, c, v))
            .collect();
        fx.commit(&mut rec, 9, &items, [&d0, &d1]);
        fx
    }

    fn commit(&mut self, rec: &mut PairRecord, epoch: u64, items: &[(u32, u64, ChunkVersion)], disks: [&Disk; 2]) {
        self.store.write_versions(rec.pair_no, epoch, items).unwrap();
        rec.committed = epoch;
        self.store.commit_point(rec.pair_no, &point(PAIR, epoch), &rec.pair_id, rec).unwrap();
        self.images.push((epoch, disks.map(|d| d.image.clone())));
        self.rec = rec.clone();
    }

    fn opts(&self, point: PointSelector, disk: u32, out: &str) -> RecoverOptions {
        RecoverOptions {
            data_dir: self.dir.path().to_path_buf(),
            pair: PairId::new(PAIR).unwrap(),
            point,
            disk,
            out: self.dir.path().join(out),
            force: false,
            s3_credentials: None,
        }
    }

    /// Closes the store (as a stopped standby leaves it).
    fn close(self) -> Closed {
        Closed { dir: self.dir, rec: self.rec, images: self.images }
    }
}

struct Closed {
    dir: tempfile::TempDir,
    rec: PairRecord,
    images: Vec<(PointId, [Vec<u8>; 2])>,
}

impl Closed {
    fn opts(&self, point: PointSelector, disk: u32, out: &str) -> RecoverOptions {
        RecoverOptions {
            data_dir: self.dir.path().to_path_buf(),
            pair: self.rec.pair_id.clone(),
            point,
            disk,
            out: self.dir.path().join(out),
            force: false,
            s3_credentials: None,
        }
    }

    fn reopen(&self) -> Store {
        Store::open(&standby_store_dir(self.dir.path())).unwrap()
    }
}

#[test]
fn every_point_and_disk_is_recovered_exactly() {
    let fx = Fixture::new().close();
    let cases = [(PointSelector::Id(5), 5), (PointSelector::Id(9), 9), (PointSelector::Latest, 9)];
    for (sel, id) in cases {
        let want = &fx.images.iter().find(|(p, _)| *p == id).unwrap().1;
        for disk in [0u32, 1] {
            let name = format!("p{sel}-d{disk}.img");
            let mut seen = vec![];
            let r = recover(&fx.opts(sel, disk, &name), |done, total| seen.push((done, total))).unwrap();
            let image = fs::read(fx.dir.path().join(&name)).unwrap();
            assert!(image == want[disk as usize], "point {sel} disk {disk} differs");
            assert!(!fx.dir.path().join(format!("{name}.partial")).exists());
            let size = want[disk as usize].len() as u64;
            assert_eq!((r.point, r.disk, r.bytes, r.chunk_size), (id, disk, size, CHUNK as u32));
            assert_eq!(r.point_time, format!("2026-01-01T00:00:{id:02}Z"));
            assert_eq!(r.blake3, blake3::hash(&image).to_hex().to_string());
            assert_eq!((r.damaged_chunks, r.damaged.len()), (0, 0));
            let zero = match (disk, id) {
                (0, 5) => 3,
                (0, _) => 4,
                _ => 0,
            };
            assert_eq!((r.chunks, r.zero_chunks), (size.div_ceil(CHUNK as u64), zero), "{sel} disk {disk}");
            assert_eq!(seen.last(), Some(&(size, size)));
            assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0));
        }
    }
    // The report serialises as documented.
    let r = recover(&fx.opts(PointSelector::Id(5), 0, "json.img"), |_, _| {}).unwrap();
    let j = serde_json::to_value(&r).unwrap();
    for key in ["pair_id", "point", "point_time", "disk", "bytes", "chunks", "zero_chunks", "damaged", "blake3"] {
        assert!(!j[key].is_null(), "{key} in {j}");
    }
}

#[test]
fn zero_chunks_are_holes_in_a_file() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&standby_store_dir(dir.path())).unwrap();
    // 64 chunks of 64 KiB, only the first holds data.
    let g = DiskGeometry::new(4 << 20, ChunkSize::DEFAULT).unwrap();
    let id = PairId::new(PAIR).unwrap();
    let disks = vec![DiskRecord { path: "/dev/x".into(), geometry: g }];
    let mut rec = PairRecord::register(id.clone(), 1, disks, "h".into(), "a".into(), "s".into());
    let data = content(1, 65536);
    let mut items = vec![(0, 0, ChunkVersion::Data(put(&store, &data, true)))];
    items.extend((1..64).map(|c| (0, c, ChunkVersion::Zero)));
    store.write_versions(1, 3, &items).unwrap();
    rec.committed = 3;
    store.commit_point(1, &point(PAIR, 3), &id, &rec).unwrap();
    drop(store);
    let opts = RecoverOptions {
        data_dir: dir.path().into(),
        pair: id,
        point: PointSelector::Latest,
        disk: 0,
        out: dir.path().join("sparse.img"),
        force: false,
        s3_credentials: None,
    };
    let r = recover(&opts, |_, _| {}).unwrap();
    assert_eq!(r.zero_chunks, 63);
    let m = fs::metadata(&opts.out).unwrap();
    assert_eq!(m.len(), 4 << 20);
    assert!(m.blocks() * 512 < 1 << 20, "{} sectors allocated: zero chunks were written", m.blocks());
    let mut want = data;
    want.resize(4 << 20, 0);
    assert!(fs::read(&opts.out).unwrap() == want);
}

#[test]
fn damaged_chunks_are_reported_and_written_as_zeros() {
    let fx = Fixture::new();
    let mut rec = fx.rec.clone();
    // Point 12: chunk 2 refers to a chunk stored with bytes that do not match its hash,
    // chunk 6 to a chunk no longer stored (a damaged copy, deleted by verification after
    // the point was committed: versions may only name stored chunks).
    let good = content(200, CHUNK);
    let corrupt_hash = *blake3::hash(&good).as_bytes();
    let mut bad = good.clone();
    bad[100] ^= 1;
    fx.store.put_chunk(&corrupt_hash, StoredChunk { compressed: false, raw_len: CHUNK as u32, payload: &bad }).unwrap();
    let missing_hash = *blake3::hash(&content(201, CHUNK)).as_bytes();
    fx.store.put_chunk(&missing_hash, StoredChunk { compressed: false, raw_len: 1, payload: b"x" }).unwrap();
    let items = [(0, 2, ChunkVersion::Data(corrupt_hash)), (0, 6, ChunkVersion::Data(missing_hash))];
    fx.store.write_versions(rec.pair_no, 12, &items).unwrap();
    rec.committed = 12;
    fx.store.commit_point(rec.pair_no, &point(PAIR, 12), &rec.pair_id, &rec).unwrap();
    assert_eq!(fx.store.has_verified_chunks(&[missing_hash]).unwrap(), [false]);
    assert_eq!(fx.store.has_chunks(&[missing_hash, corrupt_hash]).unwrap(), [false, true]);
    let mut want = fx.images.iter().find(|(p, _)| *p == 9).unwrap().1[0].clone();
    want[2 * CHUNK..3 * CHUNK].fill(0);
    want[6 * CHUNK..7 * CHUNK].fill(0);
    // A pair whose point has no version for chunk 2 of its disk.
    let g = DiskGeometry::new(4 * CHUNK as u64, ChunkSize::new(CHUNK as u64).unwrap()).unwrap();
    let gappy_id = PairId::new("gappy").unwrap();
    let disks = vec![DiskRecord { path: "/dev/y".into(), geometry: g }];
    let mut gappy = PairRecord::register(gappy_id.clone(), 7, disks, "h".into(), "a".into(), "s".into());
    let items: Vec<_> = [0, 1, 3].map(|c| (0, c, ChunkVersion::Data(put(&fx.store, &content(c, CHUNK), false)))).into();
    fx.store.write_versions(7, 4, &items).unwrap();
    gappy.committed = 4;
    fx.store.commit_point(7, &point("gappy", 4), &gappy_id, &gappy).unwrap();
    fx.store.flush().unwrap();
    let fx = fx.close();

    let r = recover(&fx.opts(PointSelector::Latest, 0, "damaged.img"), |_, _| {}).unwrap();
    let image = fs::read(fx.dir.path().join("damaged.img")).unwrap();
    assert!(image == want, "everything but the damaged chunks is exact, those are zeros");
    assert_eq!((r.point, r.chunks, r.damaged_chunks), (12, 10, 2));
    assert_eq!(r.blake3, blake3::hash(&image).to_hex().to_string());
    let [corrupt, missing] = &r.damaged[..] else { panic!("{:?}", r.damaged) };
    assert_eq!((corrupt.disk, corrupt.chunk, corrupt.offset, corrupt.length), (0, 2, 2 * CHUNK as u64, 4096));
    assert_eq!((corrupt.reason, corrupt.hash.as_deref()), (DamageReason::Corrupt, Some(&*hash_hex(&corrupt_hash))));
    assert!(corrupt.detail.contains("hash mismatch"), "{}", corrupt.detail);
    assert_eq!((missing.chunk, missing.offset, missing.reason), (6, 6 * CHUNK as u64, DamageReason::MissingChunk));
    assert_eq!(missing.hash.as_deref(), Some(&*hash_hex(&missing_hash)));
    let shown = corrupt.to_string();
    assert!(shown.starts_with("disk 0 chunk 2 at byte 8192 (4096 bytes): corrupt: chunk "), "{shown}");
    let j = serde_json::to_value(&r).unwrap();
    assert_eq!(j["damaged"][1]["reason"], "missing_chunk");

    // The older point does not see them.
    let r = recover(&fx.opts(PointSelector::Id(9), 0, "p9.img"), |_, _| {}).unwrap();
    assert_eq!(r.damaged_chunks, 0);

    let mut opts = fx.opts(PointSelector::Latest, 0, "gappy.img");
    opts.pair = gappy_id;
    let r = recover(&opts, |_, _| {}).unwrap();
    let [gap] = &r.damaged[..] else { panic!("{:?}", r.damaged) };
    assert_eq!(
        (gap.chunk, gap.offset, gap.reason, gap.hash.as_ref()),
        (2, 2 * CHUNK as u64, DamageReason::NoVersion, None)
    );
    let image = fs::read(&opts.out).unwrap();
    assert!(image[2 * CHUNK..3 * CHUNK].iter().all(|&b| b == 0));
    assert_eq!(&image[3 * CHUNK..], &content(3, CHUNK)[..]);
}

/// Runs a recovery that must fail; asserts that it wrote nothing at `opts.out`.
fn refused(opts: &RecoverOptions) -> String {
    let before = fs::read(&opts.out).ok();
    let e = recover(opts, |_, _| panic!("progress of a refused recovery")).unwrap_err();
    assert_eq!(fs::read(&opts.out).ok(), before, "{e}");
    let mut partial = opts.out.clone().into_os_string();
    partial.push(".partial");
    assert!(!Path::new(&partial).exists(), "{e}");
    e.to_string()
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let fx = Fixture::new().close();
    let store_dir = standby_store_dir(fx.dir.path());

    let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
    o.pair = PairId::new("nope").unwrap();
    let e = refused(&o);
    assert!(e.starts_with("pair 'nope' is not in the store at ") && e.ends_with("it holds: db-02, web-01"), "{e}");

    let e = refused(&fx.opts(PointSelector::Id(7), 0, "x.img"));
    assert_eq!(e, "pair 'web-01' has no recovery point 7; nearest: 5, 9 (2 point(s), 5 to 9)");
    let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
    o.pair = PairId::new("db-02").unwrap();
    assert_eq!(refused(&o), "pair 'db-02' has no recovery point latest; it has no recovery points");

    let e = refused(&fx.opts(PointSelector::Latest, 2, "x.img"));
    assert_eq!(e, "pair 'web-01' has 2 disk(s), numbered from 0; disk 2 does not exist");

    // An existing file needs --force; an empty one may be replaced.
    let mut o = fx.opts(PointSelector::Latest, 1, "old.img");
    fs::write(&o.out, b"precious").unwrap();
    let e = refused(&o);
    assert!(e.starts_with("refusing to overwrite") && e.contains("--force"), "{e}");
    o.force = true;
    recover(&o, |_, _| {}).unwrap();
    assert_eq!(fs::read(&o.out).unwrap(), fx.images[1].1[1]);
    let o = fx.opts(PointSelector::Latest, 1, "empty.img");
    fs::write(&o.out, b"").unwrap();
    recover(&o, |_, _| {}).unwrap();

    // Never into the store's own directory, nor anything but a file or a block device.
    let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
    o.out = store_dir.join("image.img");
    let e = refused(&o);
    assert!(e.contains("inside the store's own directory"), "{e}");
    let files_before = fs::read_dir(&store_dir).unwrap().count();
    o.out = store_dir.join("CURRENT");
    o.force = true;
    refused(&o);
    assert_eq!(fs::read_dir(&store_dir).unwrap().count(), files_before);
    o.out = fx.dir.path().to_path_buf();
    assert!(refused(&o).contains("neither a regular file nor a block device"));
    o.out = fx.dir.path().join("no/such/dir/x.img");
    assert!(refused(&o).starts_with("cannot find the directory of "));

    // A data dir without a store is not made one.
    let mut o = fx.opts(PointSelector::Latest, 0, "x.img");
    o.data_dir = fx.dir.path().join("elsewhere");
    let e = refused(&o);
    assert!(e.starts_with("no standby store at ") && e.contains("--data-dir"), "{e}");
    assert!(!o.data_dir.exists());
    fx.reopen();
}

#[test]
fn a_store_held_by_a_standby_is_in_use() {
    let fx = Fixture::new();
    let e = refused(&fx.opts(PointSelector::Latest, 0, "x.img"));
    let dir = standby_store_dir(fx.dir.path());
    assert_eq!(e, format!("the store at {} is in use (is drpaird running?) — stop the standby first", dir.display()));
}
