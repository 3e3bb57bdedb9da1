//! Where failover targets, failback sources and dump images may be: the standby's
//! `allowed_paths` (`/dev/*` and `/srv/drpair/*` unless configured). A path is checked before
//! anything opens it, symbolic links resolved, and a refusal says nothing of the file (whether
//! it exists, its size): only that it is outside the allowed locations.

use std::path::{Component, Path, PathBuf};

/// The allowed locations of a standby that names none.
pub const DEFAULT_ALLOWED: &[&str] = &["/dev/*", "/srv/drpair/*"];

/// Never allowed, whatever the configuration says.
const NEVER: &[&str] = &["/proc", "/sys", "/etc", "/boot", "/usr", "/bin", "/sbin", "/lib"];

/// Checks `raw` against `allowed` (`DIR/*`: anything below DIR; else the exact path).
pub fn check(raw: &str, allowed: &[String], key: &str) -> Result<PathBuf, String> {
    let refused =
        || format!("{key}: '{raw}' is outside the standby's allowed locations (allowed_paths: {})", allowed.join(", "));
    let p = Path::new(raw);
    if raw.is_empty() || !p.is_absolute() || p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{key}: '{raw}' is not an absolute path without '..'"));
    }
    // Links resolved: the file if it exists, else its directory (a target file made new).
    let real = std::fs::canonicalize(p).ok().or_else(|| {
        let parent = std::fs::canonicalize(p.parent()?).ok()?;
        Some(parent.join(p.file_name()?))
    });
    let Some(real) = real else { return Err(refused()) };
    if NEVER.iter().any(|n| real.starts_with(n)) {
        return Err(refused());
    }
    let ok = allowed.iter().any(|a| match a.strip_suffix("/*") {
        Some(dir) => real.starts_with(dir) && real != Path::new(dir),
        None => real == Path::new(a),
    });
    if ok { Ok(real) } else { Err(refused()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_outside_links_and_secrets() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().canonicalize().unwrap();
        let allowed = vec![format!("{}/*", dir.display())];
        let inside = dir.join("img.raw");
        std::fs::write(&inside, b"x").unwrap();
        assert_eq!(check(inside.to_str().unwrap(), &allowed, "targets").unwrap(), inside);
        // A new file below an allowed directory.
        assert!(check(dir.join("new.img").to_str().unwrap(), &allowed, "targets").is_ok());
        // A link inside pointing outside is judged by where it points.
        let link = dir.join("shadow");
        std::os::unix::fs::symlink("/etc/shadow", &link).unwrap();
        let e = check(link.to_str().unwrap(), &allowed, "targets").unwrap_err();
        assert!(e.contains("outside the standby's allowed locations") && !e.contains("No such"), "{e}");
        // Outside: the same words whether the file exists or not.
        let a = check("/etc/shadow", &allowed, "from").unwrap_err();
        let b = check("/etc/no-such-file", &allowed, "from").unwrap_err();
        assert_eq!(a.replace("shadow", "X"), b.replace("no-such-file", "X"));
        assert!(check("/proc/self/mem", &["/proc/*".to_string()], "image").is_err(), "never /proc");
        assert!(check("relative.img", &allowed, "image").is_err());
        assert!(check(&format!("{}/../etc/passwd", dir.display()), &allowed, "image").is_err());
    }
}
