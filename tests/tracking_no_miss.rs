//! The tracefs tracker misses no write: a seeded workload covering every write path (ext4 files
//! with fsync, O_DIRECT, unaligned buffered writes, punch-hole, zero-range, fstrim, raw O_DIRECT
//! writes, discard and write-zeroes on the device) runs on a tracked loop device; every 4 KiB
//! block that differs between the before and after images must lie in a chunk the standby
//! received, with no rescan to hide a miss, and the newest point must equal the after image.
//!
//! Negative control: the same check applied to a tracker started after some writes reports
//! exactly the blocks written before it started — the check can fail.

use drpair_e2e::image::{Fill, create_image, hash_file, sparse_image};
use drpair_e2e::tracking::{
    TraceInstance, block_hashes, changed_blocks, direct_writes, every_write_path, fill_random, tracked_chunks,
    uncovered_blocks,
};
use drpair_e2e::workload::generate_files;
use drpair_e2e::{AgentSpec, LoopDev, MIB, Mount, Standby, TestEnv, step, wait_ready};
use drpair_track::{ChangeMap, TracefsConfig, TracefsTracker, Tracker};
use drpair_types::{ChunkSize, DiskGeometry, Lineage};
use rand::SeedableRng;
use rand::rngs::StdRng;
use std::collections::BTreeSet;
use std::time::Duration;

const DISK: u64 = 512 * MIB;
/// The filesystem covers the first 448 MiB; the rest is written raw.
const FS_SIZE: u64 = 448 * MIB;
const CHUNK: u64 = 4096;

#[test]
fn every_write_path_is_tracked() {
    let pair = "track-nomiss";
    let env = TestEnv::new("tracking-no-miss");
    let img = env.path("disk0.img");
    sparse_image(&img, DISK);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(pair);
    create_fs(&lo, &env);
    fill_random(&lo.dev, FS_SIZE, DISK - FS_SIZE, 21);

    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.chunk_size = Some(CHUNK);
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, Duration::from_secs(180));
    let status = api.status(pair);
    assert_eq!(status.agent.as_ref().map(|a| a.tracker.as_str()), Some("tracefs"), "{status:?}");
    let baseline = api.points(pair).last().expect("baseline").clone();
    let before = block_hashes(&img);

    let mnt = env.path("mnt");
    {
        let _m = Mount::mount(&lo.dev, &mnt);
        let a = every_write_path(&mnt, &lo.dev, FS_SIZE, DISK - FS_SIZE, 2);
        step(format!("round 1: {a:?}"));
        let mid = api.create_point_wait(pair);
        step(format!("point {} cut while mounted ({} chunks changed)", mid.id, mid.sizes.changed_chunks));
        let b = every_write_path(&mnt, &lo.dev, FS_SIZE, DISK - FS_SIZE, 3);
        step(format!("round 2: {b:?}"));
    }
    let last = api.create_point_wait(pair);
    let after = block_hashes(&img);
    // Every op class reached the tracker (heartbeats carry its counters every 5 s).
    let seen = drpair_e2e::wait_until("tracker counters", Duration::from_secs(30), || {
        let t = api.status(pair).agent.and_then(|a| a.tracking).ok_or("no counters yet")?;
        if t.writes > 0 && t.discards > 0 && t.zeroes > 0 { Ok(t) } else { Err(format!("{t:?}")) }
    });
    step(format!("tracker counters: {seen:?}"));
    assert_eq!(seen.lost_events, 0, "{seen:?}");

    let changed = changed_blocks(&before, &after);
    let tracked = tracked_chunks(&api, pair, last.id, baseline.id);
    let uncovered = uncovered_blocks(&changed, &tracked, CHUNK);
    step(format!(
        "{} blocks of 4 KiB changed; {} chunks tracked; {} changed blocks not covered",
        changed.len(),
        tracked.len(),
        uncovered.len()
    ));
    assert!(changed.len() > 4_000, "the workload changed only {} blocks", changed.len());
    assert!(
        uncovered.is_empty(),
        "{} changed blocks were never shipped (first: {:?})",
        uncovered.len(),
        &uncovered[..uncovered.len().min(20)]
    );
    // A rescan would have found the changes without the tracker: none may have run.
    for p in api.points(pair).iter().filter(|p| p.id > baseline.id) {
        assert!(!p.full_pass, "point {} came from a full pass, which would hide a tracking miss: {p:?}", p.id);
    }
    let (_, source) = hash_file(&img);
    assert_eq!(api.export_full(pair, &last.id.to_string(), 0, DISK), source, "newest point differs from the disk");
    agent.term(Duration::from_secs(30));
}

/// ext4 on the first 448 MiB with some files, unmounted again (the baseline copies it).
fn create_fs(lo: &LoopDev, env: &TestEnv) {
    drpair_e2e::sh("mkfs.ext4", &["-q", "-F", &lo.dev.display().to_string(), &format!("{}k", FS_SIZE / 1024)]);
    let _m = Mount::mount(&lo.dev, &env.path("mnt"));
    generate_files(&env.path("mnt/seed"), 1);
}

#[test]
fn a_late_tracker_is_caught_by_the_check() {
    let env = TestEnv::new("tracking-late");
    let img = env.path("disk.img");
    let size = 64 * MIB;
    create_image(&img, size, Fill::Random, 5);
    let lo = LoopDev::attach(&img);
    let name = format!("drpair-e2e-late-{}", std::process::id());
    let _trace = TraceInstance::named(&name);
    let before = block_hashes(&img);
    let mut rng = StdRng::seed_from_u64(9);
    let early = direct_writes(&lo.dev, 0, size, 200, &mut rng);

    let geometry = DiskGeometry::new(size, ChunkSize::new(CHUNK).unwrap()).unwrap();
    let mut maps = vec![ChangeMap::create(&env.path("disk.chmap"), geometry, Lineage::new_v4(), 1).unwrap()];
    // Everything before this cut counts as known: the tracker must answer for what follows.
    let start_epoch = maps[0].begin_cut().unwrap();
    let cfg = TracefsConfig {
        instance: name,
        disks: vec![lo.dev.clone()],
        buffer_kib: 4096,
        state_file: env.path("tracefs.state"),
        tracefs_root: "/sys/kernel/tracing".into(),
        poll_interval: Duration::from_millis(20),
    };
    let mut tracker = TracefsTracker::new(cfg).expect("tracefs tracker");
    tracker.start(&mut maps).expect("start");
    let late = direct_writes(&lo.dev, 0, size, 200, &mut rng);
    let epoch = maps[0].begin_cut().unwrap();
    let collected = tracker.collect(&mut maps, epoch).unwrap();
    assert_eq!(collected.gap, None, "no events can have been lost here");
    let tracked: BTreeSet<u64> = maps[0].changed_since(start_epoch).collect();
    tracker.stop().unwrap();

    let changed = changed_blocks(&before, &block_hashes(&img));
    let uncovered = uncovered_blocks(&changed, &tracked, CHUNK);
    let late_blocks: BTreeSet<u64> = late.iter().map(|o| o / 4096).collect();
    let missed: Vec<u64> = early
        .iter()
        .map(|o| o / 4096)
        .filter(|b| !late_blocks.contains(b))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    step(format!("{} blocks written before the tracker started; the check reports {}", missed.len(), uncovered.len()));
    assert!(!missed.is_empty());
    assert_eq!(uncovered, missed, "the check must report exactly the blocks written before tracking began");
    for b in &late_blocks {
        assert!(tracked.contains(&(b * 4096 / CHUNK)), "block {b} written after start was not tracked");
    }
}
