//! Hostile dump images: whatever a file given to `load-dump` holds (garbage, a truncated or
//! corrupted qcow2 header, a raw image of the wrong size), probing it refuses it with a reason or
//! describes it, never panics. qcow2 files go through `qemu-img info`, so this runs a hundredth
//! of `DRPAIR_FUZZ_CASES` (default 256 → 3).

use super::format::ImageFormat;
use super::image::probe;
use drpair_types::{ChunkSize, DiskGeometry};
use proptest::prelude::*;

fn cases() -> u32 {
    let n: u32 = std::env::var("DRPAIR_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256);
    (n / 100).max(3)
}

/// A valid qcow2 image of 1 MiB (made by qemu-img), or none where qemu-img is missing.
fn qcow2_sample(dir: &std::path::Path) -> Option<Vec<u8>> {
    let p = dir.join("sample.qcow2");
    let ok = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&p)
        .arg("1M")
        .status()
        .is_ok_and(|s| s.success());
    ok.then(|| std::fs::read(&p).expect("sample"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_file_is_probed_without_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..4096),
        qcow2_magic in any::<bool>(),
        edits in proptest::collection::vec((0usize..512, any::<u8>()), 0..8),
        format in prop_oneof![Just(None), Just(Some(ImageFormat::Raw)), Just(Some(ImageFormat::Qcow2))],
    ) {
        let d = tempfile::tempdir().unwrap();
        let mut content = if qcow2_magic { qcow2_sample(d.path()).unwrap_or_default() } else { bytes.clone() };
        if content.is_empty() {
            content = bytes;
        }
        for (i, b) in edits {
            if !content.is_empty() {
                let n = content.len();
                content[i % n] = b;
            }
        }
        let f = d.path().join("image");
        std::fs::write(&f, &content).unwrap();
        let g = DiskGeometry::new(1 << 20, ChunkSize::new(65536).unwrap()).unwrap();
        let _ = probe(&f, format, 0, &g);
    }
}
