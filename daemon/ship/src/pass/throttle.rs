//! Test hook: `DRPAIR_TEST_THROTTLE_BPS` caps the bytes per second a pass reads, so tests can
//! kill processes in the middle of a long epoch, or watch a copy's progress. Idle time earns
//! no credit: a full copy after a quiet spell is as slow as the first one. Unset in
//! production.

use std::sync::Mutex;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// (bytes per second, when the reads so far are paid for).
static STATE: OnceLock<Option<(u64, Mutex<Instant>)>> = OnceLock::new();

pub(super) fn wait(bytes: u64) {
    let st = STATE.get_or_init(|| {
        let bps = std::env::var("DRPAIR_TEST_THROTTLE_BPS").ok()?.parse::<u64>().ok().filter(|b| *b > 0)?;
        tracing::warn!(bps, "test throttle active: reads limited");
        Some((bps, Mutex::new(Instant::now())))
    });
    let Some((bps, paid)) = st else { return };
    let now = Instant::now();
    let due = {
        let mut g = paid.lock().expect("throttle");
        *g = (*g).max(now) + Duration::from_secs_f64(bytes as f64 / *bps as f64);
        *g
    };
    if due > now {
        std::thread::sleep(due - now);
    }
}
