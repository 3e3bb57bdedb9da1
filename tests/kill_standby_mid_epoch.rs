//! kill -9 of the standby while the agent ships a large epoch, restarted with the same
//! arguments: no half point is ever listed (every listed point exports completely, ids
//! increase, committed points keep their content), the agent reconnects by itself and the
//! pair converges to a point equal to the source.
//!
//! Twice: during the initial sync (no point may appear until a complete baseline), and
//! during a large incremental epoch after the baseline.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::pair::{describe, wait_epoch_in_flight, wait_status};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{PairState, PointKind, RecoveryPoint};
use std::time::Duration;

const PAIR: &str = "killstandby";
const TOKEN: &str = "kill-standby-token";
const DISK_SIZE: u64 = 256 * MIB;
const CHUNK: u64 = 64 << 10;
/// ~10.7 s per full pass of the 256 MiB disk.
const THROTTLE: u64 = 25_000_000;
const LONG: Duration = Duration::from_secs(240);

/// Lists the points and checks the listing itself: ids increasing, each exports in full.
fn check_points(api: &Api) -> Vec<RecoveryPoint> {
    let points = api.points(PAIR);
    let ids: Vec<u64> = points.iter().map(|p| p.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "point ids not increasing: {ids:?}");
    for p in &points {
        api.export_full(PAIR, &p.id.to_string(), 0, DISK_SIZE);
    }
    step(format!("points {ids:?} all export in full"));
    points
}

#[test]
fn kill_standby_mid_epoch() {
    let env = TestEnv::new("kill-standby");
    let img = env.path("disk0.img");
    let original = create_image(&img, DISK_SIZE, Fill::Mixed, 21);
    let mut sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.throttle_bps = Some(THROTTLE);
    // Level 1 keeps compression cheap on 2 cores; the data is mixed anyway.
    spec.compression = Some("zstd:1".into());
    let mut agent = spec.spawn(&env, "agent");

    // 1. Kill during the initial sync.
    let at_kill = wait_status(&api, PAIR, Some(&mut agent), "initial sync at 40%", LONG, |s| {
        s.state == PairState::InitialSync && s.stats.progress_percent >= 40.0 && s.stats.bytes_shipped > 0
    });
    sb.kill9();
    step(format!("standby killed during the initial sync at {}", describe(&at_kill)));
    std::thread::sleep(Duration::from_secs(1));
    sb.restart();
    let s = api.status(PAIR);
    assert!(!s.ready_for_failover, "ready for failover without a complete baseline: {}", describe(&s));
    assert!(s.recovery_checkpoint.is_none(), "checkpoint without a committed epoch: {}", describe(&s));
    assert!(check_points(&api).is_empty(), "a half baseline was listed as a point");
    wait_connected(&api, PAIR, true, Duration::from_secs(60));
    step("agent reconnected by itself");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let points = check_points(&api);
    assert_eq!(points[0].kind, PointKind::Baseline);
    let baseline = points[0].id;
    assert_eq!(
        api.export_full(PAIR, &baseline.to_string(), 0, DISK_SIZE),
        original,
        "the baseline differs from the source"
    );

    // 2. Kill during a large incremental epoch: rewrite 20% of the chunks and kill once the
    // pass that ships them (the one running, or the next) has sent 4 MiB of them.
    let chunk_count = DISK_SIZE / CHUNK;
    let changed = pick_chunks(chunk_count, chunk_count / 5, 5);
    overwrite_chunks(&img, CHUNK, &changed, 6);
    let (_, source) = hash_file(&img);
    let epoch_at_change = api.status(PAIR).stats.current_epoch;
    let at_kill = wait_epoch_in_flight(&api, PAIR, &mut agent, epoch_at_change, 4 * MIB, LONG);
    let killed_epoch = at_kill.stats.pass.as_ref().map(|p| p.epoch).unwrap_or_default();
    let before: Vec<u64> = api.points(PAIR).iter().map(|p| p.id).collect();
    sb.kill9();
    step(format!("standby killed in epoch {killed_epoch}: {}", describe(&at_kill)));
    std::thread::sleep(Duration::from_secs(1));
    sb.restart();
    let after_restart = check_points(&api);
    let ids: Vec<u64> = after_restart.iter().map(|p| p.id).collect();
    assert_eq!(ids, before, "the points changed across the standby's crash");
    assert!(
        after_restart.iter().all(|p| p.epoch != killed_epoch),
        "the epoch in flight at the crash was listed as a point"
    );
    assert_eq!(
        api.export_full(PAIR, &baseline.to_string(), 0, DISK_SIZE),
        original,
        "the baseline changed across the standby's crash"
    );
    if sb.proc.log_of_last_start().contains("discarded") {
        step("the restarted standby discarded the half epoch (see its log)");
    }

    wait_connected(&api, PAIR, true, Duration::from_secs(60));
    step("agent reconnected by itself");
    let point = api.create_point_wait(PAIR);
    assert!(point.epoch > killed_epoch, "new point {} is not newer than the lost epoch {killed_epoch}", point.epoch);
    assert_eq!(api.export_full(PAIR, "latest", 0, DISK_SIZE), source, "latest point differs from the source");
    let points = check_points(&api);
    assert!(points.iter().any(|p| p.id == point.id));
    assert!(agent.is_running(), "the agent must survive the standby's crashes:\n{}", agent.tail(30));

    // A clean stop (SIGTERM) of the standby while its agent ships, and a restart: the same
    // points, and the agent carries on.
    let before: Vec<RecoveryPoint> = api.points(PAIR);
    sb.term();
    sb.restart();
    let after = api.points(PAIR);
    assert!(
        before.iter().all(|p| after.contains(p)),
        "points changed across a clean standby restart: before {:?}, after {:?}",
        before.iter().map(|p| p.id).collect::<Vec<_>>(),
        after.iter().map(|p| p.id).collect::<Vec<_>>()
    );
    wait_connected(&api, PAIR, true, Duration::from_secs(60));
    assert!(agent.is_running(), "the agent must survive a standby restart:\n{}", agent.tail(30));
}
