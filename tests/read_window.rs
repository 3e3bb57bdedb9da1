//! How exact each point is (issue "Recovery points a database can start from", part 4): every
//! point records its read window (from the cut to the last chunk read), a point read over
//! longer than the standby's `max_read_window` is marked `window_exceeded`, and "latest"
//! (exports, drills) passes it over, saying why.
//!
//! A pair protects a 96 MiB random image (scan tracker: every cut reads the whole disk), on a
//! standby started with `--max-read-window 1s`. Point A is cut with the agent at full speed;
//! the agent is then restarted with its pass capped at 8 MiB/s (as a slow link caps it), and
//! point B is cut. The reader runs ahead of the capped workers by its buffer pool (48 MiB),
//! then waits for buffers: B's last read completes about 6 s after its cut. Then:
//! - A has a short window and is trusted; B's window is over the bound and it is marked;
//! - `points/latest` is A; a drill started without a point serves A, and its task's log says
//!   that newer points were skipped and why; `drpair points list` shows the mark;
//! - the metrics carry the read windows' quantiles and the count of marked points;
//! - a standby started with a bound that is no duration or out of range refuses to start,
//!   naming `max_read_window`, and creates nothing.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{DrillStatus, RecoveryPoint, TaskKind, TaskList, TaskLog};
use std::process::Command;
use std::time::Duration;

const PAIR: &str = "rw";
const SIZE: u64 = 96 * MIB;
const LONG: Duration = Duration::from_secs(180);

#[test]
fn points_say_how_exact_they_are_and_latest_skips_the_inexact() {
    let env = TestEnv::new("read-window");
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 11);
    let mut sb = Standby::start_with(&env, Some("rw-token"), &["--max-read-window", "1s"]);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);

    let a = api.create_point_wait(PAIR);
    let wa = a.read_window_ms.expect("point A records its read window");
    assert!(wa < 1000 && !a.window_exceeded, "point A, read at full speed: {a:?}");
    step(format!("point {} read in {wa} ms: within the 1 s bound", a.id));

    agent.term(Duration::from_secs(30));
    spec.throttle_bps = Some(8 * MIB);
    let mut agent = spec.spawn(&env, "agent-slow");
    wait_connected(&api, PAIR, true, LONG);
    let b = api.create_point_wait(PAIR);
    let wb = b.read_window_ms.expect("point B records its read window");
    assert!(wb > 1000 && b.window_exceeded, "point B, its pass capped at 8 MiB/s: {b:?}");
    step(format!("point {} read in {wb} ms: marked window_exceeded", b.id));

    // "latest" is the newest trusted point: A (every point after it was read as slowly).
    let points = api.points(PAIR);
    let after_a: Vec<&RecoveryPoint> = points.iter().filter(|p| p.id > a.id).collect();
    assert!(after_a.iter().all(|p| p.window_exceeded), "points after A: {after_a:?}");
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/points/latest"));
    assert_eq!(r.status, 200, "{}", r.text());
    let latest: RecoveryPoint = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(latest.id, a.id, "latest must pass over the points read over longer than the bound");

    let r = api.post(&format!("/api/v1/pairs/{PAIR}/drills"), "application/json", b"{}");
    assert_eq!(r.status, 201, "{}", r.text());
    let drill: DrillStatus = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(drill.point, a.id, "a drill without a point serves the latest recoverable point");
    let tasks: TaskList = serde_json::from_slice(&api.get(&format!("/api/v1/tasks?pair={PAIR}")).body).unwrap();
    let t = tasks.tasks.iter().find(|t| t.kind == TaskKind::DrillStart).expect("the drill's task");
    let log: TaskLog = serde_json::from_slice(&api.get(&format!("/api/v1/tasks/{}/log", t.id.0)).body).unwrap();
    let said = log.lines.iter().map(|l| l.text.as_str()).collect::<Vec<_>>().join("\n");
    assert!(
        said.contains(&format!("latest: point {}: the newest recoverable point", a.id))
            && said.contains(&format!("{} skipped", b.id)),
        "the drill's log says which point and why:\n{said}"
    );
    let r = api.post(&format!("/api/v1/drills/{}/stop", drill.id), "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    step(format!("latest and a drill without a point chose point {}, skipping {}", a.id, b.id));

    let out = sb.cli().run(&["points", "list", PAIR]);
    out.ok();
    assert!(out.stdout.contains("READ") && out.stdout.contains("WINDOW EXCEEDED"), "{}", out.stdout);

    let metrics = api.metrics();
    assert!(
        metrics.contains(&format!("drpair_point_read_window_seconds{{pair=\"{PAIR}\",quantile=\"0.99\"}}")),
        "no read-window quantiles in:\n{metrics}"
    );
    let marked =
        drpair_e2e::api::metric_value(&metrics, &format!("drpair_point_window_exceeded_total{{pair=\"{PAIR}\"}}"));
    assert!(marked.is_some_and(|n| n >= 1.0), "window_exceeded count: {marked:?}");
    step("points list shows READ and the mark; metrics carry the windows' quantiles and the marked count");

    agent.term(Duration::from_secs(30));
    sb.term();

    // Bad bounds: refused at start, naming the key, nothing created.
    for bad in ["10ms", "soon", "2d"] {
        let dir = env.path(&format!("never-{bad}"));
        let out = Command::new(drpair_e2e::bin("drpaird"))
            .args(["standby", "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--max-read-window", bad])
            .arg("--data-dir")
            .arg(&dir)
            .output()
            .expect("drpaird");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains("max_read_window"), "--max-read-window {bad}: {err}");
        assert!(!dir.exists(), "a refused start created {}", dir.display());
    }
    step("max_read_window 10ms, soon and 2d are refused at start, naming the key; nothing is created");
}
