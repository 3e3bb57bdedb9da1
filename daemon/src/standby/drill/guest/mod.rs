//! Boot-verified drills: the point booted in a QEMU guest on the standby, its disks the
//! drill's own NBD exports (writes go to the drill's overlay like any client's), and its
//! serial console watched for the operator's pattern. The guest's evidence (console log,
//! QEMU's messages, a screenshot through QMP `screendump`) is kept with the drill's record
//! under `DATA_DIR/drill-evidence/ID/` (`../evidence.rs`).
//!
//! - `plan.rs`: the request checked (memory, CPUs, firmware, pattern, time limit);
//! - `qemu.rs`: QEMU's command line and process, leftovers killed at start-up;
//! - `qmp.rs`: a small QMP client (status, screendump, quit); `ppm.rs`: PPM → PNG;
//! - `console.rs`: the console's log, match window and tail;
//! - `shutdown.rs`: a guest's stop (ACPI power-off asked, `quit` after a bounded wait);
//! - `watch.rs`: the thread that runs one guest from start to end.
//!
//! KVM is used when `/dev/kvm` opens; a KVM that cannot run the guest (QEMU stops it with
//! `internal-error`, as a nested PVM host does with a BIOS guest) is noted, and the guest
//! starts again under TCG, as do later guests of this standby.

pub mod console;
mod ctl;
pub mod plan;
pub mod ppm;
pub mod qemu;
pub mod qmp;
pub mod shutdown;
mod watch;

use super::live::Live;
use crate::standby::Standby;
pub(crate) use ctl::KVM_UNUSABLE;
pub use ctl::{GuestCtl, accel, initial};
pub use plan::{BootPlan, plan};
use qemu::Accel;
use std::sync::Arc;

/// Starts the guest of `live` on a thread of its own (which QEMU does not outlive).
pub(super) fn start(sb: &Arc<Standby>, live: &Arc<Live>, plan: BootPlan, accel: Accel) -> Arc<GuestCtl> {
    let ctl = Arc::new(GuestCtl::new());
    let (sb, live, ctl2) = (sb.clone(), live.clone(), ctl.clone());
    let id = live.status.lock().expect("drill").id.clone();
    let spawned = std::thread::Builder::new().name(format!("guest-{id}")).spawn(move || {
        watch::run(&sb, &live, &ctl2, &plan, accel);
        ctl2.finished();
    });
    if let Err(e) = spawned {
        tracing::error!(drill = %id, "starting the guest's thread: {e}");
        ctl.finished();
    }
    ctl
}
