//! RPO targets (issue 26, part 1): a pair with `drpair pairs set PAIR --rpo-target 3s` goes
//! to `warning` once its newest point is 3 s old and to `error` at 6 s (twice the target),
//! each dated from the crossing, said in the standby's log (the journal) and in the metrics;
//! a new point brings it back to `ok` ("RPO back to ok"). `drpair status` shows the RPO line.
//! Bad input (0, negative, unparseable, over 30 days, an error threshold not over the target
//! or without a target, an unknown field) is refused naming the parameter and changes nothing.

use drpair_e2e::api::metric_value;
use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use drpair_types::RpoLevel;
use serde_json::json;
use std::time::Duration;

const PAIR: &str = "rpo-01";
const LONG: Duration = Duration::from_secs(120);

#[test]
fn rpo_target_warns_then_errs_and_a_point_clears_it() {
    let env = TestEnv::new("rpo-targets");
    let img = env.path("disk0.img");
    create_image(&img, 16 * MIB, Fill::Mixed, 3);
    let sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let settings = format!("/api/v1/pairs/{PAIR}/settings");
    assert!(api.status(PAIR).rpo_state.is_none(), "no target, no rpo_state");

    // Bad input: refused naming the parameter; nothing changes.
    for (args, param) in [
        (vec!["--rpo-target", "0"], "rpo_target"),
        (vec!["--rpo-target=-5s"], "rpo_target"),
        (vec!["--rpo-target", "soon"], "rpo_target"),
        (vec!["--rpo-target", "31d"], "rpo_target"),
        (vec!["--rpo-error", "10s"], "rpo_error"),
        (vec!["--rpo-target", "30s", "--rpo-error", "20s"], "rpo_error"),
    ] {
        let mut a = vec!["pairs", "set", PAIR];
        a.extend(args.iter().copied());
        let out = cli.run(&a);
        assert_eq!(out.code, 8, "{a:?} was not refused as a bad parameter: {out:?}");
        assert!(out.stderr.contains(param), "{a:?}: the refusal names {param}: {}", out.stderr);
    }
    api.put_json(&settings, &json!({"rpo_target": "1.5m"})).assert_error(400, "InvalidParameter");
    api.put_json(&settings, &json!({"rpo_target": "30s", "rpo": "x"})).assert_error(400, "InvalidParameter");
    api.put_json(&settings, &json!({"rpo_target": "30s", "bandwidth": "fast"})).assert_error(400, "InvalidParameter");
    let now = api.get(&settings).json();
    assert_eq!((now["rpo_target"].as_str(), now["bandwidth"].as_str()), (Some("off"), Some("unlimited")), "{now}");
    step("bad RPO targets refused naming the parameter; the settings unchanged");

    // A 3 s target: ok after a fresh point, warning at 3 s, error at 6 s.
    let point = api.create_point_wait(PAIR);
    cli.run(&["pairs", "set", PAIR, "--rpo-target", "3s"]).ok();
    let set = api.get(&settings).json();
    assert_eq!((set["rpo_target_seconds"].as_u64(), set["rpo_error_seconds"].as_u64()), (Some(3), Some(6)), "{set}");
    let s = api.status(PAIR).rpo_state.expect("rpo_state with a target");
    assert_eq!(s.state, RpoLevel::Ok, "{s:?}");
    let warn = wait_until("RPO warning", LONG, || {
        let s = api.status(PAIR).rpo_state.unwrap();
        if s.state == RpoLevel::Warning { Ok(s) } else { Err(format!("{s:?}")) }
    });
    assert!(warn.rpo_seconds >= 3.0 && warn.rpo_seconds < 6.0, "{warn:?}");
    assert_eq!(warn.since_unix_ms, point.time_unix_ms + 3000, "warning is dated from the crossing: {warn:?}");
    let err = wait_until("RPO error", LONG, || {
        let s = api.status(PAIR).rpo_state.unwrap();
        if s.state == RpoLevel::Error { Ok(s) } else { Err(format!("{s:?}")) }
    });
    assert_eq!(err.since_unix_ms, point.time_unix_ms + 6000, "{err:?}");
    let m = api.metrics();
    assert_eq!(
        metric_value(&m, &format!("drpair_pair_rpo_state{{pair=\"{PAIR}\",state=\"error\"}}")),
        Some(1.0),
        "{m}"
    );
    assert_eq!(metric_value(&m, &format!("drpair_pair_rpo_target_seconds{{pair=\"{PAIR}\"}}")), Some(3.0));
    let shown = cli.run(&["status", PAIR]);
    assert!(shown.ok().stdout.contains("RPO") && shown.stdout.contains("ERROR since"), "{}", shown.stdout);
    step(format!(
        "warning at {:.1} s, error at {:.1} s; metrics and drpair status say so",
        warn.rpo_seconds, err.rpo_seconds
    ));

    // A new point: back to ok. The log has every change (the watcher evaluates each second).
    api.create_point_wait(PAIR);
    let ok = api.status(PAIR).rpo_state.unwrap();
    assert_eq!(ok.state, RpoLevel::Ok, "{ok:?}");
    let log = sb.proc.log();
    for said in ["RPO warning", "RPO error", "RPO back to ok"] {
        assert!(log.contains(said), "the standby log lacks '{said}'");
    }
    // Off removes the state and the metrics' target.
    cli.run(&["pairs", "set", PAIR, "--rpo-target", "off"]).ok();
    assert!(api.status(PAIR).rpo_state.is_none());
    step("a new point brings the pair back to ok; --rpo-target off removes the target");
}
