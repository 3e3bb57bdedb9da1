//! `drpair notify …`: the standby's notification targets, and a test message through them.

use crate::client::{CliError, Client};
use crate::output::{self, OutputFormat, Table};
use clap::{Args, Subcommand};
use drpair_types::notify::{NotifyStatus, NotifyTestReport, NotifyTestRequest};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    about = "Notification targets: list them, send a test",
    long_about = "The standby tells operators when something needs them: an RPO warning or \
        error and its return to ok, a pair stopped by an error, an agent not seen, a tracking \
        gap and its resync, damaged points, a failed drill, low disk or memory, a full spool, \
        a certificate or token about to expire. Every notification goes to the journal; \
        webhooks and e-mail targets are configured in [[standby.notify.targets]] of the \
        standby's config file. Notifications wait in the standby's store until delivered, \
        over restarts.",
    after_help = "Examples:\n  drpair notify list\n  drpair notify test\n  drpair notify test --target ops-hook"
)]
pub struct NotifyArgs {
    #[command(subcommand)]
    pub command: NotifyCommand,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// The targets, how their deliveries went, and the conditions being told
    #[command(visible_alias = "ls", visible_alias = "status")]
    List,
    /// Send one test notification now (to every target, or one) and show each answer;
    /// exits 1 when a target did not take it
    Test {
        /// Only this target (its `name` in the config)
        #[arg(long)]
        target: Option<String>,
    },
}

/// A test waits for each target's answer; a target's own timeout is at most 5 minutes.
const TEST_TIMEOUT: Duration = Duration::from_secs(330);

pub fn run(client: &Client, output: OutputFormat, args: &NotifyArgs) -> Result<(), CliError> {
    match &args.command {
        NotifyCommand::List => {
            let (raw, s): (_, NotifyStatus) = client.get_json("/api/v1/notify")?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text => output::emit(&list_text(&s)),
            }
            Ok(())
        }
        NotifyCommand::Test { target } => {
            let body = NotifyTestRequest { target: target.clone() };
            let (_, raw, r): (_, _, NotifyTestReport) = client.post_json("/api/v1/notify/test", &body, TEST_TIMEOUT)?;
            let failed: Vec<&str> = r.results.iter().filter(|t| !t.ok).map(|t| t.target.as_str()).collect();
            match output {
                // A failure prints the answer itself (main prints a JobOutcome's status).
                OutputFormat::Json if failed.is_empty() => output::emit(&output::to_json(&raw)),
                OutputFormat::Json => {}
                OutputFormat::Text => {
                    for t in &r.results {
                        let mark = if t.ok { "sent" } else { "FAILED" };
                        output::emit(&format!("{}: {mark} in {} ms: {}", t.target, t.duration_ms, t.detail));
                    }
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(CliError::JobOutcome {
                    damage: false,
                    message: format!("the test notification did not reach: {}", failed.join(", ")),
                    status: raw,
                })
            }
        }
    }
}

fn list_text(s: &NotifyStatus) -> String {
    let mut out = String::new();
    if s.targets.is_empty() {
        out.push_str("No notification target is configured: notifications go to the journal only.\n");
    } else {
        let mut t =
            Table::new(&["TARGET", "KIND", "DESTINATION", "MIN", "PAIRS", "PENDING", "SENT", "FAILED", "LAST ERROR"]);
        for x in &s.targets {
            t.row(vec![
                x.name.clone(),
                x.kind.clone(),
                x.destination.clone(),
                x.min_severity.as_str().into(),
                if x.pairs.is_empty() { "*".into() } else { x.pairs.join(",") },
                x.pending.to_string(),
                x.delivered.to_string(),
                x.failed_attempts.to_string(),
                x.last_error.clone().unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&t.render());
    }
    out.push_str(&format!("\nqueued: {}; a condition is told once it has held {}s\n", s.queued, s.hold_seconds));
    if s.conditions.is_empty() {
        out.push_str("conditions: none\n");
    } else {
        out.push_str("conditions:\n");
        for c in &s.conditions {
            let told = if c.notified { "told" } else { "holding" };
            out.push_str(&format!("  {} {} since {} ({told}): {}\n", c.severity.as_str(), c.key, c.since, c.summary));
        }
    }
    out
}
