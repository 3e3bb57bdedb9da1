//! `drpair pairs protect-recovered PAIR [--standby HOST:PORT]` and `drpair pairs
//! unprotect-recovered PAIR`: protection of a failed-over pair's recovered disks by an agent
//! the standby starts and supervises, under a new pair linked to the original.
//!
//! Invariants: one request, no question (nothing is overwritten: the agent only reads the
//! recovered disks); the refusals exit with the API's codes (4: not failed over, failover not
//! complete, already protected; 8: a bad parameter or a standby address that does not answer;
//! 3: no such pair), and nothing changed then.

use crate::client::{self, CliError, Client};
use crate::output::{self, Block, OutputFormat};
use clap::Args;
use drpair_types::{PairId, ProtectRecoveredRequest, ProtectionStatus, UnprotectRecoveredRequest};

/// How long the standby may take to enroll and start the agent (it waits up to 30 s for
/// the agent to register the new pair).
const PROTECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

#[derive(Debug, Args)]
pub struct ProtectArgs {
    /// The DR Pair ID of the failed-over pair
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// HOST:PORT of the standby link the new agent ships to (default: this standby's own link)
    #[arg(long, value_name = "HOST:PORT")]
    pub standby: Option<String>,
    /// With another --standby: its TLS fingerprint (sha256:…)
    #[arg(long, value_name = "FINGERPRINT", requires = "enroll_secret")]
    pub standby_fingerprint: Option<String>,
    /// With another --standby: an enrollment secret for the new pair made there ('drpair pairs
    /// enroll NEW_PAIR' on that standby)
    #[arg(long, value_name = "SECRET", requires = "standby_fingerprint")]
    pub enroll_secret: Option<String>,
    /// The new pair's id (default: PAIR-recovered)
    #[arg(long, value_name = "NEW_PAIR")]
    pub new_pair: Option<String>,
    /// The agent's tracker: tracefs (default for block devices) or scan (default for files)
    #[arg(long, value_name = "TRACKER")]
    pub tracker: Option<String>,
    /// How often the agent cuts a recovery point (default 1m)
    #[arg(long, value_name = "DURATION")]
    pub cut_interval: Option<String>,
}

impl ProtectArgs {
    pub fn request(&self, operator: Option<String>) -> ProtectRecoveredRequest {
        ProtectRecoveredRequest {
            standby: self.standby.clone(),
            standby_fingerprint: self.standby_fingerprint.clone(),
            enroll_secret: self.enroll_secret.clone(),
            new_pair: self.new_pair.clone(),
            tracker: self.tracker.clone(),
            cut_interval: self.cut_interval.clone(),
            operator,
        }
    }
}

pub fn protect(client: &Client, output: OutputFormat, args: &ProtectArgs) -> Result<(), CliError> {
    let path = format!("/api/v1/pairs/{}/protect-recovered", args.pair);
    let body = args.request(crate::failover::operator());
    let (_, raw, p): (_, _, ProtectionStatus) = client.post_json(&path, &body, PROTECT_TIMEOUT)?;
    output::answer(output, &raw, || render(&args.pair, &p));
    Ok(())
}

pub fn unprotect(client: &Client, output: OutputFormat, pair: &PairId) -> Result<(), CliError> {
    let path = format!("/api/v1/pairs/{pair}/unprotect-recovered");
    let body = UnprotectRecoveredRequest { operator: crate::failover::operator() };
    let (_, raw, p): (_, _, ProtectionStatus) = client.post_json(&path, &body, client::ANSWER_TIMEOUT)?;
    output::answer(output, &raw, || render(pair, &p));
    Ok(())
}

/// One line for `drpair status` (and the failover's report).
pub fn status_line(p: &ProtectionStatus) -> String {
    let pid = p.agent_pid.map(|pid| format!(", agent pid {pid}")).unwrap_or_default();
    let restarts = match p.agent_restarts {
        0 => String::new(),
        n => format!(", restarted {n} time(s)"),
    };
    format!("pair {} ({}{pid}{restarts}), a point every {}", p.pair, p.state.label(), p.cut_interval)
}

/// The text form of a protection.
pub fn render(pair: &PairId, p: &ProtectionStatus) -> String {
    let mut b = Block::default();
    b.line("Recovered disks of", format!("{pair} (failover point {})", p.failover_point));
    b.line("Protected by", status_line(p));
    let disks: Vec<String> = p.disks.iter().enumerate().map(|(i, d)| format!("disk {i}: {d}")).collect();
    b.line("Disks", disks.join("\n"));
    let this = if p.this_standby { " (this standby)" } else { "" };
    b.line("Standby", format!("{}{this}", p.standby));
    b.line("Tracker", p.tracker.clone());
    let stopped = p.stopped_at.as_ref().map(|t| format!(", stopped {t}")).unwrap_or_default();
    let by = p.operator.as_ref().map(|o| format!(" by {o}")).unwrap_or_default();
    b.line("Started", format!("{}{by}{stopped}", p.started_at));
    if !p.agent_log.is_empty() {
        b.line("Agent log", p.agent_log.clone());
    }
    b.line("Message", p.message.clone());
    if p.state.active() {
        b.line("Failback", format!("drpair failback {pair} --from-protected"));
    }
    b.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::ProtectionState;

    fn status() -> ProtectionStatus {
        ProtectionStatus {
            pair: PairId::new("web-01-recovered").unwrap(),
            standby: "127.0.0.1:7700".into(),
            this_standby: true,
            failover_point: 42,
            disks: vec!["/dev/loop3".into()],
            tracker: "tracefs".into(),
            cut_interval: "1m".into(),
            state: ProtectionState::Running,
            started_at: "2026-12-07T21:00:00.000Z".into(),
            stopped_at: None,
            agent_pid: Some(4242),
            agent_restarts: 0,
            agent_log: "/var/lib/drpair/protect/web-01-recovered/agent.log".into(),
            operator: Some("alice".into()),
            message: "running".into(),
        }
    }

    #[test]
    fn protect_posts_the_request_and_renders_the_answer() {
        let server = FakeServer::start(vec![Reply::json(200, &serde_json::to_string(&status()).unwrap())]);
        let client = Client::new(&server.url, None).unwrap();
        let args = ProtectArgs {
            pair: PairId::new("web-01").unwrap(),
            standby: Some("10.0.0.9:7700".into()),
            standby_fingerprint: None,
            enroll_secret: None,
            new_pair: None,
            tracker: None,
            cut_interval: Some("30s".into()),
        };
        protect(&client, OutputFormat::Text, &args).unwrap();
        let reqs = server.finish();
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path.as_str()),
            ("POST", "/api/v1/pairs/web-01/protect-recovered")
        );
        let sent: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!((sent["standby"].as_str(), sent["cut_interval"].as_str()), (Some("10.0.0.9:7700"), Some("30s")));
        let text = render(&args.pair, &status());
        assert!(text.contains("pair web-01-recovered (running, agent pid 4242), a point every 1m"), "{text}");
        assert!(text.contains("drpair failback web-01 --from-protected"), "{text}");
    }
}
