//! Recovery points on an S3-compatible object store (issue 23, first slice), on a real
//! 3-node garage cluster with replication factor 3 (`harness/garage.rs`).
//!
//! A standby with `store = "s3"` (packs of 4 MiB) and an agent protecting a loop device:
//! initial sync, then changes and several points; each point's export equals the device as
//! it was when the point was cut; a drill serves a point over NBD and `qemu-img compare`
//! finds it equal; verify re-reads every chunk from the bucket and finds nothing damaged;
//! the bucket holds packs (far fewer objects than chunks) and the standby's local store
//! holds no chunk bytes. Bad configs (no bucket, no endpoint, a missing credentials file)
//! are refused by `drpaird config check` with a message naming the key, and a standby
//! started with one exits before creating its data dir.
//!
//! Failures: every node stopped for 20 s while shipping (RECOVERABLE_ERROR naming the store,
//! resumes, nothing lost), and one node killed -9 during the initial sync (quorum: no failure).
//!
//! Skipped, saying so, when garage is not installed (`scripts/setup.sh` installs it).

use drpair_e2e::garage::Garage;
use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::maintenance::Maint;
use drpair_e2e::{AgentSpec, LoopDev, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PAIR: &str = "s3-pair";
const TOKEN: &str = "s3-store-token";
const SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const LONG: Duration = Duration::from_secs(180);
const BUCKET: &str = "drpair-points";

/// `[standby]` with `store = "s3"` on `garage` (node `node`'s S3 endpoint).
fn s3_config(env: &TestEnv, g: &Garage, node: usize) -> PathBuf {
    g.standby_config(env, node, "standby-s3.toml", "standby-a", "pack_size = \"4MiB\"\ncache = \"32MiB\"\n")
}

fn du(path: &Path) -> u64 {
    let out = Command::new("du").args(["-sb"]).arg(path).output().expect("du");
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

#[test]
fn points_on_a_garage_cluster_export_drill_and_verify() {
    let env = TestEnv::new("s3-store");
    let Some(g) = Garage::start(&env, "points_on_a_garage_cluster_export_drill_and_verify", BUCKET) else { return };
    let cfg = s3_config(&env, &g, 0);
    let check = Command::new(drpair_e2e::bin("drpaird")).args(["config", "check"]).arg(&cfg).output().unwrap();
    let said = String::from_utf8_lossy(&check.stdout).into_owned();
    assert!(check.status.success(), "config check: {said}{}", String::from_utf8_lossy(&check.stderr));
    assert!(said.contains("packs of 4 MiB") && !said.contains(&g.secret), "config check says: {said}");

    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Mixed, 23);
    let lo = LoopDev::attach(&img);
    let sb = Standby::start_with(&env, Some(TOKEN), &["--config", cfg.to_str().unwrap()]);
    let api = sb.api();
    let started = Instant::now();
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    step(format!("initial sync of {} MiB into garage: {:.1} s", SIZE / MIB, started.elapsed().as_secs_f64()));

    // Several points with changes between them; the device's hash at each cut.
    let mut points = vec![];
    for round in 0..3u64 {
        overwrite_chunks(&lo.dev, CHUNK, &pick_chunks(SIZE / CHUNK, 60, round), 100 + round);
        drpair_e2e::sh("sync", &[]);
        let p = api.create_point_wait(PAIR);
        let h = hash_file(&lo.dev).1;
        step(format!("point {} cut after round {round} of changes", p.id));
        points.push((p.id, h));
    }
    // More changes after the last point: the older points must not see them.
    overwrite_chunks(&lo.dev, CHUNK, &pick_chunks(SIZE / CHUNK, 60, 9), 999);
    for (id, h) in &points {
        assert_eq!(
            api.export_full(PAIR, &id.to_string(), 0, SIZE),
            *h,
            "point {id} differs from the device at its cut"
        );
    }
    step("every point's export equals the device as it was when cut");

    // A drill of the second point, compared by qemu-img over NBD with its export.
    let (drill_point, _) = points[1];
    let file = env.path("p-drill.raw");
    let http = drpair_e2e::api::http_agent(sb.ca_file().as_deref(), Duration::from_secs(300));
    let url = format!("{}/api/v1/pairs/{PAIR}/points/{drill_point}/disks/0/image", sb.url());
    let r = http.get(&url).header("Authorization", format!("Bearer {TOKEN}")).call().expect("export");
    std::io::copy(&mut r.into_body().into_reader(), &mut std::fs::File::create(&file).unwrap()).unwrap();
    let r = api.post(
        &format!("/api/v1/pairs/{PAIR}/drills"),
        "application/json",
        serde_json::json!({ "point": drill_point }).to_string().as_bytes(),
    );
    assert_eq!(r.status, 201, "drill: {}", r.text());
    let d = r.json();
    let uri = d["exports"][0]["uri"].as_str().expect("drill export uri").to_string();
    let out = Command::new("qemu-img").args(["compare", "-f", "raw", "-F", "raw", &uri]).arg(&file).output().unwrap();
    assert!(
        out.status.success(),
        "qemu-img compare of the drill with point {drill_point}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    step(format!(
        "drill {} of point {drill_point} ready in {} ms, equal to the point over NBD",
        d["id"], d["ready_ms"]
    ));
    let stop = api.post(&format!("/api/v1/drills/{}/stop", d["id"].as_str().unwrap()), "application/json", b"{}");
    assert!(stop.status < 300, "drill stop: {}", stop.text());

    // Verify re-reads every chunk from the bucket.
    let v = Maint::new(&sb, PAIR).verify_ok(None);
    assert_eq!(v.points_damaged, 0, "verify found damage: {v:?}");
    assert!(v.chunks_checked > 500, "verify read only {} chunks", v.chunks_checked);
    step(format!(
        "verify: {} chunks, {} MiB re-read from the bucket, nothing damaged",
        v.chunks_checked,
        v.bytes_checked / MIB
    ));

    // The bucket holds packs, not chunks; the local store holds no chunk bytes.
    let status = api.status_json(PAIR);
    let chunks = status["stats"]["chunks_received"].as_u64().unwrap_or(0);
    let objects = wait_until("garage to count the packs", Duration::from_secs(60), || match g.object_count() {
        0 => Err("0 objects".to_string()),
        n => Ok(n),
    });
    let local = du(&sb.data_dir.join("store"));
    step(format!(
        "bucket: {objects} objects ({}) for {chunks} chunks received ({} bytes shipped); local store {} KiB",
        g.size_text(),
        status["stats"]["bytes_shipped"].as_u64().unwrap_or(0),
        local >> 10
    ));
    assert!(chunks >= SIZE / CHUNK / 2, "chunks received: {status}");
    assert!(objects * 20 < chunks, "{objects} objects for {chunks} chunks: not packed");
    assert!(local < SIZE / 4, "the local store holds {local} bytes: chunk bytes did not go to the bucket");
    drop(agent);
}

#[test]
fn bad_object_store_configs_are_refused_and_change_nothing() {
    let env = TestEnv::new("s3-config");
    let creds = env.path("s3.credentials");
    std::fs::write(&creds, "access_key_id = \"GK1\"\nsecret_access_key = \"never-shown\"\n").unwrap();
    std::fs::set_permissions(&creds, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let data_dir = env.path("never-created");
    let body =
        |s3: &str| format!("[standby]\ndata_dir = \"{}\"\nstore = \"s3\"\n\n[standby.s3]\n{s3}", data_dir.display());
    let endpoint = "endpoint = \"http://127.0.0.1:1\"\n";
    let bucket = "bucket = \"b\"\n";
    let good_creds = format!("credentials_file = \"{}\"\n", creds.display());
    let cases = [
        ("no-bucket", body(&format!("{endpoint}{good_creds}")), "bucket: missing"),
        ("no-endpoint", body(&format!("{bucket}{good_creds}")), "endpoint: missing"),
        (
            "missing-credentials-file",
            body(&format!("{endpoint}{bucket}credentials_file = \"{}\"\n", env.path("nope").display())),
            "credentials_file: cannot read",
        ),
        ("no-credentials", body(&format!("{endpoint}{bucket}")), "credentials: missing"),
    ];
    for (name, text, want) in cases {
        let f = env.path(&format!("{name}.toml"));
        std::fs::write(&f, text).unwrap();
        let out = Command::new(drpair_e2e::bin("drpaird")).args(["config", "check"]).arg(&f).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success(), "{name} accepted: {said}");
        assert!(said.contains(want) && said.contains("[standby.s3]"), "{name}: '{said}' lacks '{want}'");
        assert!(!said.contains("never-shown"), "{name}: the secret shown: {said}");
        // The standby refuses to start with it, and creates nothing.
        let out = Command::new(drpair_e2e::bin("drpaird")).args(["standby", "--config"]).arg(&f).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(!out.status.success() && said.contains(want), "standby with {name}: {said}");
        assert!(!data_dir.exists(), "standby with {name} created its data dir");
        step(format!("{name}: refused ({want})"));
    }
}

/// The whole object store unreachable (every garage node stopped) for 20 s while the agent
/// ships: the pair shows RECOVERABLE_ERROR with a failure naming the store, the agent keeps
/// retrying, and once garage is back replication resumes; every point (older ones and one
/// cut after) exports equal to the device at its cut.
#[test]
fn the_whole_store_unreachable_for_20_s_while_shipping() {
    let env = TestEnv::new("s3-outage");
    let test = "the_whole_store_unreachable_for_20_s_while_shipping";
    let Some(mut g) = Garage::start(&env, test, BUCKET) else { return };
    let cfg = s3_config(&env, &g, 0);
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 7);
    let lo = LoopDev::attach(&img);
    let sb = Standby::start_with(&env, Some(TOKEN), &["--config", cfg.to_str().unwrap()]);
    let api = sb.api();
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let before = api.create_point_wait(PAIR);
    let before_hash = hash_file(&lo.dev).1;

    // Every node down; changes keep coming.
    g.kill_all();
    let down = Instant::now();
    step("garage: every node killed");
    let mut round = 0u64;
    let seen = wait_until("the pair to say the object store failed", Duration::from_secs(60), || {
        round += 1;
        overwrite_chunks(&lo.dev, CHUNK, &pick_chunks(SIZE / CHUNK, 20, 1000 + round), 2000 + round);
        let s = api.status_json(PAIR);
        let failures = s["failure_messages"].to_string();
        match (s["stop_reason"].as_str(), failures.contains("object store s3 http://")) {
            (Some("RECOVERABLE_ERROR"), true) => Ok(s),
            _ => Err(format!("stop_reason {}, failures {failures}", s["stop_reason"])),
        }
    });
    step(format!(
        "after {:.1} s: {} / {}",
        down.elapsed().as_secs_f64(),
        seen["stop_reason"],
        seen["failure_messages"][0]
    ));
    assert!(agent.is_running(), "the agent gave up while the store was down:\n{}", agent.tail(20));
    while down.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(500));
    }
    g.start_all();
    step("garage: every node started again");
    let after = wait_until("a point committed after the outage", LONG, || {
        let s = api.status_json(PAIR);
        if s["agent"]["connected"] != true {
            return Err(format!("not connected: {}", s["stop_reason"]));
        }
        let r = api.post(
            &format!("/api/v1/pairs/{PAIR}/points"),
            "application/json",
            br#"{"wait":true,"timeout_seconds":30}"#,
        );
        match (r.status, r.json()["point"]["id"].as_u64()) {
            (200, Some(id)) => Ok(id),
            _ => Err(format!("points create: {} {}", r.status, r.text())),
        }
    });
    let after_hash = hash_file(&lo.dev).1;
    assert_eq!(
        api.export_full(PAIR, &before.id.to_string(), 0, SIZE),
        before_hash,
        "point {} before the outage",
        before.id
    );
    assert_eq!(api.export_full(PAIR, &after.to_string(), 0, SIZE), after_hash, "point {after} after the outage");
    let v = Maint::new(&sb, PAIR).verify_ok(None);
    assert_eq!(v.points_damaged, 0, "verify after the outage: {v:?}");
    step(format!(
        "resumed: point {after} equals the device; verify found nothing damaged in {} chunks",
        v.chunks_checked
    ));
    drop(agent);
}

/// One garage node killed -9 (not the one the standby talks to) during the initial sync:
/// with replication factor 3, writes still reach a quorum of 2, so replication goes on with
/// no failure shown for the pair, and every point exports equal to the device.
#[test]
fn one_garage_node_killed_during_the_initial_sync() {
    let env = TestEnv::new("s3-node-down");
    let test = "one_garage_node_killed_during_the_initial_sync";
    let Some(mut g) = Garage::start(&env, test, BUCKET) else { return };
    let cfg = s3_config(&env, &g, 0);
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 11);
    let lo = LoopDev::attach(&img);
    let sb = Standby::start_with(&env, Some(TOKEN), &["--config", cfg.to_str().unwrap()]);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]);
    // About 4 s of initial sync, so the kill lands in its middle.
    spec.throttle_bps = Some(16 * MIB);
    let mut agent = spec.spawn(&env, "agent");
    drpair_e2e::pair::wait_status(&api, PAIR, Some(&mut agent), "the initial sync under way", LONG, |s| {
        s.state == drpair_types::PairState::InitialSync && s.stats.progress_percent >= 10.0
    });
    g.nodes[2].proc.kill9();
    step("garage node 2 killed -9 during the initial sync");
    let ready = drpair_e2e::pair::wait_status(&api, PAIR, Some(&mut agent), "ready for failover", LONG, |s| {
        assert!(s.failure_messages.is_empty(), "a failure shown with one node down: {:?}", s.failure_messages);
        s.ready_for_failover
    });
    assert!(ready.failure_messages.is_empty(), "{:?}", ready.failure_messages);
    let mut points = vec![];
    for round in 0..2u64 {
        overwrite_chunks(&lo.dev, CHUNK, &pick_chunks(SIZE / CHUNK, 40, 50 + round), 500 + round);
        let p = api.create_point_wait(PAIR);
        points.push((p.id, hash_file(&lo.dev).1));
    }
    for (id, h) in &points {
        assert_eq!(api.export_full(PAIR, &id.to_string(), 0, SIZE), *h, "point {id} with a node down");
    }
    let v = Maint::new(&sb, PAIR).verify_ok(None);
    assert_eq!(v.points_damaged, 0, "verify with a node down: {v:?}");
    assert!(api.status_json(PAIR)["failure_messages"].as_array().is_none_or(|a| a.is_empty()));
    step(format!(
        "with a node down: {} points equal, verify clean over {} chunks, no failure shown",
        points.len(),
        v.chunks_checked
    ));
    drop(agent);
}
