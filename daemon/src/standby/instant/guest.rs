//! Mode `boot`: the recovered machine in a QEMU guest on the standby, started as a boot
//! drill's guest is (no network, serial console captured, QMP, KVM or else TCG), and the point
//! copied onto the targets underneath it by QEMU's own `blockdev-mirror`.
//!
//! While copying, each disk of the guest is a qcow2 overlay in the session's directory (the
//! guest's writes, kept by QEMU, durable at the guest's flushes) over the point's read-only
//! NBD export. Each target is added as a `raw` node over `file` or `host_device`, and one
//! mirror job per disk (`sync: full`, the copy's bandwidth cap as its `speed`) copies the
//! guest's view (point + overlay) onto it; QEMU sends the guest's new writes to both. When
//! every job is ready, `block-job-complete` pivots the guest onto the targets without a
//! restart; QEMU then drops the overlays and their NBD connections, and the session releases
//! them. Once on the targets a (re)started guest boots from the targets directly.
//!
//! The failover opened and checked the targets (a block device exclusively, so a mounted one
//! is refused) and closes them before QEMU opens them: from then on QEMU holds them (its own
//! image locking), not drpair.

use super::live::Session;
use super::phase;
use crate::standby::Standby;
use crate::standby::drill::guest::console::Console;
use crate::standby::drill::guest::qemu::{self, Accel, GuestFiles};
use crate::standby::drill::guest::qmp::Qmp;
use crate::standby::drill::guest::shutdown;
use crate::standby::drill::guest::{BootPlan, KVM_UNUSABLE};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

pub const CONSOLE_LOG: &str = "console.log";
const QEMU_LOG: &str = "qemu.log";
const QMP_WAIT: Duration = Duration::from_secs(15);

/// What the guest runs from.
pub struct GuestDisks {
    /// The targets (resolved paths), one per disk.
    pub targets: Vec<String>,
    pub sizes: Vec<u64>,
    /// While copying: the point's read-only exports (`nbd://…`), one per disk.
    pub point_uris: Vec<String>,
}

/// How the guest's run ended.
pub enum GuestEnd {
    /// The session was asked to stop: how the guest went down.
    Stopped(drpair_types::GuestStop),
    /// QEMU exited by itself (the guest powered off, or crashed): when, and what it said.
    Exited(String),
    /// The guest could not run or the copy failed.
    Failed(String),
}

pub fn overlay(dir: &Path, i: usize) -> PathBuf {
    dir.join(format!("disk{i}.qcow2"))
}

/// `nbd://HOST:PORT/NAME` split.
fn nbd_parts(uri: &str) -> Option<(String, String, String)> {
    let rest = uri.strip_prefix("nbd://")?;
    let (hostport, name) = rest.split_once('/')?;
    let (host, port) = hostport.rsplit_once(':')?;
    Some((host.to_string(), port.to_string(), name.to_string()))
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| *c != '"' && *c != '\n').collect()
}

/// The guest's `-readconfig` drives: the overlays over the point while copying, else the targets.
pub fn drives(dir: &Path, d: &GuestDisks, copying: bool) -> String {
    let mut s = String::new();
    for i in 0..d.targets.len() {
        s.push_str(&format!("[drive \"disk{i}\"]\n  if = \"virtio\"\n"));
        if copying {
            let (host, port, name) = nbd_parts(&d.point_uris[i]).unwrap_or_default();
            s.push_str(&format!(
                "  file = \"{}\"\n  format = \"qcow2\"\n  backing.driver = \"raw\"\n  backing.file.driver = \"nbd\"\n  backing.file.server.type = \"inet\"\n  backing.file.server.host = \"{}\"\n  backing.file.server.port = \"{}\"\n  backing.file.export = \"{}\"\n\n",
                clean(&overlay(dir, i).to_string_lossy()),
                clean(&host),
                clean(&port),
                clean(&name)
            ));
        } else {
            s.push_str(&format!("  file = \"{}\"\n  format = \"raw\"\n\n", clean(&d.targets[i])));
        }
    }
    s
}

/// Creates the overlays that do not exist yet (a resume keeps the guest's writes).
pub fn make_overlays(dir: &Path, d: &GuestDisks) -> Result<(), String> {
    for (i, size) in d.sizes.iter().enumerate() {
        let p = overlay(dir, i);
        if p.exists() {
            continue;
        }
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2"])
            .arg(&p)
            .arg(size.to_string())
            .output()
            .map_err(|e| format!("qemu-img: {e}"))?;
        if !out.status.success() {
            return Err(format!("qemu-img create {}: {}", p.display(), String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    Ok(())
}

/// Runs the guest of `s` until it ends; `copying` when the copy has not completed.
pub fn run(sb: &Arc<Standby>, s: &Arc<Session>, plan: &BootPlan, d: &GuestDisks, mut copying: bool) -> GuestEnd {
    let dir = s.job.lock().expect("failover").instant.as_ref().expect("instant").dir.clone();
    let mut console = match Console::open(&dir.join(CONSOLE_LOG)) {
        Ok(c) => c,
        Err(e) => return GuestEnd::Failed(format!("the console log in {}: {e}", dir.display())),
    };
    let mut accel = crate::standby::drill::guest::accel();
    loop {
        if copying && let Err(e) = make_overlays(&dir, d) {
            return GuestEnd::Failed(e);
        }
        match attempt(sb, s, plan, d, &dir, accel, &mut copying, &mut console) {
            Some(end) => return end,
            None => {
                KVM_UNUSABLE.store(true, Ordering::Relaxed);
                accel = Accel::Tcg;
                let note = "KVM (/dev/kvm) could not run the guest (QEMU stopped it with internal-error); it was started again under TCG (emulation)";
                console.note(note);
                tracing::warn!("instant failover: {note}");
                let mut j = s.job.lock().expect("failover");
                if let Some(g) = j.instant.as_mut().and_then(|i| i.view.guest.as_mut()) {
                    g.note = Some(note.into());
                }
            }
        }
    }
}

fn set_guest(s: &Session, f: impl FnOnce(&mut drpair_types::InstantGuest)) {
    let mut j = s.job.lock().expect("failover");
    if let Some(g) = j.instant.as_mut().and_then(|i| i.view.guest.as_mut()) {
        f(g);
    }
}

/// Starts the mirror jobs, one per disk.
fn start_mirrors(q: &mut Qmp, d: &GuestDisks, rate: Option<u64>) -> Result<(), String> {
    for (i, t) in d.targets.iter().enumerate() {
        let dev = std::fs::metadata(t).map(|m| std::os::unix::fs::FileTypeExt::is_block_device(&m.file_type()));
        let driver = if dev.unwrap_or(false) { "host_device" } else { "file" };
        let node = json!({"driver": "raw", "node-name": format!("tgt{i}"), "file": {"driver": driver, "filename": t}});
        q.execute("blockdev-add", Some(node)).map_err(|e| format!("adding target {t}: {e}"))?;
        let mut args = json!({"job-id": format!("copy{i}"), "device": format!("disk{i}"), "target": format!("tgt{i}"), "sync": "full"});
        if let Some(r) = rate {
            args["speed"] = json!((r / d.targets.len() as u64).max(1));
        }
        q.execute("blockdev-mirror", Some(args)).map_err(|e| format!("mirroring disk {i} onto {t}: {e}"))?;
    }
    Ok(())
}

/// One QEMU process. None: KVM could not run the guest (start again under TCG).
#[allow(clippy::too_many_arguments)]
fn attempt(
    sb: &Arc<Standby>,
    s: &Arc<Session>,
    plan: &BootPlan,
    d: &GuestDisks,
    dir: &Path,
    accel: Accel,
    copying: &mut bool,
    console: &mut Console,
) -> Option<GuestEnd> {
    let (pair, rate) = {
        let j = s.job.lock().expect("failover");
        (j.pair_id.to_string(), j.instant.as_ref().and_then(|i| i.view.copy_rate_bytes_per_sec))
    };
    let files = GuestFiles::in_dir(dir);
    let name = format!("drpair-instant-{pair}");
    let mut child = match qemu::spawn_config(&name, plan, accel, &files, &drives(dir, d, *copying), &dir.join(QEMU_LOG))
    {
        Ok(c) => c,
        Err(e) => return Some(GuestEnd::Failed(format!("could not start QEMU: {e}"))),
    };
    s.guest_pid.store(child.id() as i32, Ordering::Release);
    set_guest(s, |g| {
        g.running = true;
        g.accel = accel.name().into();
        g.stopped = None;
    });
    tracing::info!(%pair, pid = child.id(), accel = accel.name(), copying = *copying, "instant failover: guest started");
    let rx = qemu::console_output(&mut child);
    let t0 = Instant::now();
    let mut q = match Qmp::connect(&files.qmp, QMP_WAIT) {
        Ok(q) => q,
        Err(e) => {
            end(&mut child);
            return Some(GuestEnd::Failed(format!("QEMU did not answer on QMP: {e}")));
        }
    };
    if *copying && let Err(e) = start_mirrors(&mut q, d, rate) {
        end(&mut child);
        return Some(GuestEnd::Failed(e));
    }
    let (mut matched, mut completing, mut asked) = (false, false, Instant::now());
    let copy_t0 = Instant::now();
    loop {
        let mut got = false;
        if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
            console.push(&b);
            got = true;
        }
        while let Ok(b) = rx.try_recv() {
            console.push(&b);
        }
        if got {
            let hit = !matched && console.matches(&plan.expect);
            let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            set_guest(s, |g| {
                g.console_tail = console.tail();
                if hit {
                    g.boot_ms = Some(ms);
                }
            });
            if hit {
                matched = true;
                tracing::info!(%pair, boot_ms = ms, "instant failover: the guest's console matched");
            }
        }
        if s.stopping.load(Ordering::Acquire) {
            let how = shutdown::shut_down(&mut child, Some(&mut q), shutdown::POWERDOWN_WAIT, || {
                if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
                    console.push(&b);
                }
            });
            while let Ok(b) = rx.try_recv() {
                console.push(&b);
            }
            console.note(&format!("the guest was stopped: {}", how.label()));
            tracing::info!(%pair, stopped = ?how, "instant failover: the guest is stopped: {}", how.label());
            set_guest(s, |g| {
                g.console_tail = console.tail();
                g.running = false;
                g.stopped = Some(how);
            });
            return Some(GuestEnd::Stopped(how));
        }
        if let Ok(Some(status)) = child.try_wait() {
            while let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
                console.push(&b);
            }
            set_guest(s, |g| g.console_tail = console.tail());
            return Some(GuestEnd::Exited(format!("QEMU exited ({status})")));
        }
        if asked.elapsed() < Duration::from_millis(500) {
            continue;
        }
        asked = Instant::now();
        if !matched && t0.elapsed() >= plan.timeout {
            matched = true;
            let note = format!("no match for '{}' on the console within {:?}", plan.expect.as_str(), plan.timeout);
            console.note(&note);
            set_guest(s, |g| g.note = Some(note));
        }
        let state = q.status().unwrap_or_default();
        if state == "internal-error" && accel == Accel::Kvm {
            end(&mut child);
            return None;
        }
        if !*copying {
            continue;
        }
        let jobs = match q.execute("query-block-jobs", None) {
            Ok(v) => v.as_array().cloned().unwrap_or_default(),
            Err(e) => {
                end(&mut child);
                return Some(GuestEnd::Failed(format!("QMP query-block-jobs: {e}")));
            }
        };
        let total: u64 = d.sizes.iter().sum();
        if completing {
            if jobs.is_empty() {
                *copying = false;
                released(sb, s, dir, d.targets.len());
            }
            continue;
        }
        if jobs.len() < d.targets.len() {
            end(&mut child);
            return Some(GuestEnd::Failed(format!(
                "a mirror job ended before it was ready (QEMU said: {})",
                std::fs::read_to_string(dir.join(QEMU_LOG)).unwrap_or_default().trim()
            )));
        }
        // Bytes copied: each job's share of its disk (its length grows with the guest's writes).
        let done: u64 = jobs
            .iter()
            .zip(&d.sizes)
            .map(|(j, size)| {
                let (off, len) = (j["offset"].as_u64().unwrap_or(0), j["len"].as_u64().unwrap_or(1).max(1));
                u64::try_from(u128::from(off) * u128::from(*size) / u128::from(len)).unwrap_or(*size)
            })
            .sum();
        let ready = jobs.iter().all(|j| j["ready"].as_bool() == Some(true));
        phase::show(s, if ready { total } else { done.min(total.saturating_sub(1)) }, copy_t0.elapsed().as_secs_f64());
        if ready {
            for i in 0..d.targets.len() {
                if let Err(e) = q.execute("block-job-complete", Some(json!({"device": format!("copy{i}")}))) {
                    end(&mut child);
                    return Some(GuestEnd::Failed(format!("pivoting disk {i} onto its target: {e}")));
                }
            }
            completing = true;
        }
    }
}

/// The guest runs on the targets: the overlays and the point's exports are released.
fn released(sb: &Standby, s: &Session, dir: &Path, disks: usize) {
    s.stop_server();
    for i in 0..disks {
        let _ = std::fs::remove_file(overlay(dir, i));
    }
    phase::on_targets(
        sb,
        s,
        "QEMU's blockdev-mirror completed and the guest pivoted onto the targets without a restart",
    );
}

fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// While copying each disk is its qcow2 overlay over the point's export; on the targets,
    /// the targets raw. Quotes cannot break out of the config's values.
    #[test]
    fn the_guest_runs_from_its_overlays_then_from_the_targets() {
        let d = GuestDisks {
            targets: vec!["/dev/vg/a".into(), "/srv/b\".img".into()],
            sizes: vec![1 << 20, 2 << 20],
            point_uris: vec!["nbd://127.0.0.1:4000/disk0-s3cret".into(), "nbd://127.0.0.1:4000/disk1-s3cret".into()],
        };
        let dir = Path::new("/data/instant/web-01");
        let copying = drives(dir, &d, true);
        for needle in [
            "[drive \"disk1\"]",
            "file = \"/data/instant/web-01/disk1.qcow2\"",
            "format = \"qcow2\"",
            "backing.file.driver = \"nbd\"",
            "backing.file.server.port = \"4000\"",
            "backing.file.export = \"disk1-s3cret\"",
        ] {
            assert!(copying.contains(needle), "{needle} in {copying}");
        }
        let on = drives(dir, &d, false);
        assert!(on.contains("file = \"/dev/vg/a\"\n  format = \"raw\"") && !on.contains("nbd"), "{on}");
        assert!(on.contains("file = \"/srv/b.img\""), "{on}");
        assert_eq!(nbd_parts("nbd://[::1]:10809/x"), Some(("[::1]".into(), "10809".into(), "x".into())));
    }
}
