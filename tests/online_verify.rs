//! Online verify against the source (`POST /api/v1/pairs/{pair}/verify-source`): a loop device
//! replicated with the tracefs tracker has chunks changed behind the tracker's back — written
//! straight into the loop device's backing file, which the loop device's tracepoints never
//! see. The test shows they were not tracked (a point cut afterwards holds the old content
//! and lists no such change), then the verify finds exactly those chunks, names them, and
//! repairs them in a new point that equals the source byte for byte. Status, `GET`, /metrics
//! and the standby's log show the result; bad requests (unknown pair, paused pair, a second
//! verify while one runs, parameters, agent gone) are refused and change nothing.

use drpair_e2e::api::metric_value;
use drpair_e2e::dump::differing_chunks;
use drpair_e2e::image::{hash_file, sparse_image};
use drpair_e2e::lifecycle::action;
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::tracking::{AlignedBuf, TraceInstance, fill_random, tracked_chunks};
use drpair_e2e::{AgentSpec, Api, LoopDev, MIB, Standby, TestEnv, step, wait_ready};
use drpair_types::{MismatchedChunk, PairState, SourceVerifyState, SourceVerifyStatus};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::json;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

const PAIR: &str = "verify-src";
const SIZE: u64 = 256 * MIB;
const CHUNK: u64 = 65536;
const LONG: Duration = Duration::from_secs(240);
/// Chunks changed behind the tracker's back: data regions, and one in the zero tail (the
/// last quarter of the disk is never written), so the point held it as a zero chunk.
const BEHIND: [u64; 4] = [3, 1000, 3070, 3900];

/// Writes 4 KiB of random bytes into each chunk of `chunks` of the loop device's backing
/// file, bypassing the loop device (O_DIRECT when the filesystem allows it, then fsync).
fn write_behind_the_tracker(backing: &Path, chunks: &[u64], seed: u64) {
    let direct = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(backing);
    let (f, how) = match direct {
        Ok(f) => (f, "O_DIRECT"),
        Err(e) => {
            step(format!("O_DIRECT refused on {} ({e}); buffered writes + fsync", backing.display()));
            (OpenOptions::new().write(true).open(backing).expect("open backing file"), "buffered")
        }
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut buf = AlignedBuf::new(4096);
    for &c in chunks {
        rng.fill_bytes(buf.as_mut());
        f.write_all_at(buf.as_mut(), c * CHUNK + 8192).expect("write into the backing file");
    }
    f.sync_all().expect("fsync the backing file");
    step(format!("wrote chunks {chunks:?} into {} ({how}), not through the loop device", backing.display()));
}

/// Exports point `point` of disk 0 into `out`.
fn export_to(sb: &Standby, point: u64, out: &Path) {
    let url = format!("{}/api/v1/pairs/{PAIR}/points/{point}/disks/0/image", sb.url());
    let http = drpair_e2e::api::http_agent(sb.ca_file().as_deref(), std::time::Duration::from_secs(900));
    let mut req = http.get(&url);
    if let Some(t) = &sb.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let r = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(r.status().as_u16(), 200, "export of point {point}");
    let mut f = std::fs::File::create(out).expect("export file");
    let n = std::io::copy(&mut r.into_body().into_reader(), &mut f).expect("export stream");
    f.flush().expect("flush");
    assert_eq!(n, SIZE, "export of point {point} delivered {n} bytes");
}

fn verify(api: &Api, pair: &str) -> drpair_e2e::Reply {
    action(api, pair, "verify-source", &json!({}))
}

fn parse(r: &drpair_e2e::Reply) -> SourceVerifyStatus {
    serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("not a SourceVerifyStatus ({e}): {}", r.text()))
}

/// Waits for the running verify to end; returns it and the states seen meanwhile.
fn wait_verified(
    api: &Api,
    pair: &str,
    agent: &mut drpair_e2e::Daemon,
) -> (SourceVerifyStatus, Vec<SourceVerifyState>) {
    let mut seen = vec![];
    let s = wait_status(api, pair, Some(agent), "online verify finished", LONG, |s| {
        let v = s.source_verify.as_ref();
        if let Some(v) = v
            && seen.last() != Some(&v.state)
        {
            seen.push(v.state);
        }
        v.is_some_and(|v| !v.state.is_active())
    });
    (s.source_verify.expect("verify in status"), seen)
}

fn series<'a>(metrics: &'a str, name: &str, pair: &str) -> Vec<&'a str> {
    metrics.lines().filter(|l| l.starts_with(name) && l.contains(&format!("pair=\"{pair}\""))).collect()
}

#[test]
fn online_verify_finds_and_repairs_chunks_changed_behind_the_trackers_back() {
    let env = TestEnv::new("online-verify");
    let img = env.path("disk0.img");
    sparse_image(&img, SIZE);
    fill_random(&img, 0, SIZE * 3 / 4, 21);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(PAIR);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let before = api.create_point_wait(PAIR);
    assert_eq!(api.export_full(PAIR, &before.id.to_string(), 0, SIZE), hash_file(&img).1, "baseline ≠ source");

    // Bad input before any verify: unknown pair, none ever ran, parameters.
    action(&api, "no-such-pair", "verify-source", &json!({})).assert_error(404, "PairNotFound");
    api.get(&format!("/api/v1/pairs/{PAIR}/verify-source")).assert_error(404, "NotFound");
    let e = action(&api, PAIR, "verify-source", &json!({"deep": true})).assert_error(400, "InvalidParameter");
    assert_eq!(e["parameter"], "body", "{e}");
    // Paused: refused, nothing recorded, still paused.
    assert_eq!(action(&api, PAIR, "pause", &json!({})).status, 200);
    let e = verify(&api, PAIR).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("resume it first"), "{e}");
    let s = api.status(PAIR);
    assert_eq!((s.state, s.source_verify.is_none()), (PairState::Paused, true), "{}", describe(&s));
    api.get(&format!("/api/v1/pairs/{PAIR}/verify-source")).assert_error(404, "NotFound");
    assert_eq!(action(&api, PAIR, "resume", &json!({})).status, 200);
    wait_status(&api, PAIR, Some(&mut agent), "replicating again", LONG, |s| s.state == PairState::Replicating);

    // Behind the tracker's back. A point cut afterwards still holds the old content: the
    // writes were not tracked (the changes API lists none of those chunks either).
    write_behind_the_tracker(&img, &BEHIND, 77);
    let (_, source) = hash_file(&img);
    let stale = api.create_point_wait(PAIR);
    let tracked = tracked_chunks(&api, PAIR, stale.id, before.id);
    assert!(BEHIND.iter().all(|c| !tracked.contains(c)), "the tracker saw writes to the backing file: {tracked:?}");
    export_to(&sb, stale.id, &env.path("stale.img"));
    let differ = differing_chunks(&env.path("stale.img"), &img, CHUNK);
    assert_eq!(differ, BEHIND.to_vec(), "point {} vs the source", stale.id);
    step(format!("point {} differs from the source in chunks {differ:?}: untracked", stale.id));

    // The verify; a second request while it runs is refused and names it.
    let t0 = Instant::now();
    let r = verify(&api, PAIR);
    assert_eq!(r.status, 202, "verify-source: {}", r.text());
    let asked = parse(&r);
    assert!(asked.state.is_active(), "{asked:?}");
    let e = verify(&api, PAIR).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("already"), "{e}");
    let (v, seen) = wait_verified(&api, PAIR, &mut agent);
    let took = t0.elapsed();
    let pass_ms = v.finished_unix_ms.unwrap() - v.requested_unix_ms;
    step(format!(
        "verify of {} MiB took {took:?} ({pass_ms} ms request to commit); states {seen:?}: {v:?}",
        SIZE / MIB
    ));
    assert_eq!(v.state, SourceVerifyState::Done, "{v:?}");
    assert_eq!(v.mismatched_chunks, BEHIND.len() as u64, "{v:?}");
    let want: Vec<MismatchedChunk> = BEHIND.iter().map(|&chunk| MismatchedChunk { disk: 0, chunk }).collect();
    assert_eq!(v.sample, want, "the sample names the chunks changed behind the tracker's back");
    assert_eq!(v.chunks_compared, SIZE / CHUNK, "{v:?}");
    assert!(v.shipped_chunks >= v.mismatched_chunks, "{v:?}");
    assert_eq!(v.progress_percent, 100.0);
    let against = v.against_point.expect("against_point");
    assert!(against >= stale.id, "compared with point {against}, older than the newest {}", stale.id);
    let repair = v.repair_point.expect("repair_point");
    assert!(repair > against, "{v:?}");
    assert!(v.message.contains("repaired"), "{}", v.message);

    // The repair point equals the source; the pair went on replicating.
    let points = api.points(PAIR);
    assert!(points.iter().any(|p| p.id == repair), "repair point {repair} not listed");
    assert_eq!(api.export_full(PAIR, &repair.to_string(), 0, SIZE), source, "repair point ≠ source");
    let s = api.status(PAIR);
    assert_eq!(s.state, PairState::Replicating, "{}", describe(&s));
    assert!(s.ready_for_failover);
    assert_eq!(s.source_verify.as_ref(), Some(&v), "status shows the verify");
    let got = api.get(&format!("/api/v1/pairs/{PAIR}/verify-source"));
    assert_eq!(got.status, 200);
    assert_eq!(parse(&got), v);
    let m = api.metrics();
    let gauge = format!("drpair_source_verify_mismatched_chunks{{pair=\"{PAIR}\"}}");
    assert_eq!(metric_value(&m, &gauge), Some(BEHIND.len() as f64), "{:?}", series(&m, "drpair_source_verify", PAIR));
    let progress = format!("drpair_source_verify_progress_ratio{{pair=\"{PAIR}\"}}");
    assert_eq!(metric_value(&m, &progress), Some(1.0));
    let runs = series(&m, "drpair_source_verify_runs_total", PAIR);
    assert!(runs.iter().any(|l| l.contains("result=\"mismatched\"") && l.ends_with(" 1")), "{runs:?}");
    let log = std::fs::read_to_string(env.path("standby.log")).unwrap();
    let warned: Vec<&str> = log.lines().filter(|l| l.contains("WARN") && l.contains("online verify")).collect();
    assert!(
        warned.iter().any(|l| l.contains("differed") && l.contains("disk 0 chunk 3")),
        "no warning naming the mismatches in the standby log: {warned:#?}"
    );
    assert!(log.contains("online verify started"), "the standby does not log the start");

    // Verified again: everything matches now.
    assert_eq!(verify(&api, PAIR).status, 202);
    let (again, _) = wait_verified(&api, PAIR, &mut agent);
    step(format!("second verify: {again:?}"));
    assert_eq!((again.state, again.mismatched_chunks, again.sample.len()), (SourceVerifyState::Done, 0, 0));
    let m = api.metrics();
    assert_eq!(metric_value(&m, &gauge), Some(0.0));
    assert!(series(&m, "drpair_source_verify_runs_total", PAIR).iter().any(|l| l.contains("result=\"matched\"")));

    // The agent gone: refused, the last result kept.
    agent.term(Duration::from_secs(30));
    drpair_e2e::wait_connected(&api, PAIR, false, LONG);
    let e = verify(&api, PAIR).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("not connected"), "{e}");
    assert_eq!(api.status(PAIR).source_verify, Some(again));
}

/// Waits until the pair's verify is running and has compared some chunks.
fn wait_running(api: &Api, pair: &str, agent: &mut drpair_e2e::Daemon) -> SourceVerifyStatus {
    let s = wait_status(api, pair, Some(agent), "online verify running", LONG, |s| {
        s.source_verify.as_ref().is_some_and(|v| v.state == SourceVerifyState::Running && v.chunks_compared > 0)
    });
    let v = s.source_verify.expect("verify");
    step(format!("verify running: {:.1}% ({} chunks compared)", v.progress_percent, v.chunks_compared));
    v
}

#[test]
fn a_verify_cut_short_fails_in_plain_words_and_can_be_asked_again() {
    let pair = "verify-cut";
    let env = TestEnv::new("online-verify-cut");
    let size = 64 * MIB;
    let img = env.path("disk0.img");
    sparse_image(&img, size);
    fill_random(&img, 0, size / 2, 5);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(pair);
    let mut sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    // Every pass reads the whole disk in about 4 s: long enough to cut it short.
    spec.throttle_bps = Some(16_000_000);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);

    // The agent dies during the pass: the verify fails, saying so.
    assert_eq!(verify(&api, pair).status, 202);
    wait_running(&api, pair, &mut agent);
    agent.kill9();
    let s = wait_status(&api, pair, None, "verify failed", LONG, |s| {
        s.source_verify.as_ref().is_some_and(|v| v.state == SourceVerifyState::Failed)
    });
    let v = s.source_verify.unwrap();
    assert!(v.message.contains("connection ended"), "{v:?}");
    assert!(v.finished_unix_ms.is_some() && v.repair_point.is_none(), "{v:?}");
    let m = api.metrics();
    assert!(series(&m, "drpair_source_verify_runs_total", pair).iter().any(|l| l.contains("result=\"failed\"")), "{m}");

    // Back after an unclean stop: a differential resync runs, and a verify waits for it.
    let mut agent = spec.spawn(&env, "agent-after-kill");
    wait_status(&api, pair, Some(&mut agent), "rescanning", LONG, |s| s.state == PairState::Rescanning);
    let e = verify(&api, pair).assert_error(409, "InvalidPairState");
    assert!(e["message"].as_str().unwrap().contains("differential resync"), "{e}");
    assert_eq!(api.status(pair).source_verify.map(|v| v.state), Some(SourceVerifyState::Failed), "changed");
    wait_status(&api, pair, Some(&mut agent), "replicating", LONG, |s| s.state == PairState::Replicating);

    // The standby dies during the pass: after its restart the verify is failed, not running.
    assert_eq!(verify(&api, pair).status, 202);
    wait_running(&api, pair, &mut agent);
    sb.kill9();
    sb.restart();
    let v = api.status(pair).source_verify.expect("verify kept");
    assert_eq!(v.state, SourceVerifyState::Failed, "{v:?}");
    assert!(v.message.contains("standby restarted"), "{v:?}");

    // Asked again, it completes: nothing was changed behind the tracker's back.
    drpair_e2e::wait_connected(&api, pair, true, LONG);
    wait_status(&api, pair, Some(&mut agent), "replicating", LONG, |s| s.state == PairState::Replicating);
    assert_eq!(verify(&api, pair).status, 202);
    let (v, _) = wait_verified(&api, pair, &mut agent);
    assert_eq!((v.state, v.mismatched_chunks), (SourceVerifyState::Done, 0), "{v:?}");
    let repair = v.repair_point.expect("repair point").to_string();
    assert_eq!(api.export_full(pair, &repair, 0, size), hash_file(&img).1);
    agent.term(Duration::from_secs(30));
}
