//! A guest's control: how the next one runs (KVM or TCG), its first record, and the drill's
//! hold on it (stop, wait until gone).

use super::BootPlan;
use super::qemu::{self, Accel};
use drpair_types::{BootState, DrillBoot};
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Set once KVM failed to run a guest: later guests of this standby go to TCG at once.
pub(crate) static KVM_UNUSABLE: AtomicBool = AtomicBool::new(false);

/// How the next guest runs.
pub fn accel() -> Accel {
    if qemu::kvm_present() && !KVM_UNUSABLE.load(Ordering::Relaxed) { Accel::Kvm } else { Accel::Tcg }
}

/// The boot section of a drill that is about to boot.
pub fn initial(plan: &BootPlan, accel: Accel) -> DrillBoot {
    DrillBoot {
        state: BootState::Booting,
        memory_mib: plan.memory_mib,
        cpus: plan.cpus,
        firmware: plan.firmware.name().into(),
        expect: plan.expect.as_str().into(),
        timeout_seconds: plan.timeout.as_secs(),
        accel: accel.name().into(),
        boot_ms: None,
        reason: None,
        console_tail: String::new(),
        console_bytes: 0,
        screenshot: false,
        guest_running: false,
        note: None,
        stopped: None,
    }
}

/// A drill's hold on its guest: ask it to stop, wait until it is gone.
pub struct GuestCtl {
    pub(super) stopping: AtomicBool,
    /// The QEMU process now (0: none).
    pub(super) pid: AtomicI32,
    done: Mutex<bool>,
    cv: Condvar,
}

impl GuestCtl {
    pub(super) fn new() -> Self {
        GuestCtl {
            stopping: AtomicBool::new(false),
            pid: AtomicI32::new(0),
            done: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Stops the guest (its watcher asks it to power off, and ends QEMU after
    /// [`super::shutdown::POWERDOWN_WAIT`]) and waits for it to be gone, at most `wait`; then
    /// kills it by pid.
    pub fn stop(&self, wait: Duration) {
        self.stopping.store(true, Ordering::Release);
        let done = self.done.lock().expect("guest");
        let (done, _) = self.cv.wait_timeout_while(done, wait, |d| !*d).expect("guest");
        if !*done {
            let pid = self.pid.load(Ordering::Acquire);
            if pid > 1 {
                // SAFETY: kill(2) of the QEMU process this drill started; no memory involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            tracing::warn!(pid, "a drill's guest did not stop in {wait:?}: killed");
        }
    }

    pub(super) fn finished(&self) {
        self.pid.store(0, Ordering::Release);
        *self.done.lock().expect("guest") = true;
        self.cv.notify_all();
    }
}
