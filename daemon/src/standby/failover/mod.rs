//! Failover: the pair is fenced (the agent's connection is ended, and from then on it is told
//! to hold and the standby commits nothing), and a recovery point is materialised onto block
//! devices or files on the standby's host, at about the target's write bandwidth. The point
//! is pinned. Failback ([`failback`]) makes the two sides equal again.

pub mod failback;
pub mod failback_error;
pub mod from_protected;
pub mod materialise;
pub mod recovered;
pub mod target;

use super::Standby;
use super::control::quiesce;
use super::pair::results::{FailoverRecord, JobState};
use super::pair::{OpError, PairHandle, PairRecord, PairRuntime};
use super::tasks::TaskHandle;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::PairOp;
use drpair_types::{FailoverRequest, FailoverStatus, RecoveryPoint, TaskKind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use target::{Side, SideError};

/// Why a failover or failback did not start. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum FailoverError {
    /// A parameter is wrong (400).
    #[error("{0}: {1}")]
    Param(&'static str, String),
    /// No such point (404).
    #[error("{0}")]
    PointNotFound(String),
    /// The pair's state, a busy target, or a running job (409).
    #[error("{0}")]
    State(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl FailoverError {
    fn side(parameter: &'static str, e: SideError) -> Self {
        match e {
            SideError::Bad(m) => FailoverError::Param(parameter, m),
            SideError::Busy(m) => FailoverError::State(m),
        }
    }
}

impl From<OpError> for FailoverError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Refused(r) => FailoverError::State(r.message),
            OpError::Store(m) => FailoverError::Internal(m),
        }
    }
}

/// The point a request names, among `points` (oldest first), and for `latest` why that one.
fn choose(points: &[RecoveryPoint], req: &FailoverRequest) -> Result<(RecoveryPoint, Option<String>), FailoverError> {
    match (req.point, req.latest) {
        (Some(_), true) => Err(FailoverError::Param("point", "give a point or latest, not both".into())),
        (None, false) => Err(FailoverError::Param(
            "point",
            "say which recovery point to fail over to: \"point\": ID, or \"latest\": true".into(),
        )),
        (None, true) => drpair_types::latest_recoverable(points)
            .map(|c| (c.point.clone(), Some(c.reason)))
            .ok_or_else(|| FailoverError::PointNotFound("the pair has no recovery point".into())),
        (Some(id), false) => points.iter().find(|p| p.id == id).cloned().map(|p| (p, None)).ok_or_else(|| {
            FailoverError::PointNotFound(format!(
                "no recovery point {id} (never committed, or removed by retention); `drpair points list PAIR` shows those kept"
            ))
        }),
    }
}

/// Pins `point` (so retention keeps it for the failback), checking under the prune's gate
/// that it still exists.
fn pin(sb: &Standby, pair_no: u32, id: u64) -> Result<(), FailoverError> {
    let _gate = super::drill::PIN_GATE.lock().unwrap_or_else(|e| e.into_inner());
    let _marks = super::verify::POINT_MARKS.lock().unwrap_or_else(|e| e.into_inner());
    let internal = |e: drpair_store::StoreError| FailoverError::Internal(e.to_string());
    let Some(mut p) = sb.store.get_point(pair_no, id).map_err(internal)? else {
        return Err(FailoverError::PointNotFound(format!("recovery point {id} was just removed by retention")));
    };
    if !p.pinned {
        p.pinned = true;
        sb.store.update_point(pair_no, &p).map_err(internal)?;
    }
    Ok(())
}

/// Starts a failover: checks everything, fences the pair, then materialises in the
/// background (progress in `status.failover`). Returns the job as started.
pub async fn start(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    req: FailoverRequest,
) -> Result<FailoverStatus, FailoverError> {
    let requested = Instant::now();
    let instant = super::instant::prepare(&req).map_err(|(p, m)| FailoverError::Param(p, m))?;
    if req.protect && req.instant {
        return Err(FailoverError::Param(
            "protect",
            "an instant failover's targets are protected once its session ended: `drpair pairs protect-recovered PAIR` then".into(),
        ));
    }
    let rec = h.record.lock().expect("record").clone();
    let disks: Vec<_> = rec.disks.iter().map(|d| d.geometry).collect();
    if req.targets.len() != disks.len() {
        return Err(FailoverError::Param(
            "targets",
            format!(
                "the pair has {} disk(s): give one target (block device or file on the standby) per disk, in disk order; got {}",
                disks.len(),
                req.targets.len()
            ),
        ));
    }
    busy(&h.runtime.lock().expect("runtime"))?;
    rec.lifecycle.apply(PairOp::Failover).map_err(|r| FailoverError::State(r.message))?;
    let (store, pair_no) = (sb.store.clone(), rec.pair_no);
    let points = tokio::task::spawn_blocking(move || store.list_points(pair_no))
        .await
        .map_err(|e| FailoverError::Internal(e.to_string()))?
        .map_err(|e| FailoverError::Internal(e.to_string()))?;
    let (point, why) = choose(&points, &req)?;
    // The point's own disks: a point from before a disk grew keeps the old size.
    let disks = rec.geometries_at(point.epoch);
    if req.targets.len() != disks.len() {
        return Err(FailoverError::Param(
            "targets",
            format!("recovery point {} has {} disk(s): give one target per disk of the point", point.id, disks.len()),
        ));
    }
    if let Some(d) = &point.damage {
        return Err(FailoverError::State(format!(
            "recovery point {} is damaged ({} chunk(s) missing or corrupt, found {}): fail over to another point",
            point.id, d.chunks, d.found_at
        )));
    }
    // From here on the paths are the ones the check resolved: a link swapped after it changes
    // nothing, and two names of one file are the same target.
    let targets = allowed(sb, &req.targets, "targets")?;
    target::distinct(&targets).map_err(|e| FailoverError::side("targets", e))?;
    for (t, g) in targets.iter().zip(&disks) {
        target::check_target(t, g.size_bytes, req.force).map_err(|e| FailoverError::side("targets", e))?;
    }
    let mut sides = Vec::new();
    for (t, g) in targets.iter().zip(&disks) {
        sides.push(target::open_target(t, g.size_bytes, req.force).map_err(|e| FailoverError::side("targets", e))?);
    }
    pin(sb, pair_no, point.id)?;

    // Fence: end the agent's connection and change the record while no epoch is written.
    let guard = quiesce(h, "the pair is failing over; the agent holds from now on").await?;
    let started = now_ms();
    let by = req.operator.clone().unwrap_or_else(|| "api".into());
    let mut message = match &instant {
        None => format!("materialising point {} (cut {}) onto {}", point.id, point.time, req.targets.join(", ")),
        Some(p) => format!(
            "instant failover: point {} (cut {}) {} while it is copied onto {}",
            point.id,
            point.time,
            if p.plan.is_some() { "runs in a QEMU guest on the standby" } else { "is served writable over NBD" },
            req.targets.join(", ")
        ),
    };
    if let Some(why) = why {
        message = format!("{message}; latest: {why}");
    }
    let task = sb.tasks.start(TaskKind::Failover, &rec.pair_id, &by, &message);
    let status = FailoverRecord {
        pair_id: rec.pair_id.clone(),
        state: JobState::Running,
        point: point.id,
        epoch: point.epoch,
        point_time: point.time.clone(),
        targets: req.targets.clone(),
        bytes_total: disks.iter().map(|g| g.size_bytes).sum(),
        bytes_written: 0,
        progress_percent: 0.0,
        started_at: rfc3339_ms(started),
        finished_at: None,
        elapsed_seconds: 0.0,
        throughput_bytes_per_sec: 0.0,
        operator: req.operator.clone(),
        message,
        task: Some(task.id()),
        instant: instant.as_ref().map(|p| super::instant::record(sb, rec.pair_id.as_str(), p)),
    };
    {
        let mut rt = h.runtime.lock().expect("runtime");
        let fenced = busy(&rt).and_then(|()| {
            h.update(&sb.store, |rec| {
                rec.lifecycle = rec.lifecycle.apply(PairOp::Failover).map_err(|r| FailoverError::State(r.message))?;
                rec.failover = Some(status.clone());
                Ok::<_, FailoverError>(())
            })
        });
        if let Err(e) = fenced {
            task.fail(format!("not started: {e}"));
            return Err(e);
        }
        rt.failover = Some(Arc::new(Mutex::new(status.clone())));
    }
    task.step(&format!("fenced: the agent holds; writing {} disk(s)", disks.len()));
    drop(guard);
    tracing::warn!(
        pair = %rec.pair_id, point = point.id, epoch = point.epoch, targets = ?req.targets, operator = ?req.operator,
        "FAILOVER: the pair is fenced (the agent holds, nothing is committed) and point {} is being materialised", point.id
    );
    if let Some(p) = instant {
        let job = h.runtime.lock().expect("runtime").failover.clone().expect("set above");
        let (sb2, h2) = (sb.clone(), h.clone());
        let spawned = tokio::task::spawn_blocking(move || {
            super::instant::spawn(&sb2, &h2, job, sides, p.plan, requested, task, true)
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        let job = h.runtime.lock().expect("runtime").failover.clone();
        let now = job.as_ref().map(|j| j.lock().expect("failover").clone());
        if let Err(e) = spawned {
            let mut j = now.unwrap_or(status);
            j.state = JobState::Failed;
            j.message = format!("the instant failover could not start: {e}; the pair stays fenced, run failover again");
            if let Some(i) = j.instant.as_mut() {
                i.view.phase = drpair_types::InstantPhase::Failed;
            }
            let mut rt = h.runtime.lock().expect("runtime");
            let _ = h.update(&sb.store, |rec| {
                rec.failover = Some(j.clone());
                Ok::<_, OpError>(())
            });
            rt.failover = None;
            tracing::error!(pair = %rec.pair_id, "{}", j.message);
            return Ok(j.to_view());
        }
        return Ok(now.unwrap_or(status).to_view());
    }
    let (sb2, h2) = (sb.clone(), h.clone());
    let protect = req
        .protect
        .then(|| drpair_types::ProtectRecoveredRequest { operator: req.operator.clone(), ..Default::default() });
    tokio::task::spawn_blocking(move || run(&sb2, &h2, point, sides, task, protect));
    Ok(status.to_view())
}

/// Refuses while a failover materialises or a failback runs.
fn busy(rt: &PairRuntime) -> Result<(), FailoverError> {
    if let Some(f) = &rt.failover {
        let f = f.lock().expect("failover");
        if f.instant.is_some() {
            return Err(FailoverError::State(format!(
                "an instant failover of point {} runs ({:.0}% copied); stop its session first (`drpair failover PAIR --stop-instant`, once the copy is complete)",
                f.point, f.progress_percent
            )));
        }
        return Err(FailoverError::State(format!(
            "a failover to point {} is materialising ({:.0}%); wait for it to end",
            f.point, f.progress_percent
        )));
    }
    if rt.failback.is_some() {
        return Err(FailoverError::State("a failback is running; wait for it to end".into()));
    }
    Ok(())
}

/// The background part: every disk written and synced, the result recorded; then, with
/// `protect`, the targets protected under a new pair (`protect/`).
fn run(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    point: RecoveryPoint,
    sides: Vec<Side>,
    task: TaskHandle,
    protect: Option<drpair_types::ProtectRecoveredRequest>,
) {
    let job = h.runtime.lock().expect("runtime").failover.clone().expect("set by start");
    let (pair_id, pair_no, disks) = {
        let r = h.record.lock().expect("record");
        (r.pair_id.clone(), r.pair_no, r.geometries_at(point.epoch))
    };
    let t0 = Instant::now();
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let update = |j: &mut FailoverRecord, done: u64| {
        let el = t0.elapsed().as_secs_f64();
        j.bytes_written = done;
        j.progress_percent = ((done as f64 * 1000.0 / j.bytes_total.max(1) as f64).round() / 10.0).min(100.0);
        j.elapsed_seconds = (el * 1000.0).round() / 1000.0;
        j.throughput_bytes_per_sec = (done as f64 / el.max(1e-6)).round();
    };
    let result = std::thread::scope(|s| {
        let ticker = s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                let mut j = job.lock().expect("failover");
                update(&mut j, done.load(Ordering::Relaxed));
                task.progress(j.progress_percent);
            }
        });
        let mut r = Ok(());
        for (i, (side, g)) in sides.iter().zip(&disks).enumerate() {
            task.step(&format!(
                "disk {i}: writing point {} onto {} ({} bytes)",
                point.id,
                side.path.display(),
                g.size_bytes
            ));
            r = materialise::disk(&sb.store, &pair_id, pair_no, i as u32, *g, point.epoch, side, &done);
            if r.is_err() {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let _ = ticker.join();
        r
    });
    let final_status = {
        let mut j = job.lock().expect("failover");
        update(&mut j, done.load(Ordering::Relaxed));
        j.finished_at = Some(rfc3339_ms(now_ms()));
        match &result {
            Ok(()) => {
                j.state = JobState::Done;
                j.message = format!(
                    "point {} (cut {}) is on {}: {} bytes in {:.1}s ({:.0} MiB/s). Start the workload there; `drpair failback` makes the original side equal again",
                    point.id,
                    point.time,
                    j.targets.join(", "),
                    j.bytes_written,
                    j.elapsed_seconds,
                    j.throughput_bytes_per_sec / 1048576.0
                );
            }
            Err(e) => {
                j.state = JobState::Failed;
                j.message =
                    format!("materialising point {} failed: {e}; the pair stays fenced, run failover again", point.id);
            }
        }
        j.clone()
    };
    match &result {
        Ok(()) => {
            tracing::warn!(pair = %pair_id, point = point.id, bytes = final_status.bytes_written, seconds = final_status.elapsed_seconds, "FAILOVER done: {}", final_status.message)
        }
        Err(_) => tracing::error!(pair = %pair_id, point = point.id, "FAILOVER failed: {}", final_status.message),
    }
    let final_status_bytes = final_status.bytes_written;
    let mut rt = h.runtime.lock().expect("runtime");
    let saved = h.update(&sb.store, |rec| {
        rec.failover = Some(final_status);
        Ok::<_, OpError>(())
    });
    if let Err(e) = saved {
        tracing::error!(pair = %pair_id, "recording the failover's end: {e:?}");
    }
    rt.failover = None;
    drop(rt);
    let Some(protect) = protect.filter(|_| result.is_ok()) else {
        match result {
            Ok(()) => task.ok(format!("point {} is on the targets: {} bytes written", point.id, final_status_bytes)),
            Err(e) => task.fail(format!("materialising point {} failed: {e}", point.id)),
        }
        return;
    };
    // The sides close first: the protecting agent opens the targets itself.
    drop(sides);
    task.step("protecting the recovered disks (--protect)");
    let protected = super::protect::start(sb, h, protect);
    let note = match &protected {
        Ok(p) => format!("protected by pair '{}' ({}): {}", p.pair, p.state.label(), p.message),
        Err(e) => format!(
            "protecting the recovered disks failed: {e}; `drpair pairs protect-recovered {pair_id}` tries again"
        ),
    };
    match &protected {
        Ok(_) => tracing::warn!(pair = %pair_id, "FAILOVER --protect: {note}"),
        Err(_) => tracing::error!(pair = %pair_id, "FAILOVER --protect: {note}"),
    }
    let _ = h.update(&sb.store, |rec| {
        if let Some(f) = rec.failover.as_mut() {
            f.message = format!("{}; {note}", f.message);
        }
        Ok::<_, OpError>(())
    });
    task.ok(format!("point {} is on the targets: {} bytes written; {note}", point.id, final_status_bytes));
}

/// The failover: the running job's live figures, else the record's.
fn current(rec: &PairRecord, rt: &PairRuntime) -> Option<FailoverRecord> {
    match &rt.failover {
        Some(j) => Some(j.lock().expect("failover").clone()),
        None => rec.failover.clone(),
    }
}

/// Status field `failover`.
pub fn status(rec: &PairRecord, rt: &PairRuntime) -> Option<FailoverStatus> {
    current(rec, rt).as_ref().map(FailoverRecord::to_view)
}

pub fn explanation(rec: &PairRecord, rt: &PairRuntime) -> String {
    let mut text = explain(rec, rt);
    if let Some(p) = rec.protected_by.as_ref().filter(|p| p.state.active()) {
        text.push_str(&format!(
            " The recovered disks are protected by pair '{}' (points every {}); `drpair failback {} --from-protected` fails back from its newest point.",
            p.pair, p.cut_interval, rec.pair_id
        ));
    }
    text
}

fn explain(rec: &PairRecord, rt: &PairRuntime) -> String {
    match current(rec, rt) {
        Some(f) if f.state == JobState::Running && f.instant.is_some() => format!(
            "Instant failover: point {} runs from the standby while it is copied onto {} ({:.0}%). The pair is fenced: the agent ships nothing.",
            f.point,
            f.targets.join(", "),
            f.progress_percent
        ),
        Some(f) if f.state == JobState::Running => format!(
            "Failing over: point {} is being written onto {} ({:.0}%). The pair is fenced: the agent ships nothing.",
            f.point,
            f.targets.join(", "),
            f.progress_percent
        ),
        Some(f) if f.state == JobState::Failed => format!("Failed over, but {}.", f.message),
        Some(f) => format!(
            "Failed over to point {} (cut {}) on {}: the standby's side is the source now and the pair is fenced (the agent ships nothing). `drpair failback PAIR --from … --direction …` makes the two sides equal again.",
            f.point,
            f.point_time,
            f.targets.join(", ")
        ),
        None => "Failed over: the pair is fenced; `drpair failback` ends it.".into(),
    }
}

/// A failover materialising when the standby stopped is recorded as failed.
pub fn after_restart(rec: &mut PairRecord) -> bool {
    // An instant failover resumes instead (`instant/resume.rs`).
    match rec.failover.as_mut().filter(|f| f.state == JobState::Running && f.instant.is_none()) {
        Some(f) => {
            f.state = JobState::Failed;
            f.finished_at = Some(rfc3339_ms(now_ms()));
            f.message = format!(
                "the standby stopped while point {} was being materialised; the targets are incomplete: run failover again",
                f.point
            );
            true
        }
        None => false,
    }
}

/// `raw` paths checked against the standby's allowed locations, as they resolved.
pub(super) fn allowed(sb: &Standby, raw: &[String], key: &'static str) -> Result<Vec<String>, FailoverError> {
    raw.iter()
        .map(|p| {
            crate::standby::paths::check(p, &sb.allowed_paths, key)
                .map(|real| real.to_string_lossy().into_owned())
                .map_err(|m| FailoverError::side(key, target::SideError::Bad(m)))
        })
        .collect()
}
