//! A drill's check command: run on the standby once the exports are served, confined (as
//! root, dropped to `nobody`; always, `drpaird check-sandbox`), with the exports' URIs in its
//! environment; its outcome is one of the drill's parts (`outcome.rs`).

use super::live::Live;
use super::outcome;
use super::records::record;
use crate::standby::Standby;
use drpair_types::DrillCheck;
use std::time::{Duration, Instant};

/// Longest a check command may run.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(600);

/// The user a drill's check runs as when the standby runs as root: `nobody`, with no
/// supplementary groups, no capabilities and no way to gain privileges, so a check reads
/// neither the store nor the host's secrets (it reaches the exports over the network).
const CHECK_UID: u32 = 65534;

/// `sh -c CMD` with a clean environment (PATH, HOME=/, and the exports' URIs added by the
/// caller) in `/`, confined by `drpaird check-sandbox` (Landlock: `denied` out of reach, no
/// signal or trace out of the check); as root, first dropped to [`CHECK_UID`] by `setpriv`.
/// Not root, the sandbox is the only fence, so it is required.
pub(super) fn check_command(cmd: &str, denied: &[std::path::PathBuf]) -> tokio::process::Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    // A binary replaced under the running standby (an upgrade) is run by its installed name.
    let me = std::env::current_exe().ok().filter(|p| p.exists()).unwrap_or_else(|| "/usr/bin/drpaird".into());
    let mut sandbox: Vec<std::ffi::OsString> = vec![me.into(), "check-sandbox".into()];
    for d in denied {
        sandbox.push("--deny".into());
        sandbox.push(d.into());
    }
    if !root {
        sandbox.push("--require".into());
    }
    sandbox.extend(["--".into(), "sh".into(), "-c".into(), cmd.into()]);
    let mut c = if root {
        let mut c = tokio::process::Command::new("setpriv");
        c.args([
            &format!("--reuid={CHECK_UID}"),
            &format!("--regid={CHECK_UID}"),
            "--clear-groups",
            "--no-new-privs",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ]);
        c.args(&sandbox);
        c
    } else {
        let mut c = tokio::process::Command::new(&sandbox[0]);
        c.args(&sandbox[1..]);
        c
    };
    c.kill_on_drop(true).env_clear().env("PATH", "/usr/local/bin:/usr/bin:/bin").env("HOME", "/").current_dir("/");
    c
}

/// Runs the check command with the exports in its environment; records its outcome.
pub(super) async fn run_check(sb: &Standby, live: &Live, cmd: &str) {
    let t0 = Instant::now();
    let mut c = check_command(cmd, &sb.check_denied);
    for e in &live.status.lock().expect("drill").exports {
        c.env(format!("DRPAIR_DRILL_NBD_{}", e.disk), &e.uri);
    }
    let out = tokio::time::timeout(CHECK_TIMEOUT, c.output()).await;
    let (exit_code, output) = match out {
        Ok(Ok(o)) => {
            let mut text = String::from_utf8_lossy(&o.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&o.stderr));
            (o.status.code(), text)
        }
        Ok(Err(e)) => (None, format!("could not run the check: {e}")),
        Err(_) => (None, format!("the check was killed after {}s", CHECK_TIMEOUT.as_secs())),
    };
    let tail: String = {
        let lines: Vec<&str> = output.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    };
    let check = DrillCheck {
        command: cmd.into(),
        exit_code,
        passed: Some(exit_code == Some(0)),
        output: tail,
        duration_ms: Some(t0.elapsed().as_millis() as u64),
    };
    tracing::info!(drill = %live.status.lock().expect("drill").id, ?exit_code, "drill check finished");
    let failed = !check.passed.unwrap_or(false);
    live.status.lock().expect("drill").check = Some(check);
    if failed {
        let s = live.snapshot();
        record(sb, &live.pair, &s);
        let tail = s.check.as_ref().map_or("", |c| c.output.as_str());
        outcome::failed(
            sb,
            &s,
            format!("its check failed against point {} (exit {:?})", s.point, exit_code),
            format!("Check: {cmd}\nLast lines of its output:\n{tail}"),
        );
    } else {
        outcome::settle(sb, live, "its check passed");
    }
}
