//! `drpair tokens …`: the standby's named API tokens and their roles.

use crate::client::{ANSWER_TIMEOUT, CliError, Client};
use crate::output::{self, OutputFormat, Table};
use clap::{Args, Subcommand};
use drpair_types::{CreatedToken, NewToken, Role, TokenInfo};

#[derive(Debug, Args)]
#[command(
    about = "Manage the standby's API tokens (admin)",
    long_about = "Manage the standby's API tokens (admin only). Each token has a name, a role and \
        optionally an expiry; the standby keeps only a hash of its secret. Roles: viewer \
        (status, points, metrics, the panel), operator (pause, resume, stop, start without \
        replay, points create/pin/export, drills, verify), admin (everything else: restart, \
        reload, replay, failover, failback, the dump workflow, retention, enroll/revoke, tokens, \
        the audit log), metrics (only /metrics, for a scraper). A call the role cannot make is \
        refused with 403 naming the role it needs.",
    after_help = "Examples:\n  drpair tokens create grafana --role metrics\n  \
        drpair tokens create night-shift --role operator --expires 30d\n  drpair tokens list\n  \
        drpair tokens revoke night-shift"
)]
pub struct TokensArgs {
    #[command(subcommand)]
    pub command: TokensCommand,
}

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Make a token; its secret is shown once
    Create {
        /// The token's name (letters, digits, '.', '_', '-')
        name: String,
        /// viewer, operator, admin or metrics
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Expire after this long (e.g. 30d; default: never)
        #[arg(long)]
        expires: Option<String>,
    },
    /// The tokens: name, role, created, expires (never the secrets)
    #[command(visible_alias = "ls")]
    List,
    /// Delete a token: it is refused from the next call on
    Revoke { name: String },
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| format!("role '{s}' is not one of viewer, operator, admin, metrics"))
}

pub fn run(client: &Client, output: OutputFormat, args: &TokensArgs) -> Result<(), CliError> {
    match &args.command {
        TokensCommand::Create { name, role, expires } => {
            let body = NewToken { name: name.clone(), role: *role, expires: expires.clone() };
            let (_, raw, t): (_, _, CreatedToken) = client.post_json("/api/v1/tokens", &body, ANSWER_TIMEOUT)?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text => output::emit(&format!(
                    "token {} ({}){}; its secret, shown only now:\n{}",
                    t.name,
                    t.role.as_str(),
                    t.expires_at.map(|e| format!(", expires {e}")).unwrap_or_default(),
                    t.secret
                )),
            }
        }
        TokensCommand::List => {
            let (raw, tokens): (_, Vec<TokenInfo>) = client.get_json("/api/v1/tokens")?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text => {
                    let mut t = Table::new(&["NAME", "ROLE", "CREATED", "EXPIRES"]);
                    for k in &tokens {
                        t.row(vec![
                            k.name.clone(),
                            k.role.as_str().into(),
                            k.created_at.clone(),
                            k.expires_at.clone().unwrap_or_else(|| "never".into()),
                        ]);
                    }
                    output::emit(&t.render());
                }
            }
        }
        TokensCommand::Revoke { name } => {
            let (raw, _): (_, serde_json::Value) = client.delete_json(&format!("/api/v1/tokens/{name}"))?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text => output::emit(&format!("token {name} revoked")),
            }
        }
    }
    Ok(())
}
