use super::*;
use PairState as S;

/// A lifecycle in `state` with the facts that state implies.
fn at(state: PairState, connected: bool) -> Lifecycle {
    let has_baseline = !matches!(state, S::Initiating | S::InitialSync);
    Lifecycle {
        state,
        stop_reason: (state == S::Stopped).then_some(StopReason::Normal),
        has_baseline,
        started: state != S::Initiating,
        restarting: false,
        connected: connected && state != S::Disconnected,
        verifying_dump: false,
        config_changed: state == S::ConfigurationChanged,
    }
}

const OPS: [PairOp; 12] = [
    PairOp::StandbyStarted,
    PairOp::AgentConnected,
    PairOp::AgentDisconnected,
    PairOp::PassStarted { reconcile: true },
    PairOp::PointCommitted,
    PairOp::Start,
    PairOp::Resume,
    PairOp::Pause,
    PairOp::Stop(StopReason::StoppedAtPoint),
    PairOp::Restart,
    PairOp::Replay,
    PairOp::PassStarted { reconcile: false },
];

/// Every state × op, for a connected agent: the state after, or `None` when refused.
#[test]
fn state_by_op_table() {
    use PairOp as O;
    // Columns in the order of OPS.
    #[rustfmt::skip]
    let table: [(PairState, [Option<PairState>; 12]); 14] = [
        //                StandbyStarted      AgentConnected        AgentDisconnected    PassStarted(rec)      PointCommitted        Start                 Resume                 Pause             Stop                Restart               Replay                PassStarted
        (S::Initiating,  [Some(S::Initiating), Some(S::Initiating), Some(S::Initiating), Some(S::Initiating), Some(S::Initiating), Some(S::InitialSync), None,                  None,             None,               None,                 None,                 Some(S::Initiating)]),
        (S::InitialSync, [Some(S::Disconnected), Some(S::InitialSync), Some(S::Disconnected), Some(S::InitialSync), Some(S::Replicating), None,           None,                  Some(S::Paused),  Some(S::Stopped),   Some(S::InitialSync), None,                 Some(S::InitialSync)]),
        (S::Replicating, [Some(S::Disconnected), Some(S::Replicating), Some(S::Disconnected), Some(S::Rescanning), Some(S::Replicating), None,           None,                  Some(S::Paused),  Some(S::Stopped),   Some(S::InitialSync), Some(S::Replicating), Some(S::Replicating)]),
        (S::Rescanning,  [Some(S::Disconnected), Some(S::Replicating), Some(S::Disconnected), Some(S::Rescanning), Some(S::Replicating), None,           None,                  Some(S::Paused),  Some(S::Stopped),   Some(S::InitialSync), Some(S::Replicating), Some(S::Replicating)]),
        (S::Disconnected,[Some(S::Disconnected), Some(S::Replicating), Some(S::Disconnected), Some(S::Disconnected), Some(S::Disconnected), None,         None,                  Some(S::Paused),  Some(S::Stopped),   Some(S::Disconnected), Some(S::Disconnected), Some(S::Disconnected)]),
        (S::Paused,      [Some(S::Paused),     Some(S::Paused),     Some(S::Paused),     Some(S::Paused),     Some(S::Paused),     None,                 Some(S::Replicating),  None,             Some(S::Stopped),   Some(S::InitialSync), Some(S::Replicating), Some(S::Paused)]),
        (S::Stopped,     [Some(S::Stopped),    Some(S::Stopped),    Some(S::Stopped),    Some(S::Stopped),    Some(S::Stopped),    None,                 Some(S::Replicating),  None,             None,               Some(S::InitialSync), Some(S::Replicating), Some(S::Stopped)]),
        (S::Suspended, [Some(S::Suspended), Some(S::Suspended), Some(S::Suspended), Some(S::Suspended), Some(S::Suspended), None, Some(S::Replicating), None, None, Some(S::InitialSync), None, Some(S::Suspended)]),
        (S::AwaitingResyncMarker, [Some(S::AwaitingResyncMarker), Some(S::AwaitingResyncMarker), Some(S::AwaitingResyncMarker), Some(S::AwaitingResyncMarker), Some(S::AwaitingResyncMarker), None, Some(S::Replicating), None, None, Some(S::InitialSync), None, Some(S::AwaitingResyncMarker)]),
        (S::AwaitingDumpMarker, [Some(S::AwaitingDumpMarker), Some(S::AwaitingDumpMarker), Some(S::AwaitingDumpMarker), Some(S::AwaitingDumpMarker), Some(S::AwaitingDumpMarker), None, Some(S::Replicating), None, None, Some(S::InitialSync), None, Some(S::AwaitingDumpMarker)]),
        (S::ApplySuspended, [Some(S::ApplySuspended), Some(S::ApplySuspended), Some(S::ApplySuspended), Some(S::ApplySuspended), Some(S::ApplySuspended), None, Some(S::Replicating), None, None, Some(S::InitialSync), None, Some(S::ApplySuspended)]),
        (S::FailedOver, [Some(S::FailedOver), Some(S::FailedOver), Some(S::FailedOver), Some(S::FailedOver), Some(S::FailedOver), None, None, None, None, None, None, Some(S::FailedOver)]),
        (S::FailingBack, [Some(S::FailingBack), Some(S::FailingBack), Some(S::FailingBack), Some(S::FailingBack), Some(S::FailingBack), None, None, None, None, None, None, Some(S::FailingBack)]),
        (S::ConfigurationChanged, [Some(S::ConfigurationChanged), Some(S::ConfigurationChanged), Some(S::ConfigurationChanged), Some(S::ConfigurationChanged), Some(S::ConfigurationChanged), None, None, Some(S::Paused), Some(S::Stopped), Some(S::InitialSync), None, Some(S::ConfigurationChanged)]),
    ];
    assert_eq!(table.len(), PairState::ALL.len());
    for (state, row) in table {
        let from = at(state, true);
        for (op, want) in OPS.iter().zip(row) {
            let got = from.apply(*op);
            match (want, &got) {
                (Some(w), Ok(n)) => {
                    assert_eq!(n.state, w, "{state:?} × {op:?}");
                    assert_eq!(n.stop_reason.is_some(), n.state == S::Stopped, "{state:?} × {op:?}");
                }
                (None, Err(r)) => {
                    assert_eq!(r.state, state);
                    assert!(r.message.contains(state.label()), "{}", r.message);
                    assert!(r.message.contains(op.verb()), "{}", r.message);
                }
                _ => panic!("{state:?} × {op:?}: want {want:?}, got {got:?}"),
            }
            // Agent events never fail.
            if matches!(
                op,
                O::StandbyStarted
                    | O::AgentConnected
                    | O::AgentDisconnected
                    | O::PassStarted { .. }
                    | O::PointCommitted
            ) {
                assert!(got.is_ok());
            }
        }
    }
}

#[test]
fn a_pair_runs_from_registration_to_replicating() {
    let mut l = Lifecycle::new();
    assert!(l.holds() && !l.ready_for_failover());
    l = l.apply(PairOp::AgentConnected).unwrap();
    assert_eq!(l.state, S::Initiating, "not started: held even when connected");
    l = l.apply(PairOp::Start).unwrap();
    assert_eq!((l.state, l.holds(), l.ready_for_failover()), (S::InitialSync, false, false));
    l = l.apply(PairOp::PointCommitted).unwrap();
    assert_eq!((l.state, l.ready_for_failover()), (S::Replicating, true));
    assert!(l.apply(PairOp::Start).unwrap_err().message.contains("--type resume"));
}

#[test]
fn restart_is_not_ready_until_the_new_baseline() {
    let l = at(S::Replicating, true).apply(PairOp::Restart).unwrap();
    assert_eq!((l.state, l.restarting, l.has_baseline, l.ready_for_failover()), (S::InitialSync, true, false, false));
    // Paused during the restart, then disconnected and back: still held, still not ready.
    let p = l.apply(PairOp::Pause).unwrap().apply(PairOp::AgentDisconnected).unwrap();
    assert_eq!((p.state, p.ready_for_failover()), (S::Paused, false));
    let r = p.apply(PairOp::Resume).unwrap();
    assert_eq!(r.state, S::Disconnected);
    let r = r.apply(PairOp::AgentConnected).unwrap();
    assert_eq!(r.state, S::InitialSync);
    let done = r.apply(PairOp::PointCommitted).unwrap();
    assert_eq!((done.state, done.restarting, done.ready_for_failover()), (S::Replicating, false, true));
}

#[test]
fn paused_and_stopped_survive_a_standby_restart() {
    for l in [at(S::Paused, true), at(S::Stopped, true)] {
        let json = serde_json::to_string(&l).unwrap();
        let back: Lifecycle = serde_json::from_str(&json).unwrap();
        let after = back.apply(PairOp::StandbyStarted).unwrap();
        assert_eq!(after.state, l.state);
        assert_eq!(after.stop_reason, l.stop_reason);
        assert!(!after.connected && after.holds());
    }
    let r = at(S::Replicating, true).apply(PairOp::StandbyStarted).unwrap();
    assert_eq!((r.state, r.ready_for_failover()), (S::Disconnected, true));
}

#[test]
fn stop_reason_is_kept_until_resumed() {
    let s = at(S::Replicating, true).apply(PairOp::Stop(StopReason::StoppedAtCommitTime)).unwrap();
    assert_eq!(s.stop_reason, Some(StopReason::StoppedAtCommitTime));
    assert_eq!(s.apply(PairOp::PointCommitted).unwrap().stop_reason, Some(StopReason::StoppedAtCommitTime));
    let r = s.apply(PairOp::Resume).unwrap();
    assert_eq!((r.state, r.stop_reason), (S::Replicating, None));
}

#[test]
fn refusals_change_nothing() {
    for state in PairState::ALL {
        let l = at(state, true);
        for op in OPS {
            if l.apply(op).is_err() {
                assert_eq!(l, at(state, true));
            }
        }
    }
}

const DUMP_OPS: [PairOp; 5] =
    [PairOp::Suspend, PairOp::SkipToResyncMarker, PairOp::ResyncMarker, PairOp::DumpMarker, PairOp::ResumeApply];

/// The dump workflow's operations from every state (connected agent, with a baseline except
/// in Initiating and InitialSync).
#[test]
fn dump_workflow_table() {
    #[rustfmt::skip]
    let table: [(PairState, [Option<PairState>; 5]); 14] = [
        //                          Suspend             SkipToResyncMarker            ResyncMarker                 DumpMarker               ResumeApply
        (S::Initiating,           [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::InitialSync,          [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::Replicating,          [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::Rescanning,           [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::Disconnected,         [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::Paused,               [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::Stopped,              [Some(S::Suspended), None,                         None,                        None,                    None]),
        (S::Suspended,            [None,               Some(S::AwaitingResyncMarker), None,                       None,                    None]),
        (S::AwaitingResyncMarker, [None,               None,                         Some(S::AwaitingDumpMarker), None,                    None]),
        (S::AwaitingDumpMarker,   [None,               None,                         None,                        Some(S::ApplySuspended), None]),
        (S::ApplySuspended,       [None,               None,                         None,                        None,                    Some(S::Rescanning)]),
        (S::FailedOver,           [None,               None,                         None,                        None,                    None]),
        (S::FailingBack,          [None,               None,                         None,                        None,                    None]),
        (S::ConfigurationChanged, [None,               None,                         None,                        None,                    None]),
    ];
    assert_eq!(table.len(), PairState::ALL.len());
    for (state, row) in table {
        let from = at(state, true);
        for (op, want) in DUMP_OPS.iter().zip(row) {
            match (want, from.apply(*op)) {
                (Some(w), Ok(n)) => {
                    assert_eq!(n.state, w, "{state:?} × {op:?}");
                    assert_eq!(n.stop_reason, None, "{state:?} × {op:?}");
                    assert_eq!(n.holds(), w.in_dump_workflow(), "{state:?} × {op:?}");
                }
                (None, Err(r)) => {
                    assert_eq!(r.state, state);
                    assert!(r.message.contains(state.label()) && r.message.contains(op.verb()), "{}", r.message);
                }
                (w, got) => panic!("{state:?} × {op:?}: want {w:?}, got {got:?}"),
            }
        }
    }
}

#[test]
fn a_new_pair_is_seeded_from_a_dump() {
    // Never started, no baseline: the dump's point becomes the baseline.
    let mut l = at(S::Initiating, true);
    for op in [PairOp::Suspend, PairOp::SkipToResyncMarker, PairOp::ResyncMarker, PairOp::DumpMarker] {
        l = l.apply(op).unwrap();
        assert!(l.holds() && !l.ready_for_failover() || l.has_baseline, "{op:?}");
    }
    assert_eq!(l.state, S::ApplySuspended);
    assert!(l.apply(PairOp::ResumeApply).unwrap_err().message.contains("no dump has been loaded"));
    l = l.apply(PairOp::PointCommitted).unwrap();
    assert_eq!(l.state, S::ApplySuspended, "the dump's point does not end the hold");
    l = l.apply(PairOp::ResumeApply).unwrap();
    assert_eq!((l.state, l.started, l.ready_for_failover()), (S::Rescanning, true, true));
    // Not declared replicating before the pass comparing the dump with the source commits.
    l = l.apply(PairOp::PassStarted { reconcile: false }).unwrap();
    assert_eq!(l.state, S::Rescanning);
    l = l.apply(PairOp::AgentDisconnected).unwrap().apply(PairOp::AgentConnected).unwrap();
    assert_eq!(l.state, S::Rescanning);
    l = l.apply(PairOp::PointCommitted).unwrap();
    assert_eq!(l.state, S::Replicating);
}

#[test]
fn a_dump_step_holds_across_reconnects_and_a_restart_leaves_it() {
    let l = at(S::Replicating, true).apply(PairOp::Suspend).unwrap();
    let l = l.apply(PairOp::AgentDisconnected).unwrap().apply(PairOp::StandbyStarted).unwrap();
    assert_eq!(l.state, S::Suspended);
    let l = l.apply(PairOp::AgentConnected).unwrap();
    assert_eq!(l.state, S::Suspended);
    let r = l.apply(PairOp::Restart).unwrap();
    assert_eq!((r.state, r.restarting), (S::InitialSync, true));
    assert!(r.apply(PairOp::Suspend).is_err(), "no dump during a restart's baseline");
    let p = at(S::Paused, true).apply(PairOp::Suspend).unwrap();
    assert!(p.apply(PairOp::Pause).is_err() && p.apply(PairOp::Stop(StopReason::Normal)).is_err());
}

const FAILOVER_OPS: [PairOp; 4] =
    [PairOp::Failover, PairOp::Failback, PairOp::FailbackEnded { done: true }, PairOp::FailbackEnded { done: false }];

/// Failover and failback from every state (connected agent, with a baseline except in
/// Initiating and InitialSync).
#[test]
fn failover_table() {
    #[rustfmt::skip]
    let table: [(PairState, [Option<PairState>; 4]); 14] = [
        //                          Failover             Failback              Ended(done)           Ended(failed)
        (S::Initiating,           [None,                None,                 None,                 None]),
        (S::InitialSync,          [None,                None,                 None,                 None]),
        (S::Replicating,          [Some(S::FailedOver), None,                 None,                 None]),
        (S::Rescanning,           [Some(S::FailedOver), None,                 None,                 None]),
        (S::Disconnected,         [Some(S::FailedOver), None,                 None,                 None]),
        (S::Paused,               [Some(S::FailedOver), None,                 None,                 None]),
        (S::Stopped,              [Some(S::FailedOver), None,                 None,                 None]),
        (S::Suspended,            [None,                None,                 None,                 None]),
        (S::AwaitingResyncMarker, [None,                None,                 None,                 None]),
        (S::AwaitingDumpMarker,   [None,                None,                 None,                 None]),
        (S::ApplySuspended,       [None,                None,                 None,                 None]),
        (S::FailedOver,           [Some(S::FailedOver), Some(S::FailingBack), None,                 None]),
        (S::FailingBack,          [None,                None,                 Some(S::Replicating), Some(S::FailedOver)]),
        (S::ConfigurationChanged, [Some(S::FailedOver), None,                 None,                 None]),
    ];
    assert_eq!(table.len(), PairState::ALL.len());
    for (state, row) in table {
        let from = at(state, true);
        for (op, want) in FAILOVER_OPS.iter().zip(row) {
            match (want, from.apply(*op)) {
                (Some(w), Ok(n)) => {
                    assert_eq!(n.state, w, "{state:?} × {op:?}");
                    assert_eq!(n.stop_reason, None, "{state:?} × {op:?}");
                    assert_eq!(n.holds(), w == S::FailedOver || w == S::FailingBack, "{state:?} × {op:?}");
                }
                (None, Err(r)) => {
                    assert_eq!(r.state, state);
                    assert!(r.message.contains(state.label()) && r.message.contains(op.verb()), "{}", r.message);
                }
                (w, got) => panic!("{state:?} × {op:?}: want {w:?}, got {got:?}"),
            }
        }
    }
}

#[test]
fn failover_is_refused_while_a_restart_copies_and_held_until_failback() {
    let restarting = at(S::Replicating, true).apply(PairOp::Restart).unwrap();
    let e = restarting.apply(PairOp::Failover).unwrap_err();
    assert!(e.message.contains("restart"), "{}", e.message);
    let f = at(S::Replicating, true).apply(PairOp::Failover).unwrap();
    // Agent events keep it failed over; operator actions are refused with the way out.
    let f = f.apply(PairOp::AgentDisconnected).unwrap().apply(PairOp::AgentConnected).unwrap();
    assert_eq!(f.state, S::FailedOver);
    for op in [PairOp::Resume, PairOp::Restart, PairOp::Replay, PairOp::Suspend, PairOp::Pause] {
        assert!(f.apply(op).unwrap_err().message.contains("failback"), "{op:?}");
    }
    // A failback's points do not end it; only its end does.
    let b = f.apply(PairOp::Failback).unwrap().apply(PairOp::PointCommitted).unwrap();
    assert_eq!(b.state, S::FailingBack);
    assert_eq!(b.apply(PairOp::FailbackEnded { done: true }).unwrap().state, S::Replicating);
}

/// Other disks hold the pair whatever it was doing, keep it held through the agent's comings
/// and goings, and let go only by a restart, an adoption of growth, or the old disks again.
#[test]
fn a_configuration_change_holds_until_taken_or_restored() {
    let l = at(S::Replicating, true).apply(PairOp::ConfigChanged).unwrap();
    assert_eq!(l.state, S::ConfigurationChanged);
    assert!(l.holds() && l.ready_for_failover());
    let l = l.apply(PairOp::AgentDisconnected).unwrap().apply(PairOp::StandbyStarted).unwrap();
    assert_eq!(l.state, S::ConfigurationChanged, "still held while the agent is away");
    for op in [PairOp::Resume, PairOp::Replay, PairOp::Suspend] {
        let e = l.apply(op).unwrap_err();
        assert!(e.message.contains("adopt-growth"), "{op:?}: {}", e.message);
    }
    // Paused meanwhile: resuming returns to the held state, not to shipping.
    let p = l.apply(PairOp::Pause).unwrap();
    assert_eq!(p.apply(PairOp::Resume).unwrap().state, S::ConfigurationChanged);
    // A failover from a kept point is allowed.
    assert_eq!(l.apply(PairOp::Failover).unwrap().state, S::FailedOver);
    let connected = l.apply(PairOp::AgentConnected).unwrap();
    let grown = connected.apply(PairOp::AdoptGrowth).unwrap();
    assert_eq!((grown.state, grown.config_changed, grown.has_baseline), (S::Replicating, false, true));
    assert!(grown.apply(PairOp::AdoptGrowth).unwrap_err().message.contains("nothing to adopt"));
    let restarted = connected.apply(PairOp::Restart).unwrap();
    assert_eq!((restarted.state, restarted.config_changed), (S::InitialSync, false));
    let restored = connected.apply(PairOp::ConfigRestored).unwrap();
    assert_eq!(restored.state, S::Replicating);
    // Stopped when the change came: still stopped, and resuming meets the change.
    let stopped = at(S::Stopped, true).apply(PairOp::ConfigChanged).unwrap();
    assert_eq!(stopped.state, S::Stopped);
    assert_eq!(stopped.apply(PairOp::Resume).unwrap().state, S::ConfigurationChanged);
}
