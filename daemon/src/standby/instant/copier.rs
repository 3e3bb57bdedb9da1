//! Mode `nbd`: drpair's own background copy of the point onto the targets, under the client's
//! writes (the per-chunk rule is in `disk.rs`). Chunks already copied (before a restart, or
//! written by the client) are skipped; the map is saved every second and at the end; the
//! copy keeps to its bandwidth cap, if any.

use super::live::Session;
use crate::standby::export::SPAN;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// How often the map is saved and the progress shown.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Copies every disk of `s` to the end (Ok(true)), or until the session stops (Ok(false)).
pub fn copy_all(s: &Session, rate: Option<u64>, mut progress: impl FnMut(u64)) -> io::Result<bool> {
    let t0 = Instant::now();
    let mut moved = 0u64;
    let mut saved = Instant::now();
    let total_copied = || s.disks.iter().map(|d| d.copied_bytes()).sum::<u64>();
    progress(total_copied());
    for d in &s.disks {
        let g = d.geometry();
        let cs = u64::from(g.chunk_size.bytes());
        // Runs of about a quarter second's worth under a cap, else the export's span.
        let run = rate.map_or(SPAN, |r| (r / 4 / cs).clamp(1, SPAN));
        let mut at = 0;
        while let Some(first) = d.next_missing(at) {
            if s.stopping.load(Ordering::Acquire) {
                d.save()?;
                return Ok(false);
            }
            let n = run.min(g.chunk_count() - first);
            moved += d.copy_run(first, n)?;
            at = first + n;
            if let Some(r) = rate {
                let due = Duration::from_secs_f64(moved as f64 / r.max(1) as f64);
                if let Some(wait) = due.checked_sub(t0.elapsed()) {
                    std::thread::sleep(wait);
                }
            }
            if saved.elapsed() >= SAVE_EVERY {
                d.save()?;
                saved = Instant::now();
                progress(total_copied());
            }
        }
        d.save()?;
        progress(total_copied());
    }
    Ok(true)
}
