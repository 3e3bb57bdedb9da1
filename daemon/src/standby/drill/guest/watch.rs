//! One guest from start to end, on its own thread: QEMU started, its console read into the
//! drill's evidence and matched against the pattern, its run state polled through QMP; the
//! boot passes at the first match (a screenshot taken), or fails with its reason (the time
//! limit, QEMU's exit, the guest stopped, the drill ended) and a screenshot when QEMU still
//! runs. A failed guest is stopped at once; a passed one runs until the drill ends.

use super::BootPlan;
use super::console::Console;
use super::ctl::{GuestCtl, KVM_UNUSABLE};
use super::qemu::{self, Accel, GuestFiles};
use super::qmp::Qmp;
use super::shutdown;
use crate::standby::Standby;
use crate::standby::drill::evidence;
use crate::standby::drill::live::Live;
use drpair_types::BootState;
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the guest's run state is asked while it boots.
const STATUS_EVERY: Duration = Duration::from_millis(500);
/// How long QEMU may take to open its QMP socket.
const QMP_WAIT: Duration = Duration::from_secs(15);

enum Ended {
    /// The guest is gone (or never started).
    Done,
    /// KVM could not run it: start again under TCG.
    KvmFailed,
}

pub(super) fn run(sb: &Arc<Standby>, live: &Arc<Live>, ctl: &GuestCtl, plan: &BootPlan, mut accel: Accel) {
    let (id, uris) = {
        let st = live.status.lock().expect("drill");
        (st.id.clone(), st.exports.iter().map(|e| e.uri.clone()).collect::<Vec<_>>())
    };
    let ev = evidence::dir(&sb.data_dir, &id);
    let console = std::fs::create_dir_all(&ev).and_then(|()| Console::open(&ev.join(evidence::CONSOLE)));
    let mut console = match console {
        Ok(c) => c,
        Err(e) => {
            fail(sb, live, format!("could not keep the console log in {}: {e}", ev.display()), false);
            return;
        }
    };
    let files = GuestFiles::in_dir(&live.dir);
    loop {
        match attempt(sb, live, ctl, plan, accel, &id, &uris, &files, &mut console) {
            Ended::Done => break,
            Ended::KvmFailed => {
                KVM_UNUSABLE.store(true, Ordering::Relaxed);
                accel = Accel::Tcg;
                let note = "KVM (/dev/kvm) could not run the guest (QEMU stopped it with internal-error); it was started again under TCG (emulation), as later guests of this standby will be";
                tracing::warn!(drill = %id, "{note}");
                console.note(note);
                let mut st = live.status.lock().expect("drill");
                if let Some(b) = st.boot.as_mut() {
                    b.accel = accel.name().into();
                    b.note = Some(note.into());
                }
            }
        }
    }
    let mut st = live.status.lock().expect("drill");
    if let Some(b) = st.boot.as_mut() {
        b.guest_running = false;
        b.console_bytes = console.total;
    }
}

#[allow(clippy::too_many_arguments)]
fn attempt(
    sb: &Arc<Standby>,
    live: &Arc<Live>,
    ctl: &GuestCtl,
    plan: &BootPlan,
    accel: Accel,
    id: &str,
    uris: &[String],
    files: &GuestFiles,
    console: &mut Console,
) -> Ended {
    let ev = evidence::dir(&sb.data_dir, id);
    let qemu_log = ev.join(evidence::QEMU_LOG);
    let mut child = match qemu::spawn(id, plan, accel, files, uris, &qemu_log) {
        Ok(c) => c,
        Err(e) => {
            fail(sb, live, format!("could not start {}: {e}", super::plan::QEMU), false);
            return Ended::Done;
        }
    };
    ctl.pid.store(child.id() as i32, Ordering::Release);
    set_running(live, true);
    tracing::info!(drill = %id, pid = child.id(), accel = accel.name(), "guest started");
    let rx = qemu::console_output(&mut child);
    let t0 = Instant::now();
    let mut qmp = match Qmp::connect(&files.qmp, QMP_WAIT) {
        Ok(q) => Some(q),
        Err(e) => {
            end(&mut child);
            fail(
                sb,
                live,
                format!("QEMU did not answer on its QMP socket: {e}; QEMU said: {}", log_tail(&qemu_log)),
                false,
            );
            return Ended::Done;
        }
    };
    let mut booting = true;
    let mut asked = Instant::now();
    loop {
        let mut got = false;
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(b) => {
                console.push(&b);
                got = true;
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            // QEMU closed its stdout: it is ending; no spinning until it has.
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => std::thread::sleep(Duration::from_millis(100)),
        }
        while let Ok(b) = rx.try_recv() {
            console.push(&b);
        }
        if got {
            let mut st = live.status.lock().expect("drill");
            if let Some(b) = st.boot.as_mut() {
                b.console_tail = console.tail();
                b.console_bytes = console.total;
            }
        }
        if ctl.stopping.load(Ordering::Acquire) {
            // A guest still booting is failed anyway and likely cannot act on ACPI yet: ended at
            // once. One that passed runs for the operator: asked to power off first.
            let q = if booting { None } else { qmp.as_mut() };
            let how = shutdown::shut_down(&mut child, q, shutdown::POWERDOWN_WAIT, || {
                if let Ok(b) = rx.recv_timeout(Duration::from_millis(100)) {
                    console.push(&b);
                }
            });
            while let Ok(b) = rx.try_recv() {
                console.push(&b);
            }
            tracing::info!(drill = %id, stopped = ?how, "the drill's guest is stopped: {}", how.label());
            console.note(&format!("the guest was stopped: {}", how.label()));
            if let Some(b) = live.status.lock().expect("drill").boot.as_mut() {
                b.stopped = Some(how);
                b.console_tail = console.tail();
                b.console_bytes = console.total;
            }
            if booting {
                console.note("the drill ended before the console matched");
                fail(sb, live, "the drill ended before the console matched".into(), false);
            }
            return Ended::Done;
        }
        if booting && console.matches(&plan.expect) {
            let ms = u64::try_from(t0.elapsed().as_millis()).unwrap_or(u64::MAX);
            let shot = screenshot(qmp.as_mut(), &ev, id);
            booting = false;
            pass(sb, live, ms, shot, console);
            // The screen is taken; the guest runs on for the operator until the drill ends (QMP
            // kept to ask it to power off then).
            continue;
        }
        if let Ok(Some(status)) = child.try_wait() {
            // Whatever the guest printed last is still in the pipe.
            while let Ok(b) = rx.recv_timeout(Duration::from_millis(200)) {
                console.push(&b);
            }
            if booting {
                let reason = format!(
                    "QEMU exited ({status}) before the console matched; QEMU said: {}; last console lines: {}",
                    log_tail(&qemu_log),
                    lines_or_none(&console.tail())
                );
                console.note(&reason);
                fail(sb, live, reason, false);
            }
            return Ended::Done;
        }
        if !booting {
            continue;
        }
        if asked.elapsed() >= STATUS_EVERY {
            asked = Instant::now();
            let state = qmp.as_mut().and_then(|q| q.status().ok()).unwrap_or_default();
            if state == "internal-error" && accel == Accel::Kvm {
                end(&mut child);
                return Ended::KvmFailed;
            }
            if state == "internal-error" || state == "guest-panicked" {
                let shot = screenshot(qmp.as_mut(), &ev, id);
                end(&mut child);
                let reason = format!(
                    "the guest stopped ({state}) before the console matched; last console lines: {}",
                    lines_or_none(&console.tail())
                );
                console.note(&reason);
                fail(sb, live, reason, shot);
                return Ended::Done;
            }
        }
        if t0.elapsed() >= plan.timeout {
            let shot = screenshot(qmp.as_mut(), &ev, id);
            end(&mut child);
            let reason = format!(
                "no match for '{}' within {}; last console lines: {}",
                plan.expect.as_str(),
                humantime::format_duration(plan.timeout),
                lines_or_none(&console.tail())
            );
            console.note(&reason);
            fail(sb, live, reason, shot);
            return Ended::Done;
        }
    }
}

fn lines_or_none(tail: &str) -> String {
    if tail.trim().is_empty() { "(none: the console printed nothing)".into() } else { tail.replace('\n', " | ") }
}

/// The last lines QEMU wrote on stderr.
fn log_tail(path: &std::path::Path) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(4096);
    let tail = super::console::tail_of(&text[start..]);
    let lines: Vec<&str> = tail.lines().collect();
    let t = lines[lines.len().saturating_sub(4)..].join(" | ");
    if t.is_empty() { "nothing".into() } else { t }
}

/// Kills QEMU and reaps it.
fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn screenshot(qmp: Option<&mut Qmp>, ev: &std::path::Path, id: &str) -> bool {
    let Some(q) = qmp else { return false };
    match q.screendump_png(&ev.join(evidence::SCREENSHOT)) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(drill = %id, "screendump: {e}");
            false
        }
    }
}

fn set_running(live: &Live, running: bool) {
    if let Some(b) = live.status.lock().expect("drill").boot.as_mut() {
        b.guest_running = running;
    }
}

fn pass(sb: &Arc<Standby>, live: &Arc<Live>, ms: u64, shot: bool, console: &Console) {
    {
        let mut st = live.status.lock().expect("drill");
        if let Some(b) = st.boot.as_mut() {
            b.state = BootState::Passed;
            b.boot_ms = Some(ms);
            b.screenshot = shot;
            b.console_tail = console.tail();
            b.console_bytes = console.total;
        }
    }
    tracing::info!(drill = %live.status.lock().expect("drill").id, boot_ms = ms, "the guest's console matched");
    crate::standby::drill::outcome::boot_done(sb, live);
}

fn fail(sb: &Arc<Standby>, live: &Arc<Live>, reason: String, shot: bool) {
    {
        let mut st = live.status.lock().expect("drill");
        if let Some(b) = st.boot.as_mut() {
            b.state = BootState::Failed;
            b.reason = Some(reason.clone());
            b.screenshot |= shot;
            b.guest_running = false;
        }
    }
    tracing::warn!(drill = %live.status.lock().expect("drill").id, "boot failed: {reason}");
    crate::standby::drill::outcome::boot_done(sb, live);
}
