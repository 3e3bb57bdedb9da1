//! Compression of shipped chunks: a fixed zstd level, off, or `auto`, which adapts the level
//! to the link through [`crate::AdaptiveLevel`] (compress harder when sending waits on the
//! link, less — down to none — when the link waits on the compressor).

use crate::{AdaptiveLevel, LinkSample};
use drpair_codec::{Codec, Compression};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often `auto` takes a sample.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// ... and while its opening probe is undecided (a wrong start costs a quarter as much).
const OPENING_SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// How the pass compresses (the agent's `compression` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LevelSetting {
    /// Start at zstd level 1 and adapt to the link.
    Auto,
    Off,
    Zstd(i32),
}

struct Window {
    adaptive: Option<AdaptiveLevel>,
    started: Instant,
    /// The host's CPU times at the window's start (see [`cpu_times`]).
    cpu: Option<(u64, u64)>,
}

/// The host's CPU time so far, in clock ticks summed over its CPUs: (all, free for the
/// agent), free being idle, waiting for I/O, or used by the agent itself (from `/proc/stat`
/// and `/proc/self/stat`). None where they cannot be read.
fn cpu_times() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is within user).
    let all = v.iter().take(8).sum();
    let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // After the command's closing parenthesis: field 3 onwards; utime and stime are 14 and 15.
    let f: Vec<&str> = me.rsplit_once(')')?.1.split_whitespace().collect();
    let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((all, idle + own))
}

/// Shared by the workers of the agent.
pub struct CompressionCtl {
    /// 0 = off, else the zstd level in use.
    level: AtomicI32,
    send_wait_ns: AtomicU64,
    compress_ns: AtomicU64,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
    window: Mutex<Window>,
}

fn to_level(c: Compression) -> i32 {
    match c {
        Compression::Off => 0,
        Compression::Zstd(l) => l,
    }
}

impl CompressionCtl {
    pub fn new(setting: LevelSetting, workers: usize) -> Self {
        let (start, adaptive) = match setting {
            LevelSetting::Auto => (
                Compression::Zstd(1),
                Some(AdaptiveLevel::new(Compression::Zstd(1), workers.max(1) as u32).with_opening_probe()),
            ),
            LevelSetting::Off => (Compression::Off, None),
            LevelSetting::Zstd(l) => (Compression::Zstd(l), None),
        };
        Self {
            level: AtomicI32::new(to_level(start)),
            send_wait_ns: AtomicU64::new(0),
            compress_ns: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            window: Mutex::new(Window { adaptive, started: Instant::now(), cpu: cpu_times() }),
        }
    }

    /// Current zstd level (0 = off).
    pub fn level(&self) -> i32 {
        self.level.load(Ordering::Relaxed)
    }

    pub fn compressor(&self) -> WorkerCompressor {
        WorkerCompressor { level: -1, codec: None }
    }

    /// Time a worker waited to hand a frame to the link.
    pub fn record_send_wait(&self, d: Duration) {
        self.send_wait_ns.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.maybe_adapt();
    }

    fn maybe_adapt(&self) {
        let Ok(mut w) = self.window.try_lock() else { return };
        let elapsed = w.started.elapsed();
        let every =
            if w.adaptive.as_ref().is_some_and(AdaptiveLevel::opening) { OPENING_SAMPLE_EVERY } else { SAMPLE_EVERY };
        if elapsed < every {
            return;
        }
        w.started = Instant::now();
        if w.adaptive.is_none() {
            return;
        }
        let host_free = cpu_times().and_then(|now| {
            let before = w.cpu.replace(now)?;
            let total = now.0.saturating_sub(before.0);
            (total > 0).then(|| now.1.saturating_sub(before.1) as f64 / total as f64)
        });
        let Some(adaptive) = w.adaptive.as_mut() else { return };
        let sample = LinkSample {
            bytes_in: self.bytes_in.swap(0, Ordering::Relaxed),
            bytes_out: self.bytes_out.swap(0, Ordering::Relaxed),
            compress_busy: Duration::from_nanos(self.compress_ns.swap(0, Ordering::Relaxed)),
            send_blocked: Duration::from_nanos(self.send_wait_ns.swap(0, Ordering::Relaxed)),
            elapsed,
            host_free,
        };
        let before = self.level();
        let next = to_level(adaptive.observe(&sample));
        if next != before {
            tracing::info!(from = before, to = next, "compression level adapted to the link (0 = off)");
            self.level.store(next, Ordering::Relaxed);
        }
    }
}

/// One worker's codec, following the shared level.
pub struct WorkerCompressor {
    level: i32,
    codec: Option<Codec>,
}

impl WorkerCompressor {
    /// Compressed bytes, or None to ship the chunk raw (off, or not worth it).
    pub fn compress(&mut self, data: &[u8], ctl: &CompressionCtl) -> Option<Vec<u8>> {
        let level = ctl.level();
        ctl.bytes_in.fetch_add(data.len() as u64, Ordering::Relaxed);
        if level == 0 {
            ctl.bytes_out.fetch_add(data.len() as u64, Ordering::Relaxed);
            return None;
        }
        if level != self.level || self.codec.is_none() {
            self.codec = Some(Codec::new(Compression::Zstd(level)));
            self.level = level;
        }
        let t = Instant::now();
        let out = self.codec.as_mut().expect("codec").compress(data);
        ctl.compress_ns.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        ctl.bytes_out.fetch_add(out.as_ref().map_or(data.len(), Vec::len) as u64, Ordering::Relaxed);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_cpu_times_are_read() {
        let (all, free) = cpu_times().expect("/proc/stat");
        assert!(all > 0 && free <= all + 1000);
    }

    #[test]
    fn fixed_settings_do_not_move() {
        let c = CompressionCtl::new(LevelSetting::Zstd(3), 2);
        assert_eq!(c.level(), 3);
        let off = CompressionCtl::new(LevelSetting::Off, 2);
        let mut w = off.compressor();
        assert!(w.compress(&[1u8; 65536], &off).is_none());
        let auto = CompressionCtl::new(LevelSetting::Auto, 2);
        assert_eq!(auto.level(), 1);
        let mut w = auto.compressor();
        let out = w.compress(&[7u8; 65536], &auto).unwrap();
        assert!(out.len() < 1000);
    }
}
