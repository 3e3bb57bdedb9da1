//! Prune and space reclaim under a running workload, with kill -9 of the standby in the
//! middle of prunes.
//!
//! An agent cuts a point every second of a loop device (tracefs tracker) while a writer
//! keeps rewriting a 4 MiB region with fresh random data, so every point holds new chunk
//! versions and the older ones become garbage once their points go. One old point is pinned.
//! A retention policy that removes most points is set; a dry run shows what it keeps and
//! removes nothing; the exports of several kept points are hashed and the store's size on
//! disk is measured (after a clean stop, which flushes).
//!
//! Then a prune is killed (SIGKILL) during the compaction that follows the deletion of the
//! unreferenced chunks, its longest step: once restarted, the standby gives that space back
//! by itself. Then prunes run while the writer runs, each killed after a random delay
//! (seeded; the seed is printed, `DRPAIR_E2E_SEED` replays it) and the standby restarted,
//! until one completes.
//!
//! Afterwards: no point the dry run removed is listed or exports (404); every listed point is
//! one the completed prune kept (or newer); the pinned point, the baseline and the other
//! recorded points that are still listed export byte for byte as before, and a verification
//! finds every point intact; replication still commits points; the store takes
//! substantially less space on disk. The prune schedule (`--prune-interval 2s`) prunes by
//! itself, removing the point once it is unpinned. Bad input (grid, reset with a grid, an
//! unknown pair or point, a malformed body) is refused with the parameter named and changes
//! nothing.

use drpair_e2e::api::metric_value;
use drpair_e2e::image::sparse_image;
use drpair_e2e::maintenance::{Maint, StoreSize, prune_report, store_size};
use drpair_e2e::tracking::{AlignedBuf, TraceInstance, fill_random};
use drpair_e2e::{AgentSpec, LoopDev, MIB, Standby, TestEnv, step, wait_connected, wait_ready, wait_until};
use drpair_types::{PruneReport, RecoveryPoint, RetentionView};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const PAIR: &str = "retention";
const SIZE: u64 = 128 * MIB;
const CHUNK: u64 = 64 << 10;
const CHUNK_LEN: usize = 64 << 10;
/// Random data written once, before the baseline.
const STATIC_LEN: u64 = 8 * MIB;
/// The region the writer rewrites: 64 chunks.
const REGION_OFF: u64 = 16 * MIB;
const REGION_LEN: u64 = 4 * MIB;
/// ~6 MiB/s of 64 KiB writes at random chunks of the region: ~80% of it changes in every
/// 1 s point, the rest was written by earlier points (which kept points then still see).
const WRITE_PAUSE: Duration = Duration::from_millis(10);
/// How long the writer runs before the prune.
const WRITE_FOR: Duration = Duration::from_secs(35);
/// Every point of the last 5 s, then one per 10 s bucket for 40 s; the newest 3 always.
const GRID: &str = "1x5s(keep=all) | 4x10s";
const KEEP_LAST: u32 = 3;
/// Prune attempts cut by kill -9. Each kill doubles the agent's reconnection backoff (it
/// starts over only after a connection that served 30 s), so a few.
const MAX_ATTEMPTS: u32 = 3;
/// The kill comes this long after the prune request at most.
const MAX_KILL_DELAY_MS: u64 = 400;
const LONG: Duration = Duration::from_secs(120);

/// Rewrites random chunks of the region with fresh random bytes (O_DIRECT) until dropped.
struct RegionWriter {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl RegionWriter {
    fn start(dev: &Path, seed: u64) -> Self {
        let f = OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(dev).expect("open device O_DIRECT");
        let (stop, writes) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (stop2, writes2) = (stop.clone(), writes.clone());
        let handle = std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut buf = AlignedBuf::new(CHUNK_LEN);
            while !stop2.load(Ordering::Relaxed) {
                rng.fill_bytes(buf.as_mut());
                let off = REGION_OFF + rng.random_range(0..REGION_LEN / CHUNK) * CHUNK;
                f.write_all_at(buf.as_mut(), off).expect("write to the region");
                writes2.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(WRITE_PAUSE);
            }
        });
        Self { stop, writes, handle: Some(handle) }
    }

    fn stop(mut self) -> u64 {
        self.halt();
        self.writes.load(Ordering::Relaxed)
    }

    fn halt(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

impl Drop for RegionWriter {
    fn drop(&mut self) {
        self.halt();
    }
}

fn ids(points: &[RecoveryPoint]) -> Vec<u64> {
    points.iter().map(|p| p.id).collect()
}

/// Stops the standby cleanly (its store is flushed), measures its store, starts it again.
/// (The agent reconnects by itself, after its backoff.)
fn measure_store(sb: &mut Standby, what: &str) -> StoreSize {
    sb.term();
    let s = store_size(&sb.data_dir.join("store"));
    step(format!("store {what}: {s}"));
    sb.restart();
    s
}

/// The policy did not change: same grid, keep_last and default flag.
fn same_policy(a: &RetentionView, b: &RetentionView) -> bool {
    (a.grid.as_str(), a.keep_last, a.is_default) == (b.grid.as_str(), b.keep_last, b.is_default)
}

/// Bad requests are refused with the parameter named, and change nothing.
fn bad_input(m: &Maint) {
    let before = m.retention();
    let cases: [(serde_json::Value, &str); 7] = [
        (json!({"grid": "forever"}), "grid"),
        (json!({"grid": "2x10s | 1x5s"}), "grid"),
        (json!({"grid": "1x500ms"}), "grid"),
        (json!({"grid": "0x10s"}), "grid"),
        (json!({"reset": true, "grid": GRID}), "reset"),
        (json!({}), "body"),
        (json!({"keep_last": "many"}), "body"),
    ];
    for (body, param) in cases {
        let r = m.set_retention(&body);
        let j = r.assert_error(400, "InvalidParameter");
        assert_eq!(j["parameter"], param, "PUT retention {body}: {j}");
        assert!(same_policy(&m.retention(), &before), "a refused PUT retention {body} changed the policy");
    }
    let r = m.post("/prune", &json!({"dry_run": "yes"}));
    r.assert_error(400, "InvalidParameter");
    let nosuch = m.for_pair("no-such-pair");
    nosuch.prune(false).assert_error(404, "PairNotFound");
    nosuch.prune(true).assert_error(404, "PairNotFound");
    nosuch.set_retention(&json!({"grid": GRID})).assert_error(404, "PairNotFound");
    nosuch.get("/retention").assert_error(404, "PairNotFound");
    m.pin("999999", true).assert_error(404, "PointNotFound");
    m.pin("999999", false).assert_error(404, "PointNotFound");
    m.pin("first", true).assert_error(400, "InvalidParameter");
    assert!(same_policy(&m.retention(), &before), "bad requests changed the policy");
    step("bad input refused, policy unchanged");
}

/// Sets the test's policy, checking reset and a keep_last-only update on the way.
fn set_policy(m: &Maint) -> RetentionView {
    let default = m.retention();
    assert!(default.is_default && default.last_prune.is_none(), "{default:?}");
    assert_eq!(default.prune_interval_seconds, 0, "{default:?}");
    let set = |body: serde_json::Value| -> RetentionView {
        let r = m.set_retention(&body);
        assert_eq!(r.status, 200, "PUT retention {body}: {}", r.text());
        serde_json::from_slice(&r.body).expect("RetentionView")
    };
    let v = set(json!({"grid": GRID, "keep_last": KEEP_LAST}));
    assert!(!v.is_default && v.keep_last == KEEP_LAST && v.grid.contains("4x10s"), "{v:?}");
    let v2 = set(json!({"keep_last": KEEP_LAST + 2}));
    assert_eq!((v2.grid.as_str(), v2.keep_last), (v.grid.as_str(), KEEP_LAST + 2), "keep_last alone changed the grid");
    let r = set(json!({"reset": true}));
    assert!(same_policy(&r, &default), "reset did not return to the default: {r:?}");
    let v = set(json!({"grid": GRID, "keep_last": KEEP_LAST}));
    assert!(same_policy(&m.retention(), &v), "GET retention differs from the PUT's answer");
    step(format!("policy: {} ({})", v.grid, v.description));
    v
}

/// Prunes and kills the standby (SIGKILL) as soon as its log says the unreferenced chunks
/// were deleted, i.e. during the compaction that gives their space back; starts it again.
/// False (nothing killed mid-way) when the prune finished first.
fn kill_during_compaction(sb: &mut Standby, m: &Maint) -> bool {
    let log_mark = sb.proc.log().len();
    let m2 = m.clone();
    let req = std::thread::spawn(move || m2.try_post("/prune", &json!({"dry_run": false})));
    let t0 = Instant::now();
    while !req.is_finished() && t0.elapsed() < LONG {
        if sb.proc.log().get(log_mark..).unwrap_or_default().contains("space reclaimed") {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sb.kill9();
    let finished = req.join().expect("prune request thread").is_ok();
    step(if finished {
        "the prune finished before the kill meant for its compaction".to_string()
    } else {
        format!("kill -9 {:?} into the prune, after {:?}", t0.elapsed(), prune_steps(&sb.proc.log()[log_mark..]))
    });
    sb.restart();
    !finished
}

/// The steps of a prune (or of its recovery at start-up) a standby's log shows, in order.
fn prune_steps(log: &str) -> Vec<&'static str> {
    let steps = [
        ("recovery points removed", "point records removed"),
        ("pruned chunk versions", "versions swept"),
        ("space reclaimed", "chunks reclaimed"),
        ("pruned recovery points", "prune done"),
    ];
    steps.iter().filter(|(needle, _)| log.contains(needle)).map(|&(_, name)| name).collect()
}

fn seed() -> u64 {
    std::env::var("DRPAIR_E2E_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock");
        t.as_secs() ^ u64::from(t.subsec_nanos()) << 32
    })
}

#[test]
fn prune_and_reclaim_under_load_with_kills() {
    let env = TestEnv::new("retention-prune");
    let seed = seed();
    step(format!("seed {seed} (DRPAIR_E2E_SEED={seed} replays the kill delays and the writes)"));
    let img = env.path("disk0.img");
    sparse_image(&img, SIZE);
    fill_random(&img, 0, STATIC_LEN, seed ^ 1);
    fill_random(&img, REGION_OFF, REGION_LEN, seed ^ 2);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(PAIR);
    let mut sb = Standby::start_with(&env, None, &["--prune-interval", "0", "--verify-interval", "0"]);
    let api = sb.api();
    let m = Maint::new(&sb, PAIR);
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.chunk_size = Some(CHUNK);
    spec.compression = Some("zstd:1".into());
    spec.cut_interval = "1s".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let baseline = api.points(PAIR)[0].id;

    let writer = RegionWriter::start(&lo.dev, seed);
    let writing = Instant::now();

    // Pin an old point (not the baseline, which is kept anyway).
    let old = wait_until("three points", LONG, || {
        let p = api.points(PAIR);
        if p.len() >= 3 && writing.elapsed() > Duration::from_secs(5) { Ok(p[2].id) } else { Err(format!("{p:?}")) }
    });
    let pinned = m.pin(&old.to_string(), true);
    assert_eq!(pinned.status, 200, "pin: {}", pinned.text());
    assert_eq!(pinned.json()["pinned"], true, "{}", pinned.text());
    assert_eq!(m.pin(&old.to_string(), true).json()["pinned"], true, "pinning twice");
    assert!(m.point_ok(old).pinned, "point {old} not pinned in GET");
    step(format!("pinned point {old}"));

    bad_input(&m);
    set_policy(&m);

    std::thread::sleep(WRITE_FOR.saturating_sub(writing.elapsed()));
    let listed = api.points(PAIR);
    step(format!("{} points after {:?} of writes", listed.len(), writing.elapsed()));
    assert!(listed.len() >= 20, "too few points to prune: {:?}", ids(&listed));

    // Dry run: what the policy keeps; it removes nothing.
    let dry = m.prune_ok(true);
    let after_dry = api.points(PAIR);
    let before_ids: BTreeSet<u64> = ids(&listed).into_iter().collect();
    let after_ids: BTreeSet<u64> = ids(&after_dry).into_iter().collect();
    assert!(before_ids.is_subset(&after_ids), "the dry run removed points: {before_ids:?} → {after_ids:?}");
    assert!(dry.dry_run && !dry.scheduled && dry.versions_deleted == 0 && dry.reclaim.is_none(), "{dry:?}");
    assert_eq!(dry.points_before, dry.removed.len() as u64 + dry.kept.len() as u64, "{dry:?}");
    assert_eq!(dry.points_kept, dry.kept.len() as u64, "{dry:?}");
    assert!(m.retention().last_prune.is_none(), "a dry run was recorded as the last prune");
    let reason: BTreeMap<u64, String> =
        dry.kept.iter().chain(&dry.removed).map(|mark| (mark.id, mark.reason.clone())).collect();
    assert_eq!(reason.get(&old).map(String::as_str), Some("pinned_operator"), "{dry:?}");
    assert_eq!(reason.get(&baseline).map(String::as_str), Some("pinned_baseline"), "{dry:?}");
    let newest = dry.kept.iter().find(|k| k.reason == "newest").unwrap_or_else(|| panic!("no newest: {dry:?}")).id;
    assert!(
        dry.removed.iter().all(|r| r.reason == "thinned" || r.reason == "expired"),
        "removed for another reason: {:?}",
        dry.removed
    );
    assert!(
        dry.removed.len() as u64 * 2 > dry.points_before,
        "the policy should remove most points: {} of {}",
        dry.removed.len(),
        dry.points_before
    );
    let removed_by_dry: Vec<u64> = dry.removed.iter().map(|r| r.id).collect();
    step(format!(
        "dry run: keeps {:?}, removes {} points",
        dry.kept.iter().map(|k| format!("{}:{}", k.id, k.reason)).collect::<Vec<_>>(),
        removed_by_dry.len()
    ));

    // Record the exports of some kept points: pinned, baseline, newest and grid-kept ones.
    let mut recorded: Vec<u64> = vec![old, baseline, newest];
    recorded.extend(dry.kept.iter().filter(|k| k.reason.starts_with("grid_")).map(|k| k.id).take(3));
    recorded.sort_unstable();
    recorded.dedup();
    let hashes: BTreeMap<u64, blake3::Hash> =
        recorded.iter().map(|&id| (id, api.export_full(PAIR, &id.to_string(), 0, SIZE))).collect();
    step(format!("recorded the exports of points {recorded:?}"));
    let stored_before = m.storage().stored_bytes;
    let size_before = measure_store(&mut sb, "before the prune");
    wait_connected(&api, PAIR, true, LONG);

    // First a kill at the step that takes longest: the compaction after the unreferenced
    // chunks were deleted. The restarted standby owes that compaction and does it by itself:
    // the space comes back without another prune.
    if kill_during_compaction(&mut sb, &m) {
        let store = sb.data_dir.join("store");
        let size = wait_until("the space of the chunks deleted before the crash", Duration::from_secs(20), || {
            let size = store_size(&store);
            // Measured live, so the write-ahead log is left out: it holds the points committed
            // since the restart, not the chunks the prune deleted.
            if (size.flushed() as f64) < 0.8 * size_before.flushed() as f64 { Ok(size) } else { Err(size.to_string()) }
        });
        step(format!("store after a kill during the compaction and a restart: {size}"));
    }
    wait_connected(&api, PAIR, true, LONG);

    // Then prunes while the writer runs and the agent replicates, each cut by kill -9 after a
    // random delay, until one completes.
    let mut rng = StdRng::seed_from_u64(seed);
    let mut completed: Option<PruneReport> = None;
    for attempt in 1..=MAX_ATTEMPTS {
        let delay = Duration::from_millis(rng.random_range(0..=MAX_KILL_DELAY_MS));
        let m2 = m.clone();
        let log_mark = sb.proc.log().len();
        let t0 = Instant::now();
        let req =
            std::thread::spawn(move || m2.try_post("/prune", &json!({"dry_run": false})).map(|r| (r, t0.elapsed())));
        std::thread::sleep(delay);
        sb.kill9();
        completed = match req.join().expect("prune request thread") {
            Ok((r, took)) => {
                let rep = prune_report(&r);
                step(format!(
                    "attempt {attempt}: prune completed in {took:?} (kill at {delay:?}): removed {}, {} versions, reclaim {:?}",
                    rep.removed.len(),
                    rep.versions_deleted,
                    rep.reclaim
                ));
                Some(rep)
            }
            Err(e) => {
                let reached = prune_steps(sb.proc.log().get(log_mark..).unwrap_or_default());
                step(format!("attempt {attempt}: kill -9 at {delay:?}, prune steps logged: {reached:?} ({e})"));
                None
            }
        };
        sb.restart();
        let now = api.points(PAIR);
        let now_ids = ids(&now);
        assert!(now_ids.windows(2).all(|w| w[0] < w[1]), "point ids not increasing: {now_ids:?}");
        assert!(m.point_ok(old).pinned, "the pinned point {old} lost its pin or went");
        assert!(now_ids.contains(&baseline), "the baseline {baseline} went: {now_ids:?}");
        if completed.is_some() {
            break;
        }
        wait_connected(&api, PAIR, true, LONG);
        let recovered = prune_steps(&sb.proc.log_of_last_start());
        if !recovered.is_empty() {
            step(format!("the restarted standby finished the interrupted work: {recovered:?}"));
        }
    }
    // The last prune that ran must be one that completed (it is compared with the record).
    let rep = completed.unwrap_or_else(|| {
        step("the last attempt was cut short; one more prune, not killed");
        m.prune_ok(false)
    });
    assert!(!rep.dry_run && !rep.scheduled, "{rep:?}");
    let last = m.retention().last_prune.unwrap_or_else(|| panic!("the completed prune was not recorded"));
    assert_eq!((&last.removed, &last.kept), (&rep.removed, &rep.kept), "the recorded last prune differs");

    // Removed points are gone; what is listed is what the prune kept, or newer.
    let listed = api.points(PAIR);
    let listed_ids: BTreeSet<u64> = ids(&listed).into_iter().collect();
    for &id in &removed_by_dry {
        assert!(!listed_ids.contains(&id), "point {id}, removed by the policy, is still listed");
        m.point(id).assert_error(404, "PointNotFound");
        let e = api.export(PAIR, &id.to_string(), 0);
        assert_eq!(e.status, 404, "export of removed point {id}: {:?}", e.error_body);
    }
    let kept: BTreeSet<u64> = rep.kept.iter().map(|k| k.id).collect();
    let planned_up_to = rep.kept.iter().chain(&rep.removed).map(|k| k.id).max().expect("prune saw points");
    for id in &listed_ids {
        assert!(kept.contains(id) || *id > planned_up_to, "point {id} is listed but the prune did not keep it");
    }
    assert!(rep.removed.iter().all(|r| !listed_ids.contains(&r.id)), "a point the prune removed is listed");
    step(format!("{} points listed now (were {}): {listed_ids:?}", listed.len(), dry.points_before));

    // Kept points export as before; a verification finds every point intact.
    let mut checked = vec![];
    for (&id, &h) in &hashes {
        if listed_ids.contains(&id) {
            assert_eq!(api.export_full(PAIR, &id.to_string(), 0, SIZE), h, "point {id} changed across the prunes");
            checked.push(id);
        }
    }
    assert!(checked.contains(&old) && checked.contains(&baseline), "pinned or baseline gone: {checked:?}");
    step(format!("points {checked:?} export as before the prunes"));
    let v = m.verify_ok(None);
    assert!(v.points_damaged == 0 && v.damaged.is_empty() && v.points_verified >= listed.len() as u64, "{v:?}");
    for &id in &checked {
        let p = m.point_ok(id);
        assert!(p.verified_at.is_some() && p.damage.is_none(), "point {id} not marked verified: {p:?}");
    }
    step(format!("verify: {}", v.message));

    // Replication goes on.
    wait_connected(&api, PAIR, true, LONG);
    let newer = api.create_point_wait(PAIR);
    assert!(newer.id > *listed_ids.last().expect("points"), "point {} is not newer", newer.id);
    api.export_full(PAIR, &newer.id.to_string(), 0, SIZE);

    // Stop writing; a last prune (not killed) and the store's size on disk.
    let writes = writer.stop();
    step(format!("writer stopped after {writes} writes of 64 KiB"));
    let fin = m.prune_ok(false);
    let metrics = api.metrics();
    if !fin.removed.is_empty() {
        let pruned = metric_value(&metrics, &format!("drpair_retention_pruned_points_total{{pair=\"{PAIR}\"}}"));
        assert!(pruned.is_some_and(|v| v >= fin.removed.len() as f64), "pruned points metric: {pruned:?}");
    }
    if let Some(freed) = fin.reclaim.as_ref().map(|r| r.bytes_freed).filter(|&b| b > 0) {
        let total = metric_value(&metrics, "drpair_store_reclaimed_bytes_total");
        assert!(total.is_some_and(|v| v >= freed as f64), "reclaimed bytes metric {total:?} < {freed}");
    }
    let stored_after = m.storage().stored_bytes;
    let gauge = metric_value(&api.metrics(), &format!("drpair_store_pair_held_bytes{{pair=\"{PAIR}\"}}"));
    assert_eq!(gauge, Some(stored_after as f64), "drpair_store_pair_held_bytes differs from the storage report");
    let size_after = measure_store(&mut sb, "after the prunes");
    step(format!(
        "store on disk: {:.1} MiB → {:.1} MiB ({:.0}%); storage report stored bytes {:.1} MiB → {:.1} MiB",
        size_before.data() as f64 / MIB as f64,
        size_after.data() as f64 / MIB as f64,
        size_after.data() as f64 * 100.0 / size_before.data() as f64,
        stored_before as f64 / MIB as f64,
        stored_after as f64 / MIB as f64
    ));
    assert!(stored_after < stored_before, "the storage report does not shrink: {stored_before} → {stored_after}");
    assert!(
        (size_after.data() as f64) < 0.8 * size_before.data() as f64,
        "the store did not shrink on disk: before {size_before}, after {size_after}"
    );

    // Unpin: the schedule (--prune-interval 2s) removes the point by itself, it has expired.
    let r = m.pin(&old.to_string(), false);
    assert_eq!(r.json()["pinned"], false, "unpin: {}", r.text());
    assert!(!m.point_ok(old).pinned, "point {old} still pinned in GET");
    sb.term();
    let mut args = sb.proc.args().to_vec();
    let i = args.iter().position(|a| a == "--prune-interval").expect("--prune-interval in the arguments");
    args[i + 1] = "2s".into();
    sb.proc.set_args(args);
    sb.restart();
    assert_eq!(m.retention().prune_interval_seconds, 2);
    let auto = wait_until("a scheduled prune that removes the unpinned point", Duration::from_secs(40), || {
        match m.retention().last_prune {
            Some(p) if p.scheduled && m.point(old).status == 404 => Ok(p),
            other => Err(format!("last prune {:?}", other.map(|p| (p.scheduled, p.removed.len())))),
        }
    });
    let metrics = api.metrics();
    let pruned = metric_value(&metrics, &format!("drpair_retention_pruned_points_total{{pair=\"{PAIR}\"}}"));
    assert!(pruned.is_some_and(|v| v >= 1.0), "pruned points metric after the scheduled prune: {pruned:?}");
    assert!(api.points(PAIR).iter().any(|p| p.id == baseline), "the baseline went");
    assert!(agent.is_running(), "the agent died:\n{}", agent.tail(30));
    step(format!("scheduled prune removed {} points", auto.removed.len()));
}
