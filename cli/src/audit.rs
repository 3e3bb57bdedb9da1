//! `drpair audit`: who did what on the standby.

use crate::client::{self, CliError, Client};
use crate::output::{self, OutputFormat, Table};
use clap::Args;
use drpair_types::AuditEntry;

#[derive(Debug, Args)]
#[command(
    about = "Show the audit log: state-changing calls, enrollments, refused authentications",
    long_about = "Show the standby's audit log (GET /api/v1/audit): every API call that changed \
        something, every enrollment and revocation, and every refused authentication on the API \
        or the link, with its time, identity (token or agent certificate), source address, \
        action, pair and result. Oldest first; the log is kept across restarts and bounded (two \
        files of 16 MiB).\n\n\
        With --output json: the array of AuditEntry objects.",
    after_help = "Examples:\n  drpair audit\n  drpair audit --pair web-01 --since 24h\n  \
        drpair audit --since 2026-12-01T00:00:00Z --output json | jq '.[] | select(.result==\"refused\")'"
)]
pub struct AuditArgs {
    /// Only entries of this pair
    #[arg(long, value_name = "PAIR")]
    pub pair: Option<drpair_types::PairId>,
    /// Only entries since this RFC 3339 time or this long ago (e.g. 24h)
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// At most this many (the newest)
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

pub fn run(client: &Client, output: OutputFormat, a: &AuditArgs) -> Result<(), CliError> {
    let mut q = vec![format!("limit={}", a.limit)];
    if let Some(p) = &a.pair {
        q.push(format!("pair={}", client::encode_query_value(p.as_str())));
    }
    if let Some(s) = &a.since {
        q.push(format!("since={}", client::encode_query_value(s)));
    }
    let (raw, entries): (_, Vec<AuditEntry>) = client.get_json(&format!("/api/v1/audit?{}", q.join("&")))?;
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text if entries.is_empty() => output::emit("no audit entries match"),
        OutputFormat::Text => {
            let mut t = Table::new(&["TIME", "IDENTITY", "SOURCE", "ACTION", "PAIR", "RESULT"]);
            for e in &entries {
                let result = match &e.message {
                    Some(m) => format!("{} ({m})", e.result),
                    None => e.result.clone(),
                };
                t.row(vec![
                    e.time.clone(),
                    e.identity.clone(),
                    e.source.clone(),
                    e.action.clone(),
                    e.pair.clone().unwrap_or_else(|| "-".into()),
                    result,
                ]);
            }
            output::emit(&t.render());
        }
    }
    Ok(())
}
