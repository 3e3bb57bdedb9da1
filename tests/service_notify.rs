//! The notify protocol of the `Type=notify` units, spoken to a test socket instead of systemd:
//! each daemon, started with `NOTIFY_SOCKET` set, sends `READY=1` once and only when it serves
//! (the standby: its API answers and its link accepts by then; the agent: tracking has started,
//! whether or not the standby is reachable), `WATCHDOG=1` at half of `WATCHDOG_USEC`, and
//! `STOPPING=1` on SIGTERM before exiting 0. A notify socket that does not exist changes
//! nothing.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, Api, Daemon, MIB, Standby, TestEnv, bin, step, wait_connected, wait_until};
use std::ffi::OsString;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "notify-token-0123";
/// The watchdog period given to the daemons: pings are expected every 200 ms.
const WATCHDOG_USEC: &str = "400000";
/// How long a daemon may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The service manager's end: a datagram socket the daemon's notifications arrive on. Keeps
/// every message, in order.
struct NotifySocket {
    sock: UnixDatagram,
    path: PathBuf,
    seen: Vec<String>,
}

impl NotifySocket {
    fn bind(env: &TestEnv, name: &str) -> Self {
        let path = env.path(&format!("{name}.notify"));
        let sock = UnixDatagram::bind(&path).unwrap_or_else(|e| panic!("bind {}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100))).expect("read timeout");
        Self { sock, path, seen: vec![] }
    }

    /// `NOTIFY_SOCKET` (and, with `watchdog`, `WATCHDOG_USEC`) for the daemon.
    fn env(&self, watchdog: bool) -> Vec<(OsString, OsString)> {
        let mut v = vec![("NOTIFY_SOCKET".into(), self.path.clone().into())];
        if watchdog {
            v.push(("WATCHDOG_USEC".into(), WATCHDOG_USEC.into()));
        }
        v
    }

    /// Receives for up to `timeout`; returns the messages that arrived.
    fn drain(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = vec![];
        let mut buf = [0u8; 4096];
        while Instant::now() < deadline {
            match self.sock.recv(&mut buf) {
                Ok(n) => got.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => panic!("recv on {}: {e}", self.path.display()),
            }
        }
        self.seen.extend(got.iter().cloned());
        got
    }

    /// Waits for a message holding the assignment `line` (e.g. `READY=1`) and returns it;
    /// panics if `daemon` exits first or nothing comes within `timeout`.
    fn wait_for(&mut self, line: &str, daemon: &mut Daemon, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            for m in self.drain(Duration::from_millis(100)) {
                if has(&m, line) {
                    step(format!("{}: notified {:?}", daemon.label(), m));
                    return m;
                }
            }
            if let Some(st) = daemon.try_exit() {
                panic!(
                    "{} exited with {st} before sending {line}; got {:?}\n{}",
                    daemon.label(),
                    self.seen,
                    daemon.tail(40)
                );
            }
            assert!(
                start.elapsed() < timeout,
                "{} sent no {line} within {timeout:?}; got {:?}\n{}",
                daemon.label(),
                self.seen,
                daemon.tail(40)
            );
        }
    }

    fn count(&self, line: &str) -> usize {
        self.seen.iter().filter(|m| has(m, line)).count()
    }
}

/// Whether a notification (newline-separated assignments) holds `line`.
fn has(message: &str, line: &str) -> bool {
    message.lines().any(|l| l == line)
}

fn read_addr(p: &Path) -> SocketAddr {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{} at READY: {e}", p.display()));
    text.trim().parse().unwrap_or_else(|e| panic!("{}: '{text}': {e}", p.display()))
}

/// SIGTERM: STOPPING=1 must arrive (before the exit) and the exit must be clean.
fn stop_and_expect_stopping(daemon: &mut Daemon, notify: &mut NotifySocket) {
    let st = daemon.term(Duration::from_secs(60));
    assert!(st.success(), "{} exited with {st} after SIGTERM:\n{}", daemon.label(), daemon.tail(30));
    notify.drain(Duration::from_millis(300));
    assert_eq!(notify.count("STOPPING=1"), 1, "{}: notifications {:?}", daemon.label(), notify.seen);
    let last_stopping = notify.seen.iter().rposition(|m| has(m, "STOPPING=1")).expect("STOPPING");
    let last_ready = notify.seen.iter().rposition(|m| has(m, "READY=1")).expect("READY");
    assert!(last_ready < last_stopping, "STOPPING=1 before READY=1: {:?}", notify.seen);
}

fn standby_daemon(env: &TestEnv, data_dir: &Path, envs: Vec<(OsString, OsString)>) -> Daemon {
    let mut args: Vec<OsString> = vec!["standby".into(), "--data-dir".into(), data_dir.into()];
    args.extend(["--listen", "127.0.0.1:0", "--api-listen", "127.0.0.1:0"].map(OsString::from));
    let log = env.path("standby.log");
    env.add_log("standby", &log);
    Daemon::new("standby", &bin("drpaird"), args, envs, log)
}

#[test]
fn standby_ready_once_serving_then_stopping() {
    let env = TestEnv::new("notify-standby");
    let data_dir = env.mkdir("standby");
    let mut notify = NotifySocket::bind(&env, "standby");
    let mut sb = standby_daemon(&env, &data_dir, notify.env(true));
    sb.start();

    let ready = notify.wait_for("READY=1", &mut sb, READY_TIMEOUT);
    // At READY both listeners are bound (the addresses are written before) and answer now.
    let (link, api) = (read_addr(&data_dir.join("link.addr")), read_addr(&data_dir.join("api.addr")));
    let ca = data_dir.join("tls/ca.pem");
    let admin = std::fs::read_to_string(data_dir.join("admin.token")).expect("the bootstrap admin token");
    let pairs = Api::with_ca(&format!("https://{api}"), Some(admin.trim()), Some(&ca)).get("/api/v1/pairs");
    assert_eq!(pairs.status, 200, "API at READY: {}", pairs.text());
    TcpStream::connect_timeout(&link, Duration::from_secs(5)).unwrap_or_else(|e| panic!("link {link} at READY: {e}"));
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=serving")),
        "READY comes with a status saying what serves: {ready:?}"
    );
    assert!(
        notify.seen.iter().any(|m| m.lines().any(|l| l.starts_with("STATUS=opening"))),
        "a status while opening the store: {:?}",
        notify.seen
    );

    // Pings every 200 ms: about 7 in 1.5 s; a loaded machine may delay a few.
    let before = notify.count("WATCHDOG=1");
    notify.drain(Duration::from_millis(1500));
    let pings = notify.count("WATCHDOG=1") - before;
    assert!(pings >= 3, "{pings} watchdog pings in 1.5 s with WATCHDOG_USEC={WATCHDOG_USEC}: {:?}", notify.seen);

    stop_and_expect_stopping(&mut sb, &mut notify);
    assert_eq!(notify.count("READY=1"), 1, "READY=1 is sent once: {:?}", notify.seen);
}

#[test]
fn standby_without_a_listening_manager_serves_anyway() {
    let env = TestEnv::new("notify-nobody");
    let data_dir = env.mkdir("standby");
    let nobody = env.path("nobody.notify");
    let mut sb = standby_daemon(&env, &data_dir, vec![("NOTIFY_SOCKET".into(), nobody.into())]);
    sb.start();
    let api = wait_until("the standby to write api.addr", READY_TIMEOUT, || {
        if let Some(st) = sb.try_exit() {
            panic!("standby exited with {st}:\n{}", sb.tail(30));
        }
        std::fs::read_to_string(data_dir.join("api.addr")).map_err(|e| e.to_string())
    });
    let ca = data_dir.join("tls/ca.pem");
    let admin = std::fs::read_to_string(data_dir.join("admin.token")).expect("the bootstrap admin token");
    let r = Api::with_ca(&format!("https://{}", api.trim()), Some(admin.trim()), Some(&ca)).get("/api/v1/pairs");
    assert_eq!(r.status, 200, "{}", r.text());
    let st = sb.term(Duration::from_secs(60));
    assert!(st.success(), "standby exited with {st}:\n{}", sb.tail(30));
}

/// An agent of `pair` on a fresh 16 MiB image with the scan tracker, notifying `notify`.
fn agent_daemon(env: &TestEnv, spec: &AgentSpec, notify: &NotifySocket, watchdog: bool) -> Daemon {
    let log = env.path(&format!("agent-{}.log", spec.pair));
    env.add_log(&format!("agent {}", spec.pair), &log);
    Daemon::new(&format!("agent {}", spec.pair), &bin("drpaird"), spec.args(), notify.env(watchdog), log)
}

fn image(env: &TestEnv, name: &str) -> PathBuf {
    let p = env.path(name);
    create_image(&p, 16 * MIB, Fill::Mixed, 9);
    p
}

#[test]
fn agent_ready_once_tracking_then_connects_and_stops() {
    let env = TestEnv::new("notify-agent");
    let sb = Standby::start(&env, Some(TOKEN));
    let disk = image(&env, "disk0.img");
    let spec = AgentSpec::new(&env, &sb, "notify-01", &[&disk]);
    let mut notify = NotifySocket::bind(&env, "agent");
    let mut agent = agent_daemon(&env, &spec, &notify, true);
    agent.start();

    let ready = notify.wait_for("READY=1", &mut agent, READY_TIMEOUT);
    assert!(agent.log().contains("agent starting"), "READY before tracking started:\n{}", agent.tail(20));
    assert!(spec.state_dir.is_dir(), "READY before the state dir {} exists", spec.state_dir.display());
    assert!(
        ready.lines().any(|l| l.starts_with("STATUS=tracking 1 disk(s) of pair notify-01")),
        "READY comes with a status naming the pair: {ready:?}"
    );
    wait_connected(&sb.api(), "notify-01", true, Duration::from_secs(60));

    let before = notify.count("WATCHDOG=1");
    notify.drain(Duration::from_millis(1500));
    let pings = notify.count("WATCHDOG=1") - before;
    assert!(pings >= 3, "{pings} watchdog pings in 1.5 s with WATCHDOG_USEC={WATCHDOG_USEC}: {:?}", notify.seen);

    stop_and_expect_stopping(&mut agent, &mut notify);
    assert_eq!(notify.count("READY=1"), 1, "READY=1 is sent once: {:?}", notify.seen);
}

#[test]
fn agent_ready_without_waiting_for_the_standby() {
    let env = TestEnv::new("notify-agent-alone");
    // A standby address where nothing listens: tracking must not wait for it (the unit is
    // ordered before basic.target; a boot must not hang on the network).
    let nowhere = TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port");
    let disk = image(&env, "disk0.img");
    let spec = AgentSpec {
        standby_address: None,
        pair: "alone-01".into(),
        disks: vec![disk],
        standby: nowhere,
        state_dir: env.path("agent-alone-01"),
        token_file: Some(env.token_file("agent", TOKEN)),
        // Any well-formed pin: nothing answers at that address.
        fingerprint: Some(format!("sha256:{}", "ab".repeat(32))),
        enroll_with: None,
        cut_interval: "1s".into(),
        chunk_size: None,
        compression: None,
        throttle_bps: None,
        tracker: "scan".into(),
        extra: vec![],
    };
    let mut notify = NotifySocket::bind(&env, "agent");
    let mut agent = agent_daemon(&env, &spec, &notify, false);
    agent.start();
    notify.wait_for("READY=1", &mut agent, READY_TIMEOUT);
    assert_eq!(notify.count("WATCHDOG=1"), 0, "no WATCHDOG_USEC, no pings: {:?}", notify.seen);
    // Still retrying the link, still alive; a stop is clean.
    notify.drain(Duration::from_secs(1));
    assert!(agent.is_running(), "the agent gave up without a standby:\n{}", agent.tail(30));
    stop_and_expect_stopping(&mut agent, &mut notify);
}
