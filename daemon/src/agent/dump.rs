//! The agent's side of the third-party dump workflow: while the pair is suspended it cuts
//! epochs locally (nothing shipped) and remembers when, records the dump point the operator
//! gives (or cuts it and runs the snapshot command under a freeze), and, asked to resume in
//! resync mode, checks that its change history still reaches that point.
//!
//! Persisted in `dump.json` in the state dir (written to a temporary file, synced, renamed),
//! so a marker survives a restart of the agent; a tracking gap after the suspension makes it
//! unusable (`broken`), and resync then refuses and says to re-initialise.

use anyhow::{Context, Result};
use drpair_types::{DumpMarker, Epoch, ExecOutcome, Lineage};
use drpair_wire::{DumpAt, MarkRefusal};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const FILE: &str = "dump.json";
/// Local cuts remembered; older ones are thinned (every other one dropped).
const MAX_CUTS: usize = 4096;
/// Bytes of a snapshot command's output kept.
const OUTPUT_TAIL: usize = 4096;

/// Why the agent refuses to resume in resync mode: its change history may not reach the dump
/// point. The standby hears the message (it names the pair's command that gets out of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResyncRefusal {
    /// The agent keeps nothing of the suspension (its state was lost or reset).
    #[error(
        "this agent has no record of the suspension or of a dump marker (its state was lost or reset): the change history no longer reaches the dump point; re-initialise: drpair resume {pair} --resync --reinit --force (a full restart)"
    )]
    NoSuspension { pair: String },
    /// No dump marker was recorded during the suspension.
    #[error("this agent has no dump marker recorded; record it with drpair marker dump {pair}")]
    NoMarker { pair: String },
    /// The standby's dump point is not the one the agent recorded.
    #[error(
        "the standby expects the dump point at epoch {expected}, this agent recorded epoch {recorded}: record the marker again with drpair marker dump {pair}"
    )]
    OtherMarker { pair: String, expected: Epoch, recorded: Epoch },
    /// The change map was reset since the suspension.
    #[error(
        "the change map was reset since the suspension (lineage {was} is now {now}): the change history no longer reaches the dump point; {}",
        reinit(.pair)
    )]
    LineageReset { pair: String, was: Lineage, now: Lineage },
    /// The acknowledged checkpoint moved since the suspension.
    #[error(
        "the checkpoint moved from epoch {was} to {now} since the suspension: the change history no longer reaches the dump point; {}",
        reinit(.pair)
    )]
    CheckpointMoved { pair: String, was: Epoch, now: Epoch },
    /// A tracking gap since the suspension.
    #[error("the change history no longer reaches the dump point (epoch {dump_epoch}): {why}; {}", reinit(.pair))]
    Broken { pair: String, dump_epoch: Epoch, why: String },
    /// The change history begins after the dump point.
    #[error(
        "the change history starts at epoch {from}, after the dump point (epoch {dump_epoch}); {}",
        reinit(.pair)
    )]
    HistoryAfterDump { pair: String, from: Epoch, dump_epoch: Epoch },
}

/// The way out of a history that no longer reaches the dump point.
fn reinit(pair: &str) -> String {
    format!(
        "re-initialise: drpair resume {pair} --resync --reinit --force (a full restart: every recovery point is deleted and everything copied again)"
    )
}

/// What the agent keeps of a suspension for a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpState {
    pub lineage: Lineage,
    /// The acknowledged checkpoint when the suspension began: it must not move.
    pub acked: Epoch,
    pub suspended_unix_ms: u64,
    /// Epochs cut locally while suspended, with their time (ms), oldest first.
    pub cuts: Vec<(Epoch, u64)>,
    pub marker: Option<DumpMarker>,
    /// Why the change history no longer reaches the marker (a tracking gap since).
    pub broken: Option<String>,
    /// The standby's head is the dump loaded at this epoch: the next full pass compares every
    /// chunk with it; cleared once that pass is acknowledged.
    pub verifying: Option<Epoch>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join(FILE)
}

impl DumpState {
    pub fn new(lineage: Lineage, acked: Epoch, now_ms: u64) -> Self {
        Self { lineage, acked, suspended_unix_ms: now_ms, cuts: vec![], marker: None, broken: None, verifying: None }
    }

    /// The state in `dir`, if any. A damaged file is moved aside and reported as none (resync
    /// then refuses: no marker).
    pub fn load(dir: &Path) -> Option<Self> {
        let p = path(dir);
        let bytes = std::fs::read(&p).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(s) => Some(s),
            Err(e) => {
                let aside = p.with_extension("json.damaged");
                let _ = std::fs::rename(&p, &aside);
                tracing::warn!("dump state {} is damaged ({e}); moved to {}", p.display(), aside.display());
                None
            }
        }
    }

    /// Writes the state durably (temporary file, fsync, rename, fsync of the dir).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let p = path(dir);
        let tmp = p.with_extension("json.tmp");
        let bytes = serde_json::to_vec_pretty(self)?;
        {
            let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
            std::io::Write::write_all(&mut f, &bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &p).with_context(|| format!("renaming {}", tmp.display()))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).with_context(|| format!("syncing {}", dir.display()))?;
        Ok(())
    }

    /// Removes the state from `dir`.
    pub fn remove(dir: &Path) {
        let _ = std::fs::remove_file(path(dir));
    }

    /// Remembers a local cut.
    pub fn record_cut(&mut self, epoch: Epoch, at_ms: u64) {
        self.cuts.push((epoch, at_ms));
        if self.cuts.len() > MAX_CUTS {
            let keep_from = self.cuts.len() / 2;
            let mut i = 0;
            self.cuts.retain(|_| {
                i += 1;
                i > keep_from || i % 2 == 0
            });
        }
    }

    /// The change history no longer reaches a dump point recorded before now.
    pub fn mark_broken(&mut self, why: &str) {
        if self.broken.is_none() {
            self.broken = Some(why.to_string());
        }
    }

    /// The epoch (and its cut time) a marker given as an epoch or a time stands for.
    pub fn resolve(&self, at: DumpAt, now_ms: u64) -> Result<(Epoch, u64), MarkRefusal> {
        let refuse = |m: String| MarkRefusal { parameter: Some("at".into()), message: m };
        let span = match (self.cuts.first(), self.cuts.last()) {
            (Some(a), Some(b)) => format!("epochs {}..={} were cut while suspended", a.0, b.0),
            _ => "no epoch was cut while suspended yet".into(),
        };
        match at {
            DumpAt::Now => Err(refuse("`now` is cut by the caller".into())),
            DumpAt::Epoch(e) => match self.cuts.iter().find(|c| c.0 == e) {
                Some(&c) => Ok(c),
                None if e <= self.acked => Err(refuse(format!(
                    "epoch {e} is not after the recovery checkpoint (epoch {}); a dump point is an epoch cut while the pair is suspended ({span})",
                    self.acked
                ))),
                None => Err(refuse(format!("epoch {e} was not cut while the pair was suspended ({span})"))),
            },
            DumpAt::TimeMs(t) => {
                if t > now_ms + 5_000 {
                    return Err(refuse(format!(
                        "{} is in the future (the agent's clock says {})",
                        crate::timefmt::rfc3339_ms(t),
                        crate::timefmt::rfc3339_ms(now_ms)
                    )));
                }
                self.cuts.iter().rev().find(|c| c.1 <= t).copied().ok_or_else(|| {
                    refuse(format!(
                        "no epoch was cut at or before {} (the suspension began at {}): the dump must be taken after `drpair suspend`",
                        crate::timefmt::rfc3339_ms(t),
                        crate::timefmt::rfc3339_ms(self.suspended_unix_ms)
                    ))
                })
            }
        }
    }

    /// Checks that a resync for the dump at `dump_epoch` can ship exactly what changed after
    /// it; the error says why not and what to do.
    pub fn check_resync(
        &self,
        pair: &str,
        lineage: Lineage,
        acked: Epoch,
        history_from: Epoch,
        dump_epoch: Epoch,
    ) -> Result<DumpMarker, ResyncRefusal> {
        let pair = pair.to_string();
        let Some(m) = &self.marker else {
            return Err(ResyncRefusal::NoMarker { pair });
        };
        if m.epoch != dump_epoch {
            return Err(ResyncRefusal::OtherMarker { pair, expected: dump_epoch, recorded: m.epoch });
        }
        if lineage != self.lineage {
            return Err(ResyncRefusal::LineageReset { pair, was: self.lineage, now: lineage });
        }
        if acked != self.acked {
            return Err(ResyncRefusal::CheckpointMoved { pair, was: self.acked, now: acked });
        }
        if let Some(why) = &self.broken {
            return Err(ResyncRefusal::Broken { pair, dump_epoch, why: why.clone() });
        }
        if history_from > dump_epoch {
            return Err(ResyncRefusal::HistoryAfterDump { pair, from: history_from, dump_epoch });
        }
        Ok(m.clone())
    }
}

/// A `state dir`-independent refusal of a marker request.
pub fn refusal(parameter: Option<&str>, message: String) -> MarkRefusal {
    MarkRefusal { parameter: parameter.map(String::from), message }
}

/// Runs the operator's snapshot command (`sh -c CMD`), killing it after `timeout`; `env`
/// tells it the pair and the dump epoch. The output's tail is kept. The command runs in its
/// own process group so that a timeout kills what it started too (a `sleep` left behind
/// would hold the output pipes open).
pub fn run_exec(cmd: &str, timeout: Duration, env: &[(&str, String)]) -> ExecOutcome {
    let t0 = Instant::now();
    let mut out = ExecOutcome { command: cmd.to_string(), exit_code: None, millis: 0, output: String::new() };
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    c.process_group(0);
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = match c.spawn() {
        Ok(ch) => ch,
        Err(e) => {
            out.output = format!("cannot start sh: {e}");
            return out;
        }
    };
    let readers: Vec<_> = [
        child.stdout.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut r| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    })
    .collect();
    let deadline = t0 + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() >= deadline => {
                // SAFETY: kill(2) with a negative pid signals the process group we created.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(_) => break None,
        }
    };
    let mut all = Vec::new();
    for r in readers {
        all.extend(r.join().unwrap_or_default());
    }
    let start = all.len().saturating_sub(OUTPUT_TAIL);
    out.output = String::from_utf8_lossy(&all[start..]).into_owned();
    out.exit_code = status.and_then(|s| s.code());
    if status.is_none() {
        out.output.push_str(&format!("\n[killed after {}]", humantime::format_duration(timeout)));
    }
    out.millis = t0.elapsed().as_millis() as u64;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::Consistency;

    fn state() -> DumpState {
        let mut s = DumpState::new(Lineage::from_u128(7), 10, 1_000);
        for (i, e) in (11..=15).enumerate() {
            s.record_cut(e, 2_000 + i as u64 * 1_000);
        }
        s
    }

    fn marker(epoch: Epoch) -> DumpMarker {
        DumpMarker {
            epoch,
            time: String::new(),
            time_unix_ms: 0,
            at: "now".into(),
            consistency: Consistency::Fuzzy,
            quiesce: None,
            exec: None,
        }
    }

    #[test]
    fn epochs_and_times_resolve_to_local_cuts() {
        let s = state();
        assert_eq!(s.resolve(DumpAt::Epoch(13), 10_000).unwrap(), (13, 4_000));
        assert_eq!(s.resolve(DumpAt::TimeMs(4_500), 10_000).unwrap(), (13, 4_000));
        assert_eq!(s.resolve(DumpAt::TimeMs(4_000), 10_000).unwrap(), (13, 4_000), "at the cut itself");
        for bad in [DumpAt::Epoch(10), DumpAt::Epoch(16), DumpAt::TimeMs(1_500), DumpAt::TimeMs(60_000)] {
            let r = s.resolve(bad, 10_000).unwrap_err();
            assert_eq!(r.parameter.as_deref(), Some("at"), "{bad:?}: {}", r.message);
        }
        assert!(s.resolve(DumpAt::Epoch(10), 10_000).unwrap_err().message.contains("checkpoint"));
    }

    #[test]
    fn old_cuts_are_thinned_not_the_recent_ones() {
        let mut s = DumpState::new(Lineage::nil(), 0, 0);
        for e in 1..=(MAX_CUTS as u64 + 1) {
            s.record_cut(e, e);
        }
        assert!(s.cuts.len() <= MAX_CUTS);
        assert_eq!(s.cuts.last().unwrap().0, MAX_CUTS as u64 + 1);
        assert!(s.cuts.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn resync_refuses_when_the_history_does_not_reach_the_marker() {
        let mut s = state();
        let l = s.lineage;
        let refusal = |r: Result<DumpMarker, ResyncRefusal>| r.unwrap_err().to_string();
        assert!(refusal(s.check_resync("p", l, 10, 0, 13)).contains("drpair marker dump p"));
        s.marker = Some(marker(13));
        assert_eq!(s.check_resync("p", l, 10, 0, 13).unwrap().epoch, 13);
        assert!(refusal(s.check_resync("p", l, 10, 0, 12)).contains("record the marker again"));
        for (lineage, acked, history) in [(Lineage::nil(), 10, 0), (l, 12, 0), (l, 10, 14)] {
            let e = refusal(s.check_resync("p", lineage, acked, history, 13));
            assert!(e.contains("--reinit --force"), "{e}");
        }
        s.mark_broken("unclean agent stop");
        s.mark_broken("a later gap");
        let e = refusal(s.check_resync("p", l, 10, 0, 13));
        assert!(e.contains("unclean agent stop") && e.contains("--reinit --force"), "{e}");
    }

    #[test]
    fn state_survives_a_restart_and_damage_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = state();
        s.marker = Some(marker(14));
        s.save(dir.path()).unwrap();
        assert_eq!(DumpState::load(dir.path()), Some(s));
        std::fs::write(dir.path().join(FILE), b"{not json").unwrap();
        assert_eq!(DumpState::load(dir.path()), None);
        assert!(dir.path().join("dump.json.damaged").exists());
    }

    #[test]
    fn exec_reports_exit_output_and_timeout() {
        let ok = run_exec(
            "echo snap-$DRPAIR_DUMP_EPOCH; echo err >&2",
            Duration::from_secs(10),
            &[("DRPAIR_DUMP_EPOCH", "9".into())],
        );
        assert_eq!(ok.exit_code, Some(0));
        assert!(ok.output.contains("snap-9") && ok.output.contains("err"), "{}", ok.output);
        let bad = run_exec("exit 3", Duration::from_secs(10), &[]);
        assert_eq!(bad.exit_code, Some(3));
        let slow = run_exec("sleep 5; echo late", Duration::from_millis(200), &[]);
        assert_eq!(slow.exit_code, None);
        assert!(slow.output.contains("killed") && slow.millis < 4_000, "{slow:?}");
    }
}
