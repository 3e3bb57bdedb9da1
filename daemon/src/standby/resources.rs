//! The standby's own resources: the free space of its data filesystem against a reserve, and
//! the machine's available memory against a floor. Below either, pairs stop ingesting
//! (`STOPPED_DUE_TO_LOW_DISK`, `STOPPED_DUE_TO_LOW_MEMORY`) before anything fails half way,
//! a prune runs, and they resume by themselves once the resource is back above the limit plus
//! a margin (half the limit). Drills, exports and failovers only read, and go on.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How fresh a free-space reading must be for the ingest path.
const FRESH: Duration = Duration::from_millis(50);
/// The default reserve: 5% of the filesystem, at most 2 GiB.
const DEFAULT_PERCENT: f64 = 5.0;
const DEFAULT_CAP: u64 = 2 << 30;

/// How much of the data filesystem stays free.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Reserve {
    /// 5% of the filesystem, at most 2 GiB.
    Default,
    Percent(f64),
    Bytes(u64),
}

impl Reserve {
    /// `5%`, `512MiB`, `2GiB`, `0` (none).
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim();
        if let Some(p) = t.strip_suffix('%') {
            let v: f64 = p.trim().parse().map_err(|_| format!("'{text}' is not a percentage (e.g. 5%)"))?;
            if !(0.0..=50.0).contains(&v) {
                return Err(format!("'{text}': a reserve is 0% to 50% of the filesystem"));
            }
            return Ok(Reserve::Percent(v));
        }
        parse_bytes(t).map(Reserve::Bytes)
    }

    /// The reserve in bytes on a filesystem of `total` bytes.
    pub fn bytes(self, total: u64) -> u64 {
        match self {
            Reserve::Default => ((total as f64 * DEFAULT_PERCENT / 100.0) as u64).min(DEFAULT_CAP),
            Reserve::Percent(p) => (total as f64 * p / 100.0) as u64,
            Reserve::Bytes(b) => b,
        }
    }
}

/// `4096`, `512KiB`, `64MiB`, `2GiB`, `1TiB` (also KB/MB/GB/TB as powers of 1000).
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().map_err(|_| format!("'{text}' is not a size (e.g. 2GiB, 512MiB)"))?;
    let mul: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        "GiB" | "G" => 1 << 30,
        "TiB" | "T" => 1 << 40,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        "TB" => 1_000_000_000_000,
        u => return Err(format!("'{text}': unknown unit '{u}' (B, KiB, MiB, GiB, TiB)")),
    };
    n.checked_mul(mul).ok_or_else(|| format!("'{text}' is too large"))
}

/// Free and total bytes of the filesystem holding `path`.
pub fn disk_space(path: &std::path::Path) -> std::io::Result<(u64, u64)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: a valid NUL-terminated path and a statvfs the call fills.
    if unsafe { libc::statvfs(c.as_ptr(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let unit = st.f_frsize as u64;
    Ok((st.f_bavail as u64 * unit, st.f_blocks as u64 * unit))
}

/// The machine's available memory (`MemAvailable` of /proc/meminfo).
pub fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Bytes the store will still write without being asked (its memtables, flushed to files).
pub type Unflushed = Box<dyn Fn() -> u64 + Send + Sync>;

/// What the standby watches.
pub struct Resources {
    data_dir: PathBuf,
    unflushed: Unflushed,
    reserve: Reserve,
    memory_floor: u64,
    /// Set when ingest met the reserve; cleared when space is back above reserve + margin.
    pub low_disk: AtomicBool,
    pub low_memory: AtomicBool,
    last: Mutex<Option<(Instant, u64, u64)>>,
}

/// A resource below its limit: what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shortage {
    pub free: u64,
    pub limit: u64,
}

impl Resources {
    /// `unflushed` tells what the store holds in memory that a flush writes to the data
    /// filesystem: counted as used already, so the reserve holds after the flush too.
    pub fn new(data_dir: PathBuf, reserve: Reserve, memory_floor: u64, unflushed: Unflushed) -> Self {
        Self {
            data_dir,
            unflushed,
            reserve,
            memory_floor,
            low_disk: AtomicBool::new(false),
            low_memory: AtomicBool::new(false),
            last: Mutex::new(None),
        }
    }

    /// Free bytes and the reserve, read at most every 50 ms.
    fn space(&self) -> Option<(u64, u64)> {
        let mut last = self.last.lock().expect("space");
        if let Some((at, free, reserve)) = *last
            && at.elapsed() < FRESH
        {
            return Some((free, reserve));
        }
        let (free, total) = disk_space(&self.data_dir).ok()?;
        let free = free.saturating_sub((self.unflushed)());
        let reserve = self.reserve.bytes(total);
        *last = Some((Instant::now(), free, reserve));
        Some((free, reserve))
    }

    /// The data filesystem's free bytes (less what the store will flush) and its reserve.
    pub fn disk(&self) -> Option<(u64, u64)> {
        self.space()
    }

    /// Whether more may be written for a pair: not once the data filesystem is at its reserve.
    pub fn ingest_allowed(&self) -> Result<(), Shortage> {
        if let Some((free, limit)) = self.space()
            && free <= limit
        {
            self.low_disk.store(true, Ordering::Relaxed);
            return Err(Shortage { free, limit });
        }
        Ok(())
    }

    /// The disk: `Some` while short (below the reserve, or not yet back above it plus the
    /// margin after a shortage).
    pub fn disk_shortage(&self) -> Option<Shortage> {
        let (free, limit) = self.space()?;
        shortage(&self.low_disk, free, limit)
    }

    /// Memory: as [`disk_shortage`](Self::disk_shortage), against the floor.
    pub fn memory_shortage(&self) -> Option<Shortage> {
        if self.memory_floor == 0 {
            return None;
        }
        shortage(&self.low_memory, mem_available()?, self.memory_floor)
    }
}

/// Short at or below `limit`, and after that until back above it plus half of it; `low`
/// remembers which side the resource was last seen on.
fn shortage(low: &AtomicBool, free: u64, limit: u64) -> Option<Shortage> {
    let short = free <= limit || (low.load(Ordering::Relaxed) && free < limit + limit / 2);
    low.store(short, Ordering::Relaxed);
    short.then_some(Shortage { free, limit })
}

/// Bytes in an operator's words (`1.5 GiB`).
pub fn human(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", units[u]) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserves_and_sizes_parse() {
        assert_eq!(Reserve::parse("5%").unwrap(), Reserve::Percent(5.0));
        assert_eq!(Reserve::parse("2GiB").unwrap(), Reserve::Bytes(2 << 30));
        assert_eq!(Reserve::parse("0").unwrap(), Reserve::Bytes(0));
        for bad in ["", "-1%", "60%", "lots", "5 parsecs", "99999999999TiB"] {
            assert!(Reserve::parse(bad).is_err(), "{bad}");
        }
        // The default: 5%, at most 2 GiB.
        assert_eq!(Reserve::Default.bytes(512 << 20), (512u64 << 20) / 20);
        assert_eq!(Reserve::Default.bytes(1 << 40), 2 << 30);
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn a_shortage_lasts_until_the_margin_is_back() {
        let dir = tempfile::tempdir().unwrap();
        let (free, _) = disk_space(dir.path()).unwrap();
        let none = || -> Unflushed { Box::new(|| 0) };
        let r = Resources::new(dir.path().into(), Reserve::Bytes(free * 2), 0, none());
        assert!(r.ingest_allowed().is_err() && r.disk_shortage().is_some());
        let r = Resources::new(dir.path().into(), Reserve::Bytes(free * 3 / 4), 0, none());
        assert!(r.ingest_allowed().is_ok() && r.disk_shortage().is_none());
        // Above the reserve but below reserve + half of it after a shortage: still short.
        r.low_disk.store(true, Ordering::Relaxed);
        assert!(r.disk_shortage().is_some(), "within the margin");
        assert!(Resources::new(dir.path().into(), Reserve::Bytes(0), u64::MAX, none()).memory_shortage().is_some());
        // What the store would still flush counts as used.
        let r = Resources::new(dir.path().into(), Reserve::Bytes(free / 2), 0, Box::new(move || free));
        assert!(r.ingest_allowed().is_err(), "a full memtable's flush would cross the reserve");
    }
}
