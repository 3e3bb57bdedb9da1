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

mod error;
mod freeze;
mod hold;
mod hooks;
#[cfg(test)]
mod tests;
mod validate;

use crate::config::QuiesceConfig;
use drpair_types::QuiesceOutcome;
use drpair_wire::QuiesceRequest;
use freeze::freeze_fs;
use hold::{Hold, Shared, lock, ms, watchdog};
use hooks::Hooks;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use validate::validate;

/// Longest a hook script may run before it is killed.
pub const HOOK_TIMEOUT: Duration = Duration::from_secs(60);
/// Range a thaw budget is clamped to (the API and the config refuse values outside it).
const BUDGET_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(60));

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
        q.failure = Some(why.to_string());
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
