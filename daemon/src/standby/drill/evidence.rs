//! The files a drill leaves beside its record: a booted guest's console log, QEMU's own
//! messages and the screenshot, in `DATA_DIR/drill-evidence/ID/`. They live as long as the
//! record (the store keeps each pair's newest drills; the files of a trimmed one go with it)
//! and outlive the drill's scratch dir, which goes when the drill ends.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

pub const CONSOLE: &str = "console.log";
pub const SCREENSHOT: &str = "screenshot.png";
pub const QEMU_LOG: &str = "qemu.log";
const DIR: &str = "drill-evidence";

/// The evidence dir of drill `id` (an id the standby made: `PAIR-MS-N`).
pub fn dir(data_dir: &Path, id: &str) -> PathBuf {
    data_dir.join(DIR).join(id)
}

/// Whether `name` is the id of a drill of `pair`: `PAIR-<ms>-<n>`.
fn of_pair(name: &str, pair: &str) -> bool {
    let Some(rest) = name.strip_prefix(pair).and_then(|r| r.strip_prefix('-')) else { return false };
    let mut parts = rest.split('-');
    let digits = |p: Option<&str>| p.is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()));
    digits(parts.next()) && digits(parts.next()) && parts.next().is_none()
}

/// Removes the evidence of `pair`'s drills whose records are gone (not in `kept`).
pub fn prune(data_dir: &Path, pair: &str, kept: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir(data_dir.join(DIR)) else { return };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if of_pair(&name, pair)
            && !kept.contains(&name)
            && let Err(err) = std::fs::remove_dir_all(e.path())
        {
            tracing::warn!(drill = %name, "removing a trimmed drill's evidence: {err}");
        }
    }
}

/// A file of drill `id`'s evidence, if it exists.
pub fn file(data_dir: &Path, id: &str, name: &str) -> Option<PathBuf> {
    if id.is_empty() || id.contains('/') || id.starts_with('.') {
        return None;
    }
    Some(dir(data_dir, id).join(name)).filter(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_goes_with_its_pairs_trimmed_records_only() {
        assert!(of_pair("web-1795330337554-0", "web"));
        assert!(!of_pair("web-01-1795330337554-0", "web"), "another pair's drill");
        assert!(of_pair("web-01-1795330337554-12", "web-01"));
        let d = tempfile::tempdir().unwrap();
        for id in ["web-1-0", "web-2-1", "web-01-3-0"] {
            std::fs::create_dir_all(dir(d.path(), id)).unwrap();
        }
        prune(d.path(), "web", &HashSet::from(["web-2-1".to_string()]));
        let left: HashSet<String> = std::fs::read_dir(d.path().join(DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, HashSet::from(["web-2-1".to_string(), "web-01-3-0".to_string()]));
        assert!(file(d.path(), "../x", CONSOLE).is_none());
    }
}
