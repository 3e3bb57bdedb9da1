//! The DMS fields and stop reasons (dms-start-replication.txt), each reached for real:
//! the dates (`fresh_start_date`, `start_date`, `stop_date`, `full_load_*`,
//! `elapsed_time_millis`, `full_load_progress_percent`, `last_stop_time`, `create_time`,
//! `update_time`) as a pair starts, stops, resumes and reloads; `NORMAL` (alias
//! `STOPPED_BY_USER`), `STOPPED_AT_SERVER_TIME`, `STOPPED_AFTER_FULL_LOAD`,
//! `FULL_LOAD_ONLY_FINISHED`, `RECOVERABLE_ERROR` (agent killed), `STOPPED_DUE_TO_LOW_MEMORY`
//! (a memory floor above what the machine has, then lifted: the pair resumes by itself) and
//! `FATAL_ERROR` (an agent whose state dir is older than the pair's lineage); bad input to the
//! new options changes nothing. (`STOPPED_AT_POINT` and `STOPPED_AT_COMMIT_TIME` are reached
//! in lifecycle_replay_stop.rs, `RECONFIGURATION_RESTART` in reconfigure.rs and
//! `STOPPED_DUE_TO_LOW_DISK` in low_disk_delete.rs.)

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, rfc3339_ms, sh, step, wait_ready};
use drpair_types::{PairState, PairStatus};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const LONG: Duration = Duration::from_secs(120);

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn ms(t: &Option<String>) -> u64 {
    let t = t.as_deref().unwrap_or_else(|| panic!("date missing"));
    drpair_types::parse_time_ms(t).unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn stopped_with(api: &drpair_e2e::Api, pair: &str, reason: &str) -> PairStatus {
    let s = wait_status(api, pair, None, reason, LONG, |s| {
        s.state == PairState::Stopped && s.stop_reason.as_deref() == Some(reason)
    });
    step(format!("{reason}: {}", describe(&s)));
    assert!(s.dates.stop_date.is_some() && s.dates.last_stop_time.is_some(), "{s:?}");
    s
}

#[test]
fn dates_and_stop_reasons() {
    let env = TestEnv::new("stop-reasons");
    let pair = "dms-01";
    let img = env.path("disk0.img");
    create_image(&img, 16 * MIB, Fill::Random, 3);
    let mut sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    let mut agent = spec.spawn(&env, "agent");
    let s = wait_ready(&api, pair, &mut agent, LONG);
    let saved = env.path("agent-state-before-reload");
    sh("cp", &["-a", &spec.state_dir.display().to_string(), &saved.display().to_string()]);

    // Started by registration (auto start): every date of the first full load.
    let fresh = ms(&s.dates.fresh_start_date);
    assert_eq!(ms(&s.dates.start_date), fresh);
    assert_eq!(ms(&s.dates.full_load_start_date), fresh);
    assert!(ms(&s.dates.full_load_finish_date) >= fresh);
    assert!(ms(&Some(s.dates.create_time.clone())) <= fresh);
    assert!(s.dates.stop_date.is_none() && s.dates.last_stop_time.is_none(), "{s:?}");
    assert_eq!(s.dates.full_load_progress_percent, 100.0);
    assert!(
        s.dates.elapsed_time_millis > 0 && s.dates.elapsed_time_millis < 120_000,
        "{}",
        s.dates.elapsed_time_millis
    );
    let j = api.status_json(pair);
    for k in [
        "fresh_start_date",
        "start_date",
        "stop_date",
        "full_load_start_date",
        "full_load_finish_date",
        "elapsed_time_millis",
        "full_load_progress_percent",
        "last_stop_time",
        "create_time",
        "update_time",
    ] {
        assert!(j.get(k).is_some(), "status has no {k}: {j}");
    }

    // NORMAL (alias STOPPED_BY_USER); the elapsed time stops with the pair.
    cli.run(&["stop", pair]).ok();
    let s = stopped_with(&api, pair, "NORMAL");
    assert_eq!(s.stop_reason_alias.as_deref(), Some("STOPPED_BY_USER"));
    assert_eq!(s.dates.stop_date, s.dates.last_stop_time);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(
        api.status(pair).dates.elapsed_time_millis,
        s.dates.elapsed_time_millis,
        "elapsed time runs on while stopped"
    );
    let stop = ms(&s.dates.stop_date);
    cli.run(&["start", pair, "--type", "resume"]).ok();
    let s = wait_status(&api, pair, None, "resumed", LONG, |s| s.state == PairState::Replicating);
    assert!(ms(&s.dates.start_date) >= stop && s.dates.stop_date.is_none(), "{s:?}");
    assert_eq!(ms(&s.dates.last_stop_time), stop, "the last stop is kept");
    assert_eq!(ms(&s.dates.fresh_start_date), fresh, "a resume is not a fresh start");
    assert!(ms(&Some(s.dates.update_time.clone())) >= stop);

    // Bad input: refused, nothing changed.
    let past = rfc3339_ms(now_ms() - 60_000);
    let soon = rfc3339_ms(now_ms() + 4_000);
    for (args, code) in [
        (vec!["--type", "resume", "--stop-at-server-time", past.as_str()], 8),
        (vec!["--type", "resume", "--stop-at-server-time", soon.as_str(), "--stop-at-point", "999"], 8),
        (vec!["--type", "resume", "--stop-after-full-load"], 8),
        (vec!["--type", "reload", "--yes", "--full-load-only", "--stop-after-full-load"], 8),
        (vec!["--type", "resume", "--stop-at-server-time", "teatime"], 2),
    ] {
        let mut a = vec!["start", pair];
        a.extend(args);
        cli.run(&a).expect_code(code);
    }
    let s = api.status(pair);
    assert!(s.state == PairState::Replicating && s.stop_at.is_none(), "bad input changed the pair: {}", describe(&s));

    // STOPPED_AT_SERVER_TIME: the standby's clock, whatever is being shipped.
    cli.run(&["start", pair, "--type", "resume", "--stop-at-server-time", &soon]).ok();
    let s = stopped_with(&api, pair, "STOPPED_AT_SERVER_TIME");
    assert!(ms(&s.dates.stop_date) >= ms(&Some(soon.clone())), "stopped before its time: {s:?}");
    cli.run(&["start", pair, "--type", "resume"]).ok();

    // STOPPED_AFTER_FULL_LOAD and FULL_LOAD_ONLY_FINISHED: a reload's baseline, then stop.
    for (flag, reason) in
        [("--stop-after-full-load", "STOPPED_AFTER_FULL_LOAD"), ("--full-load-only", "FULL_LOAD_ONLY_FINISHED")]
    {
        let before = now_ms();
        cli.run(&["start", pair, "--type", "reload", "--yes", flag]).ok();
        let s = stopped_with(&api, pair, reason);
        assert!(s.ready_for_failover, "the baseline is committed: {}", describe(&s));
        assert!(ms(&s.dates.fresh_start_date) >= before && ms(&s.dates.full_load_start_date) >= before, "{s:?}");
        assert!(ms(&s.dates.full_load_finish_date) >= ms(&s.dates.full_load_start_date));
        assert_eq!(s.dates.full_load_progress_percent, 100.0);
        cli.run(&["start", pair, "--type", "resume"]).ok();
        wait_status(&api, pair, None, "resumed", LONG, |s| s.state == PairState::Replicating);
    }

    // RECOVERABLE_ERROR: the agent is away and will be back by itself.
    agent.kill9();
    let s = wait_status(&api, pair, None, "agent away", LONG, |s| s.state == PairState::Disconnected);
    assert_eq!(s.stop_reason.as_deref(), Some("RECOVERABLE_ERROR"), "{}", describe(&s));
    agent.start();
    wait_status(&api, pair, Some(&mut agent), "agent back", LONG, |s| s.state == PairState::Replicating);

    // STOPPED_DUE_TO_LOW_MEMORY: a floor above the machine's memory stops the pair; lifted, it
    // resumes by itself.
    sb.term();
    let mut args = sb.proc.args().to_vec();
    args.extend([std::ffi::OsString::from("--memory-reserve"), std::ffi::OsString::from("1000TiB")]);
    sb.proc.set_args(args.clone());
    sb.restart();
    let s = stopped_with(&api, pair, "STOPPED_DUE_TO_LOW_MEMORY");
    assert!(s.failure_messages.iter().any(|m| m.contains("available memory")), "{:?}", s.failure_messages);
    sb.term();
    args.truncate(args.len() - 2);
    sb.proc.set_args(args);
    sb.restart();
    let s = wait_status(&api, pair, Some(&mut agent), "resumed by itself", LONG, |s| s.state == PairState::Replicating);
    assert!(s.stop_reason.is_none(), "{}", describe(&s));

    // FATAL_ERROR: an agent whose state is from before the reloads is refused until an
    // operator acts.
    agent.term(Duration::from_secs(20));
    sh("rm", &["-rf", &spec.state_dir.display().to_string()]);
    sh("cp", &["-a", &saved.display().to_string(), &spec.state_dir.display().to_string()]);
    agent.start();
    let s = wait_status(&api, pair, None, "refused", LONG, |s| s.stop_reason.as_deref() == Some("FATAL_ERROR"));
    assert!(s.failure_messages.iter().any(|m| m.contains("lineage")), "{:?}", s.failure_messages);
    assert!(agent.wait_exit(Duration::from_secs(30)).is_some(), "a refused agent stops");
}
