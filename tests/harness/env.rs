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
            let total = text.lines().count();
            let all = collapse_runs(text.lines());
            let from = all.len().saturating_sub(lines);
            out.push_str(&format!(
                "----- {label}: {} (last {} of {} lines, runs of alike lines folded) -----\n",
                path.display(),
                all.len() - from,
                total
            ));
            for l in &all[from..] {
                out.push_str(l);
                out.push('\n');
            }
        }
        out
    }
}

/// A log line with its numbers blanked: lines alike in shape (the same message with other
/// epochs, times, counts) have the same shape.
fn shape(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_digits = false;
    for c in line.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            in_digits = false;
            out.push(c);
        }
    }
    out
}

/// Folds runs of alike lines (an idle pair's empty points: one line per point on the standby,
/// a cut and an acknowledgement per point on the agent) into the run's first and last
/// repetition and a count, so that a failed test's log tail reaches back to what happened
/// before the run. A run is a block of 1 to 4 lines repeated at least 3 times.
fn collapse_runs<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<String> {
    let lines: Vec<&str> = lines.collect();
    let shapes: Vec<String> = lines.iter().map(|l| shape(l)).collect();
    let mut out = vec![];
    let mut i = 0;
    while i < lines.len() {
        // The block length whose repetitions from here cover the most lines.
        let (mut period, mut blocks) = (1, 1);
        for p in 1..=4 {
            let mut n = 1;
            while i + (n + 1) * p <= lines.len() && (0..p).all(|k| shapes[i + k] == shapes[i + n * p + k]) {
                n += 1;
            }
            if n * p > period * blocks {
                (period, blocks) = (p, n);
            }
        }
        let covered = period * blocks;
        if blocks >= 3 && covered > 3 {
            out.extend(lines[i..i + period].iter().map(|l| l.to_string()));
            out.push(format!("    … {} alike lines folded …", covered - 2 * period));
            out.extend(lines[i + covered - period..i + covered].iter().map(|l| l.to_string()));
            i += covered;
        } else {
            out.push(lines[i].to_string());
            i += 1;
        }
    }
    out
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

#[cfg(test)]
mod tests {
    #[test]
    fn runs_of_alike_lines_are_folded_and_others_kept() {
        let mut lines = vec!["start".to_string()];
        lines.extend((1..=10).map(|e| format!("T{e} committed epoch={e} chunks=0")));
        lines.push("verify requested".into());
        lines.extend((11..=12).map(|e| format!("T{e} committed epoch={e} chunks=0")));
        let got = super::collapse_runs(lines.iter().map(String::as_str));
        assert_eq!(
            got,
            [
                "start",
                "T1 committed epoch=1 chunks=0",
                "    … 8 alike lines folded …",
                "T10 committed epoch=10 chunks=0",
                "verify requested",
                "T11 committed epoch=11 chunks=0",
                "T12 committed epoch=12 chunks=0",
            ]
        );
    }

    #[test]
    fn repeated_blocks_of_lines_are_folded_too() {
        let mut lines = vec!["start".to_string()];
        for e in 1..=6 {
            lines.push(format!("cut epoch={e} dirty=0"));
            lines.push(format!("epoch acknowledged epoch={e} chunks=0"));
        }
        lines.push("end".into());
        let got = super::collapse_runs(lines.iter().map(String::as_str));
        assert_eq!(
            got,
            [
                "start",
                "cut epoch=1 dirty=0",
                "epoch acknowledged epoch=1 chunks=0",
                "    … 8 alike lines folded …",
                "cut epoch=6 dirty=0",
                "epoch acknowledged epoch=6 chunks=0",
                "end",
            ]
        );
    }
}
