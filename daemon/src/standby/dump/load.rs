//! `standby load-dump`: one disk's dump image checked and loaded in the background.

use super::errors::{DumpLoadError, FlowError, Res};
use super::flow::{internal, not_now, pair_id, record, update};
use super::format::ImageFormat;
use super::loader::{self, DumpLoadSpec};
use super::progress::{LoadProgress, LoadStats};
use super::record::DumpRecord;
use crate::standby::Standby;
use crate::standby::pair::PairHandle;
use crate::standby::tasks::Seen;
use crate::timefmt::now_ms;
use drpair_types::{DumpLoadState, LoadDumpRequest, PairId, PairState, TaskKind};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

/// Why a disk's load ended without loading it: the image (every such message names it), or
/// the task that ran the load. Goes into the workflow's status and log, and the task's.
#[derive(Debug, thiserror::Error)]
enum LoadFailed {
    /// The image could not be read, checked or stored.
    #[error(transparent)]
    Image(#[from] DumpLoadError),
    /// The blocking task running the load failed.
    #[error("the load task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

fn parse_format(f: Option<&str>) -> Res<Option<ImageFormat>> {
    match f.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("auto") => Ok(None),
        Some("raw") => Ok(Some(ImageFormat::Raw)),
        Some("qcow2") => Ok(Some(ImageFormat::Qcow2)),
        Some(o) => Err(FlowError::Param("format", format!("format '{o}' is not raw, qcow2 or auto"))),
    }
}

/// `standby load-dump`: checks the image (it must exist and match the disk's geometry), then
/// loads it in the background as the disk's content at the dump epoch; status shows the
/// percentage. Returns what was started.
pub async fn load(sb: &Arc<Standby>, h: &Arc<PairHandle>, req: &LoadDumpRequest) -> Res<String> {
    let rec = record(h);
    let id = rec.pair_id.clone();
    let Some(disk) = rec.disks.get(req.disk as usize) else {
        return Err(FlowError::Param(
            "disk",
            format!("pair '{id}' has no disk {} (it has {} disk(s), numbered from 0)", req.disk, rec.disks.len()),
        ));
    };
    let geometry = disk.geometry;
    let format = parse_format(req.format.as_deref())?;
    // The state first: while the pair replicates, nothing is said of any file.
    if rec.lifecycle.state != PairState::ApplySuspended {
        let why = format!(
            "a dump is loaded once apply is suspended by the dump marker, and it is {}",
            rec.lifecycle.state.label()
        );
        return Err(not_now(&rec, &why));
    }
    // The image as the check resolved it: a link swapped afterwards changes nothing.
    let image = crate::standby::paths::check(&req.image, &sb.allowed_paths, "image")
        .map_err(|m| FlowError::Param("image", m))?;
    let (img, n) = (image.clone(), req.disk);
    let info = tokio::task::spawn_blocking(move || super::image::probe(&img, format, n, &geometry))
        .await
        .map_err(internal)?
        .map_err(|e| FlowError::Param("image", format!("pair '{id}' disk {n}: {e}")))?;
    let progress = Arc::new(LoadProgress::default());
    {
        let mut rt = h.runtime.lock().expect("runtime");
        if let Some((busy, _)) = &rt.dump_load {
            return Err(not_now(&rec, &format!("the dump of disk {busy} is being loaded; wait for it")));
        }
        rt.dump_load = Some((req.disk, progress.clone()));
    }
    let format_name = match info.format {
        ImageFormat::Raw => "raw",
        ImageFormat::Qcow2 => "qcow2",
    };
    let started = update(sb, h, |rec| {
        if rec.lifecycle.state != PairState::ApplySuspended {
            return Err(not_now(rec, "the pair left the dump workflow while the image was probed"));
        }
        let marker_epoch = rec.dump.as_ref().and_then(|d| d.marker.as_ref()).map(|m| m.epoch);
        let (Some(epoch), Some(d)) = (marker_epoch, rec.dump.as_mut()) else {
            return Err(internal("apply is suspended without a dump marker"));
        };
        let slot = &mut d.disks[req.disk as usize];
        slot.state = DumpLoadState::Loading;
        slot.image = Some(req.image.clone());
        slot.format = Some(format_name.into());
        slot.error = None;
        d.note(
            &id,
            format!(
                "loading the dump of disk {n} from {} ({format_name}, {} bytes) as epoch {epoch}",
                req.image, info.virtual_size
            ),
        );
        Ok(DumpLoadSpec {
            pair_no: rec.pair_no,
            disk: req.disk,
            geometry,
            image,
            format: Some(info.format),
            epoch,
            base: rec.committed,
            scratch_dir: sb.store.dir().with_file_name("scratch"),
        })
    });
    let spec = match started {
        Ok(spec) => spec,
        Err(e) => {
            h.runtime.lock().expect("runtime").dump_load = None;
            return Err(e);
        }
    };
    let task = sb.tasks.start(
        TaskKind::DumpLoad,
        &id,
        "api",
        &format!("loading the dump of disk {n} from {} ({format_name}) as epoch {}", req.image, spec.epoch),
    );
    let task_id = task.id();
    let ended: Arc<Mutex<Option<Seen>>> = Arc::default();
    let (look, p) = (ended.clone(), progress.clone());
    task.follow(move || match look.lock().expect("load end").clone() {
        Some(end) => end,
        None if p.converting.load(Ordering::Relaxed) => {
            Seen::Running { percent: 0.0, message: "converting the qcow2 image to raw".into() }
        }
        None => {
            let (done, total) = (p.done.load(Ordering::Relaxed), p.total.load(Ordering::Relaxed));
            let percent = if total == 0 { 0.0 } else { (done as f64 * 100.0 / total as f64).min(99.9) };
            Seen::Running { percent, message: "reading the image and storing the chunks that differ".into() }
        }
    });
    let (sb2, h2) = (sb.clone(), h.clone());
    tokio::spawn(async move {
        let store = sb2.store.clone();
        let p = progress.clone();
        let r = tokio::task::spawn_blocking(move || loader::load(&store, &spec, &p)).await;
        let r = r.map_err(LoadFailed::from).and_then(|r| r.map_err(LoadFailed::from));
        let outcome = match &r {
            Ok(stats) => Seen::Done(loaded_message(n, stats)),
            Err(e) => Seen::Failed(format!("loading the dump of disk {n} failed: {e}")),
        };
        finish_load(&sb2, &h2, n, r);
        *ended.lock().expect("load end") = Some(outcome);
    });
    Ok(format!(
        "pair '{id}': loading the dump of disk {n} from {} ({format_name}) as task {task_id}; follow it with drpair status {id} or drpair tasks log {task_id} --follow",
        req.image
    ))
}

fn finish_load(sb: &Standby, h: &PairHandle, disk: u32, r: Result<LoadStats, LoadFailed>) {
    h.runtime.lock().expect("runtime").dump_load = None;
    let id = pair_id(h);
    if let Ok(s) = &r {
        crate::standby::metrics::dump_loaded(&id, s.raw_bytes, s.stored_bytes);
    }
    let noted = update(sb, h, |rec| {
        let Some(d) = rec.dump.as_mut() else { return Ok(()) };
        note_load(d, &id, disk, r);
        Ok(())
    });
    if let Err(e) = noted {
        tracing::error!(pair = %id, "recording the dump load: {e:?}");
    }
}

/// Records the end of disk `disk`'s load in the workflow's status and log.
fn note_load(d: &mut DumpRecord, id: &PairId, disk: u32, r: Result<LoadStats, LoadFailed>) {
    let slot = &mut d.disks[disk as usize];
    match r {
        Ok(s) => {
            slot.state = DumpLoadState::Loaded;
            slot.loaded_unix_ms = Some(now_ms());
            let msg = loaded_message(disk, &s);
            slot.stats = Some(s);
            d.note(id, msg);
        }
        Err(e) => {
            slot.state = DumpLoadState::Failed;
            slot.error = Some(e.to_string());
            d.warn(id, format!("loading the dump of disk {disk} failed: {e}; load it again"));
        }
    }
}

fn loaded_message(disk: u32, s: &LoadStats) -> String {
    format!(
        "loaded the dump of disk {disk}: {} chunk(s) read, {} differ from the newest point before the dump, {} zero, {} already held (dedup), {} byte(s) stored, in {:.1}s",
        s.chunks,
        s.entries,
        s.zero,
        s.dedup,
        s.stored_bytes,
        s.millis as f64 / 1000.0
    )
}
