//! The tracker's state file: what a clean stop leaves for the next start.
//!
//! JSON, replaced atomically (temporary file, fsync, rename, fsync of the directory). While
//! the tracker runs the file says `clean: false`, so a crash is never mistaken for a clean
//! stop; a clean stop rewrites it with `clean: true` and everything the next start needs to
//! take over the instance: which instance and settings it left recording, the loss counters
//! as last reported, losses seen but not yet reported, and the chunks drained from the kernel
//! but not yet stamped into the maps.

use super::instance::{CpuCounters, Incarnation, Settings};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Version of the file layout.
pub const VERSION: u32 = 1;

/// One protected disk as the instance was set up for it (map order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedDisk {
    pub path: PathBuf,
    /// Whole-disk kernel device number.
    pub dev: u64,
    pub start_sector: u64,
    pub size_sectors: u64,
    /// Chunk count and chunk shift of the disk's change map.
    pub chunks: u64,
    pub chunk_shift: u32,
}

impl SavedDisk {
    /// Same disk and same map layout (the path may be spelled differently).
    pub fn same_as(&self, other: &SavedDisk) -> bool {
        (self.dev, self.start_sector, self.size_sectors, self.chunks, self.chunk_shift)
            == (other.dev, other.start_sector, other.size_sectors, other.chunks, other.chunk_shift)
    }
}

/// Loss accounting of one CPU, as last reported.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedCpu {
    pub cpu: u32,
    /// Counters as of the last report.
    pub counters: CpuCounters,
    /// Overruns reported by the counters and not yet seen flagged in pages.
    pub credit: u64,
    /// Events flagged lost in pages and not yet reported.
    pub unreported_in_band: u64,
}

/// The whole state file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub version: u32,
    /// True only when written by a clean stop.
    pub clean: bool,
    pub instance: String,
    pub boot_id: String,
    /// The buffer size asked for, KiB per CPU.
    pub buffer_kib: u64,
    /// The settings as read back from the instance after setting them.
    pub settings: Settings,
    pub incarnation: Incarnation,
    pub disks: Vec<SavedDisk>,
    pub cpus: Vec<SavedCpu>,
    /// Loss seen (malformed pages, read errors) and not yet reported.
    pub loss_notes: Vec<String>,
    /// Per disk: chunks drained but not stamped, as runs `(first, count)`.
    pub pending: Vec<Vec<(u64, u64)>>,
}

/// Reads the state file: `Ok(None)` when there is none, `Err(why)` when it cannot be used.
pub fn load(path: &Path) -> Result<Option<SavedState>, String> {
    let text = match fs::read(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let state: SavedState = serde_json::from_slice(&text).map_err(|e| format!("{} is damaged: {e}", path.display()))?;
    if state.version != VERSION {
        return Err(format!("{} has version {}, this agent knows {VERSION}", path.display(), state.version));
    }
    Ok(Some(state))
}

/// Replaces the state file atomically and durably.
pub fn save(path: &Path, state: &SavedState) -> io::Result<()> {
    let wrap = |what: &str, p: &Path, e: io::Error| io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()));
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    let mut f = File::create(&tmp).map_err(|e| wrap("creating", &tmp, e))?;
    f.write_all(&json).and_then(|()| f.sync_all()).map_err(|e| wrap("writing", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, path).map_err(|e| wrap("renaming to", path, e))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| wrap("syncing", dir, e))
}

/// Removes the state file (no error if there is none).
pub fn remove(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample() -> SavedState {
        SavedState {
            version: VERSION,
            clean: true,
            instance: "drpair-p".into(),
            boot_id: "b".into(),
            buffer_kib: 1024,
            settings: Settings {
                filter: "dev == 7340033".into(),
                enabled: true,
                tracing_on: true,
                buffer_size_kb: "1024".into(),
            },
            incarnation: Incarnation { inode: 7, ctime_sec: 1, ctime_nsec: 2 },
            disks: vec![SavedDisk {
                path: "/dev/loop1".into(),
                dev: 7340033,
                start_sector: 0,
                size_sectors: 2048,
                chunks: 16,
                chunk_shift: 16,
            }],
            cpus: vec![SavedCpu {
                cpu: 0,
                counters: CpuCounters { overrun: 3, ..Default::default() },
                ..Default::default()
            }],
            loss_notes: vec![],
            pending: vec![vec![(1, 2), (9, 1)]],
        }
    }

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tracefs.state");
        assert_eq!(load(&path), Ok(None));
        save(&path, &sample()).unwrap();
        assert_eq!(load(&path), Ok(Some(sample())));
        assert!(!dir.path().join("tracefs.state.tmp").exists());
        let unclean = SavedState { clean: false, ..sample() };
        save(&path, &unclean).unwrap();
        assert_eq!(load(&path).unwrap().unwrap(), unclean);
        fs::write(&path, b"{ not json").unwrap();
        assert!(load(&path).unwrap_err().contains("is damaged"));
        let mut future = serde_json::to_value(sample()).unwrap();
        future["version"] = 99.into();
        fs::write(&path, serde_json::to_vec(&future).unwrap()).unwrap();
        assert!(load(&path).unwrap_err().contains("version 99"));
        remove(&path).unwrap();
        remove(&path).unwrap();
        assert_eq!(load(&path), Ok(None));
    }
}
