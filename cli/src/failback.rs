//! `drpair failback PAIR --from DEVICE_OR_FILE… --direction to-original|to-recovered`: make
//! the two sides of a failed-over pair equal again by a differential resync, in the
//! direction the operator names.
//!
//! Invariants: the CLI never picks a direction. `--direction` is optional in clap on purpose:
//! without it the request is still sent (without a direction), so the standby's refusal and
//! its explanation are shown and the command exits 8 (bad input); no question is asked then,
//! as nothing can be overwritten. With a direction nothing is sent before the operator
//! confirmed (or gave `--yes`). Exit code 0 only when the failback is done (or, with
//! `--no-wait`, accepted); a failed one exits 1 and, with `--output json`, stdout holds the
//! final `FailbackStatus` once.

use crate::client::{CliError, Client};
use crate::confirm;
use crate::failover::{POLL_EVERY, absolute_paths, disk_list, finish_job, operator};
use crate::output::{self, Block, OutputFormat, format_size as size};
use crate::poll::{Operation, Seen};
use clap::builder::NonEmptyStringValueParser;
use clap::{Args, ValueEnum};
use drpair_types::{FailbackDirection, FailbackPhase, FailbackRequest, FailbackStatus, JobState, PairId};
use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    about = "Fail a pair back: make the original and the recovered side equal again",
    long_about = "Fail a failed-over DR pair back (POST /api/v1/pairs/PAIR/failback): the two sides \
        are made equal again by a differential resync, and replication resumes from the \
        original server. --from names the recovered side (the failover's targets, or wherever \
        their data now is): one block device or file on the standby's host per disk of the \
        pair, in disk order; relative paths are made absolute against the current directory.\n\n\
        --direction says which side's data wins; a failback never guesses, and without \
        --direction the standby refuses (exit code 8) and explains the two choices:\n  \
        to-original   the recovered side's data is written onto the ORIGINAL server's disks \
        (through the agent). The original's current state is first kept as a recovery point \
        (pinned), so what was written there since the failover can still be exported. The usual \
        failback.\n  \
        to-recovered  the original server's data is written onto the --from paths: the failover \
        is abandoned and whatever was written on the recovered side since is lost.\n\
        Only the chunks where the two sides differ are moved.\n\n\
        --from-protected (instead of --from) takes the recovered side from the newest point of \
        the pair protecting the recovered disks ('drpair pairs protect-recovered', or 'failover \
        --protect'): its agent cuts a final point when the failback compares, the comparison \
        reads no disk (it compares the two pairs' chunk hashes), and only the chunks that differ \
        from the original's state move onto the original disks. It implies --direction \
        to-original; the protecting agent stops once the failback ends the failover (its pair \
        and points are kept).\n\n\
        The command prints on stderr which side is overwritten and asks you to type the pair \
        id; anything else, or end of input, aborts with exit code 9 and nothing is changed. \
        --yes skips the question (the warning is still printed).\n\n\
        It then polls the failback (GET /api/v1/pairs/PAIR/failback every 0.2 s) with a \
        progress bar on stderr showing the phase (keeping the original, comparing, writing, \
        checking), and prints the direction, the chunks that differed, the chunks and bytes \
        moved, the original point kept, the chunks changed on each side since the failover and \
        the check of the first point after the failback (to-original). Ctrl-C stops following, \
        not the failback. With --no-wait it prints the accepted failback and exits 0 at once.\n\n\
        Exit codes: 0 when the failback is done; 1 when it failed (see the message: the pair \
        stays failed over when nothing was overwritten yet); 4 when the pair is not failed over; \
        8 when a parameter was refused (no --direction, not one --from per disk).\n\n\
        With --output json: the final FailbackStatus object (also when it failed).",
    after_help = "Examples:\n  drpair failback web-01 --from /dev/vg0/web01-sda --direction to-original\n  \
        drpair failback web-01 --from /srv/failover/sda.img --from /srv/failover/sdb.img --direction to-original --yes\n  \
        drpair failback web-01 --from /dev/vg0/web01-sda --direction to-recovered\n  \
        drpair failback web-01 --from-protected --yes\n  \
        drpair failback web-01 --from /dev/vg0/web01-sda --direction to-original --yes --no-wait"
)]
pub struct FailbackArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Block device or file on the standby's host holding the recovered side of one disk;
    /// once per disk, in disk order
    #[arg(long = "from", value_name = "DEVICE_OR_FILE", required_unless_present = "from_protected", value_parser = NonEmptyStringValueParser::new())]
    pub from: Vec<String>,
    /// Take the recovered side from the newest point of the pair protecting the recovered
    /// disks (protect-recovered) instead of --from; implies --direction to-original
    #[arg(long, conflicts_with = "from")]
    pub from_protected: bool,
    /// Which side's data wins (required by the standby; never guessed)
    #[arg(long, value_name = "DIRECTION", value_enum)]
    pub direction: Option<DirectionArg>,
    /// Do not ask for the pair id (the warning is still printed)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the accepted failback and exit 0 without following it
    #[arg(long)]
    pub no_wait: bool,
}

/// `--direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DirectionArg {
    /// Write the recovered side's data onto the original server's disks (after keeping their
    /// state as a recovery point)
    ToOriginal,
    /// Write the original server's data onto the --from paths (abandon the failover)
    ToRecovered,
}

impl From<DirectionArg> for FailbackDirection {
    fn from(d: DirectionArg) -> Self {
        match d {
            DirectionArg::ToOriginal => FailbackDirection::ToOriginal,
            DirectionArg::ToRecovered => FailbackDirection::ToRecovered,
        }
    }
}

impl FailbackArgs {
    /// The request: the --from paths made absolute against `cwd`, `operator` as given.
    pub fn request(
        &self,
        cwd: &std::io::Result<PathBuf>,
        operator: Option<String>,
    ) -> Result<FailbackRequest, CliError> {
        Ok(FailbackRequest {
            from: absolute_paths(&self.from, cwd)?,
            from_protected: self.from_protected,
            direction: self.direction.map(Into::into),
            operator,
        })
    }
}

/// What the operator confirms: which side gets overwritten. None without a direction (the
/// standby refuses; nothing is overwritten).
pub fn warnings(pair: &PairId, r: &FailbackRequest) -> Option<Vec<String>> {
    let from = match r.from_protected {
        true => "the newest point of the pair protecting the recovered disks".to_string(),
        false => disk_list(&r.from),
    };
    let direction = r.direction.or(r.from_protected.then_some(FailbackDirection::ToOriginal));
    Some(match direction? {
        FailbackDirection::ToOriginal => vec![
            format!(
                "warning: failback of pair {pair} to-original: the ORIGINAL server's disks are overwritten with the \
                 recovered side's data ({from}), through the agent"
            ),
            "warning: the original's current state is first kept as a recovery point (pinned); replication then \
             resumes from the original server"
                .to_string(),
        ],
        FailbackDirection::ToRecovered => vec![
            format!(
                "warning: failback of pair {pair} to-recovered: the recovered side ({from}) is overwritten with the \
                 original server's data; what was written there since the failover is lost"
            ),
            "warning: the failover is abandoned; the original server stays the source and replication resumes"
                .to_string(),
        ],
    })
}

pub fn run(
    client: &Client,
    output: OutputFormat,
    args: &FailbackArgs,
    input: &mut dyn BufRead,
) -> Result<(), CliError> {
    let request = args.request(&std::env::current_dir(), operator())?;
    failback(client, output, args, &request, input, POLL_EVERY)
}

/// Confirms (when a direction is given), starts the failback and follows it, polling every
/// `every`.
fn failback(
    client: &Client,
    output: OutputFormat,
    args: &FailbackArgs,
    request: &FailbackRequest,
    input: &mut dyn BufRead,
    every: Duration,
) -> Result<(), CliError> {
    let pair = &args.pair;
    if let Some(warnings) = warnings(pair, request) {
        confirm::warn_and_confirm(pair, &warnings, args.yes, input)?;
    }
    let path = format!("/api/v1/pairs/{pair}/failback");
    let accepted = |s: &FailbackStatus| {
        format!(
            "failback of pair {pair} {} started; 'drpair status {pair}' shows how it goes on{}",
            s.direction.as_str(),
            output::task_note(s.task)
        )
    };
    let prefix = |s: &FailbackStatus| format!("{pair} failback {}", s.direction.as_str());
    match (Operation { client, output, path, every }).start(request, args.no_wait, accepted, prefix, seen)? {
        Some((raw, status)) => finish(output, pair, raw, &status),
        None => Ok(()),
    }
}

fn seen(s: &FailbackStatus) -> Seen {
    Seen::progress(s.state != JobState::Running, s.progress_percent, phase_words(s))
}

/// What a running failback is doing, shown after its percent.
fn phase_words(s: &FailbackStatus) -> String {
    match s.phase {
        FailbackPhase::KeepingOriginal => "keeping the original's state as a recovery point".to_string(),
        FailbackPhase::Comparing => {
            format!("comparing: {} of {} chunks, {} differ", s.chunks_compared, s.chunks_total, s.differing_chunks)
        }
        FailbackPhase::Writing => {
            format!("writing: {} of {} chunks ({})", s.chunks_moved, s.differing_chunks, size(s.bytes_moved))
        }
        FailbackPhase::Checking => "checking the first point after the failback".to_string(),
        FailbackPhase::Finished => "finished".to_string(),
    }
}

/// Prints the failback that ended and turns a failure into the error.
fn finish(output: OutputFormat, pair: &PairId, raw: serde_json::Value, s: &FailbackStatus) -> Result<(), CliError> {
    let failure = (s.state == JobState::Failed).then(|| format!("failback of pair {pair} failed: {}", s.message));
    finish_job(output, raw, failure, || render_result(pair, s))
}

/// The check of the first point after a to-original failback.
pub fn check_words(s: &FailbackStatus) -> String {
    match (s.check_point, s.check_mismatched_chunks) {
        (Some(p), Some(0)) => format!("passed: point {p} equals the recovered side"),
        (Some(p), Some(n)) => format!("MISMATCH: point {p} differs from the recovered side in {n} chunk(s)"),
        _ if s.direction == FailbackDirection::ToRecovered => "- (not checked to-recovered)".to_string(),
        _ => "not checked (yet)".to_string(),
    }
}

/// The text form of a failback that ended.
pub fn render_result(pair: &PairId, s: &FailbackStatus) -> String {
    let mut b = Block::default();
    let verdict = match s.state {
        JobState::Running => {
            format!("running {} ({})", output::format_percent(s.progress_percent), output::wire_name(&s.phase))
        }
        JobState::Done => "done: the two sides are equal; replication resumed from the original side".to_string(),
        JobState::Failed => "FAILED".to_string(),
    };
    b.line("Failback", verdict);
    b.line("Pair", pair.to_string());
    if let Some(t) = s.task {
        b.line("Task", t.to_string());
    }
    let overwritten = match s.direction {
        FailbackDirection::ToOriginal => "the recovered side's data written onto the original disks",
        FailbackDirection::ToRecovered => "the original side's data written onto the recovered side",
    };
    b.line("Direction", format!("{} ({overwritten})", s.direction.as_str()));
    match &s.from_protected {
        Some(p) => b.line("From", format!("point {} of the protecting pair {}", p.point, p.pair)),
        None => {
            let from: Vec<String> = s.from.iter().enumerate().map(|(i, f)| format!("disk {i}: {f}")).collect();
            b.line("From", from.join("\n"));
        }
    }
    b.line("Failover point", s.failover_point.to_string());
    b.line("Original kept", s.original_point.map_or_else(|| "-".to_string(), |p| format!("point {p} (pinned)")));
    let since = format!("since point {}", s.failover_point);
    b.line("Original changed", format!("{} chunk(s) {since}", s.original_changed_chunks));
    b.line("Recovered changed", format!("{} chunk(s) {since}", s.recovered_changed_chunks));
    b.line(
        "Differing chunks",
        format!("{} ({} of {} chunks compared)", s.differing_chunks, s.chunks_compared, s.chunks_total),
    );
    b.line("Moved", format!("{} chunk(s), {} ({} bytes)", s.chunks_moved, size(s.bytes_moved), s.bytes_moved));
    b.line("Check", check_words(s));
    let finished = s.finished_at.as_ref().map(|t| format!(", finished {t}")).unwrap_or_default();
    let by = s.operator.as_ref().map(|o| format!(" by {o}")).unwrap_or_default();
    b.line("Started", format!("{}{by}{finished}", s.started_at));
    if !s.message.is_empty() {
        b.line("Message", s.message.clone());
    }
    b.render()
}

/// One line for `drpair status`: where the running or last failback stands.
pub fn status_line(s: &FailbackStatus) -> String {
    let dir = s.direction.as_str();
    match s.state {
        JobState::Running => format!(
            "running {} {dir}, {}: {} differing chunk(s), {} moved",
            output::format_percent(s.progress_percent),
            output::wire_name(&s.phase),
            s.differing_chunks,
            s.chunks_moved
        ),
        JobState::Done => format!(
            "done {dir}{}: {} chunk(s) ({}) moved",
            s.finished_at.as_ref().map(|t| format!(" at {t}")).unwrap_or_default(),
            s.chunks_moved,
            size(s.bytes_moved)
        ),
        JobState::Failed => format!("FAILED {dir}: {}", s.message),
    }
}

/// The counts line of `drpair status`.
pub fn status_counts(s: &FailbackStatus) -> String {
    format!(
        "original changed {}, recovered changed {}, differing {}; original kept as {}",
        s.original_changed_chunks,
        s.recovered_changed_chunks,
        s.differing_chunks,
        s.original_point.map_or_else(|| "-".to_string(), |p| format!("point {p}"))
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{ApiError, ErrorCode};
    use std::io::Cursor;

    pub(crate) fn failback_status(state: JobState, phase: FailbackPhase) -> FailbackStatus {
        let over = state != JobState::Running;
        FailbackStatus {
            task: None,
            from_protected: None,
            pair_id: PairId::new("web-01").unwrap(),
            state,
            phase,
            direction: FailbackDirection::ToOriginal,
            from: vec!["/dev/vg0/sda".into()],
            failover_point: 42,
            original_point: Some(57),
            original_changed_chunks: 12,
            recovered_changed_chunks: 300,
            differing_chunks: 305,
            chunks_compared: 163_840,
            chunks_total: 163_840,
            chunks_moved: if over { 305 } else { 100 },
            bytes_moved: 305 * 65536,
            progress_percent: if over { 100.0 } else { 60.0 },
            check_point: over.then_some(58),
            check_mismatched_chunks: over.then_some(0),
            started_at: "2026-05-02T09:00:00Z".into(),
            finished_at: over.then(|| "2026-05-02T09:03:00Z".into()),
            operator: Some("alice".into()),
            message: match state {
                JobState::Failed => "failback failed: the agent is not connected; the pair stays failed over".into(),
                _ => "the sides are equal".into(),
            },
        }
    }

    fn reply(status: u16, s: &FailbackStatus) -> Reply {
        Reply::json(status, &serde_json::to_string(s).unwrap())
    }

    fn args(direction: Option<DirectionArg>, yes: bool) -> FailbackArgs {
        FailbackArgs {
            pair: PairId::new("web-01").unwrap(),
            from: vec!["sda.img".into()],
            from_protected: false,
            direction,
            yes,
            no_wait: false,
        }
    }

    fn run_fake(a: &FailbackArgs, input: &str, replies: Vec<Reply>) -> (Result<(), CliError>, Vec<serde_json::Value>) {
        let server = FakeServer::start(replies);
        let client = Client::new(&server.url, None).unwrap();
        let request = a.request(&Ok(PathBuf::from("/srv/fo")), Some("alice".into())).unwrap();
        let result =
            failback(&client, OutputFormat::Text, a, &request, &mut Cursor::new(input.as_bytes()), Duration::ZERO);
        let bodies = server.finish().iter().map(|r| serde_json::from_slice(&r.body).unwrap_or_default()).collect();
        (result, bodies)
    }

    #[test]
    fn without_direction_the_standbys_refusal_is_shown_with_exit_8() {
        let message = "say which way the failback copies: \"to-original\" writes the recovered side's data onto \
                       the original disk, \"to-recovered\" writes the original side's data onto the recovered side";
        let body = serde_json::to_string(&ApiError {
            code: ErrorCode::InvalidParameter,
            message: message.into(),
            parameter: Some("direction".into()),
        })
        .unwrap();
        // No --yes and no answer on stdin: no question is asked, the request goes out.
        let (result, bodies) = run_fake(&args(None, false), "", vec![Reply::json(400, &body)]);
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_PARAMETER);
        assert_eq!(err.exit_code(), 8);
        assert_eq!(err.to_string(), format!("{message} (parameter 'direction')"));
        assert_eq!(err.to_json()["parameter"], "direction");
        assert!(bodies[0]["direction"].is_null(), "{}", bodies[0]);
        assert_eq!(bodies[0]["from"], serde_json::json!(["/srv/fo/sda.img"]));
    }

    #[test]
    fn direction_is_sent_kebab_case_and_the_failback_followed() {
        let (result, bodies) = run_fake(
            &args(Some(DirectionArg::ToOriginal), false),
            "web-01\n",
            vec![
                reply(202, &failback_status(JobState::Running, FailbackPhase::KeepingOriginal)),
                reply(200, &failback_status(JobState::Running, FailbackPhase::Writing)),
                reply(200, &failback_status(JobState::Done, FailbackPhase::Finished)),
            ],
        );
        result.unwrap();
        assert_eq!(bodies.len(), 3);
        assert_eq!(bodies[0]["direction"], "to-original");
        assert_eq!(bodies[0]["operator"], "alice");
        let r = args(Some(DirectionArg::ToRecovered), true).request(&Ok(PathBuf::from("/")), None).unwrap();
        assert_eq!(serde_json::to_value(&r).unwrap()["direction"], "to-recovered");
    }

    #[test]
    fn a_failed_failback_exits_1_and_unconfirmed_sends_nothing() {
        let (result, _) = run_fake(
            &args(Some(DirectionArg::ToOriginal), true),
            "",
            vec![
                reply(202, &failback_status(JobState::Running, FailbackPhase::KeepingOriginal)),
                reply(200, &failback_status(JobState::Failed, FailbackPhase::Finished)),
            ],
        );
        let err = result.unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        assert!(err.to_string().starts_with("failback of pair web-01 failed: failback failed: the agent"), "{err}");
        assert_eq!(err.to_json()["state"], "failed");

        let (result, bodies) = run_fake(&args(Some(DirectionArg::ToRecovered), false), "no\n", vec![]);
        assert_eq!(result.unwrap_err().exit_code(), exit::ABORTED);
        assert!(bodies.is_empty());
    }

    #[test]
    fn warnings_name_the_side_overwritten() {
        let pair = PairId::new("web-01").unwrap();
        let cwd = Ok(PathBuf::from("/srv/fo"));
        let r = args(Some(DirectionArg::ToOriginal), true).request(&cwd, None).unwrap();
        let w = warnings(&pair, &r).unwrap().join("\n");
        assert!(w.contains("the ORIGINAL server's disks are overwritten") && w.contains("kept as a recovery point"));
        let r = args(Some(DirectionArg::ToRecovered), true).request(&cwd, None).unwrap();
        let w = warnings(&pair, &r).unwrap().join("\n");
        assert!(w.contains("the recovered side (/srv/fo/sda.img (disk 0)) is overwritten"), "{w}");
        assert_eq!(warnings(&pair, &args(None, true).request(&cwd, None).unwrap()), None);
    }

    #[test]
    fn result_texts() {
        let pair = PairId::new("web-01").unwrap();
        let text = render_result(&pair, &failback_status(JobState::Done, FailbackPhase::Finished));
        for want in [
            "Failback:           done: the two sides are equal; replication resumed from the original side\n",
            "Direction:          to-original (the recovered side's data written onto the original disks)\n",
            "Original kept:      point 57 (pinned)\n",
            "Original changed:   12 chunk(s) since point 42\n",
            "Recovered changed:  300 chunk(s) since point 42\n",
            "Differing chunks:   305 (163840 of 163840 chunks compared)\n",
            "Moved:              305 chunk(s), 19.1 MiB (19988480 bytes)\n",
            "Check:              passed: point 58 equals the recovered side\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let running = failback_status(JobState::Running, FailbackPhase::Comparing);
        assert_eq!(phase_words(&running), "comparing: 163840 of 163840 chunks, 305 differ");
        assert!(
            matches!(seen(&running), Seen::Running { ref line, .. } if line.ends_with(" comparing: 163840 of 163840 chunks, 305 differ")),
            "{:?}",
            seen(&running)
        );
        assert_eq!(status_line(&running), "running 60% to-original, comparing: 305 differing chunk(s), 100 moved");
    }
}
