//! Restart replication (DESIGN "Restart replication", invariant 6): wiping a pair's recovery
//! points needs a confirmation naming the pair; a confirmed restart starts a new lineage and
//! copies every chunk again as a new baseline, going *Start Replication* (not ready for
//! failover, restart info shown) → *Replicating*.
//!
//! (a) through the CLI: a wrong or missing confirmation (exit 9) changes nothing; the
//!     confirmed restart deletes the old points at once, and the re-copy sends the chunks the
//!     standby already holds as hashes only; then the same through the API's JSON body;
//! (b) `--full-copy --keep-points-until-synced --yes`: every chunk's bytes cross the link,
//!     and the old points stay listed and readable until the new baseline commits.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::lifecycle::{Sample, Snapshot, StdinCli, action, distinct_states, expect_action, is_restart_course};
use drpair_e2e::pair::describe;
use drpair_e2e::{AgentSpec, Api, Daemon, MIB, Standby, TestEnv, step, wait_ready};
use drpair_types::{ActionResponse, Lineage, PairState, PairStatus, PointKind, RecoveryPoint};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "lifecycle-restart-token";
const DISK_SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const CHUNKS: u64 = DISK_SIZE / CHUNK;
const LONG: Duration = Duration::from_secs(180);

/// A pair replicating a random 64 MiB image, with a baseline and `manual` manual points whose
/// images are known. Fields drop in order: agent, standby, then the environment (which
/// prints the logs of a failed test).
struct Fixture {
    pair: String,
    img: PathBuf,
    agent: Daemon,
    sb: Standby,
    cli: StdinCli,
    /// (point id, blake3 of the source when it was cut) of the manual points.
    refs: Vec<(u64, blake3::Hash)>,
    /// Dropped last: prints the daemons' logs when the test failed.
    _env: TestEnv,
}

impl Fixture {
    fn new(name: &str, throttle: u64, manual: u64) -> Self {
        let env = TestEnv::new(name);
        let pair = format!("lc-{name}");
        let img = env.path("disk0.img");
        create_image(&img, DISK_SIZE, Fill::Random, 41);
        let sb = Standby::start(&env, Some(TOKEN));
        let api = sb.api();
        let cli = StdinCli::new(&sb);
        let mut spec = AgentSpec::new(&env, &sb, &pair, &[&img]);
        spec.throttle_bps = Some(throttle);
        let mut agent = spec.spawn(&env, "agent");
        wait_ready(&api, &pair, &mut agent, LONG);
        let mut refs = Vec::new();
        for i in 0..manual {
            overwrite_chunks(&img, CHUNK, &pick_chunks(CHUNKS, 8, 100 + i), 200 + i);
            let (_, h) = hash_file(&img);
            let p = api.create_point_wait(&pair);
            assert_eq!(p.kind, PointKind::Manual, "{p:?}");
            refs.push((p.id, h));
        }
        for &(id, h) in &refs {
            assert_eq!(
                api.export_full(&pair, &id.to_string(), 0, DISK_SIZE),
                h,
                "point {id} does not equal the source as it was cut (before any restart)"
            );
        }
        let points = api.points(&pair);
        assert!(points.len() as u64 > manual, "a baseline and {manual} manual points expected: {points:?}");
        assert_eq!(points[0].kind, PointKind::Baseline, "{points:?}");
        step(format!("fixture {name} ready: points {:?}", points.iter().map(|p| p.id).collect::<Vec<_>>()));
        Self { pair, img, agent, sb, cli, refs, _env: env }
    }

    fn source(&self) -> blake3::Hash {
        hash_file(&self.img).1
    }
}

/// What a restart must look like from the request to the new baseline.
struct Expect<'a> {
    old: &'a Snapshot,
    full_copy: bool,
    keep_points: bool,
}

/// Checks one status sample of a restart. Samples of the old lineage come before the
/// request; once the new lineage shows, the old one must never come back.
fn check_sample(e: &Expect, pair: &str, api: &Api, s: &Sample, seen_new: &mut bool) {
    let st = &s.status;
    let old_lineage = e.old.lineage();
    if st.lineage == Some(old_lineage) {
        assert!(!*seen_new, "the old lineage came back after the new one showed: {}", describe(st));
        return;
    }
    let ctx = format!("{:.1}s into the restart: {}", s.at.as_secs_f64(), describe(st));
    let points = if !*seen_new || st.state == PairState::InitialSync { Some(api.points(pair)) } else { None };
    if !*seen_new {
        *seen_new = true;
        step(format!("new lineage {:?} first seen {ctx}", st.lineage));
    }
    assert!(
        matches!(st.state, PairState::Disconnected | PairState::InitialSync | PairState::Replicating),
        "unexpected state during a restart ({ctx})"
    );
    if st.state == PairState::InitialSync {
        assert_eq!(st.state_label, "Start Replication", "{ctx}");
        assert!((0.0..=100.0).contains(&st.stats.progress_percent), "{ctx}");
    }
    if st.state != PairState::Replicating {
        assert!(!st.ready_for_failover, "ready for failover before the new baseline ({ctx})");
        let r =
            st.restart.as_ref().unwrap_or_else(|| panic!("no restart info while the new baseline is copied ({ctx})"));
        assert_eq!(r.full_copy, e.full_copy, "restart.full_copy ({ctx})");
        assert_eq!(r.keep_points_until_synced, e.keep_points, "restart.keep_points_until_synced ({ctx})");
        let want_kept = if e.keep_points { e.old.points.len() as u64 } else { 0 };
        if e.keep_points {
            assert!(
                r.kept_points >= want_kept,
                "restart.kept_points {} < {want_kept} old points ({ctx})",
                r.kept_points
            );
        } else {
            assert_eq!(r.kept_points, 0, "restart.kept_points without keep_points_until_synced ({ctx})");
        }
    } else {
        assert!(st.ready_for_failover, "replicating in the new lineage but not ready for failover ({ctx})");
        assert!(st.restart.is_none(), "restart info still shown once the new baseline is committed ({ctx})");
    }
    if let Some(points) = points {
        let old: Vec<&RecoveryPoint> = points.iter().filter(|p| p.lineage == old_lineage).collect();
        if e.keep_points {
            for p in &e.old.points {
                assert!(
                    points.contains(p),
                    "old point {} is no longer listed (or changed) while the new baseline is copied ({ctx}); listed: {:?}",
                    p.id,
                    points.iter().map(|p| (p.id, p.lineage)).collect::<Vec<_>>()
                );
            }
        } else {
            assert!(
                old.is_empty(),
                "points of the old lineage still listed after the restart ({ctx}): {:?}",
                old.iter().map(|p| p.id).collect::<Vec<_>>()
            );
        }
        let new: Vec<&RecoveryPoint> = points.iter().filter(|p| p.lineage != old_lineage).collect();
        // The points were listed after the status was read: a baseline committed in between is
        // listed, and then a status read after the listing must say replicating (the standby
        // installs the point and the state under one lock).
        if st.state != PairState::Replicating && !new.is_empty() {
            let after = api.status(pair);
            assert_eq!(
                after.state,
                PairState::Replicating,
                "points of the new lineage before its baseline committed ({ctx}; status after the listing: {}): {new:?}",
                describe(&after)
            );
        }
    }
}

/// After the restart settled: the course of states, the new baseline, the old points gone,
/// the latest point equal to the source. Returns the new lineage.
fn check_settled(
    e: &Expect,
    pair: &str,
    api: &Api,
    samples: &[Sample],
    source: blake3::Hash,
) -> (Lineage, PairStatus, Vec<RecoveryPoint>) {
    let old_lineage = e.old.lineage();
    let new_samples: Vec<&PairStatus> =
        samples.iter().map(|s| &s.status).filter(|s| s.lineage != Some(old_lineage)).collect();
    let course = distinct_states(new_samples.iter().copied());
    let first_at = |state: PairState| {
        samples
            .iter()
            .find(|s| s.status.lineage != Some(old_lineage) && s.status.state == state)
            .map(|s| format!("{:.1}s", s.at.as_secs_f64()))
    };
    step(format!(
        "states of the new lineage: {course:?} ({} samples; first disconnected {:?}, initial_sync {:?}, replicating {:?})",
        new_samples.len(),
        first_at(PairState::Disconnected),
        first_at(PairState::InitialSync),
        first_at(PairState::Replicating)
    ));
    assert!(
        is_restart_course(&course),
        "a restart must go (disconnected →) initial_sync → replicating; seen {course:?}; all samples: {:?}",
        samples.iter().map(|s| (format!("{:.1}s", s.at.as_secs_f64()), s.status.state)).collect::<Vec<_>>()
    );
    let now = api.status(pair);
    let lineage = now.lineage.unwrap_or_else(|| panic!("no lineage after the restart: {}", describe(&now)));
    assert_ne!(lineage, old_lineage, "the lineage did not change");
    assert_eq!(now.state, PairState::Replicating, "{}", describe(&now));
    assert!(now.ready_for_failover && now.restart.is_none(), "{}", describe(&now));
    let cp = now.checkpoint.unwrap_or_else(|| panic!("no checkpoint after the restart: {}", describe(&now)));
    assert_eq!(cp.lineage, lineage, "the checkpoint is not in the new lineage");
    assert_eq!(now.recovery_checkpoint.as_deref(), Some(cp.to_string().as_str()), "{}", describe(&now));

    // The old points go once the new baseline is committed (at once without keep).
    let points = drpair_e2e::wait_until("the old lineage's points to be deleted", Duration::from_secs(15), || {
        let points = api.points(pair);
        let old: Vec<u64> = points.iter().filter(|p| p.lineage != lineage).map(|p| p.id).collect();
        if old.is_empty() { Ok(points) } else { Err(format!("still listed: {old:?}")) }
    });
    let baseline = points.first().unwrap_or_else(|| panic!("no point after the restart: {}", describe(&now)));
    assert_eq!(baseline.kind, PointKind::Baseline, "the first point of the new lineage: {points:?}");
    let max_old = e.old.max_point_id();
    assert!(baseline.id > max_old, "new baseline id {} is not above the old ids (max {max_old})", baseline.id);
    assert_eq!(baseline.sizes.logical_bytes, DISK_SIZE, "{baseline:?}");
    let ids: Vec<u64> = points.iter().map(|p| p.id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "point ids not increasing: {ids:?}");
    for p in &points {
        assert!(!e.old.points.iter().any(|o| o.id == p.id), "point id {} reused across lineages", p.id);
    }
    let latest = api.export_full(pair, "latest", 0, DISK_SIZE);
    assert_eq!(latest, source, "the latest point after the restart differs from the source");
    step(format!("restart settled: lineage {lineage}, baseline {}, {}", baseline.id, describe(&now)));
    (lineage, now, points)
}

/// Compares the stats counters of a re-copy: hashes only, or every chunk's bytes.
fn check_copy_stats(before: &PairStatus, after: &PairStatus, full_copy: bool) {
    let dedup = after.stats.chunks_dedup.saturating_sub(before.stats.chunks_dedup);
    let shipped = after.stats.bytes_shipped.saturating_sub(before.stats.bytes_shipped);
    step(format!(
        "re-copy: {dedup} chunks as known hashes, {shipped} bytes shipped (image {DISK_SIZE} B, {CHUNKS} chunks)"
    ));
    if full_copy {
        assert!(
            shipped >= DISK_SIZE * 9 / 10,
            "--full-copy shipped only {shipped} bytes of a {DISK_SIZE}-byte random image (dedup {dedup} chunks)"
        );
    } else {
        assert!(
            dedup >= CHUNKS * 9 / 10,
            "the re-copy sent only {dedup} of {CHUNKS} chunks as hashes, though the standby holds them all"
        );
        assert!(
            shipped < DISK_SIZE / 10,
            "the re-copy shipped {shipped} bytes of a {DISK_SIZE}-byte image the standby already holds"
        );
    }
}

#[test]
fn restart_with_confirmation_cli_and_api() {
    // ~3.4 s per pass of the 64 MiB image: the initial sync is observable.
    let mut f = Fixture::new("restart-cli", 20_000_000, 2);
    let pair = f.pair.clone();
    let api = f.sb.api();
    let source = f.source();

    // Not confirmed: a wrong line, then end of input. Nothing changes.
    let before = Snapshot::take(&api, &pair);
    for (input, what) in [(&b"wrong\n"[..], "a wrong pair id"), (&b""[..], "end of input")] {
        let out = f.cli.run(&["restart", &pair], input);
        out.expect_code(9);
        assert!(
            out.stderr.contains("not confirmed"),
            "{what}: stderr does not say it was not confirmed:\n{}",
            out.stderr
        );
        assert!(
            out.stderr.contains("deleted") && out.stderr.contains(&pair),
            "{what}: no warning naming the pair and the deletion on stderr:\n{}",
            out.stderr
        );
        before.assert_kept(&api, &pair, &format!("a restart answered with {what}"));
        // The disk is idle: not even a new point.
        assert_eq!(api.points(&pair), before.points, "points after a restart answered with {what}");
        let now = api.status(&pair);
        assert_eq!(
            now.recovery_checkpoint, before.status.recovery_checkpoint,
            "checkpoint after a restart answered with {what}"
        );
    }
    assert_eq!(api.export_full(&pair, "latest", 0, DISK_SIZE), source, "latest point after the refused restarts");

    // Confirmed through a pipe, with --wait, while the status is recorded.
    let old = Snapshot::take(&api, &pair);
    let stats_before = old.status.clone();
    let handle = f.cli.spawn(&["restart", &pair, "--wait", "--output", "json"], format!("{pair}\n").as_bytes());
    let e = Expect { old: &old, full_copy: false, keep_points: false };
    let mut seen_new = false;
    let samples = drpair_e2e::lifecycle::record_until(
        &api,
        &pair,
        Some(&mut f.agent),
        "the CLI restart",
        LONG,
        |s| check_sample(&e, &pair, &api, s, &mut seen_new),
        |s| (s.lineage != Some(old.lineage()) && s.ready_for_failover) || handle.is_finished(),
    );
    let out = handle.join().expect("CLI thread");
    out.ok();
    let resp: ActionResponse = serde_json::from_value(out.json())
        .unwrap_or_else(|err| panic!("restart --output json is not an ActionResponse ({err}): {}", out.stdout));
    assert!(
        resp.points_deleted >= old.points.len() as u64,
        "points_deleted {} < {} points before the restart",
        resp.points_deleted,
        old.points.len()
    );
    assert_ne!(resp.status.lineage, Some(old.lineage()), "the answer's status shows the old lineage");
    assert!(!resp.status.ready_for_failover, "the answer's status is ready for failover: {}", describe(&resp.status));
    assert!(
        out.stderr.contains(&format!("to confirm: {pair}")),
        "the piped confirmation is not echoed:\n{}",
        out.stderr
    );
    // --wait returns once settled; a last sample then.
    let mut samples = samples;
    samples.push(Sample { at: samples.last().map(|s| s.at).unwrap_or_default(), status: api.status(&pair) });
    let (_, after, _) = check_settled(&e, &pair, &api, &samples, source);
    assert!(
        samples.iter().any(|s| s.status.state == PairState::InitialSync && s.status.lineage != Some(old.lineage())),
        "the initial sync of the new baseline was never observed"
    );
    check_copy_stats(&stats_before, &after, false);

    // (c) The same through the API's JSON body.
    let old = Snapshot::take(&api, &pair);
    let r = action(
        &api,
        &pair,
        "restart",
        &json!({"confirm": pair, "full_copy": false, "keep_points_until_synced": false}),
    );
    let resp = expect_action(&r, "API restart");
    let n_old = old.points.len() as u64;
    assert!(
        (n_old..=n_old + 5).contains(&resp.points_deleted),
        "API restart deleted {} points; {n_old} existed just before",
        resp.points_deleted
    );
    assert_ne!(resp.status.lineage, Some(old.lineage()), "the answer's status shows the old lineage");
    assert!(resp.status.lineage.is_some(), "no lineage in the answer: {}", describe(&resp.status));
    assert!(
        matches!(resp.status.state, PairState::Disconnected | PairState::InitialSync),
        "state right after the restart: {}",
        describe(&resp.status)
    );
    let ri = resp.status.restart.as_ref().unwrap_or_else(|| panic!("no restart info in the answer: {}", r.text()));
    assert!(!ri.full_copy && !ri.keep_points_until_synced && ri.kept_points == 0, "{ri:?}");
    let listed = api.points(&pair);
    assert!(listed.is_empty(), "points still listed right after the API restart: {listed:?}");
    let e = Expect { old: &old, full_copy: false, keep_points: false };
    let new_lineage = resp.status.lineage;
    let mut seen_new = false;
    let samples = drpair_e2e::lifecycle::record_until(
        &api,
        &pair,
        Some(&mut f.agent),
        "the API restart",
        LONG,
        |s| check_sample(&e, &pair, &api, s, &mut seen_new),
        |s| s.lineage != Some(old.lineage()) && s.ready_for_failover,
    );
    let (lineage, after, _) = check_settled(&e, &pair, &api, &samples, source);
    assert_eq!(Some(lineage), new_lineage, "the lineage moved on again after the API restart's answer");
    check_copy_stats(&old.status, &after, false);
}

#[test]
fn restart_full_copy_keeps_points_until_synced() {
    // ~6.7 s per pass: time to list and export old points during the new baseline.
    let mut f = Fixture::new("restart-keep", 10_000_000, 1);
    let pair = f.pair.clone();
    let api = f.sb.api();
    let source = f.source();
    let old = Snapshot::take(&api, &pair);
    let old_ids: BTreeSet<u64> = old.points.iter().map(|p| p.id).collect();
    let (probe_id, probe_hash) = f.refs[0];

    let out =
        f.cli.run(&["restart", &pair, "--full-copy", "--keep-points-until-synced", "--yes", "--output", "json"], b"");
    out.ok();
    let resp: ActionResponse = serde_json::from_value(out.json())
        .unwrap_or_else(|err| panic!("restart --output json is not an ActionResponse ({err}): {}", out.stdout));
    assert_eq!(resp.points_deleted, 0, "keep_points_until_synced deleted points at once: {}", out.stdout);
    assert!(out.stderr.contains("kept"), "the warning does not say the points are kept:\n{}", out.stderr);
    let ri = resp.status.restart.as_ref().unwrap_or_else(|| panic!("no restart info in the answer: {}", out.stdout));
    assert!(ri.full_copy && ri.keep_points_until_synced, "{ri:?}");
    assert!(
        ri.kept_points >= old.points.len() as u64,
        "kept_points {} < {} old points",
        ri.kept_points,
        old.points.len()
    );

    // Right after the answer, and during the copy: the old points are listed unchanged (the
    // samples check that) and readable: one is exported once the copy is under way.
    let e = Expect { old: &old, full_copy: true, keep_points: true };
    let mut seen_new = false;
    let mut read_back = false;
    let samples = drpair_e2e::lifecycle::record_until(
        &api,
        &pair,
        Some(&mut f.agent),
        "the full-copy restart",
        LONG,
        |s| {
            check_sample(&e, &pair, &api, s, &mut seen_new);
            let st = &s.status;
            if !read_back && st.state == PairState::InitialSync && st.stats.progress_percent > 0.0 {
                let h = api.export_full(&pair, &probe_id.to_string(), 0, DISK_SIZE);
                let during = api.status(&pair);
                assert_eq!(
                    h, probe_hash,
                    "old point {probe_id} exported during the new baseline differs from what it was"
                );
                assert_eq!(
                    during.state,
                    PairState::InitialSync,
                    "the new baseline was complete when the export ended, so it proves nothing: {}",
                    describe(&during)
                );
                step(format!("old point {probe_id} read back during the new baseline: {}", describe(&during)));
                read_back = true;
            }
        },
        |s| s.lineage != Some(old.lineage()) && s.ready_for_failover,
    );
    assert!(
        read_back,
        "the initial sync of the new baseline was never observed with progress, so no old point was read"
    );
    let (_, after, points) = check_settled(&e, &pair, &api, &samples, source);
    assert!(points.iter().all(|p| !old_ids.contains(&p.id)), "old points survived the new baseline: {points:?}");
    let r = api.export(&pair, &probe_id.to_string(), 0);
    assert_eq!(r.status, 404, "old point {probe_id} still exports after the new baseline: {:?}", r.error_body);
    check_copy_stats(&old.status, &after, true);
}
