//! A test's private directory and its log registry; prints daemon log tails on failure.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// Lines of each log printed when a test fails.
const TAIL_LINES: usize = 80;

/// Create first, drop last: its drop prints the logs of a failed test.
pub struct TestEnv {
    name: String,
    dir: Option<tempfile::TempDir>,
    logs: Mutex<Vec<(String, PathBuf)>>,
    started: Instant,
}

impl TestEnv {
    /// A fresh directory `drpair-e2e-NAME-*` under `DRPAIR_E2E_TMP` (default: the system temp dir).
    pub fn new(name: &str) -> Self {
        let base = std::env::var_os("DRPAIR_E2E_TMP").map(PathBuf::from).unwrap_or_else(std::env::temp_dir);
        std::fs::create_dir_all(&base).expect("temp base");
        let dir = tempfile::Builder::new().prefix(&format!("drpair-e2e-{name}-")).tempdir_in(&base).expect("tempdir");
        crate::step(format!("test {name}: working in {}", dir.path().display()));
        Self { name: name.into(), dir: Some(dir), logs: Mutex::new(vec![]), started: Instant::now() }
    }

    pub fn root(&self) -> &Path {
        self.dir.as_ref().expect("dir").path()
    }

    /// A path inside the test directory (not created).
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// A directory inside the test directory (created).
    pub fn mkdir(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).expect("mkdir");
        p
    }

    /// Writes a token file (first line = token) and returns its path.
    pub fn token_file(&self, name: &str, token: &str) -> PathBuf {
        let p = self.path(&format!("{name}.token"));
        std::fs::write(&p, format!("{token}\n")).expect("token file");
        p
    }

    /// Remembers a log whose tail is printed if the test fails.
    pub fn add_log(&self, label: &str, path: &Path) {
        self.logs.lock().expect("logs").push((label.into(), path.to_path_buf()));
    }

    /// The last `lines` lines of every registered log.
    pub fn log_tails(&self, lines: usize) -> String {
        let mut out = String::new();
        for (label, path) in self.logs.lock().expect("logs").iter() {
            let text =
                std::fs::read_to_string(path).unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()));
            let all: Vec<&str> = text.lines().collect();
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "----- {label}: {} (last {} of {} lines) -----\n",
                path.display(),
                all.len() - from,
                all.len()
            ));
            for l in &all[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        eprintln!(
            "\n===== test {} FAILED after {:.1}s; daemon logs follow =====\n{}",
            self.name,
            self.started.elapsed().as_secs_f64(),
            self.log_tails(TAIL_LINES)
        );
        if std::env::var_os("DRPAIR_E2E_KEEP").is_some() {
            if let Some(d) = self.dir.take() {
                eprintln!("DRPAIR_E2E_KEEP set: keeping {}", d.keep().display());
            }
        }
    }
}
