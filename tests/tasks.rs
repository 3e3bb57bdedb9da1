//! Tasks: the standby's long operations, listed with their logs, through the API and the CLI.
//!
//! A pair protects a 32 MiB image (scan tracker). A restart's baseline, a verification of
//! stored points and a prune each become a task: listed for the pair newest first, ended `ok`
//! at 100%, with the pair, who started it, its times and a log of its steps; each operation's
//! own status points at its task. `drpair tasks list|show|log` show the same. Bad input (a
//! task id that is no number, an unknown task, an unknown pair, an unknown query parameter) is
//! refused with the error named, by the API and the CLI. After a standby restart the tasks and
//! their logs are still there, and new tasks take new ids.

use drpair_e2e::image::sparse_image;
use drpair_e2e::maintenance::Maint;
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use drpair_types::{TaskInfo, TaskKind, TaskList, TaskLog, TaskState};
use serde_json::json;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

const PAIR: &str = "tasks";
const SIZE: u64 = 32 * MIB;
const LONG: Duration = Duration::from_secs(120);

fn tasks_of(api: &drpair_e2e::Api, query: &str) -> Vec<TaskInfo> {
    let r = api.get(&format!("/api/v1/tasks{query}"));
    assert_eq!(r.status, 200, "GET /api/v1/tasks{query}: {}", r.text());
    serde_json::from_slice::<TaskList>(&r.body).expect("TaskList").tasks
}

fn task(api: &drpair_e2e::Api, id: u64) -> TaskInfo {
    let r = api.get(&format!("/api/v1/tasks/{id}"));
    assert_eq!(r.status, 200, "GET /api/v1/tasks/{id}: {}", r.text());
    serde_json::from_slice(&r.body).expect("TaskInfo")
}

fn log_of(api: &drpair_e2e::Api, id: u64) -> Vec<String> {
    let r = api.get(&format!("/api/v1/tasks/{id}/log"));
    assert_eq!(r.status, 200, "GET /api/v1/tasks/{id}/log: {}", r.text());
    serde_json::from_slice::<TaskLog>(&r.body).expect("TaskLog").lines.into_iter().map(|l| l.text).collect()
}

/// Waits until task `id` ended; checks it ended well and looks like a finished task.
fn ended_ok(api: &drpair_e2e::Api, id: u64, kind: TaskKind) -> TaskInfo {
    let t = wait_until(&format!("task {id} to end"), LONG, || {
        let t = task(api, id);
        if t.state.is_over() { Ok(t) } else { Err(format!("{:.0}%: {}", t.progress_percent, t.message)) }
    });
    assert_eq!((t.state, t.kind, t.pair.as_str()), (TaskState::Ok, kind, PAIR), "{t:?}");
    assert_eq!(t.progress_percent, 100.0, "{t:?}");
    let end = t.ended_unix_ms.unwrap_or_else(|| panic!("an ended task without an end time: {t:?}"));
    assert!(end >= t.started_unix_ms, "{t:?}");
    assert!(!t.started_by.is_empty() && !t.message.is_empty(), "{t:?}");
    let log = log_of(api, id);
    assert_eq!(log.len() as u64, t.log_lines, "log_lines and the log differ: {log:?}");
    assert_eq!(log.last(), Some(&t.message), "the last log line is not the task's message: {log:?}");
    t
}

fn write_at(img: &Path, off: u64, byte: u8) {
    let f = std::fs::OpenOptions::new().write(true).open(img).expect("image");
    f.write_all_at(&vec![byte; 256 << 10], off).expect("write");
    f.sync_all().expect("sync");
}

#[test]
fn long_operations_are_tasks_with_logs() {
    let env = TestEnv::new("tasks");
    let img = env.path("disk0.img");
    sparse_image(&img, SIZE);
    write_at(&img, 0, 0x5a);
    let mut sb = Standby::start_with(&env, None, &["--prune-interval", "0", "--verify-interval", "0"]);
    let api = sb.api();
    let cli = sb.cli();
    let m = Maint::new(&sb, PAIR);
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[img.as_path()]);
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    assert!(tasks_of(&api, "").is_empty(), "tasks before any long operation: {:?}", tasks_of(&api, ""));

    // A restart's baseline is a task that ends when the new baseline commits.
    let r = api.post(
        &format!("/api/v1/pairs/{PAIR}/restart"),
        "application/json",
        json!({"confirm": PAIR}).to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "restart: {}", r.text());
    let listed = tasks_of(&api, &format!("?pair={PAIR}"));
    let baseline =
        listed.iter().find(|t| t.kind == TaskKind::Baseline).unwrap_or_else(|| panic!("no baseline task: {listed:?}"));
    let baseline = ended_ok(&api, baseline.id.0, TaskKind::Baseline);
    let committed = api.points(PAIR);
    assert!(
        baseline.message.contains(&format!("point {}", committed[0].id)),
        "the baseline task does not name the new baseline point {}: {baseline:?}",
        committed[0].id
    );
    step(format!("baseline task {}: {}", baseline.id, baseline.message));

    // A verification: its status points at its task, which logs and ends ok.
    let v = m.verify_ok(None);
    let vid = v.task.unwrap_or_else(|| panic!("the verification names no task: {v:?}"));
    let vt = ended_ok(&api, vid.0, TaskKind::Verify);
    assert_eq!(vt.started_by, "api", "{vt:?}");
    assert!(vt.message.contains("intact"), "{vt:?}");
    assert_eq!(api.status_json(PAIR)["verify"]["task"], vid.0, "status verify does not point at the task");

    // A prune that removes points is a task; a dry run is not.
    for i in 0..3u8 {
        write_at(&img, MIB * (2 + u64::from(i)), 0x10 + i);
        api.create_point_wait(PAIR);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let r = m.set_retention(&json!({"grid": "1x1s", "keep_last": 1}));
    assert_eq!(r.status, 200, "PUT retention: {}", r.text());
    let before = tasks_of(&api, "").len();
    let dry = m.prune_ok(true);
    assert!(dry.task.is_none() && tasks_of(&api, "").len() == before, "a dry run became a task: {dry:?}");
    let report = m.prune_ok(false);
    assert!(!report.removed.is_empty(), "the prune removed nothing: {report:?}");
    let pid = report.task.unwrap_or_else(|| panic!("the prune names no task: {report:?}"));
    let pt = ended_ok(&api, pid.0, TaskKind::Prune);
    let plog = log_of(&api, pid.0);
    assert!(plog.iter().any(|l| l.starts_with("removing point(s)")), "prune log: {plog:?}");
    assert!(pt.message.contains(&format!("removed {} point(s)", report.removed.len())), "{pt:?}");
    step(format!("prune task {}: {plog:?}", pt.id));

    // Newest first; per pair; running only.
    let all = tasks_of(&api, "");
    let ids: Vec<u64> = all.iter().map(|t| t.id.0).collect();
    assert_eq!(ids, vec![pid.0, vid.0, baseline.id.0], "tasks, newest first");
    assert_eq!(tasks_of(&api, &format!("?pair={PAIR}")), all);
    assert!(tasks_of(&api, "?running=true").is_empty());
    let tail = api.get(&format!("/api/v1/tasks/{}/log?from=1", pid.0));
    let tail: TaskLog = serde_json::from_slice(&tail.body).expect("TaskLog");
    assert_eq!((tail.from, tail.lines.len()), (1, plog.len() - 1), "log from line 1");

    // The CLI shows the same.
    let out = cli.run(&["tasks", "list", "--pair", PAIR, "--output", "json"]);
    out.ok();
    let listed: TaskList = serde_json::from_value(out.json()).expect("tasks list --output json");
    assert_eq!(listed.tasks, all);
    let text = cli.run(&["tasks", "list"]);
    text.ok();
    for t in &all {
        assert!(
            text.stdout.lines().any(|l| l.starts_with(&t.id.to_string()) && l.contains(t.kind.name())),
            "{}",
            text.stdout
        );
    }
    let show = cli.run(&["tasks", "show", &vid.to_string(), "--wait", "--output", "json"]);
    show.ok();
    assert_eq!(serde_json::from_value::<TaskInfo>(show.json()).expect("TaskInfo"), vt);
    let log = cli.run(&["tasks", "log", &pid.to_string()]);
    log.ok();
    assert!(log.stdout.contains("removing point(s)"), "drpair tasks log:\n{}", log.stdout);

    // Bad input.
    api.get("/api/v1/tasks/abc").assert_error(400, "InvalidParameter");
    api.get("/api/v1/tasks/0").assert_error(400, "InvalidParameter");
    api.get("/api/v1/tasks/999999").assert_error(404, "NotFound");
    api.get("/api/v1/tasks/999999/log").assert_error(404, "NotFound");
    api.get("/api/v1/tasks?pair=no-such-pair").assert_error(404, "PairNotFound");
    api.get("/api/v1/tasks?bogus=1").assert_error(400, "InvalidParameter");
    api.get(&format!("/api/v1/tasks/{}/log?from=x", pid.0)).assert_error(400, "InvalidParameter");
    let bad = cli.run(&["tasks", "show", "abc"]);
    bad.expect_code(2);
    assert!(bad.stderr.contains("not a task id"), "{}", bad.stderr);
    let unknown = cli.run(&["tasks", "show", "999999"]);
    assert_ne!(unknown.code, 0, "an unknown task: {}", unknown.stdout);
    assert!(unknown.stderr.contains("999999"), "{}", unknown.stderr);
    assert_eq!(tasks_of(&api, ""), all, "bad input changed the tasks");

    // The tasks and their logs survive a standby restart; new tasks take new ids.
    sb.term();
    sb.restart();
    assert_eq!(tasks_of(&api, ""), all, "tasks after a standby restart");
    assert_eq!(log_of(&api, pid.0), plog, "a task's log after a standby restart");
    drpair_e2e::wait_connected(&api, PAIR, true, LONG);
    let again = m.verify_ok(None).task.expect("task of the verification after the restart");
    assert!(again.0 > pid.0, "a new task reused an id: {again} after {pid}");
    ended_ok(&api, again.0, TaskKind::Verify);
    step("tasks and logs kept across a standby restart");
}
