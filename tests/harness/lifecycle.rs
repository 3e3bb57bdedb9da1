//! Helpers of the lifecycle tests (restart, start, pause, resume, stop):
//! - [`StdinCli`]: the `drpair` CLI fed a given stdin (the restart confirmation), run to
//!   completion or in a thread while the test watches the pair;
//! - [`action`]/[`action_raw`]: `POST /api/v1/pairs/{pair}/{action}`, and [`expect_action`]
//!   for the `ActionResponse` of a success;
//! - [`Findings`]: a checklist that records every answer that breaks the contract and fails
//!   the test once, at the end, listing all of them (so one run shows every defect);
//! - [`record_until`] and [`distinct_states`]: the statuses a pair goes through;
//! - [`Snapshot`]: what an operator action that was refused must not have changed.

use crate::api::{Api, Reply};
use crate::cli::CliOut;
use crate::daemons::Standby;
use crate::pair::describe;
use crate::process::Daemon;
use drpair_types::{ActionResponse, Lineage, PairState, PairStatus, RecoveryPoint};
use serde_json::Value;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Runs `drpair` against a standby with a given stdin (a pipe that is closed after `stdin`
/// is written, so an empty `stdin` is an immediate end of input).
#[derive(Debug, Clone)]
pub struct StdinCli {
    server: String,
    token: Option<String>,
    ca_file: Option<std::path::PathBuf>,
}

impl StdinCli {
    /// Pointed at `sb` with its token.
    pub fn new(sb: &Standby) -> Self {
        Self { server: sb.url(), token: sb.token.clone(), ca_file: sb.ca_file() }
    }

    /// The same runner with another token (None: no token at all).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self { token: token.map(String::from), ..self.clone() }
    }

    /// Runs `drpair ARGS` with `stdin` to completion.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> CliOut {
        crate::Cli::new(&self.server, self.token.as_deref())
            .with_ca(self.ca_file.clone())
            .run_with_stdin(args, Some(stdin))
    }

    /// Runs `drpair ARGS` with `stdin` in a thread; join the handle for its output.
    pub fn spawn(&self, args: &[&str], stdin: &[u8]) -> JoinHandle<CliOut> {
        let me = self.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.to_vec();
        std::thread::spawn(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            me.run(&args, &stdin)
        })
    }
}

/// `POST /api/v1/pairs/{pair}/{action}` with a JSON body.
pub fn action(api: &Api, pair: &str, action: &str, body: &Value) -> Reply {
    action_raw(api, pair, action, body.to_string().as_bytes())
}

/// `POST /api/v1/pairs/{pair}/{action}` with raw bytes as `application/json`.
pub fn action_raw(api: &Api, pair: &str, action: &str, body: &[u8]) -> Reply {
    let r = api.post(&format!("/api/v1/pairs/{pair}/{action}"), "application/json", body);
    crate::step(format!("POST {action} {pair} {} -> {} {}", String::from_utf8_lossy(body), r.status, short(&r.text())));
    r
}

/// Asserts a 200 `ActionResponse` and returns it parsed.
pub fn expect_action(r: &Reply, what: &str) -> ActionResponse {
    assert_eq!(r.status, 200, "{what}: expected 200 with an ActionResponse, got {}: {}", r.status, r.text());
    let resp: ActionResponse = serde_json::from_slice(&r.body)
        .unwrap_or_else(|e| panic!("{what}: answer is not an ActionResponse ({e}): {}", r.text()));
    assert!(!resp.message.trim().is_empty(), "{what}: ActionResponse without a message: {}", r.text());
    resp
}

fn short(s: &str) -> String {
    if s.len() > 300 { format!("{}…", &s[..s.floor_char_boundary(300)]) } else { s.to_string() }
}

/// A checklist of contract checks. Each failed check is recorded (and printed at once);
/// [`Findings::finish`] fails the test listing every one of them.
#[derive(Debug, Default)]
pub struct Findings {
    failed: Vec<String>,
    passed: usize,
}

impl Findings {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a check: `Err` says what was wrong.
    pub fn check(&mut self, what: &str, r: Result<(), String>) {
        match r {
            Ok(()) => self.passed += 1,
            Err(e) => {
                crate::step(format!("CONTRACT BROKEN: {what}: {e}"));
                self.failed.push(format!("{what}: {e}"));
            }
        }
    }

    /// An API error answer: HTTP `status`, `code`, a non-empty message, and the `parameter`
    /// when given. Returns the body when it is JSON.
    pub fn api_error(&mut self, what: &str, r: &Reply, status: u16, code: &str, param: Option<&str>) -> Option<Value> {
        let j: Option<Value> = serde_json::from_slice(&r.body).ok();
        let res = (|| {
            if r.status != status {
                return Err(format!("expected HTTP {status} {code}, got {}: {}", r.status, short(&r.text())));
            }
            let j = j.as_ref().ok_or_else(|| format!("error body is not JSON: {}", short(&r.text())))?;
            if j["code"] != code {
                return Err(format!("expected code {code}: {j}"));
            }
            if j["message"].as_str().is_none_or(|m| m.trim().is_empty()) {
                return Err(format!("error without a message: {j}"));
            }
            if let Some(p) = param
                && j["parameter"] != p
            {
                return Err(format!("expected parameter '{p}': {j}"));
            }
            Ok(())
        })();
        self.check(what, res);
        j
    }

    /// Like [`Findings::api_error`], and the message contains every one of `needles`.
    pub fn api_error_naming(&mut self, what: &str, r: &Reply, status: u16, code: &str, needles: &[&str]) {
        if let Some(j) = self.api_error(what, r, status, code, None) {
            let m = j["message"].as_str().unwrap_or_default().to_string();
            let missing: Vec<&&str> = needles.iter().filter(|n| !m.contains(**n)).collect();
            self.check(
                &format!("{what} (message)"),
                if missing.is_empty() { Ok(()) } else { Err(format!("message does not name {missing:?}: {m}")) },
            );
        }
    }

    /// A CLI result: exit `code`, and stderr containing every one of `needles`.
    pub fn cli(&mut self, what: &str, out: &CliOut, code: i32, needles: &[&str]) {
        let res = if out.code != code {
            Err(format!(
                "drpair {:?}: expected exit {code}, got {}; stdout: {} stderr: {}",
                out.args,
                out.code,
                short(&out.stdout),
                short(&out.stderr)
            ))
        } else {
            let missing: Vec<&&str> = needles.iter().filter(|n| !out.stderr.contains(**n)).collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("drpair {:?}: stderr does not name {missing:?}: {}", out.args, short(&out.stderr)))
            }
        };
        self.check(what, res);
    }

    /// Fails the test if any check failed, listing all of them.
    pub fn finish(self, what: &str) {
        crate::step(format!("{what}: {} checks passed, {} failed", self.passed, self.failed.len()));
        assert!(
            self.failed.is_empty(),
            "{what}: {} of {} contract checks failed:\n  - {}",
            self.failed.len(),
            self.failed.len() + self.passed,
            self.failed.join("\n  - ")
        );
    }
}

/// One status observed while recording, with the time since the recording began.
#[derive(Debug, Clone)]
pub struct Sample {
    pub at: Duration,
    pub status: PairStatus,
}

/// Polls the pair's status every 100 ms until `done(status)` holds (or `timeout`); returns
/// every sample. `inspect` sees each sample as it comes (to check what must hold at that
/// moment, e.g. the points list). If `agent` exits meanwhile, fails at once with its log tail.
pub fn record_until(
    api: &Api,
    pair: &str,
    mut agent: Option<&mut Daemon>,
    what: &str,
    timeout: Duration,
    mut inspect: impl FnMut(&Sample),
    mut done: impl FnMut(&PairStatus) -> bool,
) -> Vec<Sample> {
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    loop {
        if let Some(a) = agent.as_deref_mut()
            && let Some(st) = a.try_exit()
        {
            panic!("{} exited with {st} while recording {what}:\n{}", a.label(), a.tail(40));
        }
        if let Ok(s) = api.try_status(pair) {
            let sample = Sample { at: start.elapsed(), status: s };
            inspect(&sample);
            let finished = done(&sample.status);
            samples.push(sample);
            if finished {
                return samples;
            }
        }
        if start.elapsed() >= timeout {
            panic!(
                "timed out after {timeout:?} recording {what}; states seen: {:?}; last: {}",
                distinct_states(samples.iter().map(|s| &s.status)),
                samples.last().map(|s| describe(&s.status)).unwrap_or_else(|| "no status at all".into())
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The states of `statuses` with consecutive repeats collapsed.
pub fn distinct_states<'a>(statuses: impl IntoIterator<Item = &'a PairStatus>) -> Vec<PairState> {
    let mut out: Vec<PairState> = Vec::new();
    for s in statuses {
        if out.last() != Some(&s.state) {
            out.push(s.state);
        }
    }
    out
}

/// Whether `states` (consecutive repeats collapsed) is `Disconnected* InitialSync Replicating`:
/// the course of a restart's new lineage (the standby ends the agent's connection, the agent
/// reconnects, copies the new baseline, and replicates).
pub fn is_restart_course(states: &[PairState]) -> bool {
    let rest: Vec<PairState> = states.iter().copied().skip_while(|s| *s == PairState::Disconnected).collect();
    rest == [PairState::InitialSync, PairState::Replicating]
}

/// What a refused operator action must leave as it was: the lineage, the recovery
/// checkpoint, the state and the points. The running pair may commit new points meanwhile.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: PairStatus,
    pub points: Vec<RecoveryPoint>,
}

impl Snapshot {
    pub fn take(api: &Api, pair: &str) -> Self {
        let status = api.status(pair);
        let points = api.points(pair);
        assert!(status.lineage.is_some(), "snapshot of a pair without a lineage: {}", describe(&status));
        crate::step(format!(
            "snapshot of {pair}: {}; points {:?}",
            describe(&status),
            points.iter().map(|p| p.id).collect::<Vec<_>>()
        ));
        Self { status, points }
    }

    pub fn lineage(&self) -> Lineage {
        self.status.lineage.expect("checked in take")
    }

    pub fn max_point_id(&self) -> u64 {
        self.points.iter().map(|p| p.id).max().unwrap_or(0)
    }

    /// Differences between now and the snapshot, other than points committed since in the
    /// same lineage and the checkpoint moving forward with them. Empty when nothing changed.
    pub fn changes(&self, api: &Api, pair: &str) -> Vec<String> {
        let now = api.status(pair);
        let points = api.points(pair);
        let mut diffs = Vec::new();
        if now.lineage != self.status.lineage {
            diffs.push(format!("lineage {:?} became {:?}", self.status.lineage, now.lineage));
        }
        if now.state != self.status.state {
            diffs.push(format!("state {:?} became {:?}", self.status.state, now.state));
        }
        if now.stop_reason != self.status.stop_reason {
            diffs.push(format!("stop_reason {:?} became {:?}", self.status.stop_reason, now.stop_reason));
        }
        if now.ready_for_failover != self.status.ready_for_failover {
            diffs.push(format!(
                "ready_for_failover {} became {}",
                self.status.ready_for_failover, now.ready_for_failover
            ));
        }
        if now.restart.is_some() {
            diffs.push(format!("a restart is under way: {:?}", now.restart));
        }
        match (&self.status.checkpoint, &now.checkpoint) {
            (Some(a), Some(b)) if a.lineage == b.lineage && b.epoch >= a.epoch => {}
            (a, b) => diffs.push(format!("recovery checkpoint {a:?} became {b:?}")),
        }
        let cp = now.checkpoint.map(|c| c.to_string());
        if now.recovery_checkpoint != cp {
            diffs.push(format!("recovery_checkpoint {:?} does not match checkpoint {cp:?}", now.recovery_checkpoint));
        }
        for old in &self.points {
            match points.iter().find(|p| p.id == old.id) {
                None => diffs.push(format!("point {} ({:?}) was deleted", old.id, old.kind)),
                Some(p) if p != old => diffs.push(format!("point {} changed: {old:?} became {p:?}", old.id)),
                Some(_) => {}
            }
        }
        let max_old = self.max_point_id();
        for p in points.iter().filter(|p| !self.points.iter().any(|o| o.id == p.id)) {
            if p.id <= max_old {
                diffs.push(format!("point {} appeared among the old ids (≤ {max_old})", p.id));
            }
            if Some(p.lineage) != self.status.lineage {
                diffs.push(format!("point {} is of lineage {}, not {:?}", p.id, p.lineage, self.status.lineage));
            }
        }
        diffs
    }

    /// Asserts [`Snapshot::changes`] is empty.
    pub fn assert_kept(&self, api: &Api, pair: &str, after: &str) {
        let diffs = self.changes(api, pair);
        assert!(
            diffs.is_empty(),
            "pair {pair} changed after {after}:\n  - {}\nnow: {}",
            diffs.join("\n  - "),
            describe(&api.status(pair))
        );
        crate::step(format!("pair {pair} unchanged after {after}"));
    }
}
