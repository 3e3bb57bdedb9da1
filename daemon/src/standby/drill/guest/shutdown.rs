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
