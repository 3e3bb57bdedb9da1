use super::*;

fn pair(name: &str) -> PairId {
    PairId::new(name).unwrap()
}

#[test]
fn a_task_runs_logs_and_ends() {
    let tasks = Tasks::in_memory();
    let t = tasks.start(TaskKind::Verify, &pair("web-01"), "api", "verifying 3 points");
    let id = t.id();
    t.progress(40.0);
    t.step("point 17 intact");
    let info = tasks.get(id).unwrap();
    assert_eq!((info.state, info.progress_percent, info.log_lines), (TaskState::Running, 40.0, 2));
    assert_eq!(info.message, "point 17 intact");
    t.ok("3 points intact");
    let info = tasks.get(id).unwrap();
    assert_eq!((info.state, info.progress_percent), (TaskState::Ok, 100.0));
    assert!(info.ended_unix_ms.is_some());
    let log = tasks.log(id, 1).unwrap();
    assert_eq!(log.from, 1);
    let texts: Vec<&str> = log.lines.iter().map(|l| l.text.as_str()).collect();
    assert_eq!(texts, ["point 17 intact", "3 points intact"]);
    // Steps and progress after the end change nothing.
    tasks.step(id, "late");
    tasks.progress(id, 5.0);
    assert_eq!(tasks.get(id).unwrap().log_lines, 3);
    assert_eq!(tasks.get(id).unwrap().progress_percent, 100.0);
}

#[test]
fn a_dropped_handle_fails_its_task() {
    let tasks = Tasks::in_memory();
    let id = tasks.start(TaskKind::Prune, &pair("a"), "schedule", "pruning").id();
    let info = tasks.get(id).unwrap();
    assert_eq!(info.state, TaskState::Failed);
    assert_eq!(info.message, "ended without a result");
}

#[test]
fn a_detached_task_ends_later_and_is_found_running() {
    let tasks = Tasks::in_memory();
    let p = pair("a");
    let id = tasks.start(TaskKind::Baseline, &p, "api", "copying every chunk").detach();
    assert_eq!(tasks.running(TaskKind::Baseline, &p), Some(id));
    assert_eq!(tasks.running(TaskKind::Baseline, &pair("b")), None);
    tasks.end(id, TaskState::Ok, "baseline point 4 committed".into());
    assert_eq!(tasks.running(TaskKind::Baseline, &p), None);
    // A second end does not change the first.
    tasks.end(id, TaskState::Failed, "no".into());
    assert_eq!(tasks.get(id).unwrap().state, TaskState::Ok);
}

#[test]
fn lists_filter_by_pair_and_state_newest_first() {
    let tasks = Tasks::in_memory();
    let a = tasks.start(TaskKind::Verify, &pair("a"), "api", "x");
    let b = tasks.start(TaskKind::Failover, &pair("b"), "api", "y");
    let (ia, ib) = (a.id(), b.id());
    a.ok("done");
    let all: Vec<TaskId> = tasks.list(None, false).iter().map(|t| t.id).collect();
    assert_eq!(all, [ib, ia]);
    let of_a: Vec<TaskId> = tasks.list(Some(&pair("a")), false).iter().map(|t| t.id).collect();
    assert_eq!(of_a, [ia]);
    let running: Vec<TaskId> = tasks.list(None, true).iter().map(|t| t.id).collect();
    assert_eq!(running, [ib]);
    assert!(tasks.get(TaskId(99)).is_none());
    assert!(tasks.log(TaskId(99), 0).is_none());
    b.ok("done");
}

#[test]
fn tasks_survive_a_restart_and_running_ones_are_recorded_as_cut_short() {
    let dir = tempfile::tempdir().unwrap();
    let (done, cut) = {
        let tasks = Tasks::open(dir.path()).unwrap();
        let t = tasks.start(TaskKind::DumpLoad, &pair("a"), "api", "loading disk 0");
        let done = t.id();
        t.ok("loaded");
        // A standby killed mid-task: the handle is never dropped.
        let cut = tasks.start(TaskKind::Verify, &pair("a"), "schedule", "verifying");
        let id = cut.id();
        std::mem::forget(cut);
        (done, id)
    };
    std::fs::write(dir.path().join("junk.json"), b"{not json").unwrap();
    let tasks = Tasks::open(dir.path()).unwrap();
    assert_eq!(tasks.get(done).unwrap().state, TaskState::Ok);
    let c = tasks.get(cut).unwrap();
    assert_eq!(c.state, TaskState::Failed);
    assert!(c.message.contains("standby stopped"), "{}", c.message);
    // Ids go on after the newest kept one.
    let next = tasks.start(TaskKind::Prune, &pair("a"), "api", "p");
    assert_eq!(next.id(), TaskId(cut.0 + 1));
    next.ok("ok");
}

#[test]
fn only_the_newest_finished_tasks_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = Tasks::open(dir.path()).unwrap();
    let running = tasks.start(TaskKind::Failback, &pair("a"), "api", "still going");
    for _ in 0..KEEP + 5 {
        tasks.start(TaskKind::Prune, &pair("a"), "schedule", "p").ok("ok");
    }
    let list = tasks.list(None, false);
    assert_eq!(list.len(), KEEP);
    assert!(list.iter().any(|t| t.id == running.id()), "a running task is never dropped");
    let files = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(files, KEEP);
    running.ok("done");
}

#[test]
fn a_long_log_is_capped_and_says_so() {
    let tasks = Tasks::in_memory();
    let t = tasks.start(TaskKind::Verify, &pair("a"), "api", "go");
    for i in 0..MAX_LOG_LINES + 10 {
        t.step(&format!("step {i}"));
    }
    let id = t.id();
    t.ok("end");
    let log = tasks.log(id, 0).unwrap();
    assert_eq!(log.lines.len(), MAX_LOG_LINES);
    assert!(log.lines.last().unwrap().text.contains("later steps are counted"));
    assert_eq!(tasks.get(id).unwrap().log_lines, MAX_LOG_LINES as u64 + 12);
    assert_eq!(tasks.get(id).unwrap().message, "end");
}

/// Waits (up to 10 s) until `ok` holds for the task.
async fn until(tasks: &Tasks, id: TaskId, ok: impl Fn(&TaskInfo) -> bool) -> TaskInfo {
    for _ in 0..400 {
        let info = tasks.get(id).unwrap();
        if ok(&info) {
            return info;
        }
        tokio::time::sleep(FOLLOW_EVERY / 10).await;
    }
    panic!("task {id} never reached the expected state: {:?}", tasks.get(id));
}

#[tokio::test]
async fn a_followed_operation_logs_each_new_message_and_ends_the_task() {
    let tasks = Tasks::in_memory();
    let t = tasks.start(TaskKind::SourceVerify, &pair("a"), "api", "asked the agent");
    let id = t.id();
    let seen = Arc::new(Mutex::new(Seen::Running { percent: 0.0, message: "asked the agent".into() }));
    let look = seen.clone();
    t.follow(move || look.lock().unwrap().clone());
    *seen.lock().unwrap() = Seen::Running { percent: 30.0, message: "comparing with point 7".into() };
    until(&tasks, id, |i| i.progress_percent == 30.0).await;
    *seen.lock().unwrap() = Seen::Running { percent: 60.0, message: "comparing with point 7".into() };
    let info = until(&tasks, id, |i| i.progress_percent == 60.0).await;
    assert_eq!((info.state, info.log_lines), (TaskState::Running, 2));
    *seen.lock().unwrap() = Seen::Failed("the agent disconnected".into());
    let info = until(&tasks, id, |i| i.state.is_over()).await;
    assert_eq!((info.state, info.message.as_str()), (TaskState::Failed, "the agent disconnected"));
    let texts: Vec<String> = tasks.log(id, 0).unwrap().lines.into_iter().map(|l| l.text).collect();
    assert_eq!(texts, ["asked the agent", "comparing with point 7", "the agent disconnected"]);
}
