//! The private tracefs instance: creating, configuring, checking and removing it, and reading
//! its per-CPU loss counters.
//!
//! An instance (`<tracefs>/instances/<name>`) has its own ring buffers, event switches,
//! filters and counters, so the tracker never touches the global trace or other users'
//! instances. It lives until removed, recording whether or not anyone reads it.

use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The event the tracker records, relative to an `events` directory.
pub const EVENT_DIR: &str = "events/block/block_rq_complete";

/// What the tracker sets on its instance, as read back from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub filter: String,
    pub enabled: bool,
    pub tracing_on: bool,
    /// `buffer_size_kb` as the kernel reports it (it rounds the value written).
    pub buffer_size_kb: String,
}

/// Identifies one incarnation of an instance directory: a removed and re-created instance
/// gets a new inode and creation time, even when its settings are the same.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incarnation {
    pub inode: u64,
    pub ctime_sec: i64,
    pub ctime_nsec: i64,
}

/// The loss counters of one CPU's buffer (`per_cpu/cpuN/stats`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuCounters {
    /// Events overwritten before they were read (overwrite mode, the default).
    pub overrun: u64,
    /// Events dropped because a writer wrapped onto uncommitted data.
    pub commit_overrun: u64,
    /// Events dropped because the buffer was full (non-overwrite mode).
    pub dropped: u64,
}

/// Parses a `per_cpu/cpuN/stats` file.
pub fn parse_stats(text: &str) -> Result<CpuCounters, String> {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim()))
            .ok_or_else(|| format!("no '{key}:' line"))?
            .parse::<u64>()
            .map_err(|_| format!("'{key}:' is not a number"))
    };
    Ok(CpuCounters {
        overrun: get("overrun")?,
        commit_overrun: get("commit overrun")?,
        dropped: get("dropped events")?,
    })
}

/// The filter that keeps only requests on the given whole disks (kernel device numbers).
pub fn filter_for(devs: &[u64]) -> String {
    let mut devs = devs.to_vec();
    devs.sort_unstable();
    devs.dedup();
    devs.iter().map(|d| format!("dev == {d}")).collect::<Vec<_>>().join(" || ")
}

/// This boot's id: an instance (and its loss counters) cannot outlive a reboot.
pub fn boot_id() -> io::Result<String> {
    fs::read_to_string("/proc/sys/kernel/random/boot_id").map(|s| s.trim().to_string())
}

/// Reads a tracefs text file. Some of them (`events/header_page`) ignore the file position and
/// answer only the first read, so a reader that probes with a small read first (as
/// `read_to_string` does) gets a cut file: read with one buffer larger than any of them.
pub fn read_text(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// A named instance under a tracefs mount.
#[derive(Debug, Clone)]
pub struct Instance {
    pub dir: PathBuf,
}

impl Instance {
    pub fn new(tracefs_root: &Path, name: &str) -> Self {
        Self { dir: tracefs_root.join("instances").join(name) }
    }

    pub fn exists(&self) -> bool {
        self.dir.is_dir()
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// Creates the instance directory (fails if it exists).
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir(&self.dir)
    }

    /// Removes the instance if it exists. The kernel refuses (EBUSY) while a reader holds one
    /// of its pipes open; that is retried for about two seconds.
    pub fn remove(&self) -> io::Result<()> {
        let mut tries = 0;
        loop {
            match fs::remove_dir(&self.dir) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&self, rel: &str, value: &str) -> io::Result<()> {
        let path = self.path(rel);
        let mut f = OpenOptions::new().write(true).truncate(true).open(&path)?;
        f.write_all(value.as_bytes())
            .map_err(|e| io::Error::new(e.kind(), format!("writing '{value}' to {}: {e}", path.display())))
    }

    fn read(&self, rel: &str) -> io::Result<String> {
        let path = self.path(rel);
        read_text(&path).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    /// Sets the buffer size, the filter, then enables the event and tracing (in that order, so
    /// nothing is recorded unfiltered). Returns the settings read back.
    pub fn configure(&self, buffer_kib: u64, filter: &str) -> io::Result<Settings> {
        self.write("buffer_size_kb", &buffer_kib.to_string())?;
        self.write(&format!("{EVENT_DIR}/filter"), filter)?;
        self.write(&format!("{EVENT_DIR}/enable"), "1")?;
        self.write("tracing_on", "1")?;
        self.settings()
    }

    /// The settings as the kernel reports them now.
    pub fn settings(&self) -> io::Result<Settings> {
        Ok(Settings {
            filter: self.read(&format!("{EVENT_DIR}/filter"))?.trim().to_string(),
            enabled: self.read(&format!("{EVENT_DIR}/enable"))?.trim() == "1",
            tracing_on: self.read("tracing_on")?.trim() == "1",
            buffer_size_kb: self.read("buffer_size_kb")?.trim().to_string(),
        })
    }

    pub fn incarnation(&self) -> io::Result<Incarnation> {
        let m = fs::metadata(&self.dir)?;
        Ok(Incarnation { inode: m.ino(), ctime_sec: m.ctime(), ctime_nsec: m.ctime_nsec() })
    }

    /// The instance's `events/header_page`.
    pub fn header_page(&self) -> io::Result<String> {
        self.read("events/header_page")
    }

    /// The instance's `block_rq_complete` format file.
    pub fn event_format(&self) -> io::Result<String> {
        self.read(&format!("{EVENT_DIR}/format"))
    }

    /// The CPUs with a buffer directory, ascending.
    pub fn cpus(&self) -> io::Result<Vec<u32>> {
        let dir = self.path("per_cpu");
        let mut cpus = Vec::new();
        for entry in fs::read_dir(&dir).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display())))? {
            let name = entry?.file_name();
            if let Some(n) = name.to_str().and_then(|n| n.strip_prefix("cpu")).and_then(|n| n.parse().ok()) {
                cpus.push(n);
            }
        }
        cpus.sort_unstable();
        Ok(cpus)
    }

    /// Opens a CPU's binary pipe, non-blocking: reads return whole pages, EAGAIN when empty.
    pub fn open_pipe(&self, cpu: u32) -> io::Result<File> {
        let path = self.path(&format!("per_cpu/cpu{cpu}/trace_pipe_raw"));
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
    }

    pub fn counters(&self, cpu: u32) -> io::Result<CpuCounters> {
        let rel = format!("per_cpu/cpu{cpu}/stats");
        let text = self.read(&rel)?;
        parse_stats(&text).map_err(|e| io::Error::other(format!("{}: {e}", self.path(&rel).display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_stats() {
        let text = "entries: 0\noverrun: 12\ncommit overrun: 3\nbytes: 0\noldest event ts:     0.000000\n\
                    now ts: 12789.270987\ndropped events: 7\nread events: 0\n";
        assert_eq!(parse_stats(text), Ok(CpuCounters { overrun: 12, commit_overrun: 3, dropped: 7 }));
        assert_eq!(parse_stats("overrun: 1\n"), Err("no 'commit overrun:' line".to_string()));
        assert!(parse_stats("overrun: x\ncommit overrun: 0\ndropped events: 0").is_err());
    }

    #[test]
    fn filters() {
        assert_eq!(filter_for(&[7340033]), "dev == 7340033");
        assert_eq!(filter_for(&[7340034, 7340033, 7340034]), "dev == 7340033 || dev == 7340034");
    }
}
