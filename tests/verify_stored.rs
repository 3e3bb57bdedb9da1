//! A corrupted chunk on disk is found by verify and named.
//!
//! A loop device of compressible text, traced by the tracefs tracker, gets one 64 KiB chunk
//! of random bytes (incompressible, so stored verbatim in a blob file of the standby's
//! rocksdb) and a point P1 is cut; the chunk is then rewritten and P2 cut. With the standby
//! stopped cleanly (flushed), the chunk's bytes are found in `store/*.blob` and one byte in
//! its middle is inverted. After a restart, `POST …/verify` finds exactly that chunk damaged,
//! names disk, chunk index and hash, and the point that sees it (P1); P1 carries `damage`, the
//! baseline and P2 (which do not see that chunk version) are marked `verified_at`; status,
//! `GET …/verify` and `/metrics` agree. The export of P1 is cut short rather than deliver the
//! damaged bytes; the others still equal the source. Refusals: an unknown point (404), an
//! unknown pair (404), a second verify while one runs (409).

use drpair_e2e::api::metric_value;
use drpair_e2e::image::hash_file;
use drpair_e2e::maintenance::{Maint, find_in_files, flip_byte, verify_status};
use drpair_e2e::tracking::{AlignedBuf, TraceInstance};
use drpair_e2e::{AgentSpec, LoopDev, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{VerifyState, VerifyStatus};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::Duration;

const PAIR: &str = "verify-stored";
const SIZE: u64 = 256 * MIB;
/// The first 192 MiB hold distinct compressible text (so a verify has thousands of chunks to
/// read, decompress and hash); the rest is zero.
const TEXT: u64 = 192 * MIB;
const CHUNK: u64 = 64 << 10;
/// The same sizes as buffer lengths.
const CHUNK_LEN: usize = 64 << 10;
const MIB_LEN: usize = 1 << 20;
/// The chunk that gets random bytes, then is damaged in the store.
const VICTIM: u64 = 1234;
/// A 4 KiB window in the middle of the chunk, searched for in the blob files.
const WINDOW: std::ops::Range<usize> = 30 * 1024..34 * 1024;
const LONG: Duration = Duration::from_secs(180);

/// Fills `0..TEXT` of `path` with text lines that differ from chunk to chunk.
fn write_text(path: &Path) {
    let f = OpenOptions::new().create(true).write(true).truncate(true).open(path).expect("image");
    f.set_len(SIZE).expect("size");
    let mut buf = Vec::with_capacity(MIB_LEN + 256);
    let mut off = 0u64;
    let mut line = 0u64;
    while off < TEXT {
        buf.clear();
        while buf.len() < MIB_LEN {
            buf.extend_from_slice(format!("{line:010} the quick brown fox jumps over the lazy dog\n").as_bytes());
            line += 1;
        }
        f.write_all_at(&buf[..MIB_LEN], off).expect("write text");
        off += MIB;
    }
    f.sync_all().expect("sync");
}

/// Writes one chunk of seeded random bytes at chunk `chunk` of `dev` (O_DIRECT, synced);
/// returns the bytes.
fn write_random_chunk(dev: &Path, chunk: u64, seed: u64) -> Vec<u8> {
    let f = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(dev).expect("open device O_DIRECT");
    let mut buf = AlignedBuf::new(CHUNK_LEN);
    StdRng::seed_from_u64(seed).fill_bytes(buf.as_mut());
    f.write_all_at(buf.as_mut(), chunk * CHUNK).expect("write chunk");
    f.sync_all().expect("fsync");
    buf.as_mut().to_vec()
}

/// Polls `GET …/verify` until no verification runs; returns the last status.
fn wait_verify_idle(m: &Maint) -> VerifyStatus {
    drpair_e2e::wait_until("the verification to finish", LONG, || {
        let s = verify_status(&m.verify_status());
        if s.state == VerifyState::Running { Err(format!("{:.1}% done", s.progress_percent)) } else { Ok(s) }
    })
}

#[test]
fn verify_finds_a_corrupted_chunk() {
    let env = TestEnv::new("verify-stored");
    let img = env.path("disk0.img");
    write_text(&img);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(PAIR);
    let mut sb = Standby::start_with(&env, None, &["--prune-interval", "0", "--verify-interval", "0"]);
    let api = sb.api();
    let m = Maint::new(&sb, PAIR);
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.chunk_size = Some(CHUNK);
    spec.compression = Some("zstd:1".into());
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let baseline = api.points(PAIR)[0].clone();
    let ref_b = hash_file(&img).1;

    // P1 sees the random chunk; P2 sees another version of it.
    let random = write_random_chunk(&lo.dev, VICTIM, 77);
    let p1 = api.create_point_wait(PAIR);
    let ref1 = hash_file(&img).1;
    write_random_chunk(&lo.dev, VICTIM, 78);
    let p2 = api.create_point_wait(PAIR);
    let ref2 = hash_file(&img).1;
    step(format!("baseline {}, P1 {} (random chunk {VICTIM}), P2 {} (chunk rewritten)", baseline.id, p1.id, p2.id));
    assert!(p1.sizes.changed_chunks >= 1 && p2.sizes.changed_chunks >= 1, "points without the change: {p1:?} {p2:?}");
    assert_eq!(api.export_full(PAIR, &p1.id.to_string(), 0, SIZE), ref1, "P1 does not hold the random chunk");
    let victim_hash = blake3::hash(&random).to_hex().to_string();

    // Before any damage, a verification of everything finds every point intact.
    let clean = m.verify_ok(None);
    assert_eq!(clean.state, VerifyState::Done, "{clean:?}");
    assert_eq!((clean.points_verified, clean.points_damaged), (3, 0), "{clean:?}");
    assert!(clean.damaged.is_empty() && clean.chunks_checked >= TEXT / CHUNK, "{clean:?}");

    // Stop cleanly (flushes), damage the chunk's bytes in the blob file, start again.
    sb.term();
    let store = sb.data_dir.join("store");
    let found = find_in_files(&store, ".blob", &random[WINDOW]);
    assert!(
        !found.is_empty(),
        "the random chunk's bytes are in no blob file of {} (stored compressed, or not in a blob file?)",
        store.display()
    );
    for (file, off) in &found {
        let at = off + 2048;
        let old = flip_byte(file, at);
        step(format!("inverted byte {at} of {} (was {old:#04x})", file.display()));
    }
    sb.restart();
    wait_connected(&api, PAIR, true, LONG);

    // Refusals: an unknown point or pair, a malformed body.
    m.verify(Some(p2.id + 1_000_000), true).assert_error(404, "PointNotFound");
    m.for_pair("no-such-pair").verify(None, true).assert_error(404, "PairNotFound");
    m.post("/verify", &serde_json::json!({"point": "x"})).assert_error(400, "InvalidParameter");

    // A second verification while one runs is refused.
    let first = m.verify(None, false);
    assert_eq!(first.status, 202, "verify without wait: {}", first.text());
    let second = m.verify(None, false);
    match second.status {
        409 => {
            let j = second.assert_error(409, "InvalidPairState");
            step(format!("a second verify while one runs: 409 ({})", j["message"]));
        }
        202 => step("SKIPPED the 409 check: the first verification ended before the second request"),
        s => panic!("second verify: HTTP {s}: {}", second.text()),
    }
    wait_verify_idle(&m);

    // The verification names the damaged chunk and the point that sees it. (The agent may
    // have cut an empty point on reconnecting: every point but P1 is intact.)
    let all = api.points(PAIR).len() as u64;
    let v = m.verify_ok(None);
    step(format!("verify: {}", v.message));
    assert_eq!(v.state, VerifyState::Done, "{v:?}");
    assert_eq!(v.point, None, "{v:?}");
    assert!(v.finished_unix_ms.is_some() && v.progress_percent == 100.0, "{v:?}");
    assert_eq!(v.points_damaged, 1, "only P1 sees the damaged chunk: {v:?}");
    assert_eq!(v.points_verified, all - 1, "every point but P1 is intact: {v:?}");
    assert_eq!(v.damaged.len(), 1, "exactly one chunk was damaged: {:?}", v.damaged);
    let d = &v.damaged[0];
    assert_eq!((d.disk, d.chunk), (0, VICTIM), "{d:?}");
    assert_eq!(d.hash, victim_hash, "the damaged entry names another chunk: {d:?}");
    assert_eq!(d.points, vec![p1.id], "{d:?}");
    assert!(!d.reason.is_empty() && d.reason != "missing", "{d:?}");
    assert!(v.chunks_checked >= TEXT / CHUNK, "{v:?}");
    assert_eq!(verify_status(&m.verify_status()), v, "GET verify differs from the answer of POST verify");

    // The points carry the result.
    let points = api.points(PAIR);
    let bad = points.iter().find(|p| p.id == p1.id).expect("P1 is listed").clone();
    let dmg = bad.damage.as_ref().unwrap_or_else(|| panic!("P1 carries no damage: {bad:?}"));
    assert_eq!(dmg.chunks, 1, "{dmg:?}");
    assert_eq!((dmg.sample[0].disk, dmg.sample[0].chunk), (0, VICTIM), "{dmg:?}");
    assert!(!dmg.found_at.is_empty(), "{dmg:?}");
    assert_eq!(points.len() as u64, all, "points came or went during the verification");
    for p in points.iter().filter(|p| p.id != p1.id) {
        assert!(p.verified_at.is_some() && p.damage.is_none(), "point {} should be verified and intact: {p:?}", p.id);
    }
    assert!(points.iter().any(|p| p.id == baseline.id) && points.iter().any(|p| p.id == p2.id));
    let s = api.status_json(PAIR);
    assert_eq!(s["verify"]["points_damaged"], 1, "status verify: {}", s["verify"]);
    assert_eq!(s["verify"]["damaged"][0]["chunk"], VICTIM, "status verify: {}", s["verify"]);
    let metrics = api.metrics();
    let gauge = metric_value(&metrics, &format!("drpair_verify_damaged_points{{pair=\"{PAIR}\"}}"));
    assert!(gauge.is_some_and(|g| g >= 1.0), "drpair_verify_damaged_points for {PAIR}: {gauge:?}");
    let log = sb.proc.log_of_last_start();
    assert!(
        log.lines().any(|l| l.contains("verification") && l.contains(&format!("chunk={VICTIM}"))),
        "the standby's log does not name the damaged chunk"
    );

    // Exports: P1 is cut short instead of delivering damaged bytes; the others are intact.
    let e = api.export(PAIR, &p1.id.to_string(), 0);
    assert!(
        e.status != 200 || e.error.is_some() || e.len < SIZE,
        "the export of P1 delivered all {} bytes without an error although chunk {VICTIM} is damaged",
        e.len
    );
    step(format!("export of P1: HTTP {}, {} bytes, error {:?}", e.status, e.len, e.error.or(e.error_body)));
    assert_eq!(api.export_full(PAIR, &baseline.id.to_string(), 0, SIZE), ref_b, "baseline differs from the source");
    assert_eq!(api.export_full(PAIR, &p2.id.to_string(), 0, SIZE), ref2, "P2 differs from the source");

    // One point at a time: P2 intact, P1 damaged; the marks of the others stay.
    let v2 = m.verify_ok(Some(p2.id));
    assert_eq!(
        (v2.state, v2.point, v2.points_verified, v2.points_damaged),
        (VerifyState::Done, Some(p2.id), 1, 0),
        "{v2:?}"
    );
    let v1 = m.verify_ok(Some(p1.id));
    assert_eq!((v1.state, v1.points_verified, v1.points_damaged), (VerifyState::Done, 0, 1), "{v1:?}");
    assert_eq!(v1.damaged.first().map(|d| d.chunk), Some(VICTIM), "{v1:?}");
    assert!(m.point_ok(p1.id).damage.is_some(), "P1 lost its damage mark");
    assert!(m.point_ok(baseline.id).verified_at.is_some(), "the baseline lost its verified mark");
    assert!(agent.is_running(), "the agent died:\n{}", agent.tail(30));
}
