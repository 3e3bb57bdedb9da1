//! Verification of a pair's stored points: a background job re-reads and re-hashes every
//! chunk its points see, then marks each point `verified_at` or with its `damage`.

use super::Standby;
use super::pair::results::{DamagedChunkRecord, VerifyRecord, VerifyState};
use super::pair::{OpError, PairHandle};
use super::tasks::TaskHandle;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_store::{Damaged, StoreError, VerifyOutcome};
use drpair_types::{DamagedChunk, ErrorClass, PairId, PointDamage, TaskKind, VerifyStatus};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Damaged chunks listed in a status, and per point.
const SAMPLE: usize = 50;
const POINT_SAMPLE: usize = 20;

/// Held from reading a point to writing its marks back. `Store::update_point` writes every
/// mark of the copy it is given, so without it a verification that read a point before an
/// operator pinned it would write it back unpinned (and a pin would drop a fresh
/// `verified_at`). Taken by [`mark_points`] and by the pin/unpin API.
pub static POINT_MARKS: Mutex<()> = Mutex::new(());

/// Why a verification of stored chunks did not start. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Another verification of the pair is running (409).
    #[error("pair '{0}': a verification is already running")]
    Running(PairId),
}

impl StartError {
    /// Asking again once the running one has ended succeeds.
    pub fn class(&self) -> ErrorClass {
        match self {
            StartError::Running(_) => ErrorClass::Transient,
        }
    }
}

/// Starts a verification of the pair (all points, or `point`); the status is shared with
/// the runtime while it runs. Refused when one is running.
pub fn start(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    point: Option<u64>,
    scheduled: bool,
) -> Result<Arc<Mutex<VerifyRecord>>, StartError> {
    let status = Arc::new(Mutex::new(VerifyRecord::running(scheduled, point, now_ms())));

    let pair_id = h.record.lock().expect("record").pair_id.clone();
    {
        let mut rt = h.runtime.lock().expect("runtime");
        if let Some(v) = &rt.verify
            && v.lock().expect("verify").state == VerifyState::Running
        {
            return Err(StartError::Running(pair_id));
        }
        rt.verify = Some(status.clone());
    }
    let what = match point {
        Some(p) => format!("re-reading and re-hashing every chunk point {p} can see"),
        None => "re-reading and re-hashing every chunk of every point".to_string(),
    };
    let task = sb.tasks.start(TaskKind::Verify, &pair_id, if scheduled { "schedule" } else { "api" }, &what);
    status.lock().expect("verify").task = Some(task.id());
    let (sb, h, st) = (sb.clone(), h.clone(), status.clone());
    tokio::task::spawn_blocking(move || run(&sb, &h, point, &st, task));
    Ok(status)
}

fn run(sb: &Standby, h: &PairHandle, point: Option<u64>, st: &Mutex<VerifyRecord>, task: TaskHandle) {
    let (pair_id, pair_no, total_chunks) = {
        let rec = h.record.lock().expect("record");
        let chunks: Vec<u64> = rec.disks.iter().map(|d| d.geometry.chunk_count()).collect();
        (rec.pair_id.clone(), rec.pair_no, chunks)
    };
    tracing::info!(pair = %pair_id, point = ?point, "verification of stored chunks started");
    let all: u64 = total_chunks.iter().sum::<u64>().max(1);
    let result = sb.store.verify_points(pair_no, point, |p| {
        let done: u64 = total_chunks.iter().take(p.disk as usize).sum::<u64>() + p.chunk;
        let mut s = st.lock().expect("verify");
        s.progress_percent = (done as f64 * 100.0 / all as f64).min(99.9);
        s.chunks_checked = p.chunks_checked;
        task.progress(s.progress_percent);
        true
    });
    let finished = now_ms();
    let mut s = st.lock().expect("verify").clone();
    s.finished_unix_ms = Some(finished);
    match result.and_then(|out| mark_points(sb, pair_no, &out, finished).map(|_| out)) {
        Ok(out) => {
            s.state = VerifyState::Done;
            s.progress_percent = 100.0;
            s.chunks_checked = out.chunks_checked;
            s.bytes_checked = out.bytes_checked;
            let intact = out.intact_points();
            s.points_verified = intact.len() as u64;
            s.points_damaged = (out.points.len() - intact.len()) as u64;
            s.damaged = out.damaged.iter().take(SAMPLE).map(damaged_record).collect();
            s.message = if out.damaged.is_empty() {
                format!("{} point(s) intact: {} chunk(s) re-read and re-hashed", s.points_verified, s.chunks_checked)
            } else {
                format!(
                    "{} damaged or missing chunk(s) seen by {} point(s); {} point(s) intact",
                    out.damaged.len(),
                    s.points_damaged,
                    s.points_verified
                )
            };
            if out.damaged.is_empty() {
                tracing::info!(pair = %pair_id, points = s.points_verified, chunks = s.chunks_checked, "verification: every point intact");
            } else {
                for d in out.damaged.iter().take(SAMPLE) {
                    task.step(&format!(
                        "disk {} chunk {} ({}): {}; seen by point(s) {:?}",
                        d.disk, d.chunk, d.hash, d.reason, d.points
                    ));
                    tracing::warn!(pair = %pair_id, disk = d.disk, chunk = d.chunk, hash = %d.hash, points = ?d.points, "verification: {}", d.reason);
                }
            }
        }
        Err(e) => {
            s.state = VerifyState::Failed;
            s.message = format!("verification failed: {e}");
            tracing::warn!(pair = %pair_id, "{}", s.message);
        }
    }
    super::metrics::verified(&pair_id, &s);
    let (intact, message) = (s.state == VerifyState::Done && s.points_damaged == 0, s.message.clone());
    *st.lock().expect("verify") = s.clone();
    let saved = h.update(&sb.store, |rec| {
        rec.last_successes.note_verify(&s);
        rec.verify = Some(s);
        Ok::<_, OpError>(())
    });
    if let Err(e) = saved {
        tracing::warn!(pair = %pair_id, "saving the verification result: {e:?}");
    }
    // Status shows the newest point with its marks.
    if let Ok(Some(p)) = sb.store.latest_point(pair_no) {
        h.runtime.lock().expect("runtime").last_point = Some(p);
    }
    if intact { task.ok(message) } else { task.fail(message) }
}

fn damaged_record(d: &Damaged) -> DamagedChunkRecord {
    DamagedChunkRecord {
        disk: d.disk,
        chunk: d.chunk,
        hash: d.hash.clone(),
        reason: d.reason.clone(),
        points: d.points.iter().copied().take(POINT_SAMPLE).collect(),
    }
}

/// A damaged chunk as a point's `damage` lists it.
fn damaged_chunk(d: &Damaged) -> DamagedChunk {
    DamagedChunk::from(&damaged_record(d))
}

/// Marks every verified point: `verified_at` when intact (clearing an old damage), else
/// its damage.
fn mark_points(sb: &Standby, pair_no: u32, out: &VerifyOutcome, at_ms: u64) -> Result<(), StoreError> {
    let at = rfc3339_ms(at_ms);
    let mut per_point: BTreeMap<u64, Vec<&Damaged>> = BTreeMap::new();
    for d in &out.damaged {
        for p in &d.points {
            per_point.entry(*p).or_default().push(d);
        }
    }
    for &id in &out.points {
        let _marks = POINT_MARKS.lock().unwrap_or_else(|e| e.into_inner());
        let Some(mut p) = sb.store.get_point(pair_no, id)? else { continue };
        match per_point.get(&id) {
            None => {
                p.verified_at = Some(at.clone());
                p.damage = None;
            }
            Some(ds) => {
                p.damage = Some(PointDamage {
                    found_at: at.clone(),
                    chunks: ds.len() as u64,
                    sample: ds.iter().take(POINT_SAMPLE).map(|d| damaged_chunk(d)).collect(),
                });
            }
        }
        sb.store.update_point(pair_no, &p)?;
    }
    Ok(())
}

/// The running or last verification.
pub fn status(h: &PairHandle) -> Option<VerifyStatus> {
    let rec = h.record.lock().expect("record").clone();
    status_of(&rec, &h.runtime.lock().expect("runtime"))
}

/// [`status`] from the record and the runtime.
pub fn status_of(rec: &super::pair::PairRecord, rt: &super::pair::PairRuntime) -> Option<VerifyStatus> {
    match &rt.verify {
        Some(s) => Some(s.lock().expect("verify").to_view()),
        None => rec.verify.as_ref().map(VerifyRecord::to_view),
    }
}
