//! `drpaird standby` and `drpaird agent` as test processes.

use crate::api::Api;
use crate::cli::Cli;
use crate::env::TestEnv;
use crate::process::Daemon;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long a standby may take to open its store and serve.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A standby process with its data dir and bound addresses.
pub struct Standby {
    pub proc: Daemon,
    pub data_dir: PathBuf,
    pub link: SocketAddr,
    pub api_addr: SocketAddr,
    pub token: Option<String>,
    pub token_file: Option<PathBuf>,
    /// The standby's TLS fingerprint (`None`: started with `--insecure-plaintext`).
    pub fingerprint: Option<String>,
}

fn os(v: &[&str]) -> Vec<OsString> {
    v.iter().map(OsString::from).collect()
}

impl Standby {
    /// Starts a standby on free ports of 127.0.0.1 (port 0) and waits until it serves.
    /// After the first start its arguments name the bound ports, so a restart keeps them
    /// (agents find it again at the same address).
    pub fn start(env: &TestEnv, token: Option<&str>) -> Self {
        Self::start_with(env, token, &[])
    }

    /// Like [`Standby::start`], with extra arguments (e.g. `--hold-new-pairs`).
    pub fn start_with(env: &TestEnv, token: Option<&str>, extra: &[&str]) -> Self {
        let data_dir = env.mkdir("standby");
        let token_file = token.map(|t| env.token_file("standby", t));
        let log = env.path("standby.log");
        env.add_log("standby", &log);
        let args = |link: &str, api: &str| {
            let mut a = os(&["standby", "--data-dir"]);
            a.push(data_dir.clone().into());
            a.extend(os(&["--listen", link, "--api-listen", api]));
            // Failover targets, failback sources and dump images of tests: loop devices and files
            // of the test's directory (the standby refuses any other place).
            let root = env.root().canonicalize().unwrap_or_else(|_| env.root().to_path_buf());
            a.extend(os(&["--allowed-path", "/dev/*", "--allowed-path", &format!("{}/*", root.display())]));
            if let Some(f) = &token_file {
                a.push("--token-file".into());
                a.push(f.clone().into());
            }
            a.extend(os(extra));
            a
        };
        let mut proc = Daemon::new("standby", &crate::bin("drpaird"), args("127.0.0.1:0", "127.0.0.1:0"), vec![], log);
        let (link, api_addr) = start_and_wait(&mut proc, &data_dir);
        // Pin the ports for restarts.
        proc.set_args(args(&link.to_string(), &api_addr.to_string()));
        let fingerprint = read_fingerprint(&data_dir);
        // Without a token file the standby made its bootstrap admin token: the tests' admin.
        let token = token
            .map(String::from)
            .or_else(|| std::fs::read_to_string(data_dir.join("admin.token")).ok().map(|t| t.trim().to_string()));
        crate::step(format!("standby serving: link {link}, api {api_addr}, fingerprint {fingerprint:?}"));
        Self { proc, data_dir, link, api_addr, token, token_file, fingerprint }
    }

    /// The API's URL: HTTPS unless the standby was started with `--api-plain-http`.
    pub fn url(&self) -> String {
        let plain = self.proc.args().iter().any(|a| a == "--api-plain-http");
        format!("{}://{}", if plain { "http" } else { "https" }, self.api_addr)
    }

    /// The standby's CA (`DATA_DIR/tls/ca.pem`), which API clients trust.
    pub fn ca_file(&self) -> Option<PathBuf> {
        let f = self.data_dir.join("tls/ca.pem");
        f.exists().then_some(f)
    }

    /// An API client with the standby's token, trusting its CA.
    pub fn api(&self) -> Api {
        Api::with_ca(&self.url(), self.token.as_deref(), self.ca_file().as_deref())
    }

    /// A CLI runner pointed at this standby, with its token, trusting its CA.
    pub fn cli(&self) -> Cli {
        Cli::new(&self.url(), self.token.as_deref()).with_ca(self.ca_file())
    }

    pub fn kill9(&mut self) {
        self.proc.kill9();
    }

    /// The standby's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.pid()
    }

    /// Clean stop; asserts exit code 0.
    pub fn term(&mut self) {
        let st = self.proc.term(Duration::from_secs(30));
        assert!(st.success(), "standby exited with {st} after SIGTERM:\n{}", self.proc.tail(30));
    }

    /// Starts again with the same arguments (same data dir and ports) and waits until it serves.
    pub fn restart(&mut self) {
        let (link, api) = start_and_wait(&mut self.proc, &self.data_dir);
        assert_eq!((link, api), (self.link, self.api_addr), "a restarted standby must serve on the same addresses");
    }
}

/// The fingerprint the standby wrote at start (`DATA_DIR/fingerprint`, written before the
/// addresses), `None` when it runs without TLS.
pub fn read_fingerprint(data_dir: &Path) -> Option<String> {
    std::fs::read_to_string(data_dir.join("fingerprint")).ok().map(|s| s.trim().to_string())
}

/// Starts `proc` and waits for `DATA_DIR/link.addr` and `api.addr` (stale ones removed first).
fn start_and_wait(proc: &mut Daemon, data_dir: &Path) -> (SocketAddr, SocketAddr) {
    let (lf, af) = (data_dir.join("link.addr"), data_dir.join("api.addr"));
    let _ = std::fs::remove_file(&lf);
    let _ = std::fs::remove_file(&af);
    proc.start();
    crate::wait_until("the standby to write link.addr and api.addr", READY_TIMEOUT, || {
        if let Some(st) = proc.try_exit() {
            panic!("standby exited with {st} before serving:\n{}", proc.tail(40));
        }
        let read = |p: &Path| std::fs::read_to_string(p).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
        match (read(&lf), read(&af)) {
            (Some(l), Some(a)) => Ok((l, a)),
            other => Err(format!("addresses so far: {other:?}")),
        }
    })
}

/// Arguments of an agent; [`AgentSpec::spawn`] makes the process.
#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub pair: String,
    pub disks: Vec<PathBuf>,
    pub standby: SocketAddr,
    /// `--standby` as written instead of `standby` (a name that does not resolve).
    pub standby_address: Option<String>,
    pub state_dir: PathBuf,
    pub token_file: Option<PathBuf>,
    /// `--standby-fingerprint` (`None`: `--insecure-plaintext`).
    pub fingerprint: Option<String>,
    /// Enroll the agent through this standby's API before its first start (the agent then
    /// authenticates with its own certificate); `None`: it uses the token.
    pub enroll_with: Option<Api>,
    pub cut_interval: String,
    pub chunk_size: Option<u64>,
    pub compression: Option<String>,
    /// `DRPAIR_TEST_THROTTLE_BPS`: bytes per second the agent's passes may read.
    pub throttle_bps: Option<u64>,
    /// `--tracker` (default `scan`: image files have no block layer to trace).
    pub tracker: String,
    pub extra: Vec<String>,
}

impl AgentSpec {
    /// An agent of `pair` protecting `disks`, talking to `sb` with its token, cutting every
    /// second with the scan tracker, state in `TEST_DIR/agent-PAIR`.
    pub fn new(env: &TestEnv, sb: &Standby, pair: &str, disks: &[&Path]) -> Self {
        Self {
            pair: pair.into(),
            disks: disks.iter().map(|d| d.to_path_buf()).collect(),
            standby: sb.link,
            standby_address: None,
            state_dir: env.path(&format!("agent-{pair}")),
            token_file: sb.token_file.clone(),
            fingerprint: sb.fingerprint.clone(),
            enroll_with: sb.fingerprint.as_ref().map(|_| sb.api()),
            cut_interval: "1s".into(),
            chunk_size: None,
            compression: None,
            throttle_bps: None,
            tracker: "scan".into(),
            extra: vec![],
        }
    }

    pub fn args(&self) -> Vec<OsString> {
        let mut a = os(&["agent", "--pair", &self.pair]);
        for d in &self.disks {
            a.push("--disk".into());
            a.push(d.clone().into());
        }
        a.extend(os(&[
            "--standby",
            &self.standby_address.clone().unwrap_or_else(|| self.standby.to_string()),
            "--tracker",
            &self.tracker,
            "--cut-interval",
            &self.cut_interval,
        ]));
        a.push("--state-dir".into());
        a.push(self.state_dir.clone().into());
        if let Some(t) = &self.token_file {
            a.push("--token-file".into());
            a.push(t.clone().into());
        }
        match &self.fingerprint {
            Some(f) => a.extend(os(&["--standby-fingerprint", f])),
            None => a.push("--insecure-plaintext".into()),
        }
        if let Some(c) = self.chunk_size {
            a.extend(os(&["--chunk-size", &c.to_string()]));
        }
        if let Some(c) = &self.compression {
            a.extend(os(&["--compression", c]));
        }
        a.extend(self.extra.iter().map(OsString::from));
        a
    }

    /// Enrolls the agent (once per state dir): a secret from the standby's API, then
    /// `drpaird agent enroll` as an operator would run it on the protected server.
    pub fn enroll(&self) {
        let (Some(api), Some(fp)) = (&self.enroll_with, &self.fingerprint) else { return };
        if self.state_dir.join("tls/agent.pem").exists() {
            return;
        }
        let r = api.post(&format!("/api/v1/pairs/{}/enroll", self.pair), "application/json", b"{}");
        assert_eq!(r.status, 200, "enroll {}: {}", self.pair, r.text());
        let secret = r.json()["secret"].as_str().expect("secret").to_string();
        let out = std::process::Command::new(crate::bin("drpaird"))
            .args(["agent", "enroll", "--standby", &self.standby.to_string(), "--fingerprint", fp, "--secret", &secret])
            .args(["--pair", &self.pair])
            .arg("--state-dir")
            .arg(&self.state_dir)
            .output()
            .expect("drpaird agent enroll");
        assert!(out.status.success(), "drpaird agent enroll failed: {}", String::from_utf8_lossy(&out.stderr));
        crate::step(format!("agent of {} enrolled: {}", self.pair, String::from_utf8_lossy(&out.stdout).trim()));
    }

    /// Makes the process (not started, enrolled first if it is to be); its log is
    /// `TEST_DIR/LABEL.log`.
    pub fn daemon(&self, env: &TestEnv, label: &str) -> Daemon {
        self.enroll();
        let log = env.path(&format!("{label}.log"));
        env.add_log(label, &log);
        let envs = match self.throttle_bps {
            Some(b) => vec![("DRPAIR_TEST_THROTTLE_BPS".into(), b.to_string().into())],
            None => vec![],
        };
        Daemon::new(label, &crate::bin("drpaird"), self.args(), envs, log)
    }

    /// Makes and starts the process.
    pub fn spawn(&self, env: &TestEnv, label: &str) -> Daemon {
        let mut d = self.daemon(env, label);
        d.start();
        d
    }
}
