//! Replay from an older recovery point, and stop positions.
//!
//! (a) `start --type resume --from-point/--from-time`: the standby drops the points after the
//!     from point, its head goes back to it, and the agent ships again every chunk changed
//!     since, so the next point equals the source; the from point may be given as an id, as
//!     the `recovery_checkpoint` string, or as a time (the newest point cut at or before it);
//! (b) a replay to a point older than the agent's change history (state dir lost) is refused
//!     with 409, naming `reload`, and changes nothing; a replay within it works;
//! (c) `--stop-at-point`: the pair stops (STOPPED_AT_POINT) at the first point at or past it and
//!     commits nothing more while the disk changes, until `drpair resume`;
//! (d) `--stop-at-time`: likewise with STOPPED_AT_COMMIT_TIME (alias STOPPED_AT_TIME);
//! (e) `drpair stop`: NORMAL (alias STOPPED_BY_USER), then resume.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, rfc3339_ms, step, wait_ready};
use drpair_types::{PairState, PairStatus, PointKind, RecoveryPoint};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "lifecycle-replay-token";
const DISK_SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const CHUNK_COUNT: u64 = DISK_SIZE / CHUNK;
const LONG: Duration = Duration::from_secs(120);
/// The agents' cut interval (AgentSpec default).
const CUT_INTERVAL: Duration = Duration::from_secs(1);
/// Chunks in each change set.
const SET: usize = 40;

fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("ms fit u64")
}

fn ids(points: &[RecoveryPoint]) -> Vec<u64> {
    points.iter().map(|p| p.id).collect()
}

/// `n` disjoint sets of [`SET`] chunks, spread over the disk.
fn change_sets(n: usize, seed: u64) -> Vec<Vec<u64>> {
    let all = pick_chunks(CHUNK_COUNT, (n * SET) as u64, seed);
    (0..n).map(|i| all.iter().copied().skip(i).step_by(n).collect()).collect()
}

/// Rewrites chunk sets of an image in rounds, in a thread, until stopped: round `r` rewrites
/// `sets[r % sets.len()]` with fresh random bytes.
struct Writer {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl Writer {
    fn start(img: &Path, sets: Vec<Vec<u64>>, period: Duration, seed: u64) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (img, stop2, rounds2): (PathBuf, _, _) = (img.to_path_buf(), stop.clone(), rounds.clone());
        let handle = std::thread::spawn(move || {
            for (r, set) in (1u64..).zip(sets.iter().cycle()) {
                if stop2.load(Ordering::Relaxed) {
                    break;
                }
                overwrite_chunks(&img, CHUNK, set, seed + r);
                rounds2.store(r, Ordering::Relaxed);
                std::thread::sleep(period);
            }
        });
        Self { stop, rounds, handle: Some(handle) }
    }

    fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Relaxed)
    }

    /// Stops and joins; the image is quiet afterwards.
    fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().expect("writer").join().expect("writer thread panicked");
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

/// The starting point of every test: a pair replicating a random 64 MiB image.
struct Setup {
    img: PathBuf,
    original: blake3::Hash,
    sb: Standby,
    api: Api,
    spec: AgentSpec,
    agent: drpair_e2e::Daemon,
    pair: &'static str,
    /// Last field, so dropped last (fields drop in order): after the daemons were killed, it
    /// prints their logs when the test fails.
    _env: TestEnv,
}

fn setup(name: &str, pair: &'static str, seed: u64) -> Setup {
    let env = TestEnv::new(name);
    let img = env.path("disk0.img");
    let original = create_image(&img, DISK_SIZE, Fill::Random, seed);
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    wait_status(&api, pair, Some(&mut agent), "replicating", LONG, |s| s.state == PairState::Replicating);
    let baseline = api.points(pair)[0].clone();
    assert_eq!(baseline.kind, PointKind::Baseline);
    Setup { _env: env, img, original, sb, api, spec, agent, pair }
}

impl Setup {
    /// Rewrites `chunks`, cuts a point on demand; returns it with the source's hash.
    fn change_and_cut(&self, chunks: &[u64], seed: u64) -> (RecoveryPoint, blake3::Hash) {
        overwrite_chunks(&self.img, CHUNK, chunks, seed);
        let (_, h) = hash_file(&self.img);
        let p = self.api.create_point_wait(self.pair);
        step(format!("{} chunks changed, point {} cut", chunks.len(), p.id));
        (p, h)
    }

    fn export(&self, point: u64) -> blake3::Hash {
        self.api.export_full(self.pair, &point.to_string(), 0, DISK_SIZE)
    }

    /// Waits until the pair is stopped; returns the status.
    fn wait_stopped(&mut self, timeout: Duration) -> PairStatus {
        wait_status(&self.api, self.pair, Some(&mut self.agent), "stopped", timeout, |s| s.state == PairState::Stopped)
    }

    /// Waits for a committed point with an id above `above`.
    fn wait_point_above(&mut self, above: u64) -> PairStatus {
        wait_status(&self.api, self.pair, Some(&mut self.agent), &format!("a point after {above}"), LONG, |s| {
            s.last_point.as_ref().is_some_and(|p| p.id > above)
        })
    }

    /// Watches for `d`: the pair stays in `state`; returns the points committed after `since_ms`.
    fn watch_held(&self, d: Duration, state: PairState, since_ms: u64) -> Vec<RecoveryPoint> {
        let t = Instant::now();
        let first = self.api.status(self.pair);
        let mut last = first.clone();
        while t.elapsed() < d {
            std::thread::sleep(Duration::from_millis(250));
            last = self.api.status(self.pair);
            assert_eq!(last.state, state, "the pair left {state:?} by itself: {}", describe(&last));
        }
        assert!(
            last.stats.lag_seconds >= first.stats.lag_seconds + d.as_secs_f64() - 1.0,
            "lag_seconds must grow while {state:?}: {} then {} after {d:?}",
            first.stats.lag_seconds,
            last.stats.lag_seconds
        );
        self.api.points(self.pair).into_iter().filter(|p| p.committed_unix_ms >= since_ms).collect()
    }

    /// `POST …/points` is refused with 409 (API and CLI, exit 4).
    fn assert_points_refused(&self) {
        let r = self.api.post(&format!("/api/v1/pairs/{}/points", self.pair), "application/json", b"{}");
        r.assert_error(409, "InvalidPairState");
        self.sb.cli().run(&["points", "create", self.pair, "--wait", "--timeout", "20s"]).expect_code(4);
    }
}

/// Expectations of one replay.
struct Replay<'a> {
    /// How it is asked (for messages).
    how: &'a str,
    /// The point the head must go back to, and the source's hash when it was cut.
    target: &'a RecoveryPoint,
    target_hash: blake3::Hash,
    /// The source now (quiet): the next point must equal it.
    source: blake3::Hash,
    /// Chunks changed on the source since the target.
    changed_since: u64,
    min_deleted: u64,
}

/// Runs a replay with `ask` (which returns the ActionResponse JSON) and checks it end to end.
/// Returns the first point committed after it.
fn replay(su: &mut Setup, r: Replay<'_>, ask: impl FnOnce() -> Value) -> RecoveryPoint {
    let pair = su.pair;
    let before = su.api.status(pair);
    let lineage = before.lineage.expect("lineage");
    let listed = su.api.points(pair);
    let old_max = listed.last().expect("points").id;
    let later: Vec<u64> = listed.iter().filter(|p| p.id > r.target.id).map(|p| p.id).collect();
    assert!(listed.contains(r.target), "point {} is not listed: {:?}", r.target.id, ids(&listed));
    let t_req = now_ms();
    let j = ask();
    step(format!("replay {}: {}", r.how, j["message"]));
    let deleted = j["points_deleted"].as_u64().unwrap_or_else(|| panic!("no points_deleted: {j}"));
    assert!(
        deleted >= r.min_deleted && deleted >= later.len() as u64,
        "replay {} deleted {deleted} points; {} were listed after point {}: {later:?}",
        r.how,
        later.len(),
        r.target.id
    );
    assert_eq!(j["status"]["last_point"]["id"], r.target.id, "replay {}: the head must be the from point: {j}", r.how);
    assert_eq!(
        j["status"]["recovery_checkpoint"],
        format!("{lineage}:{}", r.target.epoch),
        "replay {}: the checkpoint must go back to the from point: {j}",
        r.how
    );
    assert_eq!(j["status"]["lineage"], lineage.to_string(), "a replay keeps the lineage: {j}");

    // Right after: the list ends at the target (anything later is new).
    let now = su.api.points(pair);
    let remaining_old: Vec<u64> = now.iter().filter(|p| later.contains(&p.id)).map(|p| p.id).collect();
    assert!(
        remaining_old.is_empty(),
        "replay {}: points {remaining_old:?} after {} are still listed",
        r.how,
        r.target.id
    );
    for p in now.iter().filter(|p| p.id > r.target.id) {
        assert!(p.committed_unix_ms >= t_req, "replay {}: point {} after the target predates the replay", r.how, p.id);
    }
    if now.last().map(|p| p.id) == Some(r.target.id) {
        step(format!("points list ends at {} right after the replay", r.target.id));
    }
    for p in listed.iter().filter(|p| p.id <= r.target.id) {
        assert!(now.contains(p), "replay {}: point {} up to the target changed or disappeared", r.how, p.id);
    }

    // The next point: newer than anything before, equal to the source.
    let s = su.wait_point_above(r.target.id);
    let after = su.api.points(pair);
    let next = after.iter().find(|p| p.id > r.target.id).expect("a new point").clone();
    let s2 = su.api.status(pair);
    let shipped = s2.stats.bytes_shipped - before.stats.bytes_shipped;
    let received = s2.stats.chunks_received - before.stats.chunks_received;
    let dedup = s2.stats.chunks_dedup - before.stats.chunks_dedup;
    step(format!(
        "after replay {}: point {} with {} changed chunks ({} shipped as data, {} B); since the replay {shipped} B shipped, {received} chunks received ({dedup} as known hashes); {}",
        r.how,
        next.id,
        next.sizes.changed_chunks,
        next.sizes.changed_chunks - next.sizes.dedup_chunks - next.sizes.zero_chunks,
        next.sizes.shipped_bytes,
        describe(&s)
    ));
    assert!(
        next.id > old_max,
        "replay {}: new point {} is not newer than the deleted ones (up to {old_max})",
        r.how,
        next.id
    );
    assert!(next.time_unix_ms >= t_req, "replay {}: point {} was cut before the replay", r.how, next.id);
    assert_eq!(next.lineage, lineage);
    assert_eq!(
        su.export(next.id),
        r.source,
        "replay {}: the first point after it ({}) does not equal the source",
        r.how,
        next.id
    );
    assert!(
        next.sizes.changed_chunks >= r.changed_since && next.sizes.changed_chunks <= CHUNK_COUNT / 4,
        "replay {}: the first point after it holds {} changed chunks; {} changed since point {}",
        r.how,
        next.sizes.changed_chunks,
        r.changed_since,
        r.target.id
    );
    assert!(
        received >= r.changed_since && received <= CHUNK_COUNT / 4,
        "replay {}: {received} chunks received since; {} changed since point {}",
        r.how,
        r.changed_since,
        r.target.id
    );
    assert!(shipped <= DISK_SIZE / 4, "replay {}: {shipped} B shipped for a {DISK_SIZE} B disk", r.how);
    // The chunks changed since the target are random: each crossed the link, as data or (held
    // already by the standby) as its hash.
    assert!(
        shipped + dedup * CHUNK >= r.changed_since * CHUNK * 9 / 10,
        "replay {}: {shipped} B shipped and {dedup} chunks as hashes for {} changed chunks",
        r.how,
        r.changed_since
    );
    assert_eq!(su.export(r.target.id), r.target_hash, "replay {}: the from point {} changed", r.how, r.target.id);
    next
}

#[test]
fn replay_from_older_points() {
    let mut su = setup("replay-older", "replay-a", 51);
    let pair = su.pair;
    let cli = su.sb.cli();
    let p0 = su.api.points(pair)[0].clone();
    let sets = change_sets(5, 52);

    // P1, P2, P3, each after changing its own chunks.
    let (p1, h1) = su.change_and_cut(&sets[0], 100);
    let (p2, h2) = su.change_and_cut(&sets[1], 200);
    let (p3, h3) = su.change_and_cut(&sets[2], 300);
    assert!(
        p0.id < p1.id && p1.id < p2.id && p2.id < p3.id,
        "point ids must grow: {}, {}, {}, {}",
        p0.id,
        p1.id,
        p2.id,
        p3.id
    );
    assert_ne!(h1, h2);
    assert_eq!(rfc3339_ms(p1.time_unix_ms), p1.time, "the test's time format differs from the standby's");
    for (p, h) in [(&p1, h1), (&p2, h2), (&p3, h3)] {
        assert_eq!(su.export(p.id), h, "point {} does not equal the source when it was cut", p.id);
    }
    assert_eq!(su.export(p0.id), su.original, "the baseline differs from the original source");

    // 1. By id, with the CLI.
    let target = p1.clone();
    let p1s = p1.id.to_string();
    let next = replay(
        &mut su,
        Replay {
            how: "--from-point ID",
            target: &target,
            target_hash: h1,
            source: h3,
            changed_since: 2 * SET as u64,
            min_deleted: 2,
        },
        || {
            let out = cli.run(&["start", pair, "--type", "resume", "--from-point", &p1s, "--yes", "--output", "json"]);
            out.ok();
            out.json()
        },
    );

    // 2. By the recovery_checkpoint string, with the API (a confirmation is needed).
    let s = su.api.status(pair);
    let cp = s.recovery_checkpoint.clone().unwrap_or_else(|| panic!("no recovery_checkpoint: {}", describe(&s)));
    let (cp_lineage, cp_epoch) = cp.rsplit_once(':').unwrap_or_else(|| panic!("checkpoint {cp} is not LINEAGE:EPOCH"));
    assert_eq!(Some(cp_lineage.to_string()), s.lineage.map(|l| l.to_string()), "{}", describe(&s));
    let cp_epoch: u64 = cp_epoch.parse().expect("checkpoint epoch");
    assert!(cp_epoch >= next.id, "checkpoint {cp} is older than point {}", next.id);
    let target =
        su.api.points(pair).into_iter().find(|p| p.epoch == cp_epoch).expect("the checkpoint's point is listed");
    let (p4, h4) = su.change_and_cut(&sets[3], 400);
    assert_eq!(su.export(p4.id), h4);
    let listed = su.api.points(pair);
    let start = format!("/api/v1/pairs/{pair}/start");
    let unconfirmed =
        su.api.post(&start, "application/json", json!({"type": "resume", "from_point": cp}).to_string().as_bytes());
    let e = unconfirmed.assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "confirm", "{e}");
    let wrong = json!({"type": "resume", "from_point": cp, "confirm": "another-pair"});
    su.api.post(&start, "application/json", wrong.to_string().as_bytes()).assert_error(400, "InvalidParameter");
    let still = su.api.points(pair);
    assert!(listed.iter().all(|p| still.contains(p)), "an unconfirmed replay changed the points");
    let api = su.api.clone();
    let next = replay(
        &mut su,
        Replay {
            how: "from_point LINEAGE:EPOCH",
            target: &target,
            target_hash: h3,
            source: h4,
            changed_since: SET as u64,
            min_deleted: 1,
        },
        || {
            let body = json!({"type": "resume", "from_point": cp, "confirm": pair});
            let r = api.post(&start, "application/json", body.to_string().as_bytes());
            assert_eq!(r.status, 200, "replay from {cp}: {}", r.text());
            r.json()
        },
    );

    // 3. By time, with the CLI: a time between two points picks the older one.
    let (_p5, h5) = su.change_and_cut(&sets[4], 500);
    let listed = su.api.points(pair);
    let after_next = listed.iter().find(|p| p.id > next.id).expect("a point after").clone();
    assert!(
        after_next.time_unix_ms > next.time_unix_ms + 1,
        "points {} and {} cut in the same ms",
        next.id,
        after_next.id
    );
    let t = next.time_unix_ms + (after_next.time_unix_ms - next.time_unix_ms) / 2;
    let t_text = rfc3339_ms(t);
    step(format!(
        "replay from time {t_text}: between point {} ({}) and {} ({})",
        next.id, next.time, after_next.id, after_next.time
    ));
    replay(
        &mut su,
        Replay {
            how: "--from-time",
            target: &next,
            target_hash: h4,
            source: h5,
            changed_since: SET as u64,
            min_deleted: 1,
        },
        || {
            let out =
                cli.run(&["start", pair, "--type", "resume", "--from-time", &t_text, "--yes", "--output", "json"]);
            out.ok();
            out.json()
        },
    );

    // Older points did not change through all this.
    assert_eq!(su.export(p0.id), su.original, "the baseline changed");
    assert_eq!(su.export(p1.id), h1, "point {} changed", p1.id);
    assert_eq!(su.api.export_full(pair, "latest", 0, DISK_SIZE), h5, "latest differs from the source");
    let s = su.api.status(pair);
    assert!(matches!(s.state, PairState::Replicating | PairState::Rescanning), "{}", describe(&s));
}

#[test]
fn replay_beyond_change_history_is_refused() {
    let mut su = setup("replay-history", "replay-b", 61);
    let pair = su.pair;
    let cli = su.sb.cli();
    let sets = change_sets(3, 62);
    let (p1, _) = su.change_and_cut(&sets[0], 100);
    let (p2, h2) = su.change_and_cut(&sets[1], 200);
    let s = su.api.status(pair);
    let h = s.change_history_from.unwrap_or_else(|| panic!("no change_history_from reported: {}", describe(&s)));
    assert!(
        h <= p1.epoch,
        "the change history of an agent running since the baseline starts at {h}, after point {}",
        p1.id
    );

    // The agent loses its state dir: it adopts the checkpoint, its history starts there.
    let st = su.agent.term(Duration::from_secs(30));
    assert!(st.success(), "agent exited with {st} after SIGTERM:\n{}", su.agent.tail(20));
    std::fs::remove_dir_all(&su.spec.state_dir).expect("remove the agent's state dir");
    let t_restart = now_ms();
    su.agent.restart();
    let s = wait_status(
        &su.api,
        pair,
        Some(&mut su.agent),
        "replicating again, with the new change history reported",
        LONG,
        |s| {
            s.state == PairState::Replicating
                && s.change_history_from.is_some_and(|h| h > p1.epoch)
                && s.last_point.as_ref().is_some_and(|p| p.time_unix_ms >= t_restart)
        },
    );
    let h = s.change_history_from.expect("history");
    step(format!("agent back with change history from {h}: {}", describe(&s)));
    assert!(h >= p2.epoch, "the fresh agent adopted checkpoint ≥ {} but reports history from {h}", p2.epoch);
    let lineage = s.lineage;

    // Replays to P1 are refused, by id and by time, with nothing changed.
    let listed = su.api.points(pair);
    let out = cli.run(&["start", pair, "--type", "resume", "--from-point", &p1.id.to_string(), "--yes"]);
    out.expect_code(4);
    assert!(out.stderr.contains("reload"), "the refusal must point to reload: {}", out.stderr);
    let start = format!("/api/v1/pairs/{pair}/start");
    for body in [
        json!({"type": "resume", "from_point": p1.id, "confirm": pair}),
        json!({"type": "resume", "from_time": p1.time, "confirm": pair}),
    ] {
        let r = su.api.post(&start, "application/json", body.to_string().as_bytes());
        let e = r.assert_error(409, "InvalidPairState");
        let msg = e["message"].as_str().unwrap_or_default();
        assert!(msg.contains("reload"), "409 for {body} must mention reload: {msg}");
    }
    let s = su.api.status(pair);
    assert_eq!(s.lineage, lineage, "a refused replay changed the lineage");
    assert!(matches!(s.state, PairState::Replicating | PairState::Rescanning), "{}", describe(&s));
    let after = su.api.points(pair);
    for p in &listed {
        assert!(after.contains(p), "a refused replay deleted or changed point {}", p.id);
    }
    assert!(
        after.last().map(|p| p.id) >= listed.last().map(|p| p.id),
        "a refused replay moved the head back: {:?} then {:?}",
        ids(&listed),
        ids(&after)
    );

    // A replay to a point within the history works; given as the exact time of the point's
    // cut (at or before). The disk has not changed since P2.
    let target = after.iter().find(|p| p.epoch >= h).expect("a point within the history").clone();
    assert_eq!(su.export(target.id), h2, "point {} differs from the source", target.id);
    let (_p3, h3) = su.change_and_cut(&sets[2], 300);
    let t = target.time.clone();
    replay(
        &mut su,
        Replay {
            how: "within the history, --from-time of the point",
            target: &target,
            target_hash: h2,
            source: h3,
            changed_since: SET as u64,
            min_deleted: 1,
        },
        || {
            let out = cli.run(&["start", pair, "--type", "resume", "--from-time", &t, "--yes", "--output", "json"]);
            out.ok();
            out.json()
        },
    );
}

#[test]
fn stop_at_point_at_time_and_by_user() {
    let mut su = setup("stop-positions", "stoppos", 71);
    let pair = su.pair;
    let cli = su.sb.cli();
    let writer_sets = || change_sets(4, 72).into_iter().map(|s| s[..16].to_vec()).collect::<Vec<_>>();

    // (c) Stop at point N = current epoch + 3, while the disk changes.
    let writer = Writer::start(&su.img, writer_sets(), Duration::from_millis(300), 1000);
    let s = su.api.status(pair);
    let head = s.stats.current_epoch.max(s.checkpoint.as_ref().map(|c| c.epoch).unwrap_or(0));
    let n = head + 3;
    let out = cli.run(&["start", pair, "--type", "resume", "--stop-at-point", &n.to_string(), "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"]["state"], "replicating", "a running pair keeps running until its stop position: {j}");
    assert_eq!(j["status"]["stop_at"]["point"], n, "stop position not shown: {j}");
    assert_eq!(j["points_deleted"], 0, "{j}");
    let s = su.wait_stopped(Duration::from_secs(60));
    step(format!("stopped: {}", describe(&s)));
    assert_eq!(s.stop_reason.as_deref(), Some("STOPPED_AT_POINT"), "{}", describe(&s));
    assert_eq!(s.state_label, "Stopped");
    assert!(s.stop_at.is_none(), "a reached stop position must be cleared: {:?}", s.stop_at);
    let stop_id = s.last_point.as_ref().map(|p| p.id).expect("last point");
    assert!(stop_id >= n, "stopped at point {stop_id}, before the stop position {n}");
    let points = su.api.points(pair);
    let past: Vec<u64> = points.iter().filter(|p| p.id >= n).map(|p| p.id).collect();
    assert_eq!(past, vec![stop_id], "the pair must stop at the first point at or past {n}: {:?}", ids(&points));
    let rounds = writer.rounds();
    let late = su.watch_held(CUT_INTERVAL * 4, PairState::Stopped, now_ms());
    assert!(writer.rounds() > rounds, "the disk did not change while stopped");
    assert!(late.is_empty(), "points committed after the stop position was reached: {:?}", ids(&late));
    assert_eq!(ids(&su.api.points(pair)), ids(&points), "the points changed while stopped");
    su.assert_points_refused();
    let out = cli.run(&["resume", pair, "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"]["state"], "replicating", "resume of a stopped pair: {j}");
    assert_eq!(j["status"]["stop_reason"], Value::Null, "{j}");
    su.wait_point_above(stop_id);
    writer.finish();
    let (_, source) = hash_file(&su.img);
    let p = su.api.create_point_wait(pair);
    assert_eq!(su.export(p.id), source, "point {} after the resume differs from the source", p.id);
    su.export(stop_id);

    // (d) Stop at a time 3 s ahead.
    let writer = Writer::start(&su.img, writer_sets(), Duration::from_millis(300), 2000);
    let t_stop = now_ms() + 3000;
    let t_text = rfc3339_ms(t_stop);
    let out = cli.run(&["start", pair, "--type", "resume", "--stop-at-time", &t_text, "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"]["state"], "replicating", "{j}");
    assert_eq!(j["status"]["stop_at"]["time"], t_text.as_str(), "stop time not shown: {j}");
    let s = su.wait_stopped(Duration::from_secs(60));
    step(format!("stopped: {}", describe(&s)));
    assert_eq!(s.stop_reason.as_deref(), Some("STOPPED_AT_COMMIT_TIME"), "{}", describe(&s));
    assert_eq!(s.stop_reason_alias.as_deref(), Some("STOPPED_AT_TIME"), "the earlier name as an alias");
    let points = su.api.points(pair);
    let at_or_after: Vec<&RecoveryPoint> = points.iter().filter(|p| p.time_unix_ms >= t_stop).collect();
    assert_eq!(
        at_or_after.len(),
        1,
        "the pair must stop at the first point cut at or after {t_text}: {:?}",
        at_or_after.iter().map(|p| (p.id, &p.time)).collect::<Vec<_>>()
    );
    let stop_point = at_or_after[0].clone();
    assert_eq!(s.last_point.as_ref().map(|p| p.id), Some(stop_point.id), "{}", describe(&s));
    assert!(
        stop_point.time_unix_ms < t_stop + 3000,
        "the stop point {} was cut at {}, long after the stop time {t_text}",
        stop_point.id,
        stop_point.time
    );
    let late = su.watch_held(CUT_INTERVAL * 4, PairState::Stopped, now_ms());
    assert!(late.is_empty(), "points committed after the stop time was reached: {:?}", ids(&late));
    let out = cli.run(&["start", pair, "--type", "resume", "--output", "json"]);
    out.ok();
    assert_eq!(out.json()["status"]["state"], "replicating", "start --type resume of a stopped pair: {}", out.stdout);
    su.wait_point_above(stop_point.id);

    // (e) Stop by the operator.
    let t_req = now_ms();
    let out = cli.run(&["stop", pair, "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["status"]["state"], "stopped", "{j}");
    assert_eq!(j["status"]["stop_reason"], "NORMAL", "{j}");
    assert_eq!(j["status"]["stop_reason_alias"], "STOPPED_BY_USER", "{j}");
    assert!(j["status"]["stop_date"].is_string() && j["status"]["last_stop_time"].is_string(), "{j}");
    let late = su.watch_held(CUT_INTERVAL * 6, PairState::Stopped, t_req);
    // An epoch already read in full when the stop came may still commit; nothing cut after it.
    assert!(late.len() <= 1, "{} points committed after the stop: {:?}", late.len(), ids(&late));
    for p in &late {
        assert!(
            p.time_unix_ms < t_req && p.committed_unix_ms < t_req + 2000,
            "point {} cut at {} committed at {} after the stop at {t_req}",
            p.id,
            p.time_unix_ms,
            p.committed_unix_ms
        );
    }
    let s = su.api.status(pair);
    assert_eq!(s.stop_reason.as_deref(), Some("NORMAL"), "{}", describe(&s));
    cli.run(&["stop", pair]).expect_code(4);
    cli.run(&["pause", pair]).expect_code(4);
    su.assert_points_refused();
    writer.finish();
    let (_, source) = hash_file(&su.img);
    let last_id = su.api.points(pair).last().expect("points").id;
    let out = cli.run(&["resume", pair, "--output", "json"]);
    out.ok();
    assert_eq!(out.json()["status"]["state"], "replicating", "{}", out.stdout);
    let s = su.wait_point_above(last_id);
    assert!(s.stop_reason.is_none(), "{}", describe(&s));
    let p = su.api.create_point_wait(pair);
    assert_eq!(su.export(p.id), source, "point {} after the resume differs from the source", p.id);
    assert_eq!(su.api.export_full(pair, "latest", 0, DISK_SIZE), source, "latest differs from the source");
}
