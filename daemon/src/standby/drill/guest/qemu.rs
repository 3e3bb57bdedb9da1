//! The QEMU process of a drill's guest: its command line, its drives (the drill's own NBD
//! exports, given in a `-readconfig` file so the exports' secret names stay off the process
//! list), starting it, and finding the ones a stopped standby left behind.
//!
//! The guest has no network (`-nic none`), no default devices but a VGA screen (for the
//! screendump), its first serial port on QEMU's stdout (read by the drill), a QMP socket and
//! a pidfile in the drill's scratch dir, and runs under QEMU's seccomp sandbox. It dies with
//! the thread that started it (`PR_SET_PDEATHSIG`), so a standby killed with -9 leaves no
//! guest running; the pidfile covers anything else at the next start.

use super::plan::{BootPlan, Firmware, OVMF, QEMU};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// How QEMU runs the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// The files of a guest in the drill's scratch dir.
pub struct GuestFiles {
    pub qmp: PathBuf,
    pub pidfile: PathBuf,
    pub drives: PathBuf,
}

impl GuestFiles {
    pub fn in_dir(dir: &Path) -> Self {
        GuestFiles { qmp: dir.join("qmp.sock"), pidfile: dir.join("qemu.pid"), drives: dir.join("drives.cfg") }
    }
}

/// The `-readconfig` text attaching each export (`nbd://…` URIs) as a raw virtio disk, in order.
pub fn drives_config(uris: &[String]) -> String {
    let mut s = String::new();
    for (i, uri) in uris.iter().enumerate() {
        // QEMU's config syntax quotes values with '"' and has no escapes: refuse what would break it.
        let uri: String = uri.chars().filter(|c| *c != '"' && *c != '\n').collect();
        s.push_str(&format!("[drive \"disk{i}\"]\n  file = \"{uri}\"\n  format = \"raw\"\n  if = \"virtio\"\n\n"));
    }
    s
}

/// QEMU's arguments for drill `id`.
pub fn args(id: &str, plan: &BootPlan, accel: Accel, files: &GuestFiles) -> Vec<String> {
    let mut a: Vec<String> = vec![
        "-name".into(),
        format!("drpair-drill-{id}"),
        "-machine".into(),
        format!("q35,accel={}", accel.name()),
        "-m".into(),
        plan.memory_mib.to_string(),
        "-smp".into(),
        plan.cpus.to_string(),
        "-nodefaults".into(),
        "-no-user-config".into(),
        "-display".into(),
        "none".into(),
        "-device".into(),
        "VGA".into(),
        "-nic".into(),
        "none".into(),
        "-serial".into(),
        "stdio".into(),
        "-qmp".into(),
        format!("unix:{},server=on,wait=off", files.qmp.display()),
        "-pidfile".into(),
        files.pidfile.display().to_string(),
        "-readconfig".into(),
        files.drives.display().to_string(),
        "-sandbox".into(),
        "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny".into(),
    ];
    if plan.firmware == Firmware::Uefi {
        a.extend(["-bios".into(), OVMF.into()]);
    }
    a
}

/// Starts QEMU: the drives file written (0600), stdout piped (the serial console), stderr
/// appended to `qemu_log`. The process is killed if the calling thread ends.
pub fn spawn(
    id: &str,
    plan: &BootPlan,
    accel: Accel,
    files: &GuestFiles,
    uris: &[String],
    qemu_log: &Path,
) -> std::io::Result<Child> {
    spawn_config(&format!("drpair-drill-{id}"), plan, accel, files, &drives_config(uris), qemu_log)
}

/// Starts QEMU as [`spawn`] does, named `name`, with `drives` as its `-readconfig` text (an
/// instant failover's overlays and targets).
pub fn spawn_config(
    name: &str,
    plan: &BootPlan,
    accel: Accel,
    files: &GuestFiles,
    drives: &str,
    qemu_log: &Path,
) -> std::io::Result<Child> {
    let _ = std::fs::remove_file(&files.qmp);
    let _ = std::fs::remove_file(&files.pidfile);
    let mut f = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&files.drives)?;
    f.write_all(drives.as_bytes())?;
    drop(f);
    let log = std::fs::OpenOptions::new().create(true).append(true).open(qemu_log)?;
    let mut a = args("", plan, accel, files);
    a[1] = name.to_string();
    let mut c = Command::new(QEMU);
    c.args(a).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(log);
    // SAFETY: prctl(PR_SET_PDEATHSIG) is async-signal-safe and touches no memory of the parent.
    unsafe {
        c.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    c.spawn()
}

/// The guest's serial console (its stdout) as it comes, read on a thread of its own until the
/// guest exits or the receiver is dropped.
pub fn console_output(child: &mut Child) -> crossbeam_channel::Receiver<Vec<u8>> {
    let (tx, rx) = crossbeam_channel::bounded::<Vec<u8>>(64);
    if let Some(mut out) = child.stdout.take() {
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 64 << 10];
            while let Ok(n) = std::io::Read::read(&mut out, &mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
    }
    rx
}

/// At the standby's start: kills the QEMU processes of drills that ran when it stopped, by
/// the pidfiles in `drills_dir/*/qemu.pid` (only a process whose command line names that
/// pidfile, so a recycled pid is left alone). Returns how many were killed.
pub fn kill_leftovers(drills_dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(drills_dir) else { return 0 };
    let mut n = 0;
    for e in entries.flatten() {
        let pidfile = e.path().join("qemu.pid");
        let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|s| s.trim().parse::<i32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let ours = cmdline.split(|b| *b == 0).any(|arg| arg == pidfile.as_os_str().as_encoded_bytes());
        if pid > 1 && ours {
            // SAFETY: kill(2) with a pid read from our own pidfile and checked against its
            // command line; no memory is involved.
            if unsafe { libc::kill(pid, libc::SIGKILL) } == 0 {
                tracing::warn!(pid, pidfile = %pidfile.display(), "killed a drill's guest left by the standby's stop");
                n += 1;
            }
        }
    }
    n
}

/// Whether `/dev/kvm` can be opened for use.
pub fn kvm_present() -> bool {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/kvm").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_guest_has_no_network_its_serial_on_stdout_and_drives_off_the_command_line() {
        let plan = BootPlan {
            memory_mib: 256,
            cpus: 1,
            firmware: Firmware::Bios,
            expect: regex::Regex::new("login:").unwrap(),
            timeout: Duration::from_secs(60),
        };
        let files = GuestFiles::in_dir(Path::new("/d/drills/x"));
        let a = args("x", &plan, Accel::Kvm, &files).join(" ");
        for needle in [
            "-nic none",
            "-serial stdio",
            "-nodefaults",
            "-display none",
            "accel=kvm",
            "-m 256",
            "-smp 1",
            "unix:/d/drills/x/qmp.sock",
            "-pidfile /d/drills/x/qemu.pid",
            "-readconfig /d/drills/x/drives.cfg",
            "-sandbox on",
        ] {
            assert!(a.contains(needle), "{needle} in {a}");
        }
        assert!(!a.contains("nbd://") && !a.contains("-bios"), "{a}");
        let uefi = BootPlan { firmware: Firmware::Uefi, ..plan };
        assert!(args("x", &uefi, Accel::Tcg, &files).join(" ").contains(&format!("-bios {OVMF}")));
        let cfg = drives_config(&["nbd://127.0.0.1:1/disk0-s".into(), "nbd://127.0.0.1:1/disk1-s".into()]);
        assert!(
            cfg.contains(
                "[drive \"disk1\"]\n  file = \"nbd://127.0.0.1:1/disk1-s\"\n  format = \"raw\"\n  if = \"virtio\""
            ),
            "{cfg}"
        );
    }
}
