//! An instant failover's session moving on: progress, the targets carrying the machine, the
//! end (stopped, guest gone, failed). Each change is saved in the pair's record under its lock.

use super::live::Session;
use crate::standby::Standby;
use crate::standby::pair::OpError;
use crate::standby::pair::results::{FailoverRecord, JobState};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::InstantPhase;
use std::sync::Arc;

/// Saves the failover's record as it is now.
pub fn save(sb: &Standby, s: &Session) {
    let job = s.job.lock().expect("failover").clone();
    let saved = s.pair.update(&sb.store, |rec| {
        rec.failover = Some(job);
        Ok::<_, OpError>(())
    });
    if let Err(e) = saved {
        tracing::error!("saving an instant failover's record: {e:?}");
    }
}

/// The copy's figures: `done` of the total bytes, over `elapsed` seconds.
pub fn progress(j: &mut FailoverRecord, done: u64, elapsed: f64) {
    j.bytes_written = done.min(j.bytes_total);
    j.progress_percent = ((j.bytes_written as f64 * 1000.0 / j.bytes_total.max(1) as f64).floor() / 10.0).min(100.0);
    j.elapsed_seconds = (elapsed * 1000.0).round() / 1000.0;
    j.throughput_bytes_per_sec = (j.bytes_written as f64 / elapsed.max(1e-6)).round();
}

/// Progress of `s`, and of its task.
pub fn show(s: &Session, done: u64, elapsed: f64) {
    let pct = {
        let mut j = s.job.lock().expect("failover");
        progress(&mut j, done, elapsed);
        j.progress_percent
    };
    if let Some(t) = s.task.lock().expect("task").as_ref() {
        t.progress(pct);
    }
}

/// The copy is complete: the targets alone carry the machine.
pub fn on_targets(sb: &Standby, s: &Session, how: &str) {
    let message = {
        let mut j = s.job.lock().expect("failover");
        let total = j.bytes_total;
        let el = j.elapsed_seconds;
        progress(&mut j, total, el);
        j.state = JobState::Done;
        let at = rfc3339_ms(now_ms());
        j.finished_at = Some(at.clone());
        if let Some(i) = j.instant.as_mut() {
            i.view.phase = InstantPhase::OnTargets;
            i.view.on_targets_at = Some(at);
        }
        j.message = format!(
            "point {} is on {}: the targets alone carry the machine ({how}); `drpair failover {} --stop-instant` ends the session, `drpair failback` later makes the original side equal",
            j.point,
            j.targets.join(", "),
            j.pair_id
        );
        j.message.clone()
    };
    tracing::warn!("INSTANT FAILOVER: {message}");
    save(sb, s);
    if let Some(t) = s.task.lock().expect("task").take() {
        t.ok(message);
    }
}

/// The session ends in `phase` with `message`: it leaves the standby's sessions, the pair's
/// failover is no longer running, and the record says how it ended. The session's files go
/// unless it failed during the copy (its overlay may hold the machine's writes).
pub fn end(sb: &Standby, s: &Arc<Session>, phase: InstantPhase, message: String) {
    s.stop_server();
    let pair = s.job.lock().expect("failover").pair_id.to_string();
    sb.instant.map.lock().expect("sessions").remove(&pair);
    let dir = {
        let mut j = s.job.lock().expect("failover");
        let copying = j.instant.as_ref().is_some_and(|i| i.view.phase == InstantPhase::Copying);
        if phase == InstantPhase::Failed && copying {
            j.state = JobState::Failed;
        }
        j.finished_at.get_or_insert_with(|| rfc3339_ms(now_ms()));
        j.message = message.clone();
        let i = j.instant.as_mut().expect("an instant failover");
        i.view.phase = phase;
        i.view.exports.clear();
        if let Some(g) = i.view.guest.as_mut() {
            g.running = false;
        }
        (phase == InstantPhase::Ended).then(|| i.dir.clone())
    };
    {
        let mut rt = s.pair.runtime.lock().expect("runtime");
        save(sb, s);
        rt.failover = None;
    }
    if let Some(t) = s.task.lock().expect("task").take() {
        if phase == InstantPhase::Failed { t.fail(message.clone()) } else { t.ok(message.clone()) }
    }
    if let Some(dir) = dir {
        // The console log stays (evidence); maps, overlays and sockets go.
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries.flatten() {
                let keep = e.file_name().to_string_lossy().ends_with(".log");
                if !keep {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    tracing::warn!(%pair, ?phase, "INSTANT FAILOVER session ended: {message}");
}
