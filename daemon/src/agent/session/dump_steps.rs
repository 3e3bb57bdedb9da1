//! The connection's part in the third-party dump workflow: local cuts while suspended, the
//! dump marker (with the operator's snapshot command under a freeze), and the resync markers.

use super::super::dump::{self, DumpState, ResyncRefusal};
use super::super::quiesce::{self, HOOK_TIMEOUT, QuiescePlan};
use super::{Conn, Res, transient};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::{Consistency, DumpMarker, Epoch};
use drpair_wire::{AgentMsg, DumpAt, DumpMarkRequest, MarkRefusal};
use std::time::Duration;

/// Default time filesystems may stay frozen around a snapshot command.
const DUMP_THAW_BUDGET: Duration = Duration::from_secs(30);
/// Default time a snapshot command may run.
const EXEC_TIMEOUT: Duration = Duration::from_secs(600);

impl Conn {
    /// Makes sure a suspension is being recorded (a new one starts with a local cut, so that
    /// any time after `suspend` resolves to an epoch).
    pub(super) fn begin_suspension(&mut self) {
        let st = self.agent.local.lock().expect("maps");
        let (lineage, acked) = (st.lineage(), st.acked());
        drop(st);
        let mut d = self.agent.dump.lock().expect("dump");
        let current = d.as_ref().is_some_and(|s| s.lineage == lineage && s.acked == acked && s.verifying.is_none());
        if !current {
            *d = Some(DumpState::new(lineage, acked, now_ms()));
            self.local_cut_due = true;
            tracing::info!(pair = %self.agent.cfg.pair, acked, "suspended for a third-party dump: cutting epochs locally, shipping nothing");
        }
    }

    /// A suspension ended without a dump being applied (plain resume): forget it.
    pub(super) fn end_suspension(&mut self) {
        let mut d = self.agent.dump.lock().expect("dump");
        if d.as_ref().is_some_and(|s| s.verifying.is_none()) {
            *d = None;
            DumpState::remove(&self.agent.cfg.state_dir);
            tracing::info!(pair = %self.agent.cfg.pair, "dump workflow abandoned: shipping from the checkpoint");
        }
    }

    /// Cuts an epoch without shipping it and remembers when; returns it and its time.
    pub(super) async fn local_cut(&mut self) -> Res<(Epoch, u64)> {
        let agent = self.agent.clone();
        let r = tokio::task::spawn_blocking(move || -> anyhow::Result<(Epoch, u64)> {
            let mut st = agent.local.lock().expect("maps");
            let e = st.begin_cut()?;
            let c = agent.tracker.lock().expect("tracker").collect(&mut st.maps, e)?;
            let at = now_ms();
            let mut d = agent.dump.lock().expect("dump");
            if let Some(g) = &c.gap {
                tracing::warn!("tracking gap while suspended: {g}; a dump point recorded before cannot be used");
                let acked = st.acked();
                st.limit_history(acked)?;
                st.set_suspect(Some(g))?;
                if let Some(d) = d.as_mut() {
                    d.mark_broken(&format!("tracking gap while suspended: {g}"));
                }
            }
            if let Some(d) = d.as_mut() {
                d.record_cut(e, at);
                d.save(&agent.cfg.state_dir)?;
            }
            Ok((e, at))
        })
        .await
        .map_err(transient)?
        .map_err(transient)?;
        self.local_cut_due = false;
        tracing::debug!(pair = %self.agent.cfg.pair, epoch = r.0, "local cut (suspended)");
        Ok(r)
    }

    /// Records a dump marker and answers the standby.
    pub(super) async fn dump_mark(&mut self, req: DumpMarkRequest) -> Res<()> {
        let request_id = req.request_id;
        let result = self.try_mark(req).await?;
        match &result {
            Ok(m) => {
                tracing::info!(pair = %self.agent.cfg.pair, epoch = m.epoch, at = %m.at, consistency = ?m.consistency, "dump marker recorded")
            }
            Err(r) => tracing::warn!(pair = %self.agent.cfg.pair, "no dump marker recorded: {}", r.message),
        }
        self.send(&AgentMsg::DumpMarked { request_id, result }).await
    }

    async fn try_mark(&mut self, req: DumpMarkRequest) -> Res<Result<DumpMarker, MarkRefusal>> {
        if !self.suspended || self.agent.dump.lock().expect("dump").is_none() {
            return Ok(Err(dump::refusal(None, "this agent is not suspended for a dump".into())));
        }
        if req.exec.is_some() && !self.agent.cfg.marker_exec {
            return Ok(Err(dump::refusal(
                Some("exec"),
                "this agent does not run commands sent through the API: allow it with `marker_exec = true` in its [agent] config (or --marker-exec), or take the snapshot yourself and record its point with --at".into(),
            )));
        }
        let marker = match req.exec.clone() {
            Some(cmd) => match self.mark_with_exec(&req, &cmd).await? {
                Ok(m) => m,
                Err(r) => return Ok(Err(r)),
            },
            None => {
                let (epoch, at_ms, how) = match req.at {
                    DumpAt::Now => {
                        let (e, t) = self.local_cut().await?;
                        (e, t, "now".to_string())
                    }
                    at => {
                        let resolved = self.agent.dump.lock().expect("dump").as_ref().map(|d| d.resolve(at, now_ms()));
                        match resolved {
                            Some(Ok((e, t))) => {
                                let how = match at {
                                    DumpAt::TimeMs(t) => format!("time {}", rfc3339_ms(t)),
                                    _ => format!("epoch {e}"),
                                };
                                (e, t, how)
                            }
                            Some(Err(r)) => return Ok(Err(r)),
                            None => return Ok(Err(dump::refusal(None, "not suspended".into()))),
                        }
                    }
                };
                DumpMarker {
                    epoch,
                    time: rfc3339_ms(at_ms),
                    time_unix_ms: at_ms,
                    at: how,
                    consistency: Consistency::Fuzzy,
                    quiesce: None,
                    exec: None,
                }
            }
        };
        let dir = self.agent.cfg.state_dir.clone();
        let mut d = self.agent.dump.lock().expect("dump");
        let Some(s) = d.as_mut() else { return Ok(Err(dump::refusal(None, "not suspended".into()))) };
        s.marker = Some(marker.clone());
        s.save(&dir).map_err(transient)?;
        Ok(Ok(marker))
    }

    /// The coordinated form: freeze, cut, run the snapshot command, thaw.
    async fn mark_with_exec(&mut self, req: &DumpMarkRequest, cmd: &str) -> Res<Result<DumpMarker, MarkRefusal>> {
        let agent = self.agent.clone();
        let cfg = &agent.cfg;
        let plan = (!req.freeze.is_empty()).then(|| QuiescePlan {
            freeze: req.freeze.iter().map(Into::into).collect(),
            hooks: false,
            pre_hook: None,
            post_hook: None,
            budget: req.budget_ms.map_or(DUMP_THAW_BUDGET, Duration::from_millis),
            pair: cfg.pair.to_string(),
            state_dir: cfg.state_dir.clone(),
            hook_timeout: HOOK_TIMEOUT,
        });
        let held = match plan {
            Some(p) => {
                let q = tokio::task::spawn_blocking(move || quiesce::quiesce(p)).await.map_err(transient)?;
                if !q.is_quiesced() {
                    let out = tokio::task::spawn_blocking(move || q.release()).await.map_err(transient)?;
                    return Ok(Err(dump::refusal(
                        Some("freeze"),
                        format!(
                            "{}; the snapshot command was not run",
                            out.failure.unwrap_or_else(|| "the filesystems could not be frozen".into())
                        ),
                    )));
                }
                Some(q)
            }
            None => None,
        };
        let (epoch, at_ms) = match self.local_cut().await {
            Ok(c) => c,
            Err(e) => {
                if let Some(q) = held {
                    let _ = tokio::task::spawn_blocking(move || q.release()).await;
                }
                return Err(e);
            }
        };
        let timeout = req.exec_timeout_ms.map_or(EXEC_TIMEOUT, Duration::from_millis);
        let env = [("DRPAIR_PAIR", cfg.pair.to_string()), ("DRPAIR_DUMP_EPOCH", epoch.to_string())];
        let cmd = cmd.to_string();
        tracing::info!(pair = %cfg.pair, epoch, frozen = held.is_some(), "running the snapshot command: {cmd}");
        let (exec, quiesced) = tokio::task::spawn_blocking(move || {
            let exec = dump::run_exec(&cmd, timeout, &env.iter().map(|(k, v)| (*k, v.clone())).collect::<Vec<_>>());
            (exec, held.map(|q| q.release()))
        })
        .await
        .map_err(transient)?;
        if exec.exit_code != Some(0) {
            let how = match exec.exit_code {
                Some(c) => format!("exited with status {c}"),
                None => "did not finish (killed, or could not start)".into(),
            };
            return Ok(Err(dump::refusal(
                Some("exec"),
                format!(
                    "the snapshot command {how}; no dump marker recorded. Its output ends with: {}",
                    exec.output.trim()
                ),
            )));
        }
        let app = quiesced.as_ref().is_some_and(|q| q.achieved);
        Ok(Ok(DumpMarker {
            epoch,
            time: rfc3339_ms(at_ms),
            time_unix_ms: at_ms,
            at: "exec".into(),
            consistency: if app { Consistency::AppConsistent } else { Consistency::Fuzzy },
            quiesce: quiesced,
            exec: Some(exec),
        }))
    }

    /// Resume in resync mode: the resync marker then the dump marker, or why not.
    pub(super) async fn resync(&mut self, request_id: u64, dump_epoch: Epoch) -> Res<()> {
        let (lineage, acked, history_from) = {
            let st = self.agent.local.lock().expect("maps");
            (st.lineage(), st.acked(), st.history_from())
        };
        let pair = self.agent.cfg.pair.to_string();
        let checked = match self.agent.dump.lock().expect("dump").as_ref() {
            Some(d) => d.check_resync(&pair, lineage, acked, history_from, dump_epoch),
            None => Err(ResyncRefusal::NoSuspension { pair: pair.clone() }),
        };
        match checked {
            Ok(marker) => {
                tracing::info!(pair = %pair, dump_epoch, acked, history_from, "resuming in resync mode: sending the resync marker and the dump marker");
                self.send(&AgentMsg::ResyncMarker { request_id, lineage, acked, history_from }).await?;
                self.send(&AgentMsg::DumpMarker { request_id, marker }).await
            }
            Err(refusal) => {
                let message = refusal.to_string();
                tracing::warn!(pair = %pair, "cannot resume in resync mode: {message}");
                self.send(&AgentMsg::ResyncRefused { request_id, message }).await
            }
        }
    }
}
