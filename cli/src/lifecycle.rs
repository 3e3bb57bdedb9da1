//! `drpair restart|pause|resume|stop PAIR`: the actions that change how a pair runs
//! (`start` lives in `start.rs`; `suspend` and the other steps of a third-party dump in
//! `dump.rs`, apart from `resume --resync`, which lives here with `resume`). Each is one `POST /api/v1/pairs/PAIR/ACTION` answered by an
//! `ActionResponse`; the standby decides whether the pair's state allows it (409 → exit 4).

use crate::client::{ANSWER_TIMEOUT, CliError, Client};
use crate::confirm;
use crate::output::{self, Block, OutputFormat};
use crate::wait::{self, Goal};
use clap::Args;
use drpair_types::{ActionResponse, PairId, RestartRequest, ResumeRequest};
use serde::Serialize;
use std::io::BufRead;
use std::time::Duration;

/// Default of `--timeout` with `--wait`: a new baseline of large disks takes hours.
pub const DEFAULT_WAIT_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

#[derive(Debug, Args)]
#[command(
    about = "Delete every recovery point of a pair and copy everything again",
    long_about = "Restart replication of a DR pair from scratch (POST /api/v1/pairs/PAIR/restart): \
        every recovery point of the pair is deleted, a new lineage begins and every disk is \
        copied again as a new baseline. Until that baseline completes the standby is not ready \
        for failover.\n\n\
        The command first prints on stderr what will be deleted (it counts the pair's recovery \
        points) and then asks you to type the pair id; anything else, or end of input, aborts \
        with exit code 9 and nothing is changed. --yes skips the question (the warning is still \
        printed). The pair id may also be piped in: 'echo web-01 | drpair restart web-01'.\n\n\
        By default chunks the standby already holds cross the link as hashes and are verified \
        against the stored chunk; --full-copy ships every chunk's bytes. \
        --keep-points-until-synced keeps the old points read-only until the new baseline \
        completes, and deletes them then.\n\n\
        --wait then polls until the pair is Replicating and ready for failover, with a progress \
        bar on stderr (a progress line every 10 s when stderr is not a terminal); --timeout \
        (default 24h) gives up with exit code 7. A pair that becomes Paused or Stopped meanwhile \
        ends the wait with exit code 4.\n\n\
        Prints the standby's answer and the new state. With --output json: the ActionResponse \
        ({\"message\", \"points_deleted\", \"status\"}) as the API returns it.",
    after_help = "Examples:\n  drpair restart web-01\n  echo web-01 | drpair restart web-01 --keep-points-until-synced\n  \
        drpair restart web-01 --yes --full-copy --wait --timeout 12h"
)]
pub struct RestartArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Do not ask for the pair id (the warning is still printed)
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Ship every chunk's bytes, even those the standby already holds
    #[arg(long)]
    pub full_copy: bool,
    /// Keep the old recovery points read-only until the new baseline completes
    #[arg(long)]
    pub keep_points_until_synced: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
}

/// `--wait` and `--timeout` of `restart` and `start`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Afterwards wait until the pair is Replicating and ready for failover
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this long (e.g. 90m, 12h; default 24h) with exit code 7
    #[arg(long, value_name = "DURATION", requires = "wait", value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
}

#[derive(Debug, Args)]
#[command(
    about = "Pause shipping of a pair; the agent keeps tracking changes",
    long_about = "Pause a DR pair (POST /api/v1/pairs/PAIR/pause): the agent stops shipping but \
        keeps tracking changed blocks, so nothing is lost; the lag (recovery point objective) \
        grows until 'drpair resume'. The state becomes Paused.\n\n\
        With --output json: the ActionResponse as the API returns it.",
    after_help = "Examples:\n  drpair pause web-01\n  drpair pause web-01 --output json | jq -r .status.state"
)]
pub struct PauseArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
}

#[derive(Debug, Args)]
#[command(
    about = "Resume shipping of a paused or stopped pair, or resume a dump workflow in resync mode",
    long_about = "Resume a paused DR pair (POST /api/v1/pairs/PAIR/resume): the agent ships the \
        changes tracked while paused and the pair catches up. A Stopped pair is continued the \
        same way (or with 'drpair start PAIR --type resume').\n\n\
        Third-party dump workflow: once the dump point is recorded ('drpair marker dump'), \
        --resync resumes in resync mode: the agent checks that its change history still reaches \
        the dump point, sends a resync marker and then the dump marker, and the standby suspends \
        apply until the dump is loaded ('drpair standby load-dump', then 'drpair standby \
        resume-apply'). A plain resume (without --resync) of a suspended pair abandons the dump \
        workflow and resumes from the recovery checkpoint.\n\n\
        When the agent's change history no longer reaches the dump point, --resync --reinit \
        --force re-initialises the pair instead: every recovery point of the pair is deleted, a \
        new lineage begins and everything is copied again, as 'drpair restart' does. --force is \
        your confirmation (the CLI sends the pair id as the confirmation); there is no question. \
        --reinit needs --resync and --force, and --force goes only with --reinit.\n\n\
        With --output json: the ActionResponse as the API returns it.",
    after_help = "Examples:\n  drpair resume web-01\n  drpair resume web-01 && drpair status web-01 --wait-synced\n  \
        drpair resume web-01 --resync\n  drpair resume web-01 --resync --reinit --force"
)]
pub struct ResumeArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Resume in resync mode after 'drpair marker dump' (third-party dump workflow)
    #[arg(long)]
    pub resync: bool,
    /// With --resync --force: re-initialise instead: delete every recovery point, copy everything again
    #[arg(long, requires_all = ["resync", "force"])]
    pub reinit: bool,
    /// With --reinit: confirm that every recovery point of the pair is deleted (no question asked)
    #[arg(long, requires = "reinit")]
    pub force: bool,
}

#[derive(Debug, Args)]
#[command(
    about = "Stop replication of a pair; its recovery points are kept",
    long_about = "Stop a DR pair (POST /api/v1/pairs/PAIR/stop): replication stops and the state \
        becomes Stopped with stop reason NORMAL (STOPPED_BY_USER before). Recovery points are kept. Continue \
        with 'drpair start PAIR --type resume'.\n\n\
        With --output json: the ActionResponse as the API returns it.",
    after_help = "Examples:\n  drpair stop web-01\n  drpair stop web-01 && drpair start web-01 --type resume"
)]
pub struct StopArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
}

/// The actions without a body of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    Stop,
}

impl Action {
    fn path(self) -> &'static str {
        match self {
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Stop => "stop",
        }
    }
}

/// `drpair pause|resume|stop PAIR`: `POST` with body `{}`.
pub fn simple(client: &Client, output: OutputFormat, pair: &PairId, action: Action) -> Result<(), CliError> {
    act(client, output, pair, action.path(), &serde_json::json!({}))?;
    Ok(())
}

/// `drpair restart PAIR`; the confirmation is read from `input`.
pub fn restart(
    client: &Client,
    output: OutputFormat,
    args: &RestartArgs,
    input: &mut dyn BufRead,
) -> Result<(), CliError> {
    let pair = &args.pair;
    let points = confirm::count_points(client, pair)?;
    let warning = confirm::rebaseline_warning(pair, points, args.keep_points_until_synced);
    confirm::warn_and_confirm(pair, &[warning], args.yes, input)?;
    let request = RestartRequest {
        confirm: pair.to_string(),
        full_copy: args.full_copy,
        keep_points_until_synced: args.keep_points_until_synced,
    };
    act(client, output, pair, "restart", &request)?;
    wait_settled(client, output, pair, &args.wait)
}

/// `drpair resume PAIR [--resync [--reinit --force]]`. A plain resume posts `{}` as it always
/// did; `--resync` posts a [`ResumeRequest`]; `--reinit` first warns on stderr what is deleted.
pub fn resume(client: &Client, output: OutputFormat, args: &ResumeArgs) -> Result<(), CliError> {
    let pair = &args.pair;
    if !args.resync {
        return simple(client, output, pair, Action::Resume);
    }
    if args.reinit {
        // clap makes --reinit require --force: the operator has confirmed; say what happens.
        let points = confirm::count_points(client, pair)?;
        eprintln!("{}", confirm::rebaseline_warning(pair, points, false));
        eprintln!("warning: --force given: re-initialising pair {pair} without asking");
    }
    let request = resume_request(args);
    // The standby waits up to a minute for the agent's resync and dump markers.
    let (raw, response) = post_action(client, pair, "resume", &request, crate::dump::DUMP_ACTION_TIMEOUT)?;
    crate::dump::print_dump_action(output, &raw, &response);
    Ok(())
}

/// The body of `resume --resync`: the pair id is the confirmation of `--reinit --force`.
pub fn resume_request(args: &ResumeArgs) -> ResumeRequest {
    ResumeRequest {
        resync: args.resync,
        reinit: args.reinit,
        confirm: (args.reinit && args.force).then(|| args.pair.to_string()),
    }
}

/// `POST /api/v1/pairs/PAIR/ACTION` with `body`; prints the answer.
pub fn act<B: Serialize>(
    client: &Client,
    output: OutputFormat,
    pair: &PairId,
    action: &str,
    body: &B,
) -> Result<ActionResponse, CliError> {
    let (raw, response) = post_action(client, pair, action, body, ANSWER_TIMEOUT)?;
    output::answer(output, &raw, || render_action(&response));
    Ok(response)
}

/// `POST /api/v1/pairs/PAIR/ACTION` with `body`, waiting up to `answer_timeout` for the
/// answer (2xx: 200 or 202); returns it raw and typed, printing nothing.
pub fn post_action<B: Serialize>(
    client: &Client,
    pair: &PairId,
    action: &str,
    body: &B,
    answer_timeout: Duration,
) -> Result<(serde_json::Value, ActionResponse), CliError> {
    let (_status, raw, response) = client.post_json(&format!("/api/v1/pairs/{pair}/{action}"), body, answer_timeout)?;
    Ok((raw, response))
}

/// With `--wait`: waits until the pair has settled and says so (stdout keeps only the
/// action's answer with `--output json`).
pub fn wait_settled(client: &Client, output: OutputFormat, pair: &PairId, args: &WaitArgs) -> Result<(), CliError> {
    if !args.wait {
        return Ok(());
    }
    let timeout = args.timeout.unwrap_or(DEFAULT_WAIT_TIMEOUT);
    let (_, status) = wait::wait(client, output, pair, Goal::Settled, Some(timeout))?;
    if output == OutputFormat::Text {
        output::emit(&format!("pair {pair} is {} and ready for failover", status.state_label));
    }
    Ok(())
}

/// The text answer of an action: the standby's sentence, then the new state.
pub fn render_action(r: &ActionResponse) -> String {
    render_action_with(r, None)
}

/// [`render_action`], with the next step to take (of a third-party dump workflow) if any.
pub fn render_action_with(r: &ActionResponse, next_step: Option<&str>) -> String {
    let mut b = Block::default();
    b.line("State", format!("{} ({})", r.status.state_label, r.status.state_explanation));
    if r.points_deleted > 0 {
        b.line("Points deleted", r.points_deleted.to_string());
    }
    if let Some(next) = next_step {
        b.line("Next step", next);
    }
    format!("{}\n{}", r.message, b.render())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use crate::status::tests::status;
    use drpair_types::PairState;
    use std::io::Cursor;

    pub(crate) fn answer(state: PairState, points_deleted: u64) -> Reply {
        let r = ActionResponse { message: "done".into(), points_deleted, status: status(state, 0.0) };
        Reply::json(200, &serde_json::to_string(&r).unwrap())
    }

    pub(crate) fn points_reply(n: u64) -> Reply {
        let points: Vec<_> = (1..=n).map(|i| crate::points::tests::point(i, 0)).collect();
        Reply::json(200, &serde_json::to_string(&points).unwrap())
    }

    pub(crate) fn body(req: &crate::fake_server::Request) -> serde_json::Value {
        serde_json::from_slice(&req.body).unwrap()
    }

    fn restart_args(yes: bool) -> RestartArgs {
        RestartArgs {
            pair: PairId::new("web-01").unwrap(),
            yes,
            full_copy: false,
            keep_points_until_synced: true,
            wait: WaitArgs { wait: false, timeout: None },
        }
    }

    #[test]
    fn pause_resume_stop_post_an_empty_object() {
        for (action, path) in [(Action::Pause, "pause"), (Action::Resume, "resume"), (Action::Stop, "stop")] {
            let server = FakeServer::start(vec![answer(PairState::Paused, 0)]);
            let client = Client::new(&server.url, None).unwrap();
            simple(&client, OutputFormat::Text, &PairId::new("web-01").unwrap(), action).unwrap();
            let reqs = server.finish();
            assert_eq!(reqs[0].method, "POST");
            assert_eq!(reqs[0].path, format!("/api/v1/pairs/web-01/{path}"));
            assert_eq!(body(&reqs[0]), serde_json::json!({}));
        }
    }

    #[test]
    fn restart_confirmed_posts_the_request() {
        let server = FakeServer::start(vec![points_reply(3), answer(PairState::InitialSync, 0)]);
        let client = Client::new(&server.url, None).unwrap();
        restart(&client, OutputFormat::Json, &restart_args(false), &mut Cursor::new(&b"web-01\n"[..])).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("GET", "/api/v1/pairs/web-01/points"));
        assert_eq!((reqs[1].method.as_str(), reqs[1].path.as_str()), ("POST", "/api/v1/pairs/web-01/restart"));
        assert_eq!(
            body(&reqs[1]),
            serde_json::json!({"confirm": "web-01", "full_copy": false, "keep_points_until_synced": true})
        );
    }

    #[test]
    fn restart_not_confirmed_posts_nothing() {
        for input in ["web-02\n", ""] {
            let server = FakeServer::start(vec![points_reply(2)]);
            let client = Client::new(&server.url, None).unwrap();
            let err = restart(&client, OutputFormat::Text, &restart_args(false), &mut Cursor::new(input.as_bytes()))
                .unwrap_err();
            assert_eq!(err.exit_code(), exit::ABORTED);
            let reqs = server.finish();
            assert!(reqs.iter().all(|r| r.method != "POST"), "{reqs:?}");
        }
    }

    #[test]
    fn restart_yes_does_not_read_input() {
        let server = FakeServer::start(vec![points_reply(0), answer(PairState::InitialSync, 0)]);
        let client = Client::new(&server.url, None).unwrap();
        restart(&client, OutputFormat::Text, &restart_args(true), &mut Cursor::new(&b""[..])).unwrap();
        assert_eq!(server.finish()[1].path, "/api/v1/pairs/web-01/restart");
    }

    #[test]
    fn api_refusals_map_to_exit_codes_with_the_message() {
        let cases = [
            (400, "InvalidParameter", "confirm must be the pair id", exit::INVALID_PARAMETER),
            (409, "InvalidPairState", "pair 'web-01' is Stopped: resume it with start", exit::INVALID_STATE),
            (404, "PairNotFound", "pair 'web-01' not found", exit::NOT_FOUND),
        ];
        for (status, code, message, want) in cases {
            let err_body = format!(r#"{{"code":"{code}","message":"{message}"}}"#);
            let server = FakeServer::start(vec![Reply::json(status, &err_body)]);
            let client = Client::new(&server.url, None).unwrap();
            let err = simple(&client, OutputFormat::Text, &PairId::new("web-01").unwrap(), Action::Resume).unwrap_err();
            assert_eq!(err.exit_code(), want, "{status}");
            assert_eq!(err.to_string(), message);
            server.finish();
        }
    }

    #[test]
    fn restart_waits_until_settled() {
        let mut settled = status(PairState::Replicating, 100.0);
        settled.ready_for_failover = true;
        let settled = Reply::json(200, &serde_json::to_string(&settled).unwrap());
        let server = FakeServer::start(vec![points_reply(1), answer(PairState::InitialSync, 1), settled]);
        let client = Client::new(&server.url, None).unwrap();
        let mut args = restart_args(true);
        args.wait.wait = true;
        restart(&client, OutputFormat::Text, &args, &mut Cursor::new(&b""[..])).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[2].method.as_str(), reqs[2].path.as_str()), ("GET", "/api/v1/pairs/web-01"));
    }

    #[test]
    fn action_text() {
        let r = ActionResponse {
            message: "pair web-01 restarted".into(),
            points_deleted: 4,
            status: status(PairState::InitialSync, 0.0),
        };
        assert_eq!(
            render_action(&r),
            "pair web-01 restarted\nState:           Start Replication (the first full copy is running)\nPoints deleted:  4\n"
        );
    }
}
