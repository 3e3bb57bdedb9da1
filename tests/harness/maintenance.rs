//! Helpers of the maintenance tests (retention and prune, verification of stored chunks):
//! - [`Maint`]: the pin/unpin, retention, prune, verify and storage endpoints of one pair,
//!   with the `PUT` the [`Api`](crate::Api) client lacks, and a `POST` whose transport error
//!   (the standby killed in the middle of the request) is an answer, not a panic;
//! - [`store_size`]: what a standby's store takes on disk, by kind of file;
//! - [`find_in_files`] and [`flip_byte`]: finding a chunk's bytes in the store's blob files
//!   and damaging them there.

use crate::api::Reply;
use crate::daemons::Standby;
use drpair_types::{PruneReport, RecoveryPoint, RetentionView, StorageReport, VerifyStatus};
use serde_json::Value;
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The maintenance endpoints of one pair of one standby. `Clone + Send`: a request can run
/// in a thread while the test kills the standby.
#[derive(Clone)]
pub struct Maint {
    base: String,
    token: Option<String>,
    pair: String,
    http: ureq::Agent,
}

/// Parses a 200 answer as `$t`; panics with the answer otherwise.
macro_rules! parse {
    ($r:expr, $what:expr, $t:ty) => {{
        let (r, what): (&Reply, &str) = (&$r, &$what);
        assert_eq!(r.status, 200, "{what}: HTTP {}: {}", r.status, r.text());
        serde_json::from_slice::<$t>(&r.body)
            .unwrap_or_else(|e| panic!("{what}: answer does not parse ({e}): {}", r.text()))
    }};
}

/// A 200 answer of `POST …/prune`, parsed.
pub fn prune_report(r: &Reply) -> PruneReport {
    parse!(*r, "prune", PruneReport)
}

/// A 200 answer of `POST|GET …/verify`, parsed.
pub fn verify_status(r: &Reply) -> VerifyStatus {
    parse!(*r, "verify", VerifyStatus)
}

impl Maint {
    pub fn new(sb: &Standby, pair: &str) -> Self {
        let http = crate::api::http_agent(sb.ca_file().as_deref(), Duration::from_secs(300));
        Self { base: sb.url(), token: sb.token.clone(), pair: pair.into(), http }
    }

    /// The same endpoints for another pair name (e.g. one that does not exist).
    pub fn for_pair(&self, pair: &str) -> Self {
        Self { pair: pair.into(), ..self.clone() }
    }

    fn url(&self, rel: &str) -> String {
        format!("{}/api/v1/pairs/{}{rel}", self.base, self.pair)
    }

    fn send(&self, method: &str, rel: &str, body: Option<&Value>) -> Result<Reply, String> {
        let url = self.url(rel);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let r = match (method, body) {
            ("GET", _) => {
                let mut req = self.http.get(&url);
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.call()
            }
            (m, b) => {
                let mut req = if m == "PUT" { self.http.put(&url) } else { self.http.post(&url) };
                req = req.header("Content-Type", "application/json");
                if let Some(a) = &auth {
                    req = req.header("Authorization", a);
                }
                req.send(b.map(Value::to_string).unwrap_or_default().as_bytes())
            }
        }
        .map_err(|e| format!("{method} {url}: {e}"))?;
        Reply::read(r).map_err(|e| format!("{method} {url}: reading the answer: {e}"))
    }

    pub fn get(&self, rel: &str) -> Reply {
        self.send("GET", rel, None).unwrap_or_else(|e| panic!("{e}"))
    }

    pub fn post(&self, rel: &str, body: &Value) -> Reply {
        self.try_post(rel, body).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A POST whose transport error is returned (the standby may be killed meanwhile).
    pub fn try_post(&self, rel: &str, body: &Value) -> Result<Reply, String> {
        self.send("POST", rel, Some(body))
    }

    pub fn put(&self, rel: &str, body: &Value) -> Reply {
        self.send("PUT", rel, Some(body)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `POST …/points/{point}/pin` (`pin` true) or `/unpin`.
    pub fn pin(&self, point: &str, pin: bool) -> Reply {
        self.post(&format!("/points/{point}/{}", if pin { "pin" } else { "unpin" }), &Value::Null)
    }

    /// `GET …/points/{point}` as it answers (200 or an error).
    pub fn point(&self, point: u64) -> Reply {
        self.get(&format!("/points/{point}"))
    }

    /// `GET …/points/{point}`, parsed; panics unless 200.
    pub fn point_ok(&self, point: u64) -> RecoveryPoint {
        parse!(self.point(point), format!("point {point}"), RecoveryPoint)
    }

    /// `GET …/retention`, parsed.
    pub fn retention(&self) -> RetentionView {
        parse!(self.get("/retention"), "GET retention", RetentionView)
    }

    /// `PUT …/retention` with `body`, as it answers.
    pub fn set_retention(&self, body: &Value) -> Reply {
        self.put("/retention", body)
    }

    /// `POST …/prune`, as it answers.
    pub fn prune(&self, dry_run: bool) -> Reply {
        self.post("/prune", &serde_json::json!({ "dry_run": dry_run }))
    }

    /// `POST …/prune`, parsed; panics unless 200.
    pub fn prune_ok(&self, dry_run: bool) -> PruneReport {
        parse!(self.prune(dry_run), if dry_run { "prune (dry run)" } else { "prune" }, PruneReport)
    }

    /// `POST …/verify` (`point`: one point, else all), as it answers.
    pub fn verify(&self, point: Option<u64>, wait: bool) -> Reply {
        let mut body = serde_json::json!({ "wait": wait });
        if let Some(p) = point {
            body["point"] = p.into();
        }
        self.post("/verify", &body)
    }

    /// `POST …/verify` with `wait`, parsed; panics unless 200.
    pub fn verify_ok(&self, point: Option<u64>) -> VerifyStatus {
        parse!(self.verify(point, true), "verify (wait)", VerifyStatus)
    }

    /// `GET …/verify`, as it answers.
    pub fn verify_status(&self) -> Reply {
        self.get("/verify")
    }

    /// `GET …/storage`, parsed.
    pub fn storage(&self) -> StorageReport {
        parse!(self.get("/storage"), "storage report", StorageReport)
    }
}

/// What a directory's files take, by kind (rocksdb's naming).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSize {
    /// Bytes allocated on disk (st_blocks × 512), every file.
    pub allocated: u64,
    /// Sum of the files' lengths.
    pub apparent: u64,
    /// Allocated bytes of blob files (`*.blob`: the chunk data).
    pub blob: u64,
    /// Allocated bytes of table files (`*.sst`).
    pub sst: u64,
    /// Allocated bytes of write-ahead logs (`*.log`).
    pub wal: u64,
    /// Allocated bytes of rocksdb's own info logs (`LOG`, `LOG.old.*`): diagnostics, not data.
    pub info_log: u64,
    pub files: u64,
    pub blob_files: u64,
}

impl StoreSize {
    /// Allocated bytes of the data: everything but the info logs.
    pub fn data(&self) -> u64 {
        self.allocated - self.info_log
    }

    /// Allocated bytes of the flushed data: blob and table files, manifests; no write-ahead
    /// logs. A live standby's WAL holds what replication wrote since the last flush (and
    /// right after a restart, the replayed log until rocksdb drops it), so it is not a
    /// measure of what a prune gave back.
    pub fn flushed(&self) -> u64 {
        self.data() - self.wal
    }
}

impl std::fmt::Display for StoreSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mib = |b: u64| b as f64 / crate::MIB as f64;
        write!(
            f,
            "{:.1} MiB on disk in {} files ({:.1} MiB apparent): {} blob files {:.1}, sst {:.1}, wal {:.1}, info logs {:.1}",
            mib(self.allocated),
            self.files,
            mib(self.apparent),
            self.blob_files,
            mib(self.blob),
            mib(self.sst),
            mib(self.wal),
            mib(self.info_log)
        )
    }
}

/// What the files under `dir` take on disk (recursively).
pub fn store_size(dir: &Path) -> StoreSize {
    let mut s = StoreSize::default();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("read_dir {}: {e}", d.display())).flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let alloc = m.blocks() * 512;
            s.files += 1;
            s.allocated += alloc;
            s.apparent += m.len();
            if name.ends_with(".blob") {
                s.blob += alloc;
                s.blob_files += 1;
            } else if name.ends_with(".sst") {
                s.sst += alloc;
            } else if name.ends_with(".log") {
                s.wal += alloc;
            } else if name == "LOG" || name.starts_with("LOG.old") {
                s.info_log += alloc;
            }
        }
    }
    s
}

/// Every occurrence of `needle` in the files of `dir` whose names end with `suffix`:
/// `(file, offset)`.
pub fn find_in_files(dir: &Path, suffix: &str, needle: &[u8]) -> Vec<(PathBuf, u64)> {
    assert!(needle.len() >= 8, "needle too short to be distinctive");
    let mut out = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    for f in files {
        let data = std::fs::read(&f).unwrap_or_else(|e| panic!("read {}: {e}", f.display()));
        let (head, first) = (&needle[..8], needle[0]);
        let mut i = 0;
        while i + needle.len() <= data.len() {
            match data[i..=data.len() - needle.len()].iter().position(|&b| b == first) {
                None => break,
                Some(k) => i += k,
            }
            if &data[i..i + 8] == head && &data[i..i + needle.len()] == needle {
                out.push((f.clone(), i as u64));
                i += needle.len();
            } else {
                i += 1;
            }
        }
    }
    out
}

/// Inverts the byte at `offset` of `path` and syncs; returns the old byte.
pub fn flip_byte(path: &Path, offset: u64) -> u8 {
    let f = OpenOptions::new().read(true).write(true).open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).expect("read byte");
    f.write_all_at(&[!b[0]], offset).expect("write byte");
    f.sync_all().expect("fsync");
    b[0]
}
