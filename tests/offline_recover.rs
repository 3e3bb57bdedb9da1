//! Offline recovery: `drpair debug recover` reads a standby's store with no daemon running.
//!
//! A pair replicates a loop device; after a change a point is cut and exported online with the
//! CLI. While the standby runs, `debug recover` refuses (the store is in use, exit 4) and writes
//! nothing. Once the standby is killed, `debug recover` on its data dir gives the online
//! export byte for byte — which is the device as it was at the cut — and the baseline gives the
//! device before the change. Lookups of what is not there exit 3 and name what is.

use drpair_e2e::image::{Fill, copy_device, create_image, hash_file, pick_chunks};
use drpair_e2e::{AgentSpec, CliOut, LoopDev, MIB, Standby, TestEnv, step, wait_ready};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

const PAIR: &str = "offline-01";
const TOKEN: &str = "offline-recover-token";
const DISK_SIZE: u64 = 64 * MIB;
const CHUNK_LEN: usize = 64 << 10;
const CHUNK: u64 = CHUNK_LEN as u64;

/// Rewrites `chunks` of the device with random bytes, zeroes `zeroed`, and syncs.
fn change_device(dev: &Path, chunks: &[u64], zeroed: &[u64], seed: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(dev).expect("open device");
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = vec![0u8; CHUNK_LEN];
    for &c in chunks {
        rng.fill_bytes(&mut buf);
        f.write_all_at(&buf, c * CHUNK).expect("write chunk");
    }
    buf.fill(0);
    for &c in zeroed {
        f.write_all_at(&buf, c * CHUNK).expect("zero chunk");
    }
    f.sync_all().expect("sync device");
}

/// Asserts two files are equal byte for byte, naming the first difference.
fn assert_same_bytes(a: &Path, b: &Path) {
    let (x, y) = (std::fs::read(a).expect("read a"), std::fs::read(b).expect("read b"));
    assert_eq!(x.len(), y.len(), "{} and {} differ in length", a.display(), b.display());
    if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
        panic!("{} and {} differ first at byte {i} (chunk {})", a.display(), b.display(), i as u64 / CHUNK);
    }
}

/// `drpair debug recover` of `point` of disk 0 from `data_dir` into `out`, plus `extra` flags.
fn recover(sb: &Standby, point: &str, out: &Path, extra: &[&str]) -> CliOut {
    let (dir, out) = (sb.data_dir.display().to_string(), out.display().to_string());
    let mut args = vec!["debug", "recover", "--data-dir", &dir, "--pair", PAIR, "--point", point, "--disk", "0"];
    args.extend(["--out", &out]);
    args.extend(extra);
    sb.cli().run(&args)
}

#[test]
fn offline_recover_equals_online_export() {
    let env = TestEnv::new("offline-recover");
    let img = env.path("disk0.img");
    let original = create_image(&img, DISK_SIZE, Fill::Mixed, 41);
    let lo = LoopDev::attach(&img);
    let mut sb = Standby::start(&env, Some(TOKEN));
    let (api, cli) = (sb.api(), sb.cli());
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, Duration::from_secs(180));
    let baseline = api.points(PAIR)[0].id;

    // A change, then a point cut on request, exported online.
    let chunk_count = DISK_SIZE / CHUNK;
    let changed = pick_chunks(chunk_count, chunk_count / 20, 42);
    change_device(&lo.dev, &changed, &[1, chunk_count - 1], 43);
    let (len, source) = copy_device(&lo.dev, &env.path("source.ref"));
    assert_eq!(len, DISK_SIZE);
    assert_ne!(source, original, "the change changed nothing: the test would prove nothing");
    let created = cli.run(&["points", "create", PAIR, "--wait", "--output", "json"]);
    let id = created.ok().json()["point"]["id"].as_u64().expect("point id").to_string();
    let online = env.path("online.img");
    cli.run(&["points", "export", PAIR, &id, "--out", &online.display().to_string()]).ok();
    assert_eq!(hash_file(&online), (DISK_SIZE, source), "the online export of point {id} is not the source");

    // While the standby runs: refused, nothing written.
    let busy = env.path("busy.img");
    let out = recover(&sb, &id, &busy, &[]);
    out.expect_code(4);
    assert!(out.stderr.contains("is in use (is drpaird running?) — stop the standby first"), "{}", out.stderr);
    assert!(!busy.exists() && !env.path("busy.img.partial").exists(), "a refused recovery wrote a file");

    sb.kill9();
    step("standby killed; recovering from its data dir");
    let offline = env.path("offline.img");
    let out = recover(&sb, &id, &offline, &["--output", "json"]);
    let report = out.ok().json();
    assert_eq!(report["damaged_chunks"], 0, "{report}");
    assert_eq!(report["damaged"].as_array().map(Vec::len), Some(0), "{report}");
    assert_eq!((report["bytes"].as_u64(), report["chunks"].as_u64()), (Some(DISK_SIZE), Some(chunk_count)));
    assert_eq!(report["point"].as_u64().map(|p| p.to_string()), Some(id.clone()), "{report}");
    assert_same_bytes(&online, &offline);
    assert_eq!(report["blake3"], hash_file(&offline).1.to_hex().as_str(), "the report's blake3 is the file's");
    step(format!("point {id}: the offline recovery equals the online export"));

    // The newest point (text output) is the source too; the baseline is the device before.
    let latest = env.path("latest.img");
    let out = recover(&sb, "latest", &latest, &[]);
    assert!(out.ok().stdout.contains("Damaged:") && out.stdout.contains("none"), "{}", out.stdout);
    assert_eq!(hash_file(&latest), (DISK_SIZE, source));
    let base = env.path("baseline.img");
    recover(&sb, &baseline.to_string(), &base, &[]).ok();
    assert_eq!(hash_file(&base), (DISK_SIZE, original), "the baseline is not the device before the change");

    // An existing image is not overwritten without --force.
    let out = recover(&sb, &id, &offline, &[]);
    out.expect_code(1);
    assert!(out.stderr.contains("--force"), "{}", out.stderr);
    recover(&sb, &id, &offline, &["--force"]).ok();
    assert_same_bytes(&online, &offline);

    // What is not there exits 3 and names what is.
    let out = recover(&sb, "999999", &env.path("none.img"), &[]);
    assert!(out.expect_code(3).stderr.contains("has no recovery point 999999; nearest: "), "{}", out.stderr);
    let dir = sb.data_dir.display().to_string();
    let none = env.path("none.img").display().to_string();
    let out = cli.run(&["debug", "recover", "--data-dir", &dir, "--pair", "nope", "--point", "1", "--out", &none]);
    assert!(out.expect_code(3).stderr.contains(&format!("it holds: {PAIR}")), "{}", out.stderr);
    assert!(!env.path("none.img").exists());
}
