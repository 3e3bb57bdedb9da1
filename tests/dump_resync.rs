//! Seeding from a third-party dump (repserver-third-party-dump-resync.txt in drpair terms):
//! suspend → skip-to-resync-marker → dump taken by another tool → marker dump → resume
//! --resync → load-dump → resume-apply. Real processes, a loop device traced by tracefs, the
//! "third-party" snapshot made with `qemu-img convert` / `dd` while a writer keeps writing.

use drpair_e2e::blockdev::mkfs_ext4;
use drpair_e2e::dump::{Writer, differing_chunks, dump_status, expect_step, load, mark};
use drpair_e2e::image::{copy_device, create_image, hash_file, sparse_image};
use drpair_e2e::lifecycle::{action, expect_action};
use drpair_e2e::pair::wait_status;
use drpair_e2e::tracking::{TraceInstance, fill_random, tracked_chunks};
use drpair_e2e::workload::generate_files;
use drpair_e2e::{AgentSpec, Api, Cli, Daemon, LoopDev, MIB, Mount, Standby, TestEnv, Workload, step, wait_ready};
use drpair_types::{Consistency, DumpLoadState, DumpStep, DumpVerification, PairState, PointKind};
use serde_json::json;
use std::path::Path;
use std::time::{Duration, SystemTime};

const LONG: Duration = Duration::from_secs(240);
const CHUNK: u64 = 65536;

fn seeded_device(env: &TestEnv, pair: &str, size: u64) -> (LoopDev, TraceInstance) {
    let img = env.path("disk0.img");
    sparse_image(&img, size);
    fill_random(&img, 0, size * 3 / 4, 11);
    let lo = LoopDev::attach(&img);
    (lo, TraceInstance::of_pair(pair))
}

fn agent_spec(env: &TestEnv, sb: &Standby, pair: &str, lo: &LoopDev) -> AgentSpec {
    let mut spec = AgentSpec::new(env, sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.extra = vec!["--marker-exec".into()];
    spec
}

#[test]
fn a_new_pair_is_seeded_from_a_dump_and_only_later_changes_cross_the_wire() {
    let pair = "dump-seed";
    let env = TestEnv::new("dump-seed");
    let size = 256 * MIB;
    let (lo, _trace) = seeded_device(&env, pair, size);
    // New pairs wait: the pair is seeded by the dump, not by an initial copy over the link.
    let sb = Standby::start_with(&env, None, &["--hold-new-pairs"]);
    let (api, cli) = (sb.api(), sb.cli());
    let mut agent = agent_spec(&env, &sb, pair, &lo).spawn(&env, "agent");
    wait_status(&api, pair, Some(&mut agent), "registered", LONG, |s| s.agent.as_ref().is_some_and(|a| a.connected));
    let writer = Writer::start(&lo.dev, size, 20, 1);
    std::thread::sleep(Duration::from_secs(2));

    cli.run(&["suspend", pair]).ok();
    expect_step(&api, pair, PairState::Suspended, DumpStep::Suspended);
    cli.run(&["standby", "skip-to-resync-marker", pair]).ok();
    expect_step(&api, pair, PairState::AwaitingResyncMarker, DumpStep::AwaitingResyncMarker);

    // The coordinated form: the agent cuts the dump point, then runs the snapshot command
    // (qemu-img reading the live device with O_DIRECT) while the writer goes on.
    let dump = env.path("dump.qcow2");
    let cmd = format!("qemu-img convert -T none -f raw -O qcow2 {} {}", lo.dev.display(), dump.display());
    let out = cli.run(&["marker", "dump", pair, "--exec", &cmd, "--output", "json"]);
    out.ok();
    let s = api.status(pair);
    let marker = dump_status(&s).marker.clone().expect("marker recorded");
    step(format!("dump marker: epoch {} at {} ({})", marker.epoch, marker.time, marker.at));
    assert_eq!(marker.exec.as_ref().and_then(|e| e.exit_code), Some(0), "{marker:?}");

    cli.run(&["resume", pair, "--resync"]).ok();
    let s = expect_step(&api, pair, PairState::ApplySuspended, DumpStep::ApplySuspended);
    let log: Vec<String> = dump_status(&s).events.iter().map(|e| e.message.clone()).collect();
    for needle in ["received and processed the resync marker", "processed the dump marker", "apply is now suspended"] {
        assert!(log.iter().any(|l| l.contains(needle)), "no '{needle}' in the workflow log: {log:#?}");
    }
    let standby_log = std::fs::read_to_string(env.path("standby.log")).unwrap();
    assert!(standby_log.contains("waiting for the dump marker"), "the standby log does not say it");

    cli.run(&["standby", "load-dump", pair, "--disk", "0", "--image", &dump.display().to_string()]).ok();
    let s = api.status(pair);
    let d = &dump_status(&s).disks[0];
    assert_eq!((d.state, d.percent, d.format.as_deref()), (DumpLoadState::Loaded, 100.0, Some("qcow2")), "{d:?}");
    // The load is a task of the pair that ended ok and logged its result.
    let task = drpair_e2e::wait_until("the dump-load task to end", LONG, || {
        let list = api.get(&format!("/api/v1/tasks?pair={pair}")).json();
        let t = list["tasks"].as_array().unwrap().iter().find(|t| t["kind"] == "dump-load").cloned();
        match t {
            Some(t) if t["state"] != "running" => Ok(t),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(task["state"], "ok", "{task}");
    assert!(task["message"].as_str().unwrap().starts_with("loaded the dump of disk 0"), "{task}");
    let shipped_before = s.stats.bytes_shipped;
    assert_eq!(shipped_before, 0, "nothing crossed the link before apply resumed");

    cli.run(&["standby", "resume-apply", pair]).ok();
    let s = api.status(pair);
    assert_ne!(s.state, PairState::Replicating, "declared replicating before the verification");
    let s = wait_status(&api, pair, Some(&mut agent), "dump verified", LONG, |s| {
        s.dump.as_ref().is_some_and(|d| d.step == DumpStep::Done)
    });
    let v = dump_status(&s).verification.clone().expect("verification");
    step(format!("verification: {v:?}"));
    assert_eq!(v.mismatched_chunks, 0, "the coordinated dump matched its point: {v:?}");
    let points = api.points(pair);
    let dp = points.iter().find(|p| p.kind == PointKind::DumpMarker).expect("a dump-marker point");
    assert_eq!(dp.epoch, marker.epoch);
    assert!(dp.verified_at.is_some(), "the matching dump point is marked verified: {dp:?}");

    // Only what changed after the dump point crossed the link, and all of it.
    let writes = writer.stop();
    let last = api.create_point_wait(pair);
    let shipped = api.status(pair).stats.bytes_shipped;
    step(format!("shipped {shipped} bytes after resume-apply for a {size}-byte disk"));
    assert!(shipped * 10 < size, "{shipped} bytes shipped: not a small fraction of {size}");
    let export = env.path("newest.img");
    drpair_e2e::image::copy_device(&lo.dev, &env.path("source.img"));
    let e = api.export(pair, &last.id.to_string(), 0);
    assert_eq!(e.status, 200);
    let (_, source_hash) = hash_file(&env.path("source.img"));
    assert_eq!(e.hash, source_hash, "the newest point differs from the source");
    // The chunks the standby took after the dump point: every chunk the dump lacks, and only
    // chunks the writer touched after the marker's cut (with a second of slack).
    let shipped_chunks = tracked_chunks(&api, pair, last.id, marker.epoch);
    let raw_dump = env.path("dump.raw");
    drpair_e2e::sh(
        "qemu-img",
        &["convert", "-f", "qcow2", "-O", "raw", &dump.display().to_string(), &raw_dump.display().to_string()],
    );
    let missing: Vec<u64> = differing_chunks(&raw_dump, &env.path("source.img"), CHUNK)
        .into_iter()
        .filter(|c| !shipped_chunks.contains(c))
        .collect();
    assert!(missing.is_empty(), "chunks differing from the dump were not shipped: {missing:?}");
    let written_after: std::collections::BTreeSet<u64> =
        writes.iter().filter(|(t, _)| *t + 1000 >= marker.time_unix_ms).map(|(_, o)| o / CHUNK).collect();
    let extra: Vec<&u64> = shipped_chunks.iter().filter(|c| !written_after.contains(c)).collect();
    assert!(extra.is_empty(), "chunks shipped that were not written after the dump point: {extra:?}");
    drop(export);
    let metrics = api.metrics();
    assert!(metrics.contains("drpair_dump_markers_total"), "no dump marker metrics");
    agent.term(Duration::from_secs(30));
}

#[test]
fn a_dump_from_another_moment_is_caught_before_replicating() {
    let pair = "dump-wrong";
    let env = TestEnv::new("dump-wrong");
    let size = 64 * MIB;
    let (lo, _trace) = seeded_device(&env, pair, size);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut agent = agent_spec(&env, &sb, pair, &lo).spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    expect_action(&action(&api, pair, "suspend", &json!({})), "suspend");
    expect_action(&action(&api, pair, "skip-to-resync-marker", &json!({})), "skip");
    // The dump is taken first, the device changes, and only then is the point recorded
    // ("now"): the dump lacks changes the agent stamped before the point.
    let dump = env.path("dump.img");
    drpair_e2e::sh(
        "dd",
        &[
            &format!("if={}", lo.dev.display()),
            &format!("of={}", dump.display()),
            "bs=4M",
            "iflag=direct",
            "status=none",
        ],
    );
    fill_random(&lo.dev, 5 * CHUNK, 3 * CHUNK, 99);
    drpair_e2e::sh("sync", &[]);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(mark(&api, pair, &json!({"at": "now"})).status, 200);
    expect_action(&action(&api, pair, "resume", &json!({"resync": true})), "resume --resync");
    assert_eq!(load(&api, pair, 0, &dump).status, 202);
    wait_status(&api, pair, Some(&mut agent), "dump loaded", LONG, |s| {
        s.dump.as_ref().is_some_and(|d| d.disks[0].state == DumpLoadState::Loaded)
    });
    expect_action(&action(&api, pair, "resume-apply", &json!({})), "resume-apply");
    let mut seen = vec![];
    let s = wait_status(&api, pair, Some(&mut agent), "verification done", LONG, |s| {
        seen.push((s.state, s.dump.as_ref().map(|d| d.step)));
        s.dump.as_ref().is_some_and(|d| d.step == DumpStep::Done)
    });
    assert!(
        seen.iter().all(|(st, d)| *st != PairState::Replicating || *d == Some(DumpStep::Done)),
        "declared replicating before the verification: {seen:?}"
    );
    let v = dump_status(&s).verification.clone().expect("verification");
    step(format!("verification of a wrong dump: {v:?}"));
    assert_eq!(v.mismatched_chunks, 3, "{v:?}");
    assert!(v.mismatched_sample.contains(&[0, 5]), "{v:?}");
    assert!(s.failure_messages.iter().any(|m| m.contains("did not match")), "{:?}", s.failure_messages);
    let dp = api.points(pair).into_iter().find(|p| p.kind == PointKind::DumpMarker).expect("dump point");
    assert!(dp.verified_at.is_none(), "a dump that did not match is not marked verified");
    // Repaired from the source: the newest point equals the device.
    let last = api.create_point_wait(pair);
    drpair_e2e::image::copy_device(&lo.dev, &env.path("source.img"));
    let (_, want) = hash_file(&env.path("source.img"));
    assert_eq!(api.export_full(pair, &last.id.to_string(), 0, size), want);
    agent.term(Duration::from_secs(30));
}

#[test]
fn moved_history_needs_reinit_and_steps_out_of_order_change_nothing() {
    let pair = "dump-order";
    let env = TestEnv::new("dump-order");
    let size = 32 * MIB;
    let img = env.path("disk0.img");
    create_image(&img, size, drpair_e2e::image::Fill::Random, 3);
    let sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let spec = AgentSpec::new(&env, &sb, pair, &[img.as_path()]);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let good = env.path("good.img");
    std::fs::copy(&img, &good).unwrap();
    let before = api.status(pair);
    let points = api.points(pair).len();

    // Out of order while replicating: 409 naming the next step, nothing changed.
    for (act, body) in [
        ("skip-to-resync-marker", json!({})),
        ("markers/dump", json!({})),
        ("resume", json!({"resync": true})),
        ("resume-apply", json!({})),
    ] {
        let r = action(&api, pair, act, &body);
        let e = r.assert_error(409, "InvalidPairState");
        assert!(e["message"].as_str().unwrap().contains("drpair suspend"), "{act}: {e}");
    }
    load(&api, pair, 0, &good).assert_error(409, "InvalidPairState");
    let r = action(&api, pair, "resume", &json!({"reinit": true}));
    r.assert_error(400, "InvalidParameter");
    cli.run(&["resume", pair, "--reinit", "--force"]).expect_code(2);
    let after = api.status(pair);
    assert_eq!((after.state, after.lineage, after.dump.is_some()), (before.state, before.lineage, false));

    expect_action(&action(&api, pair, "suspend", &json!({})), "suspend");
    let e = action(&api, pair, "resume", &json!({"resync": true})).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("skip-to-resync-marker"), "{e}");
    expect_action(&action(&api, pair, "skip-to-resync-marker", &json!({})), "skip");
    let e = action(&api, pair, "resume", &json!({"resync": true})).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("drpair marker dump"), "{e}");
    // Bad markers: named parameter, no marker recorded.
    for (body, param) in [
        (json!({"at": "99999"}), "at"),
        (json!({"at": "2001-01-01T00:00:00Z"}), "at"),
        (json!({"at": "yesterday"}), "at"),
        (json!({"freeze": ["/mnt"]}), "freeze"),
        (json!({"exec": "true"}), "exec"),
        (json!({"exec": "true", "at": "now"}), "at"),
        (json!({"bogus": 1}), "body"),
    ] {
        let e = mark(&api, pair, &body).assert_error(400, "InvalidParameter");
        assert_eq!(e["parameter"], param, "{body}: {e}");
    }
    assert!(dump_status(&api.status(pair)).marker.is_none());
    assert_eq!(mark(&api, pair, &json!({})).status, 200);

    // The history no longer reaches the dump point (the agent was killed): refused, with the
    // way out; then re-initialised, a full restart.
    agent.kill9();
    let mut agent = spec.spawn(&env, "agent-after-kill");
    wait_status(&api, pair, Some(&mut agent), "agent back", LONG, |s| s.agent.as_ref().is_some_and(|a| a.connected));
    let e = action(&api, pair, "resume", &json!({"resync": true})).assert_error(409, "InvalidPairState");
    let msg = e["message"].as_str().unwrap();
    assert!(msg.contains("--reinit --force") && msg.contains("unclean"), "{msg}");
    expect_step(&api, pair, PairState::AwaitingResyncMarker, DumpStep::AwaitingResyncMarker);
    action(&api, pair, "resume", &json!({"resync": true, "reinit": true})).assert_error(400, "InvalidParameter");
    assert_eq!(api.points(pair).len(), points, "a refused reinit deleted points");
    cli.run(&["resume", pair, "--resync", "--reinit", "--force"]).ok();
    let s = wait_ready(&api, pair, &mut agent, LONG);
    assert_ne!(s.lineage, before.lineage, "re-initialising starts a new lineage");
    assert_eq!(dump_status(&s).step, DumpStep::Abandoned);

    // While the pair replicates, load-dump says nothing of any file: a missing image and a
    // present one get the same 409.
    let missing = load(&api, pair, 0, &env.path("missing.img")).assert_error(409, "InvalidPairState");
    let present = load(&api, pair, 0, &good).assert_error(409, "InvalidPairState");
    assert_eq!(missing["message"], present["message"]);

    // Apply suspended: wrong geometry, missing image, unknown disk: 400; resume-apply
    // before a load: 409 naming load-dump.
    expect_action(&action(&api, pair, "suspend", &json!({})), "suspend");
    expect_action(&action(&api, pair, "skip-to-resync-marker", &json!({})), "skip");
    assert_eq!(mark(&api, pair, &json!({})).status, 200);
    expect_action(&action(&api, pair, "resume", &json!({"resync": true})), "resync");
    let short = env.path("short.img");
    sparse_image(&short, size - CHUNK);
    let e = load(&api, pair, 0, &short).assert_error(400, "InvalidParameter");
    assert!(e["message"].as_str().unwrap().contains(&size.to_string()), "{e}");
    load(&api, pair, 0, &env.path("missing.img")).assert_error(400, "InvalidParameter");
    load(&api, pair, 3, &good).assert_error(400, "InvalidParameter");
    action(&api, pair, "dump/load", &json!({"disk": 0, "image": "rel.img"})).assert_error(400, "InvalidParameter");
    let e = action(&api, pair, "resume-apply", &json!({})).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("load-dump"), "{e}");
    let s = expect_step(&api, pair, PairState::ApplySuspended, DumpStep::ApplySuspended);
    assert_eq!(dump_status(&s).disks[0].state, DumpLoadState::Pending);

    // A plain resume abandons the dump; replication continues and catches up.
    expect_action(&action(&api, pair, "resume", &json!({})), "resume");
    drpair_e2e::wait_connected(&api, pair, true, LONG);
    let last = api.create_point_wait(pair);
    let (_, want) = hash_file(&img);
    assert_eq!(api.export_full(pair, &last.id.to_string(), 0, size), want);
    assert_eq!(dump_status(&api.status(pair)).step, DumpStep::Abandoned);
    agent.term(Duration::from_secs(30));
}

/// `e2fsck -fn` of an image: (exit code, output).
fn fsck(image: &Path) -> (i32, String) {
    let o = std::process::Command::new("e2fsck").args(["-fn", &image.display().to_string()]).output().expect("e2fsck");
    (
        o.status.code().unwrap_or(-1),
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)),
    )
}

/// resume --resync, load-dump of `image` (disk 0), then [`resume_apply`].
fn apply_dump(api: &Api, cli: &Cli, pair: &str, agent: &mut Daemon, image: &Path) -> (DumpVerification, u64) {
    cli.run(&["resume", pair, "--resync"]).ok();
    expect_step(api, pair, PairState::ApplySuspended, DumpStep::ApplySuspended);
    cli.run(&["standby", "load-dump", pair, "--disk", "0", "--image", &image.display().to_string()]).ok();
    resume_apply(api, cli, pair, agent)
}

/// resume-apply; waits for the verification and returns it with the dump-marker point's
/// epoch.
fn resume_apply(api: &Api, cli: &Cli, pair: &str, agent: &mut Daemon) -> (DumpVerification, u64) {
    cli.run(&["standby", "resume-apply", pair]).ok();
    let s = wait_status(api, pair, Some(agent), "dump verified", LONG, |s| {
        s.dump.as_ref().is_some_and(|d| d.step == DumpStep::Done)
    });
    let v = dump_status(&s).verification.clone().expect("verification");
    let point = dump_status(&s).point.expect("the dump's point");
    step(format!("dump of point {point} verified: {v:?}"));
    (v, point)
}

/// The operator's own snapshots of a mounted ext4 under a file workload. The coordinated
/// form (`marker dump --freeze MNT --exec CMD`) records an app-consistent dump point whose
/// image needs no journal recovery; a dump taken by hand with `dd` and recorded afterwards by
/// the time it began (`--at TIME`, while the workload went on writing) resolves to the last
/// cut before that time. Both dumps verify with no mismatch, and the pair ends equal to the
/// source.
#[test]
fn dumps_under_a_freeze_and_recorded_by_time_verify_on_a_live_filesystem() {
    let pair = "dump-fs";
    let env = TestEnv::new("dump-fs");
    let size = 128 * MIB;
    let img = env.path("disk0.img");
    sparse_image(&img, size);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(pair);
    mkfs_ext4(&lo.dev);
    let mnt = env.path("mnt");
    let mount = Mount::mount(&lo.dev, &mnt);
    generate_files(&mnt.join("seed"), 7);
    let sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let mut agent = agent_spec(&env, &sb, pair, &lo).spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let work = Workload::start(&mnt.join("work"), 3);
    std::thread::sleep(Duration::from_secs(1));

    // The coordinated form: freeze, cut, snapshot command, thaw.
    cli.run(&["suspend", pair]).ok();
    cli.run(&["standby", "skip-to-resync-marker", pair]).ok();
    let frozen = env.path("frozen.raw");
    let cmd = format!("dd if={} of={} bs=4M iflag=direct status=none", lo.dev.display(), frozen.display());
    let mnt_s = mnt.display().to_string();
    cli.run(&["marker", "dump", pair, "--freeze", &mnt_s, "--exec", &cmd]).ok();
    let marker = dump_status(&api.status(pair)).marker.clone().expect("marker recorded");
    step(format!("frozen dump marker: {marker:?}"));
    assert_eq!(marker.consistency, Consistency::AppConsistent, "{marker:?}");
    let q = marker.quiesce.as_ref().expect("quiesce outcome");
    assert!(q.achieved && q.freeze == vec![mnt_s.clone()], "{q:?}");
    assert_eq!(marker.exec.as_ref().and_then(|e| e.exit_code), Some(0), "{marker:?}");
    let (code, text) = fsck(&frozen);
    assert_eq!(code, 0, "the dump taken under the freeze needs repair:\n{text}");
    let (v, point) = apply_dump(&api, &cli, pair, &mut agent, &frozen);
    assert_eq!((v.mismatched_chunks, point), (0, marker.epoch), "{v:?}");
    let dp = api.points(pair).into_iter().find(|p| p.epoch == point).expect("the dump-marker point");
    assert_eq!(dp.kind, PointKind::DumpMarker, "{dp:?}");
    assert!(dp.verified_at.is_some(), "{dp:?}");
    assert!(work.ops() > 0, "the workload wrote nothing");

    // By hand: `dd` while the workload writes, recorded afterwards by the time it began.
    cli.run(&["suspend", pair]).ok();
    cli.run(&["standby", "skip-to-resync-marker", pair]).ok();
    std::thread::sleep(Duration::from_millis(1500));
    let began = SystemTime::now();
    let by_hand = env.path("by-hand.raw");
    copy_device(&lo.dev, &by_hand);
    std::thread::sleep(Duration::from_secs(2));
    let at = humantime::format_rfc3339_millis(began).to_string();
    cli.run(&["marker", "dump", pair, "--at", &at]).ok();
    let marker = dump_status(&api.status(pair)).marker.clone().expect("marker recorded");
    step(format!("dump marker at {at}: {marker:?}"));
    let began_ms = began.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(marker.time_unix_ms <= began_ms && marker.time_unix_ms + 3000 > began_ms, "{marker:?} for {at}");
    assert_eq!(marker.consistency, Consistency::Fuzzy, "{marker:?}");
    let (v, point) = apply_dump(&api, &cli, pair, &mut agent, &by_hand);
    assert_eq!((v.mismatched_chunks, point), (0, marker.epoch), "{v:?}");

    // Nothing written meanwhile is lost: with the filesystem unmounted, the newest point
    // equals the device.
    let ops = work.stop();
    step(format!("workload: {ops} operations"));
    drop(mount);
    let last = api.create_point_wait(pair);
    let (_, want) = copy_device(&lo.dev, &env.path("source.img"));
    assert_eq!(api.export_full(pair, &last.id.to_string(), 0, size), want, "the newest point differs from the source");
    let (code, text) = fsck(&env.path("source.img"));
    assert_eq!(code, 0, "{text}");
    agent.term(Duration::from_secs(30));
}

/// A two-disk pair with the scan tracker (regular files, no kernel tracking): the agent cannot
/// tell whether a chunk changed before or after the dump point, so chunks changed since its
/// last read are shipped, not reported as mismatches; a dump damaged where the source did not
/// change is still caught, and repaired. Each disk's dump is loaded on its own, and apply
/// waits for both.
#[test]
fn with_the_scan_tracker_only_chunks_unchanged_since_the_last_read_can_mismatch() {
    let pair = "dump-scan";
    let env = TestEnv::new("dump-scan");
    let size = 32 * MIB;
    let imgs = [env.path("disk0.img"), env.path("disk1.img")];
    for (i, img) in imgs.iter().enumerate() {
        create_image(img, size, drpair_e2e::image::Fill::Random, 8 + i as u64);
    }
    let sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let mut spec = AgentSpec::new(&env, &sb, pair, &[imgs[0].as_path(), imgs[1].as_path()]);
    spec.tracker = "scan".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);

    cli.run(&["suspend", pair]).ok();
    cli.run(&["standby", "skip-to-resync-marker", pair]).ok();
    let dumps = [env.path("dump0.img"), env.path("dump1.img")];
    for (img, dump) in imgs.iter().zip(&dumps) {
        std::fs::copy(img, dump).unwrap();
    }
    cli.run(&["marker", "dump", pair]).ok();
    // After the dump point: 5 chunks of disk 0 and 2 of disk 1 change on the source. In the
    // dump of disk 0: 2 chunks the source never changed are damaged.
    for c in [10u64, 11, 200, 300, 511] {
        fill_random(&imgs[0], c * CHUNK, CHUNK, 40 + c);
    }
    for c in [0u64, 77] {
        fill_random(&imgs[1], c * CHUNK, CHUNK, 70 + c);
    }
    for c in [100u64, 400] {
        fill_random(&dumps[0], c * CHUNK + 4096, 4096, 90 + c);
    }
    cli.run(&["resume", pair, "--resync"]).ok();
    expect_step(&api, pair, PairState::ApplySuspended, DumpStep::ApplySuspended);
    cli.run(&["standby", "load-dump", pair, "--disk", "0", "--image", &dumps[0].display().to_string()]).ok();
    let e = action(&api, pair, "resume-apply", &json!({})).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("load-dump dump-scan --disk 1"), "{e}");
    cli.run(&["standby", "load-dump", pair, "--disk", "1", "--image", &dumps[1].display().to_string()]).ok();
    let (v, _) = resume_apply(&api, &cli, pair, &mut agent);
    assert_eq!((v.mismatched_chunks, v.chunks_compared, v.chunks_shipped), (2, 1024, 9), "{v:?}");
    assert_eq!(v.mismatched_sample, vec![[0, 100], [0, 400]], "{v:?}");
    let last = api.create_point_wait(pair);
    for (d, img) in imgs.iter().enumerate() {
        let (_, want) = hash_file(img);
        let got = api.export_full(pair, &last.id.to_string(), d as u32, size);
        assert_eq!(got, want, "disk {d} of the newest point differs from the source");
    }
    agent.term(Duration::from_secs(30));
}
