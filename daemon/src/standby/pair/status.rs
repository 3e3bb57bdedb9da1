//! How a pair's status is derived from its record and runtime: the state's explanation in
//! plain words, progress and rates, each feature's part, and the actions allowed now.

use super::handle::PairHandle;
use super::record::PairRecord;
use super::runtime::PairRuntime;
use crate::timefmt::{age_seconds, rfc3339_ms};
use drpair_types::{AgentInfo, DiskInfo, PairState, PairStats, PairStatus, PairSummary, PassInfo, RestartInfo, StopAt};
use drpair_wire::PassKind;

impl PairHandle {
    fn explanation(rec: &PairRecord, rt: &PairRuntime) -> String {
        let l = &rec.lifecycle;
        match l.state {
            PairState::Initiating => {
                "Registered; waiting for `drpair start PAIR --type start` (or for the agent) to begin the first copy."
                    .into()
            }
            PairState::InitialSync if l.restarting => "Restarting: copying every chunk of every disk in a new lineage; not ready for failover until the new baseline completes.".into(),
            PairState::InitialSync => {
                "Copying every chunk of every disk; not ready for failover until the baseline completes.".into()
            }
            PairState::Replicating if rt.progress.spool_full => format!(
                "Shipping changes; spool full: points are {:.0} s apart until the link catches up (the epoch being shipped did not fit the agent's spool: its point's read window grows).",
                rt.last_point.as_ref().map_or(0.0, |p| age_seconds(p.time_unix_ms))
            ),
            PairState::Replicating => "Shipping changes; recovery points are being committed.".into(),
            PairState::Rescanning if l.verifying_dump => "Shipping the chunks changed after the dump point and comparing every chunk with the loaded dump; the pair is declared replicating once that point is committed.".into(),
            PairState::Rescanning => format!(
                "Comparing chunk hashes with the standby after a tracking gap ({}); only differing chunks are shipped.",
                rt.progress.reason.as_deref().unwrap_or("reason not given")
            ),
            PairState::Disconnected => {
                "The agent is not connected; it resumes from the recovery checkpoint when it reconnects.".into()
            }
            PairState::Paused => "Paused by an operator: nothing is shipped; the agent keeps tracking changes, so nothing is lost, and the lag grows until `drpair resume`.".into(),
            PairState::Stopped => format!(
                "Stopped ({}): nothing is shipped; the agent keeps tracking changes. `drpair resume` continues from the recovery checkpoint.",
                l.stop_reason.map(|r| r.as_str()).unwrap_or("no reason recorded")
            ),
            PairState::Suspended => format!(
                "Suspended for a third-party dump: nothing is shipped and the recovery checkpoint stays where it was; the agent keeps tracking changes. Next: {}.",
                crate::standby::dump::next_step(rec)
            ),
            PairState::AwaitingResyncMarker => format!(
                "The standby purged its queue for the pair and waits for the agent's resync marker. Next: {}.",
                crate::standby::dump::next_step(rec)
            ),
            PairState::AwaitingDumpMarker => {
                "The resync marker was received and processed; waiting for the dump marker.".into()
            }
            PairState::ApplySuspended => format!(
                "The dump marker was processed: apply is suspended; resume after the replica has been reloaded. Next: {}.",
                crate::standby::dump::next_step(rec)
            ),
            PairState::FailedOver => crate::standby::failover::explanation(rec, rt),
            PairState::FailingBack => crate::standby::failover::failback::explanation(rt),
            PairState::ConfigurationChanged => {
                let change = rec.configuration_change();
                let what = change
                    .as_ref()
                    .map(|c| c.changes.iter().map(|d| d.describe()).collect::<Vec<_>>().join("; "))
                    .unwrap_or_else(|| "details are known once the agent connects".into());
                let way = if change.is_some_and(|c| c.growth_only) {
                    "`drpair pairs adopt-growth PAIR` takes the grown disks (older points keep their size), `drpair restart PAIR` starts a new baseline"
                } else {
                    "`drpair restart PAIR` takes the new disks (a new baseline)"
                };
                format!(
                    "The agent's disks differ from those registered ({what}): nothing is shipped and every recovery point is kept. {way}; or start the agent with the registered disks again."
                )
            }
        }
    }

    fn stats(rec: &PairRecord, rt: &PairRuntime) -> PairStats {
        let p = &rt.progress;
        // Percent and ETA describe catching up (initial sync, rescan after a gap); a routine
        // pass of a replicating pair is shown in `pass`, not as lost progress.
        let running = matches!(p.pass, Some(PassKind::Initial | PassKind::Reconcile)) && p.chunks_total > 0;
        let progress_percent = if running {
            (p.chunks_done as f64 * 100.0 / p.chunks_total as f64).min(100.0)
        } else if rec.committed == 0 {
            0.0
        } else {
            100.0
        };
        let (elapsed, eta) = match (running, rt.pass_started) {
            (true, Some((t0, done0))) => {
                let el = t0.elapsed().as_secs_f64();
                let rate = p.chunks_done.saturating_sub(done0) as f64 / el.max(0.001);
                let eta =
                    (rate > 0.0).then(|| (p.chunks_total.saturating_sub(p.chunks_done) as f64 / rate).ceil() as u64);
                (Some(el as u64), eta)
            }
            _ => (None, None),
        };
        let lag = match &rt.last_point {
            Some(pt) => age_seconds(pt.time_unix_ms),
            None => age_seconds(rec.registered_unix_ms),
        };
        PairStats {
            progress_percent: (progress_percent * 10.0).round() / 10.0,
            eta_seconds: eta,
            elapsed_seconds: elapsed,
            pass: p.pass.map(|k| PassInfo {
                epoch: p.epoch,
                kind: k.as_str().into(),
                chunks_done: p.chunks_done,
                chunks_total: p.chunks_total,
                reason: p.reason.clone(),
            }),
            lag_seconds: (lag * 10.0).round() / 10.0,
            backlog_bytes: p.backlog_bytes,
            backlog_chunks: p.backlog_chunks,
            spool_bytes: p.spool_bytes,
            spool_full: p.spool_full,
            current_epoch: p.epoch.max(rec.committed),
            bytes_read: p.bytes_read_total,
            bytes_shipped: rt.stats.bytes_shipped,
            bytes_stored: rt.stats.bytes_stored,
            chunks_received: rt.stats.chunks_received,
            chunks_zero: rt.stats.chunks_zero,
            chunks_dedup: rt.stats.chunks_dedup,
            chunks_errored: rt.link.connections_failed,
            compression_level: rt
                .progress
                .compression_level
                .map(|l| if l == 0 { "off".into() } else { format!("zstd:{l}") }),
            points: rt.points,
            chunks_total: if p.pass.is_some() { p.chunks_total } else { 0 },
            chunks_shipped: if p.pass.is_some() { p.chunks_done } else { 0 },
            chunks_queued: p.backlog_chunks,
            bytes_on_wire: rt.stats.bytes_on_wire,
            compression_ratio: if rt.stats.bytes_shipped > 0 {
                ((rt.stats.data_raw as f64 / rt.stats.bytes_shipped as f64) * 100.0).round() / 100.0
            } else {
                1.0
            },
            throughput_bytes_per_second: rt.throughput().round(),
        }
    }

    pub fn status(&self) -> PairStatus {
        let rec = self.record.lock().expect("record lock").clone();
        let mut rt = self.runtime.lock().expect("runtime lock");
        let rpo_state = super::rpo::state(&rec, &mut rt, crate::timefmt::now_ms());
        let state = rec.lifecycle.state;
        let agent = rt.ever_connected.then(|| AgentInfo {
            host: rec.source_host.clone(),
            address: rec.source_address.clone(),
            tracker: rec.tracker.clone(),
            version: rt.agent_version.clone(),
            connected: rt.session.is_some(),
            since: rfc3339_ms(rt.since_unix_ms),
            tracking: rt.progress.tracking,
        });
        let stats = Self::stats(&rec, &rt);
        let link = rt.link.status(rec.bandwidth.as_deref(), stats.throughput_bytes_per_second);
        let verify = crate::standby::verify::status_of(&rec, &rt);
        let health = drpair_types::Health::of(drpair_types::panel::HealthFacts {
            state,
            ready_for_failover: rec.lifecycle.ready_for_failover(),
            lag_seconds: stats.lag_seconds,
            damaged_points: verify.as_ref().map_or(0, |v| v.points_damaged),
        });
        PairStatus {
            pair_id: rec.pair_id.clone(),
            state,
            state_label: state.label().into(),
            state_explanation: Self::explanation(&rec, &rt),
            ready_for_failover: rec.lifecycle.ready_for_failover(),
            lineage: Some(rec.lineage),
            recovery_checkpoint: rec.checkpoint().map(|c| c.to_string()),
            checkpoint: rec.checkpoint(),
            last_point: rt.last_point.clone(),
            agent,
            disks: rec
                .disks
                .iter()
                .enumerate()
                .map(|(i, d)| DiskInfo {
                    index: i as u32,
                    path: d.path.clone(),
                    size_bytes: d.geometry.size_bytes,
                    chunk_size: d.geometry.chunk_size.into(),
                    chunk_count: d.geometry.chunk_count(),
                })
                .collect(),
            stats,
            failure_messages: rt.failures.iter().cloned().collect(),
            stop_reason: Self::stop_reason(&rec, &rt),
            stop_reason_alias: rec.lifecycle.stop_reason.and_then(|r| r.alias()).map(String::from),
            dates: super::dates::view(
                &rec.dates,
                &rec.lifecycle,
                rec.registered_unix_ms,
                &rt,
                crate::timefmt::now_ms(),
            ),
            stop_at: rec.stop_at.as_ref().map(|s| StopAt { point: s.point, time: s.time_unix_ms.map(rfc3339_ms) }),
            restart: rec.restart.as_ref().map(|r| RestartInfo {
                requested_at: rfc3339_ms(r.requested_unix_ms),
                full_copy: r.full_copy,
                keep_points_until_synced: r.keep_points,
                kept_points: r.kept_points,
            }),
            change_history_from: rec.agent_history_from,
            registered_at: rfc3339_ms(rec.registered_unix_ms),
            dump: crate::standby::dump::status(&rec, rt.dump_load.as_ref().map(|(d, p)| (*d, p.as_ref()))),
            source_verify: crate::standby::source_verify::status(&rec, &rt),
            retention: rt.retention_defaults.as_ref().map(|d| crate::standby::retention::view_of(&rec, d)),
            health,
            verify,
            storage: rt.storage.clone(),
            failover: crate::standby::failover::status(&rec, &rt),
            failback: crate::standby::failover::failback::status(&rec, &rt),
            // The agent's pid and log are added by `protect::status`, which knows them.
            protected_by: rec.protected_by.as_ref().map(|p| p.to_view(None, String::new())),
            recovered_from: rec.recovered_from.as_ref().map(|r| r.to_view()),
            allowed_actions: Self::allowed_actions(&rec, &rt),
            standby_fingerprint: None,
            insecure_plaintext: false,
            configuration_change: rec.configuration_change(),
            link,
            rpo_state,
            last_successes: rec.last_successes.to_view(),
        }
    }

    /// Why the pair does not replicate, in DMS's words: the stop reason while stopped; a
    /// configuration change; an agent away, retrying by itself or refused until an operator
    /// acts.
    fn stop_reason(rec: &PairRecord, rt: &PairRuntime) -> Option<String> {
        let l = &rec.lifecycle;
        if let Some(r) = l.stop_reason {
            return Some(r.as_str().into());
        }
        if l.state == PairState::ConfigurationChanged {
            return Some(drpair_types::RECONFIGURATION_RESTART.into());
        }
        if !l.connected && !l.holds() {
            if rt.fatal.is_some() {
                return Some(drpair_types::FATAL_ERROR.into());
            }
            if rt.ever_connected || l.started {
                return Some(drpair_types::RECOVERABLE_ERROR.into());
            }
        }
        None
    }

    /// The operator actions allowed now: the lifecycle's, asked of the state machine itself,
    /// and those whose own checks look further (at the dump record, the agent's connection,
    /// the points, what runs now), each present exactly when its API call would be accepted.
    fn allowed_actions(rec: &PairRecord, rt: &PairRuntime) -> Vec<String> {
        use drpair_pair::PairOp as Op;
        let l = &rec.lifecycle;
        let connected = rt.session.is_some();
        let ops = [
            ("start", Op::Start),
            ("resume", Op::Resume),
            ("pause", Op::Pause),
            ("stop", Op::Stop(drpair_types::StopReason::Normal)),
            ("restart", Op::Restart),
            ("replay", Op::Replay),
            ("failover", Op::Failover),
            ("failback", Op::Failback),
            ("adopt_growth", Op::AdoptGrowth),
            ("suspend", Op::Suspend),
            ("skip_to_resync_marker", Op::SkipToResyncMarker),
        ];
        let mut v: Vec<String> =
            ops.iter().filter(|(_, op)| l.apply(*op).is_ok()).map(|(n, _)| n.to_string()).collect();
        if !rec.configuration_change().is_some_and(|c| c.growth_only) {
            v.retain(|a| a != "adopt_growth");
        }
        // The later steps of the dump workflow, as `dump::{mark, resync, load, resume_apply}`
        // check them: the markers are asked of the agent, so it must be connected.
        let dump = rec.dump.as_ref();
        let loading = rt.dump_load.is_some();
        let apply_suspended = l.state == PairState::ApplySuspended;
        let verifying =
            rt.verify.as_ref().is_some_and(|v| v.lock().expect("verify").state == super::results::VerifyState::Running);
        let more = [
            ("create_point", !l.holds() && connected),
            ("mark_dump", matches!(l.state, PairState::Suspended | PairState::AwaitingResyncMarker) && connected),
            (
                "resume_resync",
                l.state == PairState::AwaitingResyncMarker && dump.is_some_and(|d| d.marker.is_some()) && connected,
            ),
            ("load_dump", apply_suspended && !loading),
            ("resume_apply", apply_suspended && !loading && dump.is_some_and(|d| d.first_unloaded().is_none())),
            // A drill serves the latest recoverable point unless told another: any point does.
            ("drill", rt.points > 0),
            ("verify", rt.points > 0 && !verifying),
            ("verify_source", crate::standby::source_verify::refusal(rec, connected).is_none()),
        ];
        v.extend(more.iter().filter(|(_, ok)| *ok).map(|(n, _)| n.to_string()));
        v
    }

    pub fn summary(&self) -> PairSummary {
        let s = self.status();
        PairSummary {
            pair_id: s.pair_id,
            state: s.state,
            state_label: s.state_label,
            ready_for_failover: s.ready_for_failover,
            source_host: s.agent.as_ref().map(|a| a.host.clone()),
            source_address: s.agent.as_ref().map(|a| a.address.clone()),
            connected: s.agent.as_ref().is_some_and(|a| a.connected),
            lag_seconds: s.stats.lag_seconds,
            progress_percent: s.stats.progress_percent,
            last_point: s.last_point,
            disks: s.disks.len() as u32,
            health: s.health,
            rpo_state: s.rpo_state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::{SessionHandle, test_record};
    use drpair_pair::PairOp;
    use drpair_types::Epoch;
    use drpair_wire::Progress;
    use std::time::Instant;

    fn record(committed: Epoch) -> PairRecord {
        let state = if committed > 0 { PairState::Replicating } else { PairState::InitialSync };
        test_record(state, committed)
    }

    fn session() -> SessionHandle {
        SessionHandle::new(1, tokio::sync::mpsc::channel(1).0)
    }

    #[test]
    fn status_shows_the_lifecycle() {
        use drpair_types::StopReason;
        let h = PairHandle::new(record(5), None, 1);
        let s = h.status();
        assert_eq!((s.state, s.ready_for_failover, s.stop_reason), (PairState::Replicating, true, None));
        h.record.lock().unwrap().lifecycle.connected = false;
        assert_eq!(h.status().stop_reason.as_deref(), Some("RECOVERABLE_ERROR"), "the agent away, retrying");
        h.runtime.lock().unwrap().fatal = Some("lineage".into());
        assert_eq!(h.status().stop_reason.as_deref(), Some("FATAL_ERROR"), "refused until an operator acts");
        h.record.lock().unwrap().lifecycle.connected = true;
        let stopped = h.record.lock().unwrap().lifecycle.apply(PairOp::Stop(StopReason::StoppedAtPoint)).unwrap();
        h.record.lock().unwrap().lifecycle = stopped;
        let s = h.status();
        assert_eq!(s.state, PairState::Stopped);
        assert_eq!(s.state_label, "Stopped");
        assert_eq!(s.stop_reason.as_deref(), Some("STOPPED_AT_POINT"));
        assert!(s.state_explanation.contains("STOPPED_AT_POINT"), "{}", s.state_explanation);
        assert!(s.ready_for_failover, "a stopped pair keeps its points");
        let r = PairHandle::new(record(5), None, 1);
        let restarted = r.record.lock().unwrap().lifecycle.apply(PairOp::Restart).unwrap();
        r.record.lock().unwrap().lifecycle = restarted;
        let s = r.status();
        assert_eq!((s.state, s.ready_for_failover), (PairState::InitialSync, false));
        assert!(s.state_explanation.starts_with("Restarting"));
    }

    #[test]
    fn progress_and_eta() {
        let h = PairHandle::new(record(0), None, 0);
        {
            let mut rt = h.runtime.lock().unwrap();
            rt.session = Some(session());
            rt.set_progress(Progress {
                epoch: 1,
                pass: Some(PassKind::Initial),
                chunks_done: 0,
                chunks_total: 100,
                ..Default::default()
            });
            rt.pass_started = Some((Instant::now() - std::time::Duration::from_secs(10), 0));
            rt.set_progress(Progress {
                epoch: 1,
                pass: Some(PassKind::Initial),
                chunks_done: 25,
                chunks_total: 100,
                ..Default::default()
            });
        }
        let s = h.status();
        assert_eq!(s.stats.progress_percent, 25.0);
        let eta = s.stats.eta_seconds.unwrap();
        assert!((29..=31).contains(&eta), "eta {eta}");
        assert_eq!(s.stats.pass.unwrap().kind, "initial");
        // A routine scan pass of a replicating pair does not read as lost progress.
        let r = PairHandle::new(record(5), None, 1);
        {
            let mut rt = r.runtime.lock().unwrap();
            rt.session = Some(session());
            rt.set_progress(Progress {
                epoch: 6,
                pass: Some(PassKind::Scan),
                chunks_done: 3,
                chunks_total: 100,
                ..Default::default()
            });
        }
        let s = r.status();
        assert_eq!(s.stats.progress_percent, 100.0);
        assert_eq!(s.stats.pass.unwrap().chunks_done, 3);
    }

    /// Applies `op` to the handle's lifecycle (a test's shortcut past the commands).
    fn step(h: &PairHandle, op: PairOp) {
        let mut rec = h.record.lock().unwrap();
        rec.lifecycle = rec.lifecycle.apply(op).unwrap();
    }

    fn has(h: &PairHandle, action: &str) -> bool {
        h.status().allowed_actions.iter().any(|a| a == action)
    }

    #[test]
    fn actions_follow_the_dump_workflow() {
        use crate::standby::dump::{DumpRecord, LoadProgress};
        use drpair_types::DumpLoadState;
        let h = PairHandle::new(record(5), None, 3);
        h.runtime.lock().unwrap().session = Some(session());
        let dump_steps =
            ["skip_to_resync_marker", "mark_dump", "resume_resync", "load_dump", "resume_apply"].map(String::from);
        let s = h.status();
        assert!(s.allowed_actions.contains(&"suspend".into()), "{:?}", s.allowed_actions);
        assert!(!s.allowed_actions.iter().any(|a| dump_steps.contains(a)), "{:?}", s.allowed_actions);
        // `suspend`: the record gets its dump record in the same update.
        step(&h, PairOp::Suspend);
        h.record.lock().unwrap().dump = Some(DumpRecord::new(5, 2));
        for (a, yes) in [("suspend", false), ("skip_to_resync_marker", true), ("mark_dump", true), ("pause", false)] {
            assert_eq!(has(&h, a), yes, "suspended: {a}");
        }
        assert!(has(&h, "resume"), "a plain resume abandons the dump");
        // The marker is asked of the agent: not while it is away.
        let away = h.runtime.lock().unwrap().session.take();
        assert!(!has(&h, "mark_dump"), "the agent is away");
        h.runtime.lock().unwrap().session = away;
        step(&h, PairOp::SkipToResyncMarker);
        assert!(!has(&h, "skip_to_resync_marker") && has(&h, "mark_dump"));
        assert!(!has(&h, "resume_resync"), "no dump marker recorded yet");
        h.record.lock().unwrap().dump.as_mut().unwrap().marker = Some(drpair_types::DumpMarker {
            epoch: 6,
            time: crate::timefmt::rfc3339_ms(0),
            time_unix_ms: 0,
            at: "now".into(),
            consistency: drpair_types::Consistency::Fuzzy,
            quiesce: None,
            exec: None,
        });
        assert!(has(&h, "resume_resync") && has(&h, "mark_dump"));
        step(&h, PairOp::ResyncMarker);
        assert!(!has(&h, "resume_resync") && !has(&h, "mark_dump"), "waiting for the dump marker");
        step(&h, PairOp::DumpMarker);
        assert!(has(&h, "load_dump") && !has(&h, "resume_apply"), "no disk loaded yet");
        for d in &mut h.record.lock().unwrap().dump.as_mut().unwrap().disks {
            d.state = DumpLoadState::Loaded;
        }
        assert!(has(&h, "load_dump") && has(&h, "resume_apply"));
        h.runtime.lock().unwrap().dump_load = Some((1, std::sync::Arc::new(LoadProgress::default())));
        assert!(!has(&h, "load_dump") && !has(&h, "resume_apply"), "a disk is being loaded");
        for a in h.status().allowed_actions {
            assert!(drpair_types::ACTIONS.contains(&a.as_str()), "{a} is not in ACTIONS");
        }
    }

    #[test]
    fn actions_of_the_checks() {
        use crate::standby::pair::results::VerifyRecord;
        let h = PairHandle::new(record(5), None, 0);
        assert!(!has(&h, "drill") && !has(&h, "verify"), "no point yet");
        assert!(!has(&h, "verify_source"), "the agent is not connected");
        h.runtime.lock().unwrap().session = Some(session());
        assert!(has(&h, "verify_source"));
        h.runtime.lock().unwrap().points = 2;
        assert!(has(&h, "drill") && has(&h, "verify"));
        let running = VerifyRecord::running(false, None, 0);
        h.runtime.lock().unwrap().verify = Some(std::sync::Arc::new(std::sync::Mutex::new(running)));
        assert!(!has(&h, "verify") && has(&h, "drill"), "a verification runs");
        step(&h, PairOp::Pause);
        assert!(!has(&h, "verify_source"), "nothing is shipped while paused");
        for a in h.status().allowed_actions {
            assert!(drpair_types::ACTIONS.contains(&a.as_str()), "{a} is not in ACTIONS");
        }
    }
}
