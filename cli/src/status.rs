//! `drpair status PAIR`: everything about one pair, once, refreshed (`--watch`), or until
//! the pair is in sync (`--wait-synced`).

use crate::client::{CliError, Client, exit};
use crate::output::{self, Block, OutputFormat, format_duration as dur, format_size as size};
use crate::wait::{self, Goal};
use clap::Args;
use drpair_types::{PairId, PairStatus, RestartInfo, StopAt};
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
        compression ratio and recent failures.\n\n\
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
    b.render()
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
