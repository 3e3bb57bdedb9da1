//! The browser tests' runner: a script of `web/tests/` in node (headless Debian chromium
//! through playwright-core), its output echoed, its questions answered over stdio.

use crate::env::TestEnv;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Whether the browser tests can run here: Debian chromium and `web/node_modules`
/// (playwright-core), both from scripts/setup.sh.
pub fn available() -> bool {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    root.join("web/node_modules/playwright-core").is_dir() && std::path::Path::new("/usr/bin/chromium").exists()
}

/// Runs `web/tests/SCRIPT` in node with `DRPAIR_URL` = `url`, chromium trusting `ca` (in its
/// user's NSS database, as an operator's browser would; node through `NODE_EXTRA_CA_CERTS`),
/// and `envs`. Each line the script prints is shown; `answer` may answer it (one line back on
/// the script's stdin). Returns once the script printed `ok_line` and exited 0.
pub fn run_browser(
    env: &TestEnv,
    (url, ca): (String, Option<PathBuf>),
    script: &str,
    envs: &[(&str, String)],
    ok_line: &str,
    mut answer: impl FnMut(&str) -> Option<String>,
) {
    let home = env.mkdir("browser-home");
    let nssdb = format!("sql:{}", home.join(".pki/nssdb").display());
    std::fs::create_dir_all(home.join(".pki/nssdb")).unwrap();
    if let Some(ca) = &ca {
        for args in [
            vec!["-d", &nssdb, "-N", "--empty-password"],
            vec!["-d", &nssdb, "-A", "-t", "C,,", "-n", "drpair standby", "-i", ca.to_str().unwrap()],
        ] {
            let st =
                Command::new("certutil").args(&args).status().expect("certutil (libnss3-tools, from scripts/setup.sh)");
            assert!(st.success(), "certutil {args:?}");
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf();
    let mut cmd = Command::new("node");
    cmd.arg(root.join("web/tests").join(script)).env("HOME", &home).env("DRPAIR_URL", url);
    if let Some(ca) = ca {
        cmd.env("NODE_EXTRA_CA_CERTS", ca);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut node = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("node (installed by scripts/setup.sh)");
    let mut to_node = node.stdin.take().unwrap();
    let out = BufReader::new(node.stdout.take().unwrap());
    let started = Instant::now();
    let mut ok = false;
    for line in out.lines() {
        let line = line.expect("node's output");
        println!("  browser: {line}");
        if line == ok_line {
            ok = true;
        } else if let Some(reply) = answer(&line) {
            writeln!(to_node, "{reply}").unwrap();
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the browser test is taking too long");
    }
    let status = node.wait().unwrap();
    assert!(status.success() && ok, "the browser test failed ({status}); see its output above");
}
