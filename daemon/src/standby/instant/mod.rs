//! Instant recovery (`failover --instant`): the recovered disks are usable at once while the
//! point is copied onto the failover's targets underneath.
//!
//! - Mode `nbd` (no guest): the point is served as writable NBD exports an outside client
//!   attaches; the target is the overlay (a write lands on it, the chunk marked copied under
//!   its lock) and drpair's own copier fills in the chunks not copied yet (`disk.rs`,
//!   `copier.rs`, the copied-chunk map in `map.rs`). Once complete the same exports read and
//!   write the targets alone; they are served until the session is stopped.
//! - Mode `boot`: a QEMU guest runs the machine from a qcow2 overlay over the point's
//!   read-only exports, QEMU's `blockdev-mirror` copies onto the targets and pivots the guest
//!   onto them (`guest.rs`). The guest keeps running on the targets until the session is
//!   stopped or it powers off.
//!
//! The session (`live.rs`) lives until `POST …/failover/instant/stop` (refused while copying:
//! the targets do not carry the machine yet), the guest's power-off, or a failure. A standby
//! restart resumes it (`resume.rs`): mode `nbd` goes on from its saved map (the exports at the
//! same address when it is free); mode `boot` starts its guest again (QEMU dies with the
//! standby) from its overlay and mirrors from the start, or from the targets once on them.

pub mod copier;
pub mod disk;
pub mod guest;
pub mod live;
pub mod map;
pub mod phase;
pub mod pointdev;
pub mod record;
pub mod resume;
pub mod serve;

use super::Standby;
use super::drill::guest::BootPlan;
use super::failover::target::Side;
use super::pair::PairHandle;
use super::pair::results::FailoverRecord;
use super::tasks::TaskHandle;
use disk::InstantDisk;
use drpair_nbd::{BlockDev, Export};
use drpair_store::PointReader;
use drpair_types::{FailoverRequest, FailoverStatus, InstantGuest, InstantMode, InstantPhase, InstantStatus};
use live::Session;
use record::{GuestAsked, InstantRecord};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use live::Sessions;

/// A checked instant request.
pub struct Prepared {
    pub plan: Option<BootPlan>,
    pub rate: Option<u64>,
}

/// Checks the instant part of a failover request (before anything changes). None: not instant.
pub fn prepare(req: &FailoverRequest) -> Result<Option<Prepared>, (&'static str, String)> {
    if !req.instant {
        if req.boot.is_some() {
            return Err((
                "boot",
                "booting the recovered machine needs an instant failover: add --instant (\"instant\": true)".into(),
            ));
        }
        if req.copy_rate_bytes_per_sec.is_some() {
            return Err(("copy_rate_bytes_per_sec", "a copy rate is for an instant failover only".into()));
        }
        return Ok(None);
    }
    if req.copy_rate_bytes_per_sec == Some(0) {
        return Err(("copy_rate_bytes_per_sec", "0 would never copy: give a positive rate, or none".into()));
    }
    let plan = req.boot.as_ref().map(|b| super::drill::guest::plan(b, Duration::from_secs(u64::MAX))).transpose()?;
    if plan.is_some() && super::drill::guest::plan::find_program("qemu-img").is_none() {
        return Err(("boot", "qemu-img is not installed on this standby (Debian: apt install qemu-utils)".into()));
    }
    Ok(Some(Prepared { plan, rate: req.copy_rate_bytes_per_sec }))
}

/// The instant part of a new failover's record.
pub fn record(sb: &Standby, pair: &str, p: &Prepared) -> InstantRecord {
    let dir = sb.data_dir.join("instant").join(pair);
    let guest = p.plan.as_ref().map(|plan| InstantGuest {
        running: false,
        accel: super::drill::guest::accel().name().into(),
        memory_mib: plan.memory_mib,
        cpus: plan.cpus,
        firmware: plan.firmware.name().into(),
        expect: plan.expect.as_str().into(),
        boot_ms: None,
        console_tail: String::new(),
        console_log: dir.join(guest::CONSOLE_LOG).display().to_string(),
        note: None,
        stopped: None,
    });
    InstantRecord {
        view: InstantStatus {
            mode: if p.plan.is_some() { InstantMode::Boot } else { InstantMode::Nbd },
            phase: InstantPhase::Copying,
            exports: Vec::new(),
            usable_ms: 0.0,
            on_targets_at: None,
            copy_rate_bytes_per_sec: p.rate,
            resumed: 0,
            guest,
        },
        asked: p.plan.as_ref().map(|plan| GuestAsked {
            memory_mib: plan.memory_mib,
            cpus: plan.cpus,
            firmware: plan.firmware.name().into(),
            expect: plan.expect.as_str().into(),
            timeout_seconds: plan.timeout.as_secs(),
        }),
        dir,
        addr: None,
        secret: drpair_tls::random_secret(),
    }
}

/// Starts the session of the failover `job` (its record holds the instant part): exports
/// served, then the copy (and the guest) on a thread of its own. `sides` are the targets
/// opened (mode `nbd` serves them; mode `boot` closes them for QEMU). `fresh`: a new
/// failover (the session's directory is emptied first), else a resume.
#[allow(clippy::too_many_arguments)]
pub fn spawn(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    job: Arc<Mutex<FailoverRecord>>,
    sides: Vec<Side>,
    plan: Option<BootPlan>,
    requested: Instant,
    task: TaskHandle,
    fresh: bool,
) -> Result<(), String> {
    let (pair, epoch, inst) = {
        let j = job.lock().expect("failover");
        (j.pair_id.to_string(), j.epoch, j.instant.clone().expect("an instant failover"))
    };
    let (pair_no, disks) = {
        let r = h.record.lock().expect("record");
        (r.pair_no, r.geometries_at(epoch))
    };
    let dir = inst.dir.clone();
    if fresh {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copying = inst.view.phase == InstantPhase::Copying;
    let reader =
        |i: usize| PointReader::new(&sb.store, pair_no, u32::try_from(i).expect("a disk index"), disks[i], epoch);
    let mut instant_disks = Vec::new();
    let mut devs: Vec<Arc<dyn BlockDev>> = Vec::new();
    if plan.is_none() {
        for (i, side) in sides.into_iter().enumerate() {
            let d = InstantDisk::open(reader(i), side, dir.join(format!("disk{i}.copied")))
                .map_err(|e| format!("disk {i}: {e}"))?;
            let d = Arc::new(d);
            devs.push(d.clone());
            instant_disks.push(d);
        }
    } else {
        drop(sides);
        if copying {
            for i in 0..disks.len() {
                let ra = super::drill::readahead::ReadAhead::new(reader(i)).map_err(|e| e.to_string())?;
                devs.push(Arc::new(pointdev::PointDev(ra)));
            }
        }
    }
    let s = Arc::new(Session::new(h.clone(), job.clone(), instant_disks, task));
    if !devs.is_empty() {
        let exports: Vec<Export> = devs
            .into_iter()
            .enumerate()
            .map(|(i, dev)| Export { name: format!("disk{i}-{}", inst.secret), dev, read_only: plan.is_some() })
            .collect();
        let names: Vec<String> = exports.iter().map(|e| e.name.clone()).collect();
        let server = serve::Server::start(inst.addr.as_deref(), exports, &format!("instant-{pair}"))
            .map_err(|e| format!("serving the exports: {e}"))?;
        let addr = server.addr;
        let uris: Vec<String> = names.iter().map(|n| format!("nbd://{addr}/{n}")).collect();
        *s.server.lock().expect("server") = Some(server);
        let mut j = job.lock().expect("failover");
        let i = j.instant.as_mut().expect("instant");
        i.addr = Some(addr.to_string());
        i.view.exports = if plan.is_none() { uris.clone() } else { Vec::new() };
        drop(j);
        if plan.is_some() {
            return start_worker(sb, s, plan, requested, uris, pair);
        }
    }
    start_worker(sb, s, plan, requested, Vec::new(), pair)
}

fn start_worker(
    sb: &Arc<Standby>,
    s: Arc<Session>,
    plan: Option<BootPlan>,
    requested: Instant,
    point_uris: Vec<String>,
    pair: String,
) -> Result<(), String> {
    {
        let mut j = s.job.lock().expect("failover");
        let i = j.instant.as_mut().expect("instant");
        i.view.usable_ms = (requested.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    }
    sb.instant.map.lock().expect("sessions").insert(pair.clone(), s.clone());
    phase::save(sb, &s);
    let sb2 = sb.clone();
    let spawned = std::thread::Builder::new().name(format!("instant-{pair}")).spawn(move || {
        match plan {
            None => run_nbd(&sb2, &s),
            Some(plan) => run_boot(&sb2, &s, &plan, point_uris),
        }
        s.finished();
    });
    spawned.map(|_| ()).map_err(|e| format!("starting the session's thread: {e}"))
}

fn run_nbd(sb: &Arc<Standby>, s: &Arc<Session>) {
    let (copying, rate) = {
        let j = s.job.lock().expect("failover");
        let i = j.instant.as_ref().expect("instant");
        (i.view.phase == InstantPhase::Copying, i.view.copy_rate_bytes_per_sec)
    };
    if !copying {
        return;
    }
    let t0 = Instant::now();
    match copier::copy_all(s, rate, |done| phase::show(s, done, t0.elapsed().as_secs_f64())) {
        Ok(true) => phase::on_targets(sb, s, "every chunk is on the targets; the exports read and write them alone"),
        Ok(false) => {}
        Err(e) => phase::end(
            sb,
            s,
            InstantPhase::Failed,
            format!("the copy onto the targets failed: {e}; the exports are closed and the pair stays fenced"),
        ),
    }
}

fn run_boot(sb: &Arc<Standby>, s: &Arc<Session>, plan: &BootPlan, point_uris: Vec<String>) {
    let (targets, copying, epoch) = {
        let j = s.job.lock().expect("failover");
        (j.targets.clone(), j.instant.as_ref().is_some_and(|i| i.view.phase == InstantPhase::Copying), j.epoch)
    };
    let sizes = s.pair.record.lock().expect("record").geometries_at(epoch).iter().map(|g| g.size_bytes).collect();
    // The paths as the failover's check resolved them (links followed).
    let resolved = targets
        .iter()
        .map(|t| {
            super::paths::check(t, &sb.allowed_paths, "targets")
                .map_or_else(|_| t.clone(), |p| p.to_string_lossy().into_owned())
        })
        .collect();
    let disks = guest::GuestDisks { targets: resolved, sizes, point_uris };
    let end = guest::run(sb, s, plan, &disks, copying);
    let on_targets =
        s.job.lock().expect("failover").instant.as_ref().is_some_and(|i| i.view.phase == InstantPhase::OnTargets);
    let (phase, message) = match end {
        guest::GuestEnd::Stopped(how) => (
            InstantPhase::Ended,
            match how {
                drpair_types::GuestStop::Powerdown => {
                    "stopped: the guest powered off when asked (ACPI); the targets hold the recovered disks".to_string()
                }
                drpair_types::GuestStop::Forced => format!(
                    "stopped: the guest did not power off within {} s of the ACPI request and was forced off (QMP quit); the targets hold the recovered disks as of a crash",
                    crate::standby::drill::guest::shutdown::POWERDOWN_WAIT.as_secs()
                ),
            },
        ),
        guest::GuestEnd::Exited(how) if on_targets => {
            (InstantPhase::Ended, format!("the guest stopped ({how}); the targets hold the recovered disks"))
        }
        guest::GuestEnd::Exited(how) => (
            InstantPhase::Failed,
            format!(
                "the guest stopped ({how}) before the copy completed: the targets are incomplete; its writes are in the overlays in the session's directory; the pair stays fenced"
            ),
        ),
        guest::GuestEnd::Failed(why) => {
            (InstantPhase::Failed, format!("instant failover failed: {why}; the pair stays fenced"))
        }
    };
    phase::end(sb, s, phase, message);
}

/// Why a session cannot be stopped.
#[derive(Debug)]
pub enum StopError {
    NotRunning(String),
    Copying(String),
}

/// Ends the pair's instant session once the targets carry the machine: its guest asked to
/// power off (ACPI, QMP `system_powerdown`) and ended with QMP `quit` if it has not within
/// `POWERDOWN_WAIT` (recorded as `guest.stopped`), or its exports closed after a last save. Returns the failover as it ended.
pub fn stop(sb: &Standby, pair: &str, by: &str) -> Result<FailoverStatus, StopError> {
    let s = sb
        .instant
        .get(pair)
        .ok_or_else(|| StopError::NotRunning(format!("pair '{pair}' has no instant failover session running")))?;
    let (phase, pct, boot) = {
        let j = s.job.lock().expect("failover");
        let i = j.instant.as_ref().expect("instant");
        (i.view.phase, j.progress_percent, i.view.mode == InstantMode::Boot)
    };
    if phase == InstantPhase::Copying {
        return Err(StopError::Copying(format!(
            "pair '{pair}': the copy onto the targets is at {pct:.1}%: the targets do not carry the machine yet; stop it once the failover is done"
        )));
    }
    s.stopping.store(true, Ordering::Release);
    if boot {
        let wait = crate::standby::drill::guest::shutdown::POWERDOWN_WAIT + Duration::from_secs(15);
        if !s.wait_finished(wait) {
            let pid = s.guest_pid.load(Ordering::Acquire);
            if pid > 1 {
                // SAFETY: kill(2) of the QEMU process this session started; no memory involved.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            s.wait_finished(Duration::from_secs(5));
        }
    } else {
        s.stop_server();
        for d in &s.disks {
            if let Err(e) = d.save() {
                tracing::error!(%pair, "instant failover: last save of {}: {e}", d.target_path().display());
            }
        }
        phase::end(
            sb,
            &s,
            InstantPhase::Ended,
            format!("stopped by {by}: the exports are closed; the targets hold the recovered disks"),
        );
    }
    let view = s.job.lock().expect("failover").to_view();
    Ok(view)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(f: impl FnOnce(&mut FailoverRequest)) -> FailoverRequest {
        let mut r = FailoverRequest { latest: true, targets: vec!["/dev/sdx".into()], ..Default::default() };
        f(&mut r);
        r
    }

    /// The instant options are refused where they mean nothing, each naming its parameter.
    #[test]
    fn instant_options_are_checked_before_anything_starts() {
        assert!(prepare(&req(|_| {})).unwrap().is_none(), "a plain failover");
        let e = prepare(&req(|r| r.boot = Some(Default::default()))).err().unwrap();
        assert!(e.0 == "boot" && e.1.contains("--instant"), "{e:?}");
        let e = prepare(&req(|r| r.copy_rate_bytes_per_sec = Some(1))).err().unwrap();
        assert_eq!(e.0, "copy_rate_bytes_per_sec");
        let e = prepare(&req(|r| {
            r.instant = true;
            r.copy_rate_bytes_per_sec = Some(0);
        }))
        .err()
        .unwrap();
        assert_eq!(e.0, "copy_rate_bytes_per_sec");
        let p = prepare(&req(|r| r.instant = true)).unwrap().expect("instant");
        assert!(p.plan.is_none() && p.rate.is_none());
        let bad = req(|r| {
            r.instant = true;
            r.boot = Some(drpair_types::BootRequest { cpus: Some(0), ..Default::default() });
        });
        assert_eq!(prepare(&bad).err().unwrap().0, "cpus");
    }
}
