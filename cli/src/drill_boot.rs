//! A drill's boot in the CLI: following it to its result (`drill start --boot`), its lines in
//! `drill show`/`start` and its column in `drill list`/`report`, and its evidence files
//! (`drill console`, `drill screenshot`).

use crate::client::{CliError, Client};
use crate::output::{Block, OutputFormat, format_size};
use crate::poll::{Follower, Seen};
use drpair_types::{BootState, DrillBoot, DrillState, DrillStatus};
use std::io::{Read, Write};
use std::time::Duration;

/// How often a boot is polled.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Longest wait for a screenshot or console log to arrive.
const STALL: Duration = Duration::from_secs(60);

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The boot in a few words (`-` when the drill did not boot).
pub fn words(d: &DrillStatus) -> String {
    match &d.boot {
        None => "-".into(),
        Some(b) => match b.state {
            BootState::Booting => "booting".into(),
            BootState::Passed => format!("passed in {}", secs(b.boot_ms.unwrap_or(0))),
            BootState::Failed => "FAILED".into(),
        },
    }
}

fn how(b: &DrillBoot) -> String {
    format!(
        "{}, {}, {} CPU(s), {}; expecting '{}' within {} s",
        b.accel,
        format_size(b.memory_mib << 20),
        b.cpus,
        b.firmware,
        b.expect,
        b.timeout_seconds
    )
}

/// The boot's lines in a drill's block.
pub fn lines(block: &mut Block, d: &DrillStatus) {
    let Some(b) = &d.boot else { return };
    let result = match b.state {
        BootState::Booting => format!("booting ({})", how(b)),
        BootState::Passed => format!(
            "passed: the console matched in {} ({}){}",
            secs(b.boot_ms.unwrap_or(0)),
            how(b),
            if b.guest_running { "; the guest runs until the drill ends" } else { "" }
        ),
        BootState::Failed => format!("FAILED: {}", b.reason.as_deref().unwrap_or("?")),
    };
    block.line("Boot", result);
    if let Some(n) = &b.note {
        block.line("Boot note", n.clone());
    }
    if let Some(how) = b.stopped {
        block.line("Guest stop", how.label().to_string());
    }
    let tail: Vec<&str> = b.console_tail.lines().collect();
    let shown = &tail[tail.len().saturating_sub(8)..];
    block.line("Console", if shown.is_empty() { "(nothing yet)".into() } else { shown.join("\n  ") });
    let mut files = vec![format!("drpair drill console {}", d.id)];
    if b.screenshot {
        files.push(format!("drpair drill screenshot {} --out FILE", d.id));
    }
    block.line("Evidence", files.join("; "));
}

/// Follows a drill's boot until it passes or fails (or the drill ends).
pub fn wait_for_boot(
    client: &Client,
    output: OutputFormat,
    d: &DrillStatus,
) -> Result<(serde_json::Value, DrillStatus), CliError> {
    let limit = d.boot.as_ref().map_or(300, |b| b.timeout_seconds);
    let first = (serde_json::to_value(d).unwrap_or_default(), d.clone());
    Follower::new(client, output, format!("drill {}", d.id), POLL_EVERY)
        // The standby ends the boot at its timeout; this is the backstop.
        .timeout(Some(Duration::from_secs(limit + 120)), "the boot had no result")
        .follow(&format!("/api/v1/drills/{}", d.id), Some(first), |s: &DrillStatus| match &s.boot {
            Some(b) if b.state == BootState::Booting && s.state == DrillState::Running => Seen::Running {
                percent: 0.0,
                line: format!("booting point {} ({} console bytes)", s.point, b.console_bytes),
            },
            _ => Seen::Over,
        })
}

/// A failed boot ends the command with exit code 1 (after its report is printed).
pub fn outcome(raw: &serde_json::Value, d: &DrillStatus) -> Result<(), CliError> {
    match &d.boot {
        Some(b) if b.state != BootState::Passed => Err(CliError::JobOutcome {
            damage: false,
            message: format!(
                "drill {}: the guest did not boot from point {}: {}",
                d.id,
                d.point,
                b.reason.as_deref().unwrap_or("the drill ended first")
            ),
            status: raw.clone(),
        }),
        _ => Ok(()),
    }
}

fn fetch(client: &Client, path: &str) -> Result<Vec<u8>, CliError> {
    let resp = client.get_stream(path, STALL)?;
    let mut bytes = Vec::new();
    resp.into_body()
        .into_reader()
        .read_to_end(&mut bytes)
        .map_err(|e| CliError::Protocol { url: client.url(path), detail: e.to_string() })?;
    Ok(bytes)
}

/// Prints a drill's full console log.
pub fn console(client: &Client, id: &str) -> Result<(), CliError> {
    let bytes = fetch(client, &format!("/api/v1/drills/{id}/console"))?;
    std::io::stdout().write_all(&bytes).map_err(|e| CliError::io("writing the console log", e))
}

/// Saves a drill's screenshot to `out`.
pub fn screenshot(client: &Client, id: &str, out: &std::path::Path) -> Result<(), CliError> {
    let bytes = fetch(client, &format!("/api/v1/drills/{id}/screenshot"))?;
    std::fs::write(out, &bytes).map_err(|e| CliError::io(format!("writing {}", out.display()), e))?;
    eprintln!("drill {id}: screenshot saved to {} ({} bytes, PNG)", out.display(), bytes.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot(state: BootState) -> DrillBoot {
        DrillBoot {
            state,
            memory_mib: 2048,
            cpus: 2,
            firmware: "bios".into(),
            expect: "login:".into(),
            timeout_seconds: 300,
            accel: "kvm".into(),
            boot_ms: (state == BootState::Passed).then_some(4250),
            reason: (state == BootState::Failed).then(|| "no match for 'login:' within 5m".into()),
            console_tail: "Booting\nhost login:".into(),
            console_bytes: 20,
            screenshot: true,
            guest_running: state == BootState::Passed,
            note: None,
            stopped: None,
        }
    }

    #[test]
    fn a_boot_shows_its_result_time_console_and_evidence() {
        let mut b = Block::default();
        let mut d: DrillStatus = serde_json::from_value(serde_json::json!({
            "id": "web-1-0", "pair_id": "web", "state": "running", "point": 4, "point_time": "t",
            "point_age_seconds": 1.0, "requested_at": "t", "ready_ms": 1.0, "expires_at": "t",
            "ended_at": null, "operator": "a", "exports": [], "check": null, "message": "m"
        }))
        .unwrap();
        assert_eq!(words(&d), "-");
        d.boot = Some(boot(BootState::Passed));
        lines(&mut b, &d);
        let text = b.render();
        for needle in [
            "passed: the console matched in 4.2 s",
            "kvm, 2.0 GiB, 2 CPU(s), bios",
            "host login:",
            "drpair drill screenshot web-1-0",
        ] {
            assert!(text.contains(needle), "{needle} in\n{text}");
        }
        assert_eq!(words(&d), "passed in 4.2 s");
        d.boot = Some(boot(BootState::Failed));
        assert!(outcome(&serde_json::Value::Null, &d).is_err());
        assert_eq!(words(&d), "FAILED");
    }
}
