//! The confinement of a drill's check command: a Landlock domain in which the standby's store
//! and secrets (data dir, token file, TLS key, `/etc/drpair`) do not exist for the command,
//! and from which it can neither signal nor trace the standby (or anything outside the
//! domain). It is applied by `drpaird check-sandbox` (a hidden subcommand the standby runs
//! itself as) in a fresh single-threaded process, which then execs `sh -c CMD`.
//!
//! As root the standby also drops the check to `nobody` first (`setpriv`); run as its own
//! system user (the packaged service), Landlock is what keeps the check out of the store, so a
//! kernel without it refuses the check instead of running it unconfined.

use landlock::{
    ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope,
    path_beneath_rules,
};
use std::path::{Path, PathBuf};

/// Exit status of a check that could not be confined (as a shell's "cannot execute").
pub const UNCONFINED_EXIT: i32 = 126;

/// Why the check was not started.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot confine the check: {0}")]
    Landlock(#[from] landlock::RulesetError),
    #[error(
        "cannot confine the check: this kernel does not enforce Landlock (Linux 5.13 or later with landlock among its LSMs), and the standby does not run as root to run it as nobody instead; the check was not run"
    )]
    NotEnforced,
    #[error("cannot list {}: {source}", .dir.display())]
    List { dir: PathBuf, source: std::io::Error },
}

/// The roots below which the check may reach everything: the whole tree except `denied`
/// (resolved; each missing path is ignored). Each ancestor of a denied path is replaced by its
/// other entries; a symbolic link leading into (or above) a denied path is left out.
pub fn allowed_roots(denied: &[PathBuf]) -> Result<Vec<PathBuf>, SandboxError> {
    let denied: Vec<PathBuf> = denied.iter().filter_map(|p| std::fs::canonicalize(p).ok()).collect();
    let mut out = Vec::new();
    if denied.is_empty() {
        out.push(PathBuf::from("/"));
    } else if !denied.iter().any(|d| d == Path::new("/")) {
        walk(Path::new("/"), &denied, &mut out)?;
    }
    Ok(out)
}

fn related(p: &Path, denied: &[PathBuf]) -> bool {
    denied.iter().any(|d| p.starts_with(d) || d.starts_with(p))
}

fn walk(dir: &Path, denied: &[PathBuf], out: &mut Vec<PathBuf>) -> Result<(), SandboxError> {
    let list = std::fs::read_dir(dir).map_err(|source| SandboxError::List { dir: dir.into(), source })?;
    for entry in list.flatten() {
        let p = entry.path();
        let is_link = entry.file_type().is_ok_and(|t| t.is_symlink());
        if is_link {
            // The rule would follow the link: only where it leads nowhere near a denied path.
            if let Ok(target) = std::fs::canonicalize(&p)
                && !related(&target, denied)
            {
                out.push(p);
            }
        } else if denied.contains(&p) {
            continue;
        } else if denied.iter().any(|d| d.starts_with(&p)) {
            walk(&p, denied, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Confines this process (and what it execs) to `allowed_roots(denied)`, with signals and
/// abstract sockets scoped to the domain. `require`: refuse when the kernel enforces nothing.
pub fn confine(denied: &[PathBuf], require: bool) -> Result<RulesetStatus, SandboxError> {
    let abi = ABI::V6;
    let roots = allowed_roots(denied)?;
    let status = Ruleset::default()
        .set_compatibility(CompatLevel::BestEffort)
        .handle_access(AccessFs::from_all(abi))?
        .scope(Scope::Signal | Scope::AbstractUnixSocket)?
        .create()?
        .add_rules(path_beneath_rules(&roots, AccessFs::from_all(abi)))?
        .restrict_self()?;
    if require && status.ruleset == RulesetStatus::NotEnforced {
        return Err(SandboxError::NotEnforced);
    }
    Ok(status.ruleset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_root_but_the_denied_paths_and_their_ancestors() {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path().join("store");
        std::fs::create_dir_all(store.join("db")).unwrap();
        std::fs::write(dir.path().join("beside"), b"x").unwrap();
        std::os::unix::fs::symlink(&store, dir.path().join("way-in")).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("usr-link")).unwrap();
        let roots = allowed_roots(&[store.clone(), "/no/such/path".into()]).unwrap();
        let base = std::fs::canonicalize(dir.path()).unwrap();
        assert!(roots.contains(&PathBuf::from("/usr")));
        assert!(roots.contains(&dir.path().join("beside")) || roots.contains(&base.join("beside")));
        assert!(roots.iter().any(|r| r.ends_with("usr-link")), "a link elsewhere is kept");
        for r in &roots {
            assert!(!store.starts_with(r) && !r.starts_with(&store), "{} reaches the store", r.display());
            assert!(!r.ends_with("way-in"), "a link into the store is left out");
        }
        assert_eq!(allowed_roots(&[]).unwrap(), vec![PathBuf::from("/")]);
        assert!(allowed_roots(&["/".into()]).unwrap().is_empty());
    }
}
