//! Where a pass's time goes: busy time per stage, summed over the threads that run it. The
//! agent logs it when a pass ends ("pass stages"), so a slow copy says which stage bounds it:
//! workers waiting for reads means the disk; waiting to send means the link or the standby;
//! hashing and compressing mean the agent's CPU.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A stage of a pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Workers waiting for the reader to hand them a block (the disks).
    ReadWait,
    /// blake3 of every chunk read (and the zero test).
    Hash,
    /// Updating the change map under its lock.
    Map,
    /// Waiting for the standby's answer to which hashes it holds.
    Have,
    /// zstd.
    Compress,
    /// Encoding a frame and waiting for the link to take it.
    Send,
}

impl Stage {
    const ALL: [Stage; 6] = [Stage::ReadWait, Stage::Hash, Stage::Map, Stage::Have, Stage::Compress, Stage::Send];

    pub fn name(self) -> &'static str {
        match self {
            Stage::ReadWait => "read_wait",
            Stage::Hash => "hash",
            Stage::Map => "map",
            Stage::Have => "have",
            Stage::Compress => "compress",
            Stage::Send => "send",
        }
    }
}

/// Nanoseconds per stage, added to by every worker.
#[derive(Debug, Default)]
pub struct StageTimes([AtomicU64; 6]);

impl StageTimes {
    pub fn add(&self, stage: Stage, d: Duration) {
        self.0[stage as usize].fetch_add(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Runs `f`, counting its time to `stage`.
    pub fn time<T>(&self, stage: Stage, f: impl FnOnce() -> T) -> T {
        let t = Instant::now();
        let out = f();
        self.add(stage, t.elapsed());
        out
    }

    /// Busy time of `stage` so far.
    pub fn get(&self, stage: Stage) -> Duration {
        Duration::from_nanos(self.0[stage as usize].load(Ordering::Relaxed))
    }

    /// Every stage with its time, in pipeline order.
    pub fn all(&self) -> Vec<(&'static str, Duration)> {
        Stage::ALL.iter().map(|&s| (s.name(), self.get(s))).collect()
    }
}

impl fmt::Display for StageTimes {
    /// `read_wait=1.20s hash=0.81s …`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (name, d) in self.all() {
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write!(f, "{name}={:.2}s", d.as_secs_f64())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_add_up_and_print_in_order() {
        let t = StageTimes::default();
        t.add(Stage::Hash, Duration::from_millis(1500));
        t.add(Stage::Hash, Duration::from_millis(500));
        let v = t.time(Stage::Send, || 7);
        assert_eq!(v, 7);
        assert_eq!(t.get(Stage::Hash), Duration::from_secs(2));
        let shown = t.to_string();
        assert!(shown.starts_with("read_wait=0.00s hash=2.00s map=0.00s have=0.00s compress=0.00s send="), "{shown}");
    }
}
