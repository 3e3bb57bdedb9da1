//! The protecting agent as a process: `drpaird agent` (this same binary) with its state in
//! `DATA_DIR/protect/PAIR/` (change maps, key and certificate, `agent.log`, `agent.pid`). It
//! enrolls as an operator's agent does (a single-use secret, the standby's fingerprint
//! pinned), and dies with the thread that started it (`PR_SET_PDEATHSIG`, SIGTERM: a clean
//! stop, so its change maps stay valid and a restart needs no resync).

use super::ProtectError;
use super::check::Plan;
use crate::standby::Standby;
use crate::standby::pair::protection::ProtectionRecord;
use std::ffi::OsString;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `drpaird agent enroll` may take.
const ENROLL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a single-use secret made for the agent stays valid.
const SECRET_TTL_MS: u64 = 10 * 60 * 1000;

/// `DATA_DIR/protect/`: one folder per protecting pair.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("protect")
}

/// The agent's state dir.
pub fn state_dir(data_dir: &Path, pair: &str) -> PathBuf {
    root(data_dir).join(pair)
}

pub fn log_file(data_dir: &Path, pair: &str) -> PathBuf {
    state_dir(data_dir, pair).join("agent.log")
}

fn pid_file(dir: &Path) -> PathBuf {
    dir.join("agent.pid")
}

fn token_file(dir: &Path) -> PathBuf {
    dir.join("link.token")
}

/// Gives the agent its credentials, once per state dir: enrolled (this standby makes the
/// secret itself, another standby's comes with the request), or, on this standby's plaintext
/// link, its token in a 0600 file.
pub fn credentials(sb: &Standby, plan: &Plan) -> Result<(), ProtectError> {
    let dir = state_dir(&sb.data_dir, plan.new_pair.as_str());
    std::fs::create_dir_all(&dir)
        .map_err(|e| ProtectError::Internal(format!("cannot create the agent's state dir {}: {e}", dir.display())))?;
    let Some(fingerprint) = &plan.fingerprint else {
        let token = sb.token.as_deref().unwrap_or_default();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(token_file(&dir))
            .map_err(|e| ProtectError::Internal(format!("cannot write the agent's token file: {e}")))?;
        std::io::Write::write_all(&mut f, format!("{token}\n").as_bytes())
            .map_err(|e| ProtectError::Internal(format!("cannot write the agent's token file: {e}")))?;
        return Ok(());
    };
    if dir.join("tls/agent.pem").exists() {
        return Ok(());
    }
    let secret = match &plan.secret {
        Some(s) => s.clone(),
        None => {
            sb.credentials
                .new_enrollment(&plan.new_pair, SECRET_TTL_MS, "protect-recovered")
                .map_err(|e| ProtectError::Internal(format!("making an enrollment secret: {e}")))?
                .0
        }
    };
    let exe = exe()?;
    let mut child = Command::new(&exe)
        .args(["agent", "enroll", "--standby", &plan.standby, "--fingerprint", fingerprint, "--secret", &secret])
        .args(["--pair", plan.new_pair.as_str()])
        .arg("--state-dir")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| ProtectError::Internal(format!("cannot run {} agent enroll: {e}", exe.display())))?;
    let t0 = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if t0.elapsed() < ENROLL_TIMEOUT => std::thread::sleep(Duration::from_millis(50)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(ProtectError::Internal(format!(
                    "enrolling the agent of pair '{}' with {} took over {}s",
                    plan.new_pair,
                    plan.standby,
                    ENROLL_TIMEOUT.as_secs()
                )));
            }
        }
    }
    let out = child.wait_with_output().map_err(|e| ProtectError::Internal(e.to_string()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ProtectError::Refused(format!(
            "the standby at {} refused to enroll the agent of pair '{}': {why}",
            plan.standby, plan.new_pair
        )));
    }
    tracing::info!(pair = %plan.new_pair, standby = %plan.standby, "protecting agent enrolled: {}", String::from_utf8_lossy(&out.stdout).trim());
    Ok(())
}

fn exe() -> Result<PathBuf, ProtectError> {
    std::env::current_exe().map_err(|e| ProtectError::Internal(format!("cannot find the drpaird binary: {e}")))
}

/// The agent's arguments for `rec`.
pub fn args(data_dir: &Path, rec: &ProtectionRecord) -> Vec<OsString> {
    let dir = state_dir(data_dir, rec.pair.as_str());
    let mut a: Vec<OsString> = vec!["agent".into(), "--pair".into(), rec.pair.as_str().into()];
    for d in &rec.disks {
        a.push("--disk".into());
        a.push(d.into());
    }
    for (k, v) in [
        ("--standby", rec.standby.as_str()),
        ("--tracker", rec.tracker.as_str()),
        ("--cut-interval", rec.cut_interval.as_str()),
    ] {
        a.push(k.into());
        a.push(v.into());
    }
    a.push("--chunk-size".into());
    a.push(rec.chunk_size.to_string().into());
    a.push("--state-dir".into());
    a.push(dir.clone().into());
    match &rec.fingerprint {
        Some(f) => {
            a.push("--standby-fingerprint".into());
            a.push(f.into());
        }
        None => {
            a.push("--insecure-plaintext".into());
            a.push("--token-file".into());
            a.push(token_file(&dir).into());
        }
    }
    a
}

/// Starts the agent, its output appended to its log, its pid in `agent.pid`. Call it from
/// the thread that supervises it: the agent is told to stop (SIGTERM) when that thread ends.
pub fn spawn(data_dir: &Path, rec: &ProtectionRecord) -> Result<Child, ProtectError> {
    let dir = state_dir(data_dir, rec.pair.as_str());
    let io = |e: std::io::Error| ProtectError::Internal(format!("starting the agent of pair '{}': {e}", rec.pair));
    std::fs::create_dir_all(&dir).map_err(io)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_file(data_dir, rec.pair.as_str()))
        .map_err(io)?;
    let mut c = Command::new(exe()?);
    c.args(args(data_dir, rec)).stdin(Stdio::null()).stdout(log.try_clone().map_err(io)?).stderr(log);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = c.spawn().map_err(io)?;
    let _ = std::fs::write(pid_file(&dir), format!("{}\n", child.id()));
    Ok(child)
}

/// Asks the agent to stop (SIGTERM: it saves its change maps) and waits up to 15 s, then
/// kills it.
pub fn terminate(child: &mut Child) {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on our own child, which has not been waited for (its pid is ours).
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(15) {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// After the protection stopped for good: `drpaird agent --decommission` removes the agent's
/// tracefs instance (which otherwise records on) and its change maps; its credentials stay,
/// so protecting again under the same pair works (after a differential resync). Returns what
/// it printed, or why it failed.
pub fn decommission(data_dir: &Path, pair: &str) -> Result<String, String> {
    let exe = exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["agent", "--decommission", "--pair", pair, "--state-dir"])
        .arg(state_dir(data_dir, pair))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run drpaird agent --decommission: {e}"))?;
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    match out.status.success() {
        true => Ok(text(&out.stdout)),
        false => Err(text(&out.stderr)),
    }
}

/// At the standby's start: stops agents a stop of the standby left (they die with it; this is
/// for anything else), by the pidfiles below `root` (only a process whose command line names
/// that state dir). Returns how many were stopped.
pub fn stop_leftovers(root: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(root) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let dir = e.path();
        let Some(pid) = std::fs::read_to_string(pid_file(&dir)).ok().and_then(|s| s.trim().parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = cmdline.split(|b| *b == 0).any(|arg| arg == dir.as_os_str().as_encoded_bytes());
        // SAFETY: kill(2) with a pid read from our own pidfile and checked against its
        // command line; no memory is involved.
        if pid > 1 && ours && unsafe { libc::kill(pid, libc::SIGTERM) } == 0 {
            // Its state dir is taken again at once: wait for it to let go.
            let t0 = Instant::now();
            while Path::new(&format!("/proc/{pid}")).exists() && t0.elapsed() < Duration::from_secs(15) {
                std::thread::sleep(Duration::from_millis(50));
            }
            tracing::warn!(pid, dir = %dir.display(), "stopped a protecting agent left by the standby's stop");
            n += 1;
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::protection::RecordedProtectionState;
    use drpair_types::PairId;

    fn record(fingerprint: Option<&str>) -> ProtectionRecord {
        ProtectionRecord {
            pair: PairId::new("web-01-recovered").unwrap(),
            standby: "127.0.0.1:7700".into(),
            this_standby: true,
            fingerprint: fingerprint.map(String::from),
            failover_point: 42,
            disks: vec!["/dev/loop3".into(), "/srv/d1.img".into()],
            chunk_size: 65536,
            tracker: "tracefs".into(),
            cut_interval: "1m".into(),
            state: RecordedProtectionState::Running,
            started_unix_ms: 0,
            stopped_unix_ms: None,
            agent_restarts: 0,
            operator: None,
            message: String::new(),
        }
    }

    #[test]
    fn the_agent_is_started_as_an_operator_would_start_it() {
        let data = Path::new("/var/lib/drpair");
        let a: Vec<String> =
            args(data, &record(Some("sha256:ab"))).iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            a.join(" "),
            "agent --pair web-01-recovered --disk /dev/loop3 --disk /srv/d1.img --standby 127.0.0.1:7700 \
             --tracker tracefs --cut-interval 1m --chunk-size 65536 --state-dir /var/lib/drpair/protect/web-01-recovered \
             --standby-fingerprint sha256:ab"
        );
        // A plaintext link: the token, from a file in the state dir.
        let a: Vec<String> = args(data, &record(None)).iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert!(
            a.join(" ")
                .ends_with("--insecure-plaintext --token-file /var/lib/drpair/protect/web-01-recovered/link.token"),
            "{a:?}"
        );
        assert_eq!(log_file(data, "x").display().to_string(), "/var/lib/drpair/protect/x/agent.log");
    }

    #[test]
    fn leftovers_are_only_our_agents() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(stop_leftovers(&dir.path().join("none")), 0);
        let mine = dir.path().join("p");
        std::fs::create_dir_all(&mine).unwrap();
        // Our own pid: its command line does not name that state dir, so it is left alone.
        std::fs::write(pid_file(&mine), format!("{}\n", std::process::id())).unwrap();
        assert_eq!(stop_leftovers(dir.path()), 0);
    }
}
