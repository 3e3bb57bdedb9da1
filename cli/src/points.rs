//! `drpair points …`: the recovery points of a pair: list them, cut one now, pin and unpin
//! one, export a disk image of one (the export lives in `export.rs`).

use crate::client::{ANSWER_TIMEOUT, CliError, Client};
use crate::export::{ExportArgs, PointRef};
use crate::output::{self, OutputFormat, Table};
use crate::poll;
use clap::{ArgGroup, Args, Subcommand};
use drpair_types::{CreatePointRequest, CreatePointResponse, PairId, RecoveryPoint};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    about = "List, create and export recovery points",
    long_about = "List, create and export recovery points.\n\n\
        A recovery point is a committed epoch on the standby: every disk of the pair as of one \
        cut. It never changes once committed (apart from its pinned/verified/tested marks)."
)]
pub struct PointsArgs {
    #[command(subcommand)]
    pub command: PointsCommand,
}

#[derive(Debug, Subcommand)]
pub enum PointsCommand {
    /// List the recovery points of a pair, oldest first
    #[command(
        visible_alias = "ls",
        long_about = "List the recovery points of a pair (GET /api/v1/pairs/PAIR/points).\n\n\
            Columns: ID (the epoch the point commits), TIME (of the cut, UTC), KIND (baseline, \
            scheduled, app-consistent, dump-marker, manual), CONSISTENCY (fuzzy, crash-consistent, \
            app-consistent: never more than was achieved), CHANGED (bytes changed in the epoch), \
            SHIPPED (bytes that crossed the link), READ (the read window: from the cut to the last \
            chunk read, while the disks could still change under the reads), MARKS: DAMAGED (the \
            last verification found chunks this point sees damaged or missing; see 'drpair verify \
            PAIR'), WINDOW EXCEEDED (read over longer than the standby's max_read_window and not \
            app-consistent: a database may not start from it; 'latest' passes it over), pinned (kept by \
            retention until unpinned), verified (the last verification found it intact), tested \
            (a drill ran on it).\n\n\
            With --output json: the array of RecoveryPoint objects as the API returns it.",
        after_help = "Examples:\n  drpair points list web-01\n  drpair points list web-01 --output json | jq 'last.id'"
    )]
    List {
        /// The DR Pair ID
        #[arg(value_name = "PAIR")]
        pair: PairId,
    },
    /// Cut a recovery point now
    #[command(
        long_about = "Cut a recovery point of every disk of the pair now (POST /api/v1/pairs/PAIR/points).\n\n\
            Without --wait the standby only records the request and the command prints \
            'cut requested (request N)'; the point that commits it carries the same request id. \
            With --wait the command returns once the cut is a committed recovery point and prints \
            its id and time; --timeout bounds the wait (the standby's default is 10m), after which \
            the command exits with code 7.\n\n\
            App-consistent points: a point cut while the applications keep writing to a passively \
            tracked disk is fuzzy (like pulling the power cord, and possibly worse: chunks are read \
            at slightly different times). With --freeze the agent freezes those filesystems \
            (FIFREEZE) just before the cut and thaws them once the cut's chunks have been read, so \
            the point holds what the filesystems held at one instant; writers on them block \
            meanwhile, for at most the thaw budget (--thaw-budget, default the agent's \
            thaw_budget, 2s). With --hooks the agent runs its configured pre_hook before the cut \
            and its post_hook once the chunks have been read (e.g. to flush and hold a database); \
            the point is then as consistent as the hooks make the applications. If quiescing fails (a mount point is refused, a hook fails, the \
            budget runs out before the reads finish), the point is still cut but labelled fuzzy, \
            and the failure is recorded in the point. With --wait such a point is printed as usual, \
            the failure is reported on stderr and the command exits with code 10.\n\n\
            With --output json: the CreatePointResponse ({\"request_id\", \"point\"}), also when \
            the app-consistent attempt failed (see point.quiesce).",
        after_help = "Examples:\n  drpair points create web-01\n  drpair points create web-01 --wait --timeout 5m\n  \
            drpair points create web-01 --wait --freeze /var/lib/postgresql --thaw-budget 1s\n  \
            drpair points create web-01 --wait --hooks",
        group(ArgGroup::new("quiesce").args(["freeze", "hooks"]).multiple(true))
    )]
    Create {
        /// The DR Pair ID
        #[arg(value_name = "PAIR")]
        pair: PairId,
        /// Return only once the point is committed
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this long (e.g. 90s, 10m)
        #[arg(long, value_name = "DURATION", requires = "wait", value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
        /// Freeze this filesystem (a mount point on the protected server) around the cut; repeatable
        #[arg(long = "freeze", value_name = "MOUNTPOINT", value_parser = mount_point)]
        freeze: Vec<String>,
        /// Run the agent's pre/post hook scripts around the cut
        #[arg(long)]
        hooks: bool,
        /// With --freeze or --hooks: longest time the applications stay frozen (100ms..60s)
        #[arg(long, value_name = "DURATION", requires = "quiesce", value_parser = humantime::parse_duration)]
        thaw_budget: Option<Duration>,
    },
    Export(ExportArgs),
    /// Pin a recovery point: retention keeps it until it is unpinned
    #[command(
        long_about = "Pin a recovery point (POST /api/v1/pairs/PAIR/points/POINT/pin): retention and \
            prune keep it, whatever the grid says, until it is unpinned. POINT is a point id or \
            'latest'. Pinning a pinned point changes nothing.\n\n\
            Prints the point as 'drpair points list' does. With --output json: the RecoveryPoint \
            object as the API returns it.",
        after_help = "Examples:\n  drpair points pin web-01 17\n  drpair points pin web-01 latest"
    )]
    Pin(PinArgs),
    /// Unpin a recovery point: retention decides about it again
    #[command(
        long_about = "Unpin a recovery point (POST /api/v1/pairs/PAIR/points/POINT/unpin): the next \
            prune treats it as retention says, and may remove it. POINT is a point id or 'latest'. \
            The baseline and the dump-marker point stay kept by retention whatever their pin. \
            Unpinning an unpinned point changes nothing.\n\n\
            Prints the point as 'drpair points list' does. With --output json: the RecoveryPoint \
            object as the API returns it.",
        after_help = "Examples:\n  drpair points unpin web-01 17\n  drpair prune web-01 --dry-run"
    )]
    Unpin(PinArgs),
}

/// `points pin` and `points unpin`.
#[derive(Debug, Args)]
pub struct PinArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Recovery point id, or 'latest'
    #[arg(value_name = "POINT")]
    pub point: PointRef,
}

pub fn run(client: &Client, output: OutputFormat, args: &PointsArgs) -> Result<(), CliError> {
    match &args.command {
        PointsCommand::List { pair } => {
            let (raw, points): (_, Vec<RecoveryPoint>) = client.get_json(&format!("/api/v1/pairs/{pair}/points"))?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text if points.is_empty() => {
                    output::emit(&format!("pair {pair} has no recovery points yet"));
                }
                OutputFormat::Text => output::emit(&render_points(&points)),
            }
            Ok(())
        }
        PointsCommand::Create { pair, wait, timeout, freeze, hooks, thaw_budget } => {
            let mut request = create_request(*wait, *timeout);
            request.freeze = freeze.clone();
            request.hooks = *hooks;
            request.thaw_budget_ms = thaw_budget.map(ceil_ms);
            create(client, output, pair, request)
        }
        PointsCommand::Export(args) => crate::export::run(client, output, args),
        PointsCommand::Pin(args) => pin(client, output, args, true),
        PointsCommand::Unpin(args) => pin(client, output, args, false),
    }
}

/// `points pin` (`pinned`) and `points unpin`: prints the point as `points list` does.
fn pin(client: &Client, output: OutputFormat, args: &PinArgs, pinned: bool) -> Result<(), CliError> {
    let (pair, point) = (&args.pair, args.point);
    let verb = if pinned { "pin" } else { "unpin" };
    let path = format!("/api/v1/pairs/{pair}/points/{point}/{verb}");
    let (_, raw, p) = client.post_json::<_, RecoveryPoint>(&path, &serde_json::json!({}), ANSWER_TIMEOUT)?;
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => {
            let what = if pinned {
                format!("pinned: retention keeps it until 'drpair points unpin {pair} {}'", p.id)
            } else {
                "unpinned: retention decides about it again".to_string()
            };
            output::emit(&format!("point {} of pair {pair} {what}\n{}", p.id, render_points(std::slice::from_ref(&p))));
        }
    }
    Ok(())
}

/// The body of `points create`: whole seconds, rounded up so `--timeout 1ms` is not 0.
pub fn create_request(wait: bool, timeout: Option<Duration>) -> CreatePointRequest {
    let timeout_seconds = timeout.map(|t| t.as_secs() + u64::from(t.subsec_nanos() > 0));
    CreatePointRequest { wait, timeout_seconds, ..Default::default() }
}

/// Whole milliseconds, rounded up.
pub fn ceil_ms(d: Duration) -> u64 {
    u64::try_from(d.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}

/// `--freeze`: an absolute path (the agent checks that it is a mount point).
pub fn mount_point(s: &str) -> Result<String, String> {
    if s.starts_with('/') {
        Ok(s.to_string())
    } else {
        Err(format!("'{s}' is not an absolute mount point (like /var/lib/postgresql)"))
    }
}

fn create(client: &Client, output: OutputFormat, pair: &PairId, request: CreatePointRequest) -> Result<(), CliError> {
    let wait = request.wait;
    // The standby holds a --wait call open up to its timeout (600 s by default): wait a
    // little longer than that for its answer, so its own 504 is what we report.
    let answer_timeout = if wait {
        Duration::from_secs(request.timeout_seconds.unwrap_or(600)) + ANSWER_TIMEOUT
    } else {
        ANSWER_TIMEOUT
    };
    let post = || {
        client.post_json::<_, CreatePointResponse>(&format!("/api/v1/pairs/{pair}/points"), &request, answer_timeout)
    };
    let (_status, raw, response) = if wait {
        poll::waiting(output, format!("waiting for the cut of pair {pair} to commit"), post)
    } else {
        post()
    }?;
    // A failed app-consistent attempt: the point is fuzzy. The JSON document is then printed
    // by the error (see CliError::NotAppConsistent), so stdout holds it once.
    let failed = response.point.as_ref().and_then(|p| {
        let q = p.quiesce.as_ref().filter(|q| !q.achieved)?;
        Some((p.id, q.failure.clone().unwrap_or_else(|| "no reason recorded".into())))
    });
    match output {
        OutputFormat::Json if failed.is_some() => {}
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => output::emit(&render_created(&response)),
    }
    match failed {
        Some((point, failure)) => Err(CliError::NotAppConsistent { point, failure, response: raw }),
        None => Ok(()),
    }
}

/// The text answer of `points create`.
pub fn render_created(r: &CreatePointResponse) -> String {
    let mut text = render_committed(r);
    if let Some(q) = r.point.as_ref().and_then(|p| p.quiesce.as_ref()).filter(|q| q.achieved) {
        let mut what = Vec::new();
        if !q.freeze.is_empty() {
            what.push(format!("froze {}", q.freeze.join(", ")));
        }
        if q.hooks {
            what.push("ran the hooks".to_string());
        }
        text.push_str(&format!(
            "\napp-consistent: {} for {} ms (budget {} ms)",
            what.join(" and "),
            q.frozen_ms,
            q.budget_ms
        ));
    }
    text
}

fn render_committed(r: &CreatePointResponse) -> String {
    match &r.point {
        Some(p) => format!(
            "recovery point {} committed at {} ({}, {}; changed {}, shipped {}, read in {}{}; request {})",
            p.id,
            p.time,
            output::wire_name(&p.kind),
            output::wire_name(&p.consistency),
            output::format_size(p.sizes.changed_bytes),
            output::format_size(p.sizes.shipped_bytes),
            read_window(p),
            if p.window_exceeded { ", WINDOW EXCEEDED" } else { "" },
            r.request_id
        ),
        None => format!("cut requested (request {})", r.request_id),
    }
}

/// The `points list` table, followed by a warning naming the damaged points if any.
pub fn render_points(points: &[RecoveryPoint]) -> String {
    let mut table = Table::new(&["ID", "TIME", "KIND", "CONSISTENCY", "CHANGED", "SHIPPED", "READ", "MARKS"]);
    for p in points {
        table.row(vec![
            p.id.to_string(),
            p.time.clone(),
            output::wire_name(&p.kind),
            output::wire_name(&p.consistency),
            output::format_size(p.sizes.changed_bytes),
            output::format_size(p.sizes.shipped_bytes),
            read_window(p),
            marks(p),
        ]);
    }
    let mut text = table.render();
    let damaged: Vec<&RecoveryPoint> = points.iter().filter(|p| p.damage.is_some()).collect();
    if let Some(first) = damaged.first() {
        let ids: Vec<u64> = damaged.iter().map(|p| p.id).collect();
        text.push_str(&format!(
            "\nDAMAGED: {} point(s) see damaged or missing chunks ({}): restoring them would give wrong data there; \
             'drpair verify {}' re-checks, --output json lists the chunks\n",
            ids.len(),
            crate::verify::id_list(&ids),
            first.pair_id
        ));
    }
    let exceeded: Vec<u64> = points.iter().filter(|p| p.window_exceeded).map(|p| p.id).collect();
    if !exceeded.is_empty() {
        text.push_str(&format!(
            "\nWINDOW EXCEEDED: {} point(s) ({}) were read over longer than the standby's max_read_window while \
             the disks kept changing: a database may not start from them; 'latest' (drills, failover --latest, \
             exports) passes them over\n",
            exceeded.len(),
            crate::verify::id_list(&exceeded)
        ));
    }
    text
}

/// The READ column: the point's read window, `-` when not recorded.
pub fn read_window(p: &RecoveryPoint) -> String {
    match p.read_window_ms {
        Some(ms) => format!("{:.1}s", ms as f64 / 1000.0),
        None => "-".into(),
    }
}

/// The MARKS of a point: `DAMAGED (3 chunks)` first, then `pinned`, `verified`, `tested`.
pub fn marks(p: &RecoveryPoint) -> String {
    let mut marks = Vec::new();
    if let Some(d) = &p.damage {
        marks.push(format!("DAMAGED ({} chunk{})", d.chunks, if d.chunks == 1 { "" } else { "s" }));
    }
    if p.window_exceeded {
        marks.push("WINDOW EXCEEDED".to_string());
    }
    if p.pinned {
        marks.push("pinned".to_string());
    }
    if p.verified_at.is_some() && p.damage.is_none() {
        marks.push("verified".to_string());
    }
    if p.tested_at.is_some() {
        marks.push("tested".to_string());
    }
    marks.join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{Consistency, PointKind, PointSizes};

    pub(crate) fn point(id: u64, time_unix_ms: u64) -> RecoveryPoint {
        RecoveryPoint {
            id,
            pair_id: PairId::new("web-01").unwrap(),
            epoch: id,
            lineage: Default::default(),
            time: "2026-05-01T10:00:00Z".into(),
            time_unix_ms,
            committed_unix_ms: time_unix_ms + 500,
            kind: PointKind::Manual,
            consistency: Consistency::Fuzzy,
            pinned: false,
            verified_at: None,
            tested_at: None,
            sizes: PointSizes { changed_bytes: 3 << 20, shipped_bytes: 1 << 20, ..PointSizes::default() },
            quiesce: None,
            full_pass: false,
            damage: None,
            read_window_ms: None,
            window_exceeded: false,
        }
    }

    #[test]
    fn table_of_points() {
        let mut b = point(12, 0);
        b.kind = PointKind::Baseline;
        b.consistency = Consistency::CrashConsistent;
        b.pinned = true;
        b.verified_at = Some("2026-05-02T00:00:00Z".into());
        let text = render_points(&[b, point(13, 0)]);
        assert_eq!(
            text,
            "ID  TIME                  KIND      CONSISTENCY       CHANGED  SHIPPED  READ  MARKS\n\
             12  2026-05-01T10:00:00Z  baseline  crash-consistent  3.0 MiB  1.0 MiB  -     pinned, verified\n\
             13  2026-05-01T10:00:00Z  manual    fuzzy             3.0 MiB  1.0 MiB  -\n"
        );
    }

    #[test]
    fn a_point_read_over_too_long_says_so() {
        let mut slow = point(21, 0);
        (slow.read_window_ms, slow.window_exceeded) = (Some(9_250), true);
        let mut quick = point(22, 0);
        quick.read_window_ms = Some(340);
        let text = render_points(&[slow, quick]);
        assert!(text.contains("1.0 MiB  9.2s  WINDOW EXCEEDED\n"), "{text}");
        assert!(text.contains("1.0 MiB  0.3s\n"), "{text}");
        assert!(text.contains("\nWINDOW EXCEEDED: 1 point(s) (21) were read over longer"), "{text}");
        assert!(!render_points(&[point(13, 0)]).contains("WINDOW"));
    }

    fn damaged(id: u64, chunks: u64) -> RecoveryPoint {
        let mut p = point(id, 0);
        p.verified_at = Some("2026-05-01T11:00:00Z".into());
        p.tested_at = Some("2026-05-01T12:00:00Z".into());
        p.damage = Some(drpair_types::PointDamage { found_at: "2026-05-02T00:00:00Z".into(), chunks, sample: vec![] });
        p
    }

    #[test]
    fn damaged_points_stand_out() {
        let text = render_points(&[damaged(12, 1), point(13, 0), damaged(14, 3)]);
        assert!(text.contains("1.0 MiB  -     DAMAGED (1 chunk), tested\n"), "{text}");
        assert!(
            text.contains("1.0 MiB  -     DAMAGED (3 chunks), tested\n"),
            "never 'verified' while damaged:\n{text}"
        );
        assert!(
            text.ends_with(
                "\nDAMAGED: 2 point(s) see damaged or missing chunks (12, 14): restoring them would give wrong data \
                 there; 'drpair verify web-01' re-checks, --output json lists the chunks\n"
            ),
            "{text}"
        );
        assert!(!render_points(&[point(13, 0)]).contains("DAMAGED"));
    }

    #[test]
    fn pin_and_unpin_post_and_print_the_point() {
        let mut pinned = point(17, 0);
        pinned.pinned = true;
        let server = FakeServer::start(vec![
            Reply::json(200, &serde_json::to_string(&pinned).unwrap()),
            Reply::json(200, &serde_json::to_string(&point(17, 0)).unwrap()),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        let args = |point| PinArgs { pair: PairId::new("web-01").unwrap(), point };
        pin(&client, OutputFormat::Text, &args(PointRef::Latest), true).unwrap();
        pin(&client, OutputFormat::Json, &args(PointRef::Id(17)), false).unwrap();
        let reqs = server.finish();
        assert_eq!(
            (reqs[0].method.as_str(), reqs[0].path.as_str()),
            ("POST", "/api/v1/pairs/web-01/points/latest/pin")
        );
        assert_eq!((reqs[1].method.as_str(), reqs[1].path.as_str()), ("POST", "/api/v1/pairs/web-01/points/17/unpin"));
        assert_eq!(serde_json::from_slice::<serde_json::Value>(&reqs[0].body).unwrap(), serde_json::json!({}));
        assert!(
            matches!(parse(&["pin", "web-01", "latest"]).unwrap(), PointsCommand::Pin(a) if a.point == PointRef::Latest)
        );
        assert!(
            matches!(parse(&["unpin", "web-01", "17"]).unwrap(), PointsCommand::Unpin(a) if a.point == PointRef::Id(17))
        );
        assert_eq!(parse(&["pin", "web-01", "newest"]).unwrap_err().kind(), clap::error::ErrorKind::ValueValidation);
        assert_eq!(parse(&["pin", "web-01"]).unwrap_err().kind(), clap::error::ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn pin_of_a_missing_point_exits_3() {
        let body = serde_json::to_string(&drpair_types::ApiError {
            code: drpair_types::ErrorCode::PointNotFound,
            message: "pair 'web-01' has no recovery point 99".into(),
            parameter: None,
        })
        .unwrap();
        let server = FakeServer::start(vec![Reply::json(404, &body)]);
        let client = Client::new(&server.url, None).unwrap();
        let args = PinArgs { pair: PairId::new("web-01").unwrap(), point: PointRef::Id(99) };
        let err = pin(&client, OutputFormat::Text, &args, true).unwrap_err();
        assert_eq!(
            (err.exit_code(), err.to_string().as_str()),
            (exit::NOT_FOUND, "pair 'web-01' has no recovery point 99")
        );
        server.finish();
    }

    #[test]
    fn create_texts() {
        assert_eq!(render_created(&CreatePointResponse { request_id: 9, point: None }), "cut requested (request 9)");
        let done = render_created(&CreatePointResponse { request_id: 9, point: Some(point(14, 0)) });
        assert!(done.starts_with("recovery point 14 committed at 2026-05-01T10:00:00Z (manual, fuzzy;"), "{done}");
    }

    #[test]
    fn timeout_is_rounded_up_to_seconds() {
        assert_eq!(create_request(true, Some(Duration::from_millis(1))).timeout_seconds, Some(1));
        assert_eq!(create_request(true, Some(Duration::from_secs(300))).timeout_seconds, Some(300));
        assert_eq!(create_request(false, None), CreatePointRequest::default());
    }

    #[test]
    fn create_posts_the_request_and_reads_202() {
        let body = serde_json::to_string(&CreatePointResponse { request_id: 5, point: None }).unwrap();
        let server = FakeServer::start(vec![Reply::json(202, &body)]);
        let client = Client::new(&server.url, Some("t".into())).unwrap();
        let request = create_request(true, Some(Duration::from_secs(5)));
        create(&client, OutputFormat::Text, &PairId::new("web-01").unwrap(), request).unwrap();
        let req = &server.finish()[0];
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v1/pairs/web-01/points"));
        let sent: CreatePointRequest = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent, CreatePointRequest { wait: true, timeout_seconds: Some(5), ..Default::default() });
        assert!(req.header("content-type").unwrap().starts_with("application/json"));
    }

    #[test]
    fn create_in_wrong_state_exits_4() {
        let err_body = r#"{"code":"InvalidPairState","message":"pair 'web-01' is Disconnected: no agent to cut"}"#;
        let server = FakeServer::start(vec![Reply::json(409, err_body)]);
        let client = Client::new(&server.url, None).unwrap();
        let request = create_request(false, None);
        let err = create(&client, OutputFormat::Json, &PairId::new("web-01").unwrap(), request).unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_STATE);
        assert_eq!(err.to_string(), "pair 'web-01' is Disconnected: no agent to cut");
        server.finish();
    }

    /// `drpair points …` arguments, parsed alone.
    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: PointsCommand,
    }

    fn parse(args: &[&str]) -> Result<PointsCommand, clap::Error> {
        use clap::Parser;
        Cli::try_parse_from(std::iter::once("points").chain(args.iter().copied())).map(|c| c.command)
    }

    #[test]
    fn quiesce_arguments() {
        let c = parse(&["create", "web-01", "--wait", "--freeze", "/data", "--freeze", "/srv/pg", "--hooks"]).unwrap();
        let PointsCommand::Create { freeze, hooks, thaw_budget, .. } = c else { panic!() };
        assert_eq!((freeze, hooks, thaw_budget), (vec!["/data".to_string(), "/srv/pg".to_string()], true, None));
        for args in
            [&["create", "web-01", "--freeze", "/data"][..], &["create", "web-01", "--hooks", "--freeze", "/data"]]
        {
            let mut args = args.to_vec();
            args.extend(["--thaw-budget", "1500ms"]);
            let PointsCommand::Create { thaw_budget, .. } = parse(&args).unwrap() else { panic!() };
            assert_eq!(thaw_budget, Some(Duration::from_millis(1500)));
        }
        let PointsCommand::Create { thaw_budget, .. } =
            parse(&["create", "web-01", "--hooks", "--thaw-budget", "2s"]).unwrap()
        else {
            panic!()
        };
        assert_eq!(thaw_budget.map(ceil_ms), Some(2000));
        assert_eq!(ceil_ms(Duration::from_micros(100_001)), 101);
    }

    #[test]
    fn quiesce_usage_errors_exit_2() {
        use clap::error::ErrorKind;
        for (args, kind) in [
            (&["create", "web-01", "--thaw-budget", "2s"][..], ErrorKind::MissingRequiredArgument),
            (&["create", "web-01", "--freeze", "data"][..], ErrorKind::ValueValidation),
            (&["create", "web-01", "--freeze", "/data", "--thaw-budget", "soon"][..], ErrorKind::ValueValidation),
            (&["create", "web-01", "--freeze"][..], ErrorKind::InvalidValue),
        ] {
            let err = parse(args).unwrap_err();
            assert_eq!((err.kind(), err.exit_code()), (kind, i32::from(exit::USAGE)), "{args:?}");
        }
    }

    fn app_consistent_point(achieved: bool) -> RecoveryPoint {
        let mut p = point(14, 0);
        p.kind = PointKind::AppConsistent;
        p.consistency = if achieved { Consistency::AppConsistent } else { Consistency::Fuzzy };
        p.quiesce = Some(drpair_types::QuiesceOutcome {
            freeze: vec!["/mnt/data".into()],
            hooks: false,
            achieved,
            frozen_ms: 38,
            budget_ms: 2000,
            failure: (!achieved).then(|| "thaw budget of 2s exceeded: thawed before the cut's reads finished".into()),
        });
        p
    }

    #[test]
    fn app_consistent_texts() {
        let ok = render_created(&CreatePointResponse { request_id: 9, point: Some(app_consistent_point(true)) });
        assert!(ok.starts_with("recovery point 14 committed at 2026-05-01T10:00:00Z (app-consistent, app-consistent;"));
        assert!(ok.ends_with("\napp-consistent: froze /mnt/data for 38 ms (budget 2000 ms)"), "{ok}");
        let mut both = app_consistent_point(true);
        both.quiesce.as_mut().unwrap().hooks = true;
        let both = render_created(&CreatePointResponse { request_id: 9, point: Some(both) });
        assert!(both.ends_with("app-consistent: froze /mnt/data and ran the hooks for 38 ms (budget 2000 ms)"));
        let failed = render_created(&CreatePointResponse { request_id: 9, point: Some(app_consistent_point(false)) });
        assert!(!failed.contains('\n'), "{failed}");
    }

    #[test]
    fn a_failed_app_consistent_attempt_exits_10() {
        let answer = CreatePointResponse { request_id: 5, point: Some(app_consistent_point(false)) };
        let body = serde_json::to_string(&answer).unwrap();
        for output in [OutputFormat::Text, OutputFormat::Json] {
            let server = FakeServer::start(vec![Reply::json(200, &body)]);
            let client = Client::new(&server.url, None).unwrap();
            let mut request = create_request(true, None);
            request.freeze = vec!["/mnt/data".into()];
            request.thaw_budget_ms = Some(2000);
            let err = create(&client, output, &PairId::new("web-01").unwrap(), request).unwrap_err();
            assert_eq!(err.exit_code(), exit::NOT_APP_CONSISTENT);
            assert_eq!(
                err.to_string(),
                "app-consistent attempt failed: thaw budget of 2s exceeded: thawed before the cut's reads finished; \
                 point 14 is fuzzy"
            );
            assert_eq!(err.to_json(), serde_json::to_value(&answer).unwrap(), "the answer, as on success");
            let sent: CreatePointRequest = serde_json::from_slice(&server.finish()[0].body).unwrap();
            assert_eq!(
                (sent.freeze, sent.hooks, sent.thaw_budget_ms),
                (vec!["/mnt/data".to_string()], false, Some(2000))
            );
        }
        // Achieved: success.
        let answer = CreatePointResponse { request_id: 6, point: Some(app_consistent_point(true)) };
        let server = FakeServer::start(vec![Reply::json(200, &serde_json::to_string(&answer).unwrap())]);
        let client = Client::new(&server.url, None).unwrap();
        create(&client, OutputFormat::Text, &PairId::new("web-01").unwrap(), create_request(true, None)).unwrap();
        server.finish();
    }
}
