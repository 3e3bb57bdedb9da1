//! The operator's hook scripts, run with a timeout.

use super::error::QuiesceError;
use super::hold::ms;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs hook scripts: `HOOK pre|post PAIR`, env `DRPAIR_PAIR`, killed after the timeout.
pub(super) struct Hooks {
    pub(super) pair: String,
    pub(super) timeout: Duration,
}

impl Hooks {
    pub(super) fn run(&self, hook: &Path, phase: &'static str) -> Result<(), QuiesceError> {
        let started = Instant::now();
        let mut child =
            self.spawn(hook, phase).map_err(|source| QuiesceError::HookSpawn { hook: hook.to_path_buf(), source })?;
        // Read stderr on a thread: a hook's own children may keep the pipe open.
        let (tx, rx) = mpsc::channel();
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = (&mut err).take(64 << 10).read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        let status = wait_until(&mut child, started + self.timeout);
        let stderr = rx.recv_timeout(Duration::from_millis(100)).unwrap_or_default();
        let last = String::from_utf8_lossy(&stderr).lines().rev().find(|l| !l.trim().is_empty()).map(|l| {
            let l = l.trim();
            if l.chars().count() > 200 {
                format!("{}…", l.chars().take(200).collect::<String>())
            } else {
                l.to_string()
            }
        });
        let ms = ms(started.elapsed());
        match status {
            Some(s) if s.success() => {
                tracing::info!(pair = %self.pair, hook = %hook.display(), phase, ms, "hook succeeded");
                Ok(())
            }
            Some(status) => Err(QuiesceError::HookFailed { hook: hook.to_path_buf(), phase, status, stderr: last }),
            None => Err(QuiesceError::HookTimeout { hook: hook.to_path_buf(), phase, timeout: self.timeout }),
        }
    }

    fn spawn(&self, hook: &Path, phase: &str) -> io::Result<Child> {
        let mut tries = 0;
        loop {
            let r = Command::new(hook)
                .args([phase, &self.pair])
                .env("DRPAIR_PAIR", &self.pair)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            match r {
                // Another thread forking while the script was being written: retry.
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => return r,
            }
        }
    }
}

/// The child's exit status, or None after killing it at the deadline.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}
