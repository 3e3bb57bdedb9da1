//! `drpair failover … --instant [--boot …]` and `drpair failover PAIR --stop-instant`: the
//! instant part of a failover in the CLI (its flags, its lines in the result and in status,
//! ending its session).

use crate::client::{CliError, Client};
use crate::output::{self, Block, OutputFormat};
use clap::Args;
use drpair_types::{BootRequest, FailoverStatus, InstantMode, InstantPhase, InstantStopRequest, PairId};
use std::time::Duration;

#[derive(Debug, Default, Args)]
pub struct InstantArgs {
    /// Instant recovery: make the recovered disks usable at once (served writable over NBD, or
    /// booted with --boot) while the point is copied onto the targets underneath
    #[arg(long)]
    pub instant: bool,
    /// With --instant: run the recovered machine in a QEMU guest on the standby; QEMU's
    /// blockdev-mirror copies it onto the targets and pivots the guest onto them
    #[arg(long)]
    pub boot: bool,
    #[command(flatten)]
    pub guest: crate::guest_args::GuestArgs,
    /// With --instant: cap the copy's bandwidth (bytes per second, or with a unit: 64MiB),
    /// leaving the running machine the rest of the disks' bandwidth
    #[arg(long, value_name = "RATE", value_parser = crate::bench::parse_size)]
    pub copy_rate: Option<u64>,
}

impl InstantArgs {
    pub fn boot_request(&self) -> Option<BootRequest> {
        self.boot.then(|| self.guest.request())
    }
}

/// `drpair failover PAIR --stop-instant`: `POST …/failover/instant/stop`.
pub fn stop(client: &Client, output: OutputFormat, pair: &PairId, operator: Option<String>) -> Result<(), CliError> {
    let path = format!("/api/v1/pairs/{pair}/failover/instant/stop");
    let (_, raw, s): (u16, serde_json::Value, FailoverStatus) =
        client.post_json(&path, &InstantStopRequest { operator }, Duration::from_secs(60))?;
    match output {
        OutputFormat::Json => output::emit(&output::to_json(&raw)),
        OutputFormat::Text => {
            let mut b = Block::default();
            b.line("Instant failover", format!("pair {pair}: session ended"));
            lines(&mut b, &s);
            output::emit(&b.render());
        }
    }
    Ok(())
}

fn phase_words(p: InstantPhase) -> &'static str {
    match p {
        InstantPhase::Copying => "copying onto the targets; the machine runs from the standby meanwhile",
        InstantPhase::OnTargets => "the targets alone carry the machine",
        InstantPhase::Ended => "ended; the targets hold the recovered disks",
        InstantPhase::Failed => "FAILED",
    }
}

/// The instant lines of a failover's block.
pub fn lines(b: &mut Block, s: &FailoverStatus) {
    let Some(i) = &s.instant else { return };
    let mode = match i.mode {
        InstantMode::Nbd => "nbd (attach an NBD client to the exports)",
        InstantMode::Boot => "boot (a QEMU guest on the standby)",
    };
    b.line("Instant", format!("{mode}: {}", phase_words(i.phase)));
    b.line("Usable after", format!("{:.0} ms", i.usable_ms));
    if !i.exports.is_empty() {
        b.line("Exports", i.exports.join("\n"));
    }
    if let Some(at) = &i.on_targets_at {
        b.line("On targets", at.clone());
    }
    if let Some(r) = i.copy_rate_bytes_per_sec {
        b.line("Copy rate", format!("at most {}/s", output::format_size(r)));
    }
    if i.resumed > 0 {
        b.line("Resumed", format!("{} time(s) after a standby restart", i.resumed));
    }
    if let Some(g) = &i.guest {
        let up = g.boot_ms.map_or("console not matched yet".to_string(), |ms| format!("console matched in {ms} ms"));
        b.line(
            "Guest",
            format!(
                "{} ({}, {} MiB, {} CPU(s), {}); {up}; console log {}",
                if g.running { "running" } else { "not running" },
                g.accel,
                g.memory_mib,
                g.cpus,
                g.firmware,
                g.console_log
            ),
        );
        if let Some(n) = &g.note {
            b.line("Guest note", n.clone());
        }
        if let Some(how) = g.stopped {
            b.line("Guest stop", how.label().to_string());
        }
        let tail: Vec<&str> = g.console_tail.lines().collect();
        let shown = &tail[tail.len().saturating_sub(6)..];
        if !shown.is_empty() {
            b.line("Console", shown.join("\n  "));
        }
    }
}

/// What runs meanwhile, for the progress bar: the guest booting or up, the exports served.
pub fn progress_words(s: &FailoverStatus) -> Option<String> {
    let i = s.instant.as_ref()?;
    Some(match &i.guest {
        Some(g) => match g.boot_ms {
            Some(ms) => format!("the guest is up (console matched in {:.1} s)", ms as f64 / 1000.0),
            None if g.running => "the guest is booting".into(),
            None => "the guest is starting".into(),
        },
        None => format!("served at {}", i.exports.join(" ")),
    })
}

/// The instant words of `drpair status`'s failover line.
pub fn status_words(s: &FailoverStatus) -> Option<String> {
    let i = s.instant.as_ref()?;
    Some(format!("instant ({}): {}", if i.mode == InstantMode::Boot { "boot" } else { "nbd" }, phase_words(i.phase)))
}
