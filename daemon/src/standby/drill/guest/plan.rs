//! A boot request checked and resolved into what QEMU is given: memory, CPUs, firmware, the
//! console's expected pattern and its time limit. Everything is checked before anything
//! starts; each refusal names its parameter.

use drpair_types::{
    BOOT_DEFAULT_CPUS, BOOT_DEFAULT_EXPECT, BOOT_DEFAULT_MEMORY, BOOT_DEFAULT_TIMEOUT_SECONDS, BootRequest,
};
use std::path::PathBuf;
use std::time::Duration;

/// The QEMU binary a drill boots with (Debian: `qemu-system-x86`).
pub const QEMU: &str = "qemu-system-x86_64";
/// The UEFI firmware a `uefi` boot uses (Debian: `ovmf`).
pub const OVMF: &str = "/usr/share/ovmf/OVMF.fd";
/// Smallest guest memory, in MiB.
pub const MIN_MEMORY_MIB: u64 = 32;
/// Most virtual CPUs of one guest.
pub const MAX_CPUS: u32 = 64;
/// Longest time a console may take to match.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Longest accepted `expect` pattern, and the compiled pattern's size limit.
const MAX_EXPECT_LEN: usize = 1024;
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The firmware the guest starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Firmware {
    /// QEMU's default, SeaBIOS.
    Bios,
    /// OVMF ([`OVMF`]).
    Uefi,
}

impl Firmware {
    pub fn name(self) -> &'static str {
        match self {
            Firmware::Bios => "bios",
            Firmware::Uefi => "uefi",
        }
    }
}

/// A checked boot request.
#[derive(Debug, Clone)]
pub struct BootPlan {
    pub memory_mib: u64,
    pub cpus: u32,
    pub firmware: Firmware,
    pub expect: regex::Regex,
    pub timeout: Duration,
}

/// Why a boot request is refused: the parameter (as the API names it) and why.
pub type PlanError = (&'static str, String);

/// `memory` as MiB: a plain number is MiB (QEMU's own unit); `K`, `M`, `G`, `T` (with or
/// without `iB`/`B`) are binary units.
pub fn parse_memory_mib(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let bad = || format!("'{s}' is not a memory size: give MiB or a number with a unit, e.g. 512M or 2G");
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = t[..digits].parse().map_err(|_| bad())?;
    let unit = t[digits..].trim().to_ascii_uppercase();
    let kib: u64 = match unit.as_str() {
        "" | "M" | "MB" | "MIB" => 1024,
        "K" | "KB" | "KIB" => 1,
        "G" | "GB" | "GIB" => 1024 * 1024,
        "T" | "TB" | "TIB" => 1024 * 1024 * 1024,
        _ => return Err(bad()),
    };
    let total_kib = n.checked_mul(kib).ok_or_else(bad)?;
    Ok(total_kib / 1024)
}

/// The host's memory in MiB (`/proc/meminfo`), if known.
fn host_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024)
}

/// Where `prog` is on the PATH.
pub fn find_program(prog: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path).map(|d| d.join(prog)).find(|p| p.is_file())
}

/// Checks `req` (the drill's time-to-live is `ttl`) and resolves its defaults. Checks the
/// host too: QEMU installed, OVMF for `uefi`, no more memory than the host has.
pub fn plan(req: &BootRequest, ttl: Duration) -> Result<BootPlan, PlanError> {
    let mem = req.memory.as_deref().unwrap_or(BOOT_DEFAULT_MEMORY);
    let memory_mib = parse_memory_mib(mem).map_err(|e| ("memory", e))?;
    if memory_mib < MIN_MEMORY_MIB {
        return Err(("memory", format!("'{mem}' is less than the smallest guest ({MIN_MEMORY_MIB} MiB)")));
    }
    if let Some(host) = host_memory_mib()
        && memory_mib > host
    {
        return Err(("memory", format!("'{mem}' ({memory_mib} MiB) is more than this standby has ({host} MiB)")));
    }
    let cpus = req.cpus.unwrap_or(BOOT_DEFAULT_CPUS);
    if !(1..=MAX_CPUS).contains(&cpus) {
        return Err(("cpus", format!("{cpus} is outside 1..={MAX_CPUS}")));
    }
    let firmware = match req.firmware.as_deref().map(str::trim) {
        None | Some("bios") => Firmware::Bios,
        Some("uefi") => Firmware::Uefi,
        Some(other) => return Err(("firmware", format!("'{other}' is neither bios nor uefi"))),
    };
    let pattern = req.expect.as_deref().unwrap_or(BOOT_DEFAULT_EXPECT);
    if pattern.is_empty() {
        return Err(("expect", "the pattern is empty (it would match at once)".into()));
    }
    if pattern.len() > MAX_EXPECT_LEN {
        return Err(("expect", format!("the pattern is longer than {MAX_EXPECT_LEN} bytes")));
    }
    let expect = regex::RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| ("expect", format!("'{pattern}' is not a valid regular expression: {e}")))?;
    let secs = req.timeout_seconds.unwrap_or(BOOT_DEFAULT_TIMEOUT_SECONDS);
    if secs == 0 || secs > MAX_TIMEOUT.as_secs() {
        return Err(("timeout_seconds", format!("{secs} is outside 1..={} seconds", MAX_TIMEOUT.as_secs())));
    }
    if secs >= ttl.as_secs() {
        return Err((
            "timeout_seconds",
            format!("{secs} s is not shorter than the drill's time-to-live ({} s)", ttl.as_secs()),
        ));
    }
    if find_program(QEMU).is_none() {
        return Err(("boot", format!("{QEMU} is not installed on this standby (Debian: apt install qemu-system-x86)")));
    }
    if firmware == Firmware::Uefi && !std::path::Path::new(OVMF).is_file() {
        return Err((
            "firmware",
            format!("uefi needs OVMF ({OVMF}), which is not installed on this standby (Debian: apt install ovmf)"),
        ));
    }
    Ok(BootPlan { memory_mib, cpus, firmware, expect, timeout: Duration::from_secs(secs) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes_parse_in_mib() {
        for (s, mib) in [("2G", 2048), ("512M", 512), ("512", 512), ("1gib", 1024), (" 4 GB ", 4096), ("1T", 1 << 20)] {
            assert_eq!(parse_memory_mib(s), Ok(mib), "{s}");
        }
        for s in ["lots", "", "G", "2X", "-1G", "1.5G", "99999999999999999999G"] {
            assert!(parse_memory_mib(s).is_err(), "{s}");
        }
    }

    fn req(f: impl FnOnce(&mut BootRequest)) -> BootRequest {
        let mut r = BootRequest { memory: Some("64M".into()), ..Default::default() };
        f(&mut r);
        r
    }

    #[test]
    fn bad_requests_name_their_parameter() {
        let ttl = Duration::from_secs(3600);
        let cases: Vec<(BootRequest, &str)> = vec![
            (req(|r| r.memory = Some("0".into())), "memory"),
            (req(|r| r.memory = Some("lots".into())), "memory"),
            (req(|r| r.memory = Some("1000T".into())), "memory"),
            (req(|r| r.cpus = Some(0)), "cpus"),
            (req(|r| r.cpus = Some(65)), "cpus"),
            (req(|r| r.firmware = Some("other".into())), "firmware"),
            (req(|r| r.expect = Some("(".into())), "expect"),
            (req(|r| r.expect = Some(String::new())), "expect"),
            (req(|r| r.timeout_seconds = Some(0)), "timeout_seconds"),
            (req(|r| r.timeout_seconds = Some(3600)), "timeout_seconds"),
        ];
        for (r, param) in cases {
            let e = plan(&r, ttl).expect_err(param);
            assert_eq!(e.0, param, "{r:?}: {e:?}");
        }
    }

    #[test]
    fn defaults_fill_what_is_not_asked() {
        if find_program(QEMU).is_none() {
            eprintln!("SKIP: {QEMU} is not installed");
            return;
        }
        let p = plan(&req(|_| {}), Duration::from_secs(3600)).expect("plan");
        assert_eq!((p.memory_mib, p.cpus, p.firmware, p.timeout), (64, 2, Firmware::Bios, Duration::from_secs(300)));
        assert!(p.expect.is_match("host login: "));
    }
}
