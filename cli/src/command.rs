//! The command tree of `drpair` (clap derive): the global options, one subcommand per noun
//! (each defined beside the code that runs it), and the help text on exit codes.

use crate::help_files::{CompletionsArgs, ManArgs};
use crate::output::OutputFormat;
use crate::{
    api_tokens, audit, bench, drill, dump, failback, failover, lifecycle, login, notify, pairs, points, prune, recover,
    retention, start, status, storage, tasks, verify,
};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

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
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalOpts {
    /// Base URL of the standby's HTTP API
    #[arg(long, global = true, value_name = "URL", env = "DRPAIR_SERVER", default_value = DEFAULT_SERVER)]
    pub server: String,
    /// API token, sent as 'Authorization: Bearer TOKEN'
    #[arg(long, global = true, value_name = "TOKEN", env = "DRPAIR_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Read the API token from the first line of FILE (takes precedence over --token)
    #[arg(long, global = true, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Print results as text for people or as JSON for scripts
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output: OutputFormat,
    /// Trust the standby's HTTPS certificate if it chains to a CA of FILE
    #[arg(long, global = true, value_name = "FILE", env = "DRPAIR_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// Trust the standby whose certificate chain holds this fingerprint (sha256:…, as
    /// `drpaird standby fingerprint` prints it)
    #[arg(long, global = true, value_name = "FINGERPRINT", env = "DRPAIR_FINGERPRINT")]
    pub fingerprint: Option<String>,
}

/// Default of `--server`: the standby's API port on this host.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:7701";

#[derive(Debug, Subcommand)]
pub enum Command {
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
    Audit(audit::AuditArgs),
    Login(login::LoginArgs),
    Tokens(api_tokens::TokensArgs),
    Notify(notify::NotifyArgs),
    Debug(recover::DebugArgs),
    Bench(bench::BenchArgs),
    Completions(CompletionsArgs),
    #[command(hide = true)]
    Man(ManArgs),
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod workflow_tests;
