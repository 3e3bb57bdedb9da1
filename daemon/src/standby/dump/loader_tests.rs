//! The loader against real images in a real store.

use super::errors::DumpLoadError;
use super::format::{ImageFormat, ImageInfo};
use super::image::{QEMU_IMG, probe};
use super::loader::{DumpLoadSpec, load};
use super::progress::LoadProgress;
use drpair_ship::hash_chunk;
use drpair_store::{ChunkVersion, Store};
use drpair_types::DiskGeometry;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use drpair_types::{ChunkSize, Consistency, PairId, PointKind, PointSizes, RecoveryPoint};

const CHUNK: usize = 64 << 10;
/// 150 full chunks and a short one (whole 512-byte sectors, as qcow2 requires): 3 blocks of 64 chunks.
const SIZE: usize = 150 * CHUNK + 1536;
const ZERO_CHUNKS: [usize; 3] = [3, 70, 140];

fn geometry() -> DiskGeometry {
    DiskGeometry::new(SIZE as u64, ChunkSize::new(CHUNK as u64).unwrap()).unwrap()
}

/// Deterministic incompressible bytes (xorshift64*).
fn noise(seed: u64, out: &mut [u8]) {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for b in out.chunks_mut(8) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        b.copy_from_slice(&v[..b.len()]);
    }
}

/// Random chunks, zero chunks, chunks 10 and 11 identical, chunk 20 compressible, a short
/// last chunk.
fn image_bytes() -> Vec<u8> {
    let mut img = vec![0u8; SIZE];
    for (i, c) in img.chunks_mut(CHUNK).enumerate() {
        if ZERO_CHUNKS.contains(&i) {
            continue;
        }
        noise(i as u64 + 1, c);
    }
    let (a, b) = img.split_at_mut(11 * CHUNK);
    b[..CHUNK].copy_from_slice(&a[10 * CHUNK..]);
    for (j, byte) in img[20 * CHUNK..21 * CHUNK].iter_mut().enumerate() {
        *byte = u8::try_from(j % 13).unwrap();
    }
    img
}

fn spec(image: &Path, scratch: &Path, epoch: u64, base: u64) -> DumpLoadSpec {
    DumpLoadSpec {
        pair_no: 1,
        disk: 0,
        geometry: geometry(),
        image: image.into(),
        format: None,
        epoch,
        base,
        scratch_dir: scratch.into(),
    }
}

fn commit(store: &Store, epoch: u64) {
    let pair_id = PairId::new("dump").unwrap();
    let point = RecoveryPoint {
        id: epoch,
        pair_id: pair_id.clone(),
        epoch,
        lineage: uuid::Uuid::nil(),
        time: "2025-01-01T00:00:00Z".into(),
        time_unix_ms: 1_735_689_600_000,
        committed_unix_ms: 1_735_689_600_000,
        kind: PointKind::DumpMarker,
        consistency: Consistency::CrashConsistent,
        pinned: false,
        verified_at: None,
        tested_at: None,
        sizes: PointSizes::default(),
        quiesce: None,
        full_pass: false,
        damage: None,
        read_window_ms: None,
        window_exceeded: false,
    };
    store.commit_point(1, &point, &pair_id, &serde_json::json!({ "pair": "dump" })).unwrap();
}

/// The disk as read from the store at `epoch`: every chunk must have a version.
fn read_back(store: &Store, epoch: u64) -> Vec<u8> {
    let g = geometry();
    let versions = store.versions_at(1, 0, epoch, 0, g.chunk_count()).unwrap();
    let mut out = Vec::with_capacity(SIZE);
    for (c, v) in versions.into_iter().enumerate() {
        match v.unwrap_or_else(|| panic!("chunk {c}: no version at epoch {epoch}")) {
            ChunkVersion::Zero => out.resize(out.len() + g.chunk_len(c as u64) as usize, 0),
            ChunkVersion::Data(h) => out.extend_from_slice(&store.read_chunk(&h).unwrap()),
        }
    }
    out
}

struct Fixture {
    dir: tempfile::TempDir,
    store: Store,
    image: PathBuf,
    bytes: Vec<u8>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store")).unwrap();
    let image = dir.path().join("disk.raw");
    let bytes = image_bytes();
    std::fs::write(&image, &bytes).unwrap();
    Fixture { dir, store, image, bytes }
}

impl Fixture {
    fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    fn set_chunk(&mut self, c: usize, seed: Option<u64>) {
        let chunk = &mut self.bytes[c * CHUNK..(c + 1) * CHUNK];
        match seed {
            Some(seed) => noise(seed, chunk),
            None => chunk.fill(0),
        }
        std::fs::write(&self.image, &self.bytes).unwrap();
    }
}

#[test]
fn dump_load_raw_image_stores_every_chunk() {
    let f = fixture();
    let progress = LoadProgress::default();
    let stats = load(&f.store, &spec(&f.image, &f.scratch(), 5, 0), &progress).unwrap();
    let g = geometry();
    assert_eq!(stats.chunks, g.chunk_count());
    assert_eq!(stats.zero, ZERO_CHUNKS.len() as u64);
    assert_eq!(stats.entries, g.chunk_count());
    assert_eq!(stats.same_as_base, 0);
    assert!(stats.dedup >= 1, "{stats:?}");
    assert_eq!(stats.raw_bytes, SIZE as u64);
    assert_eq!(stats.format, "raw");
    assert!(stats.stored_bytes > 0 && stats.stored_bytes < SIZE as u64, "{stats:?}");
    assert_eq!(progress.total.load(Ordering::Relaxed), SIZE as u64);
    assert_eq!(progress.done.load(Ordering::Relaxed), SIZE as u64);
    let versions = f.store.versions_at(1, 0, 5, 0, g.chunk_count()).unwrap();
    for (c, v) in versions.iter().enumerate() {
        let data = &f.bytes[c * CHUNK..(c * CHUNK + g.chunk_len(c as u64) as usize)];
        if ZERO_CHUNKS.contains(&c) {
            assert_eq!(*v, Some(ChunkVersion::Zero), "chunk {c}");
        } else {
            let h = hash_chunk(data);
            assert_eq!(*v, Some(ChunkVersion::Data(h)), "chunk {c}");
            assert_eq!(f.store.read_chunk(&h).unwrap(), data, "chunk {c}");
        }
    }
    assert_eq!(versions[10], versions[11]);
    // The compressible chunk went in as zstd, the noise raw.
    let ChunkVersion::Data(h20) = versions[20].unwrap() else { panic!("chunk 20 is data") };
    assert_eq!(f.store.get_chunk_raw(&h20).unwrap().unwrap()[0], 1);
    let ChunkVersion::Data(h0) = versions[0].unwrap() else { panic!("chunk 0 is data") };
    assert_eq!(f.store.get_chunk_raw(&h0).unwrap().unwrap()[0], 0);
    assert!(f.store.versions_at(1, 0, 4, 0, g.chunk_count()).unwrap().iter().all(Option::is_none));
    assert_eq!(read_back(&f.store, 5), f.bytes);
}

#[test]
fn dump_load_against_a_base_writes_only_changes_and_reload_replaces() {
    let mut f = fixture();
    let scratch = f.scratch();
    load(&f.store, &spec(&f.image, &scratch, 5, 0), &LoadProgress::default()).unwrap();
    commit(&f.store, 5);
    let base_bytes = f.bytes.clone();
    f.set_chunk(30, Some(1000));
    f.set_chunk(ZERO_CHUNKS[1], Some(1001));
    let stats = load(&f.store, &spec(&f.image, &scratch, 9, 5), &LoadProgress::default()).unwrap();
    let n = geometry().chunk_count();
    assert_eq!((stats.entries, stats.same_as_base, stats.chunks), (2, n - 2, n), "{stats:?}");
    assert_eq!(stats.zero, ZERO_CHUNKS.len() as u64 - 1);
    assert_eq!(read_back(&f.store, 9), f.bytes);
    assert_eq!(read_back(&f.store, 5), base_bytes, "the base point is unchanged");
    assert_eq!(f.store.changed_between(1, 0, 5, 9).unwrap(), vec![30, ZERO_CHUNKS[1] as u64]);

    // Loading again after chunk 30 went back to its base content drops its entry at 9.
    f.bytes[30 * CHUNK..31 * CHUNK].copy_from_slice(&base_bytes[30 * CHUNK..31 * CHUNK]);
    std::fs::write(&f.image, &f.bytes).unwrap();
    let stats = load(&f.store, &spec(&f.image, &scratch, 9, 5), &LoadProgress::default()).unwrap();
    assert_eq!((stats.entries, stats.same_as_base), (1, n - 1), "{stats:?}");
    assert_eq!(f.store.version_at(1, 0, 30, 9).unwrap().map(|(e, _)| e), Some(5));
    assert_eq!(f.store.version_at(1, 0, ZERO_CHUNKS[1] as u64, 9).unwrap().map(|(e, _)| e), Some(9));
    assert_eq!(f.store.changed_between(1, 0, 5, 9).unwrap(), vec![ZERO_CHUNKS[1] as u64]);
    assert_eq!(read_back(&f.store, 9), f.bytes);
}

#[test]
fn dump_load_qcow2_image_equals_its_raw_content() {
    let f = fixture();
    let qcow = f.dir.path().join("disk.qcow2");
    let out = Command::new(QEMU_IMG)
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&f.image)
        .arg(&qcow)
        .output()
        .expect("qemu-img is installed");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let info = probe(&qcow, None, 0, &geometry()).unwrap();
    assert_eq!(info, ImageInfo { format: ImageFormat::Qcow2, virtual_size: SIZE as u64 });
    let e = probe(&qcow, Some(ImageFormat::Raw), 0, &geometry()).unwrap_err();
    assert!(matches!(e, DumpLoadError::FormatMismatch { .. }), "{e}");
    let scratch = f.scratch();
    let stats = load(&f.store, &spec(&qcow, &scratch, 5, 0), &LoadProgress::default()).unwrap();
    assert_eq!(stats.format, "qcow2");
    assert_eq!(stats.raw_bytes, SIZE as u64);
    assert_eq!(read_back(&f.store, 5), f.bytes);
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "converted file removed");
    // A qcow2 of the wrong size is refused before converting anything.
    let mut wrong = spec(&qcow, &scratch, 6, 0);
    wrong.geometry = DiskGeometry::new(SIZE as u64 + 1, ChunkSize::new(CHUNK as u64).unwrap()).unwrap();
    let e = load(&f.store, &wrong, &LoadProgress::default()).unwrap_err();
    assert!(matches!(e, DumpLoadError::SizeMismatch { format: ImageFormat::Qcow2, .. }), "{e}");
}

#[test]
fn dump_load_probe_refuses_bad_images() {
    let f = fixture();
    let g = geometry();
    let missing = f.dir.path().join("absent.raw");
    let e = probe(&missing, None, 0, &g).unwrap_err();
    assert!(matches!(e, DumpLoadError::NotFound { .. }), "{e}");
    assert!(e.to_string().contains(&missing.display().to_string()), "{e}");
    let e = probe(Path::new("disk.raw"), None, 0, &g).unwrap_err();
    assert!(matches!(e, DumpLoadError::RelativePath { .. }), "{e}");
    assert!(e.to_string().contains("disk.raw"), "{e}");
    let e = probe(f.dir.path(), None, 0, &g).unwrap_err();
    assert!(matches!(e, DumpLoadError::NotAFile { kind: "directory", .. }), "{e}");
    let other = DiskGeometry::new(SIZE as u64 * 2, g.chunk_size).unwrap();
    let e = probe(&f.image, None, 3, &other).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, DumpLoadError::SizeMismatch { .. }), "{e}");
    for part in [SIZE.to_string(), (SIZE * 2).to_string(), "disk 3".into(), f.image.display().to_string()] {
        assert!(msg.contains(&part), "{msg} lacks {part}");
    }
    let e = probe(&f.image, Some(ImageFormat::Qcow2), 0, &g).unwrap_err();
    assert!(
        matches!(e, DumpLoadError::FormatMismatch { given: ImageFormat::Qcow2, detected: ImageFormat::Raw, .. }),
        "{e}"
    );
    assert_eq!(probe(&f.image, Some(ImageFormat::Raw), 0, &g).unwrap().format, ImageFormat::Raw);
    assert_eq!("QCOW2".parse::<ImageFormat>(), Ok(ImageFormat::Qcow2));
    assert!("vmdk".parse::<ImageFormat>().unwrap_err().contains("raw or qcow2"));
}

#[test]
fn dump_load_cancelled_before_start() {
    let f = fixture();
    let progress = LoadProgress::default();
    progress.cancel.store(true, Ordering::Relaxed);
    let e = load(&f.store, &spec(&f.image, &f.scratch(), 5, 0), &progress).unwrap_err();
    assert!(matches!(e, DumpLoadError::Cancelled { .. }), "{e}");
    assert!(e.to_string().contains("cancelled"), "{e}");
    assert_eq!(progress.done.load(Ordering::Relaxed), 0);
}

#[test]
fn dump_load_refuses_committed_epochs() {
    let f = fixture();
    commit(&f.store, 5);
    let e = load(&f.store, &spec(&f.image, &f.scratch(), 5, 0), &LoadProgress::default()).unwrap_err();
    assert!(matches!(e, DumpLoadError::EpochNotOpen { epoch: 5, committed: 5, .. }), "{e}");
    let e = load(&f.store, &spec(&f.image, &f.scratch(), 5, 5), &LoadProgress::default()).unwrap_err();
    assert!(matches!(e, DumpLoadError::EpochBeforeBase { .. }), "{e}");
}
