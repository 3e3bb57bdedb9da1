//! `drpair prune PAIR [--dry-run]`: apply the pair's retention policy now, and the words for
//! a prune report (also shown by `retention` and `status` as the last prune).

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat, Table, format_size as size};
use crate::poll;
use clap::Args;
use drpair_types::{PairId, PointMark, PruneReport, PruneRequest};
use std::time::Duration;

/// How long the standby may take to answer a prune (it prunes and reclaims before answering).
const PRUNE_ANSWER_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// Lists at most this long are printed in full; longer ones as their first and last rows.
const LIST_IN_FULL: usize = 12;
/// Rows shown at each end of a summarised list.
const LIST_ENDS: usize = 5;

#[derive(Debug, Args)]
#[command(
    about = "Apply the pair's retention policy now: remove the points it no longer keeps",
    long_about = "Apply the pair's retention policy now (POST /api/v1/pairs/PAIR/prune), as the \
        standby does by itself every prune interval (see 'drpair retention PAIR').\n\n\
        Prints the points removed and the points kept, each with its reason (newest, \
        pinned_operator, pinned_baseline, pinned_dump_marker, pinned_drill, keep_last, grid_N for \
        rule N of the grid, thinned, expired); long lists are summarised as counts per reason \
        and their first and last rows. Then the chunk versions no kept point can see (deleted), \
        and the space reclaim that followed: chunks deleted and bytes freed.\n\n\
        --dry-run only computes what would be removed; nothing changes.\n\n\
        With --output json: the PruneReport object as the API returns it (every point listed).",
    after_help = "Examples:\n  drpair prune web-01 --dry-run\n  drpair prune web-01\n  \
        drpair prune web-01 --output json | jq '.removed | length'"
)]
pub struct PruneArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Only show what would be removed; remove nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(client: &Client, output: OutputFormat, args: &PruneArgs) -> Result<(), CliError> {
    let pair = &args.pair;
    let request = PruneRequest { dry_run: args.dry_run };
    let what = format!("pruning pair {pair}{}", if args.dry_run { " (dry run)" } else { "" });
    let (_, raw, report) = poll::waiting(output, what, || {
        client.post_json::<_, PruneReport>(&format!("/api/v1/pairs/{pair}/prune"), &request, PRUNE_ANSWER_TIMEOUT)
    })?;
    output::answer(output, &raw, || render_report(&report));
    Ok(())
}

/// The text form of a prune report: the counts, versions, reclaim, then both lists.
pub fn render_report(r: &PruneReport) -> String {
    let mut b = Block::default();
    let how = match (r.dry_run, r.scheduled) {
        (true, _) => "dry run: nothing was removed",
        (false, true) => "by the prune schedule",
        (false, false) => "on request",
    };
    let took = r.finished_unix_ms.saturating_sub(r.started_unix_ms) / 1000;
    b.line(
        "Prune",
        format!(
            "pair {}, {how}, at {} (took {})",
            r.pair_id,
            output::format_time(r.started_unix_ms),
            output::format_duration(took)
        ),
    );
    if let Some(t) = r.task {
        b.line("Task", t.to_string());
    }
    let removed = if r.dry_run { "would be removed" } else { "removed" };
    b.line("Points", format!("{} before, {} kept, {} {removed}", r.points_before, r.points_kept, r.removed.len()));
    b.line("Versions deleted", r.versions_deleted.to_string());
    b.line(
        "Reclaim",
        match &r.reclaim {
            Some(c) => format!(
                "{} chunks deleted, {} freed ({} candidates checked in {:.1}s)",
                c.chunks_deleted,
                size(c.bytes_freed),
                c.candidates_checked,
                c.seconds
            ),
            None if r.dry_run => "none in a dry run".to_string(),
            None => "did not run".to_string(),
        },
    );
    if let Some(p) = r.reclaim.as_ref().and_then(|c| c.packs.as_ref()) {
        b.line(
            "Packs",
            format!(
                "{} emptied and deleted, {} rewritten into {} ({} chunks, {} moved), {} orphan(s) deleted",
                p.packs_emptied,
                p.packs_rewritten,
                p.packs_written,
                p.chunks_moved,
                size(p.bytes_moved),
                p.orphans_deleted
            ),
        );
        if let Some(e) = &p.error {
            b.line("Packs stopped", format!("{e} (the next space reclaim tries again)"));
        }
    }
    let mut text = b.render();
    let title = if r.dry_run { "Would remove" } else { "Removed" };
    text.push('\n');
    text.push_str(&render_marks(title, &r.removed));
    text.push('\n');
    text.push_str(&render_marks("Kept", &r.kept));
    text
}

/// `Removed (10): expired 7, thinned 3` and the table of the points, summarised when long.
pub fn render_marks(title: &str, marks: &[PointMark]) -> String {
    if marks.is_empty() {
        return format!("{title}: none\n");
    }
    let mut text = format!("{title} ({}): {}\n", marks.len(), reason_counts(marks));
    let mut t = Table::new(&["ID", "TIME", "REASON"]);
    let long = marks.len() > LIST_IN_FULL;
    let shown: Vec<&PointMark> = if long {
        marks[..LIST_ENDS].iter().chain(&marks[marks.len() - LIST_ENDS..]).collect()
    } else {
        marks.iter().collect()
    };
    for m in shown {
        t.row(vec![m.id.to_string(), m.time.clone(), m.reason.clone()]);
    }
    let table = t.render();
    if !long {
        text.push_str(&table);
        return text;
    }
    // The header and the first rows, the gap, the last rows.
    let hidden = marks.len() - 2 * LIST_ENDS;
    for (i, line) in table.lines().enumerate() {
        if i == 1 + LIST_ENDS {
            text.push_str(&format!("… {hidden} more (--output json lists them all)\n"));
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// `expired 7, thinned 3`: the reasons, most frequent first (ties by name).
pub fn reason_counts(marks: &[PointMark]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for m in marks {
        match counts.iter_mut().find(|(r, _)| *r == m.reason) {
            Some((_, n)) => *n += 1,
            None => counts.push((&m.reason, 1)),
        }
    }
    counts.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    counts.iter().map(|(r, n)| format!("{r} {n}")).collect::<Vec<_>>().join(", ")
}

/// One line on a prune: when, how, what it removed and freed (`retention`, `status`).
pub fn summary_line(r: &PruneReport, now_ms: u64) -> String {
    let mut line = format!(
        "{} ({}), {}: ",
        output::format_time(r.finished_unix_ms),
        output::format_age(r.finished_unix_ms, now_ms),
        if r.dry_run {
            "dry run"
        } else if r.scheduled {
            "scheduled"
        } else {
            "on request"
        }
    );
    let verb = if r.dry_run { "would remove" } else { "removed" };
    line.push_str(&format!("{verb} {} of {} points, kept {}", r.removed.len(), r.points_before, r.points_kept));
    if let Some(c) = r.reclaim.as_ref().filter(|c| c.bytes_freed > 0 || c.chunks_deleted > 0) {
        line.push_str(&format!("; {} freed", size(c.bytes_freed)));
    }
    line
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::client::exit;
    use crate::fake_server::{FakeServer, Reply};
    use drpair_types::ReclaimReport;

    fn mark(id: u64, reason: &str) -> PointMark {
        PointMark { id, time: format!("2026-05-01T10:{:02}:00Z", id % 60), reason: reason.into() }
    }

    pub(crate) fn report(dry_run: bool) -> PruneReport {
        PruneReport {
            task: None,
            pair_id: PairId::new("web-01").unwrap(),
            dry_run,
            scheduled: false,
            started_unix_ms: 1_777_629_600_000,
            finished_unix_ms: 1_777_629_602_000,
            points_before: 5,
            points_kept: 3,
            removed: vec![mark(1, "expired"), mark(2, "thinned")],
            kept: vec![mark(3, "pinned_baseline"), mark(4, "grid_0"), mark(5, "newest")],
            versions_deleted: 1234,
            reclaim: (!dry_run).then_some(ReclaimReport {
                candidates_checked: 1500,
                chunks_deleted: 1200,
                bytes_freed: 3 << 30,
                seconds: 2.14,
                packs: None,
            }),
        }
    }

    #[test]
    fn prune_posts_and_prints_the_report() {
        for dry_run in [false, true] {
            let server = FakeServer::start(vec![Reply::json(200, &serde_json::to_string(&report(dry_run)).unwrap())]);
            let client = Client::new(&server.url, None).unwrap();
            let args = PruneArgs { pair: PairId::new("web-01").unwrap(), dry_run };
            run(&client, OutputFormat::Text, &args).unwrap();
            let req = &server.finish()[0];
            assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v1/pairs/web-01/prune"));
            assert_eq!(serde_json::from_slice::<PruneRequest>(&req.body).unwrap(), PruneRequest { dry_run });
        }
        let server =
            FakeServer::start(vec![Reply::json(404, r#"{"code":"PairNotFound","message":"no pair 'web-02'"}"#)]);
        let client = Client::new(&server.url, None).unwrap();
        let args = PruneArgs { pair: PairId::new("web-02").unwrap(), dry_run: false };
        let err = run(&client, OutputFormat::Json, &args).unwrap_err();
        assert_eq!((err.exit_code(), err.to_string()), (exit::NOT_FOUND, "no pair 'web-02'".to_string()));
        server.finish();
    }

    #[test]
    fn report_text() {
        let text = render_report(&report(false));
        assert_eq!(
            text,
            "Prune:             pair web-01, on request, at 2026-05-01T10:00:00Z (took 2s)\n\
             Points:            5 before, 3 kept, 2 removed\n\
             Versions deleted:  1234\n\
             Reclaim:           1200 chunks deleted, 3.0 GiB freed (1500 candidates checked in 2.1s)\n\
             \n\
             Removed (2): expired 1, thinned 1\n\
             ID  TIME                  REASON\n\
             1   2026-05-01T10:01:00Z  expired\n\
             2   2026-05-01T10:02:00Z  thinned\n\
             \n\
             Kept (3): grid_0 1, newest 1, pinned_baseline 1\n\
             ID  TIME                  REASON\n\
             3   2026-05-01T10:03:00Z  pinned_baseline\n\
             4   2026-05-01T10:04:00Z  grid_0\n\
             5   2026-05-01T10:05:00Z  newest\n"
        );
        let dry = render_report(&report(true));
        assert!(dry.contains("pair web-01, dry run: nothing was removed,"), "{dry}");
        assert!(dry.contains("Points:            5 before, 3 kept, 2 would be removed\n"), "{dry}");
        assert!(dry.contains("Reclaim:           none in a dry run\n"), "{dry}");
        assert!(dry.contains("\nWould remove (2): expired 1, thinned 1\n"), "{dry}");
    }

    #[test]
    fn long_lists_are_summarised() {
        let marks: Vec<PointMark> = (1..=40).map(|i| mark(i, if i % 4 == 0 { "thinned" } else { "expired" })).collect();
        let text = render_marks("Removed", &marks);
        assert!(text.starts_with("Removed (40): expired 30, thinned 10\n"), "{text}");
        assert_eq!(text.lines().count(), 1 + 1 + 5 + 1 + 5, "{text}");
        assert!(
            text.contains("\n5   2026-05-01T10:05:00Z  expired\n… 30 more (--output json lists them all)\n36  "),
            "{text}"
        );
        assert!(text.ends_with("40  2026-05-01T10:40:00Z  thinned\n"), "{text}");
        assert_eq!(render_marks("Removed", &[]), "Removed: none\n");
    }

    #[test]
    fn summary_lines() {
        let now = 1_777_629_902_000;
        assert_eq!(
            summary_line(&report(false), now),
            "2026-05-01T10:00:02Z (5m ago), on request: removed 2 of 5 points, kept 3; 3.0 GiB freed"
        );
        let mut scheduled = report(true);
        scheduled.dry_run = false;
        scheduled.scheduled = true;
        assert_eq!(
            summary_line(&scheduled, now),
            "2026-05-01T10:00:02Z (5m ago), scheduled: removed 2 of 5 points, kept 3"
        );
        assert_eq!(
            summary_line(&report(true), now),
            "2026-05-01T10:00:02Z (5m ago), dry run: would remove 2 of 5 points, kept 3"
        );
    }
}
