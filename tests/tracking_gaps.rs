//! Tracking gaps are detected, said, and repaired by a differential resync; never a silent
//! skip, never a silent full copy.
//!
//! - forced event loss (a 4 KiB ring under a write storm) → the loss is detected at the cut →
//!   that epoch reads and compares every chunk → the point equals the disk;
//! - kill -9 of the agent while a filesystem workload runs → restart → the gap is reported →
//!   differential resync → converges, shipping a small fraction of the disk;
//! - a clean agent restart needs no resync (the kernel kept recording while the agent was
//!   down), while a lost tracing instance (what a reboot does) forces one.

use drpair_e2e::image::{Fill, create_image, hash_file, sparse_image};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::tracking::{TraceInstance, direct_writes};
use drpair_e2e::workload::generate_files;
use drpair_e2e::{AgentSpec, LoopDev, MIB, Mount, Standby, TestEnv, Workload, step, wait_connected, wait_ready};
use drpair_types::RecoveryPoint;
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(240);

fn newest(api: &drpair_e2e::Api, pair: &str) -> RecoveryPoint {
    api.points(pair).last().cloned().expect("a point")
}

#[test]
fn event_loss_forces_a_rescan_that_converges() {
    let pair = "track-loss";
    let env = TestEnv::new("tracking-loss");
    let img = env.path("disk0.img");
    let size = 256 * MIB;
    create_image(&img, size, Fill::Random, 31);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(pair);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.cut_interval = "1h".into();
    spec.extra = vec!["--tracefs-buffer-kib".into(), "4".into()];
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    // The baseline's own reads may have overrun the tiny ring; an idle epoch settles that.
    api.create_point_wait(pair);
    let quiet = api.create_point_wait(pair);
    assert!(!quiet.full_pass, "an idle epoch with nothing lost must not rescan: {quiet:?}");

    // A write storm from two threads: far more events than 4 KiB of ring holds between polls.
    let dev = lo.dev.clone();
    let storm: Vec<_> = (0..2u64)
        .map(|t| {
            let dev = dev.clone();
            std::thread::spawn(move || direct_writes(&dev, 0, size, 20_000, &mut StdRng::seed_from_u64(40 + t)).len())
        })
        .collect();
    let writes: usize = storm.into_iter().map(|h| h.join().unwrap()).sum();
    let p = api.create_point_wait(pair);
    step(format!("{writes} writes; point {} full_pass {}", p.id, p.full_pass));
    assert!(p.full_pass, "lost events must force a full compare: {p:?}");
    let log = agent.log();
    assert!(log.contains("lost events"), "the agent must say events were lost:\n{}", agent.tail(40));
    let lost = drpair_e2e::wait_until("lost events in status and metrics", Duration::from_secs(30), || {
        let t = api.status(pair).agent.and_then(|a| a.tracking).ok_or("no counters yet")?;
        let m =
            drpair_e2e::api::metric_value(&api.metrics(), &format!("drpair_tracker_lost_events{{pair=\"{pair}\"}}"));
        if t.lost_events > 0 && t.losses > 0 && m.is_some_and(|v| v > 0.0) {
            Ok(t)
        } else {
            Err(format!("{t:?} {m:?}"))
        }
    });
    step(format!("tracker counters: {lost:?}"));
    let (_, source) = hash_file(&img);
    assert_eq!(api.export_full(pair, &p.id.to_string(), 0, size), source, "the point after the rescan differs");
    // Only what differed crossed the link: the writes touched at most 40000 chunks' worth.
    assert!(p.sizes.changed_chunks <= 40_000 && p.sizes.changed_chunks > 0, "{:?}", p.sizes);
    agent.term(Duration::from_secs(30));
}

#[test]
fn kill9_while_writing_resyncs_a_small_fraction() {
    let pair = "track-kill";
    let env = TestEnv::new("tracking-kill9");
    let img = env.path("disk0.img");
    let size = 512 * MIB;
    sparse_image(&img, size);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(pair);
    drpair_e2e::blockdev::mkfs_ext4(&lo.dev);
    let mnt = env.path("mnt");
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.cut_interval = "2s".into();
    let m = Mount::mount(&lo.dev, &mnt);
    generate_files(&mnt.join("seed"), 3);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let work = Workload::start(&mnt.join("work"), 7);
    let before_kill =
        wait_status(&api, pair, Some(&mut agent), "two points under the workload", LONG, |s| s.stats.points >= 3);
    agent.kill9();
    step(format!("agent killed at {}", describe(&before_kill)));
    let last_before = newest(&api, pair).id;
    std::thread::sleep(Duration::from_secs(2));
    agent.restart();
    let resync = wait_status(&api, pair, Some(&mut agent), "a point from the differential resync", LONG, |_| {
        api.points(pair).iter().any(|p| p.id > last_before && p.full_pass)
    });
    step(format!("resynced: {}", describe(&resync)));
    let log = agent.log_of_last_start();
    assert!(log.contains("unclean agent stop"), "the agent must say why it resyncs:\n{}", agent.tail(40));
    assert!(log.contains("differential resync"), "{}", agent.tail(40));
    let ops = work.stop();
    drop(m);
    let last = api.create_point_wait(pair);
    step(format!("workload did {ops} operations; final point {}", last.id));
    let (_, source) = hash_file(&img);
    assert_eq!(api.export_full(pair, &last.id.to_string(), 0, size), source, "the final point differs from the disk");
    let resync_point = api.points(pair).into_iter().find(|p| p.id > last_before && p.full_pass).expect("resync point");
    step(format!("resync point {}: {:?}", resync_point.id, resync_point.sizes));
    assert!(
        resync_point.sizes.shipped_bytes < size / 10,
        "the resync shipped {} bytes of a {size}-byte disk: not differential",
        resync_point.sizes.shipped_bytes
    );
    agent.term(Duration::from_secs(30));
}

#[test]
fn clean_restart_adopts_the_record_and_a_lost_instance_forces_a_resync() {
    let pair = "track-restart";
    let env = TestEnv::new("tracking-restart");
    let img = env.path("disk0.img");
    let size = 128 * MIB;
    create_image(&img, size, Fill::Random, 51);
    let lo = LoopDev::attach(&img);
    let trace = TraceInstance::of_pair(pair);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let mut rng = StdRng::seed_from_u64(52);

    // Clean stop: the instance keeps recording; writes made meanwhile are not lost.
    agent.term(Duration::from_secs(30));
    assert!(trace.exists(), "a clean stop keeps the tracing instance recording");
    let stopped_at = newest(&api, pair).id;
    direct_writes(&lo.dev, 0, size, 300, &mut rng);
    agent.restart();
    wait_connected(&api, pair, true, LONG);
    let p = api.create_point_wait(pair);
    let since: Vec<RecoveryPoint> = api.points(pair).into_iter().filter(|x| x.id > stopped_at).collect();
    assert!(since.iter().all(|x| !x.full_pass), "a clean restart must not need a resync: {since:?}");
    let shipped: u64 = since.iter().map(|x| x.sizes.changed_chunks).sum();
    assert!(shipped > 0, "the writes made while stopped must ship: {since:?}");
    assert!(!agent.log_of_last_start().contains("differential resync"), "{}", agent.tail(30));
    let (_, source) = hash_file(&img);
    assert_eq!(api.export_full(pair, &p.id.to_string(), 0, size), source, "writes made while stopped were lost");

    // The instance disappears while the agent is down (a reboot does that): a gap.
    agent.term(Duration::from_secs(30));
    trace.remove();
    direct_writes(&lo.dev, 0, size, 300, &mut rng);
    agent.restart();
    let p = wait_status(&api, pair, Some(&mut agent), "a resync point", LONG, |_| newest(&api, pair).full_pass);
    step(format!("after the lost instance: {}", describe(&p)));
    let log = agent.log_of_last_start();
    assert!(log.contains("differential resync"), "{}", agent.tail(40));
    let (_, source) = hash_file(&img);
    let last = newest(&api, pair);
    assert_eq!(api.export_full(pair, &last.id.to_string(), 0, size), source, "the resync missed writes");
    assert!(last.sizes.shipped_bytes < size / 4, "{:?}", last.sizes);
    agent.term(Duration::from_secs(30));
}
