//! `drpair marker dump PAIR`: recording the dump point in the agent's change history, or
//! letting the agent cut it and run the snapshot command (step 3 of the workflow); and the
//! lines that show a dump marker (also in `status`).

use super::next_step;
use crate::client::{ANSWER_TIMEOUT, CliError, Client};
use crate::output::{self, Block, OutputFormat};
use crate::points::{ceil_ms, mount_point};
use crate::poll;
use clap::{Args, Subcommand};
use drpair_types::{DumpMarker, DumpMarkerRequest, DumpMarkerResponse, PairId};
use std::time::Duration;

/// Shortest answer timeout of `marker dump`: the standby may wait for the agent's snapshot
/// command (its timeout, default 10m, plus the thaw budget plus a minute).
const MARKER_ANSWER_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Lines of the snapshot command's output shown in text.
const EXEC_OUTPUT_LINES: usize = 10;

#[derive(Debug, Args)]
#[command(about = "Record markers in the agent's change history", long_about = None)]
pub struct MarkerArgs {
    #[command(subcommand)]
    pub command: MarkerCommand,
}

#[derive(Debug, Subcommand)]
pub enum MarkerCommand {
    Dump(DumpMarkerArgs),
}

#[derive(Debug, Args)]
#[command(
    about = "Record the point of a third-party dump in the agent's change history",
    long_about = "Record the dump point of a third-party dump (POST /api/v1/pairs/PAIR/markers/dump), \
        while the pair is suspended ('drpair suspend', 'drpair standby skip-to-resync-marker'). \
        The dump must hold every change up to that point: everything changed after it is shipped \
        once the dump is loaded.\n\n\
        --at says where the point is: 'now' (the default: the agent cuts an epoch now, so take \
        the dump first), an epoch the agent cut while suspended, or a time (RFC 3339 in UTC or \
        @UNIX_SECONDS: the newest epoch the agent cut at or before it).\n\n\
        Or let drpair take the dump: with --exec the agent cuts the point itself and right after \
        runs your snapshot command (sh -c CMD on the protected server; only when the agent's \
        config allows it: marker_exec = true), so --exec excludes --at. With --freeze the agent \
        freezes those filesystems (FIFREEZE) around the cut and the command, making the dump \
        app-consistent; writers on them block meanwhile, for at most --thaw-budget (100ms..10m, \
        default 30s). --exec-timeout (1s..24h, default 10m) kills a command that takes longer. \
        The command waits for the agent's answer, up to the command's timeout plus the budget \
        plus a minute.\n\n\
        Prints the recorded marker: its epoch, the time of its cut, how it was given, its \
        consistency, the freeze and the snapshot command's exit code and the end of its output; \
        then the next step: 'drpair resume PAIR --resync'.\n\n\
        With --output json: the DumpMarkerResponse ({\"message\", \"marker\", \"status\"}) as the API \
        returns it.",
    after_help = "Examples:\n  drpair marker dump web-01\n  drpair marker dump web-01 --at 2026-11-22T10:30:00Z\n  \
        drpair marker dump web-01 --at 1742\n  \
        drpair marker dump web-01 --freeze /var/lib/postgresql --exec 'lvcreate -s -n web01-dump -L 20G vg0/web01' \
        --thaw-budget 10s --exec-timeout 5m"
)]
pub struct DumpMarkerArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// The dump point: now (default), an EPOCH, or a TIME (RFC 3339 UTC or @UNIX_SECONDS)
    #[arg(long, value_name = "now|EPOCH|TIME", value_parser = dump_point, conflicts_with = "exec")]
    pub at: Option<String>,
    /// With --exec: freeze this filesystem (a mount point on the protected server); repeatable
    #[arg(long = "freeze", value_name = "MOUNTPOINT", value_parser = mount_point, requires = "exec")]
    pub freeze: Vec<String>,
    /// Snapshot command the agent runs (sh -c) right after cutting the dump point
    #[arg(long, value_name = "CMD", value_parser = command_line)]
    pub exec: Option<String>,
    /// With --freeze: longest time the filesystems stay frozen (e.g. 10s; 100ms..10m)
    #[arg(long, value_name = "DURATION", value_parser = thaw_budget, requires = "freeze")]
    pub thaw_budget: Option<Duration>,
    /// With --exec: kill the snapshot command after this long (e.g. 5m; 1s..24h)
    #[arg(long, value_name = "DURATION", value_parser = exec_timeout, requires = "exec")]
    pub exec_timeout: Option<Duration>,
}

impl DumpMarkerArgs {
    /// The body sent: durations in whole milliseconds / seconds, rounded up.
    pub fn request(&self) -> DumpMarkerRequest {
        DumpMarkerRequest {
            at: self.at.clone(),
            freeze: self.freeze.clone(),
            exec: self.exec.clone(),
            thaw_budget_ms: self.thaw_budget.map(ceil_ms),
            exec_timeout_seconds: self.exec_timeout.map(ceil_secs),
        }
    }

    /// How long to wait for the answer: a little longer than the standby waits for the agent,
    /// so its own 504 is what is reported.
    fn answer_timeout(&self) -> Duration {
        let exec = self.exec_timeout.unwrap_or(Duration::from_secs(600));
        let budget = self.thaw_budget.unwrap_or(Duration::from_secs(30));
        (exec + budget + Duration::from_secs(60) + ANSWER_TIMEOUT).max(MARKER_ANSWER_TIMEOUT)
    }
}

/// `--at`: `now`, an epoch number, or a time [`drpair_types::parse_time_ms`] accepts; kept as
/// given.
fn dump_point(text: &str) -> Result<String, String> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("now") || (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit())) {
        return Ok(t.to_string());
    }
    drpair_types::parse_time_ms(t)
        .map(|_| t.to_string())
        .map_err(|e| format!("not 'now', an epoch number or a time: {e}"))
}

/// `--exec`: a command line that is not blank.
fn command_line(s: &str) -> Result<String, String> {
    if s.trim().is_empty() { Err("the snapshot command is empty".into()) } else { Ok(s.to_string()) }
}

/// `--thaw-budget`: 100 ms to 10 minutes (the API's `thaw_budget_ms`, 100..=600000).
fn thaw_budget(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if (100..=600_000).contains(&ceil_ms(d)) { Ok(d) } else { Err(format!("'{s}' is outside 100ms..10m")) }
}

/// `--exec-timeout`: 1 second to 24 hours (the API's `exec_timeout_seconds`, 1..=86400).
fn exec_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if (1..=86_400).contains(&ceil_secs(d)) { Ok(d) } else { Err(format!("'{s}' is outside 1s..24h")) }
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `drpair marker …`.
pub fn run_marker(client: &Client, output: OutputFormat, args: &MarkerArgs) -> Result<(), CliError> {
    match &args.command {
        MarkerCommand::Dump(a) => dump_marker(client, output, a),
    }
}

/// `drpair marker dump PAIR …`.
fn dump_marker(client: &Client, output: OutputFormat, args: &DumpMarkerArgs) -> Result<(), CliError> {
    let pair = &args.pair;
    let request = args.request();
    let what = if request.exec.is_some() {
        format!("waiting for the agent of pair {pair} to cut the dump point and run the snapshot command")
    } else {
        format!("waiting for the agent of pair {pair} to record the dump point")
    };
    let (_status, raw, response) = poll::waiting(output, what, || {
        client.post_json::<_, DumpMarkerResponse>(
            &format!("/api/v1/pairs/{pair}/markers/dump"),
            &request,
            args.answer_timeout(),
        )
    })?;
    output::answer(output, &raw, || render_marker_response(&response));
    if let Some(warning) = exec_warning(&response.marker) {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// Why the snapshot command's outcome deserves a second look, if it does: it failed, was
/// killed or could not start, yet the standby recorded the marker.
fn exec_warning(m: &DumpMarker) -> Option<String> {
    let e = m.exec.as_ref()?;
    match e.exit_code {
        Some(0) => None,
        Some(code) => {
            Some(format!("the snapshot command exited {code}: make sure the dump was taken before loading it"))
        }
        None => Some("the snapshot command was killed or did not start: make sure the dump was taken".into()),
    }
}

/// The text answer of `marker dump`.
pub fn render_marker_response(r: &DumpMarkerResponse) -> String {
    let mut b = Block::default();
    render_marker(&mut b, &r.marker, true);
    b.line("State", format!("{} ({})", r.status.state_label, r.status.state_explanation));
    if let Some(next) = next_step(&r.status) {
        b.line("Next step", next);
    }
    format!("{}\n{}", r.message, b.render())
}

/// The lines of a dump marker: where it is, how consistent, the freeze and the snapshot
/// command (with the end of its output when `output_tail`).
pub fn render_marker(b: &mut Block, m: &DumpMarker, output_tail: bool) {
    b.line("Marker", format!("epoch {}, cut at {} (given as: {})", m.epoch, m.time, m.at));
    b.line("Consistency", output::wire_name(&m.consistency));
    if let Some(q) = &m.quiesce {
        let frozen = if q.freeze.is_empty() { "no filesystem".to_string() } else { q.freeze.join(", ") };
        let line = match (&q.failure, q.achieved) {
            (None, true) => format!("froze {frozen} for {} ms (budget {} ms)", q.frozen_ms, q.budget_ms),
            (Some(why), _) => format!("{frozen}: not app-consistent: {why}"),
            (None, false) => format!("{frozen}: not app-consistent (no reason recorded)"),
        };
        b.line("Freeze", line);
    }
    if let Some(e) = &m.exec {
        let took = format_millis(e.millis);
        let outcome = match e.exit_code {
            Some(code) => format!("exited {code} after {took}"),
            None => format!("killed or did not start (after {took})"),
        };
        b.line("Snapshot command", format!("{} {outcome}", e.command));
        let tail = tail_lines(&e.output, EXEC_OUTPUT_LINES);
        if output_tail && !tail.is_empty() {
            b.line("Command output", tail);
        }
    }
}

/// `850 ms`, `1.2s`, `3m 12s`.
fn format_millis(ms: u64) -> String {
    match ms {
        0..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1}s", Duration::from_millis(ms).as_secs_f64()),
        _ => output::format_duration(ms / 1000),
    }
}

/// The last `n` non-blank lines of `text`.
fn tail_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests;
