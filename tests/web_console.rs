//! The web panel as the whole DR console (issue 21), in headless Debian chromium driven by
//! playwright-core, against a real standby and real agents.
//!
//! `console_workflows` (`web/tests/console.mjs`), one pair on a loop device tracked through
//! tracefs, a second loop device on the standby as the failover target:
//! - the reference Start workflow: Stop (OK), Start with "Whether to Replay Data" Yes and a
//!   timestamp before the history → the API's error in the dialog, nothing changed; a timestamp
//!   the history covers → replicating, the points after it gone; Pause → OK → Paused;
//! - a drill started from the panel (point by id, TTL, check command): its NBD export equals
//!   the point's export (`qemu-img compare`, run here), its check passes, it is stopped from the
//!   panel and its report shown;
//! - a chunk damaged in the store (the standby stopped, a byte inverted, restarted under the
//!   open page): verify from the panel names it and the point that sees it; verify of the
//!   source; retention preview (a bad grid refused; nothing
//!   changed by a preview) then save; the dump workflow's first steps as buttons;
//! - a failover from the panel onto the loop device equals the point (checked here), its
//!   progress survives a page reload; after writes on the recovered side, a failback from the
//!   panel moves exactly the chunks where the sides differ and leaves them equal;
//! - the standby-wide tasks view; one push stream per open panel against the old polling's
//!   request rate; keyboard use; axe-core on the new views and dialogs.
//!
//! `console_at_scale` (`web/tests/console-scale.mjs`): 500 pairs registered through the real
//! link; the list renders, pages, sorts and searches by id, name and address, each in under a
//! second, kept live by one push stream.
//!
//! Screenshots land in `TARGET/test-artifacts/web-console/{workflows,scale}/`.

use drpair_e2e::blockdev::LoopDev;
use drpair_e2e::browser::run_browser;
use drpair_e2e::dump::differing_chunks;
use drpair_e2e::image::{Fill, copy_device, create_image, hash_file, overwrite_chunks, sparse_image};
use drpair_e2e::maintenance::{find_in_files, flip_byte};
use drpair_e2e::tracking::TraceInstance;
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TOKEN: &str = "web-console-token";
const PAIR: &str = "console";
const SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
/// The chunk damaged in the store for the verify.
const VICTIM: u64 = 100;
const LONG: Duration = Duration::from_secs(180);
/// One browser at a time: two chromiums and their standbys on two cores make timings noisy.
static BROWSER: Mutex<()> = Mutex::new(());

/// Where a test's screenshots go (emptied first: a stale one must not pass for a new one).
fn artifacts(test: &str) -> PathBuf {
    let dir = drpair_e2e::bin_dir().parent().expect("target dir").join("test-artifacts/web-console").join(test);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The API's export of `point` (disk 0) written to `file`.
fn export_to(sb: &Standby, point: u64, file: &Path) {
    let url = format!("{}/api/v1/pairs/{PAIR}/points/{point}/disks/0/image", sb.url());
    let http = drpair_e2e::api::http_agent(sb.ca_file().as_deref(), Duration::from_secs(300));
    let r = http.get(&url).header("Authorization", format!("Bearer {TOKEN}")).call().expect("export");
    let mut f = std::fs::File::create(file).unwrap();
    std::io::copy(&mut r.into_body().into_reader(), &mut f).unwrap();
    assert_eq!(std::fs::metadata(file).unwrap().len(), SIZE, "export of point {point}");
}

fn check_shots(dir: &Path, names: &[&str]) {
    for shot in names {
        let p = dir.join(format!("{shot}.png"));
        assert!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000), "screenshot {}", p.display());
    }
    step(format!("screenshots in {}", dir.display()));
}

#[test]
fn console_workflows() {
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new("web-console");
    let (orig_img, rec_img) = (env.path("original.img"), env.path("recovered.img"));
    create_image(&orig_img, SIZE, Fill::Mixed, 21);
    sparse_image(&rec_img, SIZE);
    let orig = LoopDev::attach(&orig_img);
    let rec = LoopDev::attach(&rec_img);
    let _trace = TraceInstance::of_pair(PAIR);
    let mut sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let (sb_url, sb_ca) = (sb.url(), sb.ca_file());
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[orig.dev.as_path()]);
    spec.tracker = "tracefs".into();
    // As in tests/verify_stored.rs: a random chunk is stored verbatim, to be found and damaged.
    spec.compression = Some("zstd:1".into());
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let art = artifacts("workflows");

    let rec_dev = rec.dev.to_str().unwrap().to_string();
    let mut answer = |q: &Value| -> Value {
        match q["ask"].as_str().unwrap_or_default() {
            "compare_export" => {
                let point = q["point"].as_u64().expect("point");
                let file = env.path(&format!("point-{point}.img"));
                export_to(&sb, point, &file);
                let uri = q["uri"].as_str().expect("uri");
                let out = Command::new("qemu-img")
                    .args(["compare", "-f", "raw", "-F", "raw", uri, file.to_str().unwrap()])
                    .output()
                    .expect("qemu-img");
                let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
                step(format!("qemu-img compare {uri} with the export of point {point}: {}", text.trim()));
                json!({"ok": out.status.success(), "out": text})
            }
            "target_equals_point" => {
                let point = q["point"].as_u64().expect("point").to_string();
                let ok = hash_file(&rec.dev).1 == api.export_full(PAIR, &point, 0, SIZE);
                json!({"ok": ok})
            }
            "diverge" => {
                // The server ran on the recovered side: a few chunks changed there.
                overwrite_chunks(&rec.dev, CHUNK, &[3, 17, 18, 400, 1000], 77);
                let (a, b) = (env.path("orig-now.img"), env.path("rec-now.img"));
                copy_device(&orig.dev, &a);
                copy_device(&rec.dev, &b);
                let differing = differing_chunks(&a, &b, CHUNK).len();
                step(format!("recovered side written: {differing} chunks differ from the original"));
                json!({"differing": differing})
            }
            "sides_equal" => json!({"ok": hash_file(&orig.dev).1 == hash_file(&rec.dev).1}),
            "damage" => {
                // A point P1 sees a random chunk; the chunk is rewritten and P2 cut; with the
                // standby stopped, a byte of P1's version is inverted in the store's blob file.
                overwrite_chunks(&orig.dev, CHUNK, &[VICTIM], 501);
                let p1 = api.create_point_wait(PAIR);
                overwrite_chunks(&orig.dev, CHUNK, &[VICTIM], 502);
                let p2 = api.create_point_wait(PAIR);
                let mut bytes = vec![0u8; CHUNK as usize];
                StdRng::seed_from_u64(501).fill_bytes(&mut bytes);
                sb.term();
                let found = find_in_files(&sb.data_dir.join("store"), ".blob", &bytes[30 << 10..34 << 10]);
                assert!(!found.is_empty(), "chunk {VICTIM} of point {} is in no blob file", p1.id);
                for (file, off) in &found {
                    flip_byte(file, off + 2048);
                }
                sb.restart();
                wait_connected(&api, PAIR, true, LONG);
                step(format!(
                    "chunk {VICTIM} of point {} damaged in the store; point {} holds another version",
                    p1.id, p2.id
                ));
                json!({"point": p1.id, "chunk": VICTIM, "newest": p2.id})
            }
            other => panic!("unknown question {other}"),
        }
    };
    let envs = [
        ("DRPAIR_TOKEN", TOKEN.to_string()),
        ("DRPAIR_PAIR", PAIR.to_string()),
        ("DRPAIR_REC_DEV", rec_dev.clone()),
        ("DRPAIR_ARTIFACTS", art.display().to_string()),
    ];
    run_browser(&env, (sb_url, sb_ca), "console.mjs", &envs, "CONSOLE OK", |line| {
        let q: Value = serde_json::from_str(line.strip_prefix("ASK ")?).expect("a JSON question");
        Some(answer(&q).to_string())
    });
    check_shots(
        &art,
        &[
            "start-dialog",
            "start-refused",
            "drill-running",
            "drill-report",
            "verify",
            "retention-preview",
            "dump-steps",
            "failover-dialog",
            "failover-progress",
            "failback-dialog",
            "failback-done",
            "tasks",
        ],
    );
}

#[test]
fn console_at_scale() {
    use drpair_e2e::many_pairs::{pair_at, register_pairs};
    const PREFIX: &str = "fleet";
    const N: usize = 500;
    let _one = BROWSER.lock().unwrap_or_else(|e| e.into_inner());
    let env = TestEnv::new("web-console-scale");
    let sb = Standby::start(&env, Some(TOKEN));
    let t = Instant::now();
    let ids = register_pairs(&sb, PREFIX, N);
    step(format!("{N} pairs registered over the link in {:.1} s", t.elapsed().as_secs_f64()));
    let t = Instant::now();
    let listed = sb.api().get("/api/v1/pairs");
    assert_eq!(listed.status, 200);
    assert_eq!(listed.json().as_array().map(Vec::len), Some(N));
    step(format!("GET /api/v1/pairs with {N} pairs: {} ms", t.elapsed().as_millis()));

    // Searches by id, by host name, by site (a part of the names) and by address; how many
    // each must show, counted as the panel matches (a substring of id, name or address).
    let all: Vec<_> = (0..N).map(|i| pair_at(PREFIX, i)).collect();
    let matches = |term: &str| {
        all.iter()
            .filter(|(id, host, addr)| [id.clone(), host.clone(), addr.to_string()].iter().any(|v| v.contains(term)))
            .count()
    };
    let searches: Vec<(String, usize)> =
        [all[419].0.clone(), all[199].1.clone(), "lon1".into(), all[333].2.to_string()]
            .into_iter()
            .map(|t| {
                let n = matches(&t);
                (t, n)
            })
            .collect();
    let art = artifacts("scale");
    let envs = [
        ("DRPAIR_TOKEN", TOKEN.to_string()),
        ("DRPAIR_COUNT", N.to_string()),
        ("DRPAIR_SEARCHES", serde_json::to_string(&searches).unwrap()),
        ("DRPAIR_LAST", ids.iter().max().unwrap().clone()),
        ("DRPAIR_ARTIFACTS", art.display().to_string()),
    ];
    run_browser(&env, (sb.url(), sb.ca_file()), "console-scale.mjs", &envs, "SCALE OK", |_| None);
    check_shots(&art, &["list-500", "list-500-search"]);
}
