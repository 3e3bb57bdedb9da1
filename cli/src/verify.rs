//! `drpair verify PAIR`: re-read, decompress and re-hash every stored chunk the pair's
//! recovery points see (or one point's), and report the points that see a damaged or
//! missing chunk. With `--source` the online verify against the agent's disks runs instead
//! (`verify_source.rs`).
//!
//! Invariants: the command ends with exit code 0 only when the verification finished and
//! found nothing wrong; damage ends it with [`crate::error::exit::DAMAGE_FOUND`], a verification that
//! could not finish with exit code 1; with `--output json` stdout holds the final
//! `VerifyStatus` once, whatever the outcome.

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat, Table, format_size as size};
use crate::poll::{Operation, Seen};
use clap::Args;
use drpair_types::{DamagedChunk, PairId, PointId, VerifyRequest, VerifyState, VerifyStatus};
use std::time::Duration;

/// Time between two polls of a running verification.
pub const POLL_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Args)]
#[command(
    about = "Verify the stored chunks of a pair's recovery points, or the source against them",
    long_about = "Verify what the standby stores for a pair (POST /api/v1/pairs/PAIR/verify).\n\n\
        Every chunk a recovery point sees is re-read from the chunk store, decompressed and \
        re-hashed (blake3). Points that see only intact chunks are marked verified; points that \
        see a damaged or missing chunk are marked DAMAGED (see 'drpair points list'). --point \
        verifies one point only. The command polls the verification (GET \
        /api/v1/pairs/PAIR/verify every 0.5 s) with a progress bar on stderr, then prints the \
        points verified and damaged, with the damaged chunks: disk, chunk, the hash the chunk \
        should have, what is wrong, and the points that see it.\n\n\
        With --source the online verify runs instead (POST /api/v1/pairs/PAIR/verify-source): \
        the agent reads and hashes every chunk of its disks and compares them with the newest \
        recovery point; chunks that differ although no change to them was tracked (a write the \
        tracker never saw, or damage on either side) are reported as mismatched and shipped in \
        the same pass, so the point that commits the pass (the repair point) equals the source \
        again. The pair must be replicating with its agent connected.\n\n\
        Exit codes: 0 when nothing was found; 12 when damaged points or mismatched chunks were \
        found; 1 when the verification could not finish; 4 when one is already running or the \
        pair's state does not allow it. With --no-wait the command prints the accepted \
        verification and exits 0 at once; 'drpair status PAIR' shows how it goes on. Ctrl-C \
        stops following, not the verification.\n\n\
        With --output json: the final VerifyStatus (or SourceVerifyStatus) object, also when \
        damage was found.",
    after_help = "Examples:\n  drpair verify web-01\n  drpair verify web-01 --point 17\n  \
        drpair verify web-01 --source\n  drpair verify web-01 --no-wait\n  \
        drpair verify web-01 --output json | jq '.damaged[] | [.disk, .chunk]'"
)]
pub struct VerifyArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Verify this recovery point only (default: every point); not with --source, which
    /// always compares with the newest point
    #[arg(long, value_name = "ID", conflicts_with = "source")]
    pub point: Option<PointId>,
    /// Compare the agent's disks (the source) with the newest recovery point, and repair
    #[arg(long)]
    pub source: bool,
    /// Print the accepted verification and exit 0 without following it
    #[arg(long)]
    pub no_wait: bool,
}

pub fn run(client: &Client, output: OutputFormat, args: &VerifyArgs) -> Result<(), CliError> {
    if args.source {
        crate::verify_source::run(client, output, &args.pair, args.no_wait, POLL_EVERY)
    } else {
        verify_stored(client, output, args, POLL_EVERY)
    }
}

/// Starts a verification of stored chunks and follows it, polling every `every`.
fn verify_stored(client: &Client, output: OutputFormat, args: &VerifyArgs, every: Duration) -> Result<(), CliError> {
    let pair = &args.pair;
    let path = format!("/api/v1/pairs/{pair}/verify");
    let request = VerifyRequest { point: args.point, wait: false };
    let job = Operation { client, output, path, every };
    let accepted = |s: &VerifyStatus| render_accepted(pair, s);
    match job.start(&request, args.no_wait, accepted, |_| format!("{pair} verify"), seen)? {
        Some((raw, status)) => finish(output, pair, raw, &status),
        None => Ok(()),
    }
}

fn seen(s: &VerifyStatus) -> Seen {
    Seen::progress(
        s.state != VerifyState::Running,
        s.progress_percent,
        format_args!("{} chunks checked ({} read)", s.chunks_checked, size(s.bytes_checked)),
    )
}

/// Damaged points or chunks were found.
pub fn found_damage(s: &VerifyStatus) -> bool {
    s.state == VerifyState::Done && (s.points_damaged > 0 || !s.damaged.is_empty())
}

/// Prints the verification that ended and turns damage or failure into the error.
fn finish(output: OutputFormat, pair: &PairId, raw: serde_json::Value, s: &VerifyStatus) -> Result<(), CliError> {
    let error = match s.state {
        VerifyState::Failed => Some(format!("verification of pair {pair} failed: {}", s.message)),
        VerifyState::Done if found_damage(s) => Some(format!(
            "verification of pair {pair} found damage: {} recovery point(s) see damaged or missing chunks ({})",
            s.points_damaged,
            id_list(&damaged_points(&s.damaged))
        )),
        VerifyState::Done | VerifyState::Running => None,
    };
    match output {
        // The error prints the status, so stdout holds it once.
        OutputFormat::Json if error.is_some() => {}
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => output::emit(&render_result(pair, s)),
    }
    match error {
        Some(message) => Err(CliError::JobOutcome { damage: s.state == VerifyState::Done, message, status: raw }),
        None => Ok(()),
    }
}

/// The answer of `--no-wait`.
pub fn render_accepted(pair: &PairId, s: &VerifyStatus) -> String {
    format!(
        "verification of {} of pair {pair} started; 'drpair status {pair}' shows how it goes on{}",
        what(s.point),
        output::task_note(s.task)
    )
}

fn what(point: Option<PointId>) -> String {
    match point {
        Some(p) => format!("point {p}"),
        None => "every point".to_string(),
    }
}

/// The text form of a verification that ended.
pub fn render_result(pair: &PairId, s: &VerifyStatus) -> String {
    let mut b = Block::default();
    let verdict = match s.state {
        VerifyState::Running => format!("running {}", output::format_percent(s.progress_percent)),
        VerifyState::Failed => "FAILED: could not finish".to_string(),
        VerifyState::Done if found_damage(s) => {
            format!("DAMAGED: {} point(s) damaged, {} intact", s.points_damaged, s.points_verified)
        }
        VerifyState::Done => format!("intact: {} point(s) verified, none damaged", s.points_verified),
    };
    b.line("Verify", verdict);
    b.line("Pair", format!("{pair}, {}", what(s.point)));
    if let Some(t) = s.task {
        b.line("Task", t.to_string());
    }
    b.line("Chunks checked", format!("{} ({} stored bytes read)", s.chunks_checked, size(s.bytes_checked)));
    b.line("Points verified", s.points_verified.to_string());
    b.line("Points damaged", s.points_damaged.to_string());
    let points = damaged_points(&s.damaged);
    if !points.is_empty() {
        b.line("Damaged points", id_list(&points));
    }
    let by = if s.scheduled { "by the verify schedule" } else { "on request" };
    b.line("Started", format!("{} ({by})", output::format_time(s.requested_unix_ms)));
    if let Some(done) = s.finished_unix_ms {
        let took = done.saturating_sub(s.requested_unix_ms) / 1000;
        b.line("Finished", format!("{} (took {})", output::format_time(done), output::format_duration(took)));
    }
    if !s.message.is_empty() {
        b.line("Result", s.message.clone());
    }
    let mut text = b.render();
    if !s.damaged.is_empty() {
        text.push_str(&format!(
            "\nDamaged chunks ({}{}):\n",
            s.damaged.len(),
            if s.damaged.len() >= 50 { ", the first 50" } else { "" }
        ));
        text.push_str(&damaged_table(&s.damaged));
    }
    text
}

/// The damaged chunks: disk, chunk, the hash it should have, what is wrong, the points.
pub fn damaged_table(chunks: &[DamagedChunk]) -> String {
    let mut t = Table::new(&["DISK", "CHUNK", "HASH", "REASON", "POINTS"]);
    for c in chunks {
        t.row(vec![c.disk.to_string(), c.chunk.to_string(), c.hash.clone(), c.reason.clone(), id_list(&c.points)]);
    }
    t.render()
}

/// The points that see any of `chunks`, ascending, once each.
pub fn damaged_points(chunks: &[DamagedChunk]) -> Vec<PointId> {
    let mut ids: Vec<PointId> = chunks.iter().flat_map(|c| c.points.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// `12, 13, 17`.
pub fn id_list(ids: &[PointId]) -> String {
    ids.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// One line for `drpair status`: where the running or last verification stands.
pub fn status_line(s: &VerifyStatus, now_ms: u64) -> String {
    let scope = what(s.point);
    let when = |ms: Option<u64>| {
        ms.map(|t| format!(" at {} ({})", output::format_time(t), output::format_age(t, now_ms))).unwrap_or_default()
    };
    match s.state {
        VerifyState::Running => format!(
            "running {} ({}, {} chunks checked), started {}",
            output::format_percent(s.progress_percent),
            scope,
            s.chunks_checked,
            output::format_age(s.requested_unix_ms, now_ms)
        ),
        VerifyState::Failed => format!("FAILED{}: {}", when(s.finished_unix_ms), s.message),
        VerifyState::Done if found_damage(s) => {
            let points = damaged_points(&s.damaged);
            let listed = if points.is_empty() { String::new() } else { format!(": points {}", id_list(&points)) };
            format!(
                "DAMAGED{}: {} point(s) see damaged or missing chunks{listed}; {} intact",
                when(s.finished_unix_ms),
                s.points_damaged,
                s.points_verified
            )
        }
        VerifyState::Done => format!(
            "intact{}: {} point(s) verified, {} chunks checked",
            when(s.finished_unix_ms),
            s.points_verified,
            s.chunks_checked
        ),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{ApiError, ErrorCode};

    pub(crate) fn verify_status(state: VerifyState, percent: f64) -> VerifyStatus {
        VerifyStatus {
            task: None,
            state,
            scheduled: false,
            point: None,
            requested_unix_ms: 1_777_629_600_000,
            finished_unix_ms: (state != VerifyState::Running).then_some(1_777_629_792_000),
            progress_percent: percent,
            chunks_checked: 1200,
            bytes_checked: 3 << 20,
            points_verified: if state == VerifyState::Done { 12 } else { 0 },
            points_damaged: 0,
            damaged: Vec::new(),
            message: "12 points verified, none damaged".into(),
        }
    }

    pub(crate) fn damaged_status() -> VerifyStatus {
        let mut s = verify_status(VerifyState::Done, 100.0);
        s.points_verified = 10;
        s.points_damaged = 2;
        s.damaged = vec![
            DamagedChunk {
                disk: 0,
                chunk: 17,
                hash: "ab12".into(),
                reason: "hash mismatch".into(),
                points: vec![13, 12],
            },
            DamagedChunk { disk: 1, chunk: 4, hash: "cd34".into(), reason: "missing".into(), points: vec![13] },
        ];
        s.message = "2 points damaged".into();
        s
    }

    fn reply(status: u16, s: &VerifyStatus) -> Reply {
        Reply::json(status, &serde_json::to_string(s).unwrap())
    }

    fn args(point: Option<PointId>, no_wait: bool) -> VerifyArgs {
        VerifyArgs { pair: PairId::new("web-01").unwrap(), point, source: false, no_wait }
    }

    #[test]
    fn an_operation_names_its_task() {
        let pair = PairId::new("web-01").unwrap();
        let mut s = verify_status(VerifyState::Running, 10.0);
        assert!(!render_accepted(&pair, &s).contains("task"), "{}", render_accepted(&pair, &s));
        s.task = Some(drpair_types::TaskId(7));
        let accepted = render_accepted(&pair, &s);
        assert!(accepted.ends_with("; task 7 ('drpair tasks log 7' shows its steps)"), "{accepted}");
        s.state = VerifyState::Done;
        assert!(
            render_result(&pair, &s).lines().any(|l| l.starts_with("Task") && l.ends_with(" 7")),
            "{}",
            render_result(&pair, &s)
        );
    }

    #[test]
    fn polls_until_done_and_exits_0_when_intact() {
        let server = FakeServer::start(vec![
            reply(202, &verify_status(VerifyState::Running, 0.0)),
            reply(200, &verify_status(VerifyState::Running, 40.0)),
            reply(200, &verify_status(VerifyState::Done, 100.0)),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        verify_stored(&client, OutputFormat::Text, &args(Some(17), false), Duration::ZERO).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("POST", "/api/v1/pairs/web-01/verify"));
        let sent: VerifyRequest = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(sent, VerifyRequest { point: Some(17), wait: false });
        assert!(reqs[1..].iter().all(|r| r.method == "GET" && r.path == "/api/v1/pairs/web-01/verify"));
        assert_eq!(reqs.len(), 3);
    }

    #[test]
    fn damage_exits_12_with_the_status_as_json() {
        for output in [OutputFormat::Text, OutputFormat::Json] {
            let server = FakeServer::start(vec![
                reply(202, &verify_status(VerifyState::Running, 0.0)),
                reply(200, &damaged_status()),
            ]);
            let client = Client::new(&server.url, None).unwrap();
            let err = verify_stored(&client, output, &args(None, false), Duration::ZERO).unwrap_err();
            assert_eq!(err.exit_code(), exit::DAMAGE_FOUND);
            assert_eq!(err.exit_code(), 12);
            assert_eq!(
                err.to_string(),
                "verification of pair web-01 found damage: 2 recovery point(s) see damaged or missing chunks (12, 13)"
            );
            assert_eq!(err.to_json(), serde_json::to_value(damaged_status()).unwrap(), "the status, as on success");
            server.finish();
        }
    }

    #[test]
    fn a_failed_verification_exits_1() {
        let mut failed = verify_status(VerifyState::Failed, 30.0);
        failed.message = "the chunk store could not be read: I/O error".into();
        let server =
            FakeServer::start(vec![reply(202, &verify_status(VerifyState::Running, 0.0)), reply(200, &failed)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = verify_stored(&client, OutputFormat::Json, &args(None, false), Duration::ZERO).unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        assert_eq!(err.to_string(), "verification of pair web-01 failed: the chunk store could not be read: I/O error");
        assert_eq!(err.to_json()["state"], "failed");
        server.finish();
    }

    #[test]
    fn no_wait_prints_the_accepted_status() {
        let server = FakeServer::start(vec![reply(202, &verify_status(VerifyState::Running, 0.0))]);
        let client = Client::new(&server.url, None).unwrap();
        verify_stored(&client, OutputFormat::Text, &args(None, true), Duration::ZERO).unwrap();
        assert_eq!(server.finish().len(), 1, "no polling with --no-wait");
        assert_eq!(
            render_accepted(&PairId::new("web-01").unwrap(), &verify_status(VerifyState::Running, 0.0)),
            "verification of every point of pair web-01 started; 'drpair status web-01' shows how it goes on"
        );
    }

    #[test]
    fn refusals_keep_the_apis_message_and_code() {
        let cases = [
            (ErrorCode::InvalidPairState, "pair 'web-01': a verification is already running", exit::INVALID_STATE),
            (ErrorCode::PointNotFound, "pair 'web-01' has no point 99", exit::NOT_FOUND),
        ];
        for (code, message, want) in cases {
            let body = serde_json::to_string(&ApiError { code, message: message.into(), parameter: None }).unwrap();
            let server = FakeServer::start(vec![Reply::json(code.http_status(), &body)]);
            let client = Client::new(&server.url, None).unwrap();
            let err = verify_stored(&client, OutputFormat::Text, &args(Some(99), false), Duration::ZERO).unwrap_err();
            assert_eq!((err.exit_code(), err.to_string()), (want, message.to_string()));
            assert_eq!(server.finish().len(), 1);
        }
    }

    #[test]
    fn result_texts() {
        let pair = PairId::new("web-01").unwrap();
        let text = render_result(&pair, &damaged_status());
        for want in [
            "Verify:           DAMAGED: 2 point(s) damaged, 10 intact\n",
            "Pair:             web-01, every point\n",
            "Chunks checked:   1200 (3.0 MiB stored bytes read)\n",
            "Damaged points:   12, 13\n",
            "Started:          2026-05-01T10:00:00Z (on request)\n",
            "Finished:         2026-05-01T10:03:12Z (took 3m 12s)\n",
            "\nDamaged chunks (2):\nDISK  CHUNK  HASH  REASON         POINTS\n0     17     ab12  hash mismatch  13, 12\n1     4      cd34  missing        13\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let intact = render_result(&pair, &verify_status(VerifyState::Done, 100.0));
        assert!(intact.starts_with("Verify:           intact: 12 point(s) verified, none damaged\n"), "{intact}");
        assert!(!intact.contains("Damaged"), "{intact}");
    }

    #[test]
    fn status_lines() {
        let now = 1_777_629_900_000;
        let mut running = verify_status(VerifyState::Running, 42.0);
        running.point = Some(17);
        assert_eq!(status_line(&running, now), "running 42% (point 17, 1200 chunks checked), started 5m ago");
        assert_eq!(
            status_line(&verify_status(VerifyState::Done, 100.0), now),
            "intact at 2026-05-01T10:03:12Z (1m 48s ago): 12 point(s) verified, 1200 chunks checked"
        );
        assert_eq!(
            status_line(&damaged_status(), now),
            "DAMAGED at 2026-05-01T10:03:12Z (1m 48s ago): 2 point(s) see damaged or missing chunks: points 12, 13; \
             10 intact"
        );
    }
}
