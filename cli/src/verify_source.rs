//! `drpair verify PAIR --source`: the online verify against the agent's disks. The agent
//! reads and hashes every chunk, compares it with the newest recovery point, and ships the
//! chunks that differ although no change to them was tracked; the point that commits the
//! pass (the repair point) equals the source again.
//!
//! Invariants: as `verify.rs`: exit code 0 only when the pass was committed with no
//! mismatch, [`crate::error::exit::DAMAGE_FOUND`] when chunks mismatched (even though they
//! were repaired), 1 when the pass ended without a result; with `--output json` stdout holds
//! the final `SourceVerifyStatus` once.

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat};
use crate::poll::{Operation, Seen};
use drpair_types::{MismatchedChunk, PairId, SourceVerifyState, SourceVerifyStatus};
use std::time::Duration;

/// Mismatched chunks named on one line of `drpair status`.
const STATUS_SAMPLE: usize = 5;

/// Starts an online verify of `pair` and follows it, polling every `every`.
pub fn run(
    client: &Client,
    output: OutputFormat,
    pair: &PairId,
    no_wait: bool,
    every: Duration,
) -> Result<(), CliError> {
    let path = format!("/api/v1/pairs/{pair}/verify-source");
    let accepted = |s: &SourceVerifyStatus| {
        format!(
            "online verify of pair {pair} against its source {}; 'drpair status {pair}' shows how it goes on{}",
            s.state.label(),
            output::task_note(s.task)
        )
    };
    let job = Operation { client, output, path, every };
    match job.start(&serde_json::json!({}), no_wait, accepted, |_| format!("{pair} verify --source"), seen)? {
        Some((raw, status)) => finish(output, pair, raw, &status),
        None => Ok(()),
    }
}

fn seen(s: &SourceVerifyStatus) -> Seen {
    let message = match s.state {
        SourceVerifyState::Requested => "requested, waiting for the agent's pass".to_string(),
        _ => format!("{} chunks compared, {} mismatched", s.chunks_compared, s.mismatched_chunks),
    };
    Seen::progress(!s.state.is_active(), s.progress_percent, message)
}

/// Chunks of the source differed from the point.
pub fn found_mismatch(s: &SourceVerifyStatus) -> bool {
    s.state == SourceVerifyState::Done && (s.mismatched_chunks > 0 || !s.sample.is_empty())
}

/// Prints the verify that ended and turns mismatches or failure into the error.
fn finish(output: OutputFormat, pair: &PairId, raw: serde_json::Value, s: &SourceVerifyStatus) -> Result<(), CliError> {
    let error = match s.state {
        SourceVerifyState::Failed => Some(format!("online verify of pair {pair} failed: {}", s.message)),
        SourceVerifyState::Done if found_mismatch(s) => Some(format!(
            "online verify of pair {pair}: {} chunk(s) of the source differed from {}{}",
            s.mismatched_chunks,
            point_words(s.against_point),
            s.repair_point.map(|p| format!("; repaired in point {p}")).unwrap_or_default()
        )),
        _ => None,
    };
    match output {
        // The error prints the status, so stdout holds it once.
        OutputFormat::Json if error.is_some() => {}
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => output::emit(&render_result(pair, s)),
    }
    match error {
        Some(message) => Err(CliError::JobOutcome { damage: s.state == SourceVerifyState::Done, message, status: raw }),
        None => Ok(()),
    }
}

fn point_words(point: Option<u64>) -> String {
    point.map_or_else(|| "the newest point".to_string(), |p| format!("point {p}"))
}

/// The text form of an online verify that ended.
pub fn render_result(pair: &PairId, s: &SourceVerifyStatus) -> String {
    let against = point_words(s.against_point);
    let verdict = match s.state {
        SourceVerifyState::Requested | SourceVerifyState::Running => {
            format!("{} {}", s.state.label(), output::format_percent(s.progress_percent))
        }
        SourceVerifyState::Failed => "FAILED: the pass ended without a result".to_string(),
        SourceVerifyState::Done if found_mismatch(s) => format!(
            "MISMATCHED: {} chunk(s) differed from {against}{}",
            s.mismatched_chunks,
            s.repair_point.map(|p| format!(", repaired in point {p}")).unwrap_or_default()
        ),
        SourceVerifyState::Done => format!("no mismatch: the source equals {against}"),
    };
    let mut b = Block::default();
    b.line("Source verify", verdict);
    b.line("Pair", format!("{pair}, source compared with {against}"));
    b.line("Chunks compared", s.chunks_compared.to_string());
    let mut mismatched = s.mismatched_chunks.to_string();
    if s.mismatched_chunks > 0 {
        mismatched.push_str(" (differed from the point although no change to them was tracked)");
    }
    for line in sample_lines(&s.sample) {
        mismatched.push('\n');
        mismatched.push_str(&line);
    }
    let unlisted = s.mismatched_chunks.saturating_sub(s.sample.len() as u64);
    if unlisted > 0 && !s.sample.is_empty() {
        mismatched.push_str(&format!("\n({unlisted} more not listed)"));
    }
    b.line("Mismatched", mismatched);
    b.line("Shipped", format!("{} chunk(s) (mismatches repaired plus ordinary changes)", s.shipped_chunks));
    if let Some(p) = s.repair_point {
        b.line("Repair point", format!("{p} (equals the source as read by the pass)"));
    }
    b.line("Started", output::format_time(s.requested_unix_ms));
    if let Some(done) = s.finished_unix_ms {
        let took = done.saturating_sub(s.requested_unix_ms) / 1000;
        b.line("Finished", format!("{} (took {})", output::format_time(done), output::format_duration(took)));
    }
    if !s.message.is_empty() {
        b.line("Result", s.message.clone());
    }
    b.render()
}

/// The sample grouped by disk, in the order given: `disk 0: chunks 17, 23`.
pub fn sample_lines(sample: &[MismatchedChunk]) -> Vec<String> {
    let mut disks: Vec<(u32, Vec<u64>)> = Vec::new();
    for c in sample {
        match disks.iter_mut().find(|(d, _)| *d == c.disk) {
            Some((_, chunks)) => chunks.push(c.chunk),
            None => disks.push((c.disk, vec![c.chunk])),
        }
    }
    disks
        .into_iter()
        .map(|(disk, chunks)| {
            let list = chunks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
            format!("disk {disk}: chunk{} {list}", if chunks.len() == 1 { "" } else { "s" })
        })
        .collect()
}

/// One line for `drpair status`: where the running or last online verify stands.
pub fn status_line(s: &SourceVerifyStatus, now_ms: u64) -> String {
    let when = s
        .finished_unix_ms
        .map(|t| format!(" at {} ({})", output::format_time(t), output::format_age(t, now_ms)))
        .unwrap_or_default();
    let against = point_words(s.against_point);
    match s.state {
        SourceVerifyState::Requested => {
            format!("requested {}, waiting for the agent's pass", output::format_age(s.requested_unix_ms, now_ms))
        }
        SourceVerifyState::Running => format!(
            "running {} against {against} ({} chunks compared, {} mismatched), started {}",
            output::format_percent(s.progress_percent),
            s.chunks_compared,
            s.mismatched_chunks,
            output::format_age(s.requested_unix_ms, now_ms)
        ),
        SourceVerifyState::Failed => format!("FAILED{when}: {}", s.message),
        SourceVerifyState::Done if found_mismatch(s) => {
            let mut sample: Vec<String> =
                s.sample.iter().take(STATUS_SAMPLE).map(|c| format!("disk {} chunk {}", c.disk, c.chunk)).collect();
            if s.mismatched_chunks > sample.len() as u64 {
                sample.push("…".into());
            }
            let sample = if s.sample.is_empty() { String::new() } else { format!(" ({})", sample.join(", ")) };
            let repaired = s.repair_point.map(|p| format!("; repaired in point {p}")).unwrap_or_default();
            format!("MISMATCHED{when}: {} chunk(s) differed from {against}{sample}{repaired}", s.mismatched_chunks)
        }
        SourceVerifyState::Done => {
            format!("no mismatch{when}: {} chunks compared with {against}", s.chunks_compared)
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{ApiError, ErrorCode};

    pub(crate) fn source_status(state: SourceVerifyState, percent: f64) -> SourceVerifyStatus {
        let done = !state.is_active();
        SourceVerifyStatus {
            task: None,
            state,
            requested_unix_ms: 1_777_629_600_000,
            finished_unix_ms: done.then_some(1_777_629_660_000),
            against_point: Some(41),
            progress_percent: percent,
            chunks_compared: 163_840,
            mismatched_chunks: 0,
            shipped_chunks: 17,
            sample: Vec::new(),
            repair_point: done.then_some(42),
            message: "the source equals point 41".into(),
        }
    }

    pub(crate) fn mismatched() -> SourceVerifyStatus {
        let mut s = source_status(SourceVerifyState::Done, 100.0);
        s.mismatched_chunks = 3;
        s.sample = vec![
            MismatchedChunk { disk: 0, chunk: 17 },
            MismatchedChunk { disk: 1, chunk: 4 },
            MismatchedChunk { disk: 0, chunk: 23 },
        ];
        s.message = "3 chunks differed; repaired in point 42".into();
        s
    }

    fn reply(status: u16, s: &SourceVerifyStatus) -> Reply {
        Reply::json(status, &serde_json::to_string(s).unwrap())
    }

    fn pair() -> PairId {
        PairId::new("web-01").unwrap()
    }

    #[test]
    fn polls_until_done_and_exits_0_without_mismatch() {
        let server = FakeServer::start(vec![
            reply(202, &source_status(SourceVerifyState::Requested, 0.0)),
            reply(200, &source_status(SourceVerifyState::Running, 50.0)),
            reply(200, &source_status(SourceVerifyState::Done, 100.0)),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        run(&client, OutputFormat::Text, &pair(), false, Duration::ZERO).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("POST", "/api/v1/pairs/web-01/verify-source"));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&reqs[0].body).unwrap(), serde_json::json!({}));
        assert!(reqs[1..].iter().all(|r| r.method == "GET" && r.path == "/api/v1/pairs/web-01/verify-source"));
        assert_eq!(reqs.len(), 3);
    }

    #[test]
    fn mismatches_exit_12() {
        for output in [OutputFormat::Text, OutputFormat::Json] {
            let server = FakeServer::start(vec![
                reply(202, &source_status(SourceVerifyState::Running, 0.0)),
                reply(200, &mismatched()),
            ]);
            let client = Client::new(&server.url, None).unwrap();
            let err = run(&client, output, &pair(), false, Duration::ZERO).unwrap_err();
            assert_eq!(err.exit_code(), exit::DAMAGE_FOUND);
            assert_eq!(
                err.to_string(),
                "online verify of pair web-01: 3 chunk(s) of the source differed from point 41; repaired in point 42"
            );
            assert_eq!(err.to_json(), serde_json::to_value(mismatched()).unwrap());
            server.finish();
        }
    }

    #[test]
    fn failure_no_wait_and_refusals() {
        let mut failed = source_status(SourceVerifyState::Failed, 20.0);
        failed.message = "the agent disconnected".into();
        let server =
            FakeServer::start(vec![reply(202, &source_status(SourceVerifyState::Requested, 0.0)), reply(200, &failed)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = run(&client, OutputFormat::Text, &pair(), false, Duration::ZERO).unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        assert_eq!(err.to_string(), "online verify of pair web-01 failed: the agent disconnected");
        server.finish();

        let server = FakeServer::start(vec![reply(202, &source_status(SourceVerifyState::Requested, 0.0))]);
        let client = Client::new(&server.url, None).unwrap();
        run(&client, OutputFormat::Json, &pair(), true, Duration::ZERO).unwrap();
        assert_eq!(server.finish().len(), 1, "no polling with --no-wait");

        let message = "pair 'web-01': no agent connected; an online verify needs the agent";
        let body = serde_json::to_string(&ApiError {
            code: ErrorCode::InvalidPairState,
            message: message.into(),
            parameter: None,
        })
        .unwrap();
        let server = FakeServer::start(vec![Reply::json(409, &body)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = run(&client, OutputFormat::Text, &pair(), false, Duration::ZERO).unwrap_err();
        assert_eq!((err.exit_code(), err.to_string()), (exit::INVALID_STATE, message.to_string()));
        server.finish();
    }

    #[test]
    fn result_texts() {
        let text = render_result(&pair(), &mismatched());
        for want in [
            "Source verify:    MISMATCHED: 3 chunk(s) differed from point 41, repaired in point 42\n",
            "Pair:             web-01, source compared with point 41\n",
            "Chunks compared:  163840\n",
            "Mismatched:       3 (differed from the point although no change to them was tracked)\n\
             \x20                 disk 0: chunks 17, 23\n\
             \x20                 disk 1: chunk 4\n",
            "Shipped:          17 chunk(s) (mismatches repaired plus ordinary changes)\n",
            "Repair point:     42 (equals the source as read by the pass)\n",
            "Finished:         2026-05-01T10:01:00Z (took 1m)\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let mut more = mismatched();
        more.mismatched_chunks = 70;
        assert!(render_result(&pair(), &more).contains("disk 1: chunk 4\n                  (67 more not listed)\n"));
        let clean = render_result(&pair(), &source_status(SourceVerifyState::Done, 100.0));
        assert!(clean.starts_with("Source verify:    no mismatch: the source equals point 41\n"), "{clean}");
        assert!(clean.contains("Mismatched:       0\n"), "{clean}");
    }

    #[test]
    fn status_lines() {
        let now = 1_777_629_900_000;
        assert_eq!(
            status_line(&source_status(SourceVerifyState::Running, 42.0), now),
            "running 42% against point 41 (163840 chunks compared, 0 mismatched), started 5m ago"
        );
        assert_eq!(
            status_line(&mismatched(), now),
            "MISMATCHED at 2026-05-01T10:01:00Z (4m ago): 3 chunk(s) differed from point 41 (disk 0 chunk 17, \
             disk 1 chunk 4, disk 0 chunk 23); repaired in point 42"
        );
        assert_eq!(
            status_line(&source_status(SourceVerifyState::Done, 100.0), now),
            "no mismatch at 2026-05-01T10:01:00Z (4m ago): 163840 chunks compared with point 41"
        );
        assert_eq!(
            status_line(&source_status(SourceVerifyState::Requested, 0.0), now),
            "requested 5m ago, waiting for the agent's pass"
        );
    }
}
