//! Lifecycle actions given bad input, or in a state that does not allow them, get a clear
//! error and change nothing (DESIGN invariant 4), through the API (status, `code`,
//! `parameter`) and the CLI (exit code, stderr naming the problem):
//!
//! - `every_refusal_changes_nothing`: one replicating pair; unknown pairs, missing and wrong
//!   tokens, restarts without the right confirmation, malformed bodies, pause/resume/stop
//!   repeated in the wrong state, `start --type start` on a pair that ran, every contradictory
//!   or impossible `start` combination, unknown and malformed from-points; `pairs list
//!   --search`. Afterwards the lineage, the checkpoint, the state and every point are as they
//!   were (the pair may only have committed new points), and it still converges.
//! - `held_new_pair_waits_for_start`: a standby with `--hold-new-pairs` keeps a new pair
//!   *Initiating* (nothing shipped) until `start --type start`; resume and pause are refused
//!   before, a second `start --type start` after.
//!
//! Every contract check is recorded and the test fails at the end listing all that broke.

use drpair_e2e::image::{Fill, create_image, hash_file};
use drpair_e2e::lifecycle::{Findings, Snapshot, StdinCli, action, action_raw, distinct_states, expect_action};
use drpair_e2e::link::{RawLink, hello};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{PairState, PairSummary};
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const TOKEN: &str = "lifecycle-bad-input-token";
const WRONG_TOKEN: &str = "not-the-token-4242";
const PAIR: &str = "lc-bad-web-01";
/// A second pair (registered by a bare Hello) for `--search` to tell apart.
const DECOY: &str = "decoy-db-77";
const NOSUCH: &str = "nosuch-pair-9";
const DISK_SIZE: u64 = 64 * MIB;
const CHUNK: u64 = 64 << 10;
const LONG: Duration = Duration::from_secs(180);
/// A lineage no pair has.
const ALIEN_LINEAGE: &str = "0badc0de-0000-4000-8000-000000000001";

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs()
}

/// The pair ids of a pairs list (API or CLI JSON), sorted.
fn ids_of(list: &Value) -> Result<Vec<String>, String> {
    let rows: Vec<PairSummary> =
        serde_json::from_value(list.clone()).map_err(|e| format!("not a pairs list ({e}): {list}"))?;
    let mut ids: Vec<String> = rows.iter().map(|r| r.pair_id.to_string()).collect();
    ids.sort();
    Ok(ids)
}

fn expect_ids(list: &Value, want: &[&str]) -> Result<(), String> {
    let ids = ids_of(list)?;
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    if ids == want { Ok(()) } else { Err(format!("listed {ids:?}, expected {want:?}")) }
}

#[test]
fn every_refusal_changes_nothing() {
    let env = TestEnv::new("lc-bad-input");
    let img = env.path("disk0.img");
    create_image(&img, DISK_SIZE, Fill::Mixed, 57);
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let cli = StdinCli::new(&sb);
    let spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    api.create_point_wait(PAIR);

    // A second pair, registered by a bare Hello and left disconnected.
    let mut raw = RawLink::to(&sb);
    let w = raw.hello(hello(DECOY, Some(TOKEN), "/dev/decoy", 16 * MIB, CHUNK));
    assert!(matches!(w, drpair_wire::StandbyMsg::Welcome { registered: true, .. }), "decoy not registered: {w:?}");
    drop(raw);

    let snap = Snapshot::take(&api, PAIR);
    assert_eq!(snap.status.state, PairState::Replicating, "{}", describe(&snap.status));
    assert!(snap.points.len() >= 2, "{:?}", snap.points);
    let lineage = snap.lineage().to_string();
    let first = snap.points[0].clone();
    let head = snap.status.checkpoint.expect("checkpoint").epoch;
    let future = drpair_e2e::rfc3339_ms((now_secs() + 3600) * 1000);
    let past = "2001-01-01T00:00:00Z";
    let first_id = first.id.to_string();
    let mut f = Findings::new();
    let post = |act: &str, body: Value| action(&api, PAIR, act, &body);
    let unchanged = |f: &mut Findings, after: &str| {
        let diffs = snap.changes(&api, PAIR);
        f.check(
            &format!("nothing changed after {after}"),
            if diffs.is_empty() { Ok(()) } else { Err(diffs.join("; ")) },
        );
    };

    // ---- Unknown pair: 404 / exit 3 for every action.
    step("== unknown pair");
    for (act, body) in [
        ("restart", json!({"confirm": NOSUCH})),
        ("start", json!({"type": "resume"})),
        ("pause", json!({})),
        ("resume", json!({})),
        ("stop", json!({})),
    ] {
        let r = action(&api, NOSUCH, act, &body);
        f.api_error_naming(&format!("API {act} of an unknown pair"), &r, 404, "PairNotFound", &[NOSUCH]);
    }
    for args in [
        &["restart", NOSUCH, "--yes"][..],
        &["start", NOSUCH, "--type", "resume"],
        &["pause", NOSUCH],
        &["resume", NOSUCH],
        &["stop", NOSUCH],
    ] {
        let out = cli.run(args, b"");
        f.cli(&format!("CLI {} of an unknown pair", args[0]), &out, 3, &[NOSUCH]);
    }
    let out = cli.run(&["restart", NOSUCH], format!("{NOSUCH}\n").as_bytes());
    f.cli("CLI restart of an unknown pair, confirmed", &out, 3, &[NOSUCH]);

    // ---- No token (401) and a wrong one (403) on every lifecycle endpoint; exit 5.
    step("== tokens");
    for (who, client, status) in
        [("no token", api.with_token(None), 401), ("wrong token", api.with_token(Some(WRONG_TOKEN)), 403)]
    {
        for (act, body) in [
            ("restart", json!({"confirm": PAIR})),
            ("start", json!({"type": "resume"})),
            ("pause", json!({})),
            ("resume", json!({})),
            ("stop", json!({})),
        ] {
            let r = action(&client, PAIR, act, &body);
            f.api_error(&format!("API {act} with {who}"), &r, status, "AccessDenied", None);
        }
        let c = cli.with_token(if status == 401 { None } else { Some(WRONG_TOKEN) });
        for args in [
            &["restart", PAIR, "--yes"][..],
            &["start", PAIR, "--type", "resume"],
            &["start", PAIR, "--type", "reload", "--yes"],
            &["pause", PAIR],
            &["resume", PAIR],
            &["stop", PAIR],
        ] {
            let out = c.run(args, b"");
            f.cli(&format!("CLI {} with {who}", args[0]), &out, 5, &["token"]);
        }
        let out = c.run(&["restart", PAIR], format!("{PAIR}\n").as_bytes());
        f.cli(&format!("CLI restart, confirmed, with {who}"), &out, 5, &["token"]);
    }
    unchanged(&mut f, "unknown pairs and bad tokens");

    // ---- Restart without the right confirmation, and malformed bodies.
    step("== restart confirmation");
    for (what, body) in [
        ("no confirm", json!({})),
        ("no confirm, options", json!({"full_copy": true, "keep_points_until_synced": true})),
        ("an empty confirm", json!({"confirm": ""})),
        ("another pair's id", json!({"confirm": DECOY})),
        ("the id in capitals", json!({"confirm": PAIR.to_uppercase()})),
        ("the id with a suffix", json!({"confirm": format!("{PAIR}x")})),
    ] {
        let r = post("restart", body);
        f.api_error(&format!("API restart with {what}"), &r, 400, "InvalidParameter", Some("confirm"));
    }
    for (what, body) in [
        ("not JSON", &b"{confirm:"[..]),
        ("an unknown field", format!(r#"{{"confirm":"{PAIR}","frobnicate":1}}"#).as_bytes()),
        ("full_copy not a boolean", format!(r#"{{"confirm":"{PAIR}","full_copy":"yes"}}"#).as_bytes()),
        ("an array", b"[]"),
    ] {
        let r = action_raw(&api, PAIR, "restart", body);
        f.api_error(&format!("API restart with {what}"), &r, 400, "InvalidParameter", Some("body"));
    }
    for (what, input) in [
        ("a wrong line", format!("{DECOY}\n")),
        ("the id in capitals", format!("{}\n", PAIR.to_uppercase())),
        ("an empty line then the id", format!("\n{PAIR}\n")),
        ("end of input", String::new()),
    ] {
        let out = cli.run(&["restart", PAIR, "--full-copy"], input.as_bytes());
        f.cli(&format!("CLI restart answered with {what}"), &out, 9, &["not confirmed"]);
    }
    unchanged(&mut f, "unconfirmed restarts");

    // ---- pause, resume and stop take no parameters.
    step("== bodies of pause/resume/stop");
    for act in ["pause", "resume", "stop"] {
        for body in [&br#"{"force":true}"#[..], b"[", b"null x"] {
            let r = action_raw(&api, PAIR, act, body);
            f.api_error(
                &format!("API {act} with body {}", String::from_utf8_lossy(body)),
                &r,
                400,
                "InvalidParameter",
                Some("body"),
            );
        }
    }
    unchanged(&mut f, "pause/resume/stop with parameters");

    // ---- Pause twice, resume twice.
    step("== pause / resume");
    let resp = expect_action(&post("pause", json!({})), "API pause");
    f.check(
        "pause answers Paused",
        if resp.status.state == PairState::Paused && resp.status.state_label == "Paused" {
            Ok(())
        } else {
            Err(describe(&resp.status))
        },
    );
    let r = post("pause", json!({}));
    f.api_error_naming("API pause of a paused pair", &r, 409, "InvalidPairState", &["Paused"]);
    let out = cli.run(&["pause", PAIR], b"");
    f.cli("CLI pause of a paused pair", &out, 4, &["Paused"]);
    let r = post("points", json!({}));
    f.api_error("API points create on a paused pair", &r, 409, "InvalidPairState", None);
    let out = cli.run(&["points", "create", PAIR], b"");
    f.cli("CLI points create on a paused pair", &out, 4, &[PAIR]);
    let r = post("start", json!({"type": "start"}));
    f.api_error("API start --type start of a paused pair", &r, 409, "InvalidPairState", None);
    let st = api.status(PAIR);
    f.check("still paused after the refusals", if st.state == PairState::Paused { Ok(()) } else { Err(describe(&st)) });
    let out = cli.run(&["resume", PAIR, "--output", "json"], b"");
    out.ok();
    let st = wait_status(&api, PAIR, Some(&mut agent), "replicating after resume", LONG, |s| {
        s.state == PairState::Replicating
    });
    step(format!("resumed: {}", describe(&st)));
    let r = action_raw(&api, PAIR, "resume", b"");
    f.api_error_naming("API resume of a replicating pair", &r, 409, "InvalidPairState", &["Replicating"]);
    let out = cli.run(&["resume", PAIR], b"");
    f.cli("CLI resume of a replicating pair", &out, 4, &["Replicating"]);
    unchanged(&mut f, "pause and resume");

    // ---- Stop twice, then resume with start --type resume.
    step("== stop");
    let resp = expect_action(&action_raw(&api, PAIR, "stop", b""), "API stop with an empty body");
    f.check(
        "stop answers Stopped, NORMAL",
        if resp.status.state == PairState::Stopped && resp.status.stop_reason.as_deref() == Some("NORMAL") {
            Ok(())
        } else {
            Err(format!("{} stop_reason {:?}", describe(&resp.status), resp.status.stop_reason))
        },
    );
    let r = post("stop", json!({}));
    f.api_error_naming("API stop of a stopped pair", &r, 409, "InvalidPairState", &["Stopped"]);
    let out = cli.run(&["stop", PAIR], b"");
    f.cli("CLI stop of a stopped pair", &out, 4, &["Stopped"]);
    let r = post("points", json!({"wait": true}));
    f.api_error("API points create on a stopped pair", &r, 409, "InvalidPairState", None);
    let st = api.status(PAIR);
    f.check(
        "still stopped after the refusals",
        if st.state == PairState::Stopped && st.stop_reason.as_deref() == Some("NORMAL") {
            Ok(())
        } else {
            Err(format!("{} stop_reason {:?}", describe(&st), st.stop_reason))
        },
    );
    cli.run(&["start", PAIR, "--type", "resume"], b"").ok();
    let st = wait_status(&api, PAIR, Some(&mut agent), "replicating after start --type resume", LONG, |s| {
        s.state == PairState::Replicating
    });
    f.check("stop_reason cleared by resume", if st.stop_reason.is_none() { Ok(()) } else { Err(describe(&st)) });
    unchanged(&mut f, "stop and resume");

    // ---- start --type start on a pair that ran.
    step("== start --type start");
    let r = post("start", json!({"type": "start"}));
    f.api_error_naming("API start --type start of a running pair", &r, 409, "InvalidPairState", &["Replicating"]);
    let out = cli.run(&["start", PAIR, "--type", "start"], b"");
    f.cli("CLI start --type start of a running pair", &out, 4, &["Replicating"]);

    // ---- Every refused start combination.
    step("== start combinations");
    let far = head + 1_000_000;
    let api_cases: Vec<(&str, Value, u16, &str, &str)> = vec![
        (
            "from_point with from_time",
            json!({"type": "resume", "from_point": first.id, "from_time": first.time, "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_time",
        ),
        (
            "stop_at_point with stop_at_time",
            json!({"type": "resume", "stop_at_point": far, "stop_at_time": future}),
            400,
            "InvalidParameter",
            "stop_at_time",
        ),
        (
            "start with from_point",
            json!({"type": "start", "from_point": first.id, "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_point",
        ),
        (
            "start with from_time",
            json!({"type": "start", "from_time": first.time, "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_time",
        ),
        (
            "reload with from_point",
            json!({"type": "reload", "from_point": first.id, "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_point",
        ),
        (
            "reload with from_time",
            json!({"type": "reload", "from_time": first.time, "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_time",
        ),
        ("start with full_copy", json!({"type": "start", "full_copy": true}), 400, "InvalidParameter", "full_copy"),
        ("resume with full_copy", json!({"type": "resume", "full_copy": true}), 400, "InvalidParameter", "full_copy"),
        (
            "start with keep_points_until_synced",
            json!({"type": "start", "keep_points_until_synced": true}),
            400,
            "InvalidParameter",
            "keep_points_until_synced",
        ),
        (
            "resume with keep_points_until_synced",
            json!({"type": "resume", "keep_points_until_synced": true}),
            400,
            "InvalidParameter",
            "keep_points_until_synced",
        ),
        ("stop_at_point 1", json!({"type": "resume", "stop_at_point": 1}), 400, "InvalidParameter", "stop_at_point"),
        (
            "stop_at_point at the checkpoint",
            json!({"type": "resume", "stop_at_point": head}),
            400,
            "InvalidParameter",
            "stop_at_point",
        ),
        (
            "stop_at_time in the past",
            json!({"type": "resume", "stop_at_time": past}),
            400,
            "InvalidParameter",
            "stop_at_time",
        ),
        (
            "stop_at_time 'soon'",
            json!({"type": "resume", "stop_at_time": "soon"}),
            400,
            "InvalidParameter",
            "stop_at_time",
        ),
        (
            "stop_at_time with a 13th month",
            json!({"type": "resume", "stop_at_time": "2031-13-01T00:00:00Z"}),
            400,
            "InvalidParameter",
            "stop_at_time",
        ),
        ("reload without confirm", json!({"type": "reload"}), 400, "InvalidParameter", "confirm"),
        (
            "reload with a wrong confirm",
            json!({"type": "reload", "confirm": DECOY}),
            400,
            "InvalidParameter",
            "confirm",
        ),
        (
            "reload with options, without confirm",
            json!({"type": "reload", "full_copy": true, "keep_points_until_synced": true}),
            400,
            "InvalidParameter",
            "confirm",
        ),
        (
            "from_point without confirm",
            json!({"type": "resume", "from_point": first.id}),
            400,
            "InvalidParameter",
            "confirm",
        ),
        (
            "from_point with a wrong confirm",
            json!({"type": "resume", "from_point": first.id, "confirm": DECOY}),
            400,
            "InvalidParameter",
            "confirm",
        ),
        (
            "from_time without confirm",
            json!({"type": "resume", "from_time": first.time}),
            400,
            "InvalidParameter",
            "confirm",
        ),
        (
            "an unknown from_point",
            json!({"type": "resume", "from_point": 999_999, "confirm": PAIR}),
            404,
            "PointNotFound",
            "",
        ),
        (
            "an unknown from_point as text",
            json!({"type": "resume", "from_point": "999999", "confirm": PAIR}),
            404,
            "PointNotFound",
            "",
        ),
        (
            "from_point 'abc'",
            json!({"type": "resume", "from_point": "abc", "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_point",
        ),
        (
            "from_point of another lineage",
            json!({"type": "resume", "from_point": format!("{ALIEN_LINEAGE}:{}", first.epoch), "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_point",
        ),
        (
            "from_point 'LINEAGE:abc'",
            json!({"type": "resume", "from_point": format!("{lineage}:abc"), "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_point",
        ),
        (
            "from_time before the first point",
            json!({"type": "resume", "from_time": past, "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_time",
        ),
        (
            "from_time 'yesterday'",
            json!({"type": "resume", "from_time": "yesterday", "confirm": PAIR}),
            400,
            "InvalidParameter",
            "from_time",
        ),
        ("no type", json!({}), 400, "InvalidParameter", "body"),
        ("type 'sideways'", json!({"type": "sideways"}), 400, "InvalidParameter", "body"),
        ("an unknown field", json!({"type": "resume", "frobnicate": 1}), 400, "InvalidParameter", "body"),
        ("stop_at_point as text", json!({"type": "resume", "stop_at_point": "many"}), 400, "InvalidParameter", "body"),
    ];
    for (what, body, status, code, param) in api_cases {
        let r = post("start", body);
        let p = (!param.is_empty()).then_some(param);
        f.api_error(&format!("API start with {what}"), &r, status, code, p);
    }
    let r = action_raw(&api, PAIR, "start", b"{type: resume");
    f.api_error("API start with a body that is not JSON", &r, 400, "InvalidParameter", Some("body"));
    unchanged(&mut f, "refused API starts");

    let far_s = far.to_string();
    let head_s = head.to_string();
    let alien = format!("{ALIEN_LINEAGE}:{}", first.epoch);
    let ft = first.time.clone();
    let cli_cases: Vec<(&str, Vec<&str>, i32, &str)> = vec![
        (
            "--from-point with --from-time",
            vec!["--type", "resume", "--from-point", &first_id, "--from-time", &ft, "--yes"],
            8,
            "from_time",
        ),
        (
            "--stop-at-point with --stop-at-time",
            vec!["--type", "resume", "--stop-at-point", &far_s, "--stop-at-time", &future],
            8,
            "stop_at_time",
        ),
        ("start with --from-point", vec!["--type", "start", "--from-point", &first_id, "--yes"], 8, "from_point"),
        ("start with --from-time", vec!["--type", "start", "--from-time", &ft, "--yes"], 8, "from_time"),
        ("reload with --from-point", vec!["--type", "reload", "--from-point", &first_id, "--yes"], 8, "from_point"),
        ("reload with --from-time", vec!["--type", "reload", "--from-time", &ft, "--yes"], 8, "from_time"),
        ("start with --full-copy", vec!["--type", "start", "--full-copy"], 8, "full_copy"),
        ("resume with --full-copy", vec!["--type", "resume", "--full-copy"], 8, "full_copy"),
        (
            "start with --keep-points-until-synced",
            vec!["--type", "start", "--keep-points-until-synced"],
            8,
            "keep_points_until_synced",
        ),
        (
            "resume with --keep-points-until-synced",
            vec!["--type", "resume", "--keep-points-until-synced"],
            8,
            "keep_points_until_synced",
        ),
        ("--stop-at-point 1", vec!["--type", "resume", "--stop-at-point", "1"], 8, "stop_at_point"),
        ("--stop-at-point at the checkpoint", vec!["--type", "resume", "--stop-at-point", &head_s], 8, "stop_at_point"),
        ("--stop-at-time in the past", vec!["--type", "resume", "--stop-at-time", past], 8, "stop_at_time"),
        ("--stop-at-time 'soon'", vec!["--type", "resume", "--stop-at-time", "soon"], 2, "stop-at-time"),
        ("an unknown --from-point", vec!["--type", "resume", "--from-point", "999999", "--yes"], 3, "999999"),
        ("--from-point abc", vec!["--type", "resume", "--from-point", "abc", "--yes"], 8, "from_point"),
        ("--from-point of another lineage", vec!["--type", "resume", "--from-point", &alien, "--yes"], 8, "from_point"),
        ("--from-time before the first point", vec!["--type", "resume", "--from-time", past, "--yes"], 8, "from_time"),
        ("--type sideways", vec!["--type", "sideways"], 2, "sideways"),
    ];
    for (what, extra, code, needle) in cli_cases {
        let mut args = vec!["start", PAIR];
        args.extend(extra);
        let out = cli.run(&args, b"");
        f.cli(&format!("CLI start with {what}"), &out, code, &[needle]);
    }
    for (what, extra) in [
        ("reload", vec!["--type", "reload"]),
        ("reload --full-copy", vec!["--type", "reload", "--full-copy"]),
        ("resume --from-point", vec!["--type", "resume", "--from-point", &first_id]),
        ("resume --from-time", vec!["--type", "resume", "--from-time", &ft]),
    ] {
        for (answer, input) in [("a wrong line", format!("{DECOY}\n")), ("end of input", String::new())] {
            let mut args = vec!["start", PAIR];
            args.extend(extra.iter().copied());
            let out = cli.run(&args, input.as_bytes());
            f.cli(&format!("CLI start {what} answered with {answer}"), &out, 9, &["not confirmed"]);
        }
    }
    unchanged(&mut f, "refused CLI starts");

    // ---- pairs list --search.
    step("== pairs list --search");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_string();
    let upper = PAIR.to_uppercase();
    for (text, want) in [
        (&upper[..], &[PAIR][..]),
        ("bad-web", &[PAIR]),
        ("DECOY", &[DECOY]),
        ("127.0.0.1", &[PAIR, DECOY]),
        (&host[..], &[PAIR, DECOY]),
        ("nonsense-zzz-42", &[]),
    ] {
        let r = api.get(&format!("/api/v1/pairs?search={text}"));
        let res =
            if r.status == 200 { expect_ids(&r.json(), want) } else { Err(format!("HTTP {}: {}", r.status, r.text())) };
        f.check(&format!("API pairs?search={text}"), res);
        let out = cli.run(&["pairs", "list", "--search", text, "--output", "json"], b"");
        let res = if out.code == 0 {
            serde_json::from_str(&out.stdout)
                .map_err(|e| format!("{e}: {}", out.stdout))
                .and_then(|j| expect_ids(&j, want))
        } else {
            Err(format!("exit {}: {}", out.code, out.stderr))
        };
        f.check(&format!("CLI pairs list --search {text}"), res);
    }
    let r = api.get("/api/v1/pairs");
    f.check("API pairs without search", expect_ids(&r.json(), &[PAIR, DECOY]));

    // ---- Afterwards: nothing changed, and the pair still converges.
    let diffs = snap.changes(&api, PAIR);
    let now = api.status(PAIR);
    assert!(
        diffs.is_empty(),
        "the refused actions changed pair {PAIR}:\n  - {}\nnow: {}\nand these checks failed: {f:?}",
        diffs.join("\n  - "),
        describe(&now)
    );
    assert_eq!(now.state, PairState::Replicating, "{}", describe(&now));
    let p = api.create_point_wait(PAIR);
    assert_eq!(
        api.export_full(PAIR, &p.id.to_string(), 0, DISK_SIZE),
        hash_file(&img).1,
        "a point cut after all the refusals differs from the source"
    );
    f.finish("lifecycle bad input");
}

#[test]
fn held_new_pair_waits_for_start() {
    let pair = "lc-held-01";
    let env = TestEnv::new("lc-held");
    let img = env.path("disk0.img");
    let source = create_image(&img, DISK_SIZE, Fill::Mixed, 58);
    let sb = Standby::start_with(&env, Some(TOKEN), &["--hold-new-pairs"]);
    let api: Api = sb.api();
    let cli = StdinCli::new(&sb);
    let mut spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    // ~2 s for the first copy: long enough to be seen.
    spec.throttle_bps = Some(32_000_000);
    let mut agent = spec.spawn(&env, "agent");
    wait_connected(&api, pair, true, Duration::from_secs(60));
    let mut f = Findings::new();

    // Held: initiating, nothing shipped, no point, for a few seconds.
    let t = std::time::Instant::now();
    while t.elapsed() < Duration::from_secs(4) {
        let s = api.status(pair);
        assert!(agent.is_running(), "agent exited while held:\n{}", agent.tail(30));
        assert_eq!(s.state, PairState::Initiating, "a held new pair left Initiating: {}", describe(&s));
        assert_eq!(s.state_label, "Initiating", "{}", describe(&s));
        assert!(!s.ready_for_failover, "{}", describe(&s));
        assert_eq!(s.stats.chunks_received, 0, "a held pair received chunks: {:?}", s.stats);
        assert!(api.points(pair).is_empty(), "a held pair has points");
        std::thread::sleep(Duration::from_millis(250));
    }
    step(format!("held for 4 s: {}", describe(&api.status(pair))));

    let r = action(&api, pair, "start", &json!({"type": "resume"}));
    f.api_error_naming("API start --type resume of an initiating pair", &r, 409, "InvalidPairState", &["Initiating"]);
    let out = cli.run(&["start", pair, "--type", "resume"], b"");
    f.cli("CLI start --type resume of an initiating pair", &out, 4, &["Initiating"]);
    let r = action(&api, pair, "pause", &json!({}));
    f.api_error_naming("API pause of an initiating pair", &r, 409, "InvalidPairState", &["Initiating"]);
    let out = cli.run(&["pause", pair], b"");
    f.cli("CLI pause of an initiating pair", &out, 4, &["Initiating"]);
    let s = api.status(pair);
    assert_eq!(s.state, PairState::Initiating, "after the refusals: {}", describe(&s));
    assert!(api.points(pair).is_empty(), "a held pair has points after the refusals");

    // start --type start: the first copy runs, then the pair replicates.
    let handle = cli.spawn(&["start", pair, "--type", "start", "--wait", "--output", "json"], b"");
    let samples = drpair_e2e::lifecycle::record_until(
        &api,
        pair,
        Some(&mut agent),
        "the first copy after start --type start",
        LONG,
        |s| {
            let st = &s.status;
            if st.state == PairState::InitialSync {
                assert!(!st.ready_for_failover, "{}", describe(st));
                assert_eq!(st.state_label, "Start Replication", "{}", describe(st));
            }
        },
        |s| s.ready_for_failover || handle.is_finished(),
    );
    let out = handle.join().expect("CLI thread");
    out.ok();
    let course = distinct_states(samples.iter().map(|s| &s.status));
    step(format!("states after start --type start: {course:?}"));
    let course: Vec<PairState> = course.into_iter().skip_while(|s| *s == PairState::Initiating).collect();
    assert_eq!(
        course,
        [PairState::InitialSync, PairState::Replicating],
        "start --type start must go initial_sync → replicating"
    );
    let s = api.status(pair);
    assert!(s.ready_for_failover && s.state == PairState::Replicating, "{}", describe(&s));
    assert_eq!(api.export_full(pair, "latest", 0, DISK_SIZE), source, "the first baseline differs from the source");

    let before = Snapshot::take(&api, pair);
    let r = action(&api, pair, "start", &json!({"type": "start"}));
    f.api_error_naming("API second start --type start", &r, 409, "InvalidPairState", &["Replicating"]);
    let out = cli.run(&["start", pair, "--type", "start"], b"");
    f.cli("CLI second start --type start", &out, 4, &["Replicating"]);
    before.assert_kept(&api, pair, "a second start --type start");
    f.finish("held new pair");
}
