//! The web panel (issue "Web panel per DR pair"), against a real standby and two real agents.
//!
//! (a) Over HTTP, without a browser: the panel's files are served by the standby with a
//!     same-origin Content-Security-Policy; the API still answers nothing without the token;
//!     a cross-site POST (a browser's `Origin` of another site) is refused and changes
//!     nothing; the history behind the charts fills and honours `since`; bad query
//!     parameters are refused with the parameter named.
//! (b) In headless Debian chromium driven by playwright-core (`web/tests/panel.mjs`): log in,
//!     search, sort, the RPO column (sorted and filtered by RPO state), open the pair, its RPO
//!     set in place and its last successes, pin, export (equal to the API's export), *Restart Replication* through its dialog
//!     (state *Start Replication* → *Replicating*, progress moving; the baseline then listed
//!     as an ended task with its log), pause and resume, create
//!     a point, an API refusal rendered in words, keyboard use, accessibility (axe-core), and
//!     the standby going away and coming back (this test kills and restarts it when the
//!     script asks). Screenshots land in `TARGET/test-artifacts/web-panel/`.

use drpair_e2e::browser::run_browser;
use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::tracking::TraceInstance;
use drpair_e2e::{AgentSpec, LoopDev, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use drpair_types::{PairState, PairTrend};
use std::path::PathBuf;
use std::time::Duration;

const TOKEN: &str = "web-panel-token";
const PAIR: &str = "web-panel";
const OTHER: &str = "db-panel";
const SIZE: u64 = 64 * MIB;
const LONG: Duration = Duration::from_secs(180);

fn artifacts() -> PathBuf {
    drpair_e2e::bin_dir().parent().expect("target dir").join("test-artifacts/web-panel")
}

/// (a): what the standby serves, checked without a browser.
fn over_http(sb: &Standby) {
    let api = sb.api();
    let anon = api.with_token(None);
    let page = anon.get("/");
    assert_eq!(page.status, 200, "/ leads to the panel: {}", page.text());
    assert!(page.text().contains("<script type=\"module\" src=\"js/main.js\">"), "{}", page.text());
    let csp = page.header("content-security-policy").expect("a CSP on the panel");
    assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    for (path, ctype) in
        [("/ui/js/main.js", "text/javascript"), ("/ui/app.css", "text/css"), ("/ui/favicon.svg", "image/svg")]
    {
        let r = anon.get(path);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.content_type.as_deref().is_some_and(|c| c.starts_with(ctype)), "{path}: {:?}", r.content_type);
    }
    assert_eq!(anon.get("/ui/js/nope.js").status, 404);
    assert_ne!(anon.get("/ui/../Cargo.toml").status, 200);
    anon.get("/api/v1/pairs").assert_error(401, "AccessDenied");
    step("the panel's files are served with a same-origin CSP; the API still needs the token");

    // A cross-site request with the right token (as a malicious page could not send, but a
    // tokenless standby would accept) is refused before anything runs.
    let path = format!("/api/v1/pairs/{PAIR}/pause");
    let r = api.post_with(&path, "text/plain", &[("Origin", "https://evil.example")], b"");
    let j = r.assert_error(403, "AccessDenied");
    assert!(j["message"].as_str().unwrap().contains("cross-site"), "{j}");
    let r = api.post_with(&path, "application/json", &[("Sec-Fetch-Site", "cross-site")], b"{}");
    r.assert_error(403, "AccessDenied");
    assert_eq!(api.status(PAIR).state, PairState::Replicating, "a refused cross-site pause changed the state");
    step("cross-site POSTs are refused (403) and change nothing");

    // The history behind the charts.
    let hist = |q: &str| -> PairTrend {
        let r = api.get(&format!("/api/v1/pairs/{PAIR}/history{q}"));
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice(&r.body).expect("history JSON")
    };
    let h = wait_until("three history samples", Duration::from_secs(30), || {
        let h = hist("");
        if h.samples.len() >= 3 { Ok(h) } else { Err(format!("{} samples", h.samples.len())) }
    });
    assert_eq!(h.interval_seconds, 2);
    assert!(h.samples.windows(2).all(|w| w[0].t_unix_ms < w[1].t_unix_ms), "samples in time order");
    let last = h.samples.last().unwrap().t_unix_ms;
    assert!(hist(&format!("?since={last}")).samples.iter().all(|s| s.t_unix_ms > last));
    api.get(&format!("/api/v1/pairs/{PAIR}/history?since=yesterday")).assert_error(400, "InvalidParameter");
    api.get(&format!("/api/v1/pairs/{PAIR}/history?until=1")).assert_error(400, "InvalidParameter");
    api.get("/api/v1/pairs/nobody/history").assert_error(404, "PairNotFound");
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/points?limit=x"));
    assert_eq!(r.assert_error(400, "InvalidParameter")["parameter"], "limit");
    let all = api.points(PAIR);
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/points?limit=2"));
    let two: Vec<drpair_types::RecoveryPoint> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        two.iter().map(|p| p.id).collect::<Vec<_>>(),
        all[all.len().saturating_sub(2)..].iter().map(|p| p.id).collect::<Vec<_>>()
    );
    let st = api.status(PAIR);
    assert_eq!(st.health.level, drpair_types::HealthLevel::Ok, "{:?}", st.health);
    let health = drpair_e2e::api::metric_value(&api.metrics(), &format!("drpair_pair_health{{pair=\"{PAIR}\"}}"));
    assert_eq!(health, Some(0.0), "the health gauge");
    assert!(st.allowed_actions.iter().any(|a| a == "pause") && !st.allowed_actions.iter().any(|a| a == "resume"));
    step(format!(
        "history: {} samples every {} s; health {:?}; actions {:?}",
        h.samples.len(),
        h.interval_seconds,
        st.health.level,
        st.allowed_actions
    ));
}

#[test]
fn panel_in_a_real_browser() {
    let env = TestEnv::new("web-panel");
    let img = env.path("web.img");
    create_image(&img, SIZE, Fill::Random, 7);
    let other = env.path("db.img");
    create_image(&other, 16 * MIB, Fill::Random, 8);
    // The main pair is a loop device tracked through tracefs: routine cuts read only what
    // changed, while a full copy (the baseline, the restart) reads the whole disk, throttled
    // so that it takes seconds and the browser sees its progress move.
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(PAIR);
    let mut sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.throttle_bps = Some(5 * MIB);
    let mut agent = spec.spawn(&env, "agent-web");
    let mut agent2 = AgentSpec::new(&env, &sb, OTHER, &[&other]).spawn(&env, "agent-db");
    wait_ready(&api, PAIR, &mut agent, LONG);
    wait_ready(&api, OTHER, &mut agent2, LONG);

    over_http(&sb);
    let operator_token = api.make_token("panel-operator", "operator");

    let art = artifacts();
    let _ = std::fs::remove_dir_all(&art);
    let envs = [
        ("DRPAIR_TOKEN", TOKEN.to_string()),
        ("DRPAIR_PAIR", PAIR.to_string()),
        ("DRPAIR_FINGERPRINT", sb.fingerprint.clone().expect("the standby runs TLS")),
        ("DRPAIR_OPERATOR_TOKEN", operator_token),
        ("DRPAIR_OTHER", OTHER.to_string()),
        ("DRPAIR_ARTIFACTS", art.display().to_string()),
    ];
    let (url, ca) = (sb.url(), sb.ca_file());
    run_browser(&env, (url, ca), "panel.mjs", &envs, "PANEL OK", |line| match line {
        "OUTAGE?" => {
            sb.kill9();
            step("standby killed (kill -9) while the browser watches");
            Some("down".into())
        }
        "RESTORE?" => {
            sb.restart();
            step("standby restarted");
            Some("up".into())
        }
        _ => None,
    });

    for shot in [
        "list",
        "list-phone",
        "list-rpo",
        "details",
        "details-rpo",
        "restart-dialog",
        "details-restarting",
        "details-refusal",
        "details-unreachable",
    ] {
        let p = art.join(format!("{shot}.png"));
        assert!(std::fs::metadata(&p).is_ok_and(|m| m.len() > 1000), "screenshot {}", p.display());
    }
    step(format!("screenshots in {}", art.display()));
}
