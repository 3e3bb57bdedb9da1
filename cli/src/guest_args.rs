//! The guest's settings of a boot (`--memory`, `--cpus`, `--firmware`, `--expect`,
//! `--timeout`), one set of flags flattened into both commands that boot a point: `drill
//! start --boot` and `failover --instant --boot`. Each flag needs `--boot` of the command it
//! is flattened into; the defaults are the standby's (`drpair_types::BOOT_DEFAULT_*`).

use clap::Args;
use drpair_types::BootRequest;
use std::time::Duration;

#[derive(Debug, Default, Clone, PartialEq, Eq, Args)]
pub struct GuestArgs {
    /// The guest's memory, MiB or with a unit: 512M, 2G (default 2G)
    #[arg(long, value_name = "SIZE", requires = "boot")]
    pub memory: Option<String>,
    /// The guest's virtual CPUs (default 2)
    #[arg(long, value_name = "N", requires = "boot")]
    pub cpus: Option<u32>,
    /// The guest's firmware: bios (SeaBIOS, the default) or uefi (OVMF)
    #[arg(long, value_name = "bios|uefi", requires = "boot")]
    pub firmware: Option<String>,
    /// A regular expression the guest's serial console shows once it is up (default: login:)
    #[arg(long, value_name = "REGEX", requires = "boot")]
    pub expect: Option<String>,
    /// How long the console may take to match (default 5m)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, requires = "boot")]
    pub timeout: Option<Duration>,
}

impl GuestArgs {
    /// The boot request with these settings. Whole seconds: a sub-second timeout is sent as 0,
    /// which the standby refuses with a clear message rather than the CLI rounding it.
    pub fn request(&self) -> BootRequest {
        BootRequest {
            memory: self.memory.clone(),
            cpus: self.cpus,
            firmware: self.firmware.clone(),
            expect: self.expect.clone(),
            timeout_seconds: self.timeout.map(|d| d.as_secs()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_the_request() {
        let g = GuestArgs {
            memory: Some("1G".into()),
            cpus: Some(4),
            firmware: Some("uefi".into()),
            expect: Some("ready".into()),
            timeout: Some(Duration::from_millis(90_500)),
        };
        let r = g.request();
        assert_eq!((r.memory.as_deref(), r.cpus, r.firmware.as_deref()), (Some("1G"), Some(4), Some("uefi")));
        assert_eq!((r.expect.as_deref(), r.timeout_seconds), (Some("ready"), Some(90)));
        assert_eq!(GuestArgs::default().request(), BootRequest::default());
    }
}
