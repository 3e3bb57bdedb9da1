//! Quiescing the applications around an app-consistent cut.
//!
//! The agent freezes filesystems (FIFREEZE on their mount point) and/or runs the operator's
//! hook scripts (`pre` before, `post` after); the caller then cuts and reads the cut's
//! chunks, and releases. Invariants kept here:
//! - everything is validated before anything is frozen or any hook runs;
//! - whatever fails, the applications are let go: what was frozen is thawed and the post
//!   hook runs (also when the pre hook failed);
//! - nothing stays frozen past the thaw budget: a watchdog thread thaws at the deadline and
//!   the attempt is then recorded as failed (the cut's reads may have seen later writes);
//! - failures never surface as errors: they are recorded in the [`QuiesceOutcome`], and the
//!   point is then labelled fuzzy.

use crate::config::QuiesceConfig;
use drpair_types::QuiesceOutcome;
use drpair_wire::QuiesceRequest;
use std::ffi::{c_int, c_ulong};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Longest a hook script may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Range a thaw budget is clamped to (the API and the config refuse values outside it).
const BUDGET_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));

// The libc crate has no constants for these (nor is it a dependency of this crate):
// FIFREEZE = _IOWR('X', 119, int), FITHAW = _IOWR('X', 120, int) from <linux/fs.h>. The
// encoding gives the same numbers on every Linux architecture (x86, arm, powerpc, mips).
const FIFREEZE: c_ulong = 0xC004_5877;
const FITHAW: c_ulong = 0xC004_5878;
const EPERM: i32 = 1;
const EBUSY: i32 = 16;
const EINVAL: i32 = 22;

unsafe extern "C" {
    // The C library's ioctl(2); std links it anyway.
    fn ioctl(fd: c_int, request: c_ulong, ...) -> c_int;
}

/// What to quiesce for one cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuiescePlan {
    /// Mount points to freeze, in this order (thawed in reverse).
    pub freeze: Vec<PathBuf>,
    /// Run the hooks (at least one of them must be configured).
    pub hooks: bool,
    pub pre_hook: Option<PathBuf>,
    pub post_hook: Option<PathBuf>,
    /// Longest time the applications stay quiesced.
    pub budget: Duration,
    pub pair: String,
    /// The agent's state directory: its filesystem must never be frozen.
    pub state_dir: PathBuf,
    /// Longest time a hook may run ([`HOOK_TIMEOUT`]).
    pub hook_timeout: Duration,
}

impl QuiescePlan {
    /// The plan for a cut requested through the API: its mount points, the agent's hooks if
    /// asked for, its budget or the agent's.
    pub fn from_request(req: &QuiesceRequest, cfg: &QuiesceConfig, pair: &str, state_dir: &Path) -> Self {
        let budget = req.budget_ms.map_or(cfg.thaw_budget, Duration::from_millis);
        Self {
            freeze: req.freeze.iter().map(PathBuf::from).collect(),
            hooks: req.hooks,
            pre_hook: cfg.pre_hook.clone().filter(|_| req.hooks),
            post_hook: cfg.post_hook.clone().filter(|_| req.hooks),
            budget: budget.clamp(BUDGET_RANGE.0, BUDGET_RANGE.1),
            pair: pair.to_string(),
            state_dir: state_dir.to_path_buf(),
            hook_timeout: HOOK_TIMEOUT,
        }
    }

    /// The plan for a scheduled app-consistent cut: everything the agent is configured with.
    pub fn scheduled(cfg: &QuiesceConfig, pair: &str, state_dir: &Path) -> Self {
        Self {
            freeze: cfg.freeze.clone(),
            hooks: cfg.pre_hook.is_some() || cfg.post_hook.is_some(),
            pre_hook: cfg.pre_hook.clone(),
            post_hook: cfg.post_hook.clone(),
            budget: cfg.thaw_budget.clamp(BUDGET_RANGE.0, BUDGET_RANGE.1),
            pair: pair.to_string(),
            state_dir: state_dir.to_path_buf(),
            hook_timeout: HOOK_TIMEOUT,
        }
    }
}

/// Quiesces as planned and returns at once (blocking only for the hooks and the freezes).
/// Never fails: a failure is recorded and [`Quiesced::is_quiesced`] is false.
pub fn quiesce(plan: QuiescePlan) -> Quiesced {
    let mut q = Quiesced {
        freeze: plan.freeze.iter().map(|p| p.display().to_string()).collect(),
        hooks: plan.hooks,
        budget: plan.budget,
        failure: None,
        held: None,
    };
    if let Err(why) = validate(&plan) {
        tracing::warn!(pair = %plan.pair, "app-consistent cut refused, nothing frozen: {why}");
        q.failure = Some(why);
        return q;
    }
    let post = plan.post_hook.clone().filter(|_| plan.hooks);
    let hooks = Hooks { pair: plan.pair.clone(), timeout: plan.hook_timeout };
    if let Some(pre) = plan.pre_hook.as_deref().filter(|_| plan.hooks)
        && let Err(e) = hooks.run(pre, "pre")
    {
        let mut why = format!("pre_hook failed: {e}; nothing was frozen");
        if let Some(post) = &post
            && let Err(e) = hooks.run(post, "post")
        {
            why.push_str(&format!("; post_hook failed too: {e}"));
        }
        tracing::warn!(pair = %plan.pair, "{why}");
        q.failure = Some(why);
        return q;
    }
    let started = Instant::now();
    let mut frozen = Vec::new();
    for path in &plan.freeze {
        match freeze_fs(path) {
            Ok(f) => {
                tracing::info!(pair = %plan.pair, mount = %path.display(), ms = f.took_ms, "filesystem frozen");
                frozen.push(f);
            }
            Err(e) => {
                let mut why = format!("cannot freeze {}: {e}", path.display());
                let mut hold = Hold::new(frozen, post, hooks);
                hold.let_go(" (rolling back a failed freeze)");
                if !hold.problems.is_empty() {
                    why.push_str(&format!("; letting go: {}", hold.problems.join("; ")));
                }
                tracing::warn!(pair = %plan.pair, "{why}");
                q.failure = Some(why);
                return q;
            }
        }
    }
    if !frozen.is_empty() {
        tracing::info!(
            pair = %plan.pair,
            count = frozen.len(),
            ms = ms(started.elapsed()),
            budget_ms = ms(plan.budget),
            "filesystems frozen"
        );
    }
    // The budget runs from here.
    let since = Instant::now();
    let shared = Arc::new(Shared { hold: Mutex::new(Hold::new(frozen, post, hooks)), wake: Condvar::new() });
    let (pair, budget, s) = (plan.pair.clone(), plan.budget, shared.clone());
    let watchdog =
        std::thread::Builder::new().name("quiesce-watchdog".into()).spawn(move || watchdog(&s, since, budget, &pair));
    match watchdog {
        Ok(w) => q.held = Some(Held { shared, since, watchdog: Some(w) }),
        Err(e) => {
            let mut hold = lock(&shared.hold);
            hold.let_go(" (no watchdog)");
            q.failure = Some(format!("cannot start the thaw watchdog ({e}); thawed at once"));
        }
    }
    q
}

/// An attempt at quiescing: held until [`Quiesced::release`] (or the budget, or drop).
pub struct Quiesced {
    freeze: Vec<String>,
    hooks: bool,
    budget: Duration,
    /// Why quiescing failed (then nothing is held).
    failure: Option<String>,
    held: Option<Held>,
}

/// What a successful attempt holds.
struct Held {
    shared: Arc<Shared>,
    /// When quiescing completed: the budget's start.
    since: Instant,
    watchdog: Option<JoinHandle<()>>,
}

impl Quiesced {
    /// Whether the applications are quiesced now (false after a failure or once the budget
    /// expired).
    pub fn is_quiesced(&self) -> bool {
        self.held.as_ref().is_some_and(|h| !lock(&h.shared.hold).expired)
    }

    /// Thaws (if the watchdog has not), runs the post hook, and says what was achieved.
    pub fn release(mut self) -> QuiesceOutcome {
        self.finish()
    }

    fn finish(&mut self) -> QuiesceOutcome {
        let mut out = QuiesceOutcome {
            freeze: self.freeze.clone(),
            hooks: self.hooks,
            achieved: false,
            frozen_ms: 0,
            budget_ms: ms(self.budget),
            failure: self.failure.clone(),
        };
        let Some(mut held) = self.held.take() else { return out };
        let (expired, problems, let_go_at) = {
            let mut hold = lock(&held.shared.hold);
            hold.release_asked = true;
            held.shared.wake.notify_all();
            hold.let_go("");
            (hold.expired, std::mem::take(&mut hold.problems), hold.let_go_at)
        };
        if let Some(w) = held.watchdog.take() {
            let _ = w.join();
        }
        out.frozen_ms = let_go_at.map_or(0, |t| ms(t.saturating_duration_since(held.since)));
        let mut why = Vec::new();
        if expired {
            why.push(format!(
                "thaw budget of {} exceeded: thawed before the cut's reads finished",
                humantime::format_duration(self.budget)
            ));
        }
        why.extend(problems);
        out.achieved = why.is_empty();
        out.failure = (!why.is_empty()).then(|| why.join("; "));
        out
    }
}

impl Drop for Quiesced {
    fn drop(&mut self) {
        if self.held.is_some() {
            tracing::warn!(freeze = ?self.freeze, "quiesced applications dropped without release; letting them go");
            self.finish();
        }
    }
}

/// State shared by the holder and its watchdog.
struct Shared {
    hold: Mutex<Hold>,
    wake: Condvar,
}

/// What is held, and what happened while letting it go.
struct Hold {
    frozen: Vec<Frozen>,
    post_hook: Option<PathBuf>,
    hooks: Hooks,
    release_asked: bool,
    /// The watchdog let go at the deadline.
    expired: bool,
    /// When the applications were let go (thawed; before the post hook).
    let_go_at: Option<Instant>,
    /// Thaw and post hook failures.
    problems: Vec<String>,
}

impl Hold {
    fn new(frozen: Vec<Frozen>, post_hook: Option<PathBuf>, hooks: Hooks) -> Self {
        Self { frozen, post_hook, hooks, release_asked: false, expired: false, let_go_at: None, problems: vec![] }
    }

    /// Thaws in reverse order and runs the post hook; does nothing the second time. `why`
    /// ends the thaw log line.
    fn let_go(&mut self, why: &str) {
        if self.let_go_at.is_some() {
            return;
        }
        let pair = self.hooks.pair.clone();
        for f in std::mem::take(&mut self.frozen).into_iter().rev() {
            let t = Instant::now();
            match thaw_fs(&f) {
                Ok(()) => tracing::info!(
                    pair = %pair,
                    mount = %f.path.display(),
                    thaw_ms = ms(t.elapsed()),
                    frozen_ms = ms(f.at.elapsed()),
                    "filesystem thawed{why}"
                ),
                Err(e) => {
                    let msg = format!("cannot thaw {}: {e}", f.path.display());
                    tracing::error!(pair = %pair, "{msg}");
                    self.problems.push(msg);
                }
            }
        }
        self.let_go_at = Some(Instant::now());
        if let Some(post) = self.post_hook.take()
            && let Err(e) = self.hooks.run(&post, "post")
        {
            let msg = format!("post_hook failed: {e}; the applications may not have resumed");
            tracing::error!(pair = %pair, "{msg}");
            self.problems.push(msg);
        }
    }
}

/// Lets go at the deadline unless released before.
fn watchdog(shared: &Shared, since: Instant, budget: Duration, pair: &str) {
    let left = budget.saturating_sub(since.elapsed());
    let hold = lock(&shared.hold);
    let (mut hold, _) =
        shared.wake.wait_timeout_while(hold, left, |h| !h.release_asked).unwrap_or_else(PoisonError::into_inner);
    if !hold.release_asked {
        hold.expired = true;
        tracing::warn!(
            pair = %pair,
            budget_ms = ms(budget),
            "thaw budget exceeded before the cut's reads finished; thawing now"
        );
        hold.let_go(" (thaw budget exceeded)");
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The lock, also after a panic elsewhere: letting go must always be possible.
fn lock(m: &Mutex<Hold>) -> MutexGuard<'_, Hold> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A filesystem frozen by this attempt, through an open fd of its mount point.
struct Frozen {
    path: PathBuf,
    dir: File,
    at: Instant,
    took_ms: u64,
}

fn fs_ioctl(dir: &File, request: c_ulong) -> io::Result<()> {
    let arg: c_int = 0;
    // SAFETY: the fd is open for the duration of the call; FIFREEZE and FITHAW take an int
    // argument they ignore, passed by value.
    let rc = unsafe { ioctl(dir.as_raw_fd(), request, arg) };
    if rc == 0 { Ok(()) } else { Err(io::Error::last_os_error()) }
}

fn freeze_fs(path: &Path) -> Result<Frozen, String> {
    let dir = File::open(path).map_err(|e| format!("cannot open it: {e}"))?;
    let t = Instant::now();
    fs_ioctl(&dir, FIFREEZE).map_err(|e| match e.raw_os_error() {
        Some(EBUSY) => "it is already frozen (by someone else); left as it is".to_string(),
        Some(EPERM) => format!("{e}: freezing needs CAP_SYS_ADMIN"),
        _ => format!("FIFREEZE: {e}"),
    })?;
    Ok(Frozen { path: path.to_path_buf(), dir, at: Instant::now(), took_ms: ms(t.elapsed()) })
}

fn thaw_fs(f: &Frozen) -> Result<(), String> {
    fs_ioctl(&f.dir, FITHAW).map_err(|e| match e.raw_os_error() {
        Some(EINVAL) => "it was not frozen any more (thawed by someone else?)".to_string(),
        _ => format!("FITHAW: {e}"),
    })
}

/// Runs hook scripts: `HOOK pre|post PAIR`, env `DRPAIR_PAIR`, killed after the timeout.
struct Hooks {
    pair: String,
    timeout: Duration,
}

impl Hooks {
    fn run(&self, hook: &Path, phase: &str) -> Result<(), String> {
        let started = Instant::now();
        let mut child = self.spawn(hook, phase).map_err(|e| format!("{} cannot be run: {e}", hook.display()))?;
        // Read stderr on a thread: a hook's own children may keep the pipe open.
        let (tx, rx) = mpsc::channel();
        if let Some(mut err) = child.stderr.take() {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = (&mut err).take(64 << 10).read_to_end(&mut buf);
                let _ = tx.send(buf);
            });
        }
        let status = wait_until(&mut child, started + self.timeout);
        let stderr = rx.recv_timeout(Duration::from_millis(100)).unwrap_or_default();
        let last = String::from_utf8_lossy(&stderr).lines().rev().find(|l| !l.trim().is_empty()).map(|l| {
            let l = l.trim();
            if l.chars().count() > 200 {
                format!("{}…", l.chars().take(200).collect::<String>())
            } else {
                l.to_string()
            }
        });
        let ms = ms(started.elapsed());
        match status {
            Some(s) if s.success() => {
                tracing::info!(pair = %self.pair, hook = %hook.display(), phase, ms, "hook succeeded");
                Ok(())
            }
            Some(s) => Err(format!(
                "{} {phase} exited with {s}{}",
                hook.display(),
                last.map(|l| format!(": {l}")).unwrap_or_default()
            )),
            None => Err(format!(
                "{} {phase} did not finish within {} and was killed",
                hook.display(),
                humantime::format_duration(self.timeout)
            )),
        }
    }

    fn spawn(&self, hook: &Path, phase: &str) -> io::Result<Child> {
        let mut tries = 0;
        loop {
            let r = Command::new(hook)
                .args([phase, &self.pair])
                .env("DRPAIR_PAIR", &self.pair)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn();
            match r {
                // Another thread forking while the script was being written: retry.
                Err(e) if e.kind() == io::ErrorKind::ExecutableFileBusy && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => return r,
            }
        }
    }
}

/// The child's exit status, or None after killing it at the deadline.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<std::process::ExitStatus> {
    let mut nap = Duration::from_millis(1);
    loop {
        match child.try_wait() {
            Ok(Some(s)) => return Some(s),
            Ok(None) if Instant::now() < deadline => {
                std::thread::sleep(nap.min(deadline.saturating_duration_since(Instant::now())));
                nap = (nap * 2).min(Duration::from_millis(20));
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Everything that must hold before anything is frozen or any hook runs.
fn validate(plan: &QuiescePlan) -> Result<(), String> {
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
fn is_mount_point(p: &Path, md: &std::fs::Metadata) -> bool {
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
fn unescape_octal(s: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::OpenOptions;
    use std::io::Write;
    use tempfile::TempDir;

    fn plan(freeze: Vec<PathBuf>, state_dir: &Path) -> QuiescePlan {
        QuiescePlan {
            freeze,
            hooks: false,
            pre_hook: None,
            post_hook: None,
            budget: Duration::from_secs(2),
            pair: "web-01".into(),
            state_dir: state_dir.to_path_buf(),
            hook_timeout: HOOK_TIMEOUT,
        }
    }

    /// Quiesces, expecting a refusal; returns its message.
    fn refusal(plan: QuiescePlan) -> String {
        let q = quiesce(plan);
        assert!(!q.is_quiesced());
        let out = q.release();
        assert!(!out.achieved);
        assert_eq!(out.frozen_ms, 0);
        out.failure.expect("a failure")
    }

    /// A shell script appending `NAME $1 $2 $DRPAIR_PAIR` to `log`, then running `tail`.
    fn script(dir: &Path, name: &str, log: &Path, tail: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        let body = format!("#!/bin/sh\necho \"{name} $1 $2 $DRPAIR_PAIR\" >> {}\n{tail}\n", log.display());
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn hook_plan(dir: &TempDir, pre_tail: &str, post_tail: &str) -> (QuiescePlan, PathBuf) {
        let log = dir.path().join("log");
        let mut p = plan(vec![], dir.path());
        p.hooks = true;
        p.pre_hook = Some(script(dir.path(), "pre.sh", &log, pre_tail, 0o755));
        p.post_hook = Some(script(dir.path(), "post.sh", &log, post_tail, 0o755));
        (p, log)
    }

    fn read(log: &Path) -> String {
        std::fs::read_to_string(log).unwrap_or_default()
    }

    #[test]
    fn plans_from_requests_and_config() {
        let cfg = QuiesceConfig {
            freeze: vec!["/srv".into()],
            pre_hook: Some("/etc/drpair/pre".into()),
            post_hook: Some("/etc/drpair/post".into()),
            ..QuiesceConfig::default()
        };
        let req = QuiesceRequest { freeze: vec!["/data".into()], hooks: false, budget_ms: None };
        let p = QuiescePlan::from_request(&req, &cfg, "web-01", Path::new("/var/lib/drpair/agent"));
        assert_eq!(p.freeze, vec![PathBuf::from("/data")]);
        assert!(!p.hooks && p.pre_hook.is_none() && p.post_hook.is_none());
        assert_eq!(p.budget, Duration::from_secs(2));
        let req = QuiesceRequest { freeze: vec![], hooks: true, budget_ms: Some(5) };
        let p = QuiescePlan::from_request(&req, &cfg, "web-01", Path::new("/s"));
        assert!(p.hooks && p.pre_hook.is_some() && p.post_hook.is_some());
        assert_eq!(p.budget, Duration::from_millis(100), "clamped");
        let p = QuiescePlan::scheduled(&cfg, "web-01", Path::new("/s"));
        assert_eq!((p.freeze.len(), p.hooks, p.pair.as_str()), (1, true, "web-01"));
        assert!(!QuiescePlan::scheduled(&QuiesceConfig::default(), "a", Path::new("/s")).hooks);
    }

    #[test]
    fn refusals_before_anything_is_frozen() {
        let dir = TempDir::new().unwrap();
        let d = dir.path();
        assert_eq!(refusal(plan(vec!["mnt/data".into()], d)), "freeze path 'mnt/data' is not absolute");
        assert!(refusal(plan(vec![d.join("missing")], d)).contains("No such file"));
        assert!(refusal(plan(vec![d.to_path_buf()], d)).contains("is not a mount point"));
        std::fs::write(d.join("f"), "x").unwrap();
        assert!(refusal(plan(vec![d.join("f")], d)).ends_with("is not a directory"));
        assert_eq!(refusal(plan(vec![], d)), "nothing to quiesce: no mount points to freeze and no hooks");
        let mut p = plan(vec![], d);
        p.hooks = true;
        assert_eq!(refusal(p.clone()), "hooks requested but the agent has no pre_hook/post_hook configured");
        let log = d.join("log");
        p.pre_hook = Some(script(d, "pre.sh", &log, "", 0o644));
        assert!(refusal(p.clone()).ends_with("pre.sh is not executable"));
        p.pre_hook = None;
        p.post_hook = Some(d.join("no-such-hook"));
        assert!(refusal(p).starts_with("post_hook "));
        assert_eq!(read(&log), "", "no hook ran");
    }

    #[test]
    fn hooks_run_in_order_with_their_arguments() {
        let dir = TempDir::new().unwrap();
        let (p, log) = hook_plan(&dir, "", "");
        let q = quiesce(p);
        assert!(q.is_quiesced());
        assert_eq!(read(&log), "pre.sh pre web-01 web-01\n");
        std::thread::sleep(Duration::from_millis(50));
        let out = q.release();
        assert_eq!(read(&log), "pre.sh pre web-01 web-01\npost.sh post web-01 web-01\n");
        assert!(out.achieved, "{out:?}");
        assert!(out.hooks && out.freeze.is_empty() && out.failure.is_none());
        assert!((50..2000).contains(&out.frozen_ms), "{}", out.frozen_ms);
        assert_eq!(out.budget_ms, 2000);
    }

    #[test]
    fn a_failed_pre_hook_still_runs_the_post_hook() {
        let dir = TempDir::new().unwrap();
        let (p, log) = hook_plan(&dir, "echo 'database busy' >&2; exit 3", "");
        let q = quiesce(p);
        assert!(!q.is_quiesced());
        assert_eq!(read(&log), "pre.sh pre web-01 web-01\npost.sh post web-01 web-01\n");
        let out = q.release();
        assert!(!out.achieved);
        let why = out.failure.unwrap();
        assert!(why.starts_with("pre_hook failed: ") && why.contains("exit status: 3: database busy"), "{why}");
        assert!(why.ends_with("nothing was frozen"), "{why}");
        assert_eq!(read(&log).lines().count(), 2, "post ran once");
    }

    #[test]
    fn a_hung_pre_hook_is_killed() {
        let dir = TempDir::new().unwrap();
        let (mut p, log) = hook_plan(&dir, "sleep 5", "");
        p.hook_timeout = Duration::from_millis(300);
        let t = Instant::now();
        let out = quiesce(p).release();
        assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
        let why = out.failure.unwrap();
        assert!(why.contains("did not finish within 300ms and was killed"), "{why}");
        assert!(read(&log).ends_with("post.sh post web-01 web-01\n"));
    }

    #[test]
    fn a_failed_post_hook_is_recorded() {
        let dir = TempDir::new().unwrap();
        let (p, _) = hook_plan(&dir, "", "exit 1");
        let out = quiesce(p).release();
        assert!(!out.achieved);
        assert!(out.failure.unwrap().contains("post_hook failed: "));
    }

    #[test]
    fn mount_table_escapes() {
        assert_eq!(unescape_octal(r"/mnt/a\040b\134c"), r"/mnt/a b\c");
        assert_eq!(unescape_octal(r"/x\04"), r"/x\04");
    }

    // ---- real filesystems (root only): a loop device with ext4, cleaned up on drop ----

    fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
        let out = Command::new(cmd).args(args).output().map_err(|e| format!("{cmd}: {e}"))?;
        if !out.status.success() {
            return Err(format!("{cmd} {args:?}: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    struct LoopFs {
        dir: TempDir,
        dev: Option<String>,
        mnt: PathBuf,
        /// Mounted on top: unmounted first.
        extra: Vec<PathBuf>,
    }

    impl LoopFs {
        /// None (the test is skipped) when not root.
        fn new() -> Option<Self> {
            if std::fs::metadata("/proc/self").map(|m| m.uid()).unwrap_or(1) != 0 {
                eprintln!("skipped: needs root for loop devices and FIFREEZE");
                return None;
            }
            let dir = TempDir::new().unwrap();
            let img = dir.path().join("fs.img");
            File::create(&img).unwrap().set_len(64 << 20).unwrap();
            let mnt = dir.path().join("mnt");
            std::fs::create_dir(&mnt).unwrap();
            let mut fs = LoopFs { dev: None, mnt, extra: vec![], dir };
            fs.dev = Some(run("losetup", &["-f", "--show", img.to_str().unwrap()]).unwrap());
            let dev = fs.dev.clone().unwrap();
            run("mkfs.ext4", &["-q", &dev]).unwrap();
            run("mount", &[&dev, fs.mnt.to_str().unwrap()]).unwrap();
            File::create(fs.mnt.join("data")).unwrap().sync_all().unwrap();
            Some(fs)
        }
    }

    impl Drop for LoopFs {
        fn drop(&mut self) {
            let mnt = self.mnt.to_str().unwrap().to_string();
            let _ = run("fsfreeze", &["-u", &mnt]);
            for e in self.extra.iter().rev() {
                let _ = run("umount", &[e.to_str().unwrap()]);
            }
            if run("umount", &[&mnt]).is_err() {
                let _ = run("umount", &["-l", &mnt]);
            }
            if let Some(dev) = &self.dev {
                let _ = run("losetup", &["-d", dev]);
            }
            let _ = self.dir.path();
        }
    }

    /// Appends 4 KiB to `path` and fsyncs it on a thread; sends when that is done.
    fn writer(path: PathBuf) -> mpsc::Receiver<Instant> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut f = OpenOptions::new().create(true).append(true).open(&path).unwrap();
            f.write_all(&[7u8; 4096]).unwrap();
            f.sync_all().unwrap();
            let _ = tx.send(Instant::now());
        });
        rx
    }

    fn writable(mnt: &Path) -> bool {
        writer(mnt.join("probe")).recv_timeout(Duration::from_secs(5)).is_ok()
    }

    #[test]
    fn refuses_the_state_dirs_filesystem_and_duplicates() {
        let Some(mut fs) = LoopFs::new() else { return };
        let state = fs.mnt.join("state");
        let why = refusal(plan(vec![fs.mnt.clone()], &state));
        assert!(
            why.starts_with(&format!("refusing to freeze {}: it holds the agent's state directory", fs.mnt.display()))
        );
        assert!(why.ends_with("(freezing it would deadlock the agent)"), "{why}");
        let other = TempDir::new().unwrap();
        let twice = refusal(plan(vec![fs.mnt.clone(), fs.mnt.join(".")], other.path()));
        assert!(twice.ends_with("is listed twice"), "{twice}");
        // A bind mount of the same filesystem elsewhere is a mount point, but the same filesystem.
        let bind = fs.dir.path().join("bind");
        std::fs::create_dir(&bind).unwrap();
        run("mount", &["--bind", fs.mnt.to_str().unwrap(), bind.to_str().unwrap()]).unwrap();
        fs.extra.push(bind.clone());
        let same = refusal(plan(vec![fs.mnt.clone(), bind], other.path()));
        assert!(same.ends_with("are the same filesystem"), "{same}");
        assert!(writable(&fs.mnt), "nothing may stay frozen");
    }

    #[test]
    fn a_freeze_blocks_writers_until_release() {
        let Some(fs) = LoopFs::new() else { return };
        let state = TempDir::new().unwrap();
        let t = Instant::now();
        let q = quiesce(plan(vec![fs.mnt.clone()], state.path()));
        let froze = t.elapsed();
        assert!(q.is_quiesced());
        let done = writer(fs.mnt.join("data"));
        assert!(std::fs::read_dir(&fs.mnt).is_ok(), "reads work while frozen");
        std::thread::sleep(Duration::from_millis(300));
        assert!(done.try_recv().is_err(), "the writer must block while frozen");
        let released = Instant::now();
        let out = q.release();
        let thawed = released.elapsed();
        let wrote = done.recv_timeout(Duration::from_secs(10)).expect("writer unblocked");
        assert!(wrote >= released, "the write finished before the release");
        assert!(out.achieved && out.failure.is_none(), "{out:?}");
        assert!((300..2000).contains(&out.frozen_ms), "{}", out.frozen_ms);
        assert_eq!(out.freeze, vec![fs.mnt.display().to_string()]);
        eprintln!(
            "freeze {} ms, release {} ms, frozen {} ms, writer done {} ms after release",
            froze.as_millis(),
            thawed.as_millis(),
            out.frozen_ms,
            wrote.duration_since(released).as_millis()
        );
    }

    #[test]
    fn the_budget_thaws_without_release() {
        let Some(fs) = LoopFs::new() else { return };
        let state = TempDir::new().unwrap();
        let mut p = plan(vec![fs.mnt.clone()], state.path());
        p.budget = Duration::from_millis(200);
        let q = quiesce(p);
        let quiesced = Instant::now();
        let done = writer(fs.mnt.join("data"));
        std::thread::sleep(Duration::from_secs(1));
        let wrote = done.try_recv().expect("the watchdog thawed: the writer went on");
        let after = wrote.duration_since(quiesced);
        assert!(after >= Duration::from_millis(150) && after < Duration::from_millis(800), "{after:?}");
        assert!(!q.is_quiesced());
        let out = q.release();
        assert!(!out.achieved);
        assert_eq!(
            out.failure.as_deref(),
            Some("thaw budget of 200ms exceeded: thawed before the cut's reads finished")
        );
        assert!((200..800).contains(&out.frozen_ms), "{}", out.frozen_ms);
        assert_eq!(out.budget_ms, 200);
        eprintln!("writer went on {} ms after the freeze; frozen {} ms", after.as_millis(), out.frozen_ms);
    }

    #[test]
    fn dropping_without_release_thaws() {
        let Some(fs) = LoopFs::new() else { return };
        let state = TempDir::new().unwrap();
        let q = quiesce(plan(vec![fs.mnt.clone()], state.path()));
        assert!(q.is_quiesced());
        drop(q);
        assert!(writable(&fs.mnt));
    }

    #[test]
    fn a_failed_freeze_thaws_the_others_and_runs_the_post_hook() {
        let (Some(a), Some(b)) = (LoopFs::new(), LoopFs::new()) else { return };
        // Frozen by someone else: FIFREEZE says EBUSY, and it is left frozen.
        run("fsfreeze", &["-f", b.mnt.to_str().unwrap()]).unwrap();
        let dir = TempDir::new().unwrap();
        let (mut p, log) = hook_plan(&dir, "", "");
        p.freeze = vec![a.mnt.clone(), b.mnt.clone()];
        let q = quiesce(p);
        assert!(!q.is_quiesced());
        assert!(read(&log).ends_with("post.sh post web-01 web-01\n"));
        let why = q.release().failure.unwrap();
        assert!(why.contains(&format!("cannot freeze {}: it is already frozen", b.mnt.display())), "{why}");
        assert!(writable(&a.mnt));
        run("fsfreeze", &["-u", b.mnt.to_str().unwrap()]).expect("still frozen by its owner");
    }
}
