//! Pausing and resuming a pair, and resuming after both daemons died.
//!
//! (a) `drpair pause` while the disk is being written: nothing is cut or committed while
//!     paused (points on demand are refused with 409), the lag grows, the pause survives a
//!     standby restart, and `drpair resume` ships in the next point every change made while
//!     paused: it equals the source.
//! (b) kill -9 of both the agent and the standby during steady replication, both started
//!     again with the same arguments: replication continues in the same lineage without a new
//!     baseline (no `initial` pass), ships about what changed (not the disk), and the newest
//!     point equals the source.

use drpair_e2e::api::metric_value;
use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{PairState, PairStatus, PointKind, RecoveryPoint};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "lifecycle-pause-token";
const DISK_SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const CHUNK_COUNT: u64 = DISK_SIZE / CHUNK;
const LONG: Duration = Duration::from_secs(120);
/// The agents' cut interval (AgentSpec default).
const CUT_INTERVAL: Duration = Duration::from_secs(1);

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("ms fit u64")
}

fn ids(points: &[RecoveryPoint]) -> Vec<u64> {
    points.iter().map(|p| p.id).collect()
}

/// Rewrites chunk sets of an image in rounds, in a thread: round `r` rewrites
/// `sets[r % sets.len()]` with fresh random bytes. Stops after `rounds` rounds or when told.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<BTreeSet<u64>>>,
}

impl Writer {
    fn start(img: &Path, sets: Vec<Vec<u64>>, period: Duration, rounds: u64, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (img, stop2): (PathBuf, _) = (img.to_path_buf(), stop.clone());
        let handle = std::thread::spawn(move || {
            let mut written = BTreeSet::new();
            for (r, set) in (0..rounds).zip(sets.iter().cycle()) {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                overwrite_chunks(&img, CHUNK, set, seed + r);
                written.extend(set.iter().copied());
                std::thread::sleep(period);
            }
            written
        });
        Self { stop, handle: Some(handle) }
    }

    /// Waits for the rounds to end (or stops them); returns every chunk written.
    fn finish(mut self, stop_now: bool) -> BTreeSet<u64> {
        if stop_now {
            self.stop.store(true, Ordering::Relaxed);
        }
        self.handle.take().expect("writer").join().expect("writer thread panicked")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Asserts that a `POST …/points` is refused with 409, by the API and by the CLI (exit 4).
fn assert_points_refused(sb: &Standby, pair: &str, s: &PairStatus) {
    let api = sb.api();
    for body in [&br#"{}"#[..], &br#"{"wait":true,"timeout_seconds":20}"#[..]] {
        let t = Instant::now();
        let r = api.post(&format!("/api/v1/pairs/{pair}/points"), "application/json", body);
        assert_eq!(
            r.status,
            409,
            "points create ({}) on a {:?} pair must be refused with 409; got {}: {} — {}",
            String::from_utf8_lossy(body),
            s.state,
            r.status,
            r.text(),
            describe(s)
        );
        r.assert_error(409, "InvalidPairState");
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the refusal took {:?}: it must not wait for a cut",
            t.elapsed()
        );
    }
    sb.cli().run(&["points", "create", pair, "--wait", "--timeout", "20s"]).expect_code(4);
}

#[test]
fn pause_while_writing_then_resume() {
    let pair = "pause-a";
    let env = TestEnv::new("pause-while-writing");
    let img = env.path("disk0.img");
    let original = create_image(&img, DISK_SIZE, Fill::Random, 31);
    let mut sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let cli = sb.cli();
    let mut agent = AgentSpec::new(&env, &sb, pair, &[&img]).spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let baseline = api.points(pair)[0].clone();
    assert_eq!(baseline.kind, PointKind::Baseline);
    wait_status(&api, pair, Some(&mut agent), "replicating with points after the baseline", LONG, |s| {
        s.state == PairState::Replicating && s.stats.points >= 3
    });

    // Pause with the CLI.
    let t_pause = now_ms();
    let out = cli.run(&["pause", pair, "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"]["state"], "paused", "pause answer: {j}");
    assert_eq!(j["status"]["state_label"], "Paused", "pause answer: {j}");
    assert_eq!(j["points_deleted"], 0, "pause deletes nothing: {j}");
    assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "pause answer without message: {j}");
    let s = api.status(pair);
    assert_eq!(s.state, PairState::Paused, "{}", describe(&s));
    assert!(s.stop_reason.is_none(), "a paused pair has no stop reason: {:?}", s.stop_reason);
    assert!(s.ready_for_failover, "pausing does not take away the points: {}", describe(&s));
    step(format!("paused: {}", describe(&s)));
    // The state is on the metrics endpoint too, one series per state.
    let m = api.metrics();
    for (state, want) in [("paused", 1.0), ("replicating", 0.0)] {
        let series = format!("drpair_pair_state{{pair=\"{pair}\",state=\"{state}\"}}");
        assert_eq!(metric_value(&m, &series), Some(want), "{series} in:\n{m}");
    }
    cli.run(&["pause", pair]).expect_code(4);

    // Write while paused: 40 chunks every round plus 8 others per round, 10 rounds over 5 s.
    let all = pick_chunks(CHUNK_COUNT, 120, 32);
    let (fixed, extra) = all.split_at(40);
    let sets: Vec<Vec<u64>> = extra
        .chunks(8)
        .map(|more| {
            let mut set = fixed.to_vec();
            set.extend_from_slice(more);
            set
        })
        .collect();
    let writer = Writer::start(&img, sets, Duration::from_millis(500), 10, 1000);

    // Watch for more than 4 cut intervals: still paused, lag grows, nothing new is cut.
    let watch_from = Instant::now();
    let first = api.status(pair);
    let mut last = first.clone();
    while watch_from.elapsed() < CUT_INTERVAL * 6 {
        std::thread::sleep(Duration::from_millis(250));
        last = api.status(pair);
        assert_eq!(last.state, PairState::Paused, "the pair left the paused state by itself: {}", describe(&last));
    }
    let watched = watch_from.elapsed().as_secs_f64();
    let written = writer.finish(false);
    let (_, source) = hash_file(&img);
    step(format!(
        "{} chunks written while paused; lag {} -> {}",
        written.len(),
        first.stats.lag_seconds,
        last.stats.lag_seconds
    ));
    assert!(written.len() >= 40, "the writer wrote only {} chunks", written.len());
    assert!(
        last.stats.lag_seconds >= first.stats.lag_seconds + watched - 1.0 && last.stats.lag_seconds >= 4.0,
        "lag_seconds must grow while paused: {} s, {watched:.1} s later {} s",
        first.stats.lag_seconds,
        last.stats.lag_seconds
    );
    let points = api.points(pair);
    // An epoch already read in full when the pause came may still commit; nothing cut after
    // the pause may, and nothing at all once the in-flight epoch had time to end (2 s): so
    // for at least 4 cut intervals nothing commits.
    let late: Vec<&RecoveryPoint> = points.iter().filter(|p| p.committed_unix_ms >= t_pause).collect();
    for p in &late {
        assert!(
            p.time_unix_ms < t_pause && p.committed_unix_ms < t_pause + 2000,
            "point {} was cut at {} and committed at {} while paused (pause requested at {t_pause}): {}",
            p.id,
            p.time_unix_ms,
            p.committed_unix_ms,
            describe(&last)
        );
    }
    assert!(late.len() <= 1, "{} points committed after the pause: {:?}", late.len(), late);
    if let Some(p) = late.first() {
        step(format!("point {} (cut before the pause) committed just after it", p.id));
    }
    assert_eq!(last.last_point.as_ref().map(|p| p.id), points.last().map(|p| p.id), "{}", describe(&last));
    assert_points_refused(&sb, pair, &last);
    let paused_ids = ids(&api.points(pair));
    assert_eq!(paused_ids, ids(&points), "a refused points create committed a point");

    // The pause survives a standby restart, and the reconnected agent is held again.
    sb.term();
    sb.restart();
    let s = api.status(pair);
    assert_eq!(s.state, PairState::Paused, "a standby restart lost the pause: {}", describe(&s));
    wait_connected(&api, pair, true, Duration::from_secs(60));
    let t = Instant::now();
    while t.elapsed() < CUT_INTERVAL * 3 {
        std::thread::sleep(Duration::from_millis(250));
        let s = api.status(pair);
        assert_eq!(s.state, PairState::Paused, "after the standby restart: {}", describe(&s));
    }
    assert_eq!(ids(&api.points(pair)), paused_ids, "points committed after the standby restart while paused");
    assert!(agent.is_running(), "the agent must survive the standby restart:\n{}", agent.tail(30));

    // Resume: the next point carries every change made while paused.
    let t_resume = now_ms();
    let out = cli.run(&["resume", pair, "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"]["state"], "replicating", "resume answer: {j}");
    assert_eq!(j["points_deleted"], 0, "resume deletes nothing: {j}");
    let last_paused = *paused_ids.last().expect("points");
    let s = wait_status(&api, pair, Some(&mut agent), "a point after the resume", LONG, |s| {
        s.last_point.as_ref().is_some_and(|p| p.id > last_paused)
    });
    step(format!("after resume: {}", describe(&s)));
    let points = api.points(pair);
    let next = points.iter().find(|p| p.id > last_paused).expect("new point").clone();
    assert!(
        next.time_unix_ms >= t_resume,
        "point {} was cut at {} before the resume at {t_resume}: an epoch cut while paused",
        next.id,
        next.time_unix_ms
    );
    assert!(
        next.sizes.changed_chunks >= written.len() as u64,
        "the first point after the resume holds {} changed chunks; {} were written while paused",
        next.sizes.changed_chunks,
        written.len()
    );
    assert_eq!(
        api.export_full(pair, &next.id.to_string(), 0, DISK_SIZE),
        source,
        "the first point after the resume ({}) does not equal the source: changes made while paused were lost",
        next.id
    );
    let s = api.status(pair);
    assert!(matches!(s.state, PairState::Replicating | PairState::Rescanning), "{}", describe(&s));
    assert!(s.stats.lag_seconds < 10.0, "lag after catching up: {}", s.stats.lag_seconds);
    assert_eq!(api.export_full(pair, "latest", 0, DISK_SIZE), source, "latest point differs from the source");
    assert_eq!(
        api.export_full(pair, &baseline.id.to_string(), 0, DISK_SIZE),
        original,
        "the baseline changed across pause, standby restart and resume"
    );
    for id in &paused_ids {
        assert!(points.iter().any(|p| p.id == *id), "point {id} disappeared after the resume");
    }
}

#[test]
fn kill_both_daemons_then_resume_from_checkpoint() {
    let pair = "pause-b";
    let env = TestEnv::new("kill-both-resume");
    let img = env.path("disk0.img");
    create_image(&img, DISK_SIZE, Fill::Random, 41);
    let mut sb = Standby::start(&env, Some(TOKEN));
    let api: Api = sb.api();
    let mut agent = AgentSpec::new(&env, &sb, pair, &[&img]).spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    let before = wait_status(&api, pair, Some(&mut agent), "steady replication", LONG, |s| {
        s.state == PairState::Replicating && s.stats.points >= 3
    });
    let lineage = before.lineage.expect("lineage");
    let baseline = api.points(pair)[0].clone();
    assert_eq!(baseline.kind, PointKind::Baseline);

    // Change some chunks, and kill both while the agent is at it.
    let changed1 = pick_chunks(CHUNK_COUNT, 32, 42);
    overwrite_chunks(&img, CHUNK, &changed1, 43);
    std::thread::sleep(Duration::from_millis(300));
    let listed_before = api.points(pair);
    let at_kill = api.status(pair);
    agent.kill9();
    sb.kill9();
    step(format!("both killed at {}", describe(&at_kill)));

    // Changes while both are down must arrive too.
    let changed2 = pick_chunks(CHUNK_COUNT, 32, 44);
    overwrite_chunks(&img, CHUNK, &changed2, 45);
    let (_, source) = hash_file(&img);

    sb.restart();
    let s = api.status(pair);
    assert_eq!(s.lineage, Some(lineage), "the standby restarted in another lineage: {}", describe(&s));
    assert!(s.ready_for_failover, "the standby lost its points: {}", describe(&s));
    let after_restart = api.points(pair);
    for p in &listed_before {
        assert!(after_restart.contains(p), "point {} changed or disappeared across the crash", p.id);
    }
    let shipped_base = s.stats.bytes_shipped;
    let newest_before = after_restart.last().expect("points").clone();
    let t_restart = now_ms();
    agent.restart();

    let mut kinds = BTreeSet::new();
    let mut states = BTreeSet::new();
    let caught_up =
        wait_status(&api, pair, Some(&mut agent), "replicating with a point cut after the restart", LONG, |s| {
            if let Some(p) = &s.stats.pass {
                kinds.insert(p.kind.clone());
            }
            states.insert(format!("{:?}", s.state));
            s.state == PairState::Replicating && s.last_point.as_ref().is_some_and(|p| p.time_unix_ms >= t_restart)
        });
    step(format!("caught up: {}; passes seen {kinds:?}, states {states:?}", describe(&caught_up)));
    assert!(!kinds.contains("initial"), "an initial pass ran after the restart (a new baseline): {kinds:?}");
    assert!(!states.contains("InitialSync"), "the pair went through initial sync after the restart: {states:?}");
    let point = api.create_point_wait(pair);
    assert!(point.id > newest_before.id);
    assert_eq!(point.lineage, lineage, "the restart began a new lineage");
    assert_eq!(
        api.export_full(pair, &point.id.to_string(), 0, DISK_SIZE),
        source,
        "point {} after the restart differs from the source",
        point.id
    );

    let s = api.status(pair);
    let shipped = s.stats.bytes_shipped - shipped_base;
    let outage_bytes = changed2.len() as u64 * CHUNK;
    step(format!("shipped {shipped} B after the restart; {outage_bytes} B changed while both were down"));
    assert!(
        shipped >= outage_bytes * 9 / 10,
        "only {shipped} B shipped after the restart, but {outage_bytes} B of random data changed while both were down"
    );
    assert!(
        shipped <= (changed1.len() + changed2.len()) as u64 * CHUNK * 2 + 2 * MIB && shipped <= DISK_SIZE / 8,
        "{shipped} B shipped after the restart of a {DISK_SIZE} B disk with {} chunks changed: not a resume",
        changed1.len() + changed2.len()
    );
    let points = api.points(pair);
    let baselines: Vec<u64> = points.iter().filter(|p| p.kind == PointKind::Baseline).map(|p| p.id).collect();
    assert_eq!(baselines, vec![baseline.id], "a new baseline was committed after the restart: {:?}", ids(&points));
    assert!(points.iter().all(|p| p.lineage == lineage), "points of another lineage: {points:?}");
    assert_eq!(api.export_full(pair, "latest", 0, DISK_SIZE), source, "latest point differs from the source");
}
