//! Stopping a guest drpair runs (a boot drill's, an instant failover's): ask first, then end it.
//!
//! The guest is asked to power off with QMP `system_powerdown` (the ACPI power button) and
//! given [`POWERDOWN_WAIT`] to do so; QEMU exits by itself when it does (it runs without
//! `-no-shutdown`). A guest that does not (no ACPI handler, still booting, hung) is ended with
//! QMP `quit` (QEMU flushes its block layer: an instant failover's overlays and targets), and
//! killed if even that does not end it within [`QUIT_WAIT`]. The result says which it was, and
//! is recorded in the drill's or failover's status (`stopped`).
//!
//! Invariant: when this returns, the QEMU process has exited and been reaped.

use super::qmp::Qmp;
use drpair_types::GuestStop;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long a guest has to power off when asked before it is ended (documented in the README).
pub const POWERDOWN_WAIT: Duration = Duration::from_secs(30);
/// How long QEMU has to exit after `quit` before it is killed.
pub const QUIT_WAIT: Duration = Duration::from_secs(5);

/// Stops the guest of `child`: ACPI power-off through `qmp` (none: skipped, the guest is
/// forced at once), waiting at most `wait`; then `quit`, then SIGKILL. `pump` is called while
/// waiting (it reads the console; it should block ≈ 0.1 s).
pub fn shut_down(child: &mut Child, qmp: Option<&mut Qmp>, wait: Duration, mut pump: impl FnMut()) -> GuestStop {
    let mut qmp = qmp;
    if let Some(q) = qmp.as_deref_mut() {
        match q.execute("system_powerdown", None) {
            Ok(_) => {
                let t0 = Instant::now();
                while t0.elapsed() < wait {
                    if let Ok(Some(_)) = child.try_wait() {
                        tracing::info!(
                            pid = child.id(),
                            secs = t0.elapsed().as_secs_f64(),
                            "the guest powered off when asked"
                        );
                        return GuestStop::Powerdown;
                    }
                    pump();
                }
                tracing::warn!(
                    pid = child.id(),
                    "the guest did not power off within {wait:?} of the ACPI request: forced"
                );
            }
            Err(e) => tracing::warn!(pid = child.id(), "QMP system_powerdown: {e}: forced"),
        }
    }
    if let Ok(Some(_)) = child.try_wait() {
        // It went down between the last check and now.
        return GuestStop::Powerdown;
    }
    if let Some(q) = qmp {
        let _ = q.quit();
        let t0 = Instant::now();
        while t0.elapsed() < QUIT_WAIT {
            if let Ok(Some(_)) = child.try_wait() {
                return GuestStop::Forced;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    GuestStop::Forced
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::os::unix::net::UnixListener;
    use std::process::Command;

    /// A stand-in for QEMU's QMP socket: greets, answers every command with `{"return": {}}`,
    /// and on `system_powerdown` kills `pid` when `obeys` (a guest that powers off).
    fn fake_qmp(dir: &std::path::Path, pid: u32, obeys: bool) -> Qmp {
        let path = dir.join("qmp.sock");
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            let mut w = conn.try_clone().unwrap();
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n").unwrap();
            for line in BufReader::new(conn).lines() {
                let Ok(line) = line else { break };
                if line.contains("system_powerdown") && obeys {
                    // SAFETY: kill(2) of the test's own child process; no memory involved.
                    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
                }
                if w.write_all(b"{\"return\": {}}\n").is_err() {
                    break;
                }
            }
        });
        Qmp::connect(&path, Duration::from_secs(5)).unwrap()
    }

    fn dir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("drpair-shutdown-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A guest that powers off when asked is `Powerdown`; one that does not is ended after the
    /// wait and is `Forced`; without QMP it is forced at once. The process is always reaped.
    #[test]
    fn a_guest_is_asked_first_and_forced_only_after_the_wait() {
        let d = dir("obeys");
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let mut q = fake_qmp(&d, child.id(), true);
        let t0 = Instant::now();
        assert_eq!(
            shut_down(&mut child, Some(&mut q), Duration::from_secs(10), || std::thread::sleep(Duration::from_millis(
                20
            ))),
            GuestStop::Powerdown
        );
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        assert!(child.try_wait().unwrap().is_some());

        let d2 = dir("ignores");
        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        let mut q = fake_qmp(&d2, child.id(), false);
        let t0 = Instant::now();
        let wait = Duration::from_millis(300);
        assert_eq!(
            shut_down(&mut child, Some(&mut q), wait, || std::thread::sleep(Duration::from_millis(20))),
            GuestStop::Forced
        );
        assert!(t0.elapsed() >= wait, "the guest had its wait");
        assert!(child.try_wait().unwrap().is_some(), "reaped");

        let mut child = Command::new("sleep").arg("60").spawn().unwrap();
        assert_eq!(shut_down(&mut child, None, Duration::from_secs(30), || {}), GuestStop::Forced);
        assert!(child.try_wait().unwrap().is_some());
        for d in [d, d2] {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}
