//! Seeding a pair from a third-party dump (a SAN/LVM/cloud snapshot, a disk image on media),
//! so that only the changes made after the dump point cross the link:
//!
//! 1. `drpair suspend PAIR`: the agent ships nothing; its checkpoint stays put.
//! 2. `drpair standby skip-to-resync-marker PAIR`: the standby purges its queue for the pair.
//! 3. (the operator takes the dump) `drpair marker dump PAIR`: the dump point is recorded in
//!    the agent's change history (or drpair freezes, cuts and runs the snapshot command).
//! 4. `drpair resume PAIR --resync` (in `lifecycle.rs`): resync and dump markers; apply is
//!    suspended.
//! 5. `drpair standby load-dump PAIR --disk N --image FILE`, per disk, with a progress bar.
//! 6. `drpair standby resume-apply PAIR`: the dump becomes a recovery point and the agent ships
//!    what changed after it.
//!
//! Invariants: values are checked here (exit code 2) as far as the API's documented rules go
//! ([`DumpMarkerRequest`]); whether the pair's state allows a step is the standby's call (409 →
//! exit code 4, its message naming the next step). Every answer in text form ends with the
//! next step the standby reports (`status.dump.next_step`).

use crate::client::{ANSWER_TIMEOUT, CliError, Client, exit};
use crate::lifecycle;
use crate::output::{self, Block, OutputFormat, format_size as size};
use clap::{Args, Subcommand, ValueEnum};
use drpair_types::{
    ActionResponse, DumpDiskLoad, DumpLoadState, DumpMarker, DumpMarkerRequest, DumpMarkerResponse, DumpStatus,
    DumpStep, LoadDumpRequest, PairId, PairStatus,
};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::time::Duration;

/// Answer timeout of the workflow's actions: `suspend` and `resume-apply` disconnect the
/// agent, `resume --resync` waits up to a minute for the agent's markers.
pub const DUMP_ACTION_TIMEOUT: Duration = Duration::from_secs(180);
/// Shortest answer timeout of `marker dump`: the standby may wait for the agent's snapshot
/// command (its timeout, default 10m, plus the thaw budget plus a minute).
const MARKER_ANSWER_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Time between two polls of `load-dump`.
const LOAD_POLL_EVERY: Duration = Duration::from_millis(500);
/// Lines of the snapshot command's output shown in text.
const EXEC_OUTPUT_LINES: usize = 10;

#[derive(Debug, Args)]
#[command(
    about = "Suspend a pair to seed the standby from a third-party dump",
    long_about = "Suspend a DR pair for a third-party dump (POST /api/v1/pairs/PAIR/suspend): the \
        first step of seeding or re-seeding the standby from a snapshot taken by another tool (a \
        SAN, LVM or cloud snapshot, a disk image on media), so that only the changes made after \
        the dump point cross the link. The agent ships nothing and its recovery checkpoint stays \
        where it is (an epoch in flight is abandoned, not committed); it keeps tracking changes. \
        The state becomes Suspended.\n\n\
        The steps, each printed as 'Next step' by the previous one and by 'drpair status':\n  \
        1. drpair suspend PAIR\n  \
        2. drpair standby skip-to-resync-marker PAIR\n  \
        3. take the dump, then: drpair marker dump PAIR (or let drpair run the snapshot command: \
        --freeze MOUNTPOINT --exec CMD)\n  \
        4. drpair resume PAIR --resync\n  \
        5. drpair standby load-dump PAIR --disk N --image FILE (every disk)\n  \
        6. drpair standby resume-apply PAIR\n\n\
        A plain 'drpair resume PAIR' abandons the workflow and resumes from the recovery \
        checkpoint.\n\n\
        With --output json: the ActionResponse as the API returns it.",
    after_help = "Examples:\n  drpair suspend web-01\n  drpair suspend web-01 && drpair standby skip-to-resync-marker web-01"
)]
pub struct SuspendArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
}

#[derive(Debug, Args)]
#[command(
    about = "Steps of a third-party dump done by the standby: purge, load the dump, resume apply",
    long_about = "Steps of the third-party dump workflow that the standby carries out (see \
        'drpair suspend --help' for the whole workflow)."
)]
pub struct StandbyArgs {
    #[command(subcommand)]
    pub command: StandbyCommand,
}

#[derive(Debug, Subcommand)]
pub enum StandbyCommand {
    /// Purge the standby's queue for a suspended pair and wait for the agent's resync marker
    #[command(
        long_about = "Purge what the standby has queued for a suspended pair and wait for the agent's \
            resync marker (POST /api/v1/pairs/PAIR/skip-to-resync-marker): chunk versions of \
            epochs that were not committed are discarded, since the dump will replace them. The \
            state becomes 'Waiting for resync marker'. Take the dump now, then record its point \
            with 'drpair marker dump PAIR'.\n\n\
            With --output json: the ActionResponse as the API returns it.",
        after_help = "Examples:\n  drpair standby skip-to-resync-marker web-01"
    )]
    SkipToResyncMarker(PairArg),
    LoadDump(LoadDumpArgs),
    /// Resume apply once every disk's dump is loaded: the dump becomes a recovery point
    #[command(
        long_about = "Resume apply after the dump of every disk is loaded (POST \
            /api/v1/pairs/PAIR/resume-apply): the dump becomes a recovery point (kind \
            dump-marker) and the agent ships every chunk changed after the dump point; then every \
            chunk is compared with the source before the pair is declared replicating. 'drpair \
            status PAIR' shows the verification (chunks compared, shipped and mismatched).\n\n\
            With --output json: the ActionResponse as the API returns it.",
        after_help = "Examples:\n  drpair standby resume-apply web-01\n  \
            drpair standby resume-apply web-01 && drpair status web-01 --wait-synced"
    )]
    ResumeApply(PairArg),
}

/// A command whose only argument is the pair.
#[derive(Debug, Args)]
pub struct PairArg {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
}

#[derive(Debug, Args)]
#[command(
    about = "Load the dump image of one disk into the standby",
    long_about = "Load the dump image of one disk of a pair into the standby (POST \
        /api/v1/pairs/PAIR/dump/load), once apply is suspended by the dump marker ('drpair \
        resume PAIR --resync'). The image is a raw image, a qcow2 image or a block device; its \
        format is detected from its content unless --format is given. It must hold the disk as \
        of the dump point (or later), and its size must match the disk.\n\n\
        The image is read by the standby, not by this command: FILE is a path on the standby. \
        Run the command on the standby, or give a path valid there; a relative FILE is made \
        absolute against the current directory before it is sent.\n\n\
        The load runs in the background on the standby. The command then polls the pair's \
        status every half second with a progress bar on stderr (a line every 10% when stderr is \
        not a terminal) until the disk is loaded, and prints what was loaded: chunks read, \
        chunks that differ from the newest point before the dump, zero chunks, chunks the \
        standby already held (dedup) and bytes stored. A failed load ends the command with exit \
        code 1 and the standby's error; load the disk again. Ctrl-C stops only the waiting: the \
        load goes on (follow it with 'drpair status PAIR'). --no-wait returns at once.\n\n\
        One disk is loaded at a time. Once every disk is loaded: 'drpair standby resume-apply \
        PAIR'.\n\n\
        With --output json: the ActionResponse as the API returns it (the load's progress and \
        result are in 'drpair status PAIR --output json' at .dump.disks[N]).",
    after_help = "Examples:\n  drpair standby load-dump web-01 --disk 0 --image /srv/dumps/web-01-sda.img\n  \
        drpair standby load-dump web-01 --disk 1 --image /srv/dumps/web-01-sdb.qcow2 --format qcow2\n  \
        drpair standby load-dump web-01 --disk 0 --image /dev/vg0/web01-snap --no-wait"
)]
pub struct LoadDumpArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// The disk of the pair (its index, from 0, as listed by 'drpair status')
    #[arg(long, value_name = "N")]
    pub disk: u32,
    /// The dump image: a path ON THE STANDBY (raw, qcow2 or a block device)
    #[arg(long, value_name = "FILE")]
    pub image: PathBuf,
    /// The image's format (default: detected from its content)
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub format: Option<ImageFormatArg>,
    /// Return once the load has started instead of waiting until it completes
    #[arg(long)]
    pub no_wait: bool,
}

/// `--format` of `load-dump`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ImageFormatArg {
    /// A raw image or a block device
    Raw,
    /// A qcow2 image
    Qcow2,
}

impl ImageFormatArg {
    fn wire(self) -> &'static str {
        match self {
            ImageFormatArg::Raw => "raw",
            ImageFormatArg::Qcow2 => "qcow2",
        }
    }
}

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

/// `--freeze`: an absolute path (the agent checks that it is a mount point).
fn mount_point(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not an absolute mount point (like /var/lib/postgresql)"))
    }
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

/// Whole milliseconds, rounded up.
fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// Whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// `drpair suspend PAIR`.
pub fn suspend(client: &Client, output: OutputFormat, args: &SuspendArgs) -> Result<(), CliError> {
    dump_action(client, output, &args.pair, "suspend")
}

/// `drpair standby …`.
pub fn run_standby(client: &Client, output: OutputFormat, args: &StandbyArgs) -> Result<(), CliError> {
    match &args.command {
        StandbyCommand::SkipToResyncMarker(a) => dump_action(client, output, &a.pair, "skip-to-resync-marker"),
        StandbyCommand::LoadDump(a) => load_dump(client, output, a, LOAD_POLL_EVERY),
        StandbyCommand::ResumeApply(a) => dump_action(client, output, &a.pair, "resume-apply"),
    }
}

/// `drpair marker …`.
pub fn run_marker(client: &Client, output: OutputFormat, args: &MarkerArgs) -> Result<(), CliError> {
    match &args.command {
        MarkerCommand::Dump(a) => dump_marker(client, output, a),
    }
}

/// A step without parameters: `POST` with body `{}`; prints the answer and the next step.
fn dump_action(client: &Client, output: OutputFormat, pair: &PairId, action: &str) -> Result<(), CliError> {
    let (raw, response) = lifecycle::post_action(client, pair, action, &serde_json::json!({}), DUMP_ACTION_TIMEOUT)?;
    print_dump_action(output, &raw, &response);
    Ok(())
}

/// Prints the answer of a step of the workflow: as the API returns it, or the standby's
/// sentence, the new state and the next step.
pub fn print_dump_action(output: OutputFormat, raw: &serde_json::Value, response: &ActionResponse) {
    match output {
        OutputFormat::Json => output::emit(&output::to_json(raw)),
        OutputFormat::Text => output::emit(&render_dump_action(response)),
    }
}

/// The text answer of a step: the standby's sentence, the new state and the next step.
pub fn render_dump_action(r: &ActionResponse) -> String {
    lifecycle::render_action_with(r, next_step(&r.status))
}

/// The next step the standby reports while a dump workflow is under way (not once it is
/// done or abandoned, e.g. by `resume --resync --reinit`: its "start over" would mislead).
fn next_step(s: &PairStatus) -> Option<&str> {
    let d = s.dump.as_ref()?;
    let under_way = s.state.in_dump_workflow() || d.step == DumpStep::Verifying;
    Some(d.next_step.as_str()).filter(|n| under_way && !n.is_empty())
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
    let spinner = ProgressBar::with_draw_target(None, output::progress_target(output))
        .with_style(
            ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        )
        .with_message(what);
    spinner.enable_steady_tick(Duration::from_millis(120));
    let result = client.post_json::<_, DumpMarkerResponse>(
        &format!("/api/v1/pairs/{pair}/markers/dump"),
        &request,
        args.answer_timeout(),
    );
    spinner.finish_and_clear();
    let (_status, raw, response) = result?;
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

/// `drpair standby load-dump PAIR --disk N --image FILE …`; polls every `every`.
fn load_dump(client: &Client, output: OutputFormat, args: &LoadDumpArgs, every: Duration) -> Result<(), CliError> {
    let pair = &args.pair;
    let request = load_request(args)?;
    let (raw, response) = lifecycle::post_action(client, pair, "dump/load", &request, ANSWER_TIMEOUT)?;
    // No next step yet: while a disk loads, the standby's next step is still to load it.
    output::answer(output, &raw, || lifecycle::render_action(&response));
    if args.no_wait {
        return Ok(());
    }
    let (load, last) = wait_loaded(client, output, pair, args.disk, &response.status, every)?;
    if output == OutputFormat::Text {
        let mut text = render_loaded(pair, &load);
        if let Some(next) = next_step(&last) {
            let mut b = Block::default();
            b.line("Next step", next);
            text.push('\n');
            text.push_str(&b.render());
        }
        output::emit(&text);
    }
    Ok(())
}

/// The body of `load-dump`: the image path made absolute (the standby reads it).
fn load_request(args: &LoadDumpArgs) -> Result<LoadDumpRequest, CliError> {
    let absolute = std::path::absolute(&args.image)
        .map_err(|e| CliError::io(format!("cannot make --image {} absolute", args.image.display()), e))?;
    let image = absolute.to_str().ok_or_else(|| {
        CliError::Failed(format!("--image {}: the path is not UTF-8, which the API cannot carry", absolute.display()))
    })?;
    Ok(LoadDumpRequest { disk: args.disk, image: image.to_string(), format: args.format.map(|f| f.wire().into()) })
}

/// What a poll of the load found.
enum LoadSeen<'a> {
    Loading(&'a DumpDiskLoad),
    Loaded(&'a DumpDiskLoad),
    /// The load failed or is not running, or no dump workflow is left: the message says why.
    Over(String),
}

/// Where the load of `disk` stands in `s`.
fn load_seen<'a>(pair: &PairId, disk: u32, s: &'a PairStatus) -> LoadSeen<'a> {
    let Some(d) = &s.dump else {
        return LoadSeen::Over(format!(
            "pair {pair} has no dump workflow any more (state {}); see 'drpair status {pair}'",
            s.state_label
        ));
    };
    if d.step == DumpStep::Abandoned {
        return LoadSeen::Over(format!("the dump workflow of pair {pair} was abandoned; see 'drpair status {pair}'"));
    }
    let Some(load) = d.disks.iter().find(|l| l.disk == disk) else {
        return LoadSeen::Over(format!("pair {pair} shows no dump load of disk {disk}; see 'drpair status {pair}'"));
    };
    match load.state {
        DumpLoadState::Loading => LoadSeen::Loading(load),
        DumpLoadState::Loaded => LoadSeen::Loaded(load),
        DumpLoadState::Failed => LoadSeen::Over(format!(
            "loading the dump of disk {disk} of pair {pair} failed: {}; fix the image and load it again \
             (drpair standby load-dump {pair} --disk {disk} --image FILE)",
            load.error.as_deref().unwrap_or("no reason recorded")
        )),
        DumpLoadState::Pending => LoadSeen::Over(format!(
            "the load of disk {disk} of pair {pair} is not running (pending); next step: {}",
            d.next_step
        )),
    }
}

/// Polls the pair's status every `every` until the load of `disk` is over, starting from
/// `first` (the status in the answer to the POST). Returns the disk's load and the last status.
fn wait_loaded(
    client: &Client,
    output: OutputFormat,
    pair: &PairId,
    disk: u32,
    first: &PairStatus,
    every: Duration,
) -> Result<(DumpDiskLoad, PairStatus), CliError> {
    let path = format!("/api/v1/pairs/{pair}");
    let bar = ProgressBar::with_draw_target(Some(1000), output::progress_target(output)).with_style(
        ProgressStyle::with_template("{spinner} {prefix} [{bar:30}] {msg} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{pair} disk {disk}"));
    if !bar.is_hidden() {
        bar.enable_steady_tick(Duration::from_millis(200));
    }
    let mut printed: Option<u64> = None; // the last tenth reported on a line
    let mut status = first.clone();
    loop {
        match load_seen(pair, disk, &status) {
            LoadSeen::Loaded(load) => {
                let load = load.clone();
                bar.finish_and_clear();
                if bar.is_hidden() && output == OutputFormat::Text {
                    eprintln!("{pair} disk {disk}: loaded 100%");
                }
                return Ok((load, status));
            }
            LoadSeen::Over(why) => {
                bar.abandon();
                return Err(CliError::Failed(why));
            }
            LoadSeen::Loading(load) => {
                let percent = load.percent.clamp(0.0, 100.0);
                bar.set_position(output::round_u64(percent * 10.0));
                bar.set_message(format!("loading {}", output::format_percent(percent)));
                let tenth = output::round_u64(percent.floor()) / 10;
                if bar.is_hidden() && printed.is_none_or(|p| tenth > p) {
                    eprintln!("{pair} disk {disk}: loading {}", output::format_percent(percent));
                    printed = Some(tenth);
                }
            }
        }
        std::thread::sleep(every);
        status = loop {
            match client.get_json::<PairStatus>(&path) {
                Ok((_, s)) => break s,
                // The standby restarting is not the end of the wait.
                Err(e) if e.exit_code() == exit::UNREACHABLE => {
                    bar.set_message(format!("standby unreachable (retrying): {e}"));
                    std::thread::sleep(every.max(Duration::from_secs(1)));
                }
                Err(e) => {
                    bar.abandon();
                    return Err(e);
                }
            }
        };
    }
}

/// The summary of a completed load.
pub fn render_loaded(pair: &PairId, l: &DumpDiskLoad) -> String {
    let from = match (&l.image, &l.format) {
        (Some(image), Some(format)) => format!(" from {image} ({format})"),
        (Some(image), None) => format!(" from {image}"),
        _ => String::new(),
    };
    format!("disk {} of pair {pair} loaded{from}: {}", l.disk, load_counts(l))
}

/// `N chunks read, …, X stored`.
pub fn load_counts(l: &DumpDiskLoad) -> String {
    format!(
        "{} chunks read, {} differ from the newest point before the dump, {} zero, {} already held (dedup), {} stored",
        l.chunks,
        l.changed_chunks,
        l.zero_chunks,
        l.dedup_chunks,
        size(l.stored_bytes)
    )
}

/// The events of a dump workflow shown in `status`: the last `n`.
pub fn last_events(d: &DumpStatus, n: usize) -> Vec<String> {
    d.events[d.events.len().saturating_sub(n)..].iter().map(|e| format!("{}  {}", e.time, e.message)).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};
    use crate::lifecycle::tests::{body, points_reply};
    use crate::lifecycle::{ResumeArgs, resume};
    use crate::status::tests::status;
    use drpair_types::{Consistency, DumpEvent, ExecOutcome, PairState, QuiesceOutcome};

    fn pair() -> PairId {
        PairId::new("web-01").unwrap()
    }

    pub(crate) fn disk_load(disk: u32, state: DumpLoadState, percent: f64) -> DumpDiskLoad {
        let loaded = state == DumpLoadState::Loaded;
        DumpDiskLoad {
            disk,
            state,
            image: (state != DumpLoadState::Pending).then(|| format!("/srv/dumps/d{disk}.img")),
            format: (state != DumpLoadState::Pending).then(|| "raw".into()),
            percent,
            chunks: if loaded { 163_840 } else { 0 },
            changed_chunks: if loaded { 1200 } else { 0 },
            zero_chunks: if loaded { 90_000 } else { 0 },
            dedup_chunks: if loaded { 5000 } else { 0 },
            stored_bytes: if loaded { 3 << 30 } else { 0 },
            loaded_at: loaded.then(|| "2026-05-01T11:00:00Z".into()),
            error: (state == DumpLoadState::Failed)
                .then(|| "short read at byte 4096: image smaller than the disk".into()),
        }
    }

    pub(crate) fn marker() -> DumpMarker {
        DumpMarker {
            epoch: 42,
            time: "2026-05-01T10:30:00Z".into(),
            time_unix_ms: 1_777_631_400_000,
            at: "now".into(),
            consistency: Consistency::CrashConsistent,
            quiesce: None,
            exec: None,
        }
    }

    pub(crate) fn dump_status(step: DumpStep, disks: Vec<DumpDiskLoad>, next_step: &str) -> DumpStatus {
        DumpStatus {
            step,
            step_label: "Apply suspended: load the dump".into(),
            next_step: next_step.into(),
            suspended_at: "2026-05-01T10:00:00Z".into(),
            checkpoint_epoch: 41,
            purged_versions: 12,
            marker: Some(marker()),
            resync_marker_at: Some("2026-05-01T10:40:00Z".into()),
            dump_marker_at: Some("2026-05-01T10:40:01Z".into()),
            disks,
            point: None,
            verification: None,
            events: (1..=7)
                .map(|i| DumpEvent { time: format!("2026-05-01T10:0{i}:00Z"), message: format!("event {i}") })
                .collect(),
        }
    }

    /// A pair in ApplySuspended whose disk 0 is in `state`.
    fn status_with_load(state: DumpLoadState, percent: f64) -> PairStatus {
        let mut s = status(PairState::ApplySuspended, 0.0);
        let next = match state {
            DumpLoadState::Loaded => "drpair standby resume-apply web-01",
            _ => "drpair standby load-dump web-01 --disk 0 --image FILE",
        };
        s.dump = Some(dump_status(DumpStep::ApplySuspended, vec![disk_load(0, state, percent)], next));
        s
    }

    fn status_reply(s: &PairStatus) -> Reply {
        Reply::json(200, &serde_json::to_string(s).unwrap())
    }

    fn accepted(s: PairStatus) -> Reply {
        let r = ActionResponse {
            message: "pair 'web-01': loading the dump of disk 0 from /srv/dumps/d0.img (raw)".into(),
            points_deleted: 0,
            status: s,
        };
        Reply::json(202, &serde_json::to_string(&r).unwrap())
    }

    fn load_args(image: &str, no_wait: bool) -> LoadDumpArgs {
        LoadDumpArgs { pair: pair(), disk: 0, image: PathBuf::from(image), format: Some(ImageFormatArg::Raw), no_wait }
    }

    #[test]
    fn load_dump_polls_until_loaded() {
        let server = FakeServer::start(vec![
            accepted(status_with_load(DumpLoadState::Loading, 0.0)),
            status_reply(&status_with_load(DumpLoadState::Loading, 35.5)),
            status_reply(&status_with_load(DumpLoadState::Loading, 80.0)),
            status_reply(&status_with_load(DumpLoadState::Loaded, 100.0)),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        let args = load_args("/srv/dumps/d0.img", false);
        load_dump(&client, OutputFormat::Text, &args, Duration::ZERO).unwrap();
        let reqs = server.finish();
        assert_eq!(reqs.len(), 4);
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("POST", "/api/v1/pairs/web-01/dump/load"));
        assert_eq!(body(&reqs[0]), serde_json::json!({"disk": 0, "image": "/srv/dumps/d0.img", "format": "raw"}));
        assert!(reqs[1..].iter().all(|r| r.method == "GET" && r.path == "/api/v1/pairs/web-01"), "{reqs:?}");
    }

    #[test]
    fn load_dump_that_fails_exits_1_with_the_error() {
        for output in [OutputFormat::Text, OutputFormat::Json] {
            let server = FakeServer::start(vec![
                accepted(status_with_load(DumpLoadState::Loading, 0.0)),
                status_reply(&status_with_load(DumpLoadState::Loading, 20.0)),
                status_reply(&status_with_load(DumpLoadState::Failed, 0.0)),
            ]);
            let client = Client::new(&server.url, None).unwrap();
            let err = load_dump(&client, output, &load_args("/srv/dumps/d0.img", false), Duration::ZERO).unwrap_err();
            assert_eq!(err.exit_code(), exit::FAILURE);
            let msg = err.to_string();
            assert!(
                msg.starts_with("loading the dump of disk 0 of pair web-01 failed: short read at byte 4096"),
                "{msg}"
            );
            assert!(msg.contains("drpair standby load-dump web-01 --disk 0 --image FILE"), "{msg}");
            assert_eq!(server.finish().len(), 3);
        }
    }

    #[test]
    fn load_dump_no_wait_and_refusals() {
        let server = FakeServer::start(vec![accepted(status_with_load(DumpLoadState::Loading, 0.0))]);
        let client = Client::new(&server.url, None).unwrap();
        load_dump(&client, OutputFormat::Text, &load_args("/srv/dumps/d0.img", true), Duration::ZERO).unwrap();
        assert_eq!(server.finish().len(), 1, "no polling with --no-wait");

        let refusal = r#"{"code":"InvalidPairState","message":"pair 'web-01': not now; next step: drpair resume web-01 --resync"}"#;
        let server = FakeServer::start(vec![Reply::json(409, refusal)]);
        let client = Client::new(&server.url, None).unwrap();
        let err =
            load_dump(&client, OutputFormat::Text, &load_args("/srv/dumps/d0.img", false), Duration::ZERO).unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_STATE);
        assert!(err.to_string().contains("next step: drpair resume web-01 --resync"));
        assert_eq!(server.finish().len(), 1);
    }

    #[test]
    fn load_dump_ends_when_the_load_is_gone() {
        let mut abandoned = status(PairState::Replicating, 100.0);
        abandoned.dump = Some(dump_status(DumpStep::Abandoned, vec![disk_load(0, DumpLoadState::Loading, 5.0)], ""));
        let mut pending = status_with_load(DumpLoadState::Pending, 0.0);
        pending.dump.as_mut().unwrap().next_step = "drpair standby load-dump web-01 --disk 0 --image FILE".into();
        for (s, want) in [
            (status(PairState::Replicating, 100.0), "pair web-01 has no dump workflow any more"),
            (abandoned, "the dump workflow of pair web-01 was abandoned"),
            (pending, "is not running (pending); next step: drpair standby load-dump web-01"),
        ] {
            match load_seen(&pair(), 0, &s) {
                LoadSeen::Over(why) => assert!(why.contains(want), "{why}"),
                _ => panic!("{want}"),
            }
        }
        let s = status_with_load(DumpLoadState::Loading, 5.0);
        match load_seen(&pair(), 3, &s) {
            LoadSeen::Over(why) => assert!(why.contains("shows no dump load of disk 3"), "{why}"),
            _ => panic!(),
        }
    }

    #[test]
    fn image_path_is_made_absolute() {
        let mut args = load_args("dumps/d0.qcow2", false);
        args.format = Some(ImageFormatArg::Qcow2);
        let request = load_request(&args).unwrap();
        let want = std::env::current_dir().unwrap().join("dumps/d0.qcow2");
        assert_eq!(request.image, want.to_str().unwrap());
        assert_eq!(request.format.as_deref(), Some("qcow2"));
        args.format = None;
        args.image = PathBuf::from("/dev/vg0/snap");
        let request = load_request(&args).unwrap();
        assert_eq!((request.image.as_str(), request.format), ("/dev/vg0/snap", None));
    }

    #[test]
    fn loaded_summary() {
        let text = render_loaded(&pair(), &disk_load(0, DumpLoadState::Loaded, 100.0));
        assert_eq!(
            text,
            "disk 0 of pair web-01 loaded from /srv/dumps/d0.img (raw): 163840 chunks read, 1200 differ from the \
             newest point before the dump, 90000 zero, 5000 already held (dedup), 3.0 GiB stored"
        );
    }

    fn action_reply(state: PairState, next: &str) -> Reply {
        let mut s = status(state, 0.0);
        s.dump = Some(dump_status(DumpStep::Suspended, vec![], next));
        let r = ActionResponse { message: "done".into(), points_deleted: 0, status: s };
        Reply::json(200, &serde_json::to_string(&r).unwrap())
    }

    #[test]
    fn steps_without_parameters_post_an_empty_object() {
        type Step = fn(&Client, OutputFormat) -> Result<(), CliError>;
        let steps: [(Step, &str); 3] = [
            (|c, o| suspend(c, o, &SuspendArgs { pair: pair() }), "suspend"),
            (
                |c, o| {
                    run_standby(
                        c,
                        o,
                        &StandbyArgs { command: StandbyCommand::SkipToResyncMarker(PairArg { pair: pair() }) },
                    )
                },
                "skip-to-resync-marker",
            ),
            (
                |c, o| {
                    run_standby(c, o, &StandbyArgs { command: StandbyCommand::ResumeApply(PairArg { pair: pair() }) })
                },
                "resume-apply",
            ),
        ];
        for (step, path) in steps {
            let server = FakeServer::start(vec![action_reply(
                PairState::Suspended,
                "drpair standby skip-to-resync-marker web-01",
            )]);
            let client = Client::new(&server.url, None).unwrap();
            step(&client, OutputFormat::Text).unwrap();
            let reqs = server.finish();
            assert_eq!(
                (reqs[0].method.as_str(), reqs[0].path.as_str()),
                ("POST", format!("/api/v1/pairs/web-01/{path}").as_str())
            );
            assert_eq!(body(&reqs[0]), serde_json::json!({}));
        }
    }

    #[test]
    fn step_answers_name_the_next_step() {
        let mut s = status(PairState::Suspended, 0.0);
        s.state_label = "Suspended".into();
        s.state_explanation = "nothing is shipped".into();
        s.dump = Some(dump_status(DumpStep::Suspended, vec![], "drpair standby skip-to-resync-marker web-01"));
        let r = ActionResponse { message: "pair 'web-01' suspended".into(), points_deleted: 0, status: s };
        assert_eq!(
            render_dump_action(&r),
            "pair 'web-01' suspended\nState:      Suspended (nothing is shipped)\n\
             Next step:  drpair standby skip-to-resync-marker web-01\n"
        );
        let mut reinit = status(PairState::InitialSync, 0.0);
        reinit.dump = Some(dump_status(DumpStep::Abandoned, vec![], "drpair suspend web-01 to start over"));
        let reinit = ActionResponse { status: reinit, ..r.clone() };
        assert!(!render_dump_action(&reinit).contains("Next step"), "{}", render_dump_action(&reinit));
        let plain = ActionResponse { status: status(PairState::Paused, 0.0), ..r };
        assert!(!render_dump_action(&plain).contains("Next step"));
    }

    fn marker_args(exec: Option<&str>) -> DumpMarkerArgs {
        DumpMarkerArgs {
            pair: pair(),
            at: None,
            freeze: exec.map(|_| vec!["/var/lib/postgresql".to_string()]).unwrap_or_default(),
            exec: exec.map(String::from),
            thaw_budget: exec.map(|_| Duration::from_millis(1500)),
            exec_timeout: exec.map(|_| Duration::from_secs(300)),
        }
    }

    #[test]
    fn marker_request_and_answer_timeout() {
        let plain = marker_args(None);
        assert_eq!(plain.request(), DumpMarkerRequest::default());
        assert_eq!(plain.answer_timeout(), MARKER_ANSWER_TIMEOUT);
        let mut at = marker_args(None);
        at.at = Some("1742".into());
        assert_eq!(at.request().at.as_deref(), Some("1742"));
        let exec = marker_args(Some("lvcreate -s vg0/web01"));
        assert_eq!(
            exec.request(),
            DumpMarkerRequest {
                at: None,
                freeze: vec!["/var/lib/postgresql".into()],
                exec: Some("lvcreate -s vg0/web01".into()),
                thaw_budget_ms: Some(1500),
                exec_timeout_seconds: Some(300),
            }
        );
        let mut long = marker_args(Some("x"));
        long.exec_timeout = Some(Duration::from_secs(3600));
        assert!(long.answer_timeout() > Duration::from_secs(3660), "longer than the standby waits");
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
    }

    #[test]
    fn marker_dump_posts_and_prints_the_marker() {
        let mut m = marker();
        m.at = "exec".into();
        m.consistency = Consistency::AppConsistent;
        m.quiesce = Some(QuiesceOutcome {
            freeze: vec!["/var/lib/postgresql".into()],
            hooks: false,
            achieved: true,
            frozen_ms: 850,
            budget_ms: 1500,
            failure: None,
        });
        m.exec = Some(ExecOutcome {
            command: "lvcreate -s vg0/web01".into(),
            exit_code: Some(0),
            millis: 1234,
            output: (1..=12).map(|i| format!("line {i}\n")).collect(),
        });
        let mut s = status(PairState::AwaitingResyncMarker, 0.0);
        s.state_label = "Waiting for resync marker".into();
        s.state_explanation = "the standby waits for the agent's resync marker".into();
        s.dump = Some(dump_status(DumpStep::AwaitingResyncMarker, vec![], "drpair resume web-01 --resync"));
        let answer = DumpMarkerResponse {
            message: "pair 'web-01': dump marker recorded at epoch 42".into(),
            marker: m,
            status: s,
        };
        let text = render_marker_response(&answer);
        for want in [
            "Marker:            epoch 42, cut at 2026-05-01T10:30:00Z (given as: exec)",
            "Consistency:       app-consistent",
            "Freeze:            froze /var/lib/postgresql for 850 ms (budget 1500 ms)",
            "Snapshot command:  lvcreate -s vg0/web01 exited 0 after 1.2s",
            "Command output:    line 3",
            "                   line 12",
            "Next step:         drpair resume web-01 --resync",
        ] {
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        assert!(!text.contains("line 2\n"), "only the last lines:\n{text}");
        assert_eq!(exec_warning(&answer.marker), None);

        let server = FakeServer::start(vec![Reply::json(200, &serde_json::to_string(&answer).unwrap())]);
        let client = Client::new(&server.url, None).unwrap();
        run_marker(
            &client,
            OutputFormat::Text,
            &MarkerArgs { command: MarkerCommand::Dump(marker_args(Some("lvcreate -s vg0/web01"))) },
        )
        .unwrap();
        let req = &server.finish()[0];
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v1/pairs/web-01/markers/dump"));
        let sent: DumpMarkerRequest = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent.exec.as_deref(), Some("lvcreate -s vg0/web01"));
    }

    #[test]
    fn a_failed_snapshot_command_is_warned_about() {
        let mut m = marker();
        m.exec = Some(ExecOutcome { command: "snap".into(), exit_code: Some(3), millis: 20, output: String::new() });
        assert!(exec_warning(&m).unwrap().contains("exited 3"));
        m.exec.as_mut().unwrap().exit_code = None;
        assert!(exec_warning(&m).unwrap().contains("killed or did not start"));
        let mut b = Block::default();
        render_marker(&mut b, &m, true);
        assert!(b.render().contains("Snapshot command:  snap killed or did not start (after 20 ms)"), "{}", b.render());
    }

    #[test]
    fn marker_values() {
        for ok in ["now", "NOW", "1742", "2026-11-22T10:30:00Z", "@1763807400"] {
            assert!(dump_point(ok).is_ok(), "{ok}");
        }
        assert!(dump_point("yesterday").unwrap_err().contains("not 'now', an epoch number or a time"));
        assert!(thaw_budget("100ms").is_ok() && thaw_budget("10m").is_ok());
        assert!(thaw_budget("99ms").is_err() && thaw_budget("11m").is_err() && thaw_budget("soon").is_err());
        assert!(exec_timeout("1s").is_ok() && exec_timeout("24h").is_ok());
        assert!(exec_timeout("25h").is_err() && exec_timeout("0s").is_err());
        assert!(command_line("  ").is_err());
        assert_eq!(tail_lines("a\n\nb\nc\n", 2), "b\nc");
        assert_eq!(format_millis(999), "999 ms");
        assert_eq!(format_millis(192_000), "3m 12s");
    }

    fn resume_args(resync: bool, reinit: bool) -> ResumeArgs {
        ResumeArgs { pair: pair(), resync, reinit, force: reinit }
    }

    #[test]
    fn resume_bodies() {
        // Plain resume: the empty object, as before.
        let server = FakeServer::start(vec![action_reply(PairState::Replicating, "")]);
        let client = Client::new(&server.url, None).unwrap();
        resume(&client, OutputFormat::Text, &resume_args(false, false)).unwrap();
        assert_eq!(body(&server.finish()[0]), serde_json::json!({}));
        // --resync.
        let server = FakeServer::start(vec![action_reply(
            PairState::ApplySuspended,
            "drpair standby load-dump web-01 --disk 0 --image FILE",
        )]);
        let client = Client::new(&server.url, None).unwrap();
        resume(&client, OutputFormat::Text, &resume_args(true, false)).unwrap();
        let req = &server.finish()[0];
        assert_eq!(req.path, "/api/v1/pairs/web-01/resume");
        let sent: drpair_types::ResumeRequest = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent, drpair_types::ResumeRequest { resync: true, reinit: false, confirm: None });
        // --resync --reinit --force: the points are counted for the warning, the pair id confirms.
        let server = FakeServer::start(vec![points_reply(4), action_reply(PairState::InitialSync, "")]);
        let client = Client::new(&server.url, None).unwrap();
        resume(&client, OutputFormat::Json, &resume_args(true, true)).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("GET", "/api/v1/pairs/web-01/points"));
        let sent: drpair_types::ResumeRequest = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(sent, drpair_types::ResumeRequest { resync: true, reinit: true, confirm: Some("web-01".into()) });
    }
}
