//! Decommissioning an agent (`drpaird agent --decommission`, or its pair deleted on the
//! standby): its tracefs instance (which otherwise records on, even on a detached device) and
//! its change maps are removed. Its credentials (`tls/`) and configuration stay: enrolling or
//! starting it with `--reinit` protects the server again as a new pair.

use anyhow::{Context, Result};
use drpair_types::PairId;
use std::path::Path;

/// Removes what tracking left of `pair` in `state_dir` and in tracefs; returns what it removed.
pub fn decommission(pair: &PairId, state_dir: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    match drpair_track::tracefs::remove_pair_instance(pair.as_str()) {
        Ok(true) => removed.push(format!("tracefs instance drpair-{pair}")),
        Ok(false) => {}
        Err(e) => return Err(e).with_context(|| format!("removing the tracefs instance drpair-{pair}")),
    }
    let entries = match std::fs::read_dir(state_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e).with_context(|| format!("reading {}", state_dir.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let tracking = name.contains(".chmap") || name == "disks" || name == "tracefs.state";
        if tracking && entry.path().is_file() {
            std::fs::remove_file(entry.path()).with_context(|| format!("removing {}", entry.path().display()))?;
            removed.push(entry.path().display().to_string());
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_go_and_credentials_stay() {
        let dir = tempfile::tempdir().unwrap();
        for f in ["disk-0.chmap", "disk-1.chmap.damaged", "disks", "tracefs.state", "pair-id"] {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        std::fs::create_dir(dir.path().join("tls")).unwrap();
        std::fs::write(dir.path().join("tls/agent.pem"), b"x").unwrap();
        let pair = PairId::new("decom-test-no-instance").unwrap();
        let removed = decommission(&pair, dir.path()).unwrap();
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert!(dir.path().join("tls/agent.pem").exists() && dir.path().join("pair-id").exists());
        assert!(decommission(&pair, dir.path()).unwrap().is_empty(), "a second run finds nothing");
    }
}
