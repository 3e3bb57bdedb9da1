//! Failover and failback (issue "Failover drills, failover and failback", parts 3 and 4), with
//! real loop devices, an ext4 filesystem and the tracefs tracker.
//!
//! The original disk is a loop device holding ext4 with some files; an agent replicates it.
//! - Refusals first, changing nothing: failback of a pair that is not failed over, a failover
//!   without a point, of an unknown point, with the wrong number of targets, a relative path,
//!   a missing directory, a file holding data (without force), a mounted device.
//! - `drpair failover --latest --to LOOPDEV` (the CLI, with its progress): the pair is fenced
//!   (the agent is told to hold; no point is committed for seconds although the original disk
//!   is written), the target equals the point byte for byte, the point is pinned.
//! - The recovered side is mounted and a few files are changed; the original side gets a few
//!   divergent writes too (split brain).
//! - Failback without a direction is refused (400, parameter `direction`), as is one with the
//!   wrong number of sides; the pair stays failed over.
//! - A failback onto an original disk in use (held exclusively) fails before writing; the
//!   pair stays failed over and the disk unchanged.
//! - `failback --direction to-original`: the original's divergent state is kept as a pinned
//!   recovery point equal to it; exactly the chunks where the sides differ move (counted
//!   independently here); the original disk ends equal to the recovered one, `fsck -n` clean
//!   with the changed files; replication resumes and its next point equals the recovered side.
//!
//! Two more tests: failover is refused while a restart copies its new baseline; a failback
//! cut short by kill -9 of the standby leaves the pair failed over, and runs again (the other
//! direction) to the end.

use drpair_e2e::blockdev::{LoopDev, Mount, mkfs_ext4};
use drpair_e2e::dump::differing_chunks;
use drpair_e2e::image::{copy_device, hash_file, sparse_image};
use drpair_e2e::lifecycle::action;
use drpair_e2e::pair::wait_status;
use drpair_e2e::tracking::TraceInstance;
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, sh, step, wait_ready, wait_until};
use drpair_types::{FailbackStatus, FailoverStatus, JobState, PairState};
use serde_json::json;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

const PAIR: &str = "fo";
const SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const LONG: Duration = Duration::from_secs(120);

fn post(api: &Api, what: &str, body: serde_json::Value) -> drpair_e2e::Reply {
    action(api, PAIR, what, &body)
}

fn failover(api: &Api) -> FailoverStatus {
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/failover"));
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn failback(api: &Api) -> FailbackStatus {
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/failback"));
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// The task an operation points at, once it ended: its kind and state, and its log's lines.
fn ended_task(api: &Api, task: Option<drpair_types::TaskId>, kind: &str) -> (String, Vec<String>) {
    let id = task.unwrap_or_else(|| panic!("the {kind} names no task"));
    let t = wait_until(&format!("{kind} task {id} to end"), LONG, || {
        let t = api.get(&format!("/api/v1/tasks/{id}")).json();
        if t["state"] == "running" { Err(format!("{}", t["message"])) } else { Ok(t) }
    });
    assert_eq!(t["kind"], kind, "{t}");
    assert_eq!(t["pair"], PAIR, "{t}");
    let log = api.get(&format!("/api/v1/tasks/{id}/log")).json();
    let lines =
        log["lines"].as_array().expect("lines").iter().map(|l| l["text"].as_str().unwrap().to_string()).collect();
    (t["state"].as_str().unwrap().to_string(), lines)
}

/// Writes `seed`-derived bytes over whole chunks of a device, through the block layer (the
/// tracker sees them), and syncs.
fn write_chunks(dev: &Path, chunks: &[u64], seed: u8) {
    let f = std::fs::OpenOptions::new().write(true).open(dev).unwrap();
    for &c in chunks {
        let data: Vec<u8> = (0..CHUNK).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        f.write_all_at(&data, c * CHUNK).unwrap();
    }
    f.sync_all().unwrap();
}

fn write_file(dir: &Path, name: &str, len: usize, seed: u8) {
    let mut f = std::fs::File::create(dir.join(name)).unwrap();
    let data: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect();
    f.write_all(&data).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn failover_onto_a_loop_device_and_failback_moves_only_differing_chunks() {
    let env = TestEnv::new("failover");
    let (orig_img, rec_img) = (env.path("original.img"), env.path("recovered.img"));
    sparse_image(&orig_img, SIZE);
    sparse_image(&rec_img, SIZE);
    let orig = LoopDev::attach(&orig_img);
    let rec = LoopDev::attach(&rec_img);
    mkfs_ext4(&orig.dev);
    {
        let m = Mount::mount(&orig.dev, &env.path("mnt-orig"));
        for i in 0..8 {
            write_file(&m.dir, &format!("file{i}"), 700 << 10, i as u8);
        }
    }
    let _trace = TraceInstance::of_pair(PAIR);
    let sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[orig.dev.as_path()]);
    spec.tracker = "tracefs".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let p = api.create_point_wait(PAIR);
    let at_point = hash_file(&orig.dev).1;
    assert_eq!(api.export_full(PAIR, &p.id.to_string(), 0, SIZE), at_point, "the point equals the original");

    // Refusals: nothing is fenced, nothing written.
    let rec_dev = rec.dev.to_str().unwrap();
    post(&api, "failback", json!({"from": [rec_dev], "direction": "to-original"}))
        .assert_error(409, "InvalidPairState");
    let e = post(&api, "failover", json!({"targets": [rec_dev]})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "point", "{e}");
    post(&api, "failover", json!({"point": 999_999, "targets": [rec_dev]})).assert_error(404, "PointNotFound");
    let e = post(&api, "failover", json!({"latest": true, "targets": [rec_dev, "/tmp/x"]}))
        .assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "targets", "{e}");
    let e =
        post(&api, "failover", json!({"latest": true, "targets": ["rel.img"]})).assert_error(400, "InvalidParameter");
    assert!(e["message"].as_str().unwrap().contains("absolute"), "{e}");
    post(&api, "failover", json!({"latest": true, "targets": ["/no/such/dir/x.img"]}))
        .assert_error(400, "InvalidParameter");
    let busy = env.path("holds-data.img");
    std::fs::write(&busy, b"precious").unwrap();
    let e = post(&api, "failover", json!({"latest": true, "targets": [busy]})).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("--force"), "{e}");
    assert_eq!(std::fs::read(&busy).unwrap(), b"precious");
    {
        let mounted_img = env.path("mounted.img");
        sparse_image(&mounted_img, SIZE);
        let lo = LoopDev::attach(&mounted_img);
        mkfs_ext4(&lo.dev);
        let _m = Mount::mount(&lo.dev, &env.path("mnt-busy"));
        let e =
            post(&api, "failover", json!({"latest": true, "targets": [lo.dev]})).assert_error(409, "InvalidPairState");
        assert!(e["message"].as_str().unwrap().contains("in use"), "{e}");
    }
    let s = api.status(PAIR);
    assert!(s.failover.is_none() && s.state == PairState::Replicating, "a refusal changed the pair: {:?}", s.state);
    step("refusals: not failed over, no point, unknown point, target count, relative, missing dir, data, mounted");

    // Failover with the CLI.
    let out = cli.run(&["failover", PAIR, "--latest", "--to", rec_dev, "--yes"]);
    out.ok();
    let f = wait_until("failover done", LONG, || {
        let f = failover(&api);
        if f.state == JobState::Running { Err(format!("{:.0}%", f.progress_percent)) } else { Ok(f) }
    });
    assert_eq!(f.state, JobState::Done, "{}", f.message);
    let (state, log) = ended_task(&api, f.task, "failover");
    assert_eq!(state, "ok", "failover task: {log:?}");
    assert!(
        log.iter().any(|l| l.starts_with(&format!("disk 0: writing point {}", f.point))),
        "failover task log: {log:?}"
    );
    let latest = api.points(PAIR).last().cloned().unwrap();
    assert_eq!(f.point, latest.id);
    assert_eq!(hash_file(&rec.dev).1, api.export_full(PAIR, &f.point.to_string(), 0, SIZE), "target ≠ point");
    assert!(latest.pinned, "the failover point is pinned");
    step(format!(
        "failed over to point {} in {:.2}s ({:.0} MiB/s): {}",
        f.point,
        f.elapsed_seconds,
        f.throughput_bytes_per_sec / MIB as f64,
        f.message
    ));

    // Fenced: the original side is written, the agent stays connected, nothing is committed.
    let s = wait_status(&api, PAIR, Some(&mut agent), "failed over with the agent back", LONG, |s| {
        s.state == PairState::FailedOver && s.agent.as_ref().is_some_and(|a| a.connected)
    });
    assert!(s.state_explanation.contains("fenced"), "{}", s.state_explanation);
    let divergent = [900u64, 901, 950];
    write_chunks(&orig.dev, &divergent, 0xA5);
    let n = api.points(PAIR).len();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(api.points(PAIR).len(), n, "a point was committed into a failed-over pair");
    assert!(
        agent.tail(200).to_lowercase().contains("failed over"),
        "the agent did not log the fence:\n{}",
        agent.tail(40)
    );
    post(&api, "resume", json!({})).assert_error(409, "InvalidPairState");
    post(&api, "restart", json!({"confirm": PAIR})).assert_error(409, "InvalidPairState");
    step("fenced: the original side's writes are held, operator actions refused");

    // The workload runs on the recovered side: a few files change.
    {
        let m = Mount::mount(&rec.dev, &env.path("mnt-rec"));
        write_file(&m.dir, "file2", 700 << 10, 0xEE);
        write_file(&m.dir, "new-after-failover", 300 << 10, 0x42);
        std::fs::remove_file(m.dir.join("file5")).unwrap();
    }
    let orig_before = env.path("orig-before.img");
    let rec_now = env.path("rec-now.img");
    let (_, orig_hash) = copy_device(&orig.dev, &orig_before);
    let (_, rec_hash) = copy_device(&rec.dev, &rec_now);
    let expect = differing_chunks(&orig_before, &rec_now, CHUNK);
    assert!(!expect.is_empty() && (expect.len() as u64) < SIZE / CHUNK / 10, "{} chunks differ", expect.len());
    assert!(divergent.iter().all(|c| expect.contains(c)));

    // Failback without a direction, or with the wrong sides: refused, still failed over.
    let e = post(&api, "failback", json!({"from": [rec_dev]})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "direction", "{e}");
    let e =
        post(&api, "failback", json!({"from": [], "direction": "to-original"})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "from", "{e}");
    post(&api, "failback", json!({"from": [rec_dev], "direction": "sideways"})).assert_error(400, "InvalidParameter");
    let out = cli.run(&["failback", PAIR, "--from", rec_dev, "--yes"]);
    assert_ne!(out.code, 0, "failback without a direction succeeded");
    assert!(out.stderr.contains("direction"), "{}", out.stderr);
    assert_eq!(api.status(PAIR).state, PairState::FailedOver);
    assert_eq!(hash_file(&orig.dev).1, orig_hash, "a refused failback wrote the original disk");
    step("failback without a direction: refused, nothing changed");

    // The original disk in use (held exclusively, as a mount holds it): the failback keeps
    // the original's state, then stops before writing; the pair stays failed over.
    {
        use std::os::unix::fs::OpenOptionsExt;
        let _held = std::fs::OpenOptions::new().read(true).custom_flags(libc::O_EXCL).open(&orig.dev).unwrap();
        let out = cli.run(&["failback", PAIR, "--from", rec_dev, "--direction", "to-original", "--yes"]);
        assert_eq!(out.code, 1, "failback onto a disk in use: {}{}", out.stdout, out.stderr);
        let b = failback(&api);
        assert_eq!(b.state, JobState::Failed, "{b:?}");
        assert!(b.message.contains("in use") && b.message.contains("failed over"), "{}", b.message);
        assert_eq!(api.status(PAIR).state, PairState::FailedOver);
        assert_eq!(hash_file(&orig.dev).1, orig_hash, "a failback onto a disk in use wrote it");
        step(format!("original disk in use: {}", b.message));
    }
    let out = cli.run(&["failback", PAIR, "--from", rec_dev, "--direction", "to-original", "--yes"]);
    out.ok();
    let b = wait_until("failback done", LONG, || {
        let b = failback(&api);
        if b.state == JobState::Running { Err(format!("{:?} {:.0}%", b.phase, b.progress_percent)) } else { Ok(b) }
    });
    step(format!("failback: {}", b.message));
    assert_eq!(b.state, JobState::Done, "{b:?}");
    let (state, log) = ended_task(&api, b.task, "failback");
    assert_eq!((state.as_str(), log.last()), ("ok", Some(&b.message)), "failback task: {log:?}");
    assert!(log.len() >= 3, "the failback task logs its phases: {log:?}");
    assert_eq!(b.differing_chunks, expect.len() as u64, "{b:?}");
    assert_eq!((b.chunks_moved, b.bytes_moved), (expect.len() as u64, expect.len() as u64 * CHUNK), "{b:?}");
    assert_eq!(b.original_changed_chunks, divergent.len() as u64, "{b:?}");
    assert_eq!(b.check_mismatched_chunks, Some(0), "{b:?}");
    // The original side: equal to the recovered one, and its divergent state kept.
    assert_eq!(hash_file(&orig.dev).1, rec_hash, "the original disk does not equal the recovered one");
    let kept = b.original_point.expect("original point");
    assert_eq!(api.export_full(PAIR, &kept.to_string(), 0, SIZE), orig_hash, "the kept point ≠ the original before");
    assert!(api.points(PAIR).iter().any(|q| q.id == kept && q.pinned), "the kept point is not pinned");
    let fsck = std::process::Command::new("fsck.ext4").args(["-n", "-f", orig.dev.to_str().unwrap()]).output().unwrap();
    assert!(fsck.status.success(), "fsck: {}", String::from_utf8_lossy(&fsck.stdout));
    {
        let m = Mount::mount(&orig.dev, &env.path("mnt-orig"));
        assert!(m.dir.join("new-after-failover").exists() && !m.dir.join("file5").exists());
    }
    // Replication goes on from the original side.
    let s = wait_status(&api, PAIR, Some(&mut agent), "replicating after failback", LONG, |s| {
        s.state == PairState::Replicating
    });
    assert!(s.failover.is_none(), "{:?}", s.failover);
    let m = api.metrics();
    let moved = drpair_e2e::api::metric_value(&m, &format!("drpair_failback_moved_chunks{{pair=\"{PAIR}\"}}"));
    assert_eq!(moved, Some(expect.len() as f64), "metrics");
    assert_eq!(
        drpair_e2e::api::metric_value(&m, &format!("drpair_pair_state{{pair=\"{PAIR}\",state=\"replicating\"}}")),
        Some(1.0)
    );
    let next = api.create_point_wait(PAIR);
    assert_eq!(api.export_full(PAIR, &next.id.to_string(), 0, SIZE), hash_file(&orig.dev).1);
    let _ = sh("sync", &[]);
    step(format!("failed back: {} chunk(s) moved; point {} equals both sides", b.chunks_moved, next.id));
}

#[test]
fn failover_is_refused_while_a_restart_copies() {
    let env = TestEnv::new("failover-restart");
    let img = env.path("disk0.img");
    drpair_e2e::image::create_image(&img, 32 * MIB, drpair_e2e::image::Fill::Random, 3);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    agent.kill9();
    // A slow agent: the restart's new baseline takes seconds.
    spec.throttle_bps = Some(4 * MIB);
    let mut agent = spec.spawn(&env, "agent-slow");
    wait_status(&api, PAIR, Some(&mut agent), "connected", LONG, |s| s.agent.as_ref().is_some_and(|a| a.connected));
    assert_eq!(post(&api, "restart", json!({"confirm": PAIR})).status, 200);
    let target = env.path("target.img");
    let e = post(&api, "failover", json!({"latest": true, "targets": [target]})).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("restart"), "{e}");
    assert!(!target.exists(), "a refused failover created its target");
    assert!(api.status(PAIR).failover.is_none());
    step(format!("failover during a restart refused: {}", e["message"]));
}

/// The standby is killed (-9) while a failback keeps the original's state: after the restart
/// the pair is failed over again (still fenced) and the failback recorded as failed; a second
/// failback, direction to-recovered this time, makes the recovered file equal to the original
/// disk and resumes replication. Image files and the scan tracker.
#[test]
fn a_failback_cut_short_by_kill_9_can_be_run_again() {
    let env = TestEnv::new("failback-kill");
    let img = env.path("disk0.img");
    drpair_e2e::image::create_image(&img, 16 * MIB, drpair_e2e::image::Fill::Random, 8);
    let mut sb = Standby::start(&env, None);
    let api = sb.api();
    // A slow agent: its pass over the whole disk (keeping the original's state) takes seconds.
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.throttle_bps = Some(3 * MIB);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let target = env.path("recovered.img");
    assert_eq!(post(&api, "failover", json!({"latest": true, "targets": [target]})).status, 202);
    let f = wait_until("failover done", LONG, || {
        let f = failover(&api);
        if f.state == JobState::Running { Err(format!("{:.0}%", f.progress_percent)) } else { Ok(f) }
    });
    assert_eq!(f.state, JobState::Done, "{}", f.message);
    wait_status(&api, PAIR, Some(&mut agent), "the agent back, holding", LONG, |s| {
        s.agent.as_ref().is_some_and(|a| a.connected)
    });
    // The recovered side changes a little.
    write_chunks(&target, &[3, 4, 200], 0x3C);
    let r = post(&api, "failback", json!({"from": [target], "direction": "to-original"}));
    assert_eq!(r.status, 202, "{}", r.text());
    wait_until("the failback keeping the original's state", LONG, || {
        let b = failback(&api);
        if b.phase == drpair_types::FailbackPhase::KeepingOriginal && b.state == JobState::Running {
            Ok(())
        } else {
            Err(format!("{:?} {:?}", b.phase, b.state))
        }
    });
    std::thread::sleep(Duration::from_millis(1500));
    sb.kill9();
    sb.restart();
    let s = api.status(PAIR);
    assert_eq!(s.state, PairState::FailedOver, "after the kill: {}", s.state_explanation);
    let b = s.failback.expect("the failback is recorded");
    assert_eq!(b.state, JobState::Failed, "{b:?}");
    assert!(b.message.contains("stopped"), "{}", b.message);
    step(format!("after kill -9 of the standby: {}; {}", s.state_label, b.message));

    // Fail back again, the other way: the original side wins, the recovered file follows.
    wait_status(&api, PAIR, Some(&mut agent), "the agent back", LONG, |s| {
        s.agent.as_ref().is_some_and(|a| a.connected)
    });
    let r = post(&api, "failback", json!({"from": [target], "direction": "to-recovered"}));
    assert_eq!(r.status, 202, "{}", r.text());
    let b = wait_until("second failback done", LONG, || {
        let b = failback(&api);
        if b.state == JobState::Running { Err(format!("{:?} {:.0}%", b.phase, b.progress_percent)) } else { Ok(b) }
    });
    assert_eq!(b.state, JobState::Done, "{b:?}");
    assert_eq!((b.differing_chunks, b.chunks_moved), (3, 3), "{b:?}");
    let differ = differing_chunks(&target, &img, CHUNK);
    assert!(differ.is_empty(), "the recovered file differs from the original in chunks {differ:?}");
    let s = wait_status(&api, PAIR, Some(&mut agent), "replicating", LONG, |s| s.state == PairState::Replicating);
    assert!(s.failover.is_none());
    step(format!("failed back to-recovered after the kill: {}", b.message));
}
