//! Metrics Prometheus accepts as they are (issue 26, part 4), with Debian's `prometheus`:
//!
//! - a standby with a replicating pair (a point committed, a verify run) serves `/metrics`
//!   that `promtool check metrics` passes with no finding: HELP on every family, `_total` only
//!   on counters, base units;
//! - a real Prometheus scrapes it over HTTPS (the standby's CA, a metrics-role token): the
//!   target is up and a query for the pair's points, RPO target, RPO state and current RPO
//!   (lag) returns what status shows;
//! - a scrape without the token is refused (the target is down, saying why);
//! - the certificates' and tokens' expiry (issue 26, part 5): the server certificate, the CA
//!   and the pair's agent certificate, and the metrics token made with an expiry, as Unix
//!   times in the future, also in `GET /api/v1`;
//! - every query of the shipped Grafana dashboard (`packaging/grafana/drpair-overview.json`),
//!   its variables substituted as Grafana would (all pairs, then this pair), is valid and
//!   returns at least one series, as an instant and as a range query.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::prometheus::{Prometheus, promtool_check};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, grafana, step, wait_ready, wait_until};
use std::process::Command;
use std::time::Duration;

const PAIR: &str = "prom-01";
const LONG: Duration = Duration::from_secs(120);

fn now_unix() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn prometheus_accepts_and_scrapes_the_metrics() {
    let env = TestEnv::new("prometheus-metrics");
    let img = env.path("disk0.img");
    create_image(&img, 32 * MIB, Fill::Mixed, 5);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    api.create_point_wait(PAIR);
    // A verify run gives the verify families their samples.
    sb.cli().run(&["verify", PAIR]).ok();
    // An RPO target gives the RPO families theirs; a storage report and an online verify
    // (the dashboard shows both) theirs.
    sb.cli().run(&["pairs", "set", PAIR, "--rpo-target", "1h"]).ok();
    api.get(&format!("/api/v1/pairs/{PAIR}/storage"));
    sb.cli().run(&["verify", PAIR, "--source"]).expect_code(0);

    let text = api.metrics();
    let families = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
    let (ok, said) = promtool_check(&text);
    step(format!(
        "promtool check metrics on {families} families: {}",
        if said.is_empty() { "no finding" } else { &said }
    ));
    assert!(ok && said.trim().is_empty(), "promtool check metrics found:\n{said}\n---\n{text}");
    assert!(families >= 30, "only {families} families:\n{text}");
    // promtool fails on a bad exposition, so this test can fail.
    let (bad_ok, bad_said) = promtool_check("# TYPE x_total gauge\nx_total 1\n");
    assert!(!bad_ok && bad_said.contains("x_total"), "promtool accepted a gauge named _total: {bad_said}");

    // A real Prometheus, with a token that has the metrics role (and an expiry, reported too).
    let out = sb.cli().run(&["tokens", "create", "prom", "--role", "metrics", "--expires", "90d"]);
    out.expect_code(0);
    let token = out.stdout.lines().last().expect("the new token").trim().to_string();
    let prom = Prometheus::start(&env, &sb, Some(&token), "prometheus");
    let (health, err) = wait_until("Prometheus scrapes the standby", LONG, || prom.target());
    assert_eq!(health, "up", "the scrape failed: {err}");
    let status = api.status(PAIR);
    let points = wait_until("the pair's points are queryable", LONG, || {
        match prom.query(&format!("drpair_pair_points{{pair=\"{PAIR}\"}}"))?.as_slice() {
            [(_, v)] => Ok(*v),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(points, status.stats.points as f64, "Prometheus and status disagree on the pair's points");
    // The RPO: the target as set, the current RPO (lag) as status shows it, give or take the
    // time between the scrape and the status call.
    let rpo_state = api.status(PAIR).rpo_state.expect("rpo_state: the pair has a target");
    let rpo_target = prom.query(&format!("drpair_pair_rpo_target_seconds{{pair=\"{PAIR}\"}}")).unwrap();
    assert_eq!(rpo_target.first().map(|s| s.1), Some(3600.0), "{rpo_target:?}");
    let lag = prom.query(&format!("drpair_pair_lag_seconds{{pair=\"{PAIR}\"}}")).unwrap();
    assert_eq!(lag.len(), 1, "one lag series for the pair: {lag:?}");
    assert!((lag[0].1 - rpo_state.rpo_seconds).abs() < 5.0, "Prometheus {lag:?}, status {rpo_state:?}");
    let ok = prom.query(&format!("drpair_pair_rpo_state{{pair=\"{PAIR}\",state=\"ok\"}}")).unwrap();
    assert_eq!(ok.first().map(|s| s.1), Some(1.0), "{ok:?}");
    let up = prom.query("up{job=\"drpair\"}").unwrap();
    assert_eq!(up.first().map(|s| s.1), Some(1.0), "{up:?}");
    step(format!("Prometheus scrapes over HTTPS with a metrics token: up, {points} point(s) as status says"));
    expiry_is_reported(&prom, &sb);
    dashboard_queries_return_series(&prom);

    // Without a token the standby refuses the scrape, and Prometheus says so.
    let anon = Prometheus::start(&env, &sb, None, "prometheus-anon");
    let (health, err) = wait_until("the tokenless scrape is judged", LONG, || anon.target());
    assert_eq!(health, "down", "a scrape without a token was served");
    assert!(err.contains("401"), "the refusal names the status: {err}");
    step(format!("without a token: down ({err})"));
    drop(agent);
}

/// The certificates' and the metrics token's ends, in Prometheus and in `GET /api/v1`.
fn expiry_is_reported(prom: &Prometheus, sb: &Standby) {
    let day = 86_400.0;
    let now = now_unix();
    let certs = prom.query("drpair_tls_certificate_expiry_timestamp_seconds").unwrap();
    let at = |role: &str| {
        let found: Vec<f64> = certs.iter().filter(|(l, _)| l["role"] == role).map(|s| s.1).collect();
        assert_eq!(found.len(), 1, "one {role} certificate: {certs:?}");
        found[0]
    };
    // Made at the standby's first start, moments ago: 10 years (server), 20 (CA), and the
    // agent's 90 days (agent_cert_ttl's default).
    let (server, ca, agent) = (at("server"), at("ca"), at("agent"));
    assert!(server > now && (server - now - 3650.0 * day).abs() < day, "server {server}, now {now}");
    assert!((ca - now - 7300.0 * day).abs() < day, "ca {ca}, now {now}");
    assert!((agent - now - 90.0 * day).abs() < day, "agent {agent}, now {now}");
    assert!(certs.iter().any(|(l, _)| l["role"] == "agent" && l["pair"] == PAIR), "{certs:?}");
    let token = prom.query("drpair_api_token_expiry_timestamp_seconds{name=\"prom\"}").unwrap();
    assert_eq!(token.len(), 1, "{token:?}");
    assert!((token[0].1 - now - 90.0 * day).abs() < 3600.0, "token {token:?}, now {now}");
    // The API: the certificates (not tokens), with the days left.
    let info = sb.api().get("/api/v1").json();
    let listed = info["certificates"].as_array().expect("certificates in GET /api/v1");
    let roles: Vec<_> =
        listed.iter().map(|c| (c["role"].as_str().unwrap(), c["days_left"].as_i64().unwrap())).collect();
    assert_eq!(roles, [("server", 3649), ("ca", 7299), ("agent", 89)], "{info}");
    assert_eq!(listed[0]["subject"], "CN=drpair-standby", "{info}");
    assert_eq!(listed[2]["name"], PAIR, "{info}");
    assert!(listed.iter().all(|c| c["level"] == "ok" && c["not_after_unix"].as_f64().unwrap() > now), "{info}");
    step(format!(
        "expiry: server certificate in {:.0} days, CA {:.0}, agent {:.0}, token {:.0}; GET /api/v1 lists {roles:?}",
        (server - now) / day,
        (ca - now) / day,
        (agent - now) / day,
        (token[0].1 - now) / day
    ));
}

/// Every query of the shipped dashboard, with its variables as Grafana fills them (all pairs,
/// then the pair alone), returns series, instant and over a range.
fn dashboard_queries_return_series(prom: &Prometheus) {
    let d = grafana::load();
    let vars = grafana::variables(&d);
    let (_, _, q) = vars.iter().find(|v| v.0 == "pair").expect("the pair variable");
    let inner = q.strip_prefix("label_values(").and_then(|r| r.strip_suffix(')')).expect("label_values(…)");
    let (matcher, label) = inner.rsplit_once(',').expect("label_values(METRIC, LABEL)");
    let pairs = wait_until("the pair variable lists the pair", LONG, || {
        let v = prom.label_values(label.trim(), matcher.trim())?;
        if v.iter().any(|p| p == PAIR) { Ok(v) } else { Err(format!("{v:?}")) }
    });
    let queries = grafana::queries(&d);
    for value in [".*", PAIR] {
        for q in &queries {
            let expr = grafana::substitute(&q.expr, &[("pair", value)]).unwrap();
            let what = format!("{} {}: {expr}", q.panel, q.ref_id);
            // Instant (a stat panel) and over the last minute (a graph): series in both, once
            // Prometheus has scraped a few times.
            let series = wait_until(&format!("series for {what}"), Duration::from_secs(30), || {
                let r = prom.query(&expr)?;
                let range = prom.query_range(&expr, 60, "5s")?;
                match (r.is_empty(), range.is_empty()) {
                    (false, false) => Ok(r),
                    (i, _) => Err(format!("no series {}", if i { "now" } else { "over the last minute" })),
                }
            });
            if value == PAIR {
                let other: Vec<_> = series.iter().filter(|(l, _)| !l["pair"].is_null() && l["pair"] != PAIR).collect();
                assert!(other.is_empty(), "{what}: the pair variable did not filter: {other:?}");
            }
        }
    }
    step(format!("the dashboard's {} queries return series (pair variable: {pairs:?}, then {PAIR})", queries.len()));
}

/// The alert rules the package ships pass `promtool check rules` and their unit tests
/// (`packaging/prometheus/drpair-rules.test.yml`: each alert fires when it should, not before).
#[test]
fn shipped_alert_rules_check_and_pass_their_tests() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging/prometheus");
    for args in [["check", "rules", "drpair-rules.yml"], ["test", "rules", "drpair-rules.test.yml"]] {
        let out = Command::new("promtool").args(args).current_dir(&dir).output().expect("promtool");
        let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && said.contains("SUCCESS"), "promtool {}:\n{said}", args.join(" "));
        step(format!("promtool {}: {}", args.join(" "), said.split_whitespace().collect::<Vec<_>>().join(" ")));
    }
}
