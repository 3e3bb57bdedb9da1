//! Failback: the two sides of a failed-over pair made equal again, in the direction the
//! operator names (never guessed).
//!
//! 1. **Keeping the original**: the agent runs an online-verify pass (every chunk read and
//!    compared with the newest point, differing and changed chunks shipped), so the original
//!    side's state, divergent writes included, is committed as a pinned recovery point before
//!    anything is overwritten.
//! 2. **Comparing**: the agent holds; the recovered side is read and each chunk hashed and
//!    compared with that point (and with the failover point, for the report).
//! 3. **Writing**: only differing chunks move: `to-original` sends them to the agent, which
//!    writes them onto the original disk (they are stored first, so shipping them back costs
//!    their hashes); `to-recovered` writes the point's chunks onto the recovered side.
//! 4. **Checking** (`to-original`): replication resumes, a cut is asked for, and that point
//!    is compared with the recovered side's hashes: equal means the original disk is too.
//!
//! The recovered side is the recovered disks (`from`), or the newest point of the pair
//! protecting them (`from_protected`: a final point is cut after step 1 and compared by its
//! version index, so no disk is read: `recovered.rs`). A failback that ends the failover
//! stops the protecting agent.

use super::failback_error::FailbackError;
use super::recovered::{Recovered, Seen};
use super::target::{self, Side};
use super::{FailoverError, busy};
use crate::standby::Standby;
use crate::standby::pair::results::{FailbackDirection, FailbackPhase, FailbackRecord, JobState, SourceVerifyState};
use crate::standby::pair::{OpError, PairHandle, PairRecord, PairRuntime};
use crate::standby::tasks::Seen as TaskSeen;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::PairOp;
use drpair_store::{ChunkVersion, PointReadError, PointReader, StoredChunk};
use drpair_types::{DiskGeometry, Epoch, FailbackRequest, FailbackStatus, PointId, TaskKind};
use drpair_wire::{ChunkBody, ChunkItem, StandbyMsg, encode};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Chunks compared per step (one version-index scan, one read of the recovered side).
const SPAN: u64 = 256;
/// Payload bytes per write message to the agent.
const BATCH_BYTES: usize = 4 << 20;
/// How long the agent may take to write and sync, and the check's point to arrive.
const AGENT_TIMEOUT: Duration = Duration::from_secs(600);

fn same(v: Option<ChunkVersion>, seen: &Seen) -> bool {
    match (v, seen) {
        (None | Some(ChunkVersion::Zero), None) => true,
        (Some(ChunkVersion::Data(h)), Some(s)) => h == *s,
        _ => false,
    }
}

/// Starts a failback (checks everything first; nothing changes on a refusal).
pub async fn start(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    req: FailbackRequest,
) -> Result<FailbackStatus, FailoverError> {
    let rec = h.record.lock().expect("record").clone();
    if req.from_protected {
        if !req.from.is_empty() {
            return Err(FailoverError::Param(
                "from",
                "give the recovered disks (from) or take them from the protecting pair (from_protected), not both"
                    .into(),
            ));
        }
        if req.direction == Some(drpair_types::FailbackDirection::ToRecovered) {
            return Err(FailoverError::Param(
                "direction",
                "from_protected fails back to-original only: the protecting pair's point is written onto the original disks".into(),
            ));
        }
    }
    let direction = match req.direction {
        None if req.from_protected => Some(FailbackDirection::ToOriginal),
        d => d.map(FailbackDirection::from),
    };
    let Some(direction) = direction else {
        return Err(FailoverError::Param(
            "direction",
            "say which way the failback copies: \"to-original\" writes the recovered side's data onto the original disk (the original's current state is kept as a recovery point first), \"to-recovered\" writes the original side's data onto the recovered side and abandons the failover. A failback never guesses: either way one side's newer writes are overwritten".into(),
        ));
    };
    let disks: Vec<DiskGeometry> = failover_disks(&rec);
    if !req.from_protected && req.from.len() != disks.len() {
        return Err(FailoverError::Param(
            "from",
            format!(
                "the pair has {} disk(s): give the recovered side of each (block device or file on the standby), in disk order; got {}",
                disks.len(),
                req.from.len()
            ),
        ));
    }
    rec.lifecycle.apply(PairOp::Failback).map_err(|r| FailoverError::State(r.message))?;
    if sb.instant.running(rec.pair_id.as_str()) {
        return Err(FailoverError::State(
            "an instant failover's session still runs on the recovered disks (its guest or NBD export); stop it first: `drpair failover PAIR --stop-instant`".into(),
        ));
    }
    let Some(failover) = rec.failover.clone() else {
        return Err(FailoverError::State("the pair has no failover record".into()));
    };
    if failover.state != JobState::Done && direction == FailbackDirection::ToOriginal {
        return Err(FailoverError::State(format!(
            "the failover to point {} did not complete ({}); the recovered side is not a whole disk, so it cannot be copied onto the original. Run failover again, or fail back with --direction to-recovered",
            failover.point, failover.message
        )));
    }
    let recovered = if req.from_protected {
        Recovered::Protected(super::from_protected::prepare(sb, &rec, &disks)?)
    } else {
        let from = super::allowed(sb, &req.from, "from")?;
        target::distinct(&from).map_err(|e| FailoverError::side("from", e))?;
        let mut sides = Vec::new();
        for (p, g) in from.iter().zip(&disks) {
            let write = direction == FailbackDirection::ToRecovered;
            sides.push(target::open_source(p, g.size_bytes, write).map_err(|e| FailoverError::side("from", e))?);
        }
        Recovered::Disks(sides)
    };
    let by = req.operator.clone().unwrap_or_else(|| "api".into());
    let source = match &recovered {
        Recovered::Protected(p) => format!("the newest point of the protecting pair '{}'", p.pair),
        Recovered::Disks(_) => req.from.join(", "),
    };
    let first = format!("failback {} from {source}", direction.as_str());
    let task = sb.tasks.start(TaskKind::Failback, &rec.pair_id, &by, &first);
    let status = FailbackRecord {
        pair_id: rec.pair_id.clone(),
        state: JobState::Running,
        phase: FailbackPhase::KeepingOriginal,
        direction,
        from: req.from.clone(),
        failover_point: failover.point,
        original_point: None,
        original_changed_chunks: 0,
        recovered_changed_chunks: 0,
        differing_chunks: 0,
        chunks_compared: 0,
        chunks_total: disks.iter().map(|g| g.chunk_count()).sum(),
        chunks_moved: 0,
        bytes_moved: 0,
        progress_percent: 0.0,
        check_point: None,
        check_mismatched_chunks: None,
        started_at: rfc3339_ms(now_ms()),
        finished_at: None,
        operator: req.operator.clone(),
        message: "the agent reads every chunk of the original disk and ships what differs: its state is kept as a recovery point before anything is overwritten".into(),
        task: Some(task.id()),
        from_protected: None,
    };
    {
        let mut rt = h.runtime.lock().expect("runtime");
        let started = busy(&rt).and_then(|()| {
            if rt.session.is_none() {
                return Err(FailoverError::State(
                    "the original side's agent is not connected: start `drpaird agent` on the original server (it holds, failed over) and fail back again".into(),
                ));
            }
            h.update(&sb.store, |rec| {
                rec.lifecycle = rec.lifecycle.apply(PairOp::Failback).map_err(|r| FailoverError::State(r.message))?;
                // Recorded as running, so a standby stopped under it records it as failed.
                rec.failback = Some(status.clone());
                Ok::<_, FailoverError>(())
            })
        });
        if let Err(e) = started {
            task.fail(format!("not started: {e}"));
            return Err(e);
        }
        rt.failback = Some(Arc::new(Mutex::new(status.clone())));
        rt.failback_ships = true;
    }
    tracing::warn!(pair = %rec.pair_id, direction = direction.as_str(), from = ?req.from, operator = ?req.operator, "FAILBACK started: {}", status.message);
    h.send_run_mode();
    let (sb2, h2) = (sb.clone(), h.clone());
    tokio::spawn(async move {
        let job = h2.runtime.lock().expect("runtime").failback.clone().expect("set by start");
        let look = job.clone();
        task.follow(move || {
            let j = look.lock().expect("failback");
            match j.state {
                JobState::Running => TaskSeen::Running { percent: j.progress_percent, message: j.message.clone() },
                JobState::Done => TaskSeen::Done(j.message.clone()),
                _ => TaskSeen::Failed(j.message.clone()),
            }
        });
        let r = run(&sb2, &h2, &job, recovered, direction, failover.epoch).await;
        finish(&sb2, &h2, &job, r);
    });
    Ok(status.to_view())
}

fn set(job: &Mutex<FailbackRecord>, f: impl FnOnce(&mut FailbackRecord)) {
    f(&mut job.lock().expect("failback"));
}

async fn run(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    job: &Arc<Mutex<FailbackRecord>>,
    mut recovered: Recovered,
    direction: FailbackDirection,
    failover_epoch: Epoch,
) -> Result<(), FailbackError> {
    // 1. The original side's state, committed.
    let original = keep_original(sb, h).await?;
    let pair_no = h.record.lock().expect("record").pair_no;
    super::pin(sb, pair_no, original).map_err(|e| FailbackError::Store(format!("pinning point {original}: {e:?}")))?;
    set(job, |j| {
        j.original_point = Some(original);
        j.phase = FailbackPhase::Comparing;
        j.message = format!(
            "the original side's state is kept as point {} (pinned); comparing the recovered side with it",
            original
        );
    });
    // 2. Hold the agent, and compare with the newest point (the original's state).
    h.runtime.lock().expect("runtime").failback_ships = false;
    h.send_run_mode();
    wait_idle(h).await;
    if let Recovered::Protected(p) = &mut recovered {
        set(job, |j| j.message = format!("asking the protecting pair '{}' for its final point", p.pair));
        super::from_protected::final_point(sb, p).await?;
        let source = crate::standby::pair::protection::ProtectedSourceRecord { pair: p.pair.clone(), point: p.point };
        set(job, |j| {
            j.message = format!(
                "the original side's state is kept as point {original}; comparing point {} of the protecting pair '{}' with it",
                p.point, p.pair
            );
            j.from_protected = Some(source);
        });
    }
    let (sb2, h2, job2) = (sb.clone(), h.clone(), job.clone());
    let cmp = tokio::task::spawn_blocking(move || {
        compare(&sb2, &h2, &job2, &recovered, failover_epoch).map(|c| (c, recovered))
    })
    .await
    .map_err(FailbackError::worker)??;
    let (cmp, recovered) = cmp;
    set(job, |j| {
        j.phase = FailbackPhase::Writing;
        j.message = format!("{} chunk(s) differ; writing them {}", j.differing_chunks, direction.as_str());
    });
    // 3. Only the differing chunks move.
    match direction {
        FailbackDirection::ToOriginal => to_original(sb, h, job, &recovered, &cmp).await?,
        FailbackDirection::ToRecovered => {
            let (sb2, h2, job2) = (sb.clone(), h.clone(), job.clone());
            let Recovered::Disks(sides) = recovered else {
                return Err(FailbackError::State("a failback to-recovered needs the recovered disks".into()));
            };
            tokio::task::spawn_blocking(move || to_recovered(&sb2, &h2, &job2, &sides, &cmp))
                .await
                .map_err(FailbackError::worker)??;
            return Ok(());
        }
    }
    // 4. Replication resumes; the first point after it must equal the recovered side.
    check(sb, h, job, cmp).await
}

/// Asks the agent for an online-verify pass and waits for its point (the repair point: its
/// id is its epoch).
async fn keep_original(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Result<PointId, FailbackError> {
    super::super::source_verify::request(sb, h)
        .await
        .map_err(|e| FailbackError::Agent(format!("asking the agent to read its disks: {e:?}")))?;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let v = h.record.lock().expect("record").source_verify.clone();
        let Some(v) = v else { return Err(FailbackError::Agent("the verify request vanished".into())) };
        if v.state.is_active() {
            continue;
        }
        let Some(point) = v.repair_point else {
            return Err(FailbackError::Agent(format!(
                "the original side's state could not be committed: {}",
                v.message
            )));
        };
        if v.state != SourceVerifyState::Done {
            tracing::warn!(pair = %h.record.lock().expect("record").pair_id, "failback: {}", v.message);
        }
        return Ok(point);
    }
}

/// Waits (up to 10 s) until the agent has no epoch in flight: the newest epoch it reported
/// progress for is committed (it was told to hold, so no new one starts).
async fn wait_idle(h: &PairHandle) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _ in 0..50 {
        {
            let rt = h.runtime.lock().expect("runtime");
            let committed = rt.last_point.as_ref().map_or(0, |p| p.epoch);
            if rt.progress.pass.is_none() || rt.progress.epoch <= committed {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The comparison of the recovered side with the original's point.
struct Compared {
    /// The point compared with (the newest when the agent was held).
    against: Epoch,
    /// Per disk, per chunk: what the recovered side holds.
    seen: Vec<Vec<Seen>>,
    /// (disk, chunk) where the sides differ.
    differing: Vec<(u32, u64)>,
}

fn compare(
    sb: &Standby,
    h: &PairHandle,
    job: &Mutex<FailbackRecord>,
    recovered: &Recovered,
    failover_epoch: Epoch,
) -> Result<Compared, FailbackError> {
    let (pair_no, disks) = {
        let r = h.record.lock().expect("record");
        (r.pair_no, failover_disks(&r))
    };
    let store = &sb.store;
    let latest = store
        .latest_point(pair_no)
        .map_err(FailbackError::store)?
        .ok_or_else(|| FailbackError::Store("the pair has no point".into()))?;
    let mut out = Compared { against: latest.epoch, seen: vec![], differing: vec![] };
    let (mut orig_changed, mut rec_changed, mut compared) = (0u64, 0u64, 0u64);
    for (d, g) in disks.iter().enumerate() {
        let d32 = d as u32;
        let point = PointReader::new(store, pair_no, d32, *g, latest.epoch);
        let failover = PointReader::new(store, pair_no, d32, *g, failover_epoch);
        let mut seen = Vec::with_capacity(g.chunk_count() as usize);
        let cs = g.chunk_size.bytes() as u64;
        let mut buf = vec![0u8; (SPAN * cs) as usize];
        let mut first = 0;
        while first < g.chunk_count() {
            let count = SPAN.min(g.chunk_count() - first);
            let at_point = point.versions(first, count).map_err(FailbackError::store)?;
            let at_failover = failover.versions(first, count).map_err(FailbackError::store)?;
            let span = recovered.seen(store, d32, g, first, count, &mut buf)?;
            for (i, s) in span.into_iter().enumerate() {
                let c = first + i as u64;
                if !same(at_point[i], &s) {
                    out.differing.push((d32, c));
                }
                if !same(at_failover[i], &s) {
                    rec_changed += 1;
                }
                if at_point[i] != at_failover[i] {
                    orig_changed += 1;
                }
                seen.push(s);
            }
            compared += count;
            first += count;
            set(job, |j| {
                j.chunks_compared = compared;
                j.differing_chunks = out.differing.len() as u64;
                j.original_changed_chunks = orig_changed;
                j.recovered_changed_chunks = rec_changed;
                j.progress_percent = (compared as f64 * 500.0 / j.chunks_total.max(1) as f64).round() / 10.0;
            });
        }
        out.seen.push(seen);
    }
    Ok(out)
}

/// Progress: comparing is the first half, moving the second.
fn moved(job: &Mutex<FailbackRecord>, chunks: u64, bytes: u64) {
    set(job, |j| {
        j.chunks_moved += chunks;
        j.bytes_moved += bytes;
        let frac = j.chunks_moved as f64 / j.differing_chunks.max(1) as f64;
        j.progress_percent = ((50.0 + 50.0 * frac) * 10.0).round() / 10.0;
    });
}

async fn to_original(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    job: &Mutex<FailbackRecord>,
    recovered: &Recovered,
    cmp: &Compared,
) -> Result<(), FailbackError> {
    let (pair, disks): (String, Vec<DiskGeometry>) = {
        let rec = h.record.lock().expect("record");
        (rec.pair_id.to_string(), failover_disks(&rec))
    };
    let session = h
        .runtime
        .lock()
        .expect("runtime")
        .session
        .clone()
        .ok_or_else(|| FailbackError::Agent("the agent disconnected".into()))?;
    let req = sb.next_request();
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.runtime.lock().expect("runtime").failback_waiters.insert(req, tx);
    let mut batch: Vec<ChunkItem> = vec![];
    let mut batch_bytes = 0usize;
    let lost = || {
        FailbackError::Agent(
            "the agent disconnected during the failback writes; the pair stays failed over: fail back again".into(),
        )
    };
    // The agent takes writes only for a failback of its own pair announced while it is held.
    let begin = StandbyMsg::FailbackBegin { req, pair_id: pair };
    session.tx.send(encode(&begin).map_err(|e| FailbackError::Worker(e.to_string()))?).await.map_err(|_| lost())?;
    for (i, &(d, c)) in cmp.differing.iter().enumerate() {
        let g = &disks[d as usize];
        let body = match cmp.seen[d as usize][c as usize] {
            None => ChunkBody::Zero,
            Some(hash) => {
                let data = tokio::task::block_in_place(|| recovered.chunk(&sb.store, d, g, c))?;
                let packed = zstd::bulk::compress(&data, 3).map_err(|e| FailbackError::Worker(e.to_string()))?;
                let (compressed, payload) = if packed.len() < data.len() { (true, packed) } else { (false, data) };
                let raw_len = g.chunk_len(c);
                // Stored first: the agent ships these chunks back as hashes after the failback.
                let chunk = StoredChunk { compressed, raw_len, payload: &payload };
                tokio::task::block_in_place(|| sb.store.put_chunk(&hash, chunk)).map_err(FailbackError::store)?;
                ChunkBody::Data { hash, raw_len, compressed, payload }
            }
        };
        batch_bytes += match &body {
            ChunkBody::Data { payload, .. } => payload.len(),
            _ => 16,
        };
        batch.push(ChunkItem { disk: d, index: c, body });
        if batch_bytes >= BATCH_BYTES || batch.len() >= 1024 || i + 1 == cmp.differing.len() {
            let (n, bytes) = (batch.len() as u64, batch.iter().map(|it| g_len(&disks, it)).sum());
            let m = StandbyMsg::FailbackWrite { req, items: std::mem::take(&mut batch) };
            session.tx.send(encode(&m).map_err(|e| FailbackError::Worker(e.to_string()))?).await.map_err(|_| lost())?;
            moved(job, n, bytes);
            batch_bytes = 0;
        }
    }
    session.tx.send(encode(&StandbyMsg::FailbackEnd { req }).expect("encode")).await.map_err(|_| lost())?;
    let answer = tokio::time::timeout(AGENT_TIMEOUT, rx)
        .await
        .map_err(|_| FailbackError::Agent("the agent did not confirm its writes within 10 minutes".into()))?
        .map_err(|_| lost())?;
    let wrote = answer?;
    if wrote.chunks != cmp.differing.len() as u64 {
        return Err(FailbackError::Agent(format!(
            "the agent wrote {} chunk(s), not {}",
            wrote.chunks,
            cmp.differing.len()
        )));
    }
    Ok(())
}

fn g_len(disks: &[DiskGeometry], it: &ChunkItem) -> u64 {
    u64::from(disks[it.disk as usize].chunk_len(it.index))
}

fn to_recovered(
    sb: &Standby,
    h: &PairHandle,
    job: &Mutex<FailbackRecord>,
    sides: &[Side],
    cmp: &Compared,
) -> Result<(), FailbackError> {
    let (pair_no, disks) = {
        let r = h.record.lock().expect("record");
        (r.pair_no, failover_disks(&r))
    };
    let points: Vec<PointReader> =
        (0u32..).zip(&disks).map(|(d, g)| PointReader::new(&sb.store, pair_no, d, *g, cmp.against)).collect();
    for &(d, c) in &cmp.differing {
        let g = &disks[d as usize];
        let data = match points[d as usize].chunk(c) {
            Ok(chunk) => chunk.into_bytes(),
            // A chunk the point never had is zeros on the recovered side too.
            Err(PointReadError::NoVersion { .. }) => vec![0u8; g.chunk_len(c) as usize],
            Err(e) => return Err(FailbackError::store(e)),
        };
        let side = &sides[d as usize];
        let at = c * g.chunk_size.bytes() as u64;
        side.file
            .write_all_at(&data, at)
            .map_err(|e| FailbackError::Disk(format!("{}: write at byte {at} failed: {e}", side.path.display())))?;
        moved(job, 1, data.len() as u64);
    }
    for s in sides {
        s.sync().map_err(|e| FailbackError::Disk(format!("{}: sync failed: {e}", s.path.display())))?;
    }
    Ok(())
}

/// Resumes replication and compares the first point after the failback with the recovered
/// side; records the result (a mismatch means the original disk was written meanwhile).
async fn check(
    sb: &Arc<Standby>,
    h: &Arc<PairHandle>,
    job: &Mutex<FailbackRecord>,
    cmp: Compared,
) -> Result<(), FailbackError> {
    let mut commits = h.commits.subscribe();
    end_failover(sb, h, true)?;
    set(job, |j| {
        j.phase = FailbackPhase::Checking;
        j.message = "the original disk was written; replication resumed, waiting for its first point to compare".into();
    });
    let session = h.runtime.lock().expect("runtime").session.clone();
    if let Some(s) = session {
        let ask = StandbyMsg::CutRequest { request_id: sb.next_request(), quiesce: None };
        let _ = s.tx.send(encode(&ask).expect("encode")).await;
    }
    let point = tokio::time::timeout(AGENT_TIMEOUT, async {
        loop {
            match commits.recv().await {
                Ok(c) if c.point.epoch > cmp.against => return Some(c.point),
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    let Some(point) = point else {
        set(job, |j| j.message = "replication resumed, but no point was committed within 10 minutes to check".into());
        return Ok(());
    };
    let (pair_no, disks) = {
        let r = h.record.lock().expect("record");
        (r.pair_no, failover_disks(&r))
    };
    let (store, seen, epoch) = (sb.store.clone(), cmp.seen, point.epoch);
    let mismatched = tokio::task::spawn_blocking(move || -> Result<u64, FailbackError> {
        let mut n = 0;
        for ((d, disk), g) in (0u32..).zip(&seen).zip(disks) {
            let point = PointReader::new(&store, pair_no, d, g, epoch);
            let mut first = 0u64;
            while first < disk.len() as u64 {
                let count = SPAN.min(disk.len() as u64 - first);
                let vs = point.versions(first, count).map_err(FailbackError::store)?;
                n += vs.iter().zip(&disk[first as usize..]).filter(|(v, s)| !same(**v, s)).count() as u64;
                first += count;
            }
        }
        Ok(n)
    })
    .await
    .map_err(FailbackError::worker)??;
    set(job, |j| {
        j.check_point = Some(point.id);
        j.check_mismatched_chunks = Some(mismatched);
    });
    if mismatched > 0 {
        return Err(FailbackError::Mismatch(format!(
            "point {} of the original side differs from the recovered side in {mismatched} chunk(s): the original disk was written during the failback. Replication goes on from the original side",
            point.id
        )));
    }
    Ok(())
}

/// The disks of the point failed over to (a point from before a disk grew keeps the old
/// size): both sides of a failback have them.
fn failover_disks(r: &PairRecord) -> Vec<DiskGeometry> {
    r.geometries_at(r.failover.as_ref().map_or(Epoch::MAX, |f| f.epoch))
}

/// Ends the failover: `done` resumes replication, else the pair stays failed over.
fn end_failover(sb: &Standby, h: &PairHandle, done: bool) -> Result<(), FailbackError> {
    {
        let mut rt = h.runtime.lock().expect("runtime");
        h.update(&sb.store, |rec| {
            if rec.lifecycle.state == drpair_types::PairState::FailingBack {
                rec.lifecycle = rec.lifecycle.apply(PairOp::FailbackEnded { done })?;
                if done {
                    rec.failover = None;
                }
            }
            Ok(())
        })
        .map_err(|e| match e {
            OpError::Refused(r) => FailbackError::State(r.message),
            e => FailbackError::Store(format!("{e:?}")),
        })?;
        rt.failback_ships = false;
    }
    h.send_run_mode();
    Ok(())
}

fn finish(sb: &Arc<Standby>, h: &Arc<PairHandle>, job: &Mutex<FailbackRecord>, r: Result<(), FailbackError>) {
    let failed_early =
        r.is_err() && h.record.lock().expect("record").lifecycle.state == drpair_types::PairState::FailingBack;
    let ended = match (&r, failed_early) {
        (Ok(()), _) => end_failover(sb, h, true),
        (Err(_), true) => end_failover(sb, h, false),
        // The check failed after replication resumed: the failover is over either way.
        (Err(_), false) => Ok(()),
    };
    let status = {
        let mut j = job.lock().expect("failback");
        j.finished_at = Some(rfc3339_ms(now_ms()));
        j.phase = FailbackPhase::Finished;
        match (&r, &ended) {
            (Ok(()), Ok(())) => {
                j.state = JobState::Done;
                j.progress_percent = 100.0;
                j.message = format!(
                    "the sides are equal: {} differing chunk(s) ({} bytes) written {}; the original's state before the failback is point {}{}. Replication resumed from the original side",
                    j.chunks_moved,
                    j.bytes_moved,
                    j.direction.as_str(),
                    j.original_point.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
                    match (j.check_point, j.check_mismatched_chunks) {
                        (Some(p), Some(0)) => format!("; point {p} equals the recovered side"),
                        _ => String::new(),
                    }
                );
            }
            (Err(e), _) | (_, Err(e)) => {
                j.state = JobState::Failed;
                j.message = if failed_early {
                    format!("failback failed: {e}; the pair stays failed over, fail back again")
                } else {
                    format!("failback finished with a problem: {e}")
                };
            }
        }
        j.clone()
    };
    match status.state {
        JobState::Done => tracing::warn!(pair = %status.pair_id, "FAILBACK done: {}", status.message),
        _ => tracing::error!(pair = %status.pair_id, "FAILBACK: {}", status.message),
    }
    let mut rt = h.runtime.lock().expect("runtime");
    let saved = h.update(&sb.store, |rec| {
        rec.failback = Some(status);
        Ok::<_, OpError>(())
    });
    if let Err(e) = saved {
        tracing::error!("recording the failback's end: {e:?}");
    }
    rt.failback = None;
    drop(rt);
    // The failover is over: the recovered disks are no longer the source to protect.
    let ended = {
        let r = h.record.lock().expect("record");
        r.failover.is_none() && r.protected_by.as_ref().is_some_and(|p| p.state.active())
    };
    if ended {
        let (sb, h) = (sb.clone(), h.clone());
        std::thread::spawn(move || {
            if let Err(e) = crate::standby::protect::stop(&sb, &h, "the failback ended the failover") {
                tracing::error!("stopping the protection of the recovered disks: {e}");
            }
        });
    }
}

/// Status field `failback`: the running job's live figures, else the last one's.
pub fn status(rec: &PairRecord, rt: &PairRuntime) -> Option<FailbackStatus> {
    match &rt.failback {
        Some(j) => Some(j.lock().expect("failback").to_view()),
        None => rec.failback.as_ref().map(FailbackRecord::to_view),
    }
}

pub fn explanation(rt: &PairRuntime) -> String {
    match &rt.failback {
        Some(j) => {
            let j = j.lock().expect("failback");
            format!("Failing back ({}, {:.0}%): {}.", j.direction.as_str(), j.progress_percent, j.message)
        }
        None => "Failing back.".into(),
    }
}

/// A failback running when the standby stopped: the pair is failed over again, the failback
/// recorded as failed.
pub fn after_restart(rec: &mut PairRecord) -> bool {
    if rec.lifecycle.state != drpair_types::PairState::FailingBack {
        return false;
    }
    if let Ok(l) = rec.lifecycle.apply(PairOp::FailbackEnded { done: false }) {
        rec.lifecycle = l;
    }
    if let Some(f) = rec.failback.as_mut().filter(|f| f.state == JobState::Running) {
        f.state = JobState::Failed;
        f.phase = FailbackPhase::Finished;
        f.finished_at = Some(rfc3339_ms(now_ms()));
        f.message = "the standby stopped during the failback; the pair is failed over again: fail back again".into();
    }
    true
}
