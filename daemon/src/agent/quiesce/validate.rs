//! Checks made before anything is frozen or any hook runs.

use super::QuiescePlan;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Everything that must hold before anything is frozen or any hook runs.
pub(super) fn validate(plan: &QuiescePlan) -> Result<(), String> {
    if plan.freeze.is_empty() && !plan.hooks {
        return Err("nothing to quiesce: no mount points to freeze and no hooks".into());
    }
    let state_dev = nearest_dev(&plan.state_dir);
    let mut seen: Vec<(u64, &Path)> = Vec::new();
    for p in &plan.freeze {
        if !p.is_absolute() {
            return Err(format!("freeze path '{}' is not absolute", p.display()));
        }
        let md = std::fs::metadata(p).map_err(|e| format!("freeze path {}: {e}", p.display()))?;
        if !md.is_dir() {
            return Err(format!("freeze path {} is not a directory", p.display()));
        }
        if !is_mount_point(p, &md) {
            return Err(format!(
                "freeze path {} is not a mount point (a whole filesystem is frozen: give the directory it is mounted on)",
                p.display()
            ));
        }
        if let Some((_, other)) = seen.iter().find(|(dev, _)| *dev == md.dev()) {
            return Err(if *other == p.as_path() {
                format!("freeze path {} is listed twice", p.display())
            } else {
                format!("freeze paths {} and {} are the same filesystem", other.display(), p.display())
            });
        }
        if state_dev == Some(md.dev()) {
            return Err(format!(
                "refusing to freeze {}: it holds the agent's state directory {}, where the change maps are \
                 written at the cut (freezing it would deadlock the agent)",
                p.display(),
                plan.state_dir.display()
            ));
        }
        seen.push((md.dev(), p));
    }
    if plan.hooks {
        if plan.pre_hook.is_none() && plan.post_hook.is_none() {
            return Err("hooks requested but the agent has no pre_hook/post_hook configured".into());
        }
        for (key, hook) in [("pre_hook", &plan.pre_hook), ("post_hook", &plan.post_hook)] {
            if let Some(h) = hook {
                check_hook(key, h)?;
            }
        }
    }
    Ok(())
}

fn check_hook(key: &str, h: &Path) -> Result<(), String> {
    if !h.is_absolute() {
        return Err(format!("{key} '{}' is not an absolute path", h.display()));
    }
    let md = std::fs::metadata(h).map_err(|e| format!("{key} {}: {e}", h.display()))?;
    if !md.is_file() {
        return Err(format!("{key} {} is not a file", h.display()));
    }
    if md.permissions().mode() & 0o111 == 0 {
        return Err(format!("{key} {} is not executable", h.display()));
    }
    Ok(())
}

/// The device of `p`, or of its nearest existing ancestor.
fn nearest_dev(p: &Path) -> Option<u64> {
    p.ancestors().find_map(|a| std::fs::metadata(a).ok()).map(|m| m.dev())
}

/// A filesystem is mounted on `p`: its device differs from its parent's, it is `/`, or
/// it is listed in the mount table (a bind mount of the same device).
pub(super) fn is_mount_point(p: &Path, md: &std::fs::Metadata) -> bool {
    let Ok(parent) = std::fs::metadata(p.join("..")) else { return false };
    if parent.dev() != md.dev() || parent.ino() == md.ino() {
        return true;
    }
    let Ok(real) = std::fs::canonicalize(p) else { return false };
    std::fs::read_to_string("/proc/self/mountinfo")
        .map(|t| t.lines().filter_map(|l| l.split(' ').nth(4)).any(|m| Path::new(&unescape_octal(m)) == real))
        .unwrap_or(false)
}

/// Mount table fields escape space, tab, newline and backslash as `\ooo`.
pub(super) fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).and_then(|d| u8::from_str_radix(std::str::from_utf8(d).ok()?, 8).ok());
        match code {
            Some(c) if b[i] == b'\\' => {
                out.push(c);
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
