//! Loss detection: every way the kernel (or our reading) can lose events is checked at each
//! cut, and any loss since the previous cut becomes a gap.
//!
//! Three sources, all per CPU:
//! - the counters in `per_cpu/cpuN/stats`: `overrun` (overwrite mode: the writer overwrote
//!   unread pages), `commit overrun` and `dropped events` (non-overwrite mode). Any increase
//!   since the last cut is a loss; a decrease means the buffer was reset or re-created, which
//!   is a loss of unknown size;
//! - the in-band flag on a page (commit bit 31, with the number when stored): the kernel sets
//!   it from the same `overrun` counter, so a flag normally repeats an increase already
//!   counted. To avoid reporting one overrun twice (once from the counter at cut N, once from
//!   the flagged page read at cut N + 1), counter increases are kept as credit that later
//!   flags use up; a flag beyond the credit is reported (it should not happen, and then
//!   honesty beats a saved scan);
//! - our own reading: a malformed page, a record too short to decode, a failed read; and
//!   the instance's settings found changed at a cut. Always reported.

use super::instance::CpuCounters;
use super::page::Missed;
use super::state::SavedCpu;
use std::io;

/// Notes kept between cuts, beyond which only a count is kept.
const MAX_NOTES: usize = 16;

/// Loss accounting of all CPUs.
#[derive(Debug, Clone)]
pub struct Loss {
    cpus: Vec<SavedCpu>,
    notes: Vec<String>,
    more_notes: usize,
}

/// A loss found at a cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The gap reason for [`Collected::gap`](crate::Collected::gap).
    pub reason: String,
    /// Events known lost (a loss of unknown size adds nothing here).
    pub events: u64,
}

impl Loss {
    /// Starts from the accounting of `cpus` (counters as last reported) and the notes not yet
    /// reported (both from a clean stop, or fresh).
    pub fn new(cpus: Vec<SavedCpu>, notes: Vec<String>) -> Self {
        let mut loss = Self { cpus, notes: Vec::new(), more_notes: 0 };
        for n in notes {
            loss.note(n);
        }
        loss
    }

    /// The accounting to save at a clean stop.
    pub fn saved(&self) -> (Vec<SavedCpu>, Vec<String>) {
        let mut notes = self.notes.clone();
        if self.more_notes > 0 {
            notes.push(format!("{} more losses", self.more_notes));
        }
        (self.cpus.clone(), notes)
    }

    fn cpu(&mut self, cpu: u32) -> &mut SavedCpu {
        match self.cpus.iter().position(|c| c.cpu == cpu) {
            Some(i) => &mut self.cpus[i],
            None => {
                self.cpus.push(SavedCpu { cpu, ..SavedCpu::default() });
                self.cpus.last_mut().expect("just pushed")
            }
        }
    }

    /// A page of `cpu` flagged lost events.
    pub fn in_band(&mut self, cpu: u32, missed: Missed) {
        let n = match missed {
            Missed::None => return,
            Missed::Unknown => 1,
            Missed::Count(n) => n.max(1),
        };
        let c = self.cpu(cpu);
        c.unreported_in_band = c.unreported_in_band.saturating_add(n);
    }

    /// A loss found while reading (always reported at the next cut).
    pub fn note(&mut self, text: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(text);
        } else {
            self.more_notes += 1;
        }
    }

    /// At a cut: compares the counters read now with those last reported and reports every
    /// loss since the last cut (then forgets it).
    pub fn evaluate(&mut self, now: Vec<(u32, io::Result<CpuCounters>)>) -> Option<Found> {
        let mut parts = std::mem::take(&mut self.notes);
        if self.more_notes > 0 {
            parts.push(format!("{} more losses", std::mem::take(&mut self.more_notes)));
        }
        let mut events = 0u64;
        for (cpu, counters) in now {
            let c = self.cpu(cpu);
            let in_band = std::mem::take(&mut c.unreported_in_band);
            let counters = match counters {
                Ok(n) => n,
                Err(e) => {
                    parts.push(format!("cpu {cpu}: cannot read the loss counters ({e})"));
                    if in_band > 0 {
                        parts.push(format!("cpu {cpu}: pages flagged {in_band} lost events"));
                        events = events.saturating_add(in_band);
                    }
                    continue;
                }
            };
            let last = c.counters;
            c.counters = counters;
            if counters.overrun < last.overrun
                || counters.commit_overrun < last.commit_overrun
                || counters.dropped < last.dropped
            {
                parts.push(format!(
                    "cpu {cpu}: the loss counters went backwards (the ring buffer was reset or re-created)"
                ));
                c.credit = 0;
                continue;
            }
            let overrun = counters.overrun - last.overrun;
            let commit = counters.commit_overrun - last.commit_overrun;
            let dropped = counters.dropped - last.dropped;
            c.credit = c.credit.saturating_add(overrun);
            let explained = in_band.min(c.credit);
            c.credit -= explained;
            let unexplained = in_band - explained;
            for (n, what) in [
                (overrun, "ring buffer overrun"),
                (commit, "commit overrun"),
                (dropped, "dropped events"),
                (unexplained, "flagged in pages beyond the counters"),
            ] {
                if n > 0 {
                    parts.push(format!("cpu {cpu}: {what}: {n} events"));
                    events = events.saturating_add(n);
                }
            }
        }
        (!parts.is_empty()).then(|| Found {
            reason: format!(
                "tracefs lost events since the last cut ({}); the changes they recorded are unknown",
                parts.join("; ")
            ),
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(overrun: u64, commit_overrun: u64, dropped: u64) -> CpuCounters {
        CpuCounters { overrun, commit_overrun, dropped }
    }

    fn fresh() -> Loss {
        Loss::new(vec![SavedCpu { cpu: 0, ..Default::default() }, SavedCpu { cpu: 1, ..Default::default() }], vec![])
    }

    #[test]
    fn no_loss_no_gap() {
        let mut l = fresh();
        assert_eq!(l.evaluate(vec![(0, Ok(counters(0, 0, 0))), (1, Ok(counters(0, 0, 0)))]), None);
    }

    #[test]
    fn counter_increases_are_gaps() {
        let mut l = fresh();
        let f = l.evaluate(vec![(0, Ok(counters(10, 0, 0))), (1, Ok(counters(0, 2, 3)))]).unwrap();
        assert_eq!(f.events, 15);
        assert!(
            f.reason.starts_with("tracefs lost events since the last cut (cpu 0: ring buffer overrun: 10 events; ")
        );
        assert!(f.reason.contains("cpu 1: commit overrun: 2 events; cpu 1: dropped events: 3 events"), "{}", f.reason);
        // Reported once: the same values again are no loss.
        assert_eq!(l.evaluate(vec![(0, Ok(counters(10, 0, 0))), (1, Ok(counters(0, 2, 3)))]), None);
    }

    #[test]
    fn a_flag_already_counted_is_not_reported_twice() {
        let mut l = fresh();
        assert!(l.evaluate(vec![(0, Ok(counters(10, 0, 0)))]).is_some());
        l.in_band(0, Missed::Count(10));
        assert_eq!(l.evaluate(vec![(0, Ok(counters(10, 0, 0)))]), None);
        // A flag without a stored count also uses credit.
        assert!(l.evaluate(vec![(0, Ok(counters(15, 0, 0)))]).is_some());
        l.in_band(0, Missed::Unknown);
        assert_eq!(l.evaluate(vec![(0, Ok(counters(15, 0, 0)))]), None);
        // Flag and counter seen at the same cut: one report.
        l.in_band(1, Missed::Count(4));
        let f = l.evaluate(vec![(1, Ok(counters(4, 0, 0)))]).unwrap();
        assert_eq!(f.events, 4);
    }

    #[test]
    fn a_flag_beyond_the_counters_is_reported() {
        let mut l = fresh();
        l.in_band(0, Missed::Unknown);
        let f = l.evaluate(vec![(0, Ok(counters(0, 0, 0)))]).unwrap();
        assert!(f.reason.contains("flagged in pages beyond the counters: 1 events"), "{}", f.reason);
    }

    #[test]
    fn counters_going_backwards_or_unreadable_are_gaps() {
        let mut l = Loss::new(vec![SavedCpu { cpu: 0, counters: counters(5, 0, 0), ..Default::default() }], vec![]);
        let f = l.evaluate(vec![(0, Ok(counters(0, 0, 0)))]).unwrap();
        assert!(f.reason.contains("went backwards"));
        assert_eq!(l.evaluate(vec![(0, Ok(counters(0, 0, 0)))]), None);
        let f = l.evaluate(vec![(0, Err(io::Error::other("gone")))]).unwrap();
        assert!(f.reason.contains("cpu 0: cannot read the loss counters (gone)"));
    }

    #[test]
    fn notes_are_reported_once_and_capped() {
        let mut l = Loss::new(vec![], vec!["cpu 0: malformed page (x)".into()]);
        for i in 0..20 {
            l.note(format!("n{i}"));
        }
        let (_, saved) = l.saved();
        assert_eq!(saved.len(), MAX_NOTES + 1);
        let f = l.evaluate(vec![]).unwrap();
        assert!(f.reason.contains("cpu 0: malformed page (x); n0;"));
        assert!(f.reason.contains("5 more losses"), "{}", f.reason);
        assert_eq!(l.evaluate(vec![]), None);
    }
}
