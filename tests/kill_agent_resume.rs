//! kill -9 of the agent, restarted with the same arguments: it resumes from what the standby
//! holds instead of starting a fresh copy, and converges to a point equal to the source.
//!
//! (a) during the initial sync: the chunks the standby already stored are not shipped again
//!     (they go as known hashes), the baseline completes and equals the source;
//! (b) during an incremental epoch: the restart is a differential resync (the status says so),
//!     ships about what changed, and every listed point still exports in full.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::pair::{describe, wait_epoch_in_flight, wait_status};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{PairState, PointKind};
use std::time::Duration;

const TOKEN: &str = "kill-agent-token";
const DISK_SIZE: u64 = 512 * MIB;
const CHUNK: u64 = 64 << 10;
/// ~10.7 s per full pass of the 512 MiB disk.
const THROTTLE: u64 = 50_000_000;
const LONG: Duration = Duration::from_secs(240);

#[test]
fn kill_during_initial_sync() {
    let pair = "killagent-a";
    let env = TestEnv::new("kill-agent-initial");
    let img = env.path("disk0.img");
    let source = create_image(&img, DISK_SIZE, Fill::Random, 11);
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    spec.throttle_bps = Some(THROTTLE);
    let mut agent = spec.spawn(&env, "agent");

    let at_kill = wait_status(&api, pair, Some(&mut agent), "initial sync at 40%", LONG, |s| {
        s.state == PairState::InitialSync && s.stats.progress_percent >= 40.0
    });
    agent.kill9();
    step(format!("agent killed at {}", describe(&at_kill)));
    assert!(at_kill.stats.progress_percent < 90.0, "killed too late to prove anything: {}", describe(&at_kill));
    let before = wait_connected(&api, pair, false, Duration::from_secs(30));
    assert!(!before.ready_for_failover, "no baseline can exist yet: {}", describe(&before));
    assert!(api.points(pair).is_empty(), "a killed initial sync must leave no point");
    let shipped_before = before.stats.bytes_shipped;
    let dedup_before = before.stats.chunks_dedup;
    assert!(shipped_before >= DISK_SIZE / 4, "only {shipped_before} bytes reached the standby before the kill");

    agent.restart();
    let done = wait_ready(&api, pair, &mut agent, LONG);
    let shipped_after = done.stats.bytes_shipped - shipped_before;
    let dedup_after = done.stats.chunks_dedup - dedup_before;
    step(format!("after restart: {shipped_after} bytes shipped, {dedup_after} chunks as known hashes"));
    // What was stored before the kill is not shipped again: both runs together ship about
    // one image (plus frames in flight at the kill), not one image plus the part done.
    assert!(
        shipped_before + shipped_after <= DISK_SIZE + DISK_SIZE / 20,
        "resume re-shipped stored chunks: {shipped_before} B before the kill + {shipped_after} B after > {DISK_SIZE} B image"
    );
    assert!(
        shipped_after < DISK_SIZE * 3 / 4,
        "restart shipped {shipped_after} of {DISK_SIZE} bytes: a fresh copy, not a resume"
    );
    let stored_chunks = shipped_before / CHUNK;
    assert!(
        dedup_after >= stored_chunks * 9 / 10,
        "only {dedup_after} chunks went as known hashes; {stored_chunks} were stored before the kill"
    );

    let points = api.points(pair);
    assert_eq!(points.first().map(|p| p.kind), Some(PointKind::Baseline), "{points:?}");
    let baseline = points[0].id;
    assert_eq!(api.export_full(pair, &baseline.to_string(), 0, DISK_SIZE), source, "baseline differs from the source");
    assert_eq!(api.export_full(pair, "latest", 0, DISK_SIZE), source, "latest point differs from the source");
}

#[test]
fn kill_during_incremental_epoch() {
    let pair = "killagent-b";
    let env = TestEnv::new("kill-agent-incremental");
    let img = env.path("disk0.img");
    let original = create_image(&img, DISK_SIZE, Fill::Random, 12);
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    spec.throttle_bps = Some(THROTTLE);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let baseline = api.points(pair)[0].clone();
    assert_eq!(baseline.kind, PointKind::Baseline);

    // Change 1% of the chunks while the agent scans.
    let chunk_count = DISK_SIZE / CHUNK;
    let changed = pick_chunks(chunk_count, chunk_count / 100, 99);
    overwrite_chunks(&img, CHUNK, &changed, 100);
    let changed_bytes = changed.len() as u64 * CHUNK;
    let (_, source) = hash_file(&img);
    let at_change = api.status(pair);
    let epoch_at_change = at_change.stats.current_epoch;
    step(format!("changed {} chunks at {}", changed.len(), describe(&at_change)));

    // Kill in the middle of the epoch that ships the changes (the pass running at the change
    // or the next one), once 1 MiB of them is in flight.
    let at_kill = wait_epoch_in_flight(&api, pair, &mut agent, epoch_at_change, MIB, LONG);
    agent.kill9();
    step(format!("agent killed at {}", describe(&at_kill)));
    let killed_epoch = at_kill.stats.pass.as_ref().map(|p| p.epoch).unwrap_or_default();
    let before = wait_connected(&api, pair, false, Duration::from_secs(30));
    let shipped_before = before.stats.bytes_shipped;
    let points_before = api.points(pair);
    assert!(
        points_before.iter().all(|p| p.epoch < killed_epoch),
        "the killed epoch {killed_epoch} was committed: {points_before:?}"
    );

    // Restart: a differential resync, announced as such, shipping about what changed.
    agent.restart();
    let resync = wait_status(&api, pair, Some(&mut agent), "a differential resync after the unclean stop", LONG, |s| {
        s.state == PairState::Rescanning || s.stats.pass.as_ref().is_some_and(|p| p.kind == "reconcile")
    });
    step(format!("resync seen: {} — {}", describe(&resync), resync.state_explanation));
    assert!(
        resync.state_explanation.contains("unclean"),
        "the status must say why a resync runs (unclean agent stop): {}",
        resync.state_explanation
    );
    let point = api.create_point_wait(pair);
    step(format!("point {} committed after the restart", point.id));
    assert!(point.epoch > killed_epoch);
    let after = api.status(pair);
    let shipped_after = after.stats.bytes_shipped - shipped_before;
    assert!(
        shipped_after <= 2 * changed_bytes + 8 * MIB,
        "the resync shipped {shipped_after} bytes for {changed_bytes} bytes changed: not a differential resync"
    );
    assert_eq!(
        api.export_full(pair, &point.id.to_string(), 0, DISK_SIZE),
        source,
        "point {} differs from the source",
        point.id
    );

    // Every listed point exports in full; the baseline is still the original disk.
    let points = api.points(pair);
    assert!(
        points.windows(2).all(|w| w[0].id < w[1].id),
        "point ids not increasing: {:?}",
        points.iter().map(|p| p.id).collect::<Vec<_>>()
    );
    for p in &points_before {
        assert!(points.iter().any(|q| q.id == p.id), "point {} disappeared after the restart", p.id);
    }
    for p in &points {
        let h = api.export_full(pair, &p.id.to_string(), 0, DISK_SIZE);
        if p.id == baseline.id {
            assert_eq!(h, original, "the baseline changed after it was committed");
        }
    }
    step(format!("{} points export in full", points.len()));
}
