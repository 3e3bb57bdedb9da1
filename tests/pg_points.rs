//! Recovery points a database can start from: PostgreSQL 15 runs on two protected loop
//! devices (PGDATA on one, pg_wal on the other) under a pgbench TPC-B-like load and a writer
//! that records every commit the moment it is acknowledged. An agent with the tracefs tracker
//! protects both devices as one pair, cutting a point every second, and two app-consistent
//! points (both filesystems frozen) are cut during the load. Then points cut during the load
//! are restored from the standby's exports and PostgreSQL is started on each: it must start
//! (crash recovery), `pg_amcheck --all --heapallindexed` must find nothing, the pgbench sums
//! must agree, and every commit acknowledged before the point's cut must be there.
//!
//! - `pg_points_at_full_speed`: the agent at full speed.
//! - `pg_points_on_a_slow_link`: after the first copy, the agent's link is capped at 4 MiB/s
//!   (`DRPAIR_TEST_THROTTLE_BPS`), below what the load changes per second. When a pass read its
//!   chunks while sending them, a cap like this made it read an epoch's chunks seconds after
//!   the cut (with `--no-spool`, 4 of 6 points failed: PostgreSQL could not find its checkpoint
//!   or redo record, or started with corrupt heap pages and acknowledged commits missing);
//!   reading at the cut into the spool, the points must pass all the same.
//! - `pg_check_detects_a_corrupt_page`: the check can fail: a point that passed, with a heap
//!   page of pgbench_accounts overwritten in the restored copy, fails, naming the corruption.

use drpair_e2e::postgres::{self as pg, PointCheck, ProtectedDb, Restored};
use drpair_e2e::tracking::TraceInstance;
use drpair_e2e::{AgentSpec, Api, Daemon, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{Consistency, RecoveryPoint};
use std::time::{Duration, Instant};

const LOAD_SECS: u64 = 25;
/// Points cut during the load that are checked (besides the frozen ones).
const SAMPLE: usize = 6;
const LONG: Duration = Duration::from_secs(240);

/// Prints why the test cannot run and returns true (the test then ends, skipped).
fn skipped(test: &str) -> bool {
    match pg::unavailable() {
        Some(why) => {
            eprintln!("{test}: SKIPPED: {why}");
            true
        }
        None => false,
    }
}

/// `POST /api/v1/pairs/{pair}/points {"wait":true,"freeze":[…]}`: the committed point, or the
/// API's answer when there is none.
fn freeze_point(api: &Api, pair: &str, mounts: &[String]) -> Result<RecoveryPoint, String> {
    let body = serde_json::json!({"wait": true, "timeout_seconds": 180, "freeze": mounts});
    let r = api.post(&format!("/api/v1/pairs/{pair}/points"), "application/json", body.to_string().as_bytes());
    if r.status != 200 {
        return Err(format!("HTTP {}: {}", r.status, r.text()));
    }
    let j = r.json();
    serde_json::from_value(j["point"].clone()).map_err(|e| format!("no point in {j}: {e}"))
}

/// Up to `n` points spread evenly over `pts` (first and last included).
fn spread(pts: &[RecoveryPoint], n: usize) -> Vec<RecoveryPoint> {
    if pts.len() <= n {
        return pts.to_vec();
    }
    let mut idx: Vec<usize> = (0..n).map(|i| i * (pts.len() - 1) / (n - 1)).collect();
    idx.dedup();
    idx.into_iter().map(|i| pts[i].clone()).collect()
}

struct Row {
    point: RecoveryPoint,
    /// A freeze was asked for this point: did it work?
    frozen: Option<bool>,
    check: PointCheck,
}

fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:>5} {:>7} {:<15} {:<6} {:>8} {:>6} {:>7} {:>7} {:>7} {:>6}  {}\n",
        "point",
        "cut+ms",
        "consistency",
        "freeze",
        "read_win",
        "exceed",
        "changed",
        "shipped",
        "lag",
        "check",
        "verdict"
    );
    let first = rows.iter().map(|r| r.point.time_unix_ms).min().unwrap_or(0);
    let mib = |b: u64| format!("{:.1}M", b as f64 / MIB as f64);
    for r in rows {
        let p = &r.point;
        out.push_str(&format!(
            "{:>5} {:>7} {:<15} {:<6} {:>8} {:>6} {:>7} {:>7} {:>7} {:>5.1}s  {}\n",
            p.id,
            p.time_unix_ms - first,
            p.consistency.as_str(),
            match r.frozen {
                None => "-",
                Some(true) => "ok",
                Some(false) => "FAILED",
            },
            p.read_window_ms.map_or("-".into(), |w| format!("{w}ms")),
            p.window_exceeded,
            mib(p.sizes.changed_bytes),
            mib(p.sizes.shipped_bytes),
            format!("{}ms", p.committed_unix_ms.saturating_sub(p.time_unix_ms)),
            r.check.took.as_secs_f64(),
            r.check.summary()
        ));
    }
    out
}

/// A protected database, a standby, and an agent (tracefs, 1 s cuts) protecting both disks as
/// `pair`, its first copy done.
fn protected_pair(env: &TestEnv, pair: &str) -> (ProtectedDb, TraceInstance, Standby, AgentSpec, Daemon) {
    let db = ProtectedDb::create(env);
    let trace = TraceInstance::of_pair(pair);
    let sb = Standby::start(env, None);
    let mut spec = AgentSpec::new(env, &sb, pair, &db.disks());
    spec.tracker = "tracefs".into();
    spec.cut_interval = "1s".into();
    let mut agent = spec.spawn(env, "agent");
    wait_ready(&sb.api(), pair, &mut agent, LONG);
    (db, trace, sb, spec, agent)
}

/// The whole scenario; `throttle`: the agent's pass cap.
fn points_under_load(name: &str, pair: &str, throttle: Option<u64>) {
    let t0 = Instant::now();
    let env = TestEnv::new(name);
    let (db, _trace, sb, mut spec, mut agent) = protected_pair(&env, pair);
    let api = sb.api();
    step(format!("baseline copied after {:.1}s", t0.elapsed().as_secs_f64()));
    // The link is capped after the first copy (which would take minutes through it).
    if throttle.is_some() {
        agent.term(Duration::from_secs(30));
        spec.throttle_bps = throttle;
        agent = spec.spawn(&env, "agent-slow");
        wait_connected(&api, pair, true, LONG);
        step(format!("agent restarted with its link capped at {} bytes/s", throttle.unwrap_or(0)));
    }

    let load = db.start_load(&env, LOAD_SECS);
    let load_t = Instant::now();
    let mounts = db.mounts();
    let mut frozen: Vec<Result<RecoveryPoint, String>> = vec![];
    for at in [8, 16] {
        if let Some(d) = Duration::from_secs(at).checked_sub(load_t.elapsed()) {
            std::thread::sleep(d);
        }
        let t = Instant::now();
        let r = freeze_point(&api, pair, &mounts);
        match &r {
            Ok(p) => step(format!(
                "frozen point {}: {:?}/{} in {:.1}s, quiesce {:?}",
                p.id,
                p.kind,
                p.consistency.as_str(),
                t.elapsed().as_secs_f64(),
                p.quiesce
            )),
            Err(e) => step(format!("frozen point request failed: {e}")),
        }
        frozen.push(r);
    }
    if let Some(d) = Duration::from_secs(LOAD_SECS).checked_sub(load_t.elapsed()) {
        std::thread::sleep(d);
    }
    let result = load.stop();
    step(format!("pgbench: {}", result.tps()));
    assert!(result.pgbench_ok, "pgbench failed:\n{}", result.pgbench_output);
    assert!(
        result.acks.acks.len() > 100,
        "only {} acknowledged commits: {:?}",
        result.acks.acks.len(),
        result.acks.errors
    );
    // Every cut made during the load is committed once a point asked for now is.
    let t = Instant::now();
    let last = api.create_point_wait(pair);
    step(format!("caught up: point {} committed {:.1}s after the load ended", last.id, t.elapsed().as_secs_f64()));

    let points = api.points(pair);
    let during: Vec<RecoveryPoint> = points
        .iter()
        .filter(|p| p.time_unix_ms > result.started_ms && p.time_unix_ms < result.stopped_ms)
        .cloned()
        .collect();
    let frozen_ids: Vec<u64> = frozen.iter().filter_map(|r| r.as_ref().ok().map(|p| p.id)).collect();
    let windows: Vec<u64> = during.iter().filter_map(|p| p.read_window_ms).collect();
    step(format!(
        "{} points cut during the load; read windows min {:?} max {:?} ms; {} window_exceeded",
        during.len(),
        windows.iter().min(),
        windows.iter().max(),
        during.iter().filter(|p| p.window_exceeded).count()
    ));
    let plain: Vec<RecoveryPoint> = during.iter().filter(|p| !frozen_ids.contains(&p.id)).cloned().collect();
    let mut chosen: Vec<(RecoveryPoint, Option<bool>)> =
        spread(&plain, SAMPLE).into_iter().map(|p| (p, None)).collect();
    for id in &frozen_ids {
        let p = points.iter().find(|p| p.id == *id).expect("the frozen point is listed").clone();
        let achieved = p.quiesce.as_ref().is_some_and(|q| q.achieved);
        chosen.push((p, Some(achieved)));
    }
    chosen.sort_by_key(|(p, _)| p.id);
    step(format!("checking points {:?}", chosen.iter().map(|(p, _)| p.id).collect::<Vec<_>>()));

    let mut rows = vec![];
    for (p, frozen) in chosen {
        let check = pg::check_point(&env, &sb, pair, &p, &result.acks.acks);
        step(format!("point {} ({}): {}", p.id, p.consistency.as_str(), check.summary()));
        if let Some(t) = &check.log_tail {
            step(format!("point {}: PostgreSQL log tail:\n{t}", p.id));
        }
        rows.push(Row { point: p, frozen, check });
    }
    let report = table(&rows);
    step(format!(
        "{name}: {} of {} points pass:\n{report}",
        rows.iter().filter(|r| r.check.passed()).count(),
        rows.len()
    ));
    step(format!("{name}: took {:.1}s", t0.elapsed().as_secs_f64()));

    let frozen_failed: Vec<String> = frozen
        .iter()
        .filter_map(|r| match r {
            Err(e) => Some(e.clone()),
            Ok(p) if p.consistency != Consistency::AppConsistent => {
                Some(format!("point {} fuzzy: {:?}", p.id, p.quiesce))
            }
            Ok(_) => None,
        })
        .collect();
    if !frozen_failed.is_empty() {
        step(format!("freeze attempts that did not give an app-consistent point: {frozen_failed:?}"));
    }
    assert!(rows.len() >= 4, "too few points to check: {}", rows.len());
    let failed: Vec<&Row> = rows.iter().filter(|r| !r.check.passed()).collect();
    assert!(failed.is_empty(), "{} of {} points fail PostgreSQL's checks:\n{report}", failed.len(), rows.len());
    agent.term(Duration::from_secs(30));
}

#[test]
fn pg_points_at_full_speed() {
    if skipped("pg_points_at_full_speed") {
        return;
    }
    points_under_load("pg-points-full", "pg-full", None);
}

#[test]
fn pg_points_on_a_slow_link() {
    if skipped("pg_points_on_a_slow_link") {
        return;
    }
    points_under_load("pg-points-slow", "pg-slow", Some(4 * MIB));
}

#[test]
fn pg_check_detects_a_corrupt_page() {
    if skipped("pg_check_detects_a_corrupt_page") {
        return;
    }
    let pair = "pg-corrupt";
    let env = TestEnv::new("pg-corrupt");
    let (db, _trace, sb, _spec, mut agent) = protected_pair(&env, pair);
    let api = sb.api();
    let load = db.start_load(&env, 5);
    std::thread::sleep(Duration::from_secs(5));
    let result = load.stop();
    let p = api.create_point_wait(pair);

    let mut r = Restored::export(&env, &sb, pair, p.id, "corrupt").unwrap_or_else(|e| panic!("restore: {e}"));
    let good = r.check(p.time_unix_ms, &result.acks.acks);
    step(format!("point {} as restored: {}", p.id, good.summary()));
    assert!(good.passed(), "the point must pass before it is damaged: {}\n{:?}", good.summary(), good.log_tail);
    assert!(good.acks_expected > 0, "the check must have acks to look for");
    let what = r.corrupt_relation("pgbench_accounts").unwrap_or_else(|e| panic!("corrupt: {e}"));
    step(format!("overwrote {what}"));
    let bad = r.check(p.time_unix_ms, &result.acks.acks);
    drop(r);
    step(format!("point {} damaged: {}", p.id, bad.summary()));
    let failures = bad.failures();
    assert!(!bad.passed(), "a damaged heap page must fail the check");
    assert!(
        failures.iter().any(|f| f.contains("pg_amcheck") && f.contains("pgbench_accounts")),
        "the verdict must name the corruption and the relation: {failures:?}"
    );
    agent.term(Duration::from_secs(30));
}
