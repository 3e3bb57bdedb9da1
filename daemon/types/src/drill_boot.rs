//! Boot-verified drills: the guest a drill may boot from its own NBD exports (QEMU on the
//! standby), what the operator asks of it, and the evidence it leaves (boot time to the
//! console's match, the console's tail, a screenshot).

use serde::{Deserialize, Serialize};

/// Memory of the guest when none is asked for.
pub const BOOT_DEFAULT_MEMORY: &str = "2G";
/// Virtual CPUs of the guest when none are asked for.
pub const BOOT_DEFAULT_CPUS: u32 = 2;
/// What the console must show when no `expect` is given: a login prompt.
pub const BOOT_DEFAULT_EXPECT: &str = "login:";
/// How long the console may take to match when no timeout is given.
pub const BOOT_DEFAULT_TIMEOUT_SECONDS: u64 = 300;

/// `boot` in a drill request: boot the point in a guest and watch its serial console.
/// Every field is optional (the defaults above; firmware `bios`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BootRequest {
    /// The guest's memory: MiB, or a number with a unit (`512M`, `2G`).
    #[serde(default)]
    pub memory: Option<String>,
    #[serde(default)]
    pub cpus: Option<u32>,
    /// `bios` (SeaBIOS) or `uefi` (OVMF).
    #[serde(default)]
    pub firmware: Option<String>,
    /// A regular expression the serial console must match for the boot to pass.
    #[serde(default)]
    pub expect: Option<String>,
    /// Seconds the console may take to match.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// Where a drill's boot is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootState {
    /// The guest runs; its console has not matched yet.
    Booting,
    /// The console matched in time.
    Passed,
    /// It did not (timeout, QEMU exited, the guest stopped, the drill ended first).
    Failed,
}

/// A drill's boot and its evidence. The full console log and the screenshot are files kept
/// with the drill's record: `GET /api/v1/drills/{id}/console` and `…/screenshot` (PNG).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrillBoot {
    pub state: BootState,
    pub memory_mib: u64,
    pub cpus: u32,
    /// `bios` or `uefi`.
    pub firmware: String,
    pub expect: String,
    pub timeout_seconds: u64,
    /// How QEMU runs the guest: `kvm` (hardware) or `tcg` (emulation, when KVM is absent or
    /// cannot run the guest).
    pub accel: String,
    /// From the guest's start to the console's match, in milliseconds.
    pub boot_ms: Option<u64>,
    /// Why the boot failed.
    pub reason: Option<String>,
    /// The console's last lines.
    pub console_tail: String,
    /// Bytes the console printed so far.
    pub console_bytes: u64,
    /// Whether a screenshot of the guest's screen was taken (at the match or the failure).
    pub screenshot: bool,
    /// Whether the guest runs now (it is stopped when the drill ends).
    pub guest_running: bool,
    /// Anything else worth knowing (e.g. KVM could not run the guest, so it runs under TCG).
    #[serde(default)]
    pub note: Option<String>,
    /// How the guest was stopped, once it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<GuestStop>,
}

/// How a guest drpair ran (a boot drill's, an instant failover's) was stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GuestStop {
    /// It powered off when asked (QMP `system_powerdown`: the ACPI power button), within the
    /// wait: its filesystems were shut down cleanly.
    Powerdown,
    /// It did not (no ACPI handler, still booting, hung): QEMU was ended (`quit`, then killed)
    /// after the wait, like pulling the plug; the guest's filesystems saw a crash.
    Forced,
}

impl GuestStop {
    pub fn label(self) -> &'static str {
        match self {
            GuestStop::Powerdown => "powered off (ACPI)",
            GuestStop::Forced => "forced (did not power off when asked)",
        }
    }
}
