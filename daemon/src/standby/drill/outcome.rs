//! How a drill ends up: its parts (the check command, the guest's boot) each pass or fail;
//! the drill passes when every part it was asked for passed (served with no part: at once),
//! noted once as the pair's last drill success; a failed part raises a `drill_failed`
//! notification. Also what the drill's task shows meanwhile.

use super::live::Live;
use super::records::record;
use crate::standby::Standby;
use crate::standby::pair::PairHandle;
use crate::standby::tasks::Seen;
use crate::timefmt::now_ms;
use drpair_types::{BootState, DrillState, DrillStatus};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// What the drill's parts say now: `Some(true)` every part asked for passed, `Some(false)` one
/// failed, `None` one still runs.
pub fn verdict(s: &DrillStatus) -> Option<bool> {
    let check = s.check.as_ref().map(|c| c.passed);
    let boot = s.boot.as_ref().map(|b| match b.state {
        BootState::Booting => None,
        BootState::Passed => Some(true),
        BootState::Failed => Some(false),
    });
    let parts: Vec<Option<bool>> = [check, boot].into_iter().flatten().collect();
    if parts.contains(&Some(false)) {
        Some(false)
    } else if parts.contains(&None) {
        None
    } else {
        Some(true)
    }
}

/// Notes a drill that passed as the pair's last drill success, now.
pub(super) fn passed(sb: &Standby, h: &PairHandle, s: &DrillStatus, how: &str) {
    let detail = format!("drill {}: point {} {how}", s.id, s.point);
    let saved = h.update(&sb.store, |rec| {
        rec.last_successes.note_drill(now_ms(), s.point, detail);
        Ok::<_, crate::standby::pair::OpError>(())
    });
    if let Err(e) = saved {
        tracing::error!(pair = %s.pair_id, drill = %s.id, "recording the drill's success: {e:?}");
    }
}

/// After a part ended: the record written and, when every part has passed, the success noted
/// (once, whichever part ends last).
pub(super) fn settle(sb: &Standby, live: &Live, how: &str) {
    let s = live.snapshot();
    record(sb, &live.pair, &s);
    if verdict(&s) == Some(true) && !live.noted.swap(true, Ordering::AcqRel) {
        passed(sb, &live.pair, &s, how);
    }
}

/// A part failed: the operators are told.
pub(super) fn failed(sb: &Standby, s: &DrillStatus, what: String, detail: String) {
    let pair = s.pair_id.as_str();
    sb.notify.raise(
        "drill_failed",
        format!("drill_failed:{pair}:{}", s.id),
        drpair_types::notify::Severity::Error,
        Some(pair),
        format!("Drill {} of {pair} failed: {what}", s.id),
        detail,
    );
}

/// The guest's boot passed or failed (an operator's stop records the drill itself).
pub(super) fn boot_done(sb: &Arc<Standby>, live: &Arc<Live>) {
    if live.stopping.load(Ordering::Acquire) {
        return;
    }
    let s = live.snapshot();
    let Some(b) = s.boot.as_ref() else { return };
    match b.state {
        BootState::Passed => {
            settle(sb, live, &format!("booted: the console matched '{}' in {} ms", b.expect, b.boot_ms.unwrap_or(0)))
        }
        BootState::Failed => {
            record(sb, &live.pair, &s);
            failed(
                sb,
                &s,
                format!("its guest did not boot from point {}", s.point),
                format!("Reason: {}\nLast console lines:\n{}", b.reason.as_deref().unwrap_or("?"), b.console_tail),
            );
        }
        BootState::Booting => {}
    }
}

/// What the drill's task shows while its parts run, and at their end.
pub(super) fn seen(st: &DrillStatus) -> Seen {
    let boot = st.boot.as_ref();
    match verdict(st) {
        Some(true) => match (boot, &st.check) {
            (Some(b), _) => Seen::Done(format!(
                "the guest booted from point {}: the console matched in {} ms",
                st.point,
                b.boot_ms.unwrap_or(0)
            )),
            (None, _) => Seen::Done(format!("the check passed against point {}", st.point)),
        },
        Some(false) => match boot {
            Some(b) if b.state == BootState::Failed => Seen::Failed(format!(
                "the guest did not boot from point {}: {}",
                st.point,
                b.reason.as_deref().unwrap_or("?")
            )),
            _ => Seen::Failed(format!(
                "the check failed against point {} (exit {:?})",
                st.point,
                st.check.as_ref().and_then(|c| c.exit_code)
            )),
        },
        None if st.state == DrillState::Running => Seen::Running {
            percent: 50.0,
            message: match (boot, &st.check) {
                (Some(b), _) if b.state == BootState::Booting => {
                    format!("booting point {} ({} bytes on its console so far)", st.point, b.console_bytes)
                }
                (_, Some(c)) => format!("running the check: {}", c.command),
                _ => "running".into(),
            },
        },
        None => Seen::Failed(format!("the drill ended ({:?}) before its check or boot finished", st.state)),
    }
}
