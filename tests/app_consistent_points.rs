//! App-consistent points: `drpair points create PAIR --freeze MOUNTPOINT` freezes the
//! filesystem from the cut until the cut's chunks are read, and labels the point
//! `app-consistent` only when that worked within the thaw budget. The exported point's ext4
//! needs no journal recovery (the freeze left it clean), hooks run in order around the cut, a
//! schedule in the agent's config cuts such points by itself, and every failure (not a mount
//! point, budget exceeded) still cuts a point, labelled fuzzy, with the failure recorded.

use drpair_e2e::blockdev::mkfs_ext4;
use drpair_e2e::image::sparse_image;
use drpair_e2e::pair::wait_status;
use drpair_e2e::tracking::TraceInstance;
use drpair_e2e::workload::generate_files;
use drpair_e2e::{AgentSpec, LoopDev, MIB, Mount, Standby, TestEnv, Workload, step, wait_ready};
use drpair_types::{Consistency, CreatePointResponse, PointKind, RecoveryPoint};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::io::Read;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(240);

fn response(out: &drpair_e2e::CliOut) -> RecoveryPoint {
    let r: CreatePointResponse = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("not a CreatePointResponse ({e}): {}\n{}", out.stdout, out.stderr));
    r.point.expect("--wait returns the point")
}

/// Exports a point with `drpair points export` and runs `e2fsck -fn` on the image; returns
/// (exit code, output).
fn fsck_point(cli: &drpair_e2e::Cli, env: &TestEnv, pair: &str, point: u64) -> (i32, String) {
    let out = env.path(&format!("point-{point}.img"));
    cli.run(&["points", "export", pair, &point.to_string(), "-o", &out.display().to_string()]).ok();
    let o = std::process::Command::new("e2fsck").args(["-fn", &out.display().to_string()]).output().expect("e2fsck");
    let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    (o.status.code().unwrap_or(-1), text)
}

/// A 256 MiB loop device with ext4 holding a few files, mounted at `TEST_DIR/mnt`; the
/// guards undo it all in reverse order.
struct Disk {
    _trace: TraceInstance,
    lo: LoopDev,
    mnt: std::path::PathBuf,
}

fn ext4_disk(env: &TestEnv, pair: &str, seed: u64) -> (Disk, Mount) {
    let img = env.path("disk0.img");
    sparse_image(&img, 256 * MIB);
    let lo = LoopDev::attach(&img);
    let trace = TraceInstance::of_pair(pair);
    mkfs_ext4(&lo.dev);
    let mnt = env.path("mnt");
    let m = Mount::mount(&lo.dev, &mnt);
    generate_files(&mnt.join("seed"), seed);
    (Disk { _trace: trace, lo, mnt }, m)
}

#[test]
fn freeze_hooks_and_failures() {
    let pair = "app-freeze";
    let env = TestEnv::new("app-consistent");
    let (disk, m) = ext4_disk(&env, pair, 4);
    let (lo, mnt) = (&disk.lo, disk.mnt.clone());
    let hooks_log = env.path("hooks.log");
    let hook = |name: &str| {
        let p = env.path(name);
        std::fs::write(&p, format!("#!/bin/sh\necho \"$1 $2\" >> {}\n", hooks_log.display())).unwrap();
        drpair_e2e::sh("chmod", &["+x", &p.display().to_string()]);
        p.display().to_string()
    };
    let (pre, post) = (hook("pre.sh"), hook("post.sh"));

    let sb = Standby::start(&env, None);
    let api = sb.api();
    let cli = sb.cli();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.cut_interval = "1h".into();
    spec.extra = vec!["--pre-hook".into(), pre, "--post-hook".into(), post];
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);

    // Under a live workload: the frozen cut is app-consistent and its ext4 is clean.
    let work = Workload::start(&mnt.join("work"), 5);
    std::thread::sleep(Duration::from_secs(2));
    let mnt_s = mnt.display().to_string();
    let out = cli.run(&["points", "create", pair, "--freeze", &mnt_s, "--wait", "--output", "json"]);
    out.ok();
    let p = response(&out);
    let q = p.quiesce.clone().expect("quiesce outcome");
    step(format!("point {}: {:?} {:?}, froze {} ms of {} ms", p.id, p.kind, p.consistency, q.frozen_ms, q.budget_ms));
    assert_eq!((p.kind, p.consistency), (PointKind::AppConsistent, Consistency::AppConsistent), "{p:?}");
    assert!(q.achieved && q.failure.is_none() && q.frozen_ms <= q.budget_ms, "{q:?}");
    assert_eq!(q.freeze, vec![mnt_s.clone()]);
    let (code, text) = fsck_point(&cli, &env, pair, p.id);
    assert_eq!(code, 0, "the app-consistent point's ext4 is not clean:\n{text}");
    let text_out = cli.run(&["points", "list", pair]);
    assert!(text_out.stdout.contains("app-consistent"), "{}", text_out.stdout);

    // Hooks instead of a freeze: pre, cut, post.
    let out = cli.run(&["points", "create", pair, "--hooks", "--wait", "--output", "json"]);
    out.ok();
    let p = response(&out);
    assert_eq!(p.consistency, Consistency::AppConsistent, "{p:?}");
    let log = std::fs::read_to_string(&hooks_log).unwrap();
    assert_eq!(log, format!("pre {pair}\npost {pair}\n"), "hooks ran out of order or with wrong arguments");

    // Not a mount point: a point is still cut, labelled fuzzy, with the failure; exit 10.
    let not_mount = mnt.join("seed").display().to_string();
    let out = cli.run(&["points", "create", pair, "--freeze", &not_mount, "--wait", "--output", "json"]);
    out.expect_code(10);
    let p = response(&out);
    let q = p.quiesce.clone().expect("quiesce outcome");
    assert_eq!((p.kind, p.consistency), (PointKind::Manual, Consistency::Fuzzy), "{p:?}");
    assert!(!q.achieved && q.failure.as_deref().unwrap_or("").contains("mount point"), "{q:?}");

    // Bad input changes nothing: no point is cut.
    let n = api.points(pair).len();
    let out = cli.run(&["points", "create", pair, "--freeze", "relative/dir", "--wait"]);
    out.expect_code(2);
    assert!(out.stderr.contains("absolute"), "{}", out.stderr);
    let r = api.post(&format!("/api/v1/pairs/{pair}/points"), "application/json", br#"{"freeze":["relative/dir"]}"#);
    r.assert_error(400, "InvalidParameter");
    cli.run(&["points", "create", pair, "--thaw-budget", "1s", "--wait"]).expect_code(2);
    let r = api.post(
        &format!("/api/v1/pairs/{pair}/points"),
        "application/json",
        format!(r#"{{"freeze":["{mnt_s}"],"thaw_budget_ms":5}}"#).as_bytes(),
    );
    r.assert_error(400, "InvalidParameter");
    let r = api.post(&format!("/api/v1/pairs/{pair}/points"), "application/json", br#"{"thaw_budget_ms":500}"#);
    r.assert_error(400, "InvalidParameter");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(api.points(pair).len(), n, "a refused request cut a point");

    work.stop();
    drop(m);
    agent.term(Duration::from_secs(30));
}

#[test]
fn schedule_and_budget() {
    let pair = "app-sched";
    let env = TestEnv::new("app-consistent-schedule");
    let (disk, _m) = ext4_disk(&env, pair, 6);
    let (lo, mnt) = (&disk.lo, disk.mnt.clone());
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let cli = sb.cli();
    let mnt_s = mnt.display().to_string();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.cut_interval = "1h".into();
    // Reads slowed to 50 MB/s: an epoch larger than the reader's buffers (48 MiB) cannot be
    // read within a 100 ms budget.
    spec.throttle_bps = Some(50_000_000);
    spec.extra = vec!["--freeze".into(), mnt_s.clone(), "--app-consistent-interval".into(), "3s".into()];
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);

    // The schedule cuts app-consistent points on its own.
    wait_status(&api, pair, Some(&mut agent), "a scheduled app-consistent point", LONG, |_| {
        api.points(pair)
            .iter()
            .any(|p| p.kind == PointKind::AppConsistent && p.consistency == Consistency::AppConsistent)
    });

    // A budget too small for the epoch: thawed anyway, point fuzzy, failure recorded, exit 10.
    // (Restarted without the schedule, so no scheduled cut takes the changes first, and without
    // the spool: reading into the spool takes ~0.1 s for this epoch, unthrottled; read while
    // shipping, the reads themselves go at the throttle's 50 MB/s.)
    agent.term(Duration::from_secs(30));
    spec.extra = vec!["--no-spool".into()];
    let mut agent = spec.spawn(&env, "agent-unscheduled");
    wait_ready(&api, pair, &mut agent, LONG);
    let big = mnt.join("big.bin");
    let mut data = vec![0u8; 128 << 20];
    rand::RngCore::fill_bytes(&mut StdRng::seed_from_u64(8), &mut data);
    std::fs::write(&big, &data).unwrap();
    let out = cli.run(&[
        "points",
        "create",
        pair,
        "--freeze",
        &mnt_s,
        "--thaw-budget",
        "100ms",
        "--wait",
        "--output",
        "json",
    ]);
    out.expect_code(10);
    let p = response(&out);
    let q = p.quiesce.clone().expect("quiesce outcome");
    step(format!("over budget: {q:?}"));
    assert_eq!(p.consistency, Consistency::Fuzzy, "{p:?}");
    assert!(!q.achieved && q.failure.as_deref().unwrap_or("").contains("budget"), "{q:?}");
    assert!(q.frozen_ms < 1000, "the filesystem stayed frozen {} ms with a 100 ms budget", q.frozen_ms);
    // The filesystem is writable again.
    std::fs::write(mnt.join("after.txt"), b"thawed").unwrap();
    let mut s = String::new();
    std::fs::File::open(mnt.join("after.txt")).unwrap().read_to_string(&mut s).unwrap();
    assert_eq!(s, "thawed");
    agent.term(Duration::from_secs(30));
}
