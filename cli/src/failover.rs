//! `drpair failover PAIR (--point ID | --latest) --to DEVICE_OR_FILE…`: materialise a
//! recovery point onto block devices or files on the standby's host; the pair is fenced
//! (replication stops) until `drpair failback` (`failback.rs`).
//!
//! Invariants: nothing is sent before the operator confirmed (or gave `--yes`); the targets
//! are sent as absolute paths (relative ones are resolved against the CLI's current
//! directory, as the CLI usually runs on the standby); the command exits 0 only when the
//! failover is done (or, with `--no-wait`, accepted); a failed failover exits 1 and, with
//! `--output json`, stdout holds the final `FailoverStatus` once, whatever the outcome.

use crate::client::{CliError, Client};
use crate::confirm;
use crate::output::{self, Block, OutputFormat, format_size as size};
use crate::poll::{Operation, Seen};
use clap::builder::NonEmptyStringValueParser;
use clap::{ArgGroup, Args};
use drpair_types::{FailoverRequest, FailoverStatus, JobState, PairId, PointId};
use std::io::BufRead;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// Time between two polls of a running failover or failback.
pub const POLL_EVERY: Duration = Duration::from_millis(200);

#[derive(Debug, Args)]
#[command(
    group(ArgGroup::new("which").required(true).args(["point", "latest", "stop_instant"])),
    about = "Fail a pair over: write a recovery point onto devices or files on the standby",
    long_about = "Fail a DR pair over (POST /api/v1/pairs/PAIR/failover): every disk of a recovery \
        point (--point ID, or --latest for the newest one) is written onto a block device or a \
        file on the standby's host, one --to per disk of the pair, in disk order. A file that \
        does not exist is created (sparse); a regular file that already has data is refused \
        unless --force. Relative paths are made absolute against the current directory before \
        they are sent (the paths are opened by the standby, on its host).\n\n\
        From then on the pair is fenced (state Failed over): replication stops, the agent ships \
        nothing and the standby commits no point, until 'drpair failback' makes the two sides \
        equal again. Boot or mount the targets to run the service from the standby's side.\n\n\
        The command prints on stderr what happens and asks you to type the pair id; anything \
        else, or end of input, aborts with exit code 9 and nothing is changed. --yes skips the \
        question (the warning is still printed).\n\n\
        It then polls the failover (GET /api/v1/pairs/PAIR/failover every 0.2 s) with a \
        progress bar in bytes on stderr, and prints the point, the targets, the bytes written, \
        the time taken and the throughput. Ctrl-C stops following, not the failover. With \
        --no-wait it prints the accepted failover and exits 0 at once; 'drpair status PAIR' \
        shows how it goes on.\n\n\
        Exit codes: 0 when the failover is done; 1 when it failed (the pair stays fenced: run \
        failover again); 3 when the point does not exist; 4 when the pair's state does not \
        allow a failover; 8 when a parameter was refused (e.g. not one --to per disk).\n\n\
        With --output json: the final FailoverStatus object (also when it failed).\n\n\
        Instant recovery (--instant): the recovered disks are usable at once while the point is \
        copied onto the targets underneath. Without --boot the standby serves them as writable \
        NBD exports (their URIs are printed; attach qemu, qemu-img, nbdfuse…): a write lands on \
        the target at once and drpair copies the rest around it; when the copy is complete the \
        same exports carry on from the targets alone. With --boot (and --memory, --cpus, \
        --firmware, --expect, --timeout as for a boot drill) the standby runs the machine in a \
        QEMU guest whose writes go to an overlay, QEMU's blockdev-mirror copies onto the \
        targets, and the guest is switched onto them without a restart; the overlay is then \
        released. The command follows the copy to its end. The session (guest or exports) \
        keeps running after it: 'drpair failover PAIR --stop-instant' ends it (the guest is \
        powered off) once the copy is complete. A standby restart resumes the copy; a guest \
        dies with the standby and is started again (from its overlay, or from the targets once \
        the copy was complete).\n\n\
        Protection while failed over (--protect): once the point is on the targets, the standby \
        starts an agent (drpaird agent, supervised by the standby) for the targets under a new \
        pair PAIR-recovered linked to this one, so recovery points keep being cut while the \
        original site is down; the command waits for it and prints it. 'drpair pairs \
        protect-recovered PAIR' does the same later, with more choices (another standby, the \
        tracker, the cut interval), and 'drpair failback PAIR --from-protected' fails back from \
        that pair's newest point. Not with --instant.",
    after_help = "Examples:\n  drpair failover web-01 --latest --to /dev/vg0/web01-sda\n  \
        drpair failover web-01 --point 42 --to /srv/failover/sda.img --to /srv/failover/sdb.img\n  \
        drpair failover web-01 --latest --to sda.img --force --yes\n  \
        drpair failover web-01 --latest --to /dev/vg0/web01-sda --yes --no-wait\n  \
        drpair failover web-01 --latest --to /dev/vg0/web01-sda --protect --yes\n  \
        drpair failover web-01 --latest --to /dev/vg0/web01-sda --yes --output json | jq .throughput_bytes_per_sec"
)]
pub struct FailoverArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// End the pair's instant failover session (its guest powered off, or its NBD exports
    /// closed) once its copy is complete
    #[arg(long, alias = "stop-guest", conflicts_with_all = ["to", "force", "instant", "boot", "copy_rate"])]
    pub stop_instant: bool,
    #[command(flatten)]
    pub instant: crate::failover_instant::InstantArgs,
    /// Fail over to this recovery point
    #[arg(long, value_name = "ID")]
    pub point: Option<PointId>,
    /// Fail over to the newest recovery point
    #[arg(long)]
    pub latest: bool,
    /// Block device or file on the standby's host that receives one disk; once per disk, in
    /// disk order
    #[arg(long = "to", value_name = "DEVICE_OR_FILE", required_unless_present = "stop_instant", value_parser = NonEmptyStringValueParser::new())]
    pub to: Vec<String>,
    /// Overwrite a regular file that already has data
    #[arg(long)]
    pub force: bool,
    /// Do not ask for the pair id (the warning is still printed)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the accepted failover and exit 0 without following it
    #[arg(long)]
    pub no_wait: bool,
    /// Once the point is on the targets, protect them: the standby starts an agent for them
    /// under a new pair PAIR-recovered (as 'drpair pairs protect-recovered PAIR')
    #[arg(long, conflicts_with = "instant")]
    pub protect: bool,
}

impl FailoverArgs {
    /// The request: the targets made absolute against `cwd`, `operator` as given.
    pub fn request(
        &self,
        cwd: &std::io::Result<PathBuf>,
        operator: Option<String>,
    ) -> Result<FailoverRequest, CliError> {
        Ok(FailoverRequest {
            point: self.point,
            latest: self.latest,
            targets: absolute_paths(&self.to, cwd)?,
            force: self.force,
            operator,
            instant: self.instant.instant,
            boot: self.instant.boot_request(),
            copy_rate_bytes_per_sec: self.instant.copy_rate,
            protect: self.protect,
        })
    }
}

/// Who runs the command: the login name behind sudo, else the login name.
pub fn operator() -> Option<String> {
    std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).ok().filter(|u| !u.is_empty())
}

/// `paths` as absolute paths: absolute ones as given, relative ones joined to `cwd` (with
/// `.` components dropped). A relative path without a current directory, or one that is
/// not UTF-8 once joined, is an error rather than a guess: these paths get overwritten.
pub fn absolute_paths(paths: &[String], cwd: &std::io::Result<PathBuf>) -> Result<Vec<String>, CliError> {
    paths
        .iter()
        .map(|p| {
            if Path::new(p).is_absolute() {
                return Ok(p.clone());
            }
            let base = cwd.as_ref().map_err(|e| {
                CliError::Failed(format!(
                    "{p} is a relative path, but the current directory cannot be determined ({e}); give an absolute path"
                ))
            })?;
            let joined: PathBuf =
                base.join(p).components().filter(|c| !matches!(c, Component::CurDir)).collect();
            joined.to_str().map(str::to_string).ok_or_else(|| {
                CliError::Failed(format!("{} is not valid UTF-8; give an absolute path", joined.display()))
            })
        })
        .collect()
}

/// `/dev/sdc (disk 0), /srv/d1.img (disk 1)`.
pub fn disk_list(paths: &[String]) -> String {
    paths.iter().enumerate().map(|(i, p)| format!("{p} (disk {i})")).collect::<Vec<_>>().join(", ")
}

/// What the operator confirms.
pub fn warnings(pair: &PairId, r: &FailoverRequest) -> Vec<String> {
    let point = r.point.map_or_else(|| "its newest recovery point".to_string(), |p| format!("recovery point {p}"));
    let mut w = vec![
        format!(
            "warning: failover of pair {pair} to {point}: replication of the pair stops, and the pair is fenced \
             (the agent ships nothing, the standby commits no point) until 'drpair failback {pair}'"
        ),
        format!(
            "warning: these targets on the standby are overwritten with the point's disks: {}",
            disk_list(&r.targets)
        ),
    ];
    if r.force {
        w.push("warning: --force: a regular file that already has data is overwritten too".to_string());
    }
    if r.instant {
        w.push(format!(
            "warning: --instant: the recovered machine {} at once while the point is copied underneath; it keeps running until 'drpair failover {pair} --stop-instant'",
            if r.boot.is_some() { "boots in a QEMU guest on the standby" } else { "is served writable over NBD" }
        ));
    }
    w
}

pub fn run(
    client: &Client,
    output: OutputFormat,
    args: &FailoverArgs,
    input: &mut dyn BufRead,
) -> Result<(), CliError> {
    if args.stop_instant {
        return crate::failover_instant::stop(client, output, &args.pair, operator());
    }
    let request = args.request(&std::env::current_dir(), operator())?;
    failover(client, output, args, &request, input, POLL_EVERY)
}

/// Confirms, starts the failover and follows it, polling every `every`.
fn failover(
    client: &Client,
    output: OutputFormat,
    args: &FailoverArgs,
    request: &FailoverRequest,
    input: &mut dyn BufRead,
    every: Duration,
) -> Result<(), CliError> {
    let pair = &args.pair;
    confirm::warn_and_confirm(pair, &warnings(pair, request), args.yes, input)?;
    let path = format!("/api/v1/pairs/{pair}/failover");
    let accepted = |s: &FailoverStatus| render_accepted(pair, s);
    let prefix = |_: &FailoverStatus| format!("{pair} failover");
    match (Operation { client, output, path, every }).start(request, args.no_wait, accepted, prefix, seen)? {
        Some((_, status)) if request.protect && status.state == JobState::Done => {
            let (raw, status) = wait_protected(client, pair, every)?;
            finish(output, pair, raw, &status)?;
            match status.message.contains(PROTECT_FAILED) {
                true => Err(CliError::Failed(format!("pair {pair}: {}", status.message))),
                false => Ok(()),
            }
        }
        Some((raw, status)) => finish(output, pair, raw, &status),
        None => Ok(()),
    }
}

/// What the standby appends to a failover's message when `--protect` did or did not work.
const PROTECTED: &str = "protected by pair '";
const PROTECT_FAILED: &str = "protecting the recovered disks failed";

/// Waits (up to 2 minutes) for the standby to start protecting the targets after a
/// failover with `--protect`, and returns the failover as it then is.
fn wait_protected(
    client: &Client,
    pair: &PairId,
    every: Duration,
) -> Result<(serde_json::Value, FailoverStatus), CliError> {
    let path = format!("/api/v1/pairs/{pair}/failover");
    let t0 = std::time::Instant::now();
    eprintln!("{pair}: protecting the recovered disks …");
    loop {
        let (raw, s): (_, FailoverStatus) = client.get_json(&path)?;
        if s.message.contains(PROTECTED) || s.message.contains(PROTECT_FAILED) {
            return Ok((raw, s));
        }
        if t0.elapsed() > Duration::from_secs(120) {
            return Err(CliError::TimedOut(format!(
                "pair {pair}: the failover is done, but the standby did not report protecting the targets within 2 minutes; 'drpair status {pair}' shows protected_by"
            )));
        }
        std::thread::sleep(every.max(Duration::from_millis(200)));
    }
}

fn seen(s: &FailoverStatus) -> Seen {
    let mut message = format!("{} of {} written, {}", size(s.bytes_written), size(s.bytes_total), mib_per_sec(s));
    if let Some(w) = crate::failover_instant::progress_words(s) {
        message = format!("{message}; {w}");
    }
    Seen::progress(s.state != JobState::Running, s.progress_percent, message)
}

/// Prints the failover that ended and turns a failure into the error.
fn finish(output: OutputFormat, pair: &PairId, raw: serde_json::Value, s: &FailoverStatus) -> Result<(), CliError> {
    let failure = (s.state == JobState::Failed).then(|| format!("failover of pair {pair} failed: {}", s.message));
    finish_job(output, raw, failure, || render_result(pair, s))
}

/// Prints a failover or failback that ended (`text` in text form) and turns its `failure`
/// into the error: exit 1, and with `--output json` the error prints the final status, so
/// stdout holds it once.
pub fn finish_job(
    output: OutputFormat,
    raw: serde_json::Value,
    failure: Option<String>,
    text: impl FnOnce() -> String,
) -> Result<(), CliError> {
    match output {
        OutputFormat::Json if failure.is_some() => {}
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => output::emit(&text()),
    }
    match failure {
        // Exit 1 with the final status as the JSON error.
        Some(message) => Err(CliError::JobOutcome { damage: false, message, status: raw }),
        None => Ok(()),
    }
}

/// The throughput in MiB/s with one decimal.
pub fn mib_per_sec(s: &FailoverStatus) -> String {
    let rate = if s.throughput_bytes_per_sec.is_finite() { s.throughput_bytes_per_sec.max(0.0) } else { 0.0 };
    format!("{:.1} MiB/s", rate / (1024.0 * 1024.0))
}

/// The answer of `--no-wait`.
pub fn render_accepted(pair: &PairId, s: &FailoverStatus) -> String {
    let exports = s
        .instant
        .as_ref()
        .filter(|i| !i.exports.is_empty())
        .map(|i| format!("\ninstant: the recovered disks are served at once: {}", i.exports.join(" ")));
    let guest = s.instant.as_ref().and_then(|i| i.guest.as_ref()).map(|g| {
        format!(
            "\ninstant: the recovered machine starts in a QEMU guest on the standby (console log {})",
            g.console_log
        )
    });
    let accepted = format!(
        "failover of pair {pair} to point {} started ({} onto {}); 'drpair status {pair}' shows how it goes on{}",
        s.point,
        size(s.bytes_total),
        s.targets.join(", "),
        output::task_note(s.task)
    );
    format!("{accepted}{}{}", exports.unwrap_or_default(), guest.unwrap_or_default())
}

/// The text form of a failover that ended.
pub fn render_result(pair: &PairId, s: &FailoverStatus) -> String {
    let mut b = Block::default();
    let verdict = match s.state {
        JobState::Running => format!("running {}", output::format_percent(s.progress_percent)),
        JobState::Done => format!("done: the point is on the targets; pair {pair} is fenced until failback"),
        JobState::Failed => "FAILED: the targets are incomplete; the pair stays fenced (run failover again)".into(),
    };
    b.line("Failover", verdict);
    b.line("Pair", pair.to_string());
    if let Some(t) = s.task {
        b.line("Task", t.to_string());
    }
    b.line("Point", format!("{} (epoch {}, cut {})", s.point, s.epoch, s.point_time));
    let targets: Vec<String> = s.targets.iter().enumerate().map(|(i, t)| format!("disk {i}: {t}")).collect();
    b.line("Targets", targets.join("\n"));
    b.line("Written", format!("{} of {} ({} bytes)", size(s.bytes_written), size(s.bytes_total), s.bytes_written));
    b.line("Took", format!("{:.1} s at {}", s.elapsed_seconds, mib_per_sec(s)));
    let finished = s.finished_at.as_ref().map(|t| format!(", finished {t}")).unwrap_or_default();
    let by = s.operator.as_ref().map(|o| format!(" by {o}")).unwrap_or_default();
    b.line("Started", format!("{}{by}{finished}", s.started_at));
    if !s.message.is_empty() {
        b.line("Message", s.message.clone());
    }
    crate::failover_instant::lines(&mut b, s);
    if s.state == JobState::Done && s.instant.is_none() {
        let from: String = s.targets.iter().map(|t| format!(" --from {t}")).collect();
        b.line(
            "Next step",
            format!(
                "boot or mount the targets; to fail back later:\ndrpair failback {pair}{from} --direction to-original"
            ),
        );
    }
    b.render()
}

/// One line for `drpair status`: where the running or last failover stands.
pub fn status_line(s: &FailoverStatus) -> String {
    let line = match s.state {
        JobState::Running => format!(
            "running {} ({} of {} written at {}), point {}",
            output::format_percent(s.progress_percent),
            size(s.bytes_written),
            size(s.bytes_total),
            mib_per_sec(s),
            s.point
        ),
        JobState::Done => format!(
            "done: point {} (cut {}) written, {} in {:.1} s{}",
            s.point,
            s.point_time,
            size(s.bytes_written),
            s.elapsed_seconds,
            s.finished_at.as_ref().map(|t| format!(", at {t}")).unwrap_or_default()
        ),
        JobState::Failed => format!("FAILED: point {}: {}", s.point, s.message),
    };
    match crate::failover_instant::status_words(s) {
        Some(w) => format!("{line}; {w}"),
        None => line,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{ApiError, ErrorCode};
    use std::io::Cursor;

    pub(crate) fn failover_status(state: JobState, written: u64) -> FailoverStatus {
        FailoverStatus {
            task: None,
            instant: None,
            pair_id: PairId::new("web-01").unwrap(),
            state,
            point: 42,
            epoch: 7,
            point_time: "2026-05-01T10:00:00Z".into(),
            targets: vec!["/dev/vg0/sda".into(), "/srv/fo/sdb.img".into()],
            bytes_total: 20 << 30,
            bytes_written: written,
            progress_percent: 100.0 * written as f64 / (20u64 << 30) as f64,
            started_at: "2026-05-01T10:05:00Z".into(),
            finished_at: (state != JobState::Running).then(|| "2026-05-01T10:05:40Z".into()),
            elapsed_seconds: 40.0,
            throughput_bytes_per_sec: 512.0 * 1024.0 * 1024.0,
            operator: Some("alice".into()),
            message: match state {
                JobState::Failed => "disk 1: /srv/fo/sdb.img: No space left on device".into(),
                _ => "point 42 written onto 2 target(s)".into(),
            },
        }
    }

    fn reply(status: u16, s: &FailoverStatus) -> Reply {
        Reply::json(status, &serde_json::to_string(s).unwrap())
    }

    fn args(to: &[&str], point: Option<PointId>, yes: bool, no_wait: bool) -> FailoverArgs {
        FailoverArgs {
            pair: PairId::new("web-01").unwrap(),
            point,
            latest: point.is_none(),
            to: to.iter().map(|s| s.to_string()).collect(),
            force: false,
            yes,
            no_wait,
            protect: false,
            stop_instant: false,
            instant: Default::default(),
        }
    }

    fn cwd() -> std::io::Result<PathBuf> {
        Ok(PathBuf::from("/root/work"))
    }

    #[test]
    fn request_body_has_absolute_targets_point_or_latest_and_operator() {
        let server = FakeServer::start(vec![reply(202, &failover_status(JobState::Done, 20 << 30))]);
        let client = Client::new(&server.url, None).unwrap();
        let a = args(&["/dev/vg0/sda", "./fo/sdb.img", "sdc.img"], None, true, false);
        let request = a.request(&cwd(), Some("alice".into())).unwrap();
        failover(&client, OutputFormat::Text, &a, &request, &mut Cursor::new(&b""[..]), Duration::ZERO).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("POST", "/api/v1/pairs/web-01/failover"));
        let sent: serde_json::Value = serde_json::from_slice(&reqs[0].body).unwrap();
        assert_eq!(sent["targets"], serde_json::json!(["/dev/vg0/sda", "/root/work/fo/sdb.img", "/root/work/sdc.img"]));
        assert_eq!((sent["latest"].clone(), sent["point"].clone()), (serde_json::json!(true), serde_json::Value::Null));
        assert_eq!(sent["operator"], "alice");
        assert_eq!(sent["force"], false);
        assert_eq!(reqs.len(), 1, "done at once: no polling");

        let mut a = args(&["sda.img"], Some(17), true, false);
        a.force = true;
        let r = a.request(&cwd(), Some("bob".into())).unwrap();
        assert_eq!(
            r,
            FailoverRequest {
                point: Some(17),
                latest: false,
                targets: vec!["/root/work/sda.img".into()],
                force: true,
                operator: Some("bob".into()),
                ..Default::default()
            }
        );
        let no_cwd: std::io::Result<PathBuf> = Err(std::io::Error::other("deleted"));
        assert!(a.request(&no_cwd, None).unwrap_err().to_string().contains("sda.img is a relative path"));
        assert_eq!(absolute_paths(&["/dev/sdc".into()], &no_cwd).unwrap(), vec!["/dev/sdc".to_string()]);
    }

    #[test]
    fn instant_flags_go_into_the_request() {
        let mut a = args(&["/dev/sdc"], None, true, false);
        a.instant.instant = true;
        a.instant.boot = true;
        a.instant.guest.memory = Some("2G".into());
        a.instant.guest.timeout = Some(Duration::from_secs(90));
        a.instant.copy_rate = Some(64 << 20);
        let r = a.request(&cwd(), None).unwrap();
        assert!(r.instant);
        let b = r.boot.clone().expect("boot");
        assert_eq!((b.memory.as_deref(), b.timeout_seconds, b.cpus), (Some("2G"), Some(90), None));
        assert_eq!(r.copy_rate_bytes_per_sec, Some(64 << 20));
        assert!(warnings(&a.pair, &r).iter().any(|w| w.contains("--stop-instant")));
        let plain = args(&["/dev/sdc"], None, true, false).request(&cwd(), None).unwrap();
        assert!(!plain.instant && plain.boot.is_none() && plain.copy_rate_bytes_per_sec.is_none());
    }

    #[test]
    fn polls_until_done() {
        let server = FakeServer::start(vec![
            reply(202, &failover_status(JobState::Running, 0)),
            reply(200, &failover_status(JobState::Running, 8 << 30)),
            reply(200, &failover_status(JobState::Done, 20 << 30)),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        let a = args(&["/dev/vg0/sda", "/srv/fo/sdb.img"], Some(42), true, false);
        let request = a.request(&cwd(), None).unwrap();
        failover(&client, OutputFormat::Text, &a, &request, &mut Cursor::new(&b""[..]), Duration::ZERO).unwrap();
        let reqs = server.finish();
        assert_eq!(reqs.len(), 3);
        assert!(reqs[1..].iter().all(|r| r.method == "GET" && r.path == "/api/v1/pairs/web-01/failover"));
    }

    #[test]
    fn a_failed_failover_exits_1_with_the_status_as_json() {
        for output in [OutputFormat::Text, OutputFormat::Json] {
            let server = FakeServer::start(vec![
                reply(202, &failover_status(JobState::Running, 0)),
                reply(200, &failover_status(JobState::Failed, 3 << 30)),
            ]);
            let client = Client::new(&server.url, None).unwrap();
            let a = args(&["/dev/vg0/sda", "/srv/fo/sdb.img"], None, true, false);
            let request = a.request(&cwd(), None).unwrap();
            let err = failover(&client, output, &a, &request, &mut Cursor::new(&b""[..]), Duration::ZERO).unwrap_err();
            assert_eq!(err.exit_code(), exit::FAILURE);
            assert_eq!(
                err.to_string(),
                "failover of pair web-01 failed: disk 1: /srv/fo/sdb.img: No space left on device"
            );
            assert_eq!(err.to_json()["state"], "failed", "the final status, as on success");
            assert_eq!(server.finish().len(), 2);
        }
    }

    #[test]
    fn no_confirmation_no_request() {
        let server = FakeServer::start(vec![]);
        let client = Client::new(&server.url, None).unwrap();
        let a = args(&["/dev/vg0/sda"], None, false, false);
        let request = a.request(&cwd(), None).unwrap();
        let err = failover(&client, OutputFormat::Text, &a, &request, &mut Cursor::new(&b"yes\n"[..]), Duration::ZERO)
            .unwrap_err();
        assert_eq!(err.exit_code(), exit::ABORTED);
        assert!(server.finish().is_empty());
        let w = warnings(&a.pair, &request).join("\n");
        for want in ["replication of the pair stops", "fenced", "until 'drpair failback web-01'", "overwritten"] {
            assert!(w.contains(want), "{want} in {w}");
        }
        assert!(w.contains("/dev/vg0/sda (disk 0)"), "{w}");
    }

    #[test]
    fn no_wait_and_refusals() {
        let server = FakeServer::start(vec![reply(202, &failover_status(JobState::Running, 0))]);
        let client = Client::new(&server.url, None).unwrap();
        let a = args(&["/dev/vg0/sda", "/srv/fo/sdb.img"], None, true, true);
        let request = a.request(&cwd(), None).unwrap();
        failover(&client, OutputFormat::Text, &a, &request, &mut Cursor::new(&b""[..]), Duration::ZERO).unwrap();
        assert_eq!(server.finish().len(), 1, "no polling with --no-wait");

        let cases = [
            (ErrorCode::InvalidParameter, "the pair has 2 disk(s): give one target per disk", exit::INVALID_PARAMETER),
            (ErrorCode::PointNotFound, "pair 'web-01': no point 99", exit::NOT_FOUND),
            (ErrorCode::InvalidPairState, "pair 'web-01' is already failed over", exit::INVALID_STATE),
        ];
        for (code, message, want) in cases {
            let body = serde_json::to_string(&ApiError { code, message: message.into(), parameter: None }).unwrap();
            let server = FakeServer::start(vec![Reply::json(code.http_status(), &body)]);
            let client = Client::new(&server.url, None).unwrap();
            let err = failover(&client, OutputFormat::Text, &a, &request, &mut Cursor::new(&b""[..]), Duration::ZERO)
                .unwrap_err();
            assert_eq!((err.exit_code(), err.to_string()), (want, message.to_string()));
            server.finish();
        }
    }

    #[test]
    fn result_texts() {
        let pair = PairId::new("web-01").unwrap();
        let text = render_result(&pair, &failover_status(JobState::Done, 20 << 30));
        for want in [
            "Failover:   done: the point is on the targets; pair web-01 is fenced until failback\n",
            "Point:      42 (epoch 7, cut 2026-05-01T10:00:00Z)\n",
            "Targets:    disk 0: /dev/vg0/sda\n            disk 1: /srv/fo/sdb.img\n",
            "Written:    20.0 GiB of 20.0 GiB (21474836480 bytes)\n",
            "Took:       40.0 s at 512.0 MiB/s\n",
            "Started:    2026-05-01T10:05:00Z by alice, finished 2026-05-01T10:05:40Z\n",
            "drpair failback web-01 --from /dev/vg0/sda --from /srv/fo/sdb.img --direction to-original\n",
        ] {
            assert!(text.contains(want), "missing {want:?} in\n{text}");
        }
        let failed = render_result(&pair, &failover_status(JobState::Failed, 0));
        assert!(failed.starts_with("Failover:  FAILED") && !failed.contains("Next step"), "{failed}");
        assert_eq!(
            status_line(&failover_status(JobState::Running, 5 << 30)),
            "running 25% (5.0 GiB of 20.0 GiB written at 512.0 MiB/s), point 42"
        );
    }
}
