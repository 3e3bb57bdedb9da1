//! Runs the `drpair` CLI against a standby: `DRPAIR_SERVER` set, `DRPAIR_TOKEN` set or
//! removed, with a deadline.

use serde_json::Value;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A CLI call that runs longer than this is killed and fails the test.
const DEADLINE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub struct CliOut {
    pub args: Vec<String>,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl CliOut {
    /// Asserts exit code 0.
    pub fn ok(&self) -> &Self {
        self.expect_code(0)
    }

    /// Asserts an exit code.
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "drpair {:?}: expected exit {code}, got {}\nstdout: {}\nstderr: {}",
            self.args, self.code, self.stdout, self.stderr
        );
        self
    }

    /// Stdout as JSON.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("drpair {:?}: stdout is not JSON ({e}): {}\nstderr: {}", self.args, self.stdout, self.stderr)
        })
    }
}

#[derive(Debug, Clone)]
pub struct Cli {
    server: String,
    token: Option<String>,
    /// `DRPAIR_CA_FILE`: the standby's CA, for an `https://` server.
    ca_file: Option<std::path::PathBuf>,
}

impl Cli {
    pub fn new(server: &str, token: Option<&str>) -> Self {
        Self { server: server.into(), token: token.map(String::from), ca_file: None }
    }

    /// The same runner trusting the CA in `ca_file`.
    pub fn with_ca(self, ca_file: Option<std::path::PathBuf>) -> Self {
        Self { ca_file, ..self }
    }

    /// The same runner with another token (None: no token at all).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self { token: token.map(String::from), ..self.clone() }
    }

    pub fn run(&self, args: &[&str]) -> CliOut {
        self.run_with_stdin(args, None)
    }

    /// Runs `drpair ARGS`; with `stdin`, a pipe closed after it is written (so an empty one is
    /// an immediate end of input), else /dev/null.
    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> CliOut {
        let mut cmd = Command::new(crate::bin("drpair"));
        cmd.args(args)
            .env("DRPAIR_SERVER", &self.server)
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match &self.token {
            Some(t) => cmd.env("DRPAIR_TOKEN", t),
            None => cmd.env_remove("DRPAIR_TOKEN"),
        };
        match &self.ca_file {
            Some(f) => cmd.env("DRPAIR_CA_FILE", f),
            None => cmd.env_remove("DRPAIR_CA_FILE"),
        };
        let mut child = cmd.spawn().expect("cannot run drpair");
        let t_in = stdin.map(|input| {
            let mut si = child.stdin.take().expect("stdin");
            let input = input.to_vec();
            // The CLI may not read its input at all (--yes): a broken pipe is not an error.
            std::thread::spawn(move || {
                let _ = si.write_all(&input);
            })
        });
        let mut so = child.stdout.take().expect("stdout");
        let mut se = child.stderr.take().expect("stderr");
        let t_out = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = so.read_to_string(&mut s);
            s
        });
        let t_err = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = se.read_to_string(&mut s);
            s
        });
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait drpair") {
                break st;
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("drpair {args:?} did not finish within {DEADLINE:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if let Some(t) = t_in {
            let _ = t.join();
        }
        let out = CliOut {
            args: args.iter().map(|s| s.to_string()).collect(),
            code: status.code().unwrap_or(-1),
            stdout: t_out.join().expect("stdout thread"),
            stderr: t_err.join().expect("stderr thread"),
        };
        match stdin {
            Some(i) => crate::step(format!(
                "drpair {} (stdin {:?}) -> exit {}",
                args.join(" "),
                String::from_utf8_lossy(i),
                out.code
            )),
            None => crate::step(format!("drpair {} -> exit {}", args.join(" "), out.code)),
        }
        out
    }
}
