//! Failover drills: a recovery point served as writable, throw-away NBD exports (one TCP
//! listener on loopback per drill, one export per disk), while replication and retention go
//! on. The point is pinned while a drill uses it. Each drill leaves evidence in the pair's
//! record: the point and its age (RPO), the time from request to ready (RTO of the data), the
//! check command's result, who ran it and when; the point is tagged `tested_at`, and a drill
//! that passes (served, its check if any exited 0, its guest if asked booted: `outcome.rs`)
//! is the pair's last drill success. Drills end by themselves after their time-to-live.
//! A drill may boot the point in a QEMU guest on the standby and watch its console
//! (`guest/`), leaving a console log and a screenshot as evidence (`evidence.rs`).
//!
//! Serving runs on plain threads, away from the runtime that replicates: one per connection
//! reads its requests, and a few per connection serve its reads at once (blocking reads of
//! the store; `drpair_nbd::transmission_split`), answered as they complete.

mod check;
pub mod disk;
pub mod evidence;
pub mod guest;
pub mod live;
mod outcome;
pub mod readahead;
mod records;
pub mod sandbox;

pub use live::Drills;
use live::Live;
use records::record;
pub use records::records;

use super::Standby;
use super::pair::PairHandle;
use crate::timefmt::{now_ms, rfc3339_ms};
use disk::DrillDisk;
use drpair_nbd::{BlockDev, Export};
use drpair_store::PointReader;
use drpair_types::{
    BootState, DrillCheck, DrillExport, DrillRequest, DrillState, DrillStatus, RecoveryPoint, TaskKind,
};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default time-to-live of a drill.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);
/// Allowed time-to-live.
pub const TTL_RANGE: std::ops::RangeInclusive<u64> = 5..=7 * 24 * 3600;
pub use check::CHECK_TIMEOUT;
/// Held by a prune from its last look at the drills' pins through its deletions, and by a
/// drill while it pins its point and checks that it still exists.
pub static PIN_GATE: Mutex<()> = Mutex::new(());

/// Why a drill cannot start.
#[derive(Debug)]
pub enum DrillError {
    /// A bad request: the parameter and why.
    Param(&'static str, String),
    PointNotFound(String),
    State(String),
    Internal(String),
}

/// The point a request names, among `points` (oldest first); without one, the latest
/// recoverable point and why.
fn choose(points: &[RecoveryPoint], req: &DrillRequest) -> Result<(RecoveryPoint, Option<String>), DrillError> {
    let asked = usize::from(req.point.is_some()) + usize::from(req.time.is_some()) + usize::from(req.latest);
    if asked > 1 {
        return Err(DrillError::Param("point", "give one of point, time or latest".into()));
    }
    if let Some(id) = req.point {
        return points.iter().find(|p| p.id == id).cloned().map(|p| (p, None)).ok_or_else(|| {
            DrillError::PointNotFound(format!(
                "recovery point {id} does not exist (never cut, or removed by retention)"
            ))
        });
    }
    if let Some(t) = &req.time {
        let ms = drpair_types::parse_time_ms(t).map_err(|e| DrillError::Param("time", e.to_string()))?;
        return points
            .iter()
            .rev()
            .find(|p| p.time_unix_ms <= ms)
            .cloned()
            .map(|p| (p, None))
            .ok_or_else(|| DrillError::PointNotFound(format!("no recovery point was cut at or before {t}")));
    }
    drpair_types::latest_recoverable(points)
        .map(|c| (c.point.clone(), Some(c.reason)))
        .ok_or_else(|| DrillError::State("the pair has no recovery point yet".into()))
}

/// Pins `point` for a drill (retention keeps it), or recomputes the pins after a drill ended.
fn repin(sb: &Standby, h: &PairHandle) {
    let pair = h.record.lock().expect("record").pair_id.clone();
    let used: std::collections::HashSet<u64> = sb
        .drills
        .live
        .lock()
        .expect("drills")
        .values()
        .filter(|l| l.status.lock().expect("drill").pair_id == pair)
        .map(|l| l.status.lock().expect("drill").point)
        .collect();
    h.runtime.lock().expect("runtime").drill_points = used;
}

/// Starts a drill of `h` as `req` asks: ready when this returns (exports listening).
pub fn start(sb: &Arc<Standby>, h: &Arc<PairHandle>, req: DrillRequest) -> Result<DrillStatus, DrillError> {
    let t0 = Instant::now();
    let requested = now_ms();
    let ttl = match req.ttl_seconds {
        None => DEFAULT_TTL,
        Some(s) if TTL_RANGE.contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return Err(DrillError::Param(
                "ttl_seconds",
                format!("{s} is outside {}..={} seconds", TTL_RANGE.start(), TTL_RANGE.end()),
            ));
        }
    };
    if req.check.as_deref().is_some_and(|c| c.trim().is_empty()) {
        return Err(DrillError::Param("check", "the check command is empty".into()));
    }
    // Checked, with the host (QEMU, OVMF, memory), before anything is pinned or served.
    let boot = req.boot.as_ref().map(|b| guest::plan(b, ttl)).transpose().map_err(|(p, m)| DrillError::Param(p, m))?;
    let accel = guest::accel();
    let (pair_id, pair_no) = {
        let rec = h.record.lock().expect("record");
        (rec.pair_id.clone(), rec.pair_no)
    };
    let points = sb.store.list_points(pair_no).map_err(|e| DrillError::Internal(e.to_string()))?;
    let (point, why) = choose(&points, &req)?;
    // The point's own disks: a point from before a disk grew keeps the old size.
    let disks = h.record.lock().expect("record").geometries_at(point.epoch);
    let id = format!("{pair_id}-{requested}-{}", sb.drills.next.fetch_add(1, Ordering::Relaxed));

    // Pin, and make sure the point is still there, under the gate a prune holds from its last
    // look at the pins to its deletions: the prune either removed the point before (refused
    // below) or sees the pin.
    let still = {
        let _gate = PIN_GATE.lock().unwrap_or_else(|e| e.into_inner());
        h.runtime.lock().expect("runtime").drill_points.insert(point.id);
        sb.store.get_point(pair_no, point.id).map_err(|e| DrillError::Internal(e.to_string()))?
    };
    if still.is_none() {
        repin(sb, h);
        return Err(DrillError::PointNotFound(format!("recovery point {} was removed by retention", point.id)));
    }

    let by = req.operator.clone().filter(|o| !o.trim().is_empty()).unwrap_or_else(|| "api".into());
    let task = sb.tasks.start(
        TaskKind::DrillStart,
        &pair_id,
        &by,
        &format!("drill {id}: point {} pinned; preparing {} export(s)", point.id, disks.len()),
    );
    if let Some(why) = &why {
        task.step(&format!("latest: {why}"));
        tracing::info!(pair = %pair_id, drill = %id, "latest: {why}");
    }
    let dir = sb.data_dir.join("drills").join(&id);
    let built = (|| -> std::io::Result<(Vec<Arc<DrillDisk>>, TcpListener)> {
        std::fs::create_dir_all(&dir)?;
        let mut v = Vec::new();
        for (i, g) in disks.iter().enumerate() {
            let scratch = dir.join(format!("disk{i}.overlay"));
            let reader = PointReader::new(&sb.store, pair_no, i as u32, *g, point.epoch);
            v.push(Arc::new(DrillDisk::new(reader, &scratch)?));
        }
        Ok((v, TcpListener::bind("127.0.0.1:0")?))
    })();
    let (drill_disks, listener) = match built {
        Ok(x) => x,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            repin(sb, h);
            task.fail(format!("preparing the drill's exports: {e}"));
            return Err(DrillError::Internal(format!("preparing the drill's exports: {e}")));
        }
    };
    let addr = listener.local_addr().map_err(|e| DrillError::Internal(e.to_string()))?;
    // Any local user can reach the port: the export names hold a secret of this drill, which
    // only the API (its URIs) tells.
    let secret = drpair_tls::random_secret();
    let exports: Vec<Export> = drill_disks
        .iter()
        .enumerate()
        .map(|(i, d)| Export {
            name: format!("disk{i}-{secret}"),
            dev: d.clone() as Arc<dyn BlockDev>,
            read_only: false,
        })
        .collect();
    let status = DrillStatus {
        id: id.clone(),
        pair_id: pair_id.clone(),
        state: DrillState::Running,
        point: point.id,
        point_time: point.time.clone(),
        point_age_seconds: requested.saturating_sub(point.time_unix_ms) as f64 / 1000.0,
        requested_at: rfc3339_ms(requested),
        ready_ms: 0.0,
        expires_at: rfc3339_ms(requested + ttl.as_millis() as u64),
        ended_at: None,
        operator: req.operator.clone().filter(|o| !o.trim().is_empty()).unwrap_or_else(|| "unknown".into()),
        exports: exports
            .iter()
            .zip(&disks)
            .enumerate()
            .map(|(i, (e, g))| DrillExport {
                disk: i as u32,
                uri: format!("nbd://{addr}/{}", e.name),
                size_bytes: g.size_bytes,
                written_chunks: 0,
            })
            .collect(),
        check: req.check.as_ref().map(|c| DrillCheck {
            command: c.clone(),
            exit_code: None,
            passed: None,
            output: String::new(),
            duration_ms: None,
        }),
        message: format!(
            "serving point {} over NBD at {addr} (only on this host; each export's name holds the drill's secret, as in its URI); writes go to a scratch overlay, discarded at the end{}",
            point.id,
            if boot.is_some() { format!("; booting it in a QEMU guest ({})", accel.name()) } else { String::new() }
        ),
        boot: boot.as_ref().map(|p| guest::initial(p, accel)),
    };
    let live = Arc::new(Live {
        status: Mutex::new(status),
        pair: h.clone(),
        disks: drill_disks,
        dir,
        addr,
        stopping: AtomicBool::new(false),
        conns: Default::default(),
        guest: Mutex::new(None),
        noted: AtomicBool::new(false),
    });
    sb.drills.live.lock().expect("drills").insert(id.clone(), live.clone());
    spawn_accept(listener, exports, live.clone());
    let ready_ms = (t0.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    live.status.lock().expect("drill").ready_ms = ready_ms;
    mark_tested(sb, pair_no, point.id);
    let s = live.snapshot();
    record(sb, h, &s);
    if req.check.is_none() && boot.is_none() {
        live.noted.store(true, Ordering::Release);
        outcome::passed(sb, h, &s, "exports served (no check)");
    }
    if let Some(plan) = boot {
        *live.guest.lock().expect("guest") = Some(guest::start(sb, &live, plan, accel));
    }
    tracing::info!(pair = %pair_id, drill = %id, point = point.id, ready_ms, %addr, "drill ready");

    let (sb2, id2) = (sb.clone(), id.clone());
    tokio::spawn(async move {
        tokio::time::sleep(ttl).await;
        // Stopping waits for the guest, if any, to be gone: off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || stop(&sb2, &id2, DrillState::Expired)).await;
    });
    let uris: Vec<&str> = s.exports.iter().map(|e| e.uri.as_str()).collect();
    let ready = format!("ready in {ready_ms} ms: {}", uris.join(", "));
    if req.check.is_some() || s.boot.is_some() {
        task.step(&ready);
        if let Some(cmd) = &req.check {
            task.step(&format!("running the check: {cmd}"));
        }
        if let Some(b) = &s.boot {
            task.step(&format!(
                "booting the point: QEMU ({}, {} MiB, {} CPU(s), {}), waiting up to {} s for '{}' on its console",
                b.accel, b.memory_mib, b.cpus, b.firmware, b.timeout_seconds, b.expect
            ));
        }
        let look = live.clone();
        task.follow(move || outcome::seen(&look.snapshot()));
        if let Some(cmd) = req.check {
            let (sb2, live2) = (sb.clone(), live.clone());
            tokio::spawn(async move { check::run_check(&sb2, &live2, &cmd).await });
        }
    } else {
        task.ok(ready);
    }
    Ok(s)
}

/// Tags the point `tested_at` now (under the point marks lock, like pins and verification).
fn mark_tested(sb: &Standby, pair_no: u32, point: u64) {
    let _marks = super::verify::POINT_MARKS.lock().unwrap_or_else(|e| e.into_inner());
    match sb.store.get_point(pair_no, point) {
        Ok(Some(mut p)) => {
            p.tested_at = Some(rfc3339_ms(now_ms()));
            if let Err(e) = sb.store.update_point(pair_no, &p) {
                tracing::error!(point, "tagging the point tested: {e}");
            }
        }
        Ok(None) => {}
        Err(e) => tracing::error!(point, "tagging the point tested: {e}"),
    }
}

/// Clients of one drill at once: each may hold read buffers of up to `drpair_nbd::MAX_IN_FLIGHT`
/// and a write buffer of up to `drpair_nbd::MAX_REQUEST` (and each disk of the drill holds at
/// most `readahead::CACHE_BYTES` read ahead, whatever the clients).
const MAX_DRILL_CLIENTS: usize = 8;
/// Threads serving one connection's reads at once (each chunk read is decompressed and
/// blake3-verified: CPU work), one per core, at least 2 and at most 4.
fn nbd_workers() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}
/// Longest a client may take for the NBD handshake.
const NBD_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn spawn_accept(listener: TcpListener, exports: Vec<Export>, live: Arc<Live>) {
    std::thread::Builder::new()
        .name(format!("drill-{}", live.status.lock().expect("drill").id))
        .spawn(move || {
            let mut next = 0u64;
            for conn in listener.incoming() {
                if live.stopping.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let id = live.status.lock().expect("drill").id.clone();
                {
                    let mut conns = live.conns.lock().expect("conns");
                    if conns.len() >= MAX_DRILL_CLIENTS {
                        tracing::warn!(drill = %id, "refused an NBD client: {MAX_DRILL_CLIENTS} are connected already");
                        continue;
                    }
                    match conn.try_clone() {
                        Ok(c) => {
                            next += 1;
                            conns.insert(next, c);
                        }
                        Err(_) => continue,
                    }
                }
                let (exports, conns, n) = (exports.clone(), live.conns.clone(), next);
                std::thread::spawn(move || {
                    let r = serve_client(conn, &exports);
                    // Ended: its socket is closed now, not at the drill's end.
                    conns.lock().expect("conns").remove(&n);
                    match r {
                        Ok(st) => tracing::debug!(drill = %id, ?st, "nbd client done"),
                        Err(e) => tracing::debug!(drill = %id, "nbd client ended: {e}"),
                    }
                });
            }
        })
        .expect("drill accept thread");
}

/// One client: the handshake within [`NBD_HANDSHAKE_TIMEOUT`], then requests for as long as it
/// stays (an idle mounted filesystem is fine).
fn serve_client(mut conn: TcpStream, exports: &[Export]) -> Result<drpair_nbd::Stats, drpair_nbd::NbdError> {
    conn.set_read_timeout(Some(NBD_HANDSHAKE_TIMEOUT))?;
    let Some(export) = drpair_nbd::handshake(&mut conn, exports)? else {
        return Ok(Default::default());
    };
    conn.set_read_timeout(None)?;
    // Replies go out whole (header and data in one write): no need to wait for more.
    conn.set_nodelay(true)?;
    let writer = conn.try_clone()?;
    let r = drpair_nbd::transmission_split(&mut conn, writer, &export, nbd_workers());
    let _ = conn.shutdown(Shutdown::Both);
    r
}

/// Ends a running drill: its exports go away, its overlays are deleted, the point is unpinned
/// (unless another drill uses it), and its evidence is recorded.
pub fn stop(sb: &Standby, id: &str, how: DrillState) -> Option<DrillStatus> {
    let live = sb.drills.live.lock().expect("drills").remove(id)?;
    live.stopping.store(true, Ordering::Release);
    // The guest first: it is a client of the exports.
    let guest = live.guest.lock().expect("guest").take();
    if let Some(g) = guest {
        g.stop(guest::shutdown::POWERDOWN_WAIT + Duration::from_secs(10));
    }
    // Wake the accept loop, and cut every client off.
    let _ = TcpStream::connect_timeout(&live.addr, Duration::from_secs(1));
    for (_, c) in live.conns.lock().expect("conns").drain() {
        let _ = c.shutdown(Shutdown::Both);
    }
    let mut s = live.snapshot();
    s.state = how;
    s.ended_at = Some(rfc3339_ms(now_ms()));
    s.message = match how {
        DrillState::Expired => "its time-to-live ran out; the exports and their overlays are gone".into(),
        _ => "stopped; the exports and their overlays are gone".into(),
    };
    if let Some(b) = s.boot.as_mut() {
        b.guest_running = false;
        s.message.push_str("; its guest is stopped");
        if b.state == BootState::Booting {
            b.state = BootState::Failed;
            b.reason = Some("the drill ended before the console matched".into());
        }
    }
    if let Err(e) = std::fs::remove_dir_all(&live.dir) {
        tracing::warn!(drill = %id, "removing the drill's scratch dir {}: {e}", live.dir.display());
    }
    repin(sb, &live.pair);
    record(sb, &live.pair, &s);
    *live.status.lock().expect("drill") = s.clone();
    tracing::info!(drill = %id, state = ?how, "drill ended");
    Some(s)
}

/// At start-up: drills that were running when the standby stopped are recorded as failed
/// (their exports and overlays went with it).
pub fn after_restart(store: &drpair_store::Store, pair_no: u32) -> Result<u64, drpair_store::StoreError> {
    let mut n = 0;
    for mut d in store.list_drills::<DrillStatus>(pair_no)?.into_iter().filter(|d| d.state == DrillState::Running) {
        d.state = DrillState::Failed;
        d.ended_at = Some(rfc3339_ms(now_ms()));
        d.message = "the standby stopped during the drill; its exports and overlays are gone".into();
        if let Some(b) = d.boot.as_mut() {
            b.guest_running = false;
            if b.state == BootState::Booting {
                b.state = BootState::Failed;
                b.reason = Some("the standby stopped before the guest's console matched".into());
            }
        }
        let requested = drpair_types::parse_time_ms(&d.requested_at).unwrap_or(0);
        store.put_drill(pair_no, requested, &d.id, &d)?;
        n += 1;
    }
    Ok(n)
}
