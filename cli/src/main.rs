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

mod client;
mod confirm;
mod drill;
mod dump;
mod error;
mod export;
mod failback;
mod failover;
#[cfg(test)]
mod fake_server;
mod image_target;
mod lifecycle;
mod output;
mod pairs;
mod points;
mod poll;
mod prune;
mod recover;
mod retention;
mod sparse;
mod start;
mod status;
mod storage;
mod tasks;
mod verify;
mod verify_source;
mod wait;

use clap::{Args, Parser, Subcommand};
use client::{CliError, Client};
use lifecycle::Action;
use output::OutputFormat;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success
  1  any other failure (local I/O, truncated export, a failed dump load,
     a failed failover or failback (with --output json the final status is
     printed on stdout), unexpected answer, HTTP 500)
  2  usage error (bad arguments)
  3  not found (HTTP 404: no such pair, point or disk)
  4  invalid state (HTTP 409: the pair's state does not allow this now)
  5  access denied (HTTP 401/403: missing or wrong token)
  6  standby unreachable (connection refused, DNS failure, connect timeout)
  7  timed out (HTTP 504, or a --wait / --wait-synced timeout)
  8  invalid parameter (HTTP 400)
  9  aborted: the confirmation was not given (restart, start --type reload, replay,
     failover, failback)
  10 app-consistent attempt failed: the point was cut but is fuzzy
     (points create --wait with --freeze or --hooks; with --output json the
     point is printed on stdout, as on success)
  11 recovered with damage: debug recover wrote the image, but missing or
     corrupt chunks are zeros in it (each is listed; with --output json the
     report is printed on stdout, as on success)
  12 damage found: verify found recovery points that see damaged or missing
     chunks, or verify --source found chunks of the source that differed from
     the point (repaired in a new point); with --output json the final verify
     status is printed on stdout, as on success

Errors are printed as 'error: MESSAGE' on stderr; with --output json the error object
({\"code\", \"message\", \"parameter\"}) is also printed on stdout.

Environment:
  DRPAIR_SERVER  base URL of the standby's API (default http://127.0.0.1:7701)
  DRPAIR_TOKEN   API token, sent as 'Authorization: Bearer TOKEN'

Examples:
  drpair pairs list
  drpair pairs list --search web
  drpair status web-01 --wait-synced
  drpair points create web-01 --wait --timeout 5m
  drpair points export web-01 latest --out web-01-disk0.img
  drpair debug recover --pair web-01 --point latest --out web-01-disk0.img   (standby stopped)
  drpair pause web-01
  drpair resume web-01
  drpair stop web-01
  drpair start web-01 --type resume --stop-at-time 2026-11-22T18:00:00Z
  drpair start web-01 --type resume --from-point 17 --yes
  echo web-01 | drpair restart web-01 --wait

Keeping recovery points in shape:
  drpair retention web-01 --grid \"1x10m(keep=all) | 60x1m | 30x1d\" --keep-last 5
  drpair prune web-01 --dry-run
  drpair points pin web-01 17
  drpair verify web-01
  drpair verify web-01 --source
  drpair storage web-01 --points

Seeding from a third-party dump (see drpair suspend --help):
  drpair suspend web-01
  drpair standby skip-to-resync-marker web-01
  drpair marker dump web-01
  drpair resume web-01 --resync
  drpair standby load-dump web-01 --disk 0 --image /srv/dumps/web-01-sda.img
  drpair standby resume-apply web-01

Failing over and back (see drpair failover --help, drpair failback --help):
  drpair failover web-01 --latest --to /dev/vg0/web01-sda
  drpair failback web-01 --from /dev/vg0/web01-sda --direction to-original";

#[derive(Debug, Parser)]
#[command(
    name = "drpair",
    version,
    about = "Drive drpair disaster recovery: DR pairs, their status and recovery points",
    long_about = "drpair drives the drpair disaster-recovery appliance through the standby's HTTP API.\n\n\
        An agent on each protected server tracks changed blocks of its disks and ships them to a \
        standby, which keeps recovery points: point-in-time images of every disk of the server. \
        This command lists the DR pairs of a standby, shows their state and progress, starts, \
        pauses, resumes, stops and restarts them, cuts recovery points on demand and exports \
        disk images from them, keeps the points in shape (retention and prune, pins, \
        verification of what is stored and of the source, storage costs), seeds a standby from a third-party dump (a snapshot taken by \
        another tool), and fails a pair over to a recovery point and back.",
    after_long_help = EXIT_CODES_HELP,
    propagate_version = true
)]
struct Cli {
    #[command(flatten)]
    global: GlobalOpts,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
struct GlobalOpts {
    /// Base URL of the standby's HTTP API
    #[arg(long, global = true, value_name = "URL", env = "DRPAIR_SERVER", default_value = DEFAULT_SERVER)]
    server: String,
    /// API token, sent as 'Authorization: Bearer TOKEN'
    #[arg(long, global = true, value_name = "TOKEN", env = "DRPAIR_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Read the API token from the first line of FILE (takes precedence over --token)
    #[arg(long, global = true, value_name = "FILE")]
    token_file: Option<PathBuf>,
    /// Print results as text for people or as JSON for scripts
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    output: OutputFormat,
}

/// Default of `--server`: the standby's API port on this host.
const DEFAULT_SERVER: &str = "http://127.0.0.1:7701";

#[derive(Debug, Subcommand)]
enum Command {
    Pairs(pairs::PairsArgs),
    Status(status::StatusArgs),
    Points(points::PointsArgs),
    Start(start::StartArgs),
    Pause(lifecycle::PauseArgs),
    Resume(lifecycle::ResumeArgs),
    Stop(lifecycle::StopArgs),
    Restart(lifecycle::RestartArgs),
    Suspend(dump::SuspendArgs),
    Standby(dump::StandbyArgs),
    Marker(dump::MarkerArgs),
    Verify(verify::VerifyArgs),
    Prune(prune::PruneArgs),
    Retention(retention::RetentionArgs),
    Storage(storage::StorageArgs),
    Drill(drill::DrillArgs),
    Failover(failover::FailoverArgs),
    Failback(failback::FailbackArgs),
    Tasks(tasks::TasksArgs),
    Debug(recover::DebugArgs),
    Completions(CompletionsArgs),
    #[command(hide = true)]
    Man(ManArgs),
}

#[derive(Debug, Args)]
#[command(
    about = "Print the shell completion script of drpair",
    after_help = "Examples:\n  \
        drpair completions bash > /etc/bash_completion.d/drpair\n  \
        drpair completions zsh > \"${fpath[1]}/_drpair\"\n  \
        drpair completions fish > ~/.config/fish/completions/drpair.fish\n\n\
        The Debian package installs them for bash, zsh and fish."
)]
struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
#[command(about = "Write the manual pages of drpair (section 1) into DIR")]
struct ManArgs {
    /// Where drpair.1 and one page per subcommand are written
    #[arg(value_name = "DIR")]
    dir: PathBuf,
}

/// `drpair completions` and `drpair man`: generated from the command definition itself, so they
/// never disagree with it.
fn write_help_files(command: &Command) -> Result<(), CliError> {
    use clap::CommandFactory;
    match command {
        Command::Completions(args) => {
            let mut script = Vec::new();
            clap_complete::generate(args.shell, &mut Cli::command(), "drpair", &mut script);
            std::io::Write::write_all(&mut std::io::stdout().lock(), &script)
                .map_err(|e| CliError::io("cannot write the completion script", e))
        }
        Command::Man(args) => std::fs::create_dir_all(&args.dir)
            .and_then(|()| clap_mangen::generate_to(Cli::command(), &args.dir))
            .map_err(|e| CliError::io(format!("cannot write manual pages into {}", args.dir.display()), e)),
        _ => unreachable!("only completions and man are written here"),
    }
}

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
        Command::Completions(_) | Command::Man(_) => return write_help_files(&cli.command),
        _ => {}
    }
    let token = match &cli.global.token_file {
        Some(path) => Some(read_token_file(path)?),
        None => cli.global.token.clone(),
    };
    let client = Client::new(&cli.global.server, token)?;
    let output = cli.global.output;
    match &cli.command {
        Command::Pairs(args) => pairs::run(&client, output, args),
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
        Command::Debug(_) | Command::Completions(_) | Command::Man(_) => {
            unreachable!("offline commands are run above")
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
    use clap::CommandFactory;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("drpair").chain(args.iter().copied()))
    }

    fn usage_error(args: &[&str]) -> ErrorKind {
        let err = parse(args).unwrap_err();
        assert_eq!(err.exit_code(), i32::from(client::exit::USAGE), "{args:?}");
        err.kind()
    }

    #[test]
    fn clap_definition_is_valid() {
        Cli::command().debug_assert();
        assert_eq!(DEFAULT_SERVER, format!("http://127.0.0.1:{}", drpair_types::DEFAULT_API_PORT));
    }

    #[test]
    fn global_options_go_anywhere() {
        let cli = parse(&["pairs", "list", "--output", "json", "--server", "http://s:1"]).unwrap();
        assert_eq!(cli.global.output, OutputFormat::Json);
        assert_eq!(cli.global.server, "http://s:1");
        let cli = parse(&["--token", "abc", "status", "web-01"]).unwrap();
        assert_eq!(cli.global.token.as_deref(), Some("abc"));
        assert!(matches!(cli.command, Command::Status(ref s) if s.pair.as_str() == "web-01" && !s.watch));
    }

    #[test]
    fn export_arguments() {
        let cli = parse(&["points", "export", "web-01", "latest", "--out", "/tmp/x.img"]).unwrap();
        let Command::Points(p) = cli.command else { panic!() };
        let points::PointsCommand::Export(e) = p.command else { panic!() };
        assert_eq!((e.point, e.disk, e.force), (export::PointRef::Latest, 0, false));
        let cli = parse(&["points", "export", "web-01", "17", "--disk", "2", "-o", "d.img", "--force"]).unwrap();
        let Command::Points(p) = cli.command else { panic!() };
        let points::PointsCommand::Export(e) = p.command else { panic!() };
        assert_eq!((e.point, e.disk, e.force), (export::PointRef::Id(17), 2, true));
    }

    #[test]
    fn usage_errors_exit_2() {
        assert_eq!(usage_error(&["points", "export", "web-01", "latest"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(usage_error(&["pairs", "list", "--output", "yaml"]), ErrorKind::InvalidValue);
        assert_eq!(usage_error(&["points", "export", "web-01", "newest", "--out", "f"]), ErrorKind::ValueValidation);
        assert_eq!(usage_error(&["status", "../etc"]), ErrorKind::ValueValidation);
        assert_eq!(usage_error(&["points", "create", "web-01", "--timeout", "5m"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(
            usage_error(&["points", "create", "web-01", "--wait", "--timeout", "soon"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(usage_error(&["status", "web-01", "--timeout", "5m"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(usage_error(&["frobnicate"]), ErrorKind::InvalidSubcommand);
        assert_eq!(usage_error(&[]), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
    }

    #[test]
    fn create_and_status_flags() {
        let cli = parse(&["points", "create", "web-01", "--wait", "--timeout", "90s"]).unwrap();
        let Command::Points(p) = cli.command else { panic!() };
        let points::PointsCommand::Create { wait, timeout, .. } = p.command else { panic!() };
        assert!(wait);
        assert_eq!(timeout, Some(std::time::Duration::from_secs(90)));
        let cli = parse(&["status", "web-01", "--wait-synced", "--timeout", "2h"]).unwrap();
        assert!(matches!(cli.command, Command::Status(ref s) if s.wait_synced));
    }

    #[test]
    fn pairs_list_search() {
        let cli = parse(&["pairs", "list", "--search", "web 01"]).unwrap();
        let Command::Pairs(p) = cli.command else { panic!() };
        assert!(matches!(p.command, pairs::PairsCommand::List { search: Some(ref s) } if s == "web 01"));
        let cli = parse(&["pairs", "ls"]).unwrap();
        let Command::Pairs(p) = cli.command else { panic!() };
        assert!(matches!(p.command, pairs::PairsCommand::List { search: None }));
    }

    #[test]
    fn restart_flags() {
        let cli = parse(&["restart", "web-01"]).unwrap();
        let Command::Restart(r) = cli.command else { panic!() };
        assert_eq!(r.pair.as_str(), "web-01");
        assert!(!r.yes && !r.full_copy && !r.keep_points_until_synced && !r.wait.wait && r.wait.timeout.is_none());
        let cli = parse(&[
            "restart",
            "web-01",
            "--yes",
            "--full-copy",
            "--keep-points-until-synced",
            "--wait",
            "--timeout",
            "12h",
        ])
        .unwrap();
        let Command::Restart(r) = cli.command else { panic!() };
        assert!(r.yes && r.full_copy && r.keep_points_until_synced && r.wait.wait);
        assert_eq!(r.wait.timeout, Some(std::time::Duration::from_secs(12 * 3600)));
        let Command::Restart(r) = parse(&["restart", "web-01", "-y"]).unwrap().command else { panic!() };
        assert!(r.yes);
    }

    #[test]
    fn pause_resume_stop() {
        assert!(
            matches!(parse(&["pause", "web-01"]).unwrap().command, Command::Pause(ref a) if a.pair.as_str() == "web-01")
        );
        assert!(
            matches!(parse(&["resume", "web-01"]).unwrap().command, Command::Resume(ref a) if a.pair.as_str() == "web-01")
        );
        assert!(
            matches!(parse(&["stop", "web-01"]).unwrap().command, Command::Stop(ref a) if a.pair.as_str() == "web-01")
        );
    }

    #[test]
    fn start_flags() {
        let cli = parse(&[
            "start",
            "web-01",
            "--type",
            "resume",
            "--from-point",
            "LIN:17",
            "--from-time",
            "2026-11-22T10:30:00Z",
            "--stop-at-point",
            "40",
            "--stop-at-time",
            "@1763807400",
            "--yes",
            "--full-copy",
            "--keep-points-until-synced",
            "--wait",
            "--timeout",
            "90m",
        ])
        .unwrap();
        let Command::Start(s) = cli.command else { panic!() };
        assert_eq!(s.start_type, start::StartTypeArg::Resume);
        assert_eq!(s.from_point.as_deref(), Some("LIN:17"));
        assert_eq!(s.from_time.as_deref(), Some("2026-11-22T10:30:00Z"));
        assert_eq!(s.stop_at_point, Some(40));
        assert_eq!(s.stop_at_time.as_deref(), Some("@1763807400"));
        assert!(s.yes && s.full_copy && s.keep_points_until_synced && s.wait.wait);
        assert_eq!(s.wait.timeout, Some(std::time::Duration::from_secs(90 * 60)));
        for (value, want) in [
            ("start", start::StartTypeArg::Start),
            ("resume", start::StartTypeArg::Resume),
            ("reload", start::StartTypeArg::Reload),
        ] {
            let Command::Start(s) = parse(&["start", "web-01", "--type", value]).unwrap().command else { panic!() };
            assert_eq!(s.start_type, want);
            assert!(s.from_point.is_none() && s.stop_at_point.is_none() && !s.yes && !s.wait.wait);
        }
    }

    #[test]
    fn lifecycle_usage_errors_exit_2() {
        assert_eq!(usage_error(&["start", "web-01"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(usage_error(&["start", "web-01", "--type", "begin"]), ErrorKind::InvalidValue);
        for flag in ["--from-time", "--stop-at-time"] {
            assert_eq!(
                usage_error(&["start", "web-01", "--type", "resume", flag, "yesterday"]),
                ErrorKind::ValueValidation,
                "{flag}"
            );
        }
        assert_eq!(
            usage_error(&["start", "web-01", "--type", "resume", "--stop-at-point", "LIN:17"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(
            usage_error(&["start", "web-01", "--type", "start", "--timeout", "1h"]),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(usage_error(&["restart", "web-01", "--timeout", "1h"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(usage_error(&["restart", "web-01", "--wait", "--timeout", "soon"]), ErrorKind::ValueValidation);
        assert_eq!(usage_error(&["restart"]), ErrorKind::MissingRequiredArgument);
        assert_eq!(usage_error(&["pause", "../x"]), ErrorKind::ValueValidation);
        assert_eq!(usage_error(&["stop", "web-01", "--yes"]), ErrorKind::UnknownArgument);
    }

    #[test]
    fn every_new_command_has_long_help_with_examples() {
        let mut cli = Cli::command();
        for name in ["start", "pause", "resume", "stop", "restart", "suspend"] {
            let cmd = cli.find_subcommand_mut(name).unwrap();
            let help = cmd.render_long_help().to_string();
            assert!(help.contains("Examples:") && help.contains(&format!("drpair {name} web-01")), "{name}:\n{help}");
            assert!(help.contains("POST /api/v1/pairs/PAIR/"), "{name}");
        }
        for (group, name) in [
            ("standby", "skip-to-resync-marker"),
            ("standby", "load-dump"),
            ("standby", "resume-apply"),
            ("marker", "dump"),
        ] {
            let cmd = cli.find_subcommand_mut(group).unwrap().find_subcommand_mut(name).unwrap();
            let help = cmd.render_long_help().to_string();
            let example = format!("drpair {group} {name} web-01");
            assert!(help.contains("Examples:") && help.contains(&example), "{group} {name}:\n{help}");
            assert!(help.contains("POST /api/v1/pairs/PAIR/"), "{group} {name}");
        }
        let load = cli.find_subcommand_mut("standby").unwrap().find_subcommand_mut("load-dump").unwrap();
        let help = load.render_long_help().to_string();
        assert!(help.contains("a path ON THE STANDBY") && help.contains("read by the standby"), "{help}");
        let resume = cli.find_subcommand_mut("resume").unwrap().render_long_help().to_string();
        assert!(resume.contains("drpair resume web-01 --resync --reinit --force"), "{resume}");
    }

    #[test]
    fn dump_workflow_commands() {
        let Command::Suspend(a) = parse(&["suspend", "web-01"]).unwrap().command else { panic!() };
        assert_eq!(a.pair.as_str(), "web-01");
        let Command::Standby(s) = parse(&["standby", "skip-to-resync-marker", "web-01"]).unwrap().command else {
            panic!()
        };
        assert!(matches!(s.command, dump::StandbyCommand::SkipToResyncMarker(ref a) if a.pair.as_str() == "web-01"));
        let Command::Standby(s) = parse(&["standby", "resume-apply", "web-01"]).unwrap().command else { panic!() };
        assert!(matches!(s.command, dump::StandbyCommand::ResumeApply(ref a) if a.pair.as_str() == "web-01"));

        let cli = parse(&["standby", "load-dump", "web-01", "--disk", "1", "--image", "/srv/d1.qcow2"]).unwrap();
        let Command::Standby(s) = cli.command else { panic!() };
        let dump::StandbyCommand::LoadDump(l) = s.command else { panic!() };
        assert_eq!((l.disk, l.image.to_str(), l.format, l.no_wait), (1, Some("/srv/d1.qcow2"), None, false));
        let cli = parse(&[
            "standby",
            "load-dump",
            "web-01",
            "--disk",
            "0",
            "--image",
            "d0.img",
            "--format",
            "qcow2",
            "--no-wait",
        ])
        .unwrap();
        let Command::Standby(s) = cli.command else { panic!() };
        let dump::StandbyCommand::LoadDump(l) = s.command else { panic!() };
        assert_eq!((l.format, l.no_wait), (Some(dump::ImageFormatArg::Qcow2), true));

        let Command::Marker(m) = parse(&["marker", "dump", "web-01"]).unwrap().command else { panic!() };
        let dump::MarkerCommand::Dump(d) = m.command;
        assert_eq!(d.request(), drpair_types::DumpMarkerRequest::default());
        let Command::Marker(m) = parse(&["marker", "dump", "web-01", "--at", "2026-11-22T10:30:00Z"]).unwrap().command
        else {
            panic!()
        };
        let dump::MarkerCommand::Dump(d) = m.command;
        assert_eq!(d.at.as_deref(), Some("2026-11-22T10:30:00Z"));
        let cli = parse(&[
            "marker",
            "dump",
            "web-01",
            "--freeze",
            "/var/lib/postgresql",
            "--freeze",
            "/srv",
            "--exec",
            "lvcreate -s -n snap vg0/web01",
            "--thaw-budget",
            "10s",
            "--exec-timeout",
            "5m",
        ])
        .unwrap();
        let Command::Marker(m) = cli.command else { panic!() };
        let dump::MarkerCommand::Dump(d) = m.command;
        assert_eq!(
            d.request(),
            drpair_types::DumpMarkerRequest {
                at: None,
                freeze: vec!["/var/lib/postgresql".into(), "/srv".into()],
                exec: Some("lvcreate -s -n snap vg0/web01".into()),
                thaw_budget_ms: Some(10_000),
                exec_timeout_seconds: Some(300),
            }
        );
    }

    #[test]
    fn resume_flags() {
        let Command::Resume(r) = parse(&["resume", "web-01"]).unwrap().command else { panic!() };
        assert!(!r.resync && !r.reinit && !r.force);
        let Command::Resume(r) = parse(&["resume", "web-01", "--resync"]).unwrap().command else { panic!() };
        assert!(r.resync && !r.reinit && !r.force);
        assert_eq!(lifecycle::resume_request(&r), drpair_types::ResumeRequest { resync: true, ..Default::default() });
        let Command::Resume(r) = parse(&["resume", "web-01", "--resync", "--reinit", "--force"]).unwrap().command
        else {
            panic!()
        };
        assert!(r.resync && r.reinit && r.force);
        assert_eq!(
            lifecycle::resume_request(&r),
            drpair_types::ResumeRequest { resync: true, reinit: true, confirm: Some("web-01".into()) }
        );
    }

    #[test]
    fn dump_usage_errors_exit_2() {
        use ErrorKind::*;
        let cases: [(&[&str], ErrorKind); 17] = [
            (&["resume", "web-01", "--reinit"], MissingRequiredArgument),
            (&["resume", "web-01", "--reinit", "--force"], MissingRequiredArgument),
            (&["resume", "web-01", "--resync", "--reinit"], MissingRequiredArgument),
            (&["resume", "web-01", "--force"], MissingRequiredArgument),
            (&["resume", "web-01", "--resync", "--force"], MissingRequiredArgument),
            (&["standby", "load-dump", "web-01", "--disk", "0"], MissingRequiredArgument),
            (&["standby", "load-dump", "web-01", "--image", "/d.img"], MissingRequiredArgument),
            (&["standby", "load-dump", "web-01", "--disk", "first", "--image", "/d.img"], ValueValidation),
            (&["standby", "load-dump", "web-01", "--disk", "0", "--image", "/d.img", "--format", "vmdk"], InvalidValue),
            (&["standby", "frobnicate", "web-01"], InvalidSubcommand),
            (&["marker", "dump", "web-01", "--freeze", "/data"], MissingRequiredArgument),
            (&["marker", "dump", "web-01", "--at", "now", "--exec", "snap"], ArgumentConflict),
            (&["marker", "dump", "web-01", "--at", "yesterday"], ValueValidation),
            (&["marker", "dump", "web-01", "--exec", "snap", "--thaw-budget", "5s"], MissingRequiredArgument),
            (&["marker", "dump", "web-01", "--exec", "snap", "--freeze", "data"], ValueValidation),
            (&["marker", "dump", "web-01", "--exec", "snap", "--exec-timeout", "2d"], ValueValidation),
            (&["suspend", "../x"], ValueValidation),
        ];
        for (args, kind) in cases {
            assert_eq!(usage_error(args), kind, "{args:?}");
        }
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        for want in [
            "Exit codes:",
            "6  standby unreachable",
            "9  aborted: the confirmation was not given",
            "10 app-consistent attempt failed",
            "DRPAIR_SERVER",
            "--token-file",
            "drpair restart web-01",
            "drpair start web-01 --type",
            "drpair pause web-01",
            "drpair suspend web-01",
            "drpair standby load-dump web-01 --disk 0 --image",
        ] {
            assert!(help.contains(want), "{want}");
        }
    }

    #[test]
    fn maintenance_commands() {
        let Command::Verify(v) = parse(&["verify", "web-01"]).unwrap().command else { panic!() };
        assert!((v.pair.as_str(), v.point, v.source, v.no_wait) == ("web-01", None, false, false));
        let Command::Verify(v) = parse(&["verify", "web-01", "--point", "17", "--no-wait"]).unwrap().command else {
            panic!()
        };
        assert!(v.point == Some(17) && !v.source && v.no_wait);
        let Command::Verify(v) = parse(&["verify", "web-01", "--source"]).unwrap().command else { panic!() };
        assert!(v.source && v.point.is_none());
        let Command::Prune(p) = parse(&["prune", "web-01", "--dry-run"]).unwrap().command else { panic!() };
        assert!(p.dry_run);
        let cli = parse(&["retention", "web-01", "--grid", "1x10m(keep=all) | 60x1m", "--keep-last", "5"]).unwrap();
        let Command::Retention(r) = cli.command else { panic!() };
        assert_eq!(
            r.update(),
            Some(drpair_types::RetentionUpdate {
                grid: Some("1x10m(keep=all) | 60x1m".into()),
                keep_last: Some(5),
                reset: false
            })
        );
        let Command::Retention(r) = parse(&["retention", "web-01"]).unwrap().command else { panic!() };
        assert_eq!(r.update(), None, "no option: show");
        let Command::Retention(r) = parse(&["retention", "web-01", "--reset"]).unwrap().command else { panic!() };
        assert_eq!(r.update(), Some(drpair_types::RetentionUpdate { reset: true, ..Default::default() }));
        let Command::Storage(s) = parse(&["storage", "web-01", "--points"]).unwrap().command else { panic!() };
        assert!(s.points);
    }

    #[test]
    fn maintenance_usage_errors_exit_2() {
        use ErrorKind::*;
        let cases: [(&[&str], ErrorKind); 9] = [
            (&["verify", "web-01", "--point", "17", "--source"], ArgumentConflict),
            (&["verify", "web-01", "--point", "latest"], ValueValidation),
            (&["retention", "web-01", "--reset", "--grid", "1x1h"], ArgumentConflict),
            (&["retention", "web-01", "--keep-last", "3", "--reset"], ArgumentConflict),
            (&["retention", "web-01", "--keep-last", "-1"], UnknownArgument),
            (&["prune", "web-01", "--yes"], UnknownArgument),
            (&["storage"], MissingRequiredArgument),
            (&["points", "pin", "web-01"], MissingRequiredArgument),
            (&["points", "unpin", "web-01", "newest"], ValueValidation),
        ];
        for (args, kind) in cases {
            assert_eq!(usage_error(args), kind, "{args:?}");
        }
        for args in
            [&["verify", "web-01", "--source", "--point", "17"], &["verify", "web-01", "--point", "17", "--source"]]
        {
            let err = parse(args).unwrap_err().to_string();
            assert!(
                err.contains("cannot be used with") && err.contains("'--point <ID>'") && err.contains("'--source'"),
                "{err}"
            );
        }
        assert_eq!(client::exit::DAMAGE_FOUND, 12, "scripts rely on it");
    }

    #[test]
    fn maintenance_commands_have_long_help_with_examples() {
        let mut cli = Cli::command();
        for (name, endpoint) in [
            ("verify", "POST /api/v1/pairs/PAIR/verify"),
            ("prune", "POST /api/v1/pairs/PAIR/prune"),
            ("retention", "PUT /api/v1/pairs/PAIR/retention"),
            ("storage", "GET\n"),
        ] {
            let help = cli.find_subcommand_mut(name).unwrap().render_long_help().to_string();
            assert!(help.contains("Examples:") && help.contains(&format!("drpair {name} web-01")), "{name}:\n{help}");
            assert!(help.contains(endpoint) || name == "storage", "{name}:\n{help}");
        }
        for name in ["pin", "unpin"] {
            let cmd = cli.find_subcommand_mut("points").unwrap().find_subcommand_mut(name).unwrap();
            let help = cmd.render_long_help().to_string();
            assert!(help.contains(&format!("drpair points {name} web-01 17")), "{name}:\n{help}");
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("12 damage found: verify found recovery points"), "{help}");
        assert!(help.contains("drpair verify web-01 --source"), "{help}");
    }

    #[test]
    fn failover_and_failback_flags() {
        let cli = parse(&["failover", "web-01", "--latest", "--to", "/dev/sdc", "--to", "d1.img"]).unwrap();
        let Command::Failover(f) = cli.command else { panic!() };
        assert_eq!((f.pair.as_str(), f.point, f.latest), ("web-01", None, true));
        assert_eq!(f.to, ["/dev/sdc", "d1.img"]);
        assert!(!f.force && !f.yes && !f.no_wait);
        let cli = parse(&["failover", "web-01", "--point", "42", "--to", "x", "--force", "-y", "--no-wait"]).unwrap();
        let Command::Failover(f) = cli.command else { panic!() };
        assert!(f.point == Some(42) && !f.latest && f.force && f.yes && f.no_wait);

        // --direction is optional on purpose: the standby refuses without it (exit 8).
        let Command::Failback(b) = parse(&["failback", "web-01", "--from", "/dev/sdc"]).unwrap().command else {
            panic!()
        };
        assert_eq!((b.from.as_slice(), b.direction, b.yes), (&["/dev/sdc".to_string()][..], None, false));
        for (value, want) in
            [("to-original", failback::DirectionArg::ToOriginal), ("to-recovered", failback::DirectionArg::ToRecovered)]
        {
            let cli =
                parse(&["failback", "web-01", "--from", "a", "--from", "b", "--direction", value, "--yes"]).unwrap();
            let Command::Failback(b) = cli.command else { panic!() };
            assert_eq!((b.from.len(), b.direction, b.yes), (2, Some(want), true));
        }
    }

    #[test]
    fn failover_usage_errors_exit_2() {
        use ErrorKind::*;
        let cases: [(&[&str], ErrorKind); 8] = [
            (&["failover", "web-01", "--point", "4", "--latest", "--to", "/dev/sdc"], ArgumentConflict),
            (&["failover", "web-01", "--latest"], MissingRequiredArgument),
            (&["failover", "web-01", "--to", "/dev/sdc"], MissingRequiredArgument),
            (&["failover", "web-01", "--point", "latest", "--to", "/dev/sdc"], ValueValidation),
            (&["failover", "web-01", "--latest", "--to", ""], InvalidValue),
            (&["failback", "web-01", "--direction", "to-original"], MissingRequiredArgument),
            (&["failback", "web-01", "--from", "/dev/sdc", "--direction", "auto"], InvalidValue),
            (&["failback", "web-01", "--from", "/dev/sdc", "--force"], UnknownArgument),
        ];
        for (args, kind) in cases {
            assert_eq!(usage_error(args), kind, "{args:?}");
        }
        let err = parse(&["failover", "web-01", "--point", "4", "--latest", "--to", "x"]).unwrap_err().to_string();
        assert!(err.contains("'--point <ID>'") && err.contains("'--latest'"), "{err}");
    }

    #[test]
    fn failover_commands_have_long_help_with_examples() {
        let mut cli = Cli::command();
        for (name, endpoint) in
            [("failover", "POST /api/v1/pairs/PAIR/failover"), ("failback", "POST /api/v1/pairs/PAIR/failback")]
        {
            let help = cli.find_subcommand_mut(name).unwrap().render_long_help().to_string();
            assert!(help.contains("Examples:") && help.contains(&format!("drpair {name} web-01")), "{name}:\n{help}");
            assert!(help.contains(endpoint) && help.contains("Exit codes:"), "{name}:\n{help}");
        }
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("a failed failover or failback"), "{help}");
        assert!(help.contains("drpair failback web-01 --from /dev/vg0/web01-sda --direction to-original"), "{help}");
    }

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
