//! Prune and space reclaim on an S3-compatible object store (issue 23, point 2's garbage
//! side), on a real 3-node garage cluster with replication factor 3.
//!
//! A standby with `store = "s3"` (packs of 1 MiB, `orphan_grace = "0s"`) protects a loop
//! device: a baseline, point P1 rewriting 320 chunks, P2 rewriting three quarters of those
//! again (so P1's packs keep a quarter of their bytes live once P1 goes: sparse), P3 some
//! more. P2 and P3 are pinned; retention keeps the newest point besides. Then, while a writer
//! keeps rewriting a region of the device and the agent replicates, a prune runs and the
//! standby is killed -9 as soon as its log says a rewrite uploaded a new pack (between the
//! upload and the switch of the index, or just after). Started again, it finishes by itself
//! (the start-up reclaim rewrites what is left and sweeps the orphan packs); a last prune
//! runs unkilled. Then: every kept point exports equal to the device as it was at its cut,
//! verify finds nothing damaged, the storage report's garbage and pack bytes shrank and no
//! pack is left sparse, the bucket holds fewer objects and bytes (garage's own count), and
//! the Prometheus text has the pack gauges.
//!
//! Every garage node down during a prune: the prune still removes its points and deletes their
//! chunks' entries, and says in `reclaim.packs.error` (naming the store) why the packs were not
//! rewritten; with garage back, the next reclaim rewrites them and the points stay equal.
//!
//! Bad input: a config with `rewrite_below = 1.5` is refused by `drpaird config check` and
//! by the standby, naming the key and the range, and changes nothing (the bucket's objects,
//! the points).
//!
//! Skipped, saying so, when garage is not installed (`scripts/setup.sh` installs it).

use drpair_e2e::garage::Garage;
use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::maintenance::Maint;
use drpair_e2e::{AgentSpec, LoopDev, MIB, Standby, TestEnv, step, wait_connected, wait_ready, wait_until};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const PAIR: &str = "s3-reclaim";
const TOKEN: &str = "s3-reclaim-token";
const SIZE: u64 = 48 * MIB;
const CHUNK: u64 = 64 << 10;
const CHUNKS: u64 = SIZE / CHUNK;
/// The writer rewrites chunks of the last 4 MiB.
const REGION_FIRST: u64 = CHUNKS - 64;
const LONG: Duration = Duration::from_secs(180);
const BUCKET: &str = "drpair-reclaim";

/// `[standby]` with `store = "s3"` on node 0 of `g`, and `extra` lines in `[standby.s3]`.
fn s3_config(env: &TestEnv, g: &Garage, name: &str, extra: &str) -> PathBuf {
    g.standby_config(env, 0, name, "standby-r", &format!("pack_size = \"1MiB\"\ncache = \"16MiB\"\n{extra}"))
}

/// Rewrites random chunks of the region until stopped.
struct Writer {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<u64>>,
}

impl Writer {
    fn start(dev: &Path) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, dev) = (stop.clone(), dev.to_path_buf());
        let handle = std::thread::spawn(move || {
            let mut round = 0u64;
            while !s.load(Ordering::SeqCst) {
                let picked: Vec<u64> = pick_chunks(64, 4, 7000 + round).into_iter().map(|c| REGION_FIRST + c).collect();
                overwrite_chunks(&dev, CHUNK, &picked, 9000 + round);
                round += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            round
        });
        Writer { stop, handle: Some(handle) }
    }

    fn stop(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.take().map_or(0, |h| h.join().expect("writer"))
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Garage's object count once it settles under `below` (its counters lag the writes).
fn objects_below(g: &Garage, below: u64) -> u64 {
    wait_until(&format!("garage to count fewer than {below} objects"), Duration::from_secs(60), || {
        match g.object_count() {
            n if n < below => Ok(n),
            n => Err(format!("{n} objects")),
        }
    })
}

#[test]
fn prune_and_reclaim_on_garage_under_load_with_a_kill_during_the_rewrite() {
    let env = TestEnv::new("s3-reclaim");
    let test = "prune_and_reclaim_on_garage_under_load_with_a_kill_during_the_rewrite";
    let Some(g) = Garage::start(&env, test, BUCKET) else { return };
    let cfg = s3_config(&env, &g, "standby-s3.toml", "rewrite_below = 0.5\norphan_grace = \"0s\"\n");
    let img = env.path("disk0.img");
    let baseline_hash = create_image(&img, SIZE, Fill::Random, 31);
    let lo = LoopDev::attach(&img);
    let mut sb = Standby::start_with(
        &env,
        Some(TOKEN),
        &["--config", cfg.to_str().unwrap(), "--prune-interval", "0", "--verify-interval", "0"],
    );
    let api = sb.api();
    let m = Maint::new(&sb, PAIR);
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let baseline = api.points(PAIR)[0].id;

    // P1 rewrites 320 chunks; P2 three quarters of them again; P3 100 more anywhere.
    let first = pick_chunks(REGION_FIRST, 320, 1);
    let again: Vec<u64> = first.iter().enumerate().filter(|(i, _)| i % 4 != 0).map(|(_, c)| *c).collect();
    let mut kept = vec![(baseline, baseline_hash)];
    let cut = |chunks: &[u64], seed: u64| {
        overwrite_chunks(&lo.dev, CHUNK, chunks, seed);
        drpair_e2e::sh("sync", &[]);
        let p = api.create_point_wait(PAIR);
        (p.id, hash_file(&lo.dev).1)
    };
    let p1 = cut(&first, 101);
    let p2 = cut(&again, 102);
    let p3 = cut(&pick_chunks(REGION_FIRST, 100, 3), 103);
    for (id, _) in [p2, p3] {
        assert_eq!(m.pin(&id.to_string(), true).status, 200, "pin {id}");
    }
    kept.extend([p2, p3]);
    step(format!("baseline {baseline}, P1 {} (to go), P2 {} and P3 {} pinned", p1.0, p2.0, p3.0));
    assert_eq!(m.set_retention(&json!({"grid": "1x1s", "keep_last": 1})).status, 200);

    let before = m.storage().object_store.expect("the storage report has the object store's packs");
    let objects_before = g.object_count();
    let bytes_before = g.size_bytes();
    step(format!(
        "before the prune: {} packs, {:.1} MiB in packs, {:.1} MiB live, {:.1} MiB garbage; garage: {objects_before} objects, {}",
        before.packs,
        before.pack_bytes as f64 / MIB as f64,
        before.live_bytes as f64 / MIB as f64,
        before.garbage_bytes as f64 / MIB as f64,
        g.size_text()
    ));

    // Under load: the writer runs, the agent ships; the prune is killed at its first upload.
    let writer = Writer::start(&lo.dev);
    std::thread::sleep(Duration::from_secs(3));
    let log_mark = sb.proc.log().len();
    let m2 = m.clone();
    let req = std::thread::spawn(move || m2.try_post("/prune", &json!({"dry_run": false})));
    let t0 = Instant::now();
    while !req.is_finished() && t0.elapsed() < LONG {
        if sb.proc.log().get(log_mark..).unwrap_or_default().contains("pack rewrite: new pack uploaded") {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    sb.kill9();
    let finished = req.join().expect("prune thread").is_ok();
    let log = sb.proc.log();
    let seen = log.get(log_mark..).unwrap_or_default();
    assert!(seen.contains("pack rewrite: new pack uploaded"), "the prune rewrote no pack:\n{}", sb.proc.tail(40));
    let switched = seen.matches("pack rewrite: index switched").count();
    // The garbage the first reclaim made: the chunks it deleted (all in packs).
    let freed: u64 = seen
        .lines()
        .filter(|l| l.contains("space reclaimed"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("bytes_freed=")?.parse::<u64>().ok()))
        .sum();
    assert!(freed > 10 * MIB, "the prune's reclaim freed only {freed} bytes:\n{seen}");
    step(format!(
        "kill -9 {:?} into the prune ({}), {} group(s) switched before it; its reclaim made {:.1} MiB of garbage",
        t0.elapsed(),
        if finished { "it had finished" } else { "cut short" },
        switched,
        freed as f64 / MIB as f64
    ));
    sb.restart();
    wait_connected(&api, PAIR, true, LONG);
    let after_start = sb.proc.log_of_last_start();
    step(format!(
        "restarted: {} orphan pack(s) swept, {} rewrite group(s) finished at start-up",
        after_start.matches("orphan pack deleted").count(),
        after_start.matches("pack rewrite: index switched").count()
    ));

    // Another prune, not killed, with the writer still running; then the writer stops.
    let r = m.prune_ok(false);
    step(format!("prune after the restart: {:?}", r.reclaim));
    let rounds = writer.stop();
    step(format!("writer stopped after {rounds} rounds"));
    drpair_e2e::sh("sync", &[]);
    let last = api.create_point_wait(PAIR);
    kept.push((last.id, hash_file(&lo.dev).1));
    let fin = m.prune_ok(false);
    step(format!("last prune: {:?}", fin.reclaim));

    // Every kept point equals the device at its cut; nothing damaged.
    let left: Vec<u64> = api.points(PAIR).iter().map(|p| p.id).collect();
    assert!(!left.contains(&p1.0), "P1 {} was not pruned: {left:?}", p1.0);
    for (id, h) in &kept {
        assert!(left.contains(id), "kept point {id} went: {left:?}");
        assert_eq!(
            api.export_full(PAIR, &id.to_string(), 0, SIZE),
            *h,
            "point {id} differs from the device at its cut"
        );
    }
    let v = m.verify_ok(None);
    assert_eq!(v.points_damaged, 0, "verify after the reclaim: {v:?}");
    step(format!("points {:?} equal to the device at their cuts; verify clean over {} chunks", left, v.chunks_checked));

    // Garbage shrank; the bucket holds fewer objects and bytes.
    let after = m.storage().object_store.expect("object store usage");
    step(format!(
        "after: {} packs, {:.1} MiB in packs, {:.1} MiB live, {:.1} MiB garbage, {} sparse",
        after.packs,
        after.pack_bytes as f64 / MIB as f64,
        after.live_bytes as f64 / MIB as f64,
        after.garbage_bytes as f64 / MIB as f64,
        after.sparse_packs
    ));
    assert_eq!(after.sparse_packs, 0, "{after:?}");
    assert!(after.garbage_bytes * 2 <= after.pack_bytes, "{after:?}");
    assert!(after.garbage_bytes * 4 < freed, "garbage did not shrink: {freed} bytes made, {after:?}");
    assert!(after.pack_bytes < before.pack_bytes, "pack bytes did not drop: {before:?} → {after:?}");
    let objects_after = objects_below(&g, objects_before);
    let bytes_after = wait_until("garage's byte count to drop", Duration::from_secs(60), || match g.size_bytes() {
        b if b < bytes_before => Ok(b),
        b => Err(format!("{b} bytes, {bytes_before} before")),
    });
    step(format!(
        "garage: {objects_before} → {objects_after} objects, {:.1} → {:.1} MB",
        bytes_before as f64 / 1e6,
        bytes_after as f64 / 1e6
    ));
    let metrics = api.metrics();
    for name in [
        "drpair_store_packs ",
        "drpair_store_pack_bytes ",
        "drpair_store_pack_garbage_bytes ",
        "drpair_store_pack_live_bytes ",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}");
    }

    // Bad input: an out-of-range threshold is refused and changes nothing.
    sb.term();
    let bad = s3_config(&env, &g, "bad-threshold.toml", "rewrite_below = 1.5\n");
    let want = "rewrite_below: 1.5 is outside 0..0.9";
    let out = Command::new(drpair_e2e::bin("drpaird")).args(["config", "check"]).arg(&bad).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && said.contains(want), "config check: {said}");
    let out = Command::new(drpair_e2e::bin("drpaird"))
        .args(["standby", "--config"])
        .arg(&bad)
        .arg("--data-dir")
        .arg(&sb.data_dir)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && said.contains(want), "standby with a bad threshold: {said}");
    assert_eq!(g.object_count(), objects_after, "a refused start changed the bucket");
    sb.restart();
    let (id, h) = kept.last().unwrap();
    assert_eq!(api.export_full(PAIR, &id.to_string(), 0, SIZE), *h, "point {id} after the refused start");
    step(format!("rewrite_below = 1.5 refused ({want}); bucket and points unchanged"));
    drop(agent);
}

/// Every garage node down during a prune: the prune still removes its points and deletes
/// their chunks' entries (local), and says in `reclaim.packs.error` why the packs were not
/// rewritten, naming the store; with garage back, the next reclaim rewrites them, and every
/// kept point exports equal.
#[test]
fn the_store_down_during_a_prune_leaves_the_rewrite_to_the_next_reclaim() {
    let env = TestEnv::new("s3-reclaim-down");
    let test = "the_store_down_during_a_prune_leaves_the_rewrite_to_the_next_reclaim";
    let Some(mut g) = Garage::start(&env, test, BUCKET) else { return };
    let cfg = s3_config(&env, &g, "standby-s3.toml", "orphan_grace = \"0s\"\n");
    let img = env.path("disk0.img");
    let baseline_hash = create_image(&img, SIZE, Fill::Random, 32);
    let lo = LoopDev::attach(&img);
    let sb = Standby::start_with(
        &env,
        Some(TOKEN),
        &["--config", cfg.to_str().unwrap(), "--prune-interval", "0", "--verify-interval", "0"],
    );
    let api = sb.api();
    let m = Maint::new(&sb, PAIR);
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&lo.dev]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let baseline = api.points(PAIR)[0].id;
    let first = pick_chunks(REGION_FIRST, 200, 11);
    let again: Vec<u64> = first.iter().enumerate().filter(|(i, _)| i % 4 != 0).map(|(_, c)| *c).collect();
    let cut = |chunks: &[u64], seed: u64| {
        overwrite_chunks(&lo.dev, CHUNK, chunks, seed);
        drpair_e2e::sh("sync", &[]);
        let p = api.create_point_wait(PAIR);
        (p.id, hash_file(&lo.dev).1)
    };
    let p1 = cut(&first, 201);
    let p2 = cut(&again, 202);
    assert_eq!(m.pin(&p2.0.to_string(), true).status, 200);
    assert_eq!(m.set_retention(&json!({"grid": "1x1s", "keep_last": 1})).status, 200);

    // P1 out of the grid's last second.
    std::thread::sleep(Duration::from_millis(2500));
    g.kill_all();
    step("garage: every node killed");
    let r = m.prune_ok(false);
    let reclaim = r.reclaim.clone().expect("the prune reclaimed");
    let packs = reclaim.packs.clone().expect("the reclaim reports its packs");
    let error = packs.error.clone().expect("the pack rewrite says why it stopped");
    assert!(r.removed.iter().any(|p| p.id == p1.0), "P1 {} not removed: {r:?}", p1.0);
    assert!(reclaim.chunks_deleted >= 150, "{reclaim:?}");
    assert!(error.contains(&format!("{}/{BUCKET}/standby-r", g.endpoint(0))), "the store is not named: {error}");
    let usage = m.storage().object_store.expect("usage");
    assert!(usage.sparse_packs > 0 && usage.garbage_bytes > 0, "{usage:?}");
    step(format!(
        "prune with garage down: {} points removed, {} chunks deleted; packs: {error}; {} sparse, {:.1} MiB garbage",
        r.removed.len(),
        reclaim.chunks_deleted,
        usage.sparse_packs,
        usage.garbage_bytes as f64 / MIB as f64
    ));

    g.start_all();
    step("garage: every node started again");
    // The next reclaim (with a prune that removes a point) rewrites them.
    let r = wait_until("a prune after the outage that tidies the packs", LONG, || {
        let p = api.post(
            &format!("/api/v1/pairs/{PAIR}/points"),
            "application/json",
            br#"{"wait":true,"timeout_seconds":30}"#,
        );
        if p.status != 200 {
            return Err(format!("points create: {} {}", p.status, p.text()));
        }
        let r = m.prune_ok(false);
        match r.reclaim.as_ref().and_then(|c| c.packs.as_ref()) {
            Some(p) if p.error.is_none() => Ok(r),
            other => Err(format!("{other:?}")),
        }
    });
    let usage = m.storage().object_store.expect("usage");
    assert_eq!(usage.sparse_packs, 0, "{usage:?}");
    assert!(usage.garbage_bytes * 2 <= usage.pack_bytes, "{usage:?}");
    for (id, h) in [(baseline, baseline_hash), p2] {
        assert_eq!(api.export_full(PAIR, &id.to_string(), 0, SIZE), h, "point {id} after the outage");
    }
    step(format!(
        "after the outage: {:?}; {} packs, {:.1} MiB garbage, none sparse; baseline and P2 equal",
        r.reclaim.and_then(|c| c.packs),
        usage.packs,
        usage.garbage_bytes as f64 / MIB as f64
    ));
    drop(agent);
}
