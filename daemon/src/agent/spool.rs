//! The agent's spool directory, checked at start: created private, cleared of a previous run's
//! files, and never on a protected disk unless the owner allowed it (the spool's own writes
//! would be tracked and shipped, and would grow every epoch they are part of).

use crate::config::SpoolSettings;
use drpair_ship::pass::{SpoolConfig, clear_spool_dir};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// The spool the passes use: `settings` with the directory dropped (memory only) when it
/// cannot be used, saying why in the log.
pub fn prepare(settings: &SpoolSettings, disks: &[PathBuf]) -> SpoolConfig {
    let memory_only = |why: String| {
        tracing::warn!(dir = %settings.dir.display(), "spool: {why}; epochs are spooled in memory only ({} MiB)", settings.memory_bytes >> 20);
        SpoolConfig { memory_bytes: settings.memory_bytes, dir: None, file_bytes: 0 }
    };
    if settings.file_bytes == 0 {
        return SpoolConfig { memory_bytes: settings.memory_bytes, dir: None, file_bytes: 0 };
    }
    if let Err(e) = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&settings.dir) {
        return memory_only(format!("cannot create the directory: {e}"));
    }
    if !settings.on_protected_disk
        && let Some(disk) = protected_disk_under(&settings.dir, disks)
    {
        return memory_only(format!(
            "the directory is on protected disk {} (set spool_on_protected_disk = true to use it anyway)",
            disk.display()
        ));
    }
    match clear_spool_dir(&settings.dir) {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(dir = %settings.dir.display(), files = n, "spool: removed a previous run's spool files (their chunks are still dirty and are read again)")
        }
        Err(e) => return memory_only(format!("cannot clear the directory: {e}")),
    }
    SpoolConfig {
        memory_bytes: settings.memory_bytes,
        dir: Some(settings.dir.clone()),
        file_bytes: settings.file_bytes,
    }
}

/// The protected disk (block device) holding the filesystem of `dir`, if any: the same whole
/// disk as the filesystem's device or the disk it is a partition of.
fn protected_disk_under<'a>(dir: &Path, disks: &'a [PathBuf]) -> Option<&'a PathBuf> {
    let fs_dev = std::fs::metadata(dir).ok()?.dev();
    let here = whole_disk(libc::major(fs_dev), libc::minor(fs_dev));
    disks.iter().find(|d| {
        std::fs::metadata(d).ok().filter(|m| m.file_type().is_block_device()).is_some_and(|m| {
            let r = m.rdev();
            whole_disk(libc::major(r), libc::minor(r)) == here
        })
    })
}

/// The whole disk of block device `major:minor` (itself when it is not a partition).
fn whole_disk(major: u32, minor: u32) -> (u32, u32) {
    let node = PathBuf::from(format!("/sys/dev/block/{major}:{minor}"));
    if !node.join("partition").exists() {
        return (major, minor);
    }
    std::fs::canonicalize(&node)
        .ok()
        .and_then(|real| std::fs::read_to_string(real.parent()?.join("dev")).ok())
        .and_then(|t| {
            let (a, b) = t.trim().split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .unwrap_or((major, minor))
}
