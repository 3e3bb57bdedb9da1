//! `drpair status PAIR`: everything about one pair, once, refreshed (`--watch`), or until
//! the pair is in sync (`--wait-synced`).

use crate::client::{CliError, Client, exit};
use crate::dump;
use crate::output::{self, Block, OutputFormat, format_duration as dur, format_size as size};
use crate::wait::{self, Goal};
use crate::{failback, failover, retention, storage, verify, verify_source};
use clap::Args;
use drpair_types::{
    DumpDiskLoad, DumpLoadState, DumpStatus, DumpVerification, PairId, PairStatus, RestartInfo, StopAt,
};
use std::time::{Duration, Instant};

#[derive(Debug, Args)]
#[command(
    about = "Show the state, progress and counters of a DR pair",
    long_about = "Show the state, progress and counters of a DR pair (GET /api/v1/pairs/PAIR).\n\n\
        Shows the state in an operator's words and what it means (Paused and Stopped with the \
        stop reason), the stop position if one is set, a restart (new baseline) in progress, \
        whether the pair is ready for failover (a complete recovery point exists), the recovery \
        checkpoint (LINEAGE:EPOCH, where replication resumes; accepted back as a start \
        position), how far back the agent's change history reaches (the oldest epoch a replay \
        can start from), the newest recovery point, the agent, the disks, progress of the \
        running pass with its chunks shipped and queued, ETA and throughput, lag (the recovery \
        point objective right now), backlog, bytes read/shipped/on the wire/stored, the \
        compression ratio and recent failures. During a third-party dump workflow (and after \
        it, until the next one) a Dump section follows: the step and the next one to take, the \
        dump marker (epoch, time, how it was given, consistency), when the resync and dump \
        markers were processed, each disk's load (state, percent, image, error), the \
        verification against the source (chunks compared, shipped, mismatched) and the latest \
        events. While a pair is failed over (and after a failback), a Failover section shows the \
        point written onto which targets, how far and how fast, and a Failback section the \
        direction, the phase or result, the chunks changed on each side, differing and moved, \
        the original's state kept as a point and the check. When the standby reports them, \
        short sections follow on the retention policy and \
        the last prune, the running or last verification of stored chunks (DAMAGED points \
        named), the running or last online verify against the source (mismatches and the \
        repair point), and the storage totals (stored bytes, compression, dedup and space \
        saving ratios).\n\n\
        --watch refreshes every second until Ctrl-C (with --output json: one JSON line per \
        refresh). --wait-synced polls until the pair is Replicating at 100% and then exits 0, \
        showing a progress bar on stderr meanwhile (a progress line every 10 s when stderr is \
        not a terminal); with --timeout it gives up with exit code 7. \
        While waiting, a standby that cannot be reached is retried rather than fatal.\n\n\
        With --output json: the PairStatus object as the API returns it.",
    after_help = "Examples:\n  drpair status web-01\n  drpair status web-01 --watch\n  \
        drpair status web-01 --wait-synced --timeout 2h && echo ready for failover\n  \
        drpair status web-01 --output json | jq .recovery_checkpoint"
)]
pub struct StatusArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Refresh every second until Ctrl-C
    #[arg(long)]
    pub watch: bool,
    /// Wait until the pair is Replicating at 100% progress, then exit 0
    #[arg(long)]
    pub wait_synced: bool,
    /// With --wait-synced: give up after this long (e.g. 30m, 2h) with exit code 7
    #[arg(long, value_name = "DURATION", requires = "wait_synced", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

pub fn run(client: &Client, output: OutputFormat, args: &StatusArgs) -> Result<(), CliError> {
    let path = format!("/api/v1/pairs/{}", args.pair);
    if args.wait_synced && !args.watch {
        let (raw, status) = wait::wait(client, output, &args.pair, Goal::Synced, args.timeout)?;
        show(output, &raw, &status, false);
        return Ok(());
    }
    if !args.watch {
        let (raw, status): (_, PairStatus) = client.get_json(&path)?;
        show(output, &raw, &status, false);
        return Ok(());
    }
    let started = Instant::now();
    let mut last: String; // the latest state, for the timeout message
    loop {
        match client.get_json::<PairStatus>(&path) {
            Ok((raw, status)) => {
                last = wait::progress_line(&status);
                show(output, &raw, &status, true);
                if args.wait_synced && Goal::Synced.reached(&status) {
                    return Ok(());
                }
            }
            // The standby restarting while watching is not the end of the watch.
            Err(e) if e.exit_code() == exit::UNREACHABLE => {
                last = format!("standby unreachable: {e}");
                if output == OutputFormat::Text {
                    eprintln!("error: {e} (retrying)");
                }
            }
            Err(e) => return Err(e),
        }
        if let Some(limit) = args.timeout
            && started.elapsed() >= limit
        {
            return Err(CliError::TimedOut(format!(
                "pair {} not in sync after {}: {}",
                args.pair,
                dur(limit.as_secs()),
                last
            )));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn show(output: OutputFormat, raw: &serde_json::Value, status: &PairStatus, refreshing: bool) {
    match output {
        OutputFormat::Json if refreshing => output::emit(&raw.to_string()),
        OutputFormat::Json => output::emit(&output::to_json(raw)),
        OutputFormat::Text => {
            let mut text = render_status(status, output::now_unix_ms());
            if refreshing {
                use std::io::IsTerminal;
                if std::io::stdout().is_terminal() {
                    text.insert_str(0, "\x1b[2J\x1b[H"); // clear the screen, cursor home
                }
                text.push_str("\n(refreshing every second; Ctrl-C to stop)\n");
            }
            output::emit(&text);
        }
    }
}

/// The text form of `drpair status`.
pub fn render_status(s: &PairStatus, now_ms: u64) -> String {
    let st = &s.stats;
    let mut b = Block::default();
    b.line("DR pair", s.pair_id.to_string());
    b.line("State", format!("{} ({})", s.state_label, s.state_explanation));
    if let Some(r) = &s.stop_reason {
        b.line("Stop reason", r.clone());
    }
    if let Some(at) = s.stop_at.as_ref().and_then(render_stop_at) {
        b.line("Stop at", at);
    }
    if let Some(r) = &s.restart {
        b.line("Restart", render_restart(r));
    }
    if let Some(c) = &s.configuration_change {
        let way = if c.growth_only { "drpair pairs adopt-growth or drpair restart" } else { "drpair restart" };
        let changes: Vec<String> = c.changes.iter().map(|d| d.describe()).collect();
        b.line("Configuration change", format!("since {}, taken by {way}: {}", c.detected_at, changes.join("; ")));
    }
    let ready = match (s.ready_for_failover, &s.restart) {
        (true, _) => "yes",
        (false, Some(_)) => "no (new baseline in progress)",
        (false, None) => "no (no complete recovery point yet)",
    };
    b.line("Ready for failover", ready);
    let level =
        serde_json::to_value(s.health.level).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
    b.line("Health", format!("{level}: {}", s.health.reason));
    b.line("Recovery checkpoint", s.recovery_checkpoint.clone().unwrap_or_else(|| "-".into()));
    if let Some(epoch) = s.change_history_from {
        b.line("Change history from", format!("epoch {epoch} (replay from a point at or after it)"));
    }
    b.line(
        "Last point",
        match &s.last_point {
            Some(p) => format!(
                "{} at {} ({}), {}, {}",
                p.id,
                p.time,
                output::format_age(p.time_unix_ms, now_ms),
                output::wire_name(&p.kind),
                output::wire_name(&p.consistency)
            ),
            None => "-".into(),
        },
    );
    b.line(
        "Agent",
        match &s.agent {
            Some(a) => format!(
                "{} ({}), tracker {}, version {}, {} since {}",
                a.host,
                a.address,
                a.tracker,
                a.version,
                if a.connected { "connected" } else { "disconnected" },
                a.since
            ),
            None => "never connected".into(),
        },
    );
    b.line(
        "Link",
        match (&s.standby_fingerprint, s.insecure_plaintext) {
            (_, true) => "PLAINTEXT (insecure_plaintext): chunks and credentials cross the network readable".into(),
            (Some(f), false) => format!("TLS 1.3, standby {f}"),
            (None, false) => "-".into(),
        },
    );
    if let Some(t) = s.agent.as_ref().and_then(|a| a.tracking) {
        b.line(
            "Tracking",
            format!(
                "{} writes, {} discards, {} write-zeroes seen; {} events lost ({} losses, each repaired by a full compare)",
                t.writes, t.discards, t.zeroes, t.lost_events, t.losses
            ),
        );
    }
    let disks: Vec<String> = s
        .disks
        .iter()
        .map(|d| {
            format!(
                "{}  {}  {} ({} chunks of {})",
                d.index,
                d.path,
                size(d.size_bytes),
                d.chunk_count,
                size(d.chunk_size)
            )
        })
        .collect();
    b.line("Disks", lines_or(disks, "-"));
    let mut progress = output::format_percent(st.progress_percent);
    if let Some(p) = &st.pass {
        progress.push_str(&format!(
            " ({} pass, epoch {}: {} of {} chunks)",
            p.kind, p.epoch, p.chunks_done, p.chunks_total
        ));
    }
    b.line("Progress", progress);
    if let Some(why) = st.pass.as_ref().and_then(|p| p.reason.as_ref()) {
        b.line("Why", why.clone());
    }
    if st.chunks_total > 0 || st.chunks_queued > 0 {
        b.line(
            "Pass chunks",
            format!("{} of {} shipped, {} queued", st.chunks_shipped, st.chunks_total, st.chunks_queued),
        );
    }
    b.line("Elapsed", st.elapsed_seconds.map_or("-".into(), dur));
    b.line("ETA", st.eta_seconds.map_or("-".into(), dur));
    b.line(
        "Read rate",
        format!("{} (the agent's reads from its disks)", output::format_rate(st.throughput_bytes_per_second)),
    );
    render_link(&mut b, &s.link);
    b.line("Lag", dur(output::round_u64(st.lag_seconds)));
    if let Some(r) = &s.rpo_state {
        b.line(
            "RPO",
            format!(
                "{} since {}: the newest point is {} old (target {}, error at {}{})",
                r.state.as_str().to_uppercase(),
                r.since,
                dur(output::round_u64(r.rpo_seconds)),
                drpair_types::rpo::rpo_text(r.target_seconds),
                drpair_types::rpo::rpo_text(r.error_seconds),
                if r.target_source == drpair_types::RpoTargetSource::Standby { "; the standby's default" } else { "" }
            ),
        );
    }
    b.line("Last successes", last_successes_line(&s.last_successes, now_ms));
    b.line("Backlog", format!("{} ({} chunks)", size(st.backlog_bytes), st.backlog_chunks));
    if st.spool_bytes > 0 || st.spool_full {
        let full = if st.spool_full { "; FULL: this epoch is read as the link takes it" } else { "" };
        b.line("Spool", format!("{} read at the cut, waiting for the link{full}", size(st.spool_bytes)));
    }
    b.line("Epoch", st.current_epoch.to_string());
    b.line(
        "Bytes",
        format!(
            "read {}, shipped {}, on the wire {}, stored {}",
            size(st.bytes_read),
            size(st.bytes_shipped),
            size(st.bytes_on_wire),
            size(st.bytes_stored)
        ),
    );
    if st.compression_ratio > 0.0 {
        b.line("Compression ratio", format!("{:.2}", st.compression_ratio));
    }
    if let Some(l) = &st.compression_level {
        b.line("Compression", format!("{l} now"));
    }
    b.line(
        "Chunks",
        format!(
            "received {}, zero {}, dedup {}, refused {}",
            st.chunks_received, st.chunks_zero, st.chunks_dedup, s.link.chunks_refused
        ),
    );
    b.line("Recovery points", st.points.to_string());
    let failures: Vec<String> = s.failure_messages.iter().map(|m| format!("- {m}")).collect();
    b.line("Failures", lines_or(failures, "none"));
    b.line("Registered", s.registered_at.clone());
    render_failover(&mut b, s);
    render_maintenance(&mut b, s, now_ms);
    if let Some(d) = &s.dump {
        b.gap();
        render_dump(&mut b, d);
    }
    b.render()
}

/// The failover and failback sections: a few lines each, only when the standby reports one.
fn render_failover(b: &mut Block, s: &PairStatus) {
    if let Some(f) = &s.failover {
        b.gap();
        b.line("Failover", failover::status_line(f));
        let targets: Vec<String> = f.targets.iter().enumerate().map(|(i, t)| format!("disk {i}: {t}")).collect();
        b.line("Failover targets", lines_or(targets, "-"));
        let by = f.operator.as_ref().map(|o| format!(" by {o}")).unwrap_or_default();
        b.line("Failover started", format!("{}{by}", f.started_at));
        if f.state != drpair_types::JobState::Failed && !f.message.is_empty() {
            b.line("Failover message", f.message.clone());
        }
    }
    if let Some(p) = &s.protected_by {
        b.line("Protected by", crate::protect::status_line(p));
    }
    if let Some(r) = &s.recovered_from {
        b.gap();
        b.line("Recovered from", format!("pair {} (failover point {})", r.pair, r.point));
    }
    if let Some(f) = &s.failback {
        b.gap();
        b.line("Failback", failback::status_line(f));
        match &f.from_protected {
            Some(p) => b.line("Failback from", format!("point {} of the protecting pair {}", p.point, p.pair)),
            None => b.line("Failback from", lines_or(f.from.clone(), "-")),
        }
        b.line("Failback chunks", failback::status_counts(f));
        if f.direction == drpair_types::FailbackDirection::ToOriginal {
            b.line("Failback check", failback::check_words(f));
        }
        if f.state != drpair_types::JobState::Failed && !f.message.is_empty() {
            b.line("Failback message", f.message.clone());
        }
    }
}

/// The maintenance section: retention and the last prune, the verification of stored
/// chunks, the online verify against the source, the storage totals; each line only when
/// the standby reports it, the section only when one is there.
/// `point 4s ago (#12) · verify 2h ago · source verify never · drill 1d ago (#9) ·
/// app-consistent never`: when each last succeeded.
pub(crate) fn last_successes_line(l: &drpair_types::LastSuccesses, now_ms: u64) -> String {
    let names = ["point", "verify", "source verify", "drill", "app-consistent"];
    let parts: Vec<String> = names
        .iter()
        .zip(l.each())
        .map(|(name, (_, at))| match at {
            None => format!("{name} never"),
            Some(a) => {
                let point = a.point.map(|p| format!(" (#{p})")).unwrap_or_default();
                format!("{name} {}{point}", output::format_age(a.at_unix_ms, now_ms))
            }
        })
        .collect();
    parts.join(" · ")
}

fn render_maintenance(b: &mut Block, s: &PairStatus, now_ms: u64) {
    if s.retention.is_none() && s.verify.is_none() && s.source_verify.is_none() && s.storage.is_none() {
        return;
    }
    b.gap();
    if let Some(r) = &s.retention {
        retention::status_lines(b, r, now_ms);
    }
    if let Some(v) = &s.verify {
        b.line("Verify", verify::status_line(v, now_ms));
    }
    if let Some(v) = &s.source_verify {
        b.line("Source verify", verify_source::status_line(v, now_ms));
    }
    if let Some(st) = &s.storage {
        b.line("Storage", storage::status_line(st, now_ms));
    }
}

/// Events of the dump workflow shown by `status` (the newest).
const DUMP_EVENTS_SHOWN: usize = 5;
/// Mismatched chunks named by `status`.
const MISMATCH_SAMPLE_SHOWN: usize = 5;

/// The dump section of `status`: the step and the next one, the marker, the markers
/// processed, each disk's load, the verification and the latest events.
fn render_dump(b: &mut Block, d: &DumpStatus) {
    b.line("Dump", d.step_label.clone());
    b.line("Next step", d.next_step.clone());
    let mut suspended = format!("{}, recovery checkpoint epoch {}", d.suspended_at, d.checkpoint_epoch);
    if d.purged_versions > 0 {
        suspended.push_str(&format!(", {} queued chunk version(s) purged", d.purged_versions));
    }
    b.line("Suspended at", suspended);
    match &d.marker {
        Some(m) => dump::render_marker(b, m, false),
        None => b.line("Marker", "not recorded yet"),
    }
    let at = |t: &Option<String>| t.as_ref().map_or("not yet".to_string(), |t| format!("at {t}"));
    b.line("Markers processed", format!("resync {}, dump {}", at(&d.resync_marker_at), at(&d.dump_marker_at)));
    let loads: Vec<String> = d.disks.iter().map(render_dump_load).collect();
    b.line("Dump loads", lines_or(loads, "-"));
    if let Some(p) = d.point {
        b.line("Dump point", format!("recovery point {p} (dump-marker)"));
    }
    if let Some(v) = &d.verification {
        b.line("Verification", render_verification(v));
    }
    b.line("Dump events", lines_or(dump::last_events(d, DUMP_EVENTS_SHOWN), "none"));
}

/// One disk's load: `disk 0: loading 42%, /srv/d0.img (raw)`, with the counts once loaded
/// and the error once failed.
fn render_dump_load(l: &DumpDiskLoad) -> String {
    let mut line = format!("disk {}: {}", l.disk, output::wire_name(&l.state));
    if matches!(l.state, DumpLoadState::Loading | DumpLoadState::Loaded) {
        line.push_str(&format!(" {}", output::format_percent(l.percent)));
    }
    match (&l.image, &l.format) {
        (Some(image), Some(format)) => line.push_str(&format!(", {image} ({format})")),
        (Some(image), None) => line.push_str(&format!(", {image}")),
        _ => {}
    }
    match l.state {
        DumpLoadState::Loaded => {
            if let Some(t) = &l.loaded_at {
                line.push_str(&format!(", at {t}"));
            }
            line.push_str(&format!(": {}", dump::load_counts(l)));
        }
        DumpLoadState::Failed => {
            line.push_str(&format!(": {}", l.error.as_deref().unwrap_or("no reason recorded")));
        }
        DumpLoadState::Pending | DumpLoadState::Loading => {}
    }
    line
}

/// The comparison of the loaded dump with the source.
fn render_verification(v: &DumpVerification) -> String {
    let mut text = format!(
        "at {} (epoch {}): {} chunks compared, {} shipped, {} mismatched",
        v.verified_at, v.epoch, v.chunks_compared, v.chunks_shipped, v.mismatched_chunks
    );
    if v.mismatched_chunks > 0 {
        let sample: Vec<String> = v
            .mismatched_sample
            .iter()
            .take(MISMATCH_SAMPLE_SHOWN)
            .map(|[disk, chunk]| format!("disk {disk} chunk {chunk}"))
            .collect();
        if !sample.is_empty() {
            text.push_str(&format!(" (e.g. {})", sample.join(", ")));
        }
        text.push_str("; the dump did not match its marker there: repaired from the source");
    }
    text
}

/// Where the pair stops by itself: `point 42`, a time, or both (whichever comes first).
fn render_stop_at(at: &StopAt) -> Option<String> {
    match (at.point, &at.time) {
        (Some(p), Some(t)) => Some(format!("point {p} or {t}, whichever comes first")),
        (Some(p), None) => Some(format!("point {p}")),
        (None, Some(t)) => Some(t.clone()),
        (None, None) => None,
    }
}

/// The restart in progress: when, how, and what happens to the old points.
fn render_restart(r: &RestartInfo) -> String {
    let old = if r.keep_points_until_synced {
        format!("{} old points kept read-only until it completes", r.kept_points)
    } else {
        "old points deleted".to_string()
    };
    format!("new baseline requested at {}, full copy {}, {old}", r.requested_at, output::yes_no(r.full_copy))
}

/// One line per item, or `none` when there is nothing to list.
fn lines_or(items: Vec<String>, none: &str) -> String {
    if items.is_empty() { none.to_string() } else { items.join("\n") }
}

#[cfg(test)]
mod dump_tests;
#[cfg(test)]
pub(crate) mod tests;

/// The link: the rate on the wire and the limit, liveness, and its faults.
fn render_link(b: &mut Block, l: &drpair_types::LinkStatus) {
    let limit = match (l.bandwidth_limit_bytes_per_second, &l.bandwidth_limited_by) {
        (Some(r), Some(by)) => format!("limit {} (the {by}'s)", output::format_rate(r as f64)),
        _ => "no limit".to_string(),
    };
    b.line("Wire rate", format!("{} from the agent, {limit}", output::format_rate(l.wire_bytes_per_second)));
    if l.bandwidth != "unlimited" {
        b.line("Bandwidth", l.bandwidth.clone());
    }
    if l.connected {
        let ago = |ms: Option<u64>| ms.map_or("-".to_string(), |m| format!("{:.1}s ago", m as f64 / 1000.0));
        let rtt = l.rtt_ms.map_or("-".to_string(), |r| format!("{r:.1} ms"));
        b.line(
            "Link",
            format!(
                "round trip {rtt}, last byte {}, last heartbeat answer {}",
                ago(l.last_byte_ms_ago),
                ago(l.last_ack_ms_ago)
            ),
        );
    }
    b.line(
        "Link faults",
        format!(
            "{} reconnects, {} failed connections ({} stalled), {} frames refused for a checksum",
            l.reconnects, l.connections_failed, l.stalls, l.frames_refused_checksum
        ),
    );
    if let Some(d) = &l.last_disconnect {
        b.line("Last disconnect", d.clone());
    }
}
