//! Last successes and the standby's default RPO target (issue 26), with real processes.
//!
//! A standby started with `[standby] rpo_target = "1h"` in its config file: a pair without a
//! target of its own is judged against it (`rpo_state.target_source` = `standby`), the pair's
//! own replaces it, `off` removes it even over the default and `default` brings it back.
//! After an app-consistent point (hooks), a verification of stored chunks, an online verify
//! against the source and two drills (one without a check, one whose check passes), status
//! has every `last_successes` entry, the metrics have each as a timestamp (and `promtool
//! check metrics` finds nothing), and `drpair status` says so in its "Last successes" line; a
//! drill whose check fails leaves the last drill success as it was. After the standby
//! restarts they are all still there, unchanged. A config file with `rpo_target = "0s"`,
//! `"-5s"` or `"abc"` is refused by `drpaird config check` and at start, naming the key, and
//! the store is as it was when the good config starts the standby again.

use drpair_e2e::api::metric_value;
use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use drpair_types::{DrillStatus, LastSuccesses, RpoTargetSource};
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::Duration;

const PAIR: &str = "succ-01";
const LONG: Duration = Duration::from_secs(120);

/// `promtool check metrics` on `text`: whether it passed, and what it said.
fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `drpaird ARGS`: exit code and everything it printed.
fn drpaird(args: &[std::ffi::OsString]) -> (i32, String) {
    let out = Command::new(drpair_e2e::bin("drpaird")).args(args).output().expect("drpaird");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), said)
}

fn start_drill(api: &drpair_e2e::Api, body: serde_json::Value) -> DrillStatus {
    let r = api.post(&format!("/api/v1/pairs/{PAIR}/drills"), "application/json", body.to_string().as_bytes());
    assert_eq!(r.status, 201, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// Waits until the drill's check has a result; returns it.
fn checked(api: &drpair_e2e::Api, id: &str) -> DrillStatus {
    wait_until("the drill's check to end", LONG, || {
        let d: DrillStatus = serde_json::from_slice(&api.get(&format!("/api/v1/drills/{id}")).body).unwrap();
        if d.check.as_ref().is_some_and(|c| c.passed.is_some()) { Ok(d) } else { Err(format!("{:?}", d.check)) }
    })
}

/// Each success's metric equals its time in status (seconds).
fn metrics_match(metrics: &str, l: &LastSuccesses) {
    for (kind, name) in [
        ("point", "drpair_pair_last_point_timestamp_seconds"),
        ("verify", "drpair_pair_last_verify_success_timestamp_seconds"),
        ("source_verify", "drpair_pair_last_source_verify_success_timestamp_seconds"),
        ("drill", "drpair_pair_last_drill_success_timestamp_seconds"),
        ("app_consistent_point", "drpair_pair_last_app_consistent_point_timestamp_seconds"),
    ] {
        let at = l.each().into_iter().find(|(k, _)| *k == kind).and_then(|(_, s)| s).expect(kind).at_unix_ms;
        let got = metric_value(metrics, &format!("{name}{{pair=\"{PAIR}\"}}"));
        assert_eq!(got, Some(at as f64 / 1000.0), "{name} against status' {kind} ({at} ms)");
    }
}

#[test]
fn last_successes_are_shown_everywhere_and_survive_a_restart() {
    let env = TestEnv::new("last-successes");
    let img = env.path("disk0.img");
    create_image(&img, 16 * MIB, Fill::Mixed, 7);
    let good = env.path("standby.toml");
    std::fs::write(&good, "[standby]\nrpo_target = \"1h\"\n").unwrap();
    let (code, said) = drpaird(&["config".into(), "check".into(), good.clone().into()]);
    assert_eq!(code, 0, "{said}");
    assert!(said.contains("default RPO target 1h (error at 2h)"), "{said}");
    let mut sb = Standby::start_with(&env, None, &["--config", good.to_str().unwrap()]);
    let (api, cli) = (sb.api(), sb.cli());
    // App-consistent points through the agent's hooks (nothing to freeze in an image file).
    let hook = env.path("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.cut_interval = "1h".into();
    let hook_arg = hook.to_str().unwrap().to_string();
    spec.extra = vec!["--pre-hook".into(), hook_arg.clone(), "--post-hook".into(), hook_arg];
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);

    // The standby's default target, then the pair's own, off, and the default again.
    let settings = format!("/api/v1/pairs/{PAIR}/settings");
    let r = api.status(PAIR).rpo_state.expect("the standby's default gives the pair a target");
    assert_eq!((r.target_seconds, r.error_seconds, r.target_source), (3600, 7200, RpoTargetSource::Standby));
    let shown = cli.run(&["pairs", "set", PAIR]);
    assert!(shown.ok().stdout.contains("RPO target 1h (error at 2h; the standby's default)"), "{}", shown.stdout);
    cli.run(&["pairs", "set", PAIR, "--rpo-target", "10m"]).ok();
    let r = api.status(PAIR).rpo_state.unwrap();
    assert_eq!((r.target_seconds, r.target_source), (600, RpoTargetSource::Pair));
    cli.run(&["pairs", "set", PAIR, "--rpo-target", "off"]).ok();
    assert!(api.status(PAIR).rpo_state.is_none(), "off wins over the standby's default");
    assert_eq!(api.get(&settings).json()["rpo_target_source"], "pair");
    cli.run(&["pairs", "set", PAIR, "--rpo-target", "default"]).ok();
    let r = api.status(PAIR).rpo_state.unwrap();
    assert_eq!((r.target_seconds, r.target_source), (3600, RpoTargetSource::Standby));
    let j = api.status_json(PAIR);
    assert_eq!(j["rpo_state"]["target_source"], "standby", "{}", j["rpo_state"]);
    step("the standby's rpo_target applies to a pair without its own; its own, off and default change it");

    // Before anything but the baseline: the other successes are null.
    let j = api.status_json(PAIR);
    for k in ["verify", "source_verify", "drill", "app_consistent_point"] {
        assert!(j["last_successes"][k].is_null(), "{k}: {}", j["last_successes"]);
    }
    assert!(j["last_successes"]["point"]["at"].is_string(), "{}", j["last_successes"]);

    // An app-consistent point, a verification, an online verify, drills.
    let out = cli.run(&["points", "create", PAIR, "--hooks", "--wait", "--output", "json"]);
    let app: drpair_types::CreatePointResponse = serde_json::from_value(out.ok().json()).unwrap();
    let app = app.point.expect("--wait answers with the point");
    assert_eq!(app.consistency, drpair_types::Consistency::AppConsistent, "{app:?}");
    let plain = api.create_point_wait(PAIR);
    cli.run(&["verify", PAIR]).ok();
    let r = api.post(&format!("/api/v1/pairs/{PAIR}/verify-source"), "application/json", b"{}");
    assert!(r.status < 300, "verify-source: {}", r.text());
    wait_until("the online verify to pass", LONG, || {
        let l = api.status(PAIR).last_successes;
        l.source_verify.ok_or_else(|| format!("{:?}", api.status(PAIR).source_verify))
    });
    let d = start_drill(&api, json!({"point": plain.id, "ttl_seconds": 60}));
    let after_plain_drill = api.status(PAIR).last_successes.drill.expect("a drill served: a success");
    assert_eq!(after_plain_drill.point, Some(plain.id));
    let checked_ok = start_drill(&api, json!({"point": app.id, "check": "true", "ttl_seconds": 60}));
    assert_eq!(checked(&api, &checked_ok.id).check.unwrap().passed, Some(true));
    let s = api.status(PAIR);
    let drill = s.last_successes.drill.clone().expect("drill");
    assert!(drill.point == Some(app.id) && drill.detail.contains("check passed"), "{drill:?}");
    let failing = start_drill(&api, json!({"point": plain.id, "check": "exit 3", "ttl_seconds": 60}));
    assert_eq!(checked(&api, &failing.id).check.unwrap().passed, Some(false));
    assert_eq!(api.status(PAIR).last_successes.drill, Some(drill), "a failed drill keeps the last success");
    for id in [&d.id, &checked_ok.id, &failing.id] {
        let r = api.post(&format!("/api/v1/drills/{id}/stop"), "application/json", b"{}");
        assert!(r.status < 300, "stop drill {id}: {}", r.text());
    }

    let s = api.status(PAIR);
    let l = s.last_successes.clone();
    let newest = s.last_point.as_ref().expect("a point");
    let point = l.point.as_ref().expect("point");
    assert_eq!((point.point, point.at_unix_ms), (Some(newest.id), newest.time_unix_ms), "{l:?}");
    assert_eq!(l.app_consistent_point.as_ref().and_then(|p| p.point), Some(app.id), "{l:?}");
    let verify = l.verify.as_ref().expect("verify");
    assert_eq!(Some(verify.at_unix_ms), s.verify.as_ref().and_then(|v| v.finished_unix_ms), "{l:?}");
    assert!(l.source_verify.is_some() && l.drill.is_some(), "{l:?}");
    assert!(point.at.ends_with('Z') && point.at.starts_with("20"), "RFC 3339: {}", point.at);
    let metrics = api.metrics();
    metrics_match(&metrics, &l);
    let (ok, said) = promtool_check(&metrics);
    assert!(ok && said.trim().is_empty(), "promtool check metrics: {said}");
    let text = cli.run(&["status", PAIR]);
    let line =
        text.ok().stdout.lines().find(|l| l.contains("Last successes")).expect("a Last successes line").to_string();
    for said in ["point ", "verify ", "source verify ", "drill ", "app-consistent "] {
        assert!(line.contains(said) && !line.contains(&format!("{said}never")), "{said}: {line}");
    }
    step(format!("status, metrics (promtool: no finding) and drpair status show every last success: {line}"));

    // A standby restart: every success still there, the same.
    sb.term();
    sb.restart();
    let after = api.status(PAIR).last_successes;
    assert_eq!(after, l, "the last successes survive a restart");
    metrics_match(&api.metrics(), &l);
    assert_eq!(api.status(PAIR).rpo_state.map(|r| r.target_source), Some(RpoTargetSource::Standby));
    step("after a standby restart every last success is the same, in status and metrics");

    // A bad default RPO target: refused by config check and at start, naming the key.
    sb.term();
    let bad = env.path("bad.toml");
    let mut args = sb.proc.args().to_vec();
    let at = args.iter().position(|a| a == "--config").expect("--config") + 1;
    args[at] = bad.clone().into();
    for (value, want) in [
        ("0s", "rpo_target: '0s': an RPO target must be more than 0"),
        ("-5s", "rpo_target: '-5s' is not a duration"),
        ("abc", "rpo_target: 'abc' is not a duration"),
    ] {
        std::fs::write(&bad, format!("[standby]\nrpo_target = \"{value}\"\n")).unwrap();
        let (code, said) = drpaird(&["config".into(), "check".into(), bad.clone().into()]);
        assert!(code != 0 && said.contains(want), "config check of rpo_target {value}: exit {code}: {said}");
        let (code, said) = drpaird(&args);
        assert!(code != 0 && said.contains(want), "start with rpo_target {value}: exit {code}: {said}");
    }
    std::fs::write(&bad, "[standby]\nrpo_target = \"30s\"\nrpo_error = \"10s\"\n").unwrap();
    let (code, said) = drpaird(&["config".into(), "check".into(), bad.clone().into()]);
    assert!(code != 0 && said.contains("rpo_error: the error threshold (10s) must be over rpo_target (30s)"), "{said}");
    sb.restart();
    let s = api.status(PAIR);
    assert_eq!(s.last_successes, l, "the refused starts changed nothing");
    assert_eq!(s.rpo_state.map(|r| (r.target_seconds, r.target_source)), Some((3600, RpoTargetSource::Standby)));
    step("rpo_target 0s, -5s, abc: refused by config check and at start naming the key; nothing changed");
    drop(agent);
}
