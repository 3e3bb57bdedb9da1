//! [`TracefsTracker`]: setting up or taking over the instance, cuts, clean stops.

use super::TracefsConfig;
use super::device::{DiskDevice, Target};
use super::drain::{Drainer, Reader, Shared, lock};
use super::format::{CompleteFormat, PageLayout};
use super::instance::{self, EVENT_DIR, Incarnation, Instance, Settings};
use super::loss::Loss;
use super::pending::Pending;
use super::state::{self, SavedCpu, SavedDisk, SavedState};
use crate::changemap::ChangeMap;
use crate::tracker::{Collected, TrackError, Tracker, TrackerStats};
use drpair_types::{Consistency, Epoch};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

const NAME: &str = "tracefs";

/// Why `start` could not take over the previous run's record.
const NO_RECORD: &str =
    "no tracking record from a previous run (first start with tracefs, or the state file is missing)";
const UNCLEAN: &str = "the agent did not stop cleanly: changes it had read from the kernel but not recorded are lost";
const REBOOTED: &str =
    "the server rebooted since the agent last stopped: writes made before this start were not tracked";
const CHANGED: &str = "the tracked disks, their chunk size or the tracefs buffer size changed since the agent last \
                       stopped: writes made while it was stopped were not tracked for this setup";

fn unavailable(reason: impl Into<String>) -> TrackError {
    TrackError::Unavailable { tracker: NAME, reason: reason.into() }
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> TrackError {
    let what = what.into();
    move |source| TrackError::Io { tracker: NAME, what, source }
}

/// Tracker reading `block:block_rq_complete` from a private tracefs instance. See the
/// [module docs](super).
#[derive(Debug)]
pub struct TracefsTracker {
    cfg: TracefsConfig,
    devices: Vec<DiskDevice>,
    instance: Instance,
    running: Option<Running>,
    last_stats: TrackerStats,
}

/// A started tracker. Dropping it stops the drainer (the [`Drainer`]'s drop) and closes the
/// pipes, and writes nothing: only [`Tracker::stop`] records a clean stop.
#[derive(Debug)]
struct Running {
    shared: Arc<Mutex<Shared>>,
    drainer: Drainer,
    /// The state file as this run wrote it at start (not clean).
    record: SavedState,
}

impl TracefsTracker {
    /// Checks, without changing anything, that the tracker can work: every disk is a block
    /// device (resolved to its whole disk and position), tracefs is mounted at the configured
    /// root with the event and instances, and we may create instances.
    pub fn new(cfg: TracefsConfig) -> Result<Self, TrackError> {
        if cfg.disks.is_empty() {
            return Err(unavailable("no disks to track"));
        }
        let name = cfg.instance.as_str();
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(unavailable(format!("'{name}' cannot name a tracefs instance")));
        }
        let devices = cfg
            .disks
            .iter()
            .map(|d| DiskDevice::resolve(d, Path::new("/sys")))
            .collect::<Result<Vec<_>, _>>()
            .map_err(unavailable)?;
        check_tracefs(&cfg.tracefs_root).map_err(unavailable)?;
        let instance = Instance::new(&cfg.tracefs_root, &cfg.instance);
        Ok(Self { cfg, devices, instance, running: None, last_stats: TrackerStats::default() })
    }

    /// The disks as resolved at [`new`](Self::new), in map order.
    pub fn devices(&self) -> &[DiskDevice] {
        &self.devices
    }

    /// The instance directory.
    pub fn instance_dir(&self) -> &Path {
        &self.instance.dir
    }

    /// The kernel filter the instance uses.
    pub fn filter(&self) -> String {
        instance::filter_for(&self.devices.iter().map(DiskDevice::disk_kernel_dev).collect::<Vec<_>>())
    }

    /// Stops without recording a clean stop, then removes the instance and the state file (for
    /// uninstall and tests).
    pub fn remove(mut self) -> Result<(), TrackError> {
        drop(self.running.take());
        Self::remove_instance(&self.cfg)
    }

    /// Removes the instance named by `cfg` (if any) and its state file (if any). Fails while
    /// another process holds the instance's pipes open.
    pub fn remove_instance(cfg: &TracefsConfig) -> Result<(), TrackError> {
        let inst = Instance::new(&cfg.tracefs_root, &cfg.instance);
        inst.remove().map_err(io_err(format!("removing {}", inst.dir.display())))?;
        state::remove(&cfg.state_file).map_err(io_err(format!("removing {}", cfg.state_file.display())))
    }

    /// The maps must be one per disk, of the chunk counts the pending sets were made for.
    fn check_maps(&self, maps: &[ChangeMap], expected: Option<&[SavedDisk]>) -> Result<(), TrackError> {
        if maps.len() != self.devices.len() {
            let msg = format!("given {} change maps for {} disks", maps.len(), self.devices.len());
            return Err(io_err("checking the change maps")(io::Error::new(io::ErrorKind::InvalidInput, msg)));
        }
        if let Some(disks) = expected {
            for (i, (map, d)) in maps.iter().zip(disks).enumerate() {
                if map.chunk_count() != d.chunks || map.geometry().chunk_size.shift() != d.chunk_shift {
                    let msg = format!("the change map of disk {i} changed geometry since start");
                    return Err(io_err("checking the change maps")(io::Error::new(io::ErrorKind::InvalidInput, msg)));
                }
            }
        }
        Ok(())
    }

    /// Whether the previous run's record can be taken over; else why not.
    fn adoptable(
        &self,
        previous: Result<Option<SavedState>, String>,
        boot_id: &str,
        disks: &[SavedDisk],
    ) -> Result<SavedState, String> {
        let s = match previous {
            Ok(Some(s)) => s,
            Ok(None) => return Err(NO_RECORD.into()),
            Err(why) => return Err(format!("the tracking record from the previous run cannot be used: {why}")),
        };
        if !s.clean {
            return Err(UNCLEAN.into());
        }
        if s.boot_id != boot_id {
            return Err(REBOOTED.into());
        }
        let same_disks = s.disks.len() == disks.len() && s.disks.iter().zip(disks).all(|(a, b)| a.same_as(b));
        if s.instance != self.cfg.instance || s.buffer_kib != self.cfg.buffer_kib || !same_disks {
            return Err(CHANGED.into());
        }
        let gone =
            || format!("the tracefs instance {} disappeared or was changed while the agent was stopped", s.instance);
        if !self.instance.exists() {
            return Err(gone());
        }
        match (self.instance.settings(), self.instance.incarnation()) {
            (Ok(now), Ok(inc)) if now == s.settings && inc == s.incarnation && now.enabled && now.tracing_on => Ok(s),
            _ => Err(gone()),
        }
    }

    /// Removes any instance of our name and creates it afresh, set up.
    fn create_fresh(&self) -> Result<(Settings, Incarnation), TrackError> {
        let dir = self.instance.dir.display().to_string();
        self.instance.remove().map_err(io_err(format!("removing the previous instance {dir}")))?;
        self.instance.create().map_err(io_err(format!("creating {dir}")))?;
        let filter = self.filter();
        let set_up = self
            .instance
            .configure(self.cfg.buffer_kib, &filter)
            .map_err(io_err(format!("setting up {dir}")))
            .and_then(|settings| {
                if settings.filter != filter || !settings.enabled || !settings.tracing_on {
                    return Err(unavailable(format!(
                        "{dir} did not take its settings (filter '{}', enabled {}, tracing on {})",
                        settings.filter, settings.enabled, settings.tracing_on
                    )));
                }
                let inc = self.instance.incarnation().map_err(io_err(format!("stat {dir}")))?;
                Ok((settings, inc))
            });
        if set_up.is_err() {
            let _ = self.instance.remove();
        }
        set_up
    }

    /// Checks that no one changed the instance's settings since start (an event disabled or
    /// a filter replaced would silently lose events); if someone did, puts them back and
    /// returns the loss to report.
    fn check_settings(&self, expected: &Settings) -> Option<String> {
        let dir = self.instance.dir.display();
        let now = match self.instance.settings() {
            Ok(now) if now == *expected => return None,
            Ok(now) => now,
            Err(e) => return Some(format!("cannot read the settings of {dir}: {e}")),
        };
        let restored = match self.instance.configure(self.cfg.buffer_kib, &expected.filter) {
            Ok(back) if back == *expected => "put back",
            Ok(_) | Err(_) => "putting them back failed",
        };
        Some(format!(
            "the settings of {dir} were changed by someone else (filter '{}', enabled {}, tracing on {}, buffer \
             {} KiB); {restored}",
            now.filter, now.enabled, now.tracing_on, now.buffer_size_kb
        ))
    }

    /// Opens the pipes and builds the shared state. `baseline` is the loss accounting to
    /// continue from (`None`: read the counters now).
    fn open(
        &self,
        targets: Vec<Target>,
        disks: &[SavedDisk],
        baseline: Option<Vec<SavedCpu>>,
        notes: Vec<String>,
        runs: &[Vec<(u64, u64)>],
    ) -> Result<Shared, TrackError> {
        let inst = &self.instance;
        let dir = inst.dir.display().to_string();
        let header = inst.header_page().map_err(io_err("reading header_page"))?;
        let layout = PageLayout::parse(&header).map_err(|e| unavailable(format!("{dir}: {e}")))?;
        let format = inst.event_format().map_err(io_err(format!("reading {EVENT_DIR}/format")))?;
        let format = CompleteFormat::parse(&format).map_err(|e| unavailable(format!("{dir}: {e}")))?;
        let cpus = inst.cpus().map_err(io_err("listing the per-CPU buffers"))?;
        if cpus.is_empty() {
            return Err(unavailable(format!("{dir}/per_cpu lists no CPU")));
        }
        let readers = cpus
            .iter()
            .map(|&cpu| inst.open_pipe(cpu).map(|file| Reader { cpu, file }))
            .collect::<io::Result<Vec<_>>>()
            .map_err(io_err("opening trace_pipe_raw"))?;
        let accounting = match baseline {
            Some(saved) => saved,
            None => cpus
                .iter()
                .map(|&cpu| inst.counters(cpu).map(|counters| SavedCpu { cpu, counters, ..SavedCpu::default() }))
                .collect::<io::Result<Vec<_>>>()
                .map_err(io_err("reading the loss counters"))?,
        };
        let counts: Vec<u64> = disks.iter().map(|d| d.chunks).collect();
        let mut pending =
            Pending::new(&counts).ok_or_else(|| unavailable("a disk has too many chunks for this system"))?;
        for (disk, r) in runs.iter().enumerate() {
            pending.mark_runs(disk, r);
        }
        let loss = Loss::new(accounting, notes);
        Ok(Shared::new(layout, format, readers, self.cfg.buffer_kib, targets, pending, loss))
    }
}

impl Tracker for TracefsTracker {
    fn name(&self) -> &'static str {
        NAME
    }

    fn start(&mut self, maps: &mut [ChangeMap]) -> Result<Option<String>, TrackError> {
        if self.running.is_some() {
            return Err(io_err("start")(io::Error::other("already started")));
        }
        self.check_maps(maps, None)?;
        let targets: Vec<Target> =
            self.devices.iter().zip(maps.iter()).map(|(d, m)| Target::new(d, m.geometry())).collect();
        let disks: Vec<SavedDisk> = self
            .devices
            .iter()
            .zip(maps.iter())
            .map(|(d, m)| SavedDisk {
                path: d.path.clone(),
                dev: d.disk_kernel_dev(),
                start_sector: d.start_sector,
                size_sectors: d.size_sectors,
                chunks: m.chunk_count(),
                chunk_shift: m.geometry().chunk_size.shift(),
            })
            .collect();
        let boot_id = instance::boot_id().map_err(io_err("reading the boot id"))?;
        let path = &self.cfg.state_file;
        let previous = state::load(path);
        // From here on, a crash must not look like a clean stop.
        if let Ok(Some(s)) = &previous
            && s.clean
        {
            let owned = SavedState { clean: false, ..s.clone() };
            state::save(path, &owned).map_err(io_err(format!("writing {}", path.display())))?;
        }
        let (shared, settings, incarnation, gap) = match self.adoptable(previous, &boot_id, &disks) {
            Ok(s) => {
                let shared = self.open(targets, &disks, Some(s.cpus), s.loss_notes, &s.pending)?;
                (shared, s.settings, s.incarnation, None)
            }
            Err(reason) => {
                let (settings, incarnation) = self.create_fresh()?;
                match self.open(targets, &disks, None, Vec::new(), &[]) {
                    Ok(shared) => (shared, settings, incarnation, Some(reason)),
                    Err(e) => {
                        let _ = self.instance.remove();
                        return Err(e);
                    }
                }
            }
        };
        let (cpus, loss_notes) = shared.loss.saved();
        let pending = (0..shared.pending.disks()).map(|d| shared.pending.runs(d)).collect();
        let record = SavedState {
            version: state::VERSION,
            clean: false,
            instance: self.cfg.instance.clone(),
            boot_id,
            buffer_kib: self.cfg.buffer_kib,
            settings,
            incarnation,
            disks,
            cpus,
            loss_notes,
            pending,
        };
        state::save(path, &record).map_err(io_err(format!("writing {}", path.display())))?;
        let shared = Arc::new(Mutex::new(shared));
        let drainer = Drainer::spawn(Arc::clone(&shared), self.cfg.poll_interval)
            .map_err(io_err("starting the drainer thread"))?;
        let dir = self.instance.dir.display();
        match &gap {
            None => tracing::info!(instance = %dir, "tracefs: took over the instance left by a clean stop"),
            Some(why) => tracing::info!(instance = %dir, gap = %why, "tracefs: started a fresh instance"),
        }
        self.running = Some(Running { shared, drainer, record });
        Ok(gap)
    }

    fn collect(&mut self, maps: &mut [ChangeMap], epoch: Epoch) -> Result<Collected, TrackError> {
        let running = self.running.as_ref().ok_or(TrackError::NotStarted { tracker: NAME })?;
        self.check_maps(maps, Some(&running.record.disks))?;
        let mut guard = lock(&running.shared);
        let s = &mut *guard;
        if let Some(why) = self.check_settings(&running.record.settings) {
            s.loss.note(why);
        }
        s.drain();
        let now = s.readers.iter().map(|r| (r.cpu, self.instance.counters(r.cpu))).collect();
        let found = s.loss.evaluate(now);
        if let Some(f) = &found {
            s.stats.lost_events = s.stats.lost_events.saturating_add(f.events);
            s.stats.losses += 1;
            tracing::warn!(gap = %f.reason, "tracefs: lost events; the next pass scans");
        }
        let mut first_error = None;
        for (disk, map) in maps.iter_mut().enumerate() {
            let mut stamped = true;
            for (first, count) in s.pending.runs(disk) {
                if let Err(e) = map.mark_range(first, count, epoch) {
                    first_error.get_or_insert(e);
                    stamped = false;
                }
            }
            if stamped {
                s.pending.clear(disk);
            }
        }
        if let Some(e) = first_error {
            // Keep the gap for the next collect, since this one returns no result.
            if let Some(f) = found {
                s.loss.note(f.reason);
            }
            return Err(e.into());
        }
        Ok(Collected { scan: false, gap: found.map(|f| f.reason), consistency: Consistency::Fuzzy })
    }

    fn written_since_collect(&mut self) -> Option<Vec<Vec<(u64, u64)>>> {
        let running = self.running.as_ref()?;
        let mut s = lock(&running.shared);
        s.drain();
        Some((0..s.pending.disks()).map(|d| s.pending.runs(d)).collect())
    }

    fn stop(&mut self) -> Result<(), TrackError> {
        let mut running = self.running.take().ok_or(TrackError::NotStarted { tracker: NAME })?;
        running.drainer.stop();
        let record = {
            let mut s = lock(&running.shared);
            s.drain();
            self.last_stats = s.stats;
            let (cpus, loss_notes) = s.loss.saved();
            let pending = (0..s.pending.disks()).map(|d| s.pending.runs(d)).collect();
            SavedState { clean: true, cpus, loss_notes, pending, ..running.record.clone() }
        };
        // Close the pipes before saying the stop was clean.
        drop(running);
        let path = &self.cfg.state_file;
        state::save(path, &record).map_err(io_err(format!("writing {}", path.display())))?;
        tracing::info!(instance = %self.instance.dir.display(), "tracefs: stopped; the instance keeps recording");
        Ok(())
    }

    fn stats(&self) -> TrackerStats {
        match &self.running {
            Some(r) => lock(&r.shared).stats,
            None => self.last_stats,
        }
    }
}

/// Checks that tracefs is mounted at `root` with what the tracker needs; else why not.
fn check_tracefs(root: &Path) -> Result<(), String> {
    let shown = root.display();
    if !is_tracefs(root) {
        return Err(format!("tracefs is not mounted at {shown} (mount it: mount -t tracefs nodev {shown})"));
    }
    if !root.join(EVENT_DIR).join("format").is_file() {
        return Err(format!("this kernel has no block:block_rq_complete trace event ({shown}/{EVENT_DIR}/format)"));
    }
    let instances = root.join("instances");
    if !instances.is_dir() {
        return Err(format!("{shown} has no instances directory (the kernel is too old for tracefs instances)"));
    }
    writable(&instances).map_err(|e| format!("cannot create tracefs instances in {}: {e}", instances.display()))
}

fn is_tracefs(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else { return false };
    // SAFETY: an all-zero `statfs` is a valid value of this plain C struct.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` a writable statfs, both live for the call.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    rc == 0 && st.f_type == libc::TRACEFS_MAGIC
}

fn writable(path: &Path) -> io::Result<()> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: `c` is a NUL-terminated path that lives for the call.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK) } == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}
