//! `drpair`: the operator's command line, a thin client of the standby's HTTP API (`/api/v1`).
//!
//! Invariants: the CLI uses only the public API and the types of `drpair-types`; stdout
//! carries the result (text or `--output json`), stderr carries progress and errors; the exit
//! code says what went wrong, so scripts can rely on it:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | any other failure (local I/O, truncated export, a failed dump load, a failed failover or failback, unexpected answer, HTTP 500) |
//! | 2 | usage error (bad arguments; from clap) |
//! | 3 | not found (HTTP 404: pair, point or disk) |
//! | 4 | invalid state (HTTP 409: the pair's state does not allow this now) |
//! | 5 | access denied (HTTP 401/403: missing or wrong token) |
//! | 6 | standby unreachable (connection refused, DNS failure, connect timeout) |
//! | 7 | timed out (HTTP 504, or a `--wait`/`--wait-synced` timeout) |
//! | 8 | invalid parameter (HTTP 400) |
//! | 9 | aborted: the confirmation was not given (`restart`, `start --type reload`, replay, `failover`, `failback`) |
//! | 10 | app-consistent attempt failed: the point was cut but is fuzzy (`points create --wait --freeze/--hooks`) |
//! | 11 | recovered with damage: `debug recover` wrote the image, but missing or corrupt chunks are zeros in it |
//! | 12 | damage found: `verify` found damaged points, or `verify --source` chunks that differed from the point |

mod api_tokens;
mod audit;
mod bench;
mod client;
mod command;
mod confirm;
mod drill;
mod drill_boot;
mod dump;
mod error;
mod export;
mod failback;
mod failover;
mod failover_instant;
#[cfg(test)]
mod fake_server;
mod guest_args;
mod help_files;
mod image_target;
mod lifecycle;
mod login;
mod notify;
mod output;
mod pairs;
mod points;
mod poll;
mod protect;
mod prune;
mod recover;
mod retention;
mod settings;
mod sparse;
mod start;
mod status;
mod storage;
mod tasks;
mod trust;
mod verify;
mod verify_source;
mod wait;

use clap::Parser;
use client::{CliError, Client};
use command::{Cli, Command};
use lifecycle::Action;
use output::OutputFormat;
use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version come here too: printed on stdout, exit 0.
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { client::exit::USAGE } else { client::exit::OK });
        }
    };
    let output = cli.global.output;
    match run(&cli) {
        Ok(()) => ExitCode::from(client::exit::OK),
        Err(e) => {
            if output == OutputFormat::Json {
                output::emit(&output::to_json(&e.to_json()));
            }
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

fn run(cli: &Cli) -> Result<(), CliError> {
    // Offline: no standby to reach, no token.
    match &cli.command {
        Command::Debug(args) => return recover::run(cli.global.output, args),
        Command::Completions(_) | Command::Man(_) => return help_files::write_help_files(&cli.command),
        _ => {}
    }
    let token = match &cli.global.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => cli.global.token.clone(),
    };
    let trust = trust::TrustOpts { ca_file: cli.global.ca_file.clone(), fingerprint: cli.global.fingerprint.clone() };
    if let Command::Login(args) = &cli.command {
        return login::run(&cli.global.server, &trust, args, cli.global.output);
    }
    // Bench measures this machine even when the standby cannot be reached (or --local).
    if let Command::Bench(args) = &cli.command {
        let client = Client::with_trust(&cli.global.server, token, &trust).ok();
        return bench::run(client.as_ref(), cli.global.output, args);
    }
    let client = Client::with_trust(&cli.global.server, token, &trust)?;
    let output = cli.global.output;
    match &cli.command {
        Command::Pairs(args) => pairs::run(&client, output, args),
        Command::Audit(args) => audit::run(&client, output, args),
        Command::Tokens(args) => api_tokens::run(&client, output, args),
        Command::Notify(args) => notify::run(&client, output, args),
        Command::Login(_) => unreachable!("handled before the client is made"),
        Command::Status(args) => status::run(&client, output, args),
        Command::Points(args) => points::run(&client, output, args),
        Command::Start(args) => start::run(&client, output, args, &mut std::io::stdin().lock()),
        Command::Pause(args) => lifecycle::simple(&client, output, &args.pair, Action::Pause),
        Command::Resume(args) => lifecycle::resume(&client, output, args),
        Command::Stop(args) => lifecycle::simple(&client, output, &args.pair, Action::Stop),
        Command::Restart(args) => lifecycle::restart(&client, output, args, &mut std::io::stdin().lock()),
        Command::Suspend(args) => dump::suspend(&client, output, args),
        Command::Standby(args) => dump::run_standby(&client, output, args),
        Command::Marker(args) => dump::run_marker(&client, output, args),
        Command::Verify(args) => verify::run(&client, output, args),
        Command::Prune(args) => prune::run(&client, output, args),
        Command::Retention(args) => retention::run(&client, output, args),
        Command::Storage(args) => storage::run(&client, output, args),
        Command::Drill(args) => drill::run(&client, output, args),
        Command::Tasks(args) => tasks::run(&client, output, args),
        Command::Failover(args) => failover::run(&client, output, args, &mut std::io::stdin().lock()),
        Command::Failback(args) => failback::run(&client, output, args, &mut std::io::stdin().lock()),
        Command::Debug(_) | Command::Completions(_) | Command::Man(_) | Command::Bench(_) => {
            unreachable!("offline commands and bench are run above")
        }
    }
}

/// The first line of a token file, trimmed; an empty one is an error, not "no token".
fn read_token_file(path: &Path) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::io(format!("cannot read token file {}", path.display()), e))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(CliError::Failed(format!("token file {} is empty", path.display())));
    }
    Ok(token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_first_line() {
        let path = crate::sparse::tests::temp_path("token");
        std::fs::write(&path, "  s3cret \nsecond line\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "s3cret");
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path).unwrap_err().to_string().contains("is empty"));
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read_token_file(&path).unwrap_err().exit_code(), client::exit::FAILURE);
    }
}
