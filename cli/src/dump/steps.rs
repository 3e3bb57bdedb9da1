//! The steps of the dump workflow that take only the pair: `suspend`, `standby
//! skip-to-resync-marker` and `standby resume-apply` (and the `standby` command tree, whose
//! `load-dump` lives in `load.rs`).

use super::load::{self, LoadDumpArgs};
use super::{DUMP_ACTION_TIMEOUT, next_step};
use crate::client::{CliError, Client};
use crate::lifecycle;
use crate::output::{self, OutputFormat};
use clap::{Args, Subcommand};
use drpair_types::{ActionResponse, PairId};

#[derive(Debug, Args)]
#[command(
    about = "Suspend a pair to seed the standby from a third-party dump",
    long_about = "Suspend a DR pair for a third-party dump (POST /api/v1/pairs/PAIR/suspend): the \
        first step of seeding or re-seeding the standby from a snapshot taken by another tool (a \
        SAN, LVM or cloud snapshot, a disk image on media), so that only the changes made after \
        the dump point cross the link. The agent ships nothing and its recovery checkpoint stays \
        where it is (an epoch in flight is abandoned, not committed); it keeps tracking changes. \
        The state becomes Suspended.\n\n\
        The steps, each printed as 'Next step' by the previous one and by 'drpair status':\n  \
        1. drpair suspend PAIR\n  \
        2. drpair standby skip-to-resync-marker PAIR\n  \
        3. take the dump, then: drpair marker dump PAIR (or let drpair run the snapshot command: \
        --freeze MOUNTPOINT --exec CMD)\n  \
        4. drpair resume PAIR --resync\n  \
        5. drpair standby load-dump PAIR --disk N --image FILE (every disk)\n  \
        6. drpair standby resume-apply PAIR\n\n\
        A plain 'drpair resume PAIR' abandons the workflow and resumes from the recovery \
        checkpoint.\n\n\
        With --output json: the ActionResponse as the API returns it.",
    after_help = "Examples:\n  drpair suspend web-01\n  drpair suspend web-01 && drpair standby skip-to-resync-marker web-01"
)]
pub struct SuspendArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
}

#[derive(Debug, Args)]
#[command(
    about = "Steps of a third-party dump done by the standby: purge, load the dump, resume apply",
    long_about = "Steps of the third-party dump workflow that the standby carries out (see \
        'drpair suspend --help' for the whole workflow)."
)]
pub struct StandbyArgs {
    #[command(subcommand)]
    pub command: StandbyCommand,
}

#[derive(Debug, Subcommand)]
pub enum StandbyCommand {
    /// Purge the standby's queue for a suspended pair and wait for the agent's resync marker
    #[command(
        long_about = "Purge what the standby has queued for a suspended pair and wait for the agent's \
            resync marker (POST /api/v1/pairs/PAIR/skip-to-resync-marker): chunk versions of \
            epochs that were not committed are discarded, since the dump will replace them. The \
            state becomes 'Waiting for resync marker'. Take the dump now, then record its point \
            with 'drpair marker dump PAIR'.\n\n\
            With --output json: the ActionResponse as the API returns it.",
        after_help = "Examples:\n  drpair standby skip-to-resync-marker web-01"
    )]
    SkipToResyncMarker(PairArg),
    LoadDump(LoadDumpArgs),
    /// Resume apply once every disk's dump is loaded: the dump becomes a recovery point
    #[command(
        long_about = "Resume apply after the dump of every disk is loaded (POST \
            /api/v1/pairs/PAIR/resume-apply): the dump becomes a recovery point (kind \
            dump-marker) and the agent ships every chunk changed after the dump point; then every \
            chunk is compared with the source before the pair is declared replicating. 'drpair \
            status PAIR' shows the verification (chunks compared, shipped and mismatched).\n\n\
            With --output json: the ActionResponse as the API returns it.",
        after_help = "Examples:\n  drpair standby resume-apply web-01\n  \
            drpair standby resume-apply web-01 && drpair status web-01 --wait-synced"
    )]
    ResumeApply(PairArg),
    /// Show or change the standby-wide settings: the bandwidth limit of every link together
    #[command(
        long_about = "Show the standby-wide settings (GET /api/v1/standby/settings), or change them \
            (PUT; admin): --bandwidth limits the bytes on the wire from every agent together. \
            In force within a second, and kept over the standby's restarts (until the config's \
            own `bandwidth` changes). A pair's own limit (drpair pairs set PAIR --bandwidth) \
            applies as well.\n\n\
            With --output json: the StandbySettings object (bandwidth, \
            bandwidth_limit_bytes_per_second, wire_bytes_per_second).",
        after_help = "Examples:\n  drpair standby set --bandwidth 400Mbit/s\n  \
            drpair standby set --bandwidth \"Mon-Fri 08:00-18:00 = 50MiB/s; * = unlimited\"\n  drpair standby set"
    )]
    Set {
        #[arg(long, value_name = "RATE_OR_SCHEDULE", help = "Bandwidth limit of every link together", long_help = crate::settings::BANDWIDTH_HELP)]
        bandwidth: Option<String>,
    },
}

/// A command whose only argument is the pair.
#[derive(Debug, Args)]
pub struct PairArg {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
}

/// `drpair suspend PAIR`.
pub fn suspend(client: &Client, output: OutputFormat, args: &SuspendArgs) -> Result<(), CliError> {
    dump_action(client, output, &args.pair, "suspend")
}

/// `drpair standby …`.
pub fn run_standby(client: &Client, output: OutputFormat, args: &StandbyArgs) -> Result<(), CliError> {
    match &args.command {
        StandbyCommand::SkipToResyncMarker(a) => dump_action(client, output, &a.pair, "skip-to-resync-marker"),
        StandbyCommand::LoadDump(a) => load::load_dump(client, output, a, load::LOAD_POLL_EVERY),
        StandbyCommand::ResumeApply(a) => dump_action(client, output, &a.pair, "resume-apply"),
        StandbyCommand::Set { bandwidth } => crate::settings::standby(client, output, bandwidth.as_deref()),
    }
}

/// A step without parameters: `POST` with body `{}`; prints the answer and the next step.
fn dump_action(client: &Client, output: OutputFormat, pair: &PairId, action: &str) -> Result<(), CliError> {
    let (raw, response) = lifecycle::post_action(client, pair, action, &serde_json::json!({}), DUMP_ACTION_TIMEOUT)?;
    print_dump_action(output, &raw, &response);
    Ok(())
}

/// Prints the answer of a step of the workflow: as the API returns it, or the standby's
/// sentence, the new state and the next step.
pub fn print_dump_action(output: OutputFormat, raw: &serde_json::Value, response: &ActionResponse) {
    match output {
        OutputFormat::Json => output::emit(&output::to_json(raw)),
        OutputFormat::Text => output::emit(&render_dump_action(response)),
    }
}

/// The text answer of a step: the standby's sentence, the new state and the next step.
pub fn render_dump_action(r: &ActionResponse) -> String {
    lifecycle::render_action_with(r, next_step(&r.status))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dump::tests::{action_reply, dump_status, pair};
    use crate::fake_server::FakeServer;
    use crate::lifecycle::tests::body;
    use crate::status::tests::status;
    use drpair_types::{DumpStep, PairState};

    #[test]
    fn steps_without_parameters_post_an_empty_object() {
        type Step = fn(&Client, OutputFormat) -> Result<(), CliError>;
        let steps: [(Step, &str); 3] = [
            (|c, o| suspend(c, o, &SuspendArgs { pair: pair() }), "suspend"),
            (
                |c, o| {
                    run_standby(
                        c,
                        o,
                        &StandbyArgs { command: StandbyCommand::SkipToResyncMarker(PairArg { pair: pair() }) },
                    )
                },
                "skip-to-resync-marker",
            ),
            (
                |c, o| {
                    run_standby(c, o, &StandbyArgs { command: StandbyCommand::ResumeApply(PairArg { pair: pair() }) })
                },
                "resume-apply",
            ),
        ];
        for (step, path) in steps {
            let server = FakeServer::start(vec![action_reply(
                PairState::Suspended,
                "drpair standby skip-to-resync-marker web-01",
            )]);
            let client = Client::new(&server.url, None).unwrap();
            step(&client, OutputFormat::Text).unwrap();
            let reqs = server.finish();
            assert_eq!(
                (reqs[0].method.as_str(), reqs[0].path.as_str()),
                ("POST", format!("/api/v1/pairs/web-01/{path}").as_str())
            );
            assert_eq!(body(&reqs[0]), serde_json::json!({}));
        }
    }

    #[test]
    fn step_answers_name_the_next_step() {
        let mut s = status(PairState::Suspended, 0.0);
        s.state_label = "Suspended".into();
        s.state_explanation = "nothing is shipped".into();
        s.dump = Some(dump_status(DumpStep::Suspended, vec![], "drpair standby skip-to-resync-marker web-01"));
        let r = ActionResponse { message: "pair 'web-01' suspended".into(), points_deleted: 0, status: s };
        assert_eq!(
            render_dump_action(&r),
            "pair 'web-01' suspended\nState:      Suspended (nothing is shipped)\n\
             Next step:  drpair standby skip-to-resync-marker web-01\n"
        );
        let mut reinit = status(PairState::InitialSync, 0.0);
        reinit.dump = Some(dump_status(DumpStep::Abandoned, vec![], "drpair suspend web-01 to start over"));
        let reinit = ActionResponse { status: reinit, ..r.clone() };
        assert!(!render_dump_action(&reinit).contains("Next step"), "{}", render_dump_action(&reinit));
        let plain = ActionResponse { status: status(PairState::Paused, 0.0), ..r };
        assert!(!render_dump_action(&plain).contains("Next step"));
    }
}
