//! The audit log: every state-changing API call, every enrollment and revocation, and every
//! failed authentication (API or link), with who, from where, what, on which pair and how it
//! ended. One JSON object per line in `DATA_DIR/audit.jsonl`; past [`ROTATE_BYTES`] the file
//! becomes `audit.1.jsonl` (the generation before is dropped), so the log is bounded and
//! survives restarts.

use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::AuditEntry;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size at which the log is rotated (two generations are kept).
pub const ROTATE_BYTES: u64 = 16 << 20;

/// The standby's audit log.
pub struct AuditLog {
    dir: PathBuf,
    file: Mutex<()>,
}

impl AuditLog {
    pub fn open(data_dir: &Path) -> Self {
        Self { dir: data_dir.to_path_buf(), file: Mutex::new(()) }
    }

    fn current(&self) -> PathBuf {
        self.dir.join("audit.jsonl")
    }

    fn previous(&self) -> PathBuf {
        self.dir.join("audit.1.jsonl")
    }

    /// Appends one entry (a failure to write is logged, never fatal to the call audited).
    pub fn record(&self, e: AuditEntry) {
        let _g = self.file.lock().expect("audit");
        let path = self.current();
        if std::fs::metadata(&path).is_ok_and(|m| m.len() >= ROTATE_BYTES) {
            let _ = std::fs::rename(&path, self.previous());
        }
        let line = match serde_json::to_string(&e) {
            Ok(l) => l,
            Err(err) => return tracing::error!("audit entry: {err}"),
        };
        let r = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}").and_then(|_| f.sync_data()));
        if let Err(err) = r {
            tracing::error!(path = %path.display(), "cannot write the audit log: {err}");
        }
    }

    /// Something that happened on the link (enrollment, a refused credential).
    pub fn record_link(&self, peer: SocketAddr, action: &str, pair: &str, result: Result<(), &str>) {
        self.record(entry(&format!("link {peer}"), peer, action, pair, result));
    }

    /// Entries oldest first, of `pair` if given, at or after `since_ms`, the newest `limit`.
    pub fn read(&self, pair: Option<&str>, since_ms: u64, limit: usize) -> Vec<AuditEntry> {
        let _g = self.file.lock().expect("audit");
        let mut out = Vec::new();
        for path in [self.previous(), self.current()] {
            let Ok(f) = std::fs::File::open(&path) else { continue };
            for line in std::io::BufReader::new(f).lines().map_while(Result::ok) {
                let Ok(e) = serde_json::from_str::<AuditEntry>(&line) else { continue };
                if e.time_unix_ms >= since_ms && pair.is_none_or(|p| e.pair.as_deref() == Some(p)) {
                    out.push(e);
                }
            }
        }
        let skip = out.len().saturating_sub(limit);
        out.drain(..skip);
        out
    }
}

/// An entry made now.
pub fn entry(identity: &str, peer: SocketAddr, action: &str, pair: &str, result: Result<(), &str>) -> AuditEntry {
    let now = now_ms();
    AuditEntry {
        time_unix_ms: now,
        time: rfc3339_ms(now),
        identity: identity.to_string(),
        source: peer.ip().to_string(),
        action: action.to_string(),
        pair: (!pair.is_empty()).then(|| pair.to_string()),
        result: if result.is_ok() { "ok".into() } else { "refused".into() },
        message: result.err().map(String::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_filters_and_survives_reopening() {
        let d = tempfile::tempdir().unwrap();
        let log = AuditLog::open(d.path());
        let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        log.record(entry("token admin", peer, "restart", "db1", Ok(())));
        log.record(entry("anonymous", peer, "restart", "db2", Err("401: no token")));
        let log = AuditLog::open(d.path());
        let all = log.read(None, 0, 100);
        assert_eq!(all.len(), 2);
        assert_eq!(all[1].result, "refused");
        assert_eq!(all[1].message.as_deref(), Some("401: no token"));
        assert_eq!(log.read(Some("db1"), 0, 100).len(), 1);
        assert_eq!(log.read(None, now_ms() + 1000, 100).len(), 0);
        assert_eq!(log.read(None, 0, 1)[0].pair.as_deref(), Some("db2"));
    }

    #[test]
    fn rotates_into_one_older_generation() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("audit.jsonl"), vec![b'\n'; ROTATE_BYTES as usize]).unwrap();
        let log = AuditLog::open(d.path());
        let peer: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        log.record(entry("x", peer, "pause", "db1", Ok(())));
        assert!(std::fs::metadata(d.path().join("audit.jsonl")).unwrap().len() < 1000);
        assert!(d.path().join("audit.1.jsonl").exists());
        assert_eq!(log.read(None, 0, 10).len(), 1);
    }
}
