//! Which conditions have been told, and what to tell now. Each evaluation hands the
//! conditions that hold at that moment to [`Told::step`]; it answers with the notifications
//! that follow: a condition that has held for `hold` (at once when it is `immediate`) fires
//! once, fires again only when its severity rises above what was told, and resolves once when
//! it no longer holds. That is the whole of deduplication: a condition that stays true tells
//! nothing more (nor one that gets better without ending), and the map is persisted with the
//! notifications it produced, so a restart does not tell it again (and a condition that ended
//! while the standby was down is resolved after it).

use drpair_types::notify::{NotificationStatus, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Something that holds now and needs an operator.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub key: String,
    pub kind: &'static str,
    pub severity: Severity,
    pub pair: Option<String>,
    pub summary: String,
    pub message: String,
    /// Told at once, without waiting out `hold`.
    pub immediate: bool,
}

/// A condition as remembered between evaluations (and restarts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub kind: String,
    pub severity: Severity,
    pub pair: Option<String>,
    pub summary: String,
    pub since_ms: u64,
    /// The highest severity told so far; None while the condition waits out `hold`.
    pub told: Option<Severity>,
}

/// A notification to make: the caller numbers, dates and routes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub status: NotificationStatus,
    pub key: String,
    pub kind: String,
    pub severity: Severity,
    /// The severity it is routed by: a resolution goes where its condition was told.
    pub route: Severity,
    pub pair: Option<String>,
    pub summary: String,
    pub message: String,
    pub since_ms: u64,
}

/// Every condition being held or told, by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Told {
    pub conditions: BTreeMap<String, Entry>,
}

impl Told {
    /// The notifications that `now`'s conditions call for; `changed` says whether what must
    /// survive a restart (the told conditions) changed.
    pub fn step(&mut self, now: u64, hold_ms: u64, current: Vec<Condition>) -> (Vec<Draft>, bool) {
        let mut out = Vec::new();
        let mut changed = false;
        let mut seen = std::collections::BTreeSet::new();
        for c in current {
            seen.insert(c.key.clone());
            let e = self.conditions.entry(c.key.clone()).or_insert_with(|| {
                changed = true;
                Entry {
                    kind: c.kind.to_string(),
                    severity: c.severity,
                    pair: c.pair.clone(),
                    summary: c.summary.clone(),
                    since_ms: now,
                    told: None,
                }
            });
            let due = c.immediate || now.saturating_sub(e.since_ms) >= hold_ms;
            // Told again only when it gets worse: a way back (error to warning) is no news
            // worth a message; its end is ("resolved").
            let tell = match e.told {
                None => due,
                Some(t) => c.severity > t,
            };
            if e.severity != c.severity || e.summary != c.summary {
                changed |= e.severity != c.severity;
                e.severity = c.severity;
                e.summary = c.summary.clone();
            }
            if tell {
                e.told = Some(e.told.map_or(c.severity, |t| t.max(c.severity)));
                changed = true;
                out.push(Draft {
                    status: NotificationStatus::Firing,
                    key: c.key,
                    kind: c.kind.to_string(),
                    severity: c.severity,
                    route: c.severity,
                    pair: c.pair,
                    summary: c.summary,
                    message: c.message,
                    since_ms: e.since_ms,
                });
            }
        }
        let gone: Vec<String> = self.conditions.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        for key in gone {
            let e = self.conditions.remove(&key).expect("listed");
            changed = true;
            if let Some(route) = e.told {
                let lasted =
                    humantime::format_duration(std::time::Duration::from_secs(now.saturating_sub(e.since_ms) / 1000));
                out.push(Draft {
                    status: NotificationStatus::Resolved,
                    summary: format!("Resolved: {}", e.summary),
                    message: format!("No longer the case, after {lasted}: {}", e.summary),
                    key,
                    kind: e.kind,
                    severity: Severity::Info,
                    route,
                    pair: e.pair,
                    since_ms: e.since_ms,
                });
            }
        }
        (out, changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(key: &str, severity: Severity, immediate: bool) -> Condition {
        Condition {
            key: key.into(),
            kind: "test",
            severity,
            pair: Some("p".into()),
            summary: format!("{key} {}", severity.as_str()),
            message: String::new(),
            immediate,
        }
    }

    fn statuses(d: &[Draft]) -> Vec<(NotificationStatus, &str, Severity)> {
        d.iter().map(|d| (d.status, d.key.as_str(), d.severity)).collect()
    }

    #[test]
    fn a_condition_waits_out_hold_then_fires_once_and_resolves_once() {
        use NotificationStatus::*;
        let mut t = Told::default();
        let (d, changed) = t.step(1_000, 30_000, vec![cond("a", Severity::Error, false)]);
        assert!(d.is_empty() && changed, "held, but remembered");
        let (d, _) = t.step(20_000, 30_000, vec![cond("a", Severity::Error, false)]);
        assert!(d.is_empty(), "still within hold");
        let (d, _) = t.step(31_000, 30_000, vec![cond("a", Severity::Error, false)]);
        assert_eq!(statuses(&d), [(Firing, "a", Severity::Error)]);
        let (d, changed) = t.step(32_000, 30_000, vec![cond("a", Severity::Error, false)]);
        assert!(d.is_empty() && !changed, "told once: nothing more while it holds");
        let (d, _) = t.step(40_000, 30_000, vec![]);
        assert_eq!(statuses(&d), [(Resolved, "a", Severity::Info)]);
        assert_eq!(d[0].route, Severity::Error, "a resolution goes where the condition went");
        assert!(d[0].message.contains("after 39s"), "{}", d[0].message);
        let (d, _) = t.step(41_000, 30_000, vec![]);
        assert!(d.is_empty(), "resolved once");
    }

    #[test]
    fn a_blip_shorter_than_hold_tells_nothing() {
        let mut t = Told::default();
        t.step(0, 30_000, vec![cond("a", Severity::Error, false)]);
        let (d, _) = t.step(10_000, 30_000, vec![]);
        assert!(d.is_empty());
        assert!(t.conditions.is_empty());
    }

    #[test]
    fn immediate_conditions_fire_at_once_and_fire_again_on_a_new_severity() {
        use NotificationStatus::*;
        let mut t = Told::default();
        let (d, _) = t.step(0, 30_000, vec![cond("rpo", Severity::Warning, true)]);
        assert_eq!(statuses(&d), [(Firing, "rpo", Severity::Warning)]);
        let (d, _) = t.step(1_000, 30_000, vec![cond("rpo", Severity::Error, true)]);
        assert_eq!(statuses(&d), [(Firing, "rpo", Severity::Error)]);
        assert_eq!(d[0].since_ms, 0, "the condition's start, not the escalation's");
        let (d, _) = t.step(1_500, 30_000, vec![cond("rpo", Severity::Warning, true)]);
        assert!(d.is_empty(), "better without ending: nothing to tell");
        let (d, _) = t.step(1_600, 30_000, vec![cond("rpo", Severity::Error, true)]);
        assert!(d.is_empty(), "back to the severity already told: nothing new");
        let (d, _) = t.step(2_000, 30_000, vec![]);
        assert_eq!(d[0].route, Severity::Error, "routed by the highest severity told");
    }

    #[test]
    fn the_map_survives_a_round_trip_so_a_restart_tells_nothing_twice() {
        let mut t = Told::default();
        t.step(0, 0, vec![cond("a", Severity::Warning, false)]);
        let mut back: Told = serde_json::from_slice(&serde_json::to_vec(&t).unwrap()).unwrap();
        let (d, _) = back.step(5_000, 0, vec![cond("a", Severity::Warning, false)]);
        assert!(d.is_empty(), "already told before the restart");
        let (d, _) = back.step(6_000, 0, vec![]);
        assert_eq!(d.len(), 1, "and resolved after it");
    }
}
