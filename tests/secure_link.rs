//! The link is secure by default (issue "Secure by default"), with real processes and real
//! TLS:
//! - what crosses the network during an initial sync holds neither the disk's bytes nor any
//!   secret (a recording proxy sits between agent and standby; the same run in plaintext shows
//!   the bytes, so the check can fail);
//! - an agent pinned to its standby refuses an impostor, naming both fingerprints, and ships
//!   nothing to it;
//! - an agent's certificate binds its pair: claiming another pair is refused with that pair
//!   unchanged; a revoked credential is cut off at once and refused after; an enrollment
//!   secret works once and not after its TTL; the audit log records each with its identity.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::link::{RawLink, hello};
use drpair_e2e::pair::{wait_connected, wait_ready};
use drpair_e2e::proxy::{RecordingProxy, contains};
use drpair_e2e::{AgentSpec, Standby, TestEnv, step, wait_until};
use drpair_wire::{RefuseCode, StandbyMsg};
use std::time::{Duration, Instant};

const TOKEN: &str = "secure-link-token-0123456789";
const MIB: u64 = 1 << 20;
const SIZE: u64 = 16 * MIB;
const LONG: Duration = Duration::from_secs(120);

/// 64-byte samples of the disk, one per MiB: what a reader of the wire would look for.
fn samples(img: &std::path::Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(img).expect("image");
    (0..SIZE / MIB).map(|i| bytes[(i * MIB + 4096) as usize..][..64].to_vec()).collect()
}

/// Runs an initial sync of a random disk through a recording proxy; returns what crossed it,
/// the disk's samples and the secrets used.
fn sync_through_proxy(name: &str, plaintext: bool) -> (Vec<u8>, Vec<Vec<u8>>, Vec<String>) {
    let env = TestEnv::new(name);
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 41);
    let extra: &[&str] = if plaintext { &["--insecure-plaintext"] } else { &[] };
    let sb = Standby::start_with(&env, Some(TOKEN), extra);
    let api = sb.api();
    let proxy = RecordingProxy::start(sb.link);
    let mut spec = AgentSpec::new(&env, &sb, "wire-01", &[&img]);
    spec.standby = proxy.addr;
    spec.compression = Some("off".into());
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, "wire-01", &mut agent, LONG);
    agent.kill9();
    let captured = proxy.captured();
    step(format!("{} bytes crossed the proxy ({})", captured.len(), if plaintext { "plaintext" } else { "TLS" }));
    assert!(captured.len() as u64 > SIZE, "the sync did not cross the proxy: {} bytes", captured.len());
    let mut secrets = vec![TOKEN.to_string()];
    if let Ok(key) = std::fs::read_to_string(spec.state_dir.join("tls/agent.key")) {
        secrets.push(key.lines().nth(1).unwrap_or_default().to_string());
    }
    (captured, samples(&img), secrets)
}

#[test]
fn nothing_readable_on_the_wire() {
    let (captured, samples, secrets) = sync_through_proxy("wire-tls", false);
    for (i, s) in samples.iter().enumerate() {
        assert!(!contains(&captured, s), "MiB {i} of the disk crossed the network readable");
    }
    for s in &secrets {
        assert!(!contains(&captured, s.as_bytes()), "a secret crossed the network readable: {s:.8}…");
    }
    step("over TLS: none of the disk's samples, the token or the agent's key on the wire");
    // The same sync in plaintext shows the disk: the check above can see it.
    let (captured, samples, _) = sync_through_proxy("wire-plain", true);
    let seen = samples.iter().filter(|s| contains(&captured, s)).count();
    assert!(seen > samples.len() / 2, "in plaintext only {seen} of {} samples were seen", samples.len());
    assert!(contains(&captured, TOKEN.as_bytes()), "in plaintext the token crosses readable");
    step(format!("control: in plaintext {seen} of {} samples and the token are on the wire", samples.len()));
}

#[test]
fn an_impostor_standby_is_refused() {
    let env = TestEnv::new("impostor");
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 42);
    let real = Standby::start(&env, Some(TOKEN));
    let env2 = TestEnv::new("impostor-fake");
    let fake = Standby::start(&env2, Some(TOKEN));
    let (want, got) = (real.fingerprint.clone().unwrap(), fake.fingerprint.clone().unwrap());
    assert_ne!(want, got);
    let mut spec = AgentSpec::new(&env, &real, "pinned-01", &[&img]);
    spec.enroll();
    // Something else answers at the standby's address.
    spec.standby = fake.link;
    let mut agent = spec.spawn(&env, "agent");
    wait_until("the agent to refuse the impostor", LONG, || {
        let log = agent.log();
        if log.contains(&want) && log.contains(&got) { Ok(()) } else { Err(agent.tail(5)) }
    });
    let line = agent.log().lines().find(|l| l.contains(&got)).unwrap_or_default().to_string();
    step(format!("agent: {line}"));
    assert!(line.contains("pinned"), "{line}");
    assert!(agent.is_running(), "the agent keeps protecting (retries) after refusing an impostor");
    let pairs = fake.api().get("/api/v1/pairs").json();
    assert_eq!(pairs.as_array().map(Vec::len), Some(0), "the impostor got a Hello: {pairs}");
    // Without a pin or an enrollment the agent refuses to start at all.
    let mut bare = AgentSpec::new(&env, &real, "bare-01", &[&img]);
    bare.enroll_with = None;
    bare.fingerprint = None;
    bare.extra = vec![];
    let mut args = bare.args();
    args.retain(|a| a != "--insecure-plaintext");
    let out = std::process::Command::new(drpair_e2e::bin("drpaird")).args(&args).output().expect("drpaird");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("enroll") && err.contains("--standby-fingerprint"), "{err}");
    step("an agent with no way to check its standby does not start");
}

#[test]
fn credentials_bind_pairs_and_revocation_cuts_off() {
    let env = TestEnv::new("credentials");
    let (a_img, b_img) = (env.path("a.img"), env.path("b.img"));
    create_image(&a_img, SIZE, Fill::Mixed, 43);
    create_image(&b_img, SIZE, Fill::Mixed, 44);
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let a_spec = AgentSpec::new(&env, &sb, "alpha", &[&a_img]);
    let mut a = a_spec.spawn(&env, "agent-alpha");
    let mut b = AgentSpec::new(&env, &sb, "beta", &[&b_img]).spawn(&env, "agent-beta");
    wait_ready(&api, "alpha", &mut a, LONG);
    wait_ready(&api, "beta", &mut b, LONG);
    b.kill9();
    wait_connected(&api, "beta", false, LONG);
    let beta_points = api.points("beta");

    // Alpha's certificate claiming beta: refused before anything is registered or written.
    let cert = drpair_tls::AgentKey::load(&a_spec.state_dir.join("tls")).unwrap().expect("alpha enrolled");
    let mut raw = RawLink::connect(sb.link, sb.fingerprint.as_deref(), Some(cert));
    let answer = raw.hello(hello("beta", None, &b_img.display().to_string(), SIZE, 65536));
    match answer {
        StandbyMsg::Refused { code: RefuseCode::AccessDenied, message } => {
            assert!(message.contains("'alpha'") && message.contains("'beta'"), "{message}");
            step(format!("alpha's certificate claiming beta: {message}"));
        }
        other => panic!("alpha's certificate was admitted as beta: {other:?}"),
    }
    assert_eq!(api.points("beta"), beta_points, "beta changed");
    let s = api.status("beta");
    assert!(!s.failure_messages.iter().any(|m| m.contains("alpha")), "{:?}", s.failure_messages);

    // Revocation: alpha's agent is cut off at once, and refused from then on.
    let t = Instant::now();
    let r = api.post("/api/v1/pairs/alpha/revoke", "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["connection_ended"], true, "{}", r.text());
    wait_connected(&api, "alpha", false, Duration::from_secs(1));
    step(format!("revoked alpha: its connection ended {:?} after the call", t.elapsed()));
    let st = a.wait_exit(LONG).unwrap_or_else(|| panic!("a revoked agent keeps running:\n{}", a.tail(20)));
    assert!(!st.success());
    assert!(a.log_of_last_start().contains("revoked"), "{}", a.tail(10));

    // Secrets: once, and not after their TTL.
    let r = api.post("/api/v1/pairs/gamma/enroll", "application/json", br#"{"ttl": "1h"}"#);
    let secret = r.json()["secret"].as_str().unwrap().to_string();
    let enroll = |dir: &str, secret: &str| {
        std::process::Command::new(drpair_e2e::bin("drpaird"))
            .args(["agent", "enroll", "--standby", &sb.link.to_string()])
            .args(["--fingerprint", sb.fingerprint.as_deref().unwrap(), "--secret", secret])
            .arg("--state-dir")
            .arg(env.path(dir))
            .output()
            .expect("drpaird agent enroll")
    };
    assert!(enroll("gamma-1", &secret).status.success());
    let twice = enroll("gamma-2", &secret);
    let err = String::from_utf8_lossy(&twice.stderr);
    assert!(!twice.status.success() && err.contains("already used"), "{err}");
    let r = api.post("/api/v1/pairs/gamma/enroll", "application/json", br#"{"ttl": "1s"}"#);
    let short = r.json()["secret"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(1500));
    let late = enroll("gamma-3", &short);
    let err = String::from_utf8_lossy(&late.stderr);
    assert!(!late.status.success() && err.contains("expired"), "{err}");
    let r = api.post("/api/v1/pairs/gamma/enroll", "application/json", br#"{"ttl": "soon"}"#);
    assert_eq!(r.status, 400, "{}", r.text());
    step("an enrollment secret works once, not after its TTL; a bad TTL is refused");

    // The audit log has each of them, with who and from where.
    let audit = api.get("/api/v1/audit").json();
    let entries = audit.as_array().expect("entries");
    let has = |action: &str, pair: &str, result: &str| {
        entries
            .iter()
            .any(|e| e["action"].as_str().unwrap_or("").contains(action) && e["pair"] == pair && e["result"] == result)
    };
    assert!(has("authenticate", "beta", "refused"), "{audit}");
    assert!(has("/revoke", "alpha", "ok"), "{audit}");
    assert!(has("enroll", "gamma", "ok") && has("enroll", "gamma", "refused"), "{audit}");
    assert!(entries.iter().all(|e| e["source"].as_str().is_some_and(|s| s.starts_with("127."))), "{audit}");
    step(format!("audit log: {} entries, each with identity and source", entries.len()));
}

#[test]
fn certificates_renew_themselves_over_the_link() {
    let env = TestEnv::new("renewal");
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Mixed, 45);
    // Certificates of a minute: renewed after 40 s, over the agent's authenticated link.
    let sb = Standby::start_with(&env, Some(TOKEN), &["--agent-cert-ttl", "60s"]);
    let api = sb.api();
    let spec = AgentSpec::new(&env, &sb, "renew-01", &[&img]);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, "renew-01", &mut agent, LONG);
    let pem = spec.state_dir.join("tls/agent.pem");
    let first = std::fs::read_to_string(&pem).unwrap();
    let renewed = wait_until("the agent to renew its certificate", Duration::from_secs(90), || {
        let now = std::fs::read_to_string(&pem).unwrap_or_default();
        if now != first && !now.is_empty() { Ok(now) } else { Err("still the first certificate".into()) }
    });
    assert!(agent.log().contains("renewed the agent's certificate"), "{}", agent.tail(10));
    // The next connection presents the new certificate and is admitted as the same pair.
    agent.kill9();
    wait_connected(&api, "renew-01", false, LONG);
    let mut agent = spec.spawn(&env, "agent-after");
    wait_connected(&api, "renew-01", true, LONG);
    let before = api.status("renew-01").checkpoint.map(|c| c.epoch).unwrap_or(0);
    drpair_e2e::wait_until("a point after the renewal", LONG, || {
        let e = api.status("renew-01").checkpoint.map(|c| c.epoch).unwrap_or(0);
        if e > before { Ok(()) } else { Err(format!("epoch {e}")) }
    });
    let key_mode = std::fs::metadata(spec.state_dir.join("tls/agent.key")).unwrap();
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode.permissions()) & 0o777, 0o600);
    step(format!(
        "renewed within the certificate's life ({} bytes of PEM); the agent reconnects with it",
        renewed.len()
    ));
    agent.kill9();
}
