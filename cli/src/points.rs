//! `drpair points …`: the recovery points of a pair: list them, cut one now, export a disk
//! image of one (the export lives in `export.rs`).

use crate::client::{ANSWER_TIMEOUT, CliError, Client};
use crate::export::ExportArgs;
use crate::output::{self, OutputFormat, Table};
use clap::{Args, Subcommand};
use drpair_types::{CreatePointRequest, CreatePointResponse, PairId, RecoveryPoint};
use indicatif::{ProgressBar, ProgressStyle};
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
            SHIPPED (bytes that crossed the link), PINNED (kept by retention).\n\n\
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
            With --output json: the CreatePointResponse ({\"request_id\", \"point\"}).",
        after_help = "Examples:\n  drpair points create web-01\n  drpair points create web-01 --wait --timeout 5m"
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
    },
    Export(ExportArgs),
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
        PointsCommand::Create { pair, wait, timeout } => create(client, output, pair, *wait, *timeout),
        PointsCommand::Export(args) => crate::export::run(client, output, args),
    }
}

/// The body of `points create`: whole seconds, rounded up so `--timeout 1ms` is not 0.
pub fn create_request(wait: bool, timeout: Option<Duration>) -> CreatePointRequest {
    let timeout_seconds = timeout.map(|t| t.as_secs() + u64::from(t.subsec_nanos() > 0));
    CreatePointRequest { wait, timeout_seconds, ..Default::default() }
}

fn create(
    client: &Client,
    output: OutputFormat,
    pair: &PairId,
    wait: bool,
    timeout: Option<Duration>,
) -> Result<(), CliError> {
    let request = create_request(wait, timeout);
    // The standby holds a --wait call open up to its timeout (600 s by default): wait a
    // little longer than that for its answer, so its own 504 is what we report.
    let answer_timeout = if wait {
        Duration::from_secs(request.timeout_seconds.unwrap_or(600)) + ANSWER_TIMEOUT
    } else {
        ANSWER_TIMEOUT
    };
    let spinner = if wait {
        let s = ProgressBar::with_draw_target(None, output::progress_target(output))
            .with_style(
                ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            )
            .with_message(format!("waiting for the cut of pair {pair} to commit"));
        s.enable_steady_tick(Duration::from_millis(120));
        s
    } else {
        ProgressBar::hidden()
    };
    let result =
        client.post_json::<_, CreatePointResponse>(&format!("/api/v1/pairs/{pair}/points"), &request, answer_timeout);
    spinner.finish_and_clear();
    let (_status, raw, response) = result?;
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => output::emit(&render_created(&response)),
    }
    Ok(())
}

/// The text answer of `points create`.
pub fn render_created(r: &CreatePointResponse) -> String {
    match &r.point {
        Some(p) => format!(
            "recovery point {} committed at {} ({}, {}; changed {}, shipped {}; request {})",
            p.id,
            p.time,
            output::wire_name(&p.kind),
            output::wire_name(&p.consistency),
            output::format_size(p.sizes.changed_bytes),
            output::format_size(p.sizes.shipped_bytes),
            r.request_id
        ),
        None => format!("cut requested (request {})", r.request_id),
    }
}

/// The `points list` table.
pub fn render_points(points: &[RecoveryPoint]) -> String {
    let mut table = Table::new(&["ID", "TIME", "KIND", "CONSISTENCY", "CHANGED", "SHIPPED", "PINNED"]);
    for p in points {
        table.row(vec![
            p.id.to_string(),
            p.time.clone(),
            output::wire_name(&p.kind),
            output::wire_name(&p.consistency),
            output::format_size(p.sizes.changed_bytes),
            output::format_size(p.sizes.shipped_bytes),
            if p.pinned { "yes".into() } else { String::new() },
        ]);
    }
    table.render()
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
        }
    }

    #[test]
    fn table_of_points() {
        let mut b = point(12, 0);
        b.kind = PointKind::Baseline;
        b.consistency = Consistency::CrashConsistent;
        b.pinned = true;
        let text = render_points(&[b, point(13, 0)]);
        assert_eq!(
            text,
            "ID  TIME                  KIND      CONSISTENCY       CHANGED  SHIPPED  PINNED\n\
             12  2026-05-01T10:00:00Z  baseline  crash-consistent  3.0 MiB  1.0 MiB  yes\n\
             13  2026-05-01T10:00:00Z  manual    fuzzy             3.0 MiB  1.0 MiB\n"
        );
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
        assert_eq!(create_request(false, None), CreatePointRequest { wait: false, timeout_seconds: None });
    }

    #[test]
    fn create_posts_the_request_and_reads_202() {
        let body = serde_json::to_string(&CreatePointResponse { request_id: 5, point: None }).unwrap();
        let server = FakeServer::start(vec![Reply::json(202, &body)]);
        let client = Client::new(&server.url, Some("t".into())).unwrap();
        create(&client, OutputFormat::Text, &PairId::new("web-01").unwrap(), true, Some(Duration::from_secs(5)))
            .unwrap();
        let req = &server.finish()[0];
        assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v1/pairs/web-01/points"));
        let sent: CreatePointRequest = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(sent, CreatePointRequest { wait: true, timeout_seconds: Some(5) });
        assert!(req.header("content-type").unwrap().starts_with("application/json"));
    }

    #[test]
    fn create_in_wrong_state_exits_4() {
        let err_body = r#"{"code":"InvalidPairState","message":"pair 'web-01' is Disconnected: no agent to cut"}"#;
        let server = FakeServer::start(vec![Reply::json(409, err_body)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = create(&client, OutputFormat::Json, &PairId::new("web-01").unwrap(), false, None).unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_STATE);
        assert_eq!(err.to_string(), "pair 'web-01' is Disconnected: no agent to cut");
        server.finish();
    }
}
