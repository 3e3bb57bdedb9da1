//! Notifications (issue 26, part 3), end to end with a real standby, agent and receivers.
//!
//! - A webhook receiver: pausing a pair past its RPO target delivers a warning, then an error,
//!   each signed with HMAC-SHA256 (a wrong key is detected by the receiver), and resuming
//!   delivers "resolved". With the receiver down the events are retried; the standby is
//!   killed (-9) and started again meanwhile, and once the receiver is back every event
//!   arrives, once, in order (they waited in the store).
//! - `drpair notify test` reaches a webhook and a real SMTP server (Debian's aiosmtpd); a
//!   server that refuses the recipient, a closed port and an unknown target are clear errors.
//! - Bad configuration (a webhook URL that is not http(s), plain SMTP to a remote server, a
//!   missing secret, a negative hold) is refused at `config check` and at start.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::webhook::{Received, Receiver};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_connected, wait_ready, wait_until};
use std::path::Path;
use std::time::Duration;

const PAIR: &str = "notify-01";
const LONG: Duration = Duration::from_secs(120);
const KEY: &str = "hook-secret-0123456789";

fn write_config(env: &TestEnv, name: &str, body: &str) -> String {
    let p = env.path(name);
    std::fs::write(&p, body).unwrap();
    p.display().to_string()
}

fn hook_config(env: &TestEnv, url: &str) -> String {
    let key = env.path("hook.key");
    std::fs::write(&key, format!("{KEY}\n")).unwrap();
    write_config(
        env,
        "standby.toml",
        &format!(
            r#"[standby.notify]
hold = "0s"
retry_max_interval = "1s"
[[standby.notify.targets]]
name = "hook"
kind = "webhook"
url = "{url}"
secret_file = "{}"
timeout = "2s"
"#,
            key.display()
        ),
    )
}

/// The notifications of `key` received so far, as (status, severity, id).
fn of_key(got: &[Received], key: &str) -> Vec<(String, String, u64)> {
    got.iter()
        .map(|r| r.json())
        .filter(|j| j["key"] == key)
        .map(|j| {
            (j["status"].as_str().unwrap().into(), j["severity"].as_str().unwrap().into(), j["id"].as_u64().unwrap())
        })
        .collect()
}

fn wait_for(hook: &Receiver, what: &str, want: &[(&str, &str)]) -> Vec<(String, String, u64)> {
    let key = format!("rpo:{PAIR}");
    wait_until(what, LONG, || {
        let got = of_key(&hook.received(), &key);
        let shape: Vec<(&str, &str)> = got.iter().map(|(s, v, _)| (s.as_str(), v.as_str())).collect();
        if shape == want { Ok(got.clone()) } else { Err(format!("{shape:?}")) }
    })
}

#[test]
fn rpo_notifications_reach_a_webhook_signed_retried_and_over_a_restart() {
    let env = TestEnv::new("notify-webhook");
    let img = env.path("disk0.img");
    create_image(&img, 16 * MIB, Fill::Mixed, 5);
    let mut hook = Receiver::start();
    let cfg = hook_config(&env, &hook.url());
    let mut sb = Standby::start_with(&env, None, &["--config", &cfg]);
    let (api, cli) = (sb.api(), sb.cli());
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.cut_interval = "1s".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    cli.run(&["pairs", "set", PAIR, "--rpo-target", "5s", "--rpo-error", "10s"]).ok();

    // The test message, and an unknown target refused without sending anything.
    let t = cli.run(&["notify", "test", "--target", "hook"]);
    assert!(t.ok().stdout.contains("hook: sent"), "{}", t.stdout);
    let test = wait_until("the test notification", LONG, || {
        hook.received().into_iter().find(|r| r.json()["status"] == "test").ok_or_else(|| "none yet".to_string())
    });
    assert_eq!(test.path, "/hooks/drpair");
    assert!(test.signed_with(KEY.as_bytes()), "signed with the target's secret: {:?}", test.headers);
    assert!(!test.signed_with(b"another-key"), "a receiver with a wrong key sees a bad signature");
    assert_eq!(test.headers.get("x-drpair-event-id").map(String::as_str), Some(test.json()["id"].to_string().as_str()));
    let before = hook.received().len();
    let bad = cli.run(&["notify", "test", "--target", "nope"]);
    assert_ne!(bad.code, 0, "{bad:?}");
    assert!(
        bad.stderr.contains("no notification target is named 'nope'") && bad.stderr.contains("hook"),
        "{}",
        bad.stderr
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(hook.received().len(), before, "a refused test sends nothing");
    step("notify test reaches the webhook, signed (a wrong key is detected); an unknown target is refused");

    // Paused past the target: warning, then error; resumed: resolved.
    cli.run(&["pause", PAIR]).ok();
    wait_for(&hook, "warning then error", &[("firing", "warning"), ("firing", "error")]);
    cli.run(&["resume", PAIR]).ok();
    let first = wait_for(&hook, "resolved", &[("firing", "warning"), ("firing", "error"), ("resolved", "info")]);
    for r in hook.received() {
        assert!(r.signed_with(KEY.as_bytes()), "every delivery is signed: {}", String::from_utf8_lossy(&r.body));
    }
    let j = hook.received().into_iter().map(|r| r.json()).find(|j| j["status"] == "resolved").unwrap();
    assert_eq!((j["pair"].as_str(), j["kind"].as_str()), (Some(PAIR), Some("rpo")), "{j}");
    assert!(j["summary"].as_str().unwrap().starts_with("Resolved: RPO"), "{j}");
    step(format!("paused: warning and error delivered; resumed: resolved (ids {first:?})"));

    // A drill whose check fails is told once, as an event.
    let api_drills = format!("/api/v1/pairs/{PAIR}/drills");
    let d = api
        .post_json(&api_drills, &serde_json::json!({"latest": true, "check": "echo the app did not answer; exit 3"}))
        .json();
    let failed = wait_until("the failed drill's notification", LONG, || {
        hook.received()
            .into_iter()
            .map(|r| r.json())
            .find(|j| j["kind"] == "drill_failed")
            .ok_or_else(|| "none yet".to_string())
    });
    assert_eq!((failed["status"].as_str(), failed["severity"].as_str()), (Some("event"), Some("error")), "{failed}");
    assert!(failed["summary"].as_str().unwrap().contains(d["id"].as_str().unwrap()), "{failed} {d}");
    assert!(failed["message"].as_str().unwrap().contains("the app did not answer"), "{failed}");
    api.post_json(&format!("/api/v1/drills/{}/stop", d["id"].as_str().unwrap()), &serde_json::json!({}));
    step("a drill whose check failed: an error event with the check's output");

    // A token that expires within 3 days: an error; revoked, it resolves.
    cli.run(&["tokens", "create", "short-lived", "--role", "viewer", "--expires", "2d"]).ok();
    let of_token = |status: &'static str| {
        move |r: &Received| {
            let j = r.json();
            j["kind"] == "token_expiry"
                && j["status"] == status
                && j["key"].as_str().unwrap_or("").contains("short-lived")
        }
    };
    let told = wait_until("the token's expiry told", LONG, || {
        hook.received().into_iter().find(of_token("firing")).map(|r| r.json()).ok_or_else(|| "none yet".to_string())
    });
    assert_eq!(told["severity"], "error", "{told}");
    assert!(told["summary"].as_str().unwrap().contains("expires in 1day"), "{told}");
    cli.run(&["tokens", "revoke", "short-lived"]).ok();
    wait_until("the token's expiry resolved", LONG, || {
        hook.received().into_iter().find(of_token("resolved")).map(|_| ()).ok_or_else(|| "not yet".to_string())
    });
    step("a token expiring in 2 days is told as an error, and resolved once revoked");

    // Receiver down: the events are retried, survive a kill -9 of the standby, then arrive.
    hook.stop();
    cli.run(&["pause", PAIR]).ok();
    let pending = wait_until("failed attempts on the queued events", LONG, || {
        let l = cli.run(&["notify", "list", "--output", "json"]).json();
        let t = &l["targets"][0];
        let conds = l["conditions"].as_array().unwrap().len();
        if t["pending"].as_u64() >= Some(2) && t["failed_attempts"].as_u64() >= Some(2) && conds == 1 {
            Ok(l)
        } else {
            Err(l.to_string())
        }
    });
    assert!(pending["targets"][0]["last_error"].as_str().unwrap().contains("127.0.0.1"), "{pending}");
    let shown = cli.run(&["notify", "list"]);
    assert!(shown.ok().stdout.contains("hook") && shown.stdout.contains("told"), "{}", shown.stdout);
    sb.kill9();
    sb.restart();
    hook.resume();
    let all = wait_for(
        &hook,
        "the queued events after the restart",
        &[("firing", "warning"), ("firing", "error"), ("resolved", "info"), ("firing", "warning"), ("firing", "error")],
    );
    let api = sb.api();
    wait_connected(&api, PAIR, true, LONG);
    cli.run(&["resume", PAIR]).ok();
    let all_and_resolved = wait_for(
        &hook,
        "resolved after the restart",
        &[
            ("firing", "warning"),
            ("firing", "error"),
            ("resolved", "info"),
            ("firing", "warning"),
            ("firing", "error"),
            ("resolved", "info"),
        ],
    );
    let ids: Vec<u64> = all_and_resolved.iter().map(|x| x.2).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order, each once, ids only grow over the restart: {ids:?}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(of_key(&hook.received(), &format!("rpo:{PAIR}")).len(), 6, "nothing told twice");
    let m = api.metrics();
    assert!(m.contains("drpair_notify_delivered_total{target=\"hook\"}"), "{m}");
    step(format!("receiver down across a standby kill -9: the events waited in the store and arrived ({all:?})"));
}

/// aiosmtpd, Debian's SMTP server library, serving a maildir (or refusing every recipient).
struct Smtp {
    proc: std::process::Child,
    port: u16,
}

impl Smtp {
    fn start(env: &TestEnv, name: &str, handler: &str, arg: Option<&Path>) -> Smtp {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let log = std::fs::File::create(env.path(&format!("{name}.log"))).unwrap();
        let proc = std::process::Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", handler])
            .args(arg)
            .env("PYTHONPATH", env.root())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("python3 -m aiosmtpd (apt install python3-aiosmtpd)");
        wait_until("the SMTP server to listen", LONG, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).map(|_| ()).map_err(|e| e.to_string())
        });
        Smtp { proc, port }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.proc.kill();
        let _ = self.proc.wait();
    }
}

#[test]
fn mail_reaches_a_real_smtp_server_and_refusals_are_clear() {
    let env = TestEnv::new("notify-smtp");
    let maildir = env.path("maildir");
    std::fs::write(
        env.path("refuse.py"),
        "class Refuse:\n    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):\n        return '550 5.7.1 recipient refused by policy'\n",
    )
    .unwrap();
    let good = Smtp::start(&env, "smtp-ok", "aiosmtpd.handlers.Mailbox", Some(&maildir));
    let refusing = Smtp::start(&env, "smtp-refuse", "refuse.Refuse", None);
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let target = |name: &str, port: u16| {
        format!(
            "[[standby.notify.targets]]\nname = \"{name}\"\nkind = \"smtp\"\nserver = \"127.0.0.1:{port}\"\ntls = \"none\"\nfrom = \"drpair <drpair@standby.test>\"\nto = [\"ops@site.test\"]\ntimeout = \"5s\"\n"
        )
    };
    let cfg = write_config(
        &env,
        "standby.toml",
        &format!(
            "[standby.notify]\nhold = \"0s\"\n{}{}{}",
            target("mail", good.port),
            target("refusing", refusing.port),
            target("closed", closed)
        ),
    );
    let out = std::process::Command::new(drpair_e2e::bin("drpaird")).args(["config", "check", &cfg]).output().unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && said.contains("3 notification target(s) (mail, refusing, closed)"), "{said}");
    let sb = Standby::start_with(&env, None, &["--config", &cfg]);
    let cli = sb.cli();

    let ok = cli.run(&["notify", "test", "--target", "mail"]);
    assert!(ok.ok().stdout.contains("mail: sent"), "{}", ok.stdout);
    let mail = wait_until("the message in the maildir", LONG, || {
        let files: Vec<_> = std::fs::read_dir(maildir.join("new"))
            .map_err(|e| e.to_string())?
            .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
            .collect();
        files.into_iter().next().ok_or_else(|| "no message yet".to_string())
    });
    assert!(mail.contains("Subject: [drpair TEST] Test notification from drpair"), "{mail}");
    assert!(mail.contains("To: ops@site.test") && mail.contains("kind: test"), "{mail}");
    step("a test message reached aiosmtpd's maildir");

    let refused = cli.run(&["notify", "test", "--target", "refusing"]);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stdout.contains("refusing: FAILED") && refused.stdout.contains("recipient refused by policy"),
        "{}",
        refused.stdout
    );
    let down = cli.run(&["notify", "test", "--target", "closed"]);
    assert_eq!(down.code, 1, "{down:?}");
    assert!(down.stdout.contains(&format!("127.0.0.1:{closed}")), "{}", down.stdout);
    let every = cli.run(&["notify", "test", "--output", "json"]);
    assert_eq!(every.code, 1);
    let r = every.json();
    let oks: Vec<bool> = r["results"].as_array().unwrap().iter().map(|x| x["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [true, false, false], "{r}");
    step("a refusing server and a closed port: FAILED with the server's words, exit 1");
}

#[test]
fn bad_notification_config_is_refused_before_anything_starts() {
    let env = TestEnv::new("notify-bad-config");
    let hook = |extra: &str| format!("[[standby.notify.targets]]\nname = \"h\"\nkind = \"webhook\"\n{extra}\n");
    for (body, said) in [
        (hook("url = \"ftp://hooks.site.test/x\""), "must start with http:// or https://"),
        (hook("url = \"https://hooks.site.test/x\"\nsecret_file = \"/nonexistent/key\""), "cannot read /nonexistent/key"),
        (hook("url = \"https://hooks.site.test/x\"\nsecret_env = \"DRPAIR_NO_SUCH_VARIABLE\""), "is not set"),
        (
            "[[standby.notify.targets]]\nname = \"m\"\nkind = \"smtp\"\nserver = \"mail.site.test:25\"\ntls = \"none\"\nfrom = \"a@b.test\"\nto = [\"c@d.test\"]\n".into(),
            "only to a loopback server",
        ),
        ("[standby.notify]\nhold = \"-5s\"\n".into(), "hold"),
        (hook("url = \"https://hooks.site.test/x\"\nmin_severity = \"loud\""), "not a severity"),
    ] {
        let cfg = write_config(&env, "bad.toml", &format!("[standby]\n{body}"));
        let out = std::process::Command::new(drpair_e2e::bin("drpaird")).args(["config", "check", &cfg]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(said), "{body}: {err}");
        let data = env.path("never-made");
        let out = std::process::Command::new(drpair_e2e::bin("drpaird"))
            .args(["standby", "--config", &cfg, "--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(said), "{body}: {err}");
        assert!(!data.exists(), "a refused config made nothing");
    }
    step("bad notification settings refused by config check and at start, naming the setting");
}
