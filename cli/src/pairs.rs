//! `drpair pairs …`: the DR pairs this standby protects.

use crate::client::{self, CliError, Client};
use crate::output::{self, OutputFormat, Table};
use clap::{Args, Subcommand};
use drpair_types::PairSummary;

#[derive(Debug, Args)]
#[command(
    about = "List the DR pairs of the standby; enroll and revoke their agents",
    long_about = "List the DR pairs of the standby.\n\n\
        A DR pair is one protected server and its standby; all disks of a pair share one \
        epoch clock, so one recovery point covers every disk of the pair."
)]
pub struct PairsArgs {
    #[command(subcommand)]
    pub command: PairsCommand,
}

#[derive(Debug, Subcommand)]
pub enum PairsCommand {
    /// One line per DR pair: state, readiness, lag, progress, newest point, source
    #[command(
        visible_alias = "ls",
        long_about = "One line per DR pair (GET /api/v1/pairs).\n\n\
            Columns: PAIR (the DR Pair ID), STATE (Initiating, Start Replication, Replicating, \
            Rescanning, Disconnected, Paused, Stopped, Configuration changed, …), READY (ready for failover: a complete recovery point \
            exists), LAG (age of the newest point, the recovery point objective right now), \
            PROGRESS (of the running pass; 100% when idle), LAST POINT (id and age), SOURCE \
            (the protected server).\n\n\
            --search TEXT lists only the pairs whose id, source host or source address contains \
            TEXT, ignoring case (GET /api/v1/pairs?search=TEXT; the standby filters).\n\n\
            With --output json: the array of PairSummary objects as the API returns it.",
        after_help = "Examples:\n  drpair pairs list\n  drpair pairs list --search web\n  \
            drpair pairs list --search 10.0.0.\n  \
            drpair --server http://standby:7701 pairs list --output json | jq '.[].pair_id'"
    )]
    List {
        /// Only pairs whose id, source host or source address contains TEXT (any case)
        #[arg(long, value_name = "TEXT")]
        search: Option<String>,
    },
    /// A single-use secret for one agent of PAIR, and the line to run on its server
    #[command(
        long_about = "Make a single-use enrollment secret for one agent of PAIR (POST \
            /api/v1/pairs/PAIR/enroll) and print the command to run on the protected server: \
            `drpaird agent enroll --standby HOST:PORT --fingerprint sha256:… --secret …`. The \
            agent makes its own key there, receives a certificate bound to PAIR and pins the \
            standby's fingerprint; from then on its link is mutual TLS and the standby takes the \
            pair from the certificate. The secret expires after --ttl (default 1h) and works once.\n\n\
            HOST is the host of --server unless --standby-host names another.\n\n\
            With --output json: the Enrollment object (pair_id, secret, expires_at, fingerprint, link_port).",
        after_help = "Examples:\n  drpair pairs enroll web-01\n  drpair pairs enroll web-01 --ttl 15m --standby-host backup.example.net"
    )]
    Enroll {
        /// The DR Pair ID (the pair need not exist yet)
        #[arg(value_name = "PAIR")]
        pair: drpair_types::PairId,
        /// How long the secret stays valid (1s to 7d)
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The standby's host as the protected server reaches it (default: the host of --server)
        #[arg(long, value_name = "HOST")]
        standby_host: Option<String>,
    },
    /// Revoke every certificate of PAIR's agent and end its connection
    #[command(long_about = "Revoke every certificate issued to PAIR's agent (POST /api/v1/pairs/PAIR/revoke): \
            its connection ends at once and it is refused until it enrolls again \
            (drpair pairs enroll PAIR). Recovery points are kept.")]
    Revoke {
        /// The DR Pair ID
        #[arg(value_name = "PAIR")]
        pair: drpair_types::PairId,
    },
    /// Delete PAIR: its recovery points, records, and the chunks only it used
    #[command(
        long_about = "Delete a DR pair (DELETE /api/v1/pairs/PAIR?confirm=PAIR): every recovery point \
            of it, its records and drill reports are removed, and the chunks no other pair refers \
            to are reclaimed. Its agent is refused from then on with the reason: it decommissions \
            itself (its tracefs instance and change maps are removed) and holds; starting it with \
            --reinit protects the server again as a new pair.\n\n\
            Refused (exit code 4, nothing changed) while a drill serves one of its points or the \
            pair is failed over or failing back.\n\n\
            The command prints on stderr what will be deleted and asks you to type the pair id; \
            anything else, or end of input, aborts with exit code 9 and nothing is changed. --yes \
            skips the question. With --output json: the PairDeletion object (pair_id, \
            points_deleted, chunks_reclaimed, bytes_reclaimed, message).",
        after_help = "Examples:\n  drpair pairs delete web-01\n  echo web-01 | drpair pairs delete web-01\n  drpair pairs delete web-01 --yes"
    )]
    Delete {
        /// The DR Pair ID
        #[arg(value_name = "PAIR")]
        pair: drpair_types::PairId,
        /// Do not ask for the pair id (the warning is still printed)
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Protect the recovered disks of failed-over PAIR with an agent under a new pair
    #[command(
        name = "protect-recovered",
        long_about = "Protect the recovered disks of a failed-over DR pair (POST \
            /api/v1/pairs/PAIR/protect-recovered): once its failover completed, the standby starts \
            an agent (drpaird agent, the same binary, supervised by the standby: started again if \
            it exits, and with the standby) for the failover's targets, under a new pair \
            (--new-pair, default PAIR-recovered) linked to PAIR. Recovery points keep being cut on \
            the recovered disks (every --cut-interval, default 1m) while the original site is \
            down. The new pair's status shows recovered_from {pair, point}; PAIR's shows \
            protected_by. The agent uses the original's chunk size, so 'drpair failback PAIR \
            --from-protected' compares the two pairs chunk by chunk and moves only what differs.\n\n\
            --standby HOST:PORT is the link the agent ships to: this standby's own by default \
            (it enrolls the agent itself). Another standby needs --standby-fingerprint and \
            --enroll-secret (from 'drpair pairs enroll NEW_PAIR' there); a failback from the \
            protecting pair needs it on this standby.\n\n\
            Refused with nothing changed: before the failover completed, while an instant \
            session runs, when the pair is protected already (exit code 4); an unknown pair (3); \
            a standby address that does not answer, a bad tracker or interval (8).\n\n\
            With --output json: the ProtectionStatus object.",
        after_help = "Examples:\n  drpair pairs protect-recovered web-01\n  \
            drpair pairs protect-recovered web-01 --standby 127.0.0.1:7700 --cut-interval 5m\n  \
            drpair pairs protect-recovered web-01 --standby dr2.example.net:7700 \
            --standby-fingerprint sha256:… --enroll-secret …"
    )]
    ProtectRecovered(crate::protect::ProtectArgs),
    /// Stop the agent protecting the recovered disks of PAIR (its pair and points are kept)
    #[command(
        name = "unprotect-recovered",
        long_about = "Stop the agent protecting the recovered disks of PAIR (POST \
            /api/v1/pairs/PAIR/unprotect-recovered). The new pair and its recovery points are \
            kept. A failback that ends the failover stops it by itself. Exit code 4 when no agent \
            protects them.\n\nWith --output json: the ProtectionStatus object."
    )]
    UnprotectRecovered {
        /// The DR Pair ID of the failed-over pair
        #[arg(value_name = "PAIR")]
        pair: drpair_types::PairId,
    },
    /// Take disks of PAIR that grew, without a restart (state Configuration changed)
    #[command(
        long_about = "Take the disks PAIR's agent came back with when they only grew (POST \
            /api/v1/pairs/PAIR/adopt-growth). The pair is in state Configuration changed until then: \
            nothing is shipped and every recovery point is kept. After it, the older points keep \
            their size (an export of one is as large as the disk was), the new chunks are copied \
            and the pair goes on replicating in the same lineage.\n\n\
            A disk added, removed, moved, shrunk or given another chunk size needs `drpair restart \
            PAIR` (a new baseline): adopt-growth refuses it (exit code 4) and changes nothing. \
            `drpair status PAIR` shows what differs, disk by disk.\n\n\
            With --output json: the ActionResponse ({\"message\", \"points_deleted\", \"status\"}).",
        after_help = "Examples:\n  drpair pairs adopt-growth web-01"
    )]
    AdoptGrowth {
        /// The DR Pair ID
        #[arg(value_name = "PAIR")]
        pair: drpair_types::PairId,
    },
    /// Show or change PAIR's settings: its bandwidth limit on the link and its RPO target
    #[command(
        long_about = "Show PAIR's settings (GET /api/v1/pairs/PAIR/settings), or change them (PUT): \
            --bandwidth limits the bytes on the wire from PAIR's agent. The standby paces what it \
            reads, so the limit is in force within a second on the live connection, with no \
            reconnect. A standby-wide limit (drpair standby set --bandwidth) applies as well: the \
            lower of the two holds. 'drpair status PAIR' shows the limit in force and the rate on \
            the wire.\n\n\
            --rpo-target sets how old the newest recovery point may get before the pair is in \
            warning (status shows rpo_state, the metric drpair_pair_rpo_state, the journal says \
            so); --rpo-error sets when it is in error (default: twice the target). 'off' removes \
            them (the pair has no target, even where the standby has a default: [standby] \
            rpo_target in its config file); 'default' drops the pair's own, so the standby's \
            default applies.\n\n\
            With --output json: the PairSettings object (pair_id, bandwidth, \
            bandwidth_limit_bytes_per_second, rpo_target, rpo_target_seconds, rpo_error_seconds, \
            rpo_target_source: pair or standby).",
        after_help = "Examples:\n  drpair pairs set web-01 --bandwidth 20MiB/s\n  \
            drpair pairs set web-01 --bandwidth \"Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited\"\n  \
            drpair pairs set web-01 --bandwidth unlimited\n  drpair pairs set web-01 --rpo-target 30s\n  \
            drpair pairs set web-01 --rpo-target 5m --rpo-error 15m\n  drpair pairs set web-01"
    )]
    Set {
        /// The DR Pair ID
        #[arg(value_name = "PAIR")]
        pair: drpair_types::PairId,
        #[arg(long, value_name = "RATE_OR_SCHEDULE", help = "Bandwidth limit of the pair's link", long_help = crate::settings::BANDWIDTH_HELP)]
        bandwidth: Option<String>,
        /// RPO target: 30s, 5m, 2h, 1d, off, or default (the standby's)
        #[arg(long, value_name = "DURATION")]
        rpo_target: Option<String>,
        /// RPO error threshold (default twice the target): 30s, 5m, 2h, 1d, or off
        #[arg(long, value_name = "DURATION")]
        rpo_error: Option<String>,
    },
}

pub fn run(client: &Client, output: OutputFormat, args: &PairsArgs) -> Result<(), CliError> {
    match &args.command {
        PairsCommand::Enroll { pair, ttl, standby_host } => {
            let path = format!("/api/v1/pairs/{}/enroll", pair);
            let body = serde_json::json!({ "ttl": ttl });
            let (_, raw, e): (_, _, drpair_types::Enrollment) =
                client.post_json(&path, &body, client::ANSWER_TIMEOUT)?;
            let host = standby_host.clone().unwrap_or_else(|| client.host());
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text => output::emit(&format!(
                    "Run on the protected server of {} before {} (the secret works once):\n\n  drpaird agent enroll --standby {}:{} --fingerprint {} --secret {}",
                    e.pair_id,
                    e.expires_at,
                    bracket(&host),
                    e.link_port,
                    e.fingerprint,
                    e.secret
                )),
            }
            Ok(())
        }
        PairsCommand::Revoke { pair } => {
            let path = format!("/api/v1/pairs/{}/revoke", pair);
            let (_, raw, r): (_, _, drpair_types::Revocation) =
                client.post_json(&path, &serde_json::json!({}), client::ANSWER_TIMEOUT)?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text => output::emit(&format!(
                    "revoked {} certificate(s) of pair {}{}; its agent is refused until it enrolls again",
                    r.revoked_certificates,
                    r.pair_id,
                    if r.connection_ended { ", its connection ended" } else { "" }
                )),
            }
            Ok(())
        }
        PairsCommand::Delete { pair, yes } => {
            let points = crate::confirm::count_points(client, pair)?;
            let warning = format!(
                "warning: deleting pair {pair} deletes its {points} recovery point(s), its records and the chunks only it uses; its agent is decommissioned. This cannot be undone."
            );
            crate::confirm::warn_and_confirm(pair, &[warning], *yes, &mut std::io::stdin().lock())?;
            let path = format!("/api/v1/pairs/{pair}?confirm={}", client::encode_query_value(pair.as_str()));
            let (raw, d): (_, drpair_types::PairDeletion) = client.delete_json(&path)?;
            output::answer(output, &raw, || d.message.clone());
            Ok(())
        }
        PairsCommand::Set { pair, bandwidth, rpo_target, rpo_error } => crate::settings::pair(
            client,
            output,
            pair,
            crate::settings::PairChange {
                bandwidth: bandwidth.clone(),
                rpo_target: rpo_target.clone(),
                rpo_error: rpo_error.clone(),
            },
        ),
        PairsCommand::ProtectRecovered(a) => crate::protect::protect(client, output, a),
        PairsCommand::UnprotectRecovered { pair } => crate::protect::unprotect(client, output, pair),
        PairsCommand::AdoptGrowth { pair } => {
            crate::lifecycle::act(client, output, pair, "adopt-growth", &serde_json::json!({}))?;
            Ok(())
        }
        PairsCommand::List { search } => {
            let (raw, pairs): (_, Vec<PairSummary>) = client.get_json(&list_path(search.as_deref()))?;
            match output {
                OutputFormat::Json => output::emit(&output::to_json(&raw)),
                OutputFormat::Text if pairs.is_empty() => match search {
                    Some(text) => output::emit(&format!("no DR pairs on this standby match '{text}'")),
                    None => output::emit("no DR pairs on this standby"),
                },
                OutputFormat::Text => output::emit(&render_pairs(&pairs, output::now_unix_ms())),
            }
            Ok(())
        }
    }
}

/// An IPv6 address in brackets (before `:PORT`).
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') { format!("[{host}]") } else { host.to_string() }
}

/// The path of `pairs list`, with the search text encoded.
fn list_path(search: Option<&str>) -> String {
    match search {
        Some(text) => format!("/api/v1/pairs?search={}", client::encode_query_value(text)),
        None => "/api/v1/pairs".to_string(),
    }
}

/// The `pairs list` table.
pub fn render_pairs(pairs: &[PairSummary], now_ms: u64) -> String {
    let mut table = Table::new(&["PAIR", "STATE", "READY", "LAG", "PROGRESS", "LAST POINT", "SOURCE"]);
    for p in pairs {
        let last = match &p.last_point {
            Some(pt) => format!("{} ({})", pt.id, output::format_age(pt.time_unix_ms, now_ms)),
            None => "-".to_string(),
        };
        let source = match (&p.source_host, &p.source_address) {
            (Some(h), _) if !h.is_empty() => h.clone(),
            (_, Some(a)) if !a.is_empty() => a.clone(),
            _ => "-".to_string(),
        };
        let source = if p.connected { source } else { format!("{source} (offline)") };
        table.row(vec![
            p.pair_id.to_string(),
            p.state_label.clone(),
            output::yes_no(p.ready_for_failover).to_string(),
            output::format_duration(output::round_u64(p.lag_seconds)),
            output::format_percent(p.progress_percent),
            last,
            source,
        ]);
    }
    table.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{PairId, PairState};

    pub(crate) fn summary(id: &str) -> PairSummary {
        PairSummary {
            pair_id: PairId::new(id).unwrap(),
            state: PairState::InitialSync,
            state_label: PairState::InitialSync.label().into(),
            ready_for_failover: false,
            source_host: Some("db-01".into()),
            source_address: Some("10.0.0.5:41000".into()),
            connected: true,
            lag_seconds: 192.4,
            progress_percent: 42.46,
            last_point: None,
            disks: 2,
            health: drpair_types::Health { level: drpair_types::HealthLevel::Ok, reason: String::new() },
            rpo_state: None,
        }
    }

    #[test]
    fn table_shows_every_column() {
        let mut b = summary("web-01");
        b.state = PairState::Replicating;
        b.state_label = "Replicating".into();
        b.ready_for_failover = true;
        b.progress_percent = 100.0;
        b.lag_seconds = 30.0;
        b.connected = false;
        b.source_host = None;
        b.last_point = Some(crate::points::tests::point(42, 1_000_000));
        let text = render_pairs(&[summary("db-01"), b], 1_000_000 + 65_000);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].starts_with("PAIR    STATE              READY  LAG     PROGRESS  LAST POINT"), "{text}");
        assert!(lines[1].contains("Start Replication") && lines[1].contains("42.5%"), "{text}");
        assert!(lines[1].contains("3m 12s") && lines[1].ends_with("db-01"), "{text}");
        assert!(lines[2].contains("42 (1m 5s ago)") && lines[2].contains("100%"), "{text}");
        assert!(lines[2].ends_with("10.0.0.5:41000 (offline)"), "{text}");
    }

    #[test]
    fn list_calls_the_api() {
        let body = serde_json::to_string(&vec![summary("web-01")]).unwrap();
        let server = FakeServer::start(vec![Reply::json(200, &body)]);
        let client = Client::new(&server.url, None).unwrap();
        run(&client, OutputFormat::Json, &PairsArgs { command: PairsCommand::List { search: None } }).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("GET", "/api/v1/pairs"));
    }

    #[test]
    fn list_search_sends_the_encoded_text() {
        let server = FakeServer::start(vec![Reply::json(200, "[]")]);
        let client = Client::new(&server.url, None).unwrap();
        let args = PairsArgs { command: PairsCommand::List { search: Some("Web 01&x".into()) } };
        run(&client, OutputFormat::Text, &args).unwrap();
        assert_eq!(server.finish()[0].path, "/api/v1/pairs?search=Web%2001%26x");
    }
}
