//! What an attempt holds while the applications are quiesced, and the watchdog that lets go
//! at the end of the thaw budget.

use super::freeze::{Frozen, thaw_fs};
use super::hooks::Hooks;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// State shared by the holder and its watchdog.
pub(super) struct Shared {
    pub(super) hold: Mutex<Hold>,
    pub(super) wake: Condvar,
}

/// What is held, and what happened while letting it go.
pub(super) struct Hold {
    frozen: Vec<Frozen>,
    post_hook: Option<PathBuf>,
    hooks: Hooks,
    pub(super) release_asked: bool,
    /// The watchdog let go at the deadline.
    pub(super) expired: bool,
    /// When the applications were let go (thawed; before the post hook).
    pub(super) let_go_at: Option<Instant>,
    /// Thaw and post hook failures.
    pub(super) problems: Vec<String>,
}

impl Hold {
    pub(super) fn new(frozen: Vec<Frozen>, post_hook: Option<PathBuf>, hooks: Hooks) -> Self {
        Self { frozen, post_hook, hooks, release_asked: false, expired: false, let_go_at: None, problems: vec![] }
    }

    /// Thaws in reverse order and runs the post hook; does nothing the second time. `why`
    /// ends the thaw log line.
    pub(super) fn let_go(&mut self, why: &str) {
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
pub(super) fn watchdog(shared: &Shared, since: Instant, budget: Duration, pair: &str) {
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

pub(super) fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The lock, also after a panic elsewhere: letting go must always be possible.
pub(super) fn lock(m: &Mutex<Hold>) -> MutexGuard<'_, Hold> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
