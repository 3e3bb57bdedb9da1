//! End-to-end test harness for drpair: real `drpaird` and `drpair` processes, real rocksdb,
//! real loop devices and filesystems.
//!
//! Invariants the harness keeps, so a failing test never leaves the machine dirty:
//! - every process it spawns is killed (SIGKILL) when its handle drops, failure or not;
//! - loop devices are detached, mounts unmounted and frozen filesystems thawed by guards
//!   that run on drop, in reverse order of creation (declare them in that order);
//! - when a test panics, [`TestEnv`] prints the tail of every daemon log it knows about
//!   (after the daemons were killed, so the tails are complete).
//!
//! Binaries come from `DRPAIR_BIN_DIR`, or else from the directory of the test executable's
//! parent (`…/release/deps/test-xxx` → `…/release`). Build them first with
//! `cargo build --release --bins`, then `cargo test --release -p drpair-e2e -- --test-threads=2`
//! (root is needed: loop devices, mount, fsfreeze).
//!
//! Environment: `DRPAIR_BIN_DIR` (binaries), `DRPAIR_E2E_TMP` (where test directories go,
//! default the system temp dir), `DRPAIR_E2E_KEEP` (keep a failed test's directory),
//! `DRPAIR_LOG` (daemon log filter, default `info`).

pub mod api;
pub mod blockdev;
pub mod bootdisk;
pub mod browser;
pub mod cli;
pub mod daemons;
pub mod dump;
pub mod env;
pub mod fault_proxy;
pub mod garage;
pub mod grafana;
pub mod image;
pub mod lifecycle;
pub mod link;
pub mod maintenance;
pub mod many_pairs;
pub mod pair;
pub mod postgres;
pub mod process;
pub mod prometheus;
pub mod proxy;
pub mod tracking;
pub mod webhook;
pub mod workload;

pub use api::{Api, Export, Reply};
pub use blockdev::{Freeze, LoopDev, Mount};
pub use cli::{Cli, CliOut};
pub use daemons::{AgentSpec, Standby};
pub use env::TestEnv;
pub use pair::{wait_connected, wait_ready};
pub use process::Daemon;
pub use workload::Workload;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// One mebibyte.
pub const MIB: u64 = 1 << 20;

/// Where `drpaird` and `drpair` live.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DRPAIR_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.pop();
    }
    dir
}

/// Path of one of the project's binaries; panics with the build command when it is missing.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(
        p.is_file(),
        "{} not found: build the binaries first (`cargo build --release --bins`) or set DRPAIR_BIN_DIR",
        p.display()
    );
    p
}

fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

/// Prints a progress line (shown by the test runner when the test fails).
pub fn step(msg: impl AsRef<str>) {
    eprintln!("[{:>7.2}s] {}", t0().elapsed().as_secs_f64(), msg.as_ref());
}

/// Polls `f` every 100 ms until it returns `Ok`, or panics after `timeout` with the last
/// `Err` (which should describe the state observed).
pub fn wait_until<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let _ = t0();
    let start = Instant::now();
    let mut last: String;
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        if start.elapsed() >= timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a command to completion; panics with its output if it fails.
pub fn sh(program: &str, args: &[&str]) -> String {
    let out =
        std::process::Command::new(program).args(args).output().unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a command and reports whether it succeeded (for cleanup paths that must not panic).
pub fn sh_ok(program: &str, args: &[&str]) -> bool {
    std::process::Command::new(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Milliseconds since 1970 as RFC 3339 UTC with milliseconds (`2026-11-22T10:00:00.123Z`),
/// the form the API accepts and shows.
pub fn rfc3339_ms(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}
