//! `drpair login`: look at the certificate a standby presents, show its fingerprint, and
//! remember it once the operator (or `--fingerprint`) confirms it, as Proxmox Backup Server's
//! client does. Later commands to that server trust it without further options.

use crate::client::{CliError, Client};
use crate::output::{self, OutputFormat};
use crate::trust::{self, TrustOpts};
use clap::Args;
use drpair_tls::Fingerprint;
use std::io::{BufRead, Write};

#[derive(Debug, Args)]
#[command(
    about = "Check a standby's fingerprint and remember it for later commands",
    long_about = "Connect to the standby at --server (https://), show the SHA-256 fingerprint of \
        the certificate chain it presents and ask whether to trust it; once confirmed (or \
        matching --fingerprint), remember it in ~/.config/drpair/known_standbys \
        (DRPAIR_CONFIG_DIR overrides the directory). Later commands to that server pin it. \
        Compare the fingerprint with what `drpaird standby fingerprint` prints on the standby.",
    after_help = "Examples:\n  drpair --server https://backup.example.net:7701 login\n  \
        drpair --server https://backup.example.net:7701 --fingerprint sha256:… login"
)]
pub struct LoginArgs {
    /// Trust without asking (only with --fingerprint, which must match)
    #[arg(long)]
    pub yes: bool,
}

pub fn run(server: &str, opts: &TrustOpts, args: &LoginArgs, out: OutputFormat) -> Result<(), CliError> {
    let server = server.trim().trim_end_matches('/');
    let (host, port) = trust::host_port(server)
        .ok_or_else(|| CliError::Failed(format!("--server {server}: login is for https:// standbys")))?;
    let chain = drpair_tls::fetch_chain(&host, port, None).map_err(|e| CliError::Failed(format!("{server}: {e}")))?;
    let root =
        Fingerprint::of(chain.last().ok_or_else(|| CliError::Failed(format!("{server} presented no certificate")))?);
    let given = match &opts.fingerprint {
        Some(f) => Some(f.parse::<Fingerprint>().map_err(|e| CliError::Failed(format!("--fingerprint: {e}")))?),
        None => None,
    };
    let trusted = match given {
        Some(f) if chain.iter().any(|c| Fingerprint::of(c) == f) => f,
        Some(f) => {
            return Err(CliError::Failed(format!(
                "{server} presents {root}, not the fingerprint given ({f}): not trusted"
            )));
        }
        None if args.yes => return Err(CliError::Failed("--yes needs --fingerprint".into())),
        None => {
            eprintln!(
                "The standby at {server} presents the fingerprint\n  {root}\nCompare it with `drpaird standby fingerprint` on the standby."
            );
            eprint!("Trust this standby? (yes/no): ");
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer).map_err(|e| CliError::Failed(format!("stdin: {e}")))?;
            if answer.trim() != "yes" {
                return Err(CliError::Failed("not trusted: nothing remembered".into()));
            }
            root
        }
    };
    // Prove the pin works end to end before remembering it.
    let probe = TrustOpts { ca_file: None, fingerprint: Some(trusted.to_string()) };
    Client::with_trust(server, None, &probe)?;
    let file = trust::remember(server, trusted)?;
    match out {
        OutputFormat::Json => output::emit(&output::to_json(&serde_json::json!({
            "server": server, "fingerprint": trusted.to_string(), "file": file.display().to_string()
        }))),
        OutputFormat::Text => output::emit(&format!("trusted {server} ({trusted}); remembered in {}", file.display())),
    }
    Ok(())
}
