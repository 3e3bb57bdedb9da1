//! Metrics Prometheus accepts as they are (issue 26, part 4), with Debian's `prometheus`:
//!
//! - a standby with a replicating pair (a point committed, a verify run) serves `/metrics`
//!   that `promtool check metrics` passes with no finding: HELP on every family, `_total` only
//!   on counters, base units;
//! - a real Prometheus scrapes it over HTTPS (the standby's CA, a metrics-role token): the
//!   target is up and a query for the pair's points, RPO target, RPO state and current RPO
//!   (lag) returns what status shows;
//! - a scrape without the token is refused (the target is down, saying why).

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PAIR: &str = "prom-01";
const LONG: Duration = Duration::from_secs(120);

/// `promtool check metrics` on `text`: its exit status and findings.
fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// A Prometheus server, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Starts Prometheus scraping the standby every second, with `token` (if any).
fn start_prometheus(env: &TestEnv, sb: &Standby, token: Option<&str>, name: &str) -> Prometheus {
    let dir = env.mkdir(name);
    let ca = sb.ca_file().expect("the standby's CA");
    let auth = match token {
        Some(t) => {
            let f = dir.join("token");
            std::fs::write(&f, t).unwrap();
            format!("    authorization:\n      type: Bearer\n      credentials_file: {}\n", f.display())
        }
        None => String::new(),
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: drpair\n    scheme: https\n    \
         tls_config:\n      ca_file: {}\n{auth}    static_configs:\n      - targets: ['{}']\n",
        ca.display(),
        sb.api_addr
    );
    let conf = dir.join("prometheus.yml");
    std::fs::write(&conf, config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", conf.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("prometheus (Debian package prometheus)");
    env.add_log(name, &dir.join("prometheus.log"));
    Prometheus { child, url: format!("http://127.0.0.1:{port}") }
}

/// The samples a PromQL query returns now: (labels, value).
fn query(p: &Prometheus, promql: &str) -> Result<Vec<(serde_json::Value, f64)>, String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", "-G", &format!("{}/api/v1/query", p.url), "--data-urlencode"])
        .arg(format!("query={promql}"))
        .output()
        .map_err(|e| e.to_string())?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })?;
    let results = j["data"]["result"].as_array().ok_or_else(|| format!("no result: {j}"))?;
    Ok(results
        .iter()
        .map(|r| (r["metric"].clone(), r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)))
        .collect())
}

/// The scrape target's health and last error, once Prometheus has scraped it.
fn target(p: &Prometheus) -> Result<(String, String), String> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5", &format!("{}/api/v1/targets", p.url)])
        .output()
        .map_err(|e| e.to_string())?;
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    })?;
    let t = &j["data"]["activeTargets"][0];
    match t["health"].as_str() {
        Some(h) if h != "unknown" => Ok((h.to_string(), t["lastError"].as_str().unwrap_or("").to_string())),
        _ => Err(format!("not scraped yet: {t}")),
    }
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
    // An RPO target gives the RPO families theirs.
    sb.cli().run(&["pairs", "set", PAIR, "--rpo-target", "1h"]).ok();

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

    // A real Prometheus, with a token that has the metrics role.
    let out = sb.cli().run(&["tokens", "create", "prom", "--role", "metrics"]);
    out.expect_code(0);
    let token = out.stdout.lines().last().expect("the new token").trim().to_string();
    let prom = start_prometheus(&env, &sb, Some(&token), "prometheus");
    let (health, err) = wait_until("Prometheus scrapes the standby", LONG, || target(&prom));
    assert_eq!(health, "up", "the scrape failed: {err}");
    let status = api.status(PAIR);
    let points = wait_until("the pair's points are queryable", LONG, || {
        match query(&prom, &format!("drpair_pair_points{{pair=\"{PAIR}\"}}"))?.as_slice() {
            [(_, v)] => Ok(*v),
            other => Err(format!("{other:?}")),
        }
    });
    assert_eq!(points, status.stats.points as f64, "Prometheus and status disagree on the pair's points");
    // The RPO: the target as set, the current RPO (lag) as status shows it, give or take the
    // time between the scrape and the status call.
    let rpo_state = api.status(PAIR).rpo_state.expect("rpo_state: the pair has a target");
    let rpo_target = query(&prom, &format!("drpair_pair_rpo_target_seconds{{pair=\"{PAIR}\"}}")).unwrap();
    assert_eq!(rpo_target.first().map(|s| s.1), Some(3600.0), "{rpo_target:?}");
    let lag = query(&prom, &format!("drpair_pair_lag_seconds{{pair=\"{PAIR}\"}}")).unwrap();
    assert_eq!(lag.len(), 1, "one lag series for the pair: {lag:?}");
    assert!((lag[0].1 - rpo_state.rpo_seconds).abs() < 5.0, "Prometheus {lag:?}, status {rpo_state:?}");
    let ok = query(&prom, &format!("drpair_pair_rpo_state{{pair=\"{PAIR}\",state=\"ok\"}}")).unwrap();
    assert_eq!(ok.first().map(|s| s.1), Some(1.0), "{ok:?}");
    let up = query(&prom, "up{job=\"drpair\"}").unwrap();
    assert_eq!(up.first().map(|s| s.1), Some(1.0), "{up:?}");
    step(format!("Prometheus scrapes over HTTPS with a metrics token: up, {points} point(s) as status says"));

    // Without a token the standby refuses the scrape, and Prometheus says so.
    let anon = start_prometheus(&env, &sb, None, "prometheus-anon");
    let (health, err) = wait_until("the tokenless scrape is judged", LONG, || target(&anon));
    assert_eq!(health, "down", "a scrape without a token was served");
    assert!(err.contains("401"), "the refusal names the status: {err}");
    step(format!("without a token: down ({err})"));
    drop(agent);
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
