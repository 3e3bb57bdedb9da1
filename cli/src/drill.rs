//! `drpair drill start|list|show|stop|report|console|screenshot`: failover drills, a recovery
//! point served as writable, throw-away NBD exports while replication goes on, booted in a
//! guest on the standby if asked (`drill_boot.rs`).

use crate::client::{CliError, Client};
use crate::drill_boot;
use crate::output::{self, Block, OutputFormat, Table};
use clap::{Args, Subcommand};
use drpair_types::{DrillRequest, DrillStatus, PairId, PointId};
use std::time::Duration;

#[derive(Debug, Args)]
#[command(
    about = "Rehearse a failover: serve a recovery point as throw-away NBD exports",
    long_about = "Rehearse a failover without stopping replication. `drill start` serves every disk \
        of a recovery point as a writable NBD export on the standby's loopback (reads come from \
        the point, writes go to a scratch overlay discarded at the end); boot it or mount it \
        (`qemu-system-x86_64 -drive file=nbd://…`, `nbdfuse` + `losetup`). The point is pinned \
        while the drill uses it and tagged `tested_at`. Each drill records the point's age (the \
        RPO you would have had), the time until the exports were ready (the RTO of the data), \
        the check command's result, who ran it and when; `drill report` prints that history. \
        With --boot the standby boots the point in a QEMU guest (KVM when it can, no network) \
        from the drill's exports and passes when the guest's serial console matches --expect \
        (default: a login prompt) within --timeout; the boot time, the console and a \
        screenshot are kept as evidence (`drill show`, `drill console`, `drill screenshot`).",
    after_help = "Examples:\n  drpair drill start web-01 --latest --ttl 2h --check 'qemu-img info \"$DRPAIR_DRILL_NBD_0\"'\n  \
        drpair drill start web-01 --time 2026-11-21T10:00:00Z\n  \
        drpair drill start web-01 --latest --boot --memory 2G --cpus 2 --expect 'login:' --timeout 5m\n  \
        drpair drill show web-01-1795330337554-0\n  drpair drill screenshot web-01-1795330337554-0 --out boot.png\n  \
        drpair drill list\n  \
        drpair drill stop web-01-1795330337554-0\n  drpair drill report web-01"
)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub cmd: DrillCmd,
}

#[derive(Debug, Subcommand)]
pub enum DrillCmd {
    /// Start a drill of a point (default: the newest) and print its NBD exports
    Start(StartArgs),
    /// List the running drills of this standby
    List,
    /// Show one drill (running or past) with its evidence
    Show {
        /// The drill's id (from `drill start`, `drill list` or `drill report`)
        #[arg(value_name = "DRILL")]
        id: String,
    },
    /// Print the full serial console log of a drill's guest
    Console {
        #[arg(value_name = "DRILL")]
        id: String,
    },
    /// Save the screenshot of a drill's guest (PNG)
    Screenshot {
        #[arg(value_name = "DRILL")]
        id: String,
        /// Where to write the PNG
        #[arg(long, value_name = "FILE")]
        out: std::path::PathBuf,
    },
    /// Stop a drill: its exports go away and its writes are discarded
    Stop {
        /// The drill's id (from `drill start` or `drill list`)
        #[arg(value_name = "DRILL")]
        id: String,
    },
    /// Print a pair's drill history: point, RPO, RTO, check, who and when
    Report {
        #[arg(value_name = "PAIR")]
        pair: PairId,
    },
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The DR Pair ID
    #[arg(value_name = "PAIR")]
    pub pair: PairId,
    /// Drill this recovery point
    #[arg(long, value_name = "ID", conflicts_with_all = ["time", "latest"])]
    pub point: Option<PointId>,
    /// Drill the newest point cut at or before this time (RFC 3339)
    #[arg(long, value_name = "TIME", conflicts_with = "latest")]
    pub time: Option<String>,
    /// Drill the newest point (the default)
    #[arg(long)]
    pub latest: bool,
    /// End the drill by itself after this long (default 1h; 5s to 7d)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub ttl: Option<Duration>,
    /// A shell command run on the standby once the exports are ready; it finds them in
    /// DRPAIR_DRILL_NBD_0, DRPAIR_DRILL_NBD_1, …
    #[arg(long, value_name = "CMD")]
    pub check: Option<String>,
    /// Boot the point in a QEMU guest on the standby and wait for its console to match
    #[arg(long)]
    pub boot: bool,
    #[command(flatten)]
    pub guest: crate::guest_args::GuestArgs,
    /// Return once the drill is served, without waiting for the boot's result
    #[arg(long, requires = "boot")]
    pub no_wait: bool,
}

impl StartArgs {
    pub fn request(&self) -> DrillRequest {
        DrillRequest {
            point: self.point,
            time: self.time.clone(),
            latest: self.latest,
            ttl_seconds: self.ttl.map(|d| d.as_secs()),
            check: self.check.clone(),
            operator: std::env::var("SUDO_USER").or_else(|_| std::env::var("USER")).ok(),
            boot: self.boot.then(|| self.guest.request()),
        }
    }
}

/// A drill starts or stops in about a millisecond; the standby may be busy.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(client: &Client, output: OutputFormat, args: &DrillArgs) -> Result<(), CliError> {
    match &args.cmd {
        DrillCmd::Start(a) => {
            let (_, raw, d): (_, _, DrillStatus) =
                client.post_json(&format!("/api/v1/pairs/{}/drills", a.pair), &a.request(), ANSWER_TIMEOUT)?;
            if a.boot && !a.no_wait {
                let (raw, d) = drill_boot::wait_for_boot(client, output, &d)?;
                emit(output, &raw, || render_one(&d));
                return drill_boot::outcome(&raw, &d);
            }
            emit(output, &raw, || render_one(&d));
        }
        DrillCmd::Show { id } => {
            let (raw, d): (_, DrillStatus) = client.get_json(&format!("/api/v1/drills/{id}"))?;
            emit(output, &raw, || render_one(&d));
        }
        DrillCmd::Console { id } => drill_boot::console(client, id)?,
        DrillCmd::Screenshot { id, out } => drill_boot::screenshot(client, id, out)?,
        DrillCmd::List => {
            let (raw, v): (_, Vec<DrillStatus>) = client.get_json("/api/v1/drills")?;
            emit(output, &raw, || if v.is_empty() { "no drill is running\n".into() } else { render_table(&v) });
        }
        DrillCmd::Stop { id } => {
            let (_, raw, d): (_, _, DrillStatus) =
                client.post_json(&format!("/api/v1/drills/{id}/stop"), &serde_json::json!({}), ANSWER_TIMEOUT)?;
            emit(output, &raw, || render_one(&d));
        }
        DrillCmd::Report { pair } => {
            let (raw, v): (_, Vec<DrillStatus>) = client.get_json(&format!("/api/v1/pairs/{pair}/drills"))?;
            emit(output, &raw, || {
                if v.is_empty() { format!("pair {pair} has no drills yet\n") } else { render_table(&v) }
            });
        }
    }
    Ok(())
}

fn emit(output: OutputFormat, raw: &serde_json::Value, text: impl FnOnce() -> String) {
    match output {
        OutputFormat::Json => output::emit(&output::to_json(raw)),
        OutputFormat::Text => output::emit(&text()),
    }
}

fn check_words(d: &DrillStatus) -> String {
    match &d.check {
        None => "-".into(),
        Some(c) => match (c.passed, c.exit_code) {
            (None, _) => "running".into(),
            (Some(true), _) => "passed".into(),
            (Some(false), Some(code)) => format!("failed (exit {code})"),
            (Some(false), None) => "failed".into(),
        },
    }
}

/// One drill, with its exports.
pub fn render_one(d: &DrillStatus) -> String {
    let mut b = Block::default();
    b.line("Drill", format!("{} ({})", d.id, output::wire_name(&d.state)));
    b.line(
        "Point",
        format!(
            "{} cut {} (RPO {})",
            d.point,
            d.point_time,
            output::format_duration(d.point_age_seconds.round() as u64)
        ),
    );
    b.line("Ready in", format!("{:.1} ms (RTO of the data)", d.ready_ms));
    for e in &d.exports {
        b.line(&format!("Disk {}", e.disk), format!("{} ({})", e.uri, output::format_size(e.size_bytes)));
    }
    b.line("Expires", d.expires_at.clone());
    if let Some(t) = &d.ended_at {
        b.line("Ended", t.clone());
    }
    b.line("Check", check_words(d));
    drill_boot::lines(&mut b, d);
    b.line("Operator", d.operator.clone());
    b.line("Message", d.message.clone());
    b.render()
}

/// Drills as a table, in the order given.
pub fn render_table(v: &[DrillStatus]) -> String {
    let mut t = Table::new(&["DRILL", "STATE", "POINT", "RPO", "READY", "CHECK", "BOOT", "OPERATOR", "REQUESTED"]);
    for d in v {
        t.row(vec![
            d.id.clone(),
            output::wire_name(&d.state),
            d.point.to_string(),
            output::format_duration(d.point_age_seconds.round() as u64),
            format!("{:.1} ms", d.ready_ms),
            check_words(d),
            drill_boot::words(d),
            d.operator.clone(),
            d.requested_at.clone(),
        ]);
    }
    t.render()
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{DrillCheck, DrillExport, DrillState};

    fn drill(state: DrillState, passed: Option<bool>) -> DrillStatus {
        DrillStatus {
            id: "web-01-1-0".into(),
            pair_id: PairId::new("web-01").unwrap(),
            state,
            point: 42,
            point_time: "2026-11-21T10:00:00Z".into(),
            point_age_seconds: 95.2,
            requested_at: "2026-11-21T10:01:35Z".into(),
            ready_ms: 0.46,
            expires_at: "2026-11-21T11:01:35Z".into(),
            ended_at: None,
            operator: "alice".into(),
            exports: vec![DrillExport {
                disk: 0,
                uri: "nbd://127.0.0.1:4000/disk0".into(),
                size_bytes: 1 << 30,
                written_chunks: 0,
            }],
            check: Some(DrillCheck {
                command: "fsck -n".into(),
                exit_code: passed.map(|p| if p { 0 } else { 4 }),
                passed,
                output: String::new(),
                duration_ms: None,
            }),
            message: "serving".into(),
            boot: None,
        }
    }

    #[test]
    fn one_drill_names_its_exports_and_evidence() {
        let text = render_one(&drill(DrillState::Running, None));
        for needle in [
            "web-01-1-0 (running)",
            "42 cut 2026-11-21T10:00:00Z (RPO 1m 35s)",
            "0.5 ms",
            "nbd://127.0.0.1:4000/disk0",
            "running",
            "alice",
        ] {
            assert!(text.contains(needle), "{needle} in:\n{text}");
        }
    }

    #[test]
    fn the_report_says_how_each_check_went() {
        let text = render_table(&[drill(DrillState::Stopped, Some(true)), drill(DrillState::Expired, Some(false))]);
        assert!(text.contains("passed") && text.contains("failed (exit 4)") && text.contains("expired"), "{text}");
    }

    #[test]
    fn start_asks_for_what_was_given() {
        let a = StartArgs {
            pair: PairId::new("web-01").unwrap(),
            point: Some(7),
            time: None,
            latest: false,
            ttl: Some(Duration::from_secs(7200)),
            check: Some("true".into()),
            boot: false,
            guest: Default::default(),
            no_wait: false,
        };
        let r = a.request();
        assert_eq!((r.point, r.ttl_seconds, r.check.as_deref()), (Some(7), Some(7200), Some("true")));
    }
}
