//! Compression of shipped chunks: a fixed zstd level, off, or `auto`, which adapts the level
//! to the link: when sending waits on the link most of the time, compress harder; when the
//! link waits on the compressor, compress less, down to none on a fast link.

use crate::config::CompressionSetting;
use drpair_ship::{Compression, Compressor};
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Levels `auto` moves between (0 = off).
const LADDER: [i32; 5] = [0, 1, 3, 6, 9];
/// How often `auto` reconsiders.
const ADJUST_EVERY: Duration = Duration::from_secs(1);

/// Shared by the workers of the agent.
pub struct CompressionCtl {
    setting: CompressionSetting,
    level: AtomicI32,
    workers: u64,
    send_wait_ns: AtomicU64,
    compress_ns: AtomicU64,
    last: Mutex<Instant>,
}

impl CompressionCtl {
    pub fn new(setting: CompressionSetting, workers: usize) -> Self {
        let level = match setting {
            CompressionSetting::Auto => 1,
            CompressionSetting::Off => 0,
            CompressionSetting::Zstd(l) => l,
        };
        Self { setting, level: AtomicI32::new(level), workers: workers.max(1) as u64, send_wait_ns: AtomicU64::new(0), compress_ns: AtomicU64::new(0), last: Mutex::new(Instant::now()) }
    }

    /// Current zstd level (0 = off).
    pub fn level(&self) -> i32 {
        self.level.load(Ordering::Relaxed)
    }

    pub fn compressor(&self) -> WorkerCompressor {
        WorkerCompressor { level: -1, inner: None }
    }

    pub fn record_send_wait(&self, d: Duration) {
        self.send_wait_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.maybe_adjust();
    }

    fn record_compress(&self, d: Duration) {
        self.compress_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
    }

    fn maybe_adjust(&self) {
        if self.setting != CompressionSetting::Auto {
            return;
        }
        let Ok(mut last) = self.last.try_lock() else { return };
        let el = last.elapsed();
        if el < ADJUST_EVERY {
            return;
        }
        *last = Instant::now();
        let budget = el.as_nanos() as f64 * self.workers as f64;
        let wait = self.send_wait_ns.swap(0, Ordering::Relaxed) as f64 / budget;
        let comp = self.compress_ns.swap(0, Ordering::Relaxed) as f64 / budget;
        let cur = self.level();
        let next = next_level(cur, wait, comp);
        if next != cur {
            tracing::debug!(from = cur, to = next, wait, comp, "compression level adapted to the link");
            self.level.store(next, Ordering::Relaxed);
        }
    }
}

/// The adaptation rule, pure: `wait` and `comp` are the fractions of worker time spent
/// waiting for the link and compressing over the last period.
pub fn next_level(cur: i32, wait: f64, comp: f64) -> i32 {
    let pos = LADDER.iter().position(|&l| l >= cur).unwrap_or(LADDER.len() - 1);
    if wait > 0.5 && pos + 1 < LADDER.len() {
        LADDER[pos + 1]
    } else if wait < 0.05 && comp > 0.25 && pos > 0 {
        LADDER[pos - 1]
    } else {
        LADDER[pos]
    }
}

/// One worker's compressor, following the shared level.
pub struct WorkerCompressor {
    level: i32,
    inner: Option<Compressor>,
}

impl WorkerCompressor {
    /// Compressed bytes, or None to ship the chunk raw (off, or not worth it).
    pub fn compress(&mut self, data: &[u8], ctl: &CompressionCtl) -> Option<Vec<u8>> {
        let level = ctl.level();
        if level == 0 {
            return None;
        }
        if level != self.level || self.inner.is_none() {
            self.inner = Some(Compressor::new(Compression::Zstd(level)));
            self.level = level;
        }
        let t = Instant::now();
        let out = self.inner.as_mut().expect("compressor").compress(data);
        ctl.record_compress(t.elapsed());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::next_level;

    #[test]
    fn adapts_to_the_bottleneck() {
        // (current, wait, compress) -> next
        let table = [
            (1, 0.9, 0.1, 3),  // link-bound: compress harder
            (3, 0.9, 0.1, 6),
            (9, 0.9, 0.1, 9),  // already at the top
            (1, 0.01, 0.6, 0), // CPU-bound on a fast link: stop compressing
            (6, 0.01, 0.6, 3),
            (0, 0.01, 0.6, 0),
            (3, 0.2, 0.2, 3),  // balanced: stay
        ];
        for (cur, wait, comp, want) in table {
            assert_eq!(next_level(cur, wait, comp), want, "{cur} {wait} {comp}");
        }
    }
}
