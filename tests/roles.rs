//! Roles and named API tokens (issue "Secure by default", part 5), on a real standby over
//! HTTPS: a standby without a token file makes a bootstrap admin token; anonymous calls get
//! 401 but for the health endpoint and the panel's files; a viewer is refused a restart, an
//! operator a failover, each with 403 naming the role needed, while an admin's restart runs; a
//! metrics token reads only /metrics; a revoked or expired token is refused; the status's
//! allowed actions are only those of the caller's role; every call, allowed or not, is in the
//! audit log with its identity.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::pair::wait_ready;
use drpair_e2e::{AgentSpec, Api, Standby, TestEnv, step};
use std::time::Duration;

const PAIR: &str = "roles-01";
const LONG: Duration = Duration::from_secs(120);

fn token(admin: &Api, name: &str, role: &str, expires: Option<&str>) -> String {
    let body = match expires {
        Some(e) => format!(r#"{{"name": "{name}", "role": "{role}", "expires": "{e}"}}"#),
        None => format!(r#"{{"name": "{name}", "role": "{role}"}}"#),
    };
    let r = admin.post("/api/v1/tokens", "application/json", body.as_bytes());
    assert_eq!(r.status, 200, "create {name}: {}", r.text());
    r.json()["secret"].as_str().expect("secret").to_string()
}

#[test]
fn roles_decide_and_the_audit_log_remembers() {
    let env = TestEnv::new("roles");
    let img = env.path("disk0.img");
    create_image(&img, 16 << 20, Fill::Mixed, 51);
    let sb = Standby::start(&env, None);
    let bootstrap = sb.data_dir.join("admin.token");
    let mode = std::fs::metadata(&bootstrap).map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777);
    assert_eq!(mode.ok(), Some(0o600), "the bootstrap admin token is made 0600");
    assert!(sb.proc.log().contains(&bootstrap.display().to_string()), "the standby says where the token is");
    let admin = sb.api();
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&img]).spawn(&env, "agent");
    wait_ready(&admin, PAIR, &mut agent, LONG);

    // Anonymous: 401, but the health endpoint and the panel's files.
    let anon = admin.with_token(None);
    anon.get("/api/v1/pairs").assert_error(401, "AccessDenied");
    assert_eq!(anon.get("/healthz").status, 200);
    assert_eq!(anon.get("/").status, 200);
    admin.with_token(Some("not-a-token")).get("/api/v1/pairs").assert_error(403, "AccessDenied");

    let viewer = admin.with_token(Some(&token(&admin, "viewer-1", "viewer", None)));
    let operator = admin.with_token(Some(&token(&admin, "operator-1", "operator", Some("30d"))));
    let metrics = admin.with_token(Some(&token(&admin, "scraper", "metrics", None)));
    let restart = format!(r#"{{"confirm": "{PAIR}"}}"#);

    assert_eq!(viewer.get(&format!("/api/v1/pairs/{PAIR}")).status, 200);
    let r = viewer.post(&format!("/api/v1/pairs/{PAIR}/restart"), "application/json", restart.as_bytes());
    let e = r.assert_error(403, "Forbidden");
    assert!(e["message"].as_str().unwrap().contains("admin role"), "{e}");
    let s = viewer.status(PAIR);
    assert!(s.allowed_actions.is_empty(), "a viewer may take no action: {:?}", s.allowed_actions);
    step(format!("viewer: reads, restart refused: {}", e["message"]));

    let r = operator.post(&format!("/api/v1/pairs/{PAIR}/pause"), "application/json", b"{}");
    assert_eq!(r.status, 200, "operator pause: {}", r.text());
    let r = operator.post(&format!("/api/v1/pairs/{PAIR}/failover"), "application/json", b"{}");
    let e = r.assert_error(403, "Forbidden");
    assert!(e["message"].as_str().unwrap().contains("admin role"), "{e}");
    let s = operator.status(PAIR);
    assert!(s.allowed_actions.contains(&"resume".to_string()), "{:?}", s.allowed_actions);
    assert!(!s.allowed_actions.iter().any(|a| a == "restart" || a == "failover"), "{:?}", s.allowed_actions);
    let r = operator.post(&format!("/api/v1/pairs/{PAIR}/resume"), "application/json", b"{}");
    assert_eq!(r.status, 200, "operator resume: {}", r.text());
    // A replay is an admin's start.
    let replay = format!(r#"{{"type": "resume", "from_point": 1, "confirm": "{PAIR}"}}"#);
    operator
        .post(&format!("/api/v1/pairs/{PAIR}/start"), "application/json", replay.as_bytes())
        .assert_error(403, "Forbidden");
    operator.get("/api/v1/audit").assert_error(403, "Forbidden");
    step("operator: pause and resume, failover, replay and the audit log refused");

    // Even an admin's failover, failback or dump load reaches only the allowed locations, and
    // a refusal says nothing of the file: the same words for /etc/shadow and a missing file.
    let refused = |body: String| {
        let r = admin.post(&format!("/api/v1/pairs/{PAIR}/failover"), "application/json", body.as_bytes());
        let e = r.assert_error(400, "InvalidParameter");
        e["message"].as_str().unwrap().to_string()
    };
    let a = refused(r#"{"latest": true, "targets": ["/etc/shadow"], "force": true}"#.into());
    let b = refused(r#"{"latest": true, "targets": ["/etc/no-such-file"], "force": true}"#.into());
    assert!(a.contains("outside the standby's allowed locations"), "{a}");
    assert_eq!(a.replace("shadow", "X"), b.replace("no-such-file", "X"), "the refusal tells whether a file exists");
    let c = refused(r#"{"latest": true, "targets": ["/proc/self/mem"]}"#.into());
    assert!(c.contains("outside"), "{c}");
    assert!(std::fs::metadata("/etc/shadow").is_ok_and(|m| m.len() > 0), "/etc/shadow untouched");
    step(format!("failover outside the allowed locations refused: {a}"));

    let r = admin.post(&format!("/api/v1/pairs/{PAIR}/restart"), "application/json", restart.as_bytes());
    assert_eq!(r.status, 200, "admin restart: {}", r.text());
    step("admin: restart runs");

    assert_eq!(metrics.get("/metrics").status, 200);
    metrics.get("/api/v1/pairs").assert_error(403, "Forbidden");
    assert_eq!(viewer.get("/metrics").status, 200, "a viewer reads metrics too");

    // Listing never shows secrets; revoking refuses the token at once.
    let list = admin.get("/api/v1/tokens").text();
    assert!(list.contains("viewer-1") && list.contains("operator") && !list.contains("secret"), "{list}");
    assert_eq!(admin.delete("/api/v1/tokens/viewer-1").status, 200);
    viewer.get("/api/v1/pairs").assert_error(403, "AccessDenied");
    admin
        .post("/api/v1/tokens", "application/json", br#"{"name": "x", "role": "root"}"#)
        .assert_error(400, "InvalidParameter");
    admin
        .post("/api/v1/tokens", "application/json", br#"{"name": "y", "role": "viewer", "expires": "soon"}"#)
        .assert_error(400, "InvalidParameter");

    // Every call, allowed or refused, with its identity and address.
    let audit = admin.get("/api/v1/audit?limit=1000").json();
    let entries = audit.as_array().expect("entries");
    let find = |identity: &str, action: &str, result: &str| {
        entries.iter().any(|e| {
            e["identity"].as_str().unwrap_or("").contains(identity)
                && e["action"].as_str().unwrap_or("").contains(action)
                && e["result"] == result
        })
    };
    assert!(find("viewer-1 (viewer)", "/restart", "refused"), "{audit}");
    assert!(find("operator-1 (operator)", "/pause", "ok"), "{audit}");
    assert!(find("operator-1 (operator)", "/failover", "refused"), "{audit}");
    assert!(find("admin (admin)", "/restart", "ok"), "{audit}");
    assert!(find("anonymous", "GET /api/v1/pairs", "refused"), "{audit}");
    assert!(find("admin (admin)", "DELETE /api/v1/tokens/viewer-1", "ok"), "{audit}");
    step(format!("audit log: {} entries with identities", entries.len()));

    // The CLI: tokens made and listed, a role refused with the access exit code.
    let cli = sb.cli();
    let out = cli.run(&["tokens", "create", "cli-viewer", "--role", "viewer"]);
    out.expect_code(0);
    let secret = out.stdout.lines().last().unwrap().trim().to_string();
    assert_eq!(secret.len(), 48, "{}", out.stdout);
    cli.run(&["tokens", "list"]).expect_code(0);
    let refused = cli.with_token(Some(&secret)).run(&["pause", PAIR]);
    assert_ne!(refused.code, 0, "{refused:?}");
    assert!(refused.stderr.contains("operator role"), "{}", refused.stderr);
    step("CLI: tokens create/list; a viewer's pause refused naming the role");
}
