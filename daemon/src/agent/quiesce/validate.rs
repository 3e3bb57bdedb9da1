//! Checks made before anything is frozen or any hook runs.

use super::QuiescePlan;
use super::error::QuiesceError;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

/// Everything that must hold before anything is frozen or any hook runs.
pub(super) fn validate(plan: &QuiescePlan) -> Result<(), QuiesceError> {
    if plan.freeze.is_empty() && !plan.hooks {
        return Err(QuiesceError::NothingToQuiesce);
    }
    let state_dev = nearest_dev(&plan.state_dir);
    let mut seen: Vec<(u64, &Path)> = Vec::new();
    for p in &plan.freeze {
        if !p.is_absolute() {
            return Err(QuiesceError::FreezeNotAbsolute(p.clone()));
        }
        let md = std::fs::metadata(p).map_err(|source| QuiesceError::FreezePath { path: p.clone(), source })?;
        if !md.is_dir() {
            return Err(QuiesceError::FreezeNotDirectory(p.clone()));
        }
        if !is_mount_point(p, &md) {
            return Err(QuiesceError::FreezeNotMountPoint(p.clone()));
        }
        if let Some((_, other)) = seen.iter().find(|(dev, _)| *dev == md.dev()) {
            return Err(if *other == p.as_path() {
                QuiesceError::FreezeTwice(p.clone())
            } else {
                QuiesceError::SameFilesystem(other.to_path_buf(), p.clone())
            });
        }
        if state_dev == Some(md.dev()) {
            return Err(QuiesceError::HoldsStateDir { path: p.clone(), state_dir: plan.state_dir.clone() });
        }
        seen.push((md.dev(), p));
    }
    if plan.hooks {
        if plan.pre_hook.is_none() && plan.post_hook.is_none() {
            return Err(QuiesceError::NoHooks);
        }
        for (key, hook) in [("pre_hook", &plan.pre_hook), ("post_hook", &plan.post_hook)] {
            if let Some(h) = hook {
                check_hook(key, h)?;
            }
        }
    }
    Ok(())
}

fn check_hook(key: &'static str, h: &Path) -> Result<(), QuiesceError> {
    let path = h.to_path_buf();
    if !h.is_absolute() {
        return Err(QuiesceError::HookNotAbsolute { key, path });
    }
    let md = match std::fs::metadata(h) {
        Ok(md) => md,
        Err(source) => return Err(QuiesceError::HookPath { key, path, source }),
    };
    if !md.is_file() {
        return Err(QuiesceError::HookNotFile { key, path });
    }
    if md.permissions().mode() & 0o111 == 0 {
        return Err(QuiesceError::HookNotExecutable { key, path });
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
