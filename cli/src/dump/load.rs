//! `drpair standby load-dump PAIR --disk N --image FILE`: loading the dump of one disk (step
//! 5 of the workflow), followed to its end with the bar of [`crate::poll`]; and the words
//! for a load (also in `status`).

use super::next_step;
use crate::client::{ANSWER_TIMEOUT, CliError, Client};
use crate::lifecycle;
use crate::output::{self, Block, OutputFormat, format_size as size};
use crate::poll::{Follower, Seen};
use clap::{Args, ValueEnum};
use drpair_types::{DumpDiskLoad, DumpLoadState, DumpStep, LoadDumpRequest, PairId, PairStatus};
use std::path::PathBuf;
use std::time::Duration;

/// Time between two polls of `load-dump`.
pub const LOAD_POLL_EVERY: Duration = Duration::from_millis(500);

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

/// `drpair standby load-dump PAIR --disk N --image FILE …`; polls every `every`.
pub fn load_dump(client: &Client, output: OutputFormat, args: &LoadDumpArgs, every: Duration) -> Result<(), CliError> {
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
    let seen = |s: &PairStatus| match load_seen(pair, disk, s) {
        LoadSeen::Loading(load) => {
            let percent = load.percent.clamp(0.0, 100.0);
            Seen::Running { percent, line: format!("loading {}", output::format_percent(percent)) }
        }
        LoadSeen::Loaded(_) => Seen::Finished("loaded 100%".to_string()),
        LoadSeen::Over(why) => Seen::Failed(CliError::Failed(why)),
    };
    let first = (serde_json::Value::Null, first.clone());
    let (_, last) = Follower::new(client, output, format!("{pair} disk {disk}"), every).follow(
        &format!("/api/v1/pairs/{pair}"),
        Some(first),
        seen,
    )?;
    match load_seen(pair, disk, &last) {
        LoadSeen::Loaded(load) => Ok((load.clone(), last)),
        _ => unreachable!("the follower returns only a loaded disk"),
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

#[cfg(test)]
mod tests;
