//! The spine: a standby and an agent protecting a loop device that holds a mounted ext4
//! filesystem with real files, written to while the initial sync runs. Two app-quiesced
//! recovery points (fsfreeze around the cut) are cut with the CLI and exported with the CLI;
//! each equals, byte for byte, what the device held when it was cut — the older one too,
//! after the disk moved on. Status, pairs list and metrics show the pair as documented.

use drpair_e2e::api::metric_value;
use drpair_e2e::blockdev::mkfs_ext4;
use drpair_e2e::image::{copy_device, hash_file};
use drpair_e2e::pair::describe;
use drpair_e2e::workload::{copy_real_files, generate_files};
use drpair_e2e::{AgentSpec, Freeze, LoopDev, MIB, Mount, Standby, TestEnv, Workload, step};
use drpair_types::PairState;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PAIR: &str = "spine-01";
const TOKEN: &str = "spine-token-0123";
const DISK_SIZE: u64 = 256 * MIB;
/// Reads per second allowed to the agent, so the initial sync lasts a few seconds and the
/// write workload really overlaps it.
const THROTTLE: u64 = 80_000_000;

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis() as u64
}

/// Freezes the filesystem, copies the device, cuts a point with the CLI, thaws. Returns the
/// point (CLI JSON) and the reference copy's hash.
fn quiesced_point(env: &TestEnv, sb: &Standby, dev: &Path, mnt: &Path, name: &str) -> (Value, blake3::Hash) {
    let mut frozen = Freeze::freeze(mnt);
    let frozen_at = now_ms();
    let (len, reference) = copy_device(dev, &env.path(&format!("{name}.ref")));
    assert_eq!(len, DISK_SIZE, "reference copy of {}", dev.display());
    let out = sb.cli().run(&["points", "create", PAIR, "--wait", "--output", "json"]);
    out.ok();
    frozen.thaw();
    let j = out.json();
    let p = j["point"].clone();
    assert!(j["request_id"].as_u64().is_some(), "points create JSON without request_id: {j}");
    assert!(p["id"].as_u64().is_some(), "points create --wait JSON without a point id: {j}");
    assert_eq!(p["pair_id"], PAIR, "{j}");
    assert_eq!(p["kind"], "manual", "a cut on request is a manual point: {j}");
    let cut = p["time_unix_ms"].as_u64().expect("time_unix_ms");
    assert!(
        cut >= frozen_at,
        "point {} was cut at {cut}, before the freeze at {frozen_at}: it cannot hold the quiesced state",
        p["id"]
    );
    assert_eq!(p["sizes"]["logical_bytes"], DISK_SIZE, "{j}");
    step(format!("{name}: point {} cut under freeze", p["id"]));
    (p, reference)
}

/// Exports a point with the CLI and returns the file's hash; checks the JSON summary.
fn cli_export(env: &TestEnv, sb: &Standby, point: &str, name: &str) -> blake3::Hash {
    let out_path = env.path(&format!("{name}.export"));
    let out_s = out_path.display().to_string();
    let out = sb.cli().run(&["points", "export", PAIR, point, "--out", &out_s, "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["bytes"], DISK_SIZE, "export summary: {j}");
    assert_eq!(j["disk"], 0, "export summary: {j}");
    assert!(!env.path(&format!("{name}.export.partial")).exists(), "a finished export leaves no .partial file");
    let (len, h) = hash_file(&out_path);
    assert_eq!(len, DISK_SIZE, "exported image size");
    h
}

#[test]
fn spine_end_to_end() {
    let env = TestEnv::new("spine");

    // A 256 MiB ext4 filesystem on a loop device, filled with real and generated files.
    let img = env.path("disk0.img");
    std::fs::File::create(&img).expect("image").set_len(DISK_SIZE).expect("size");
    mkfs_ext4(&img);
    let lo = LoopDev::attach(&img);
    assert_eq!(lo.size(), DISK_SIZE);
    let mnt = Mount::mount(&lo.dev, &env.path("mnt"));
    let (files, bytes) = copy_real_files(
        &[Path::new("/usr/share/doc"), Path::new("/usr/lib/x86_64-linux-gnu")],
        &mnt.dir.join("real"),
        60 * MIB,
    );
    generate_files(&mnt.dir.join("gen"), 7);
    drpair_e2e::sh("sync", &[]);
    step(format!("filesystem populated: {files} real files, {} MiB", bytes / MIB));
    assert!(bytes > 10 * MIB, "too little real data copied ({bytes} bytes)");

    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let cli = sb.cli();

    // Initial sync under a write workload.
    let workload = Workload::start(&mnt.dir, 1);
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]);
    spec.throttle_bps = Some(THROTTLE);
    let mut agent = spec.spawn(&env, "agent");
    let mut saw_initial_sync = false;
    let mut ops_during_sync = 0;
    let ready = drpair_e2e::pair::wait_status(
        &api,
        PAIR,
        Some(&mut agent),
        "ready for failover",
        Duration::from_secs(180),
        |s| {
            if s.state == PairState::InitialSync {
                assert!(!s.ready_for_failover, "ready for failover during the initial sync: {}", describe(s));
                assert!((0.0..=100.0).contains(&s.stats.progress_percent), "{}", describe(s));
                assert_eq!(s.state_label, "Start Replication");
                saw_initial_sync = true;
                ops_during_sync = workload.ops();
            }
            s.ready_for_failover
        },
    );
    step(format!("ready: {}", describe(&ready)));
    assert!(saw_initial_sync, "the status never showed the initial sync (state initial_sync)");
    assert!(ops_during_sync > 0, "the write workload did not overlap the initial sync");
    let ops = workload.stop();
    step(format!("workload did {ops} operations ({ops_during_sync} during the initial sync)"));
    let points = api.points(PAIR);
    assert_eq!(
        points.first().map(|p| p.kind),
        Some(drpair_types::PointKind::Baseline),
        "first point must be the baseline: {points:?}"
    );

    // Point 1, quiesced.
    let (p1, ref1) = quiesced_point(&env, &sb, &lo.dev, &mnt.dir, "p1");

    // More writes: a workload burst, and real files deleted and replaced.
    let burst = Workload::start(&mnt.dir, 2);
    std::thread::sleep(Duration::from_secs(3));
    let _ = std::fs::remove_dir_all(mnt.dir.join("real/usr/share/doc"));
    generate_files(&mnt.dir.join("gen2"), 8);
    assert!(burst.stop() > 0);
    let (p2, ref2) = quiesced_point(&env, &sb, &lo.dev, &mnt.dir, "p2");
    assert_ne!(ref1, ref2, "the disk did not change between the two points: the test proves nothing");
    let (id1, id2) = (p1["id"].as_u64().unwrap(), p2["id"].as_u64().unwrap());
    assert!(id2 > id1, "point ids must increase: {id1} then {id2}");

    // Keep writing while exporting: replication goes on, committed points do not change.
    let during_export = Workload::start(&mnt.dir, 3);
    let h1 = cli_export(&env, &sb, &id1.to_string(), "p1");
    let h2 = cli_export(&env, &sb, &id2.to_string(), "p2");
    drop(during_export);
    assert_eq!(h1, ref1, "point {id1} does not equal the device as it was when the point was cut");
    assert_eq!(h2, ref2, "point {id2} does not equal the device as it was when the point was cut");
    step("both exports equal their references");

    // Points list: both points, ids increasing, kinds as cut.
    let list = cli.run(&["points", "list", PAIR, "--output", "json"]);
    list.ok();
    let list = list.json();
    let ids: Vec<u64> = list.as_array().expect("points array").iter().map(|p| p["id"].as_u64().expect("id")).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "point ids not increasing: {ids:?}");
    assert!(ids.contains(&id1) && ids.contains(&id2), "points {id1} and {id2} missing from {ids:?}");
    let text = cli.run(&["points", "list", PAIR]);
    text.ok();
    assert!(text.stdout.contains("baseline") && text.stdout.contains("manual"), "points list text:\n{}", text.stdout);

    // Status, through the CLI's JSON (the API's JSON as is) and the API itself.
    let st = cli.run(&["status", PAIR, "--output", "json"]);
    st.ok();
    for s in [st.json(), api.status_json(PAIR)] {
        assert_eq!(s["pair_id"], PAIR, "{s}");
        assert_eq!(s["state"], "replicating", "{s}");
        assert_eq!(s["ready_for_failover"], true, "{s}");
        let cp = s["recovery_checkpoint"].as_str().unwrap_or_else(|| panic!("no recovery_checkpoint: {s}"));
        let (lineage, epoch) =
            cp.rsplit_once(':').unwrap_or_else(|| panic!("recovery_checkpoint {cp} is not LINEAGE:EPOCH"));
        assert_eq!(lineage, s["lineage"].as_str().unwrap_or_default(), "{s}");
        assert!(epoch.parse::<u64>().expect("checkpoint epoch") >= id2, "checkpoint {cp} is older than point {id2}");
        assert!(s["last_point"]["id"].as_u64().is_some_and(|i| i >= id2), "last_point: {s}");
        let stats = &s["stats"];
        let progress = stats["progress_percent"].as_f64().expect("progress_percent");
        assert!((0.0..=100.0).contains(&progress), "{stats}");
        let lag = stats["lag_seconds"].as_f64().expect("lag_seconds");
        assert!((0.0..60.0).contains(&lag), "lag {lag}s while replicating every second: {stats}");
        assert!(stats["backlog_bytes"].as_u64().is_some(), "{stats}");
        assert!(stats["bytes_shipped"].as_u64().is_some_and(|b| b > 0), "{stats}");
        let chunks = DISK_SIZE / (64 << 10);
        assert!(
            stats["chunks_received"].as_u64().is_some_and(|c| c >= chunks),
            "a baseline alone is {chunks} chunks: {stats}"
        );
        assert_eq!(s["disks"][0]["size_bytes"], DISK_SIZE, "{s}");
        assert_eq!(s["agent"]["connected"], true, "{s}");
    }
    let text = cli.run(&["status", PAIR]);
    text.ok();
    assert!(text.stdout.contains(PAIR) && text.stdout.contains("Replicating"), "status text:\n{}", text.stdout);

    // Pairs list.
    let pl = cli.run(&["pairs", "list", "--output", "json"]);
    pl.ok();
    let pl = pl.json();
    let row = pl
        .as_array()
        .expect("pairs array")
        .iter()
        .find(|p| p["pair_id"] == PAIR)
        .unwrap_or_else(|| panic!("{PAIR} not in pairs list: {pl}"));
    assert_eq!(row["ready_for_failover"], true, "{row}");
    assert_eq!(row["connected"], true, "{row}");
    let text = cli.run(&["pairs", "list"]);
    text.ok();
    assert!(text.stdout.contains(PAIR), "pairs list text:\n{}", text.stdout);

    // Metrics.
    let m = api.metrics();
    let shipped = metric_value(&m, &format!("drpair_link_shipped_bytes_total{{pair=\"{PAIR}\"}}"));
    assert!(shipped.is_some_and(|v| v > 0.0), "drpair_link_shipped_bytes_total for {PAIR} missing or 0 in:\n{m}");
    let lag = metric_value(&m, &format!("drpair_pair_lag_seconds{{pair=\"{PAIR}\"}}"));
    assert!(lag.is_some_and(|v| v >= 0.0), "drpair_pair_lag_seconds for {PAIR} missing in:\n{m}");

    // `latest` resolves to a numbered point in the export summary.
    let out_path = env.path("latest.export");
    let out =
        cli.run(&["points", "export", PAIR, "latest", "--out", &out_path.display().to_string(), "--output", "json"]);
    out.ok();
    let j = out.json();
    assert!(
        j["point"].as_u64().is_some(),
        "export of 'latest' should report which point it exported (the standby names it in a response header): {j}"
    );

    // SIGTERM is a clean stop, even in the middle of a pass (with a 1 s cut interval the
    // agent is almost always in one): quick, exit 0, change maps closed cleanly (else the
    // next start has to run a differential resync).
    let t = std::time::Instant::now();
    let st = agent.term(Duration::from_secs(90));
    let took = t.elapsed();
    assert!(st.success(), "agent exited with {st} after SIGTERM:\n{}", agent.tail(20));
    let log = agent.log_of_last_start();
    assert!(
        log.contains("change maps closed cleanly") && took < Duration::from_secs(10),
        "agent took {took:?} to stop after SIGTERM and did not close its change maps cleanly:\n{}",
        agent.tail(6)
    );
}
