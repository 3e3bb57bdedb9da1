//! A daemon process that can be killed (-9), stopped (SIGTERM) and restarted with the same
//! arguments. Its stdout and stderr go to one log file; each start appends a marker line.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Marker written to the log before each start.
const START_MARK: &str = "===== e2e: start #";

pub struct Daemon {
    label: String,
    program: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Daemon {
    /// Describes a process; [`Daemon::start`] runs it.
    pub fn new(
        label: &str,
        program: &Path,
        args: Vec<OsString>,
        envs: Vec<(OsString, OsString)>,
        log: PathBuf,
    ) -> Self {
        Self { label: label.into(), program: program.into(), args, envs, log, child: None, starts: 0 }
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    pub fn args(&self) -> &[OsString] {
        &self.args
    }

    /// Replaces the arguments used by the next start.
    pub fn set_args(&mut self, args: Vec<OsString>) {
        self.args = args;
    }

    pub fn start(&mut self) {
        assert!(self.child.is_none(), "{} is already running", self.label);
        self.starts += 1;
        let mut log = OpenOptions::new().create(true).append(true).open(&self.log).expect("log file");
        let shown: Vec<String> = self.args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let env_shown: Vec<String> =
            self.envs.iter().map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy())).collect();
        writeln!(
            log,
            "{START_MARK}{} {} {} {} =====",
            self.starts,
            env_shown.join(" "),
            self.program.display(),
            shown.join(" ")
        )
        .expect("log");
        let err = log.try_clone().expect("log clone");
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null()).stdout(Stdio::from(log)).stderr(Stdio::from(err));
        if std::env::var_os("DRPAIR_LOG").is_none() {
            cmd.env("DRPAIR_LOG", "info");
        }
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        let child =
            cmd.spawn().unwrap_or_else(|e| panic!("cannot start {} ({}): {e}", self.label, self.program.display()));
        crate::step(format!("{}: started (pid {}, start #{})", self.label, child.id(), self.starts));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running (reaps it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.try_exit().is_none() && self.child.is_some()
    }

    /// The exit status if the process has exited (and forgets the child); None while running.
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        match child.try_wait().expect("try_wait") {
            Some(st) => {
                crate::step(format!("{}: exited with {st}", self.label));
                self.child = None;
                Some(st)
            }
            None => None,
        }
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.child.is_none() {
                return None;
            }
            if let Some(st) = self.try_exit() {
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL, then reap. No-op when not running.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            crate::step(format!("{}: killed with SIGKILL", self.label));
        }
    }

    /// SIGTERM, then waits up to `timeout` for a clean exit; panics (after SIGKILL) if the
    /// process does not stop in time. Returns the exit status.
    pub fn term(&mut self, timeout: Duration) -> ExitStatus {
        let pid = self.pid().unwrap_or_else(|| panic!("{} is not running", self.label));
        let pid = i32::try_from(pid).expect("pid fits i32");
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped) and a valid signal.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill -TERM {pid}: {}", std::io::Error::last_os_error());
        crate::step(format!("{}: sent SIGTERM", self.label));
        match self.wait_exit(timeout) {
            Some(st) => st,
            None => {
                self.kill9();
                panic!("{} did not stop within {timeout:?} of SIGTERM", self.label);
            }
        }
    }

    /// Starts again with the same program, arguments and environment.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} must be stopped before a restart", self.label);
        self.start();
    }

    /// The whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The log of the current (or last) start only.
    pub fn log_of_last_start(&self) -> String {
        let all = self.log();
        match all.rfind(START_MARK) {
            Some(i) => all[i..].to_string(),
            None => all,
        }
    }

    /// The last `n` lines of the log (for assertion messages).
    pub fn tail(&self, n: usize) -> String {
        let all = self.log();
        let lines: Vec<&str> = all.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
