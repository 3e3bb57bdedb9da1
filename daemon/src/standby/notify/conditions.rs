//! What needs an operator now, read from what status shows (each pair's [`PairStatus`]) and
//! from the standby's own resources. Pure functions of those facts, so each rule is tested on
//! its own; [`super::Notifier`] compares their result with what it has told.

use super::tracker::Condition;
use crate::standby::resources::{Shortage, human};
use drpair_types::notify::Severity;
use drpair_types::{PairState, PairStatus, RpoLevel};

/// The standby-wide facts a rule reads beside the pairs.
#[derive(Debug, Clone, Default)]
pub struct StandbyFacts {
    pub now_ms: u64,
    /// When this standby process started: an agent not seen since then counts from it.
    pub started_ms: u64,
    pub agent_unseen_ms: u64,
    pub low_disk: Option<Shortage>,
    pub low_memory: Option<Shortage>,
    /// (what, name, not-after in unix ms) of every certificate and token that expires.
    pub expiring: Vec<(String, String, u64)>,
    pub expiry_warning_ms: u64,
}

fn cond(
    key: String,
    kind: &'static str,
    severity: Severity,
    pair: Option<&str>,
    summary: String,
    message: String,
) -> Condition {
    Condition { key, kind, severity, pair: pair.map(str::to_string), summary, message, immediate: false }
}

fn secs(ms: u64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// The conditions one pair is in.
pub fn of_pair(s: &PairStatus, f: &StandbyFacts) -> Vec<Condition> {
    let pair = s.pair_id.as_str();
    let mut out = Vec::new();
    if let Some(r) = &s.rpo_state {
        let severity = match r.state {
            RpoLevel::Ok => None,
            RpoLevel::Warning => Some(Severity::Warning),
            RpoLevel::Error => Some(Severity::Error),
        };
        if let Some(severity) = severity {
            let limit = if r.state == RpoLevel::Error { r.error_seconds } else { r.target_seconds };
            let mut c = cond(
                format!("rpo:{pair}"),
                "rpo",
                severity,
                Some(pair),
                format!(
                    "RPO {} on {pair}: the newest recovery point is {} old (target {}, error at {})",
                    r.state.as_str(),
                    secs((r.rpo_seconds * 1000.0) as u64),
                    secs(r.target_seconds * 1000),
                    secs(r.error_seconds * 1000)
                ),
                format!(
                    "A failover now would lose up to {:.0}s of writes, at or over the {}s limit. State: {}. {}",
                    r.rpo_seconds, limit, s.state_label, s.health.reason
                ),
            );
            c.immediate = true;
            out.push(c);
        }
    }
    let away = s.agent.as_ref().is_none_or(|a| !a.connected);
    if away && !matches!(s.state, PairState::FailedOver | PairState::FailingBack) {
        let last =
            s.agent.as_ref().and_then(|a| drpair_types::parse_time_ms(&a.since).ok()).unwrap_or(0).max(f.started_ms);
        let unseen = f.now_ms.saturating_sub(last);
        if unseen >= f.agent_unseen_ms {
            out.push(cond(
                format!("agent_unseen:{pair}"),
                "agent_unseen",
                Severity::Error,
                Some(pair),
                format!("The agent of {pair} has not been connected for {}", secs(unseen)),
                format!(
                    "Nothing is replicated while the agent is away; the agent keeps tracking changes and resumes where it stopped. Last failure: {}",
                    s.failure_messages.last().map_or("none recorded", String::as_str)
                ),
            ));
        }
    }
    if s.stop_reason.as_deref() == Some(drpair_types::FATAL_ERROR) {
        out.push(cond(
            format!("pair_error:{pair}"),
            "pair_error",
            Severity::Error,
            Some(pair),
            format!("{pair} is stopped by an error an operator must remove"),
            s.failure_messages.last().cloned().unwrap_or_else(|| s.state_explanation.clone()),
        ));
    }
    if s.state == PairState::ConfigurationChanged {
        out.push(cond(
            format!("not_replicating:{pair}"),
            "not_replicating",
            Severity::Warning,
            Some(pair),
            format!("{pair} does not replicate: its agent offers other disks than those registered"),
            s.state_explanation.clone(),
        ));
    }
    if s.state == PairState::Rescanning {
        let lost = s.agent.as_ref().and_then(|a| a.tracking).map_or(0, |t| t.losses);
        let mut c = cond(
            format!("tracking_gap:{pair}"),
            "tracking_gap",
            Severity::Warning,
            Some(pair),
            format!("Tracking gap on {pair}: a differential resync compares every chunk with the standby"),
            format!(
                "The agent could not vouch that it saw every write (kernel-reported losses since it started: {lost}); the resync ships what differs, and the pair replicates again when it ends."
            ),
        );
        c.immediate = true;
        out.push(c);
    }
    let damaged = s.verify.as_ref().map_or(0, |v| v.points_damaged);
    if damaged > 0 {
        let mut c = cond(
            format!("verify_damage:{pair}"),
            "verify_damage",
            Severity::Error,
            Some(pair),
            format!("Verification found {damaged} damaged recovery point(s) of {pair}"),
            s.verify.as_ref().map(|v| v.message.clone()).unwrap_or_default(),
        );
        c.immediate = true;
        out.push(c);
    }
    if s.stats.spool_full {
        out.push(cond(
            format!("spool_full:{pair}"),
            "spool_full",
            Severity::Warning,
            Some(pair),
            format!("The agent's spool of {pair} is full: its points' read windows grow"),
            "The epoch being shipped did not fit the agent's spool, so the agent reads it from the disk as it ships; a point's read window then depends on the link. Give the spool more room (spool_file_mib) or the link more bandwidth.".into(),
        ));
    }
    out
}

/// The standby's own conditions: resources and expiring credentials.
pub fn of_standby(f: &StandbyFacts) -> Vec<Condition> {
    let mut out = Vec::new();
    for (short, kind, what) in [
        (&f.low_disk, "low_disk", "the standby's data filesystem"),
        (&f.low_memory, "low_memory", "the standby's available memory"),
    ] {
        if let Some(s) = short {
            out.push(cond(
                kind.to_string(),
                kind,
                Severity::Error,
                None,
                format!("Low space: {what} has {} free, at or below its limit of {}", human(s.free), human(s.limit)),
                "Pairs stop ingesting until it is back above the limit plus half (they resume by themselves); prune points or add space.".into(),
            ));
        }
    }
    for (what, name, not_after) in &f.expiring {
        let left = not_after.saturating_sub(f.now_ms);
        if left > f.expiry_warning_ms {
            continue;
        }
        let kind = if what.contains("token") { "token_expiry" } else { "certificate_expiry" };
        let severity = if left < 3 * 86_400_000 { Severity::Error } else { Severity::Warning };
        let when = if left == 0 { "has expired".to_string() } else { format!("expires in {}", secs(left)) };
        out.push(cond(
            format!("{kind}:{what}:{name}"),
            kind,
            severity,
            None,
            format!("The {what} {name} {when}"),
            format!("Not valid after {}. Renew or replace it before then.", crate::timefmt::rfc3339_ms(*not_after)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A replicating pair's status with its agent connected, then put in `state`.
    fn status(state: PairState) -> PairStatus {
        use crate::standby::pair::{PairHandle, SessionHandle, test_record};
        let h = PairHandle::new(test_record(PairState::Replicating, 5), None, 1);
        {
            let mut rt = h.runtime.lock().unwrap();
            rt.session = Some(SessionHandle::new(1, tokio::sync::mpsc::channel(1).0));
            rt.ever_connected = true;
        }
        let mut s = h.status();
        s.state = state;
        s.agent.as_mut().expect("connected").connected = true;
        s
    }

    fn kinds(c: &[Condition]) -> Vec<(&str, Severity, bool)> {
        c.iter().map(|c| (c.kind, c.severity, c.immediate)).collect()
    }

    fn facts() -> StandbyFacts {
        StandbyFacts { now_ms: 10_000_000, started_ms: 0, agent_unseen_ms: 900_000, ..Default::default() }
    }

    #[test]
    fn a_healthy_pair_needs_no_one() {
        let s = status(PairState::Replicating);
        assert!(of_pair(&s, &facts()).is_empty());
    }

    #[test]
    fn rpo_levels_are_immediate_and_ok_is_nothing() {
        let mut s = status(PairState::Replicating);
        let mut r = drpair_types::RpoState {
            state: RpoLevel::Warning,
            since: String::new(),
            since_unix_ms: 0,
            rpo_seconds: 45.0,
            target_seconds: 30,
            error_seconds: 60,
            target_source: Default::default(),
        };
        s.rpo_state = Some(r.clone());
        let c = of_pair(&s, &facts());
        assert_eq!(kinds(&c), [("rpo", Severity::Warning, true)]);
        assert!(c[0].summary.contains("45s old (target 30s, error at 1m)"), "{}", c[0].summary);
        r.state = RpoLevel::Error;
        s.rpo_state = Some(r.clone());
        assert_eq!(kinds(&of_pair(&s, &facts())), [("rpo", Severity::Error, true)]);
        r.state = RpoLevel::Ok;
        s.rpo_state = Some(r);
        assert!(of_pair(&s, &facts()).is_empty());
    }

    #[test]
    fn an_agent_away_counts_from_its_last_sight_or_the_standbys_start() {
        let mut s = status(PairState::Disconnected);
        let mut f = facts();
        let a = s.agent.as_mut().unwrap();
        a.connected = false;
        a.since = crate::timefmt::rfc3339_ms(f.now_ms - 60_000);
        assert!(of_pair(&s, &f).is_empty(), "away for a minute");
        s.agent.as_mut().unwrap().since = crate::timefmt::rfc3339_ms(f.now_ms - 1_000_000);
        assert_eq!(kinds(&of_pair(&s, &f)), [("agent_unseen", Severity::Error, false)]);
        f.started_ms = f.now_ms - 100_000;
        assert!(of_pair(&s, &f).is_empty(), "unknown before the standby started: counted from then");
        s.state = PairState::FailedOver;
        f.started_ms = 0;
        assert!(of_pair(&s, &f).is_empty(), "failed over: the agent is expected away");
    }

    #[test]
    fn gaps_damage_spool_and_errors() {
        let mut s = status(PairState::Rescanning);
        assert_eq!(kinds(&of_pair(&s, &facts())), [("tracking_gap", Severity::Warning, true)]);
        s.state = PairState::Replicating;
        s.stats.spool_full = true;
        s.stop_reason = Some(drpair_types::FATAL_ERROR.into());
        assert_eq!(
            kinds(&of_pair(&s, &facts())),
            [("pair_error", Severity::Error, false), ("spool_full", Severity::Warning, false)]
        );
    }

    #[test]
    fn expiry_warns_then_errors() {
        let day = 86_400_000;
        let mut f = facts();
        f.now_ms = 100 * day;
        f.expiry_warning_ms = 14 * day;
        f.expiring = vec![
            ("server certificate".into(), "standby".into(), 130 * day),
            ("server certificate".into(), "soon".into(), 110 * day),
            ("API token".into(), "ci".into(), 101 * day),
            ("agent certificate".into(), "web-01".into(), 99 * day),
        ];
        let c = of_standby(&f);
        let got: Vec<(&str, &str, Severity)> = c.iter().map(|c| (c.kind, c.key.as_str(), c.severity)).collect();
        assert_eq!(
            got,
            [
                ("certificate_expiry", "certificate_expiry:server certificate:soon", Severity::Warning),
                ("token_expiry", "token_expiry:API token:ci", Severity::Error),
                ("certificate_expiry", "certificate_expiry:agent certificate:web-01", Severity::Error),
            ]
        );
        assert!(c[2].summary.ends_with("has expired"), "{}", c[2].summary);
        f.low_disk = Some(Shortage { free: 1 << 30, limit: 2 << 30 });
        assert_eq!(of_standby(&f)[0].kind, "low_disk");
    }
}
