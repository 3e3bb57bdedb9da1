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
    b.line("Throughput", output::format_rate(st.throughput_bytes_per_second));
    b.line("Lag", dur(output::round_u64(st.lag_seconds)));
    b.line("Backlog", format!("{} ({} chunks)", size(st.backlog_bytes), st.backlog_chunks));
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
    b.line(
        "Chunks",
        format!(
            "received {}, zero {}, dedup {}, errored {}",
            st.chunks_received, st.chunks_zero, st.chunks_dedup, st.chunks_errored
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
    if let Some(f) = &s.failback {
        b.gap();
        b.line("Failback", failback::status_line(f));
        b.line("Failback from", lines_or(f.from.clone(), "-"));
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
pub(crate) mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{DiskInfo, PairState, PairStats, PassInfo};

    pub(crate) fn status(state: PairState, progress: f64) -> PairStatus {
        PairStatus {
            pair_id: PairId::new("web-01").unwrap(),
            state,
            state_label: state.label().into(),
            state_explanation: "the first full copy is running".into(),
            ready_for_failover: false,
            lineage: None,
            recovery_checkpoint: None,
            checkpoint: None,
            last_point: None,
            agent: None,
            disks: vec![DiskInfo {
                index: 0,
                path: "/dev/sdb".into(),
                size_bytes: 10 << 30,
                chunk_size: 65536,
                chunk_count: 163_840,
            }],
            stats: PairStats {
                progress_percent: progress,
                eta_seconds: Some(300),
                pass: Some(PassInfo {
                    epoch: 1,
                    kind: "initial".into(),
                    chunks_done: 68_812,
                    chunks_total: 163_840,
                    reason: None,
                }),
                lag_seconds: 192.0,
                backlog_bytes: 6 << 30,
                bytes_read: 4 << 30,
                ..PairStats::default()
            },
            failure_messages: vec!["refused chunk 17: hash mismatch".into()],
            stop_reason: None,
            stop_at: None,
            restart: None,
            change_history_from: None,
            registered_at: "2026-05-01T10:00:00Z".into(),
            dump: None,
            source_verify: None,
            retention: None,
            verify: None,
            storage: None,
            failover: None,
            failback: None,
            health: drpair_types::Health { level: drpair_types::HealthLevel::Ok, reason: String::new() },
            allowed_actions: vec![],
        }
    }

    #[test]
    fn text_block_names_what_matters() {
        let mut s = status(PairState::InitialSync, 42.0);
        s.last_point = Some(crate::points::tests::point(7, 1_000_000));
        let text = render_status(&s, 1_060_000);
        for (key, value) in [
            ("State", "Start Replication (the first full copy is running)"),
            ("Ready for failover", "no (no complete recovery point yet)"),
            ("Last point", "7 at 2026-05-01T10:00:00Z (1m ago), manual, fuzzy"),
            ("Disks", "0  /dev/sdb  10.0 GiB (163840 chunks of 64.0 KiB)"),
            ("Progress", "42% (initial pass, epoch 1: 68812 of 163840 chunks)"),
            ("ETA", "5m"),
            ("Lag", "3m 12s"),
            ("Backlog", "6.0 GiB (0 chunks)"),
            ("Bytes", "read 4.0 GiB, shipped 0 B, on the wire 0 B, stored 0 B"),
            ("Failures", "- refused chunk 17: hash mismatch"),
        ] {
            let want = format!("{:<22}{value}", format!("{key}:"));
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
    }

    #[test]
    fn text_block_shows_stop_restart_and_link() {
        let mut s = status(PairState::Stopped, 100.0);
        s.stop_reason = Some("STOPPED_AT_POINT".into());
        s.stop_at = Some(StopAt { point: Some(42), time: None });
        s.restart = Some(RestartInfo {
            requested_at: "2026-05-02T08:00:00Z".into(),
            full_copy: true,
            keep_points_until_synced: true,
            kept_points: 3,
        });
        s.change_history_from = Some(30);
        s.stats.chunks_total = 200;
        s.stats.chunks_shipped = 150;
        s.stats.chunks_queued = 7;
        s.stats.bytes_on_wire = 3 << 20;
        s.stats.compression_ratio = 2.345;
        s.stats.throughput_bytes_per_second = 1024.0 * 1024.0;
        let text = render_status(&s, 0);
        for (key, value) in [
            ("State", "Stopped (the first full copy is running)"),
            ("Stop reason", "STOPPED_AT_POINT"),
            ("Stop at", "point 42"),
            (
                "Restart",
                "new baseline requested at 2026-05-02T08:00:00Z, full copy yes, 3 old points kept read-only until it completes",
            ),
            ("Ready for failover", "no (new baseline in progress)"),
            ("Change history from", "epoch 30 (replay from a point at or after it)"),
            ("Pass chunks", "150 of 200 shipped, 7 queued"),
            ("Throughput", "1.0 MiB/s"),
            ("Bytes", "read 4.0 GiB, shipped 0 B, on the wire 3.0 MiB, stored 0 B"),
            ("Compression ratio", "2.35"),
        ] {
            let want = format!("{:<22}{value}", format!("{key}:"));
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        let both = StopAt { point: Some(42), time: Some("2026-05-03T00:00:00Z".into()) };
        assert_eq!(render_stop_at(&both).unwrap(), "point 42 or 2026-05-03T00:00:00Z, whichever comes first");
        assert_eq!(render_stop_at(&StopAt::default()), None);
    }

    #[test]
    fn unset_fields_are_left_out() {
        let text = render_status(&status(PairState::Paused, 10.0), 0);
        for key in ["Stop reason:", "Stop at:", "Restart:", "Change history from:", "Pass chunks:", "Compression"] {
            assert!(!text.contains(key), "{key} in\n{text}");
        }
        assert!(text.starts_with("DR pair:              web-01\nState:                Paused ("), "{text}");
    }

    #[test]
    fn maintenance_section() {
        let now = 1_777_629_902_000;
        let mut s = status(PairState::Replicating, 100.0);
        assert!(!render_status(&s, now).contains("Retention"), "nothing reported, no section");
        s.retention = Some(crate::retention::tests::view());
        s.verify = Some(crate::verify::tests::damaged_status());
        s.source_verify = Some(crate::verify_source::tests::mismatched());
        s.storage = Some(drpair_types::StorageSummary {
            computed_unix_ms: 1_777_629_600_000,
            logical_bytes: 20 << 30,
            stored_bytes: 4 << 30,
            unique_stored_bytes: 3 << 30,
            compression_ratio: 2.3149,
            dedup_ratio: 1.5,
            space_saving_ratio: 5.0,
        });
        let text = render_status(&s, now);
        assert!(text.contains("Registered:           2026-05-01T10:00:00Z\n\nRetention:"), "a section:\n{text}");
        for (key, value) in [
            ("Retention", "1x10m(keep=all) | 60x1m, keep last 5 (set for this pair; pruned every 1h)"),
            ("Last prune", "2026-05-01T10:00:02Z (5m ago), on request: removed 2 of 5 points, kept 3; 3.0 GiB freed"),
            (
                "Verify",
                "DAMAGED at 2026-05-01T10:03:12Z (1m 50s ago): 2 point(s) see damaged or missing chunks: points 12, \
                 13; 10 intact",
            ),
            (
                "Source verify",
                "MISMATCHED at 2026-05-01T10:01:00Z (4m 2s ago): 3 chunk(s) differed from point 41 (disk 0 chunk \
                 17, disk 1 chunk 4, disk 0 chunk 23); repaired in point 42",
            ),
            (
                "Storage",
                "4.0 GiB stored (3.0 GiB unique) for 20.0 GiB of points; compression 2.31×, dedup 1.50×, space \
                 saving 5.00× (computed 5m 2s ago)",
            ),
        ] {
            let want = format!("{:<22}{value}", format!("{key}:"));
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        s.retention = None;
        s.verify = None;
        s.source_verify = None;
        let text = render_status(&s, now);
        assert!(text.contains("\n\nStorage:") && !text.contains("Verify:") && !text.contains("Retention:"), "{text}");
    }

    #[test]
    fn failover_and_failback_sections() {
        use drpair_types::{FailbackPhase, JobState};
        let mut s = status(PairState::FailedOver, 100.0);
        assert!(!render_status(&s, 0).contains("Failover:"), "never failed over, no section");
        s.failover = Some(crate::failover::tests::failover_status(JobState::Done, 20 << 30));
        let text = render_status(&s, 0);
        assert!(text.contains("Registered:           2026-05-01T10:00:00Z\n\nFailover:"), "a section:\n{text}");
        assert!(!text.contains("Failback"), "{text}");
        s.failback = Some(crate::failback::tests::failback_status(JobState::Running, FailbackPhase::Writing));
        let text = render_status(&s, 0);
        let indent = " ".repeat(22);
        for (key, value) in [
            (
                "Failover",
                "done: point 42 (cut 2026-05-01T10:00:00Z) written, 20.0 GiB in 40.0 s, at 2026-05-01T10:05:40Z",
            ),
            ("Failover targets", "disk 0: /dev/vg0/sda"),
            ("Failover started", "2026-05-01T10:05:00Z by alice"),
            ("Failover message", "point 42 written onto 2 target(s)"),
            ("Failback", "running 60% to-original, writing: 305 differing chunk(s), 100 moved"),
            ("Failback from", "/dev/vg0/sda"),
            ("Failback chunks", "original changed 12, recovered changed 300, differing 305; original kept as point 57"),
            ("Failback check", "not checked (yet)"),
        ] {
            let want = format!("{:<22}{value}", format!("{key}:"));
            assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
        }
        assert!(text.lines().any(|l| l == format!("{indent}disk 1: /srv/fo/sdb.img")), "{text}");
        assert!(text.contains("\n\nFailback:"), "a section of its own:\n{text}");
        s.failover = Some(crate::failover::tests::failover_status(JobState::Failed, 0));
        let text = render_status(&s, 0);
        let want = format!("{:<22}FAILED: point 42: disk 1: /srv/fo/sdb.img: No space left on device", "Failover:");
        assert!(text.lines().any(|l| l == want) && !text.contains("Failover message"), "{text}");
    }

    #[test]
    fn wait_synced_polls_until_in_sync() {
        let replies = [status(PairState::InitialSync, 50.0), status(PairState::Replicating, 100.0)]
            .iter()
            .map(|s| Reply::json(200, &serde_json::to_string(s).unwrap()))
            .collect();
        let server = FakeServer::start(replies);
        let client = Client::new(&server.url, None).unwrap();
        let pair = PairId::new("web-01").unwrap();
        let args = StatusArgs { pair, watch: false, wait_synced: true, timeout: Some(Duration::from_secs(30)) };
        run(&client, OutputFormat::Json, &args).unwrap();
        let reqs = server.finish();
        assert_eq!(reqs.len(), 2);
        assert!(reqs.iter().all(|r| r.path == "/api/v1/pairs/web-01"));
    }

    #[test]
    fn wait_synced_times_out_with_exit_7() {
        let body = serde_json::to_string(&status(PairState::InitialSync, 10.0)).unwrap();
        let server = FakeServer::start(vec![Reply::json(200, &body)]);
        let client = Client::new(&server.url, None).unwrap();
        let pair = PairId::new("web-01").unwrap();
        let args = StatusArgs { pair, watch: false, wait_synced: true, timeout: Some(Duration::ZERO) };
        let err = run(&client, OutputFormat::Text, &args).unwrap_err();
        assert_eq!(err.exit_code(), exit::TIMED_OUT);
        assert!(err.to_string().contains("pair web-01 not in sync after 0s: Start Replication 10%"), "{err}");
        server.finish();
    }
}

#[cfg(test)]
mod dump_tests {
    use super::*;
    use crate::dump::tests::{disk_load, dump_status};
    use crate::status::tests::status;
    use drpair_types::{DumpStep, PairState, QuiesceOutcome};

    fn with_dump() -> PairStatus {
        let mut s = status(PairState::ApplySuspended, 0.0);
        s.dump = Some(dump_status(
            DumpStep::ApplySuspended,
            vec![
                disk_load(0, DumpLoadState::Loaded, 100.0),
                disk_load(1, DumpLoadState::Loading, 42.0),
                disk_load(2, DumpLoadState::Failed, 0.0),
                disk_load(3, DumpLoadState::Pending, 0.0),
            ],
            "drpair standby load-dump web-01 --disk 1 --image FILE",
        ));
        s
    }

    fn has_line(text: &str, key: &str, value: &str) -> bool {
        let want = format!("{:<22}{value}", format!("{key}:"));
        text.lines().any(|l| l == want)
    }

    #[test]
    fn dump_section() {
        let text = render_status(&with_dump(), 0);
        assert!(text.contains("Registered:           2026-05-01T10:00:00Z\n\nDump:"), "a section of its own:\n{text}");
        for (key, value) in [
            ("Dump", "Apply suspended: load the dump"),
            ("Next step", "drpair standby load-dump web-01 --disk 1 --image FILE"),
            ("Suspended at", "2026-05-01T10:00:00Z, recovery checkpoint epoch 41, 12 queued chunk version(s) purged"),
            ("Marker", "epoch 42, cut at 2026-05-01T10:30:00Z (given as: now)"),
            ("Consistency", "crash-consistent"),
            ("Markers processed", "resync at 2026-05-01T10:40:00Z, dump at 2026-05-01T10:40:01Z"),
            (
                "Dump loads",
                "disk 0: loaded 100%, /srv/dumps/d0.img (raw), at 2026-05-01T11:00:00Z: 163840 chunks read, 1200 differ \
                 from the newest point before the dump, 90000 zero, 5000 already held (dedup), 3.0 GiB stored",
            ),
            ("Dump events", "2026-05-01T10:03:00Z  event 3"),
        ] {
            assert!(has_line(&text, key, value), "missing {key}: {value:?} in\n{text}");
        }
        let indent = " ".repeat(22);
        for more in [
            "disk 1: loading 42%, /srv/dumps/d1.img (raw)",
            "disk 2: failed, /srv/dumps/d2.img (raw): short read at byte 4096: image smaller than the disk",
            "disk 3: pending",
            "2026-05-01T10:07:00Z  event 7",
        ] {
            assert!(text.lines().any(|l| l == format!("{indent}{more}")), "missing {more:?} in\n{text}");
        }
        assert!(!text.contains("event 2"), "only the last 5 events:\n{text}");
        for key in ["Verification:", "Dump point:", "Freeze:"] {
            assert!(!text.contains(key), "{key} in\n{text}");
        }
        assert!(!render_status(&status(PairState::Replicating, 100.0), 0).contains("Dump"), "no dump, no section");
    }

    #[test]
    fn dump_section_after_resume_apply() {
        let mut s = with_dump();
        let d = s.dump.as_mut().unwrap();
        d.step = DumpStep::Verifying;
        d.step_label = "Verifying the dump".into();
        d.point = Some(42);
        d.marker.as_mut().unwrap().quiesce = Some(QuiesceOutcome {
            freeze: vec!["/data".into()],
            hooks: false,
            achieved: false,
            frozen_ms: 0,
            budget_ms: 30_000,
            failure: Some("/data is not a mount point".into()),
        });
        d.verification = Some(DumpVerification {
            epoch: 43,
            chunks_compared: 163_840,
            chunks_shipped: 17,
            mismatched_chunks: 2,
            mismatched_sample: vec![[0, 17], [1, 4]],
            verified_at: "2026-05-01T12:00:00Z".into(),
        });
        let text = render_status(&s, 0);
        for (key, value) in [
            ("Dump", "Verifying the dump"),
            ("Dump point", "recovery point 42 (dump-marker)"),
            ("Freeze", "/data: not app-consistent: /data is not a mount point"),
            (
                "Verification",
                "at 2026-05-01T12:00:00Z (epoch 43): 163840 chunks compared, 17 shipped, 2 mismatched (e.g. disk 0 \
                 chunk 17, disk 1 chunk 4); the dump did not match its marker there: repaired from the source",
            ),
        ] {
            assert!(has_line(&text, key, value), "missing {key}: {value:?} in\n{text}");
        }
        s.dump.as_mut().unwrap().verification.as_mut().unwrap().mismatched_chunks = 0;
        let text = render_status(&s, 0);
        assert!(has_line(
            &text,
            "Verification",
            "at 2026-05-01T12:00:00Z (epoch 43): 163840 chunks compared, 17 shipped, 0 mismatched"
        ));
    }

    #[test]
    fn json_output_is_the_struct() {
        let s = with_dump();
        let raw = serde_json::to_value(&s).unwrap();
        assert_eq!(raw["dump"]["disks"][1]["state"], "loading");
        let back: PairStatus = serde_json::from_value(raw).unwrap();
        assert_eq!(back.dump, s.dump);
    }
}
