//! Why quiescing could not be done ([`QuiesceError`]): the plan refused before anything was
//! frozen or any hook ran, a hook that failed, a filesystem that would not freeze or thaw.
//! These never surface as errors of a cut: their words go into the cut's [`QuiesceOutcome`]
//! (prefixed with what was being done), and the point is labelled fuzzy.
//!
//! [`QuiesceOutcome`]: drpair_types::QuiesceOutcome

use std::io;
use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// Why quiescing (or letting go) could not be done.
#[derive(Debug, thiserror::Error)]
pub(super) enum QuiesceError {
    /// The plan has neither mount points nor hooks.
    #[error("nothing to quiesce: no mount points to freeze and no hooks")]
    NothingToQuiesce,
    /// A mount point to freeze is given as a relative path.
    #[error("freeze path '{}' is not absolute", .0.display())]
    FreezeNotAbsolute(PathBuf),
    /// A mount point to freeze cannot be examined.
    #[error("freeze path {}: {source}", .path.display())]
    FreezePath { path: PathBuf, source: io::Error },
    /// A mount point to freeze is not a directory.
    #[error("freeze path {} is not a directory", .0.display())]
    FreezeNotDirectory(PathBuf),
    /// A path to freeze has no filesystem mounted on it.
    #[error(
        "freeze path {} is not a mount point (a whole filesystem is frozen: give the directory it is mounted on)",
        .0.display()
    )]
    FreezeNotMountPoint(PathBuf),
    /// A mount point is listed twice.
    #[error("freeze path {} is listed twice", .0.display())]
    FreezeTwice(PathBuf),
    /// Two paths name the same filesystem.
    #[error("freeze paths {} and {} are the same filesystem", .0.display(), .1.display())]
    SameFilesystem(PathBuf, PathBuf),
    /// The filesystem holds the agent's own state directory.
    #[error(
        "refusing to freeze {}: it holds the agent's state directory {}, where the change maps are \
         written at the cut (freezing it would deadlock the agent)",
        .path.display(),
        .state_dir.display()
    )]
    HoldsStateDir { path: PathBuf, state_dir: PathBuf },
    /// Hooks were asked for, and none is configured.
    #[error("hooks requested but the agent has no pre_hook/post_hook configured")]
    NoHooks,
    /// A hook is configured with a relative path.
    #[error("{key} '{}' is not an absolute path", .path.display())]
    HookNotAbsolute { key: &'static str, path: PathBuf },
    /// A hook cannot be examined.
    #[error("{key} {}: {source}", .path.display())]
    HookPath { key: &'static str, path: PathBuf, source: io::Error },
    /// A hook is not a regular file.
    #[error("{key} {} is not a file", .path.display())]
    HookNotFile { key: &'static str, path: PathBuf },
    /// A hook is not executable.
    #[error("{key} {} is not executable", .path.display())]
    HookNotExecutable { key: &'static str, path: PathBuf },
    /// A hook could not be started.
    #[error("{} cannot be run: {source}", .hook.display())]
    HookSpawn { hook: PathBuf, source: io::Error },
    /// A hook exited unsuccessfully; the last line it wrote to stderr, if any.
    #[error("{} {phase} exited with {status}{}", .hook.display(), colon(.stderr))]
    HookFailed { hook: PathBuf, phase: &'static str, status: ExitStatus, stderr: Option<String> },
    /// A hook ran past its timeout and was killed.
    #[error("{} {phase} did not finish within {} and was killed", .hook.display(), humantime::format_duration(*.timeout))]
    HookTimeout { hook: PathBuf, phase: &'static str, timeout: Duration },
    /// The mount point cannot be opened (to freeze it).
    #[error("cannot open it: {0}")]
    Open(io::Error),
    /// Someone else froze the filesystem (it is left as it is).
    #[error("it is already frozen (by someone else); left as it is")]
    AlreadyFrozen,
    /// Freezing needs a capability the agent lacks.
    #[error("{0}: freezing needs CAP_SYS_ADMIN")]
    NotPermitted(io::Error),
    /// FIFREEZE failed otherwise (a filesystem that cannot be frozen).
    #[error("FIFREEZE: {0}")]
    Freeze(io::Error),
    /// The filesystem was thawed by someone else meanwhile.
    #[error("it was not frozen any more (thawed by someone else?)")]
    NotFrozen,
    /// FITHAW failed otherwise.
    #[error("FITHAW: {0}")]
    Thaw(io::Error),
}

/// `: LINE` when a hook left a last line on stderr.
fn colon(line: &Option<String>) -> String {
    line.as_ref().map(|l| format!(": {l}")).unwrap_or_default()
}
