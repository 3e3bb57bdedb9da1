//! Failover drills (issue "Failover drills, failover and failback", part 1): a recovery point
//! served as a writable, throw-away NBD export, checked with real NBD clients.
//!
//! An agent replicates a 64 MiB random image, cutting a point every second; two manual points
//! P1 and P2 are cut with different contents. Then:
//! - a drill of P1 and one of P2 run at once; `qemu-img compare` finds each export equal to
//!   the API's export of its point; replication keeps committing points meanwhile;
//! - `qemu-io` writes into P1's drill and reads its writes back; the point itself (its export)
//!   is unchanged; the drill's overlay counts the written chunks;
//! - the drill's check command runs with the exports in its environment (`qemu-img info`),
//!   and its result is recorded; the points are tagged `tested_at`; the drills are listed with
//!   their evidence (point age, ready time, operator);
//! - a stopped drill no longer serves and leaves no scratch files; a drill with a 5 s TTL
//!   expires by itself;
//! - refusals, changing nothing: a point that does not exist (or retention removed), two ways
//!   of choosing a point, a TTL out of range, an empty check, an unknown pair or drill, a
//!   second stop.
//!
//! And an ext4 disk's drill seen by the kernel: `nbdfuse` + a loop device, `fsck.ext4 -n`
//! clean, a read-only mount showing the files as at the point.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::maintenance::{Maint, prune_report};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use drpair_types::{DrillState, DrillStatus};
use serde_json::json;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

const PAIR: &str = "drill";
const SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const LONG: Duration = Duration::from_secs(120);

fn post(api: &Api, path: &str, body: serde_json::Value) -> drpair_e2e::Reply {
    api.post(path, "application/json", body.to_string().as_bytes())
}

fn start(api: &Api, body: serde_json::Value) -> DrillStatus {
    let r = post(api, &format!("/api/v1/pairs/{PAIR}/drills"), body);
    assert_eq!(r.status, 201, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn drill(api: &Api, id: &str) -> DrillStatus {
    let r = api.get(&format!("/api/v1/drills/{id}"));
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn qemu(cmd: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// The API's export of `point` written to `file`.
fn export_to(api: &Api, sb: &Standby, point: u64, file: &Path) {
    let url = format!("{}/api/v1/pairs/{PAIR}/points/{point}/disks/0/image", sb.url());
    let http = drpair_e2e::api::http_agent(sb.ca_file().as_deref(), std::time::Duration::from_secs(900));
    let r = http.get(&url).header("Authorization", "Bearer drill-token").call().expect("export");
    let mut f = std::fs::File::create(file).unwrap();
    std::io::copy(&mut r.into_body().into_reader(), &mut f).unwrap();
    assert_eq!(std::fs::metadata(file).unwrap().len(), SIZE);
    let _ = api;
}

#[test]
fn drills_serve_points_over_nbd_and_leave_evidence() {
    let env = TestEnv::new("drills");
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 5);
    let mut sb = Standby::start(&env, Some("drill-token"));
    let api = sb.api();
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&img]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let p1 = api.create_point_wait(PAIR);
    let h1 = hash_file(&img).1;
    overwrite_chunks(&img, CHUNK, &pick_chunks(SIZE / CHUNK, 40, 1), 9);
    let p2 = api.create_point_wait(PAIR);
    let h2 = hash_file(&img).1;
    assert_ne!(h1, h2);
    let (e1, e2) = (env.path("p1.raw"), env.path("p2.raw"));
    export_to(&api, &sb, p1.id, &e1);
    export_to(&api, &sb, p2.id, &e2);
    assert_eq!((hash_file(&e1).1, hash_file(&e2).1), (h1, h2), "exports equal the source at each cut");

    // Refusals first: nothing starts, nothing is pinned.
    let base = format!("/api/v1/pairs/{PAIR}/drills");
    post(&api, &base, json!({"point": 999_999})).assert_error(404, "PointNotFound");
    let e = post(&api, &base, json!({"point": p1.id, "latest": true})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "point");
    let e = post(&api, &base, json!({"ttl_seconds": 1})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "ttl_seconds");
    let e = post(&api, &base, json!({"check": "  "})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "check");
    post(&api, &base, json!({"pont": 1})).assert_error(400, "InvalidParameter");
    post(&api, "/api/v1/pairs/nobody/drills", json!({})).assert_error(404, "PairNotFound");
    api.get("/api/v1/drills/nope").assert_error(404, "NotFound");
    post(&api, "/api/v1/drills/nope/stop", json!({})).assert_error(404, "NotFound");
    let listed: Vec<DrillStatus> = serde_json::from_slice(&api.get(&base).body).unwrap();
    assert!(listed.is_empty(), "a refused drill left a record: {listed:?}");
    step("refusals: unknown point (404), point and latest, TTL, empty check, unknown field, pair, drill");

    // Two drills at once, of different points.
    let d1 = start(
        &api,
        json!({"point": p1.id, "ttl_seconds": 600, "operator": "e2e", "check": "qemu-img info \"$DRPAIR_DRILL_NBD_0\""}),
    );
    let d2 = start(&api, json!({"point": p2.id}));
    step(format!(
        "drills ready in {:.2} ms and {:.2} ms: {} and {}",
        d1.ready_ms, d2.ready_ms, d1.exports[0].uri, d2.exports[0].uri
    ));
    assert_eq!((d1.state, d1.point, d1.operator.as_str()), (DrillState::Running, p1.id, "e2e"));
    assert!(d1.point_age_seconds > 0.0 && d1.point_age_seconds < 60.0, "P1's age when the drill started: {d1:?}");
    for (d, file) in [(&d1, &e1), (&d2, &e2)] {
        let (ok, out) =
            qemu("qemu-img", &["compare", "-f", "raw", "-F", "raw", &d.exports[0].uri, file.to_str().unwrap()]);
        assert!(ok, "qemu-img compare of drill {} with point {}: {out}", d.id, d.point);
    }
    step("qemu-img compare: each drill export equals the export of its point");

    // The exports trust nobody who lacks the drill's secret, and ended clients leave nothing.
    let plain = d1.exports[0].uri.rsplit_once('/').map(|(base, _)| format!("{base}/disk0")).unwrap();
    let (ok, out) = qemu("qemu-img", &["info", &plain]);
    assert!(!ok, "an export named without the drill's secret was served: {out}");
    let fds = |sb: &Standby| std::fs::read_dir(format!("/proc/{}/fd", sb.proc.pid().unwrap())).unwrap().count();
    let addr: std::net::SocketAddr = d1.exports[0].uri["nbd://".len()..].split('/').next().unwrap().parse().unwrap();
    let before = fds(&sb);
    for _ in 0..1000 {
        drop(std::net::TcpStream::connect(addr).expect("connect to the drill"));
    }
    std::thread::sleep(Duration::from_millis(500));
    let after = fds(&sb);
    assert!(after < before + 20, "1000 ended NBD clients left {} descriptors open", after - before);
    // A client that never finishes its handshake is closed after 10 s.
    let mut idle = std::net::TcpStream::connect(addr).unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let t = std::time::Instant::now();
    let mut buf = [0u8; 256];
    while std::io::Read::read(&mut idle, &mut buf).map(|n| n > 0).unwrap_or(false) {}
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "idle handshake closed after {waited:?}"
    );
    step(format!(
        "exports need the drill's secret; 1000 ended clients: {before} → {after} descriptors; an idle handshake closed after {waited:.1?}"
    ));

    // Writes land in the drill only.
    let uri = &d1.exports[0].uri;
    let (ok, out) = qemu(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0x5a 0 1M",
            "-c",
            "write -P 0x33 3000000 5000",
            "-c",
            "read -P 0x5a 0 1M",
            "-c",
            "read -P 0x33 3000000 5000",
            uri,
        ],
    );
    assert!(ok && !out.contains("verification failed"), "qemu-io: {out}");
    let (ok, _) = qemu("qemu-img", &["compare", "-f", "raw", "-F", "raw", uri, e1.to_str().unwrap()]);
    assert!(!ok, "the drill shows its writes");
    let now = drill(&api, &d1.id);
    assert_eq!(
        now.exports[0].written_chunks,
        16 + 1,
        "1 MiB = 16 chunks; 5000 bytes at 3000000 fall in chunk 45: {now:?}"
    );
    assert_eq!(api.export_full(PAIR, &p1.id.to_string(), 0, SIZE), h1, "the point is unchanged by the drill's writes");
    step("qemu-io wrote into the drill and read it back; point P1 is unchanged");

    // Replication goes on during the drills.
    let before = api.status(PAIR).last_point.unwrap().id;
    wait_until("a new point during the drills", LONG, || {
        let now = api.status(PAIR).last_point.unwrap().id;
        if now > before + 1 { Ok(now) } else { Err(format!("newest {now}")) }
    });

    // The check ran against the export; the evidence is kept.
    let checked = wait_until("the drill's check", LONG, || {
        let d = drill(&api, &d1.id);
        match &d.check {
            Some(c) if c.passed.is_some() => Ok(d),
            other => Err(format!("{other:?}")),
        }
    });
    let c = checked.check.as_ref().unwrap();
    assert_eq!((c.exit_code, c.passed), (Some(0), Some(true)), "{c:?}");
    assert!(c.output.contains("virtual size: 64 MiB"), "{c:?}");
    for p in [p1.id, p2.id] {
        let pt = api.points(PAIR).into_iter().find(|x| x.id == p).expect("point kept");
        assert!(pt.tested_at.is_some(), "point {p} tagged tested: {pt:?}");
    }
    let running: Vec<DrillStatus> = serde_json::from_slice(&api.get("/api/v1/drills").body).unwrap();
    assert_eq!(running.len(), 2);
    step(format!("check passed ({:?} ms); points tagged tested; 2 drills running", c.duration_ms));

    // Retention goes on and keeps what drills use: a policy keeping only the newest point
    // prunes everything else but the baseline and the two drilled points; a drill of a pruned
    // point is refused.
    let m = Maint::new(&sb, PAIR);
    assert_eq!(m.set_retention(&json!({"grid": "1x1s", "keep_last": 1})).status, 200);
    let rep = prune_report(&m.prune(false));
    let reason = |id: u64| rep.kept.iter().find(|k| k.id == id).map(|k| k.reason.clone());
    assert_eq!(reason(p1.id).as_deref(), Some("pinned_drill"), "{rep:?}");
    assert_eq!(reason(p2.id).as_deref(), Some("pinned_drill"), "{rep:?}");
    let gone = rep.removed.first().expect("the prune removed points").id;
    let e = post(&api, &base, json!({"point": gone})).assert_error(404, "PointNotFound");
    assert!(e["message"].as_str().unwrap().contains("removed by retention"), "{e}");
    step(format!(
        "prune during the drills: {} removed, P1 and P2 kept as pinned_drill; a drill of pruned point {gone} is refused",
        rep.removed.len()
    ));

    // Stop: the export goes away with its overlay; a second stop is refused.
    let r = post(&api, &format!("/api/v1/drills/{}/stop", d1.id), json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let stopped: DrillStatus = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(stopped.state, DrillState::Stopped);
    assert!(stopped.ended_at.is_some());
    let (ok, out) = qemu("qemu-img", &["info", uri]);
    assert!(!ok, "a stopped drill still serves: {out}");
    assert!(!sb.data_dir.join("drills").join(&d1.id).exists(), "the overlay is deleted");
    post(&api, &format!("/api/v1/drills/{}/stop", d1.id), json!({})).assert_error(409, "InvalidPairState");
    assert_eq!(api.export_full(PAIR, &p1.id.to_string(), 0, SIZE), h1);
    step("stopped: the export is gone, the overlay deleted, a second stop refused (409)");

    // A short TTL ends a drill by itself.
    let d3 = start(&api, json!({"latest": true, "ttl_seconds": 5}));
    let expired = wait_until("the TTL to end the drill", Duration::from_secs(30), || {
        let d = drill(&api, &d3.id);
        if d.state == DrillState::Expired { Ok(d) } else { Err(format!("{:?}", d.state)) }
    });
    assert!(expired.ended_at.is_some());
    let history: Vec<DrillStatus> = serde_json::from_slice(&api.get(&base).body).unwrap();
    let states: Vec<_> = history.iter().map(|d| (d.id.as_str(), d.state)).collect();
    assert_eq!(
        states,
        vec![
            (d3.id.as_str(), DrillState::Expired),
            (d2.id.as_str(), DrillState::Running),
            (d1.id.as_str(), DrillState::Stopped)
        ]
    );
    step("a 5 s TTL expired the third drill; the pair's drill history lists all three, newest first");

    // The CLI: start, list, report, stop; a refusal exits non-zero with the API's words.
    let cli = sb.cli();
    let out = cli.run(&["drill", "start", PAIR, "--point", &p2.id.to_string(), "--ttl", "10m"]);
    out.ok();
    assert!(out.stdout.contains("nbd://127.0.0.1:") && out.stdout.contains("(running)"), "{}", out.stdout);
    let listed = cli.run(&["drill", "list", "--output", "json"]);
    let ids: Vec<String> =
        listed.ok().json().as_array().unwrap().iter().map(|d| d["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 2, "d2 and the CLI's drill: {ids:?}");
    let report = cli.run(&["drill", "report", PAIR]);
    report.ok();
    for needle in ["expired", "stopped", "running", "passed", "e2e"] {
        assert!(report.stdout.contains(needle), "{needle} in the report:\n{}", report.stdout);
    }
    for id in &ids {
        cli.run(&["drill", "stop", id]).ok();
    }
    let refused = cli.run(&["drill", "start", PAIR, "--point", "999999"]);
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("does not exist"), "{}", refused.stderr);
    let left: Vec<DrillStatus> = serde_json::from_slice(&api.get("/api/v1/drills").body).unwrap();
    assert!(left.is_empty(), "{left:?}");
    assert!(std::fs::read_dir(sb.data_dir.join("drills")).unwrap().next().is_none(), "no overlay left behind");
    step("CLI: drill start, list, report (all three states, the check, the operator), stop; a refusal exits non-zero");

    // A standby killed during a drill: after its restart the drill is recorded as failed and
    // its overlay is gone; the point is no longer pinned by it.
    let d5 = start(&api, json!({"point": p2.id}));
    sb.kill9();
    sb.restart();
    let after = drill(&api, &d5.id);
    assert_eq!(after.state, DrillState::Failed, "{after:?}");
    assert!(after.message.contains("standby stopped"), "{after:?}");
    assert!(!sb.data_dir.join("drills").exists(), "overlays of the killed standby's drills are removed");
    let running: Vec<DrillStatus> = serde_json::from_slice(&api.get("/api/v1/drills").body).unwrap();
    assert!(running.is_empty(), "{running:?}");
    step("kill -9 of the standby during a drill: recorded as failed after the restart, overlay removed");
    agent.term(Duration::from_secs(30));
}

/// Runs `cmd args`, asserting success; its output.
fn must(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{cmd} {args:?}: {text}");
    text
}

/// An ext4 disk's drill, seen by the kernel: `nbdfuse` makes the export a file, a loop device
/// makes it a block device, `fsck.ext4 -n` finds the filesystem clean and a read-only mount
/// shows the files as they were at the point.
#[test]
fn an_ext4_drill_checks_clean_and_mounts_through_nbdfuse() {
    let env = TestEnv::new("drill-ext4");
    let files = env.mkdir("files");
    std::fs::write(files.join("hello.txt"), "written before the point\n").unwrap();
    let blob: Vec<u8> = (0..3 << 20).map(|i: u32| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    std::fs::write(files.join("blob.bin"), &blob).unwrap();
    let img = env.path("ext4.img");
    must("mkfs.ext4", &["-q", "-F", "-d", files.to_str().unwrap(), img.to_str().unwrap(), "64M"]);
    let sb = Standby::start(&env, Some("drill-token"));
    let api = sb.api();
    let mut agent = AgentSpec::new(&env, &sb, "ext4", &[&img]).spawn(&env, "agent");
    wait_ready(&api, "ext4", &mut agent, LONG);
    let r = post(&api, "/api/v1/pairs/ext4/drills", json!({"latest": true, "check": "true"}));
    assert_eq!(r.status, 201, "{}", r.text());
    let d: DrillStatus = serde_json::from_slice(&r.body).unwrap();

    let mnt = env.mkdir("fuse");
    let pidfile = env.path("nbdfuse.pid");
    let mut fuse = Command::new("nbdfuse")
        .args(["-P", pidfile.to_str().unwrap(), mnt.to_str().unwrap(), &d.exports[0].uri])
        .spawn()
        .expect("nbdfuse (apt-get install nbdfuse)");
    wait_until("nbdfuse to serve", Duration::from_secs(20), || {
        if pidfile.exists() && mnt.join("nbd").exists() { Ok(()) } else { Err("not yet".into()) }
    });
    let dev = must("losetup", &["--find", "--show", mnt.join("nbd").to_str().unwrap()]).trim().to_string();
    let fsck = Command::new("fsck.ext4").args(["-n", "-f", &dev]).output().unwrap();
    let fsck_text = String::from_utf8_lossy(&fsck.stdout).into_owned() + &String::from_utf8_lossy(&fsck.stderr);
    let seen = env.mkdir("mounted");
    let mounted =
        Command::new("mount").args(["-o", "ro,noload", &dev, seen.to_str().unwrap()]).status().unwrap().success();
    let hello = std::fs::read_to_string(seen.join("hello.txt")).unwrap_or_default();
    let blob_seen = std::fs::read(seen.join("blob.bin")).unwrap_or_default();
    if mounted {
        must("umount", &[seen.to_str().unwrap()]);
    }
    must("losetup", &["-d", &dev]);
    must("fusermount3", &["-u", mnt.to_str().unwrap()]);
    let _ = fuse.wait();
    assert_eq!(fsck.status.code(), Some(0), "fsck.ext4 -n of the drill: {fsck_text}");
    assert!(mounted, "the drill's filesystem did not mount");
    assert_eq!(hello, "written before the point\n");
    assert!(blob_seen == blob, "blob.bin differs in the drill");
    step(format!("nbdfuse + {dev}: fsck.ext4 -n clean, mounted read-only, files as at point {}", d.point));
    post(&api, &format!("/api/v1/drills/{}/stop", d.id), json!({}));
    // A check runs as nobody, with nothing of the standby's: it cannot read the host's secrets.
    let r3 = post(&api, "/api/v1/pairs/ext4/drills", json!({"latest": true, "check": "id -u; id -G; cat /etc/shadow"}));
    assert_eq!(r3.status, 201, "{}", r3.text());
    let d3: DrillStatus = serde_json::from_slice(&r3.body).unwrap();
    let spied = wait_until("the unprivileged check", LONG, || match drill(&api, &d3.id).check {
        Some(c) if c.passed.is_some() => Ok(c),
        other => Err(format!("{other:?}")),
    });
    assert_eq!(spied.passed, Some(false), "{spied:?}");
    assert!(spied.output.starts_with("65534\n65534"), "the check ran as another user: {spied:?}");
    assert!(spied.output.contains("Permission denied"), "{spied:?}");
    post(&api, &format!("/api/v1/drills/{}/stop", d3.id), json!({}));
    step(format!("a check runs as nobody: {:?}", spied.output.lines().collect::<Vec<_>>()));
    agent.term(Duration::from_secs(30));
}
