//! `drpair start PAIR --type start|resume|reload`: start a pair, continue it (optionally
//! replaying from an older point), or reload it (a new baseline, like `restart`).
//!
//! Invariant: the CLI checks only that each value parses; whether a combination of options
//! makes sense is the API's call (400 → exit 8), so the CLI and the API never disagree.

use crate::client::{CliError, Client};
use crate::confirm;
use crate::lifecycle::{self, WaitArgs};
use crate::output::OutputFormat;
use clap::{Args, ValueEnum};
use drpair_types::{PairId, PointId, PointSpec, StartRequest, StartType};
use std::io::BufRead;

#[derive(Debug, Args)]
#[command(
    about = "Start, resume (optionally from an older point) or reload a pair",
    long_about = "Start a DR pair (POST /api/v1/pairs/PAIR/start).\n\n\
        --type start runs a pair that never ran. --type resume continues from the recovery \
        checkpoint (shown by 'drpair status'); with --from-point or --from-time it replays from \
        an older point instead: points after it are deleted and the agent ships again every \
        chunk changed since then (possible back to 'change history from' in status). \
        --type reload is the same as 'drpair restart': every recovery point is deleted and \
        everything is copied again (--full-copy and --keep-points-until-synced as there).\n\n\
        --stop-at-point and --stop-at-time set a stop position: the pair stops by itself after \
        the first point at or past it (state Stopped, reason STOPPED_AT_POINT, or \
        STOPPED_AT_COMMIT_TIME for the time of the agent's cut: STOPPED_AT_TIME before). \
        --stop-at-server-time stops it when the standby's clock reaches the time, whatever is \
        being shipped (STOPPED_AT_SERVER_TIME). With --type start or reload, \
        --stop-after-full-load stops once the baseline is committed, the changes made meanwhile \
        waiting in the agent's change map (STOPPED_AFTER_FULL_LOAD), and --full-load-only copies \
        the baseline only (FULL_LOAD_ONLY_FINISHED); 'drpair resume' goes on from there.\n\n\
        Times are RFC 3339 in UTC (2026-11-22T10:30:00Z) or Unix seconds (@1763807400). A \
        from-point is a point id (17) or a recovery checkpoint (LINEAGE:17). Only values that \
        do not parse are refused here (exit code 2); which options go together is decided by \
        the standby, which refuses a bad combination with exit code 8.\n\n\
        Reload and a from-position delete recovery points: the command prints a warning on \
        stderr and asks you to type the pair id (exit code 9 and nothing changed otherwise); \
        --yes skips the question. --wait and --timeout as for 'drpair restart'.\n\n\
        With --output json: the ActionResponse as the API returns it.",
    after_help = "Examples:\n  drpair start web-01 --type start\n  \
        drpair start web-01 --type resume --stop-at-time 2026-11-22T18:00:00Z\n  \
        drpair start web-01 --type resume --from-point 17 --yes\n  \
        drpair start web-01 --type resume --from-time @1763807400 --stop-at-point 40\n  \
        echo web-01 | drpair start web-01 --type reload --keep-points-until-synced --wait"
)]
pub struct StartArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// How to start
    #[arg(long = "type", value_name = "TYPE", value_enum)]
    pub start_type: StartTypeArg,
    /// Replay from this point: a point id (17) or a recovery checkpoint (LINEAGE:17)
    #[arg(long, value_name = "POINT")]
    pub from_point: Option<String>,
    /// Replay from the newest point cut at or before this time (RFC 3339 UTC or @UNIX_SECONDS)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub from_time: Option<String>,
    /// Stop after the first point at or past this point id
    #[arg(long, value_name = "ID")]
    pub stop_at_point: Option<PointId>,
    /// Stop after the first point cut at or past this time (RFC 3339 UTC or @UNIX_SECONDS)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub stop_at_time: Option<String>,
    /// Stop when the standby's clock reaches this time (RFC 3339 UTC or @UNIX_SECONDS)
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub stop_at_server_time: Option<String>,
    /// With --type start or reload: stop once the baseline is committed
    #[arg(long)]
    pub stop_after_full_load: bool,
    /// With --type start or reload: copy the baseline only, then stop
    #[arg(long)]
    pub full_load_only: bool,
    /// Do not ask for the pair id when points would be deleted (the warning is still printed)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// With --type reload: ship every chunk's bytes, even those the standby already holds
    #[arg(long)]
    pub full_copy: bool,
    /// With --type reload: keep the old points read-only until the new baseline completes
    #[arg(long)]
    pub keep_points_until_synced: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--type`: the values of [`StartType`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StartTypeArg {
    /// First run of a pair that never ran
    Start,
    /// Continue from the recovery checkpoint, or replay from --from-point/--from-time
    Resume,
    /// New lineage, copy everything again (same as 'drpair restart')
    Reload,
}

impl From<StartTypeArg> for StartType {
    fn from(t: StartTypeArg) -> Self {
        match t {
            StartTypeArg::Start => StartType::Start,
            StartTypeArg::Resume => StartType::Resume,
            StartTypeArg::Reload => StartType::Reload,
        }
    }
}

/// Checks a time with [`drpair_types::parse_time_ms`] and keeps the text as given.
fn parse_time(text: &str) -> Result<String, String> {
    drpair_types::parse_time_ms(text).map(|_| text.to_string())
}

impl StartArgs {
    fn reloads(&self) -> bool {
        self.start_type == StartTypeArg::Reload
    }

    fn replays(&self) -> bool {
        self.from_point.is_some() || self.from_time.is_some()
    }

    /// Whether recovery points may be deleted, so the pair id must be confirmed.
    pub fn deletes_points(&self) -> bool {
        self.reloads() || self.replays()
    }

    /// The body sent, once confirmed where needed.
    pub fn request(&self) -> StartRequest {
        StartRequest {
            start_type: self.start_type.into(),
            from_point: self.from_point.clone().map(PointSpec::Text),
            from_time: self.from_time.clone(),
            stop_at_point: self.stop_at_point,
            stop_at_time: self.stop_at_time.clone(),
            stop_at_server_time: self.stop_at_server_time.clone(),
            stop_after_full_load: self.stop_after_full_load,
            full_load_only: self.full_load_only,
            confirm: self.deletes_points().then(|| self.pair.to_string()),
            full_copy: self.full_copy,
            keep_points_until_synced: self.keep_points_until_synced,
        }
    }
}

/// `drpair start PAIR`; a needed confirmation is read from `input`.
pub fn run(client: &Client, output: OutputFormat, args: &StartArgs, input: &mut dyn BufRead) -> Result<(), CliError> {
    let pair = &args.pair;
    if args.deletes_points() {
        let mut warnings = Vec::new();
        if args.reloads() {
            let points = confirm::count_points(client, pair)?;
            warnings.push(confirm::rebaseline_warning(pair, points, args.keep_points_until_synced));
        }
        if args.replays() {
            warnings.push(confirm::replay_warning(pair));
        }
        confirm::warn_and_confirm(pair, &warnings, args.yes, input)?;
    }
    lifecycle::act(client, output, pair, "start", &args.request())?;
    lifecycle::wait_settled(client, output, pair, &args.wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::FakeServer;
    use crate::lifecycle::tests::{answer, body, points_reply};
    use drpair_types::PairState;
    use serde_json::json;
    use std::io::Cursor;

    fn args(start_type: StartTypeArg) -> StartArgs {
        StartArgs {
            pair: PairId::new("web-01").unwrap(),
            start_type,
            from_point: None,
            from_time: None,
            stop_at_point: None,
            stop_at_time: None,
            stop_at_server_time: None,
            stop_after_full_load: false,
            full_load_only: false,
            yes: false,
            full_copy: false,
            keep_points_until_synced: false,
            wait: WaitArgs { wait: false, timeout: None },
        }
    }

    fn sent(a: &StartArgs, input: &str, replies: Vec<crate::fake_server::Reply>) -> Vec<serde_json::Value> {
        let server = FakeServer::start(replies);
        let client = Client::new(&server.url, None).unwrap();
        run(&client, OutputFormat::Json, a, &mut Cursor::new(input.as_bytes())).unwrap();
        let reqs = server.finish();
        let post = reqs.last().unwrap();
        assert_eq!((post.method.as_str(), post.path.as_str()), ("POST", "/api/v1/pairs/web-01/start"));
        reqs.iter().filter(|r| r.method == "POST").map(body).collect()
    }

    #[test]
    fn plain_start_and_resume_need_no_confirmation() {
        let mut a = args(StartTypeArg::Resume);
        a.stop_at_point = Some(40);
        a.stop_at_time = Some("@1763807400".into());
        let bodies = sent(&a, "", vec![answer(PairState::Replicating, 0)]);
        assert_eq!(
            bodies[0],
            json!({"type": "resume", "from_point": null, "from_time": null, "stop_at_point": 40,
                   "stop_at_time": "@1763807400", "confirm": null, "full_copy": false,
                   "keep_points_until_synced": false})
        );
        let bodies = sent(&args(StartTypeArg::Start), "", vec![answer(PairState::InitialSync, 0)]);
        assert_eq!(bodies[0]["type"], "start");
        assert_eq!(bodies[0]["confirm"], serde_json::Value::Null);
    }

    #[test]
    fn replay_is_confirmed_and_sends_both_positions_as_given() {
        let mut a = args(StartTypeArg::Resume);
        a.from_point = Some("5d0c3c1e-0000-4000-8000-000000000000:17".into());
        a.from_time = Some("2026-11-22T10:30:00Z".into());
        let bodies = sent(&a, "web-01\n", vec![answer(PairState::Replicating, 3)]);
        assert_eq!(bodies[0]["from_point"], "5d0c3c1e-0000-4000-8000-000000000000:17");
        assert_eq!(bodies[0]["from_time"], "2026-11-22T10:30:00Z");
        assert_eq!(bodies[0]["confirm"], "web-01");
    }

    #[test]
    fn reload_counts_points_and_is_confirmed() {
        let mut a = args(StartTypeArg::Reload);
        a.full_copy = true;
        a.keep_points_until_synced = true;
        let bodies = sent(&a, "web-01\n", vec![points_reply(2), answer(PairState::InitialSync, 0)]);
        assert_eq!(
            bodies[0],
            json!({"type": "reload", "from_point": null, "from_time": null, "stop_at_point": null,
                   "stop_at_time": null, "confirm": "web-01", "full_copy": true,
                   "keep_points_until_synced": true})
        );
    }

    #[test]
    fn unconfirmed_reload_or_replay_posts_nothing() {
        let mut replay = args(StartTypeArg::Resume);
        replay.from_point = Some("17".into());
        for (a, replies) in [(args(StartTypeArg::Reload), vec![points_reply(1)]), (replay, vec![])] {
            let server = FakeServer::start(replies);
            let client = Client::new(&server.url, None).unwrap();
            let err = run(&client, OutputFormat::Text, &a, &mut Cursor::new(&b"nope\n"[..])).unwrap_err();
            assert_eq!(err.exit_code(), exit::ABORTED);
            assert!(server.finish().iter().all(|r| r.method != "POST"));
        }
    }

    #[test]
    fn the_api_judges_combinations() {
        let mut a = args(StartTypeArg::Start);
        a.from_point = Some("17".into());
        a.from_time = Some("@1763807400".into());
        a.yes = true;
        let refusal = r#"{"code":"InvalidParameter","message":"give from_point or from_time, not both"}"#;
        let server = FakeServer::start(vec![crate::fake_server::Reply::json(400, refusal)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = run(&client, OutputFormat::Text, &a, &mut Cursor::new(&b""[..])).unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_PARAMETER);
        assert_eq!(err.to_string(), "give from_point or from_time, not both");
        let reqs = server.finish();
        assert_eq!(body(&reqs[0])["from_point"], "17");
    }

    #[test]
    fn yes_confirms_without_reading() {
        let mut a = args(StartTypeArg::Resume);
        a.from_time = Some("@1763807400".into());
        a.yes = true;
        let bodies = sent(&a, "", vec![answer(PairState::Replicating, 0)]);
        assert_eq!(bodies[0]["confirm"], "web-01");
    }

    #[test]
    fn times_are_checked_and_kept_as_given() {
        assert_eq!(parse_time("@1763807400").unwrap(), "@1763807400");
        assert_eq!(parse_time("2026-11-22T10:30:00Z").unwrap(), "2026-11-22T10:30:00Z");
        assert!(parse_time("yesterday").is_err());
    }
}
