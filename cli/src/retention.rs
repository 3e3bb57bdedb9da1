//! `drpair retention PAIR`: show, set or reset the pair's retention policy (which recovery
//! points the prune keeps).

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat};
use crate::prune;
use clap::Args;
use drpair_types::{PairId, RetentionUpdate, RetentionView};

#[derive(Debug, Args)]
#[command(
    about = "Show, set or reset the retention policy of a pair",
    long_about = "Show the retention policy of a pair (GET /api/v1/pairs/PAIR/retention), or set \
        it with --grid and --keep-last, or return it to the standby's default with --reset (PUT \
        /api/v1/pairs/PAIR/retention).\n\n\
        The grid is a list of rules separated by '|', newest first: COUNTxINTERVAL keeps one \
        point per INTERVAL for COUNT intervals, and (keep=all) keeps every point of those \
        intervals. '1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1d' keeps every point of the \
        last 10 minutes, then one a minute for an hour, one every 10 minutes for a day, one an \
        hour for a week and one a day for a month. --keep-last N always keeps the newest N \
        points. A point goes only when every rule agrees; pinned points, the baseline and the \
        dump-marker point are always kept. An option left out keeps its value; the standby \
        refuses a grid it cannot read (exit code 8) and says what is wrong.\n\n\
        Shows the grid, keep-last, the policy in words, whether the pair follows the standby's \
        default, how often the standby prunes, and the last prune. Changing the policy removes \
        nothing by itself: the next prune (scheduled, or 'drpair prune PAIR') applies it.\n\n\
        With --output json: the RetentionView object as the API returns it.",
    after_help = "Examples:\n  drpair retention web-01\n  \
        drpair retention web-01 --grid \"1x10m(keep=all) | 60x1m\" --keep-last 5\n  \
        drpair retention web-01 --keep-last 10\n  drpair retention web-01 --reset\n  \
        drpair prune web-01 --dry-run"
)]
pub struct RetentionArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Set the retention grid, e.g. "1x10m(keep=all) | 60x1m | 30x1d"
    #[arg(long, value_name = "GRID")]
    pub grid: Option<String>,
    /// Always keep the newest N points
    #[arg(long, value_name = "N")]
    pub keep_last: Option<u32>,
    /// Return the pair to the standby's default policy
    #[arg(long, conflicts_with_all = ["grid", "keep_last"])]
    pub reset: bool,
}

impl RetentionArgs {
    /// The change asked for, if any (none: only show the policy).
    pub fn update(&self) -> Option<RetentionUpdate> {
        (self.reset || self.grid.is_some() || self.keep_last.is_some()).then(|| RetentionUpdate {
            grid: self.grid.clone(),
            keep_last: self.keep_last,
            reset: self.reset,
        })
    }
}

pub fn run(client: &Client, output: OutputFormat, args: &RetentionArgs) -> Result<(), CliError> {
    let pair = &args.pair;
    let path = format!("/api/v1/pairs/{pair}/retention");
    let (raw, view, changed) = match args.update() {
        Some(update) => {
            let (raw, view) = client.put_json::<_, RetentionView>(&path, &update)?;
            let changed = if update.reset {
                format!("retention of pair {pair} reset to the standby's default")
            } else {
                format!(
                    "retention of pair {pair} set; the next prune applies it ('drpair prune {pair} --dry-run' shows what it would remove)"
                )
            };
            (raw, view, Some(changed))
        }
        None => {
            let (raw, view) = client.get_json::<RetentionView>(&path)?;
            (raw, view, None)
        }
    };
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => {
            let mut text = changed.map(|c| format!("{c}\n\n")).unwrap_or_default();
            text.push_str(&render_view(pair, &view, output::now_unix_ms()));
            output::emit(&text);
        }
    }
    Ok(())
}

/// The text form of a retention policy.
pub fn render_view(pair: &PairId, v: &RetentionView, now_ms: u64) -> String {
    let mut b = Block::default();
    b.line("Retention", format!("pair {pair}, {}", source(v)));
    b.line("Grid", v.grid.clone());
    b.line("Keep last", format!("{} (the newest {} points are always kept)", v.keep_last, v.keep_last));
    b.line("Policy", v.description.clone());
    b.line("Prune interval", interval(pair, v));
    b.line("Last prune", v.last_prune.as_ref().map_or("never".to_string(), |r| prune::summary_line(r, now_ms)));
    b.render()
}

fn source(v: &RetentionView) -> &'static str {
    if v.is_default { "the standby's default" } else { "set for this pair" }
}

fn interval(pair: &PairId, v: &RetentionView) -> String {
    match v.prune_interval_seconds {
        0 => format!("never by itself (prune with 'drpair prune {pair}')"),
        s => format!("every {}", output::format_duration(s)),
    }
}

/// The retention lines of `drpair status`: the policy, and the last prune.
pub fn status_lines(b: &mut Block, v: &RetentionView, now_ms: u64) {
    let every = match v.prune_interval_seconds {
        0 => "not pruned by itself".to_string(),
        s => format!("pruned every {}", output::format_duration(s)),
    };
    b.line("Retention", format!("{}, keep last {} ({}; {every})", v.grid, v.keep_last, source(v)));
    b.line("Last prune", v.last_prune.as_ref().map_or("never".to_string(), |r| prune::summary_line(r, now_ms)));
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::{ApiError, ErrorCode};

    pub(crate) fn view() -> RetentionView {
        RetentionView {
            grid: "1x10m(keep=all) | 60x1m".into(),
            keep_last: 5,
            description: "every point of the last 10 minutes, then one a minute for an hour".into(),
            is_default: false,
            prune_interval_seconds: 3600,
            last_prune: Some(crate::prune::tests::report(false)),
        }
    }

    fn args(grid: Option<&str>, keep_last: Option<u32>, reset: bool) -> RetentionArgs {
        RetentionArgs { pair: PairId::new("web-01").unwrap(), grid: grid.map(Into::into), keep_last, reset }
    }

    fn reply() -> Reply {
        Reply::json(200, &serde_json::to_string(&view()).unwrap())
    }

    #[test]
    fn show_set_and_reset() {
        let server = FakeServer::start(vec![reply(), reply(), reply()]);
        let client = Client::new(&server.url, None).unwrap();
        run(&client, OutputFormat::Text, &args(None, None, false)).unwrap();
        run(&client, OutputFormat::Json, &args(Some("1x10m(keep=all) | 60x1m"), Some(5), false)).unwrap();
        run(&client, OutputFormat::Text, &args(None, None, true)).unwrap();
        let reqs = server.finish();
        assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("GET", "/api/v1/pairs/web-01/retention"));
        assert_eq!((reqs[1].method.as_str(), reqs[1].path.as_str()), ("PUT", "/api/v1/pairs/web-01/retention"));
        let sent: RetentionUpdate = serde_json::from_slice(&reqs[1].body).unwrap();
        assert_eq!(
            sent,
            RetentionUpdate { grid: Some("1x10m(keep=all) | 60x1m".into()), keep_last: Some(5), reset: false }
        );
        let sent: RetentionUpdate = serde_json::from_slice(&reqs[2].body).unwrap();
        assert_eq!(sent, RetentionUpdate { grid: None, keep_last: None, reset: true });
        assert_eq!(args(None, Some(3), false).update().unwrap().grid, None, "an option left out keeps its value");
    }

    #[test]
    fn a_refused_grid_exits_8_with_the_standbys_words() {
        let message = "grid rule 2 '60xm': the interval is not a duration like 1m or 10m";
        let body = serde_json::to_string(&ApiError {
            code: ErrorCode::InvalidParameter,
            message: message.into(),
            parameter: Some("grid".into()),
        })
        .unwrap();
        let server = FakeServer::start(vec![Reply::json(400, &body)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = run(&client, OutputFormat::Text, &args(Some("1x10m | 60xm"), None, false)).unwrap_err();
        assert_eq!(err.exit_code(), exit::INVALID_PARAMETER);
        assert_eq!(err.to_string(), message, "the message names the parameter already");
        server.finish();
    }

    #[test]
    fn view_text() {
        let now = 1_777_629_902_000;
        let text = render_view(&PairId::new("web-01").unwrap(), &view(), now);
        assert_eq!(
            text,
            "Retention:       pair web-01, set for this pair\n\
             Grid:            1x10m(keep=all) | 60x1m\n\
             Keep last:       5 (the newest 5 points are always kept)\n\
             Policy:          every point of the last 10 minutes, then one a minute for an hour\n\
             Prune interval:  every 1h\n\
             Last prune:      2026-05-01T10:00:02Z (5m ago), on request: removed 2 of 5 points, kept 3; 3.0 GiB freed\n"
        );
        let mut default = view();
        default.is_default = true;
        default.prune_interval_seconds = 0;
        default.last_prune = None;
        let text = render_view(&PairId::new("web-01").unwrap(), &default, now);
        assert!(text.contains("pair web-01, the standby's default\n"), "{text}");
        assert!(text.contains("Prune interval:  never by itself (prune with 'drpair prune web-01')\n"), "{text}");
        assert!(text.ends_with("Last prune:      never\n"), "{text}");
    }
}
