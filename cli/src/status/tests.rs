use super::*;
use crate::fake_server::{FakeServer, Reply};
use drpair_types::{DiskInfo, PairState, PairStats, PassInfo};

pub(crate) fn status(state: PairState, progress: f64) -> PairStatus {
    PairStatus {
        pair_id: PairId::new("web-01").unwrap(),
        state,
        state_label: state.label().into(),
        state_explanation: "the first full copy is running".into(),
        ready_for_failover: false,
        lineage: None,
        recovery_checkpoint: None,
        checkpoint: None,
        last_point: None,
        agent: None,
        disks: vec![DiskInfo {
            index: 0,
            path: "/dev/sdb".into(),
            size_bytes: 10 << 30,
            chunk_size: 65536,
            chunk_count: 163_840,
        }],
        stats: PairStats {
            progress_percent: progress,
            eta_seconds: Some(300),
            pass: Some(PassInfo {
                epoch: 1,
                kind: "initial".into(),
                chunks_done: 68_812,
                chunks_total: 163_840,
                reason: None,
            }),
            lag_seconds: 192.0,
            backlog_bytes: 6 << 30,
            bytes_read: 4 << 30,
            ..PairStats::default()
        },
        failure_messages: vec!["refused chunk 17: hash mismatch".into()],
        stop_reason: None,
        stop_reason_alias: None,
        dates: Default::default(),
        configuration_change: None,
        link: Default::default(),
        rpo_state: None,
        last_successes: Default::default(),
        stop_at: None,
        restart: None,
        change_history_from: None,
        registered_at: "2026-05-01T10:00:00Z".into(),
        dump: None,
        source_verify: None,
        retention: None,
        verify: None,
        storage: None,
        failover: None,
        failback: None,
        protected_by: None,
        recovered_from: None,
        health: drpair_types::Health { level: drpair_types::HealthLevel::Ok, reason: String::new() },
        allowed_actions: vec![],
        standby_fingerprint: None,
        insecure_plaintext: false,
    }
}

#[test]
fn text_block_names_what_matters() {
    let mut s = status(PairState::InitialSync, 42.0);
    s.last_point = Some(crate::points::tests::point(7, 1_000_000));
    let text = render_status(&s, 1_060_000);
    assert_lines(
        &text,
        &[
            ("State", "Start Replication (the first full copy is running)"),
            ("Ready for failover", "no (no complete recovery point yet)"),
            ("Last point", "7 at 2026-05-01T10:00:00Z (1m ago), manual, fuzzy"),
            ("Disks", "0  /dev/sdb  10.0 GiB (163840 chunks of 64.0 KiB)"),
            ("Progress", "42% (initial pass, epoch 1: 68812 of 163840 chunks)"),
            ("ETA", "5m"),
            ("Lag", "3m 12s"),
            ("Backlog", "6.0 GiB (0 chunks)"),
            ("Bytes", "read 4.0 GiB, shipped 0 B, on the wire 0 B, stored 0 B"),
            ("Failures", "- refused chunk 17: hash mismatch"),
        ],
    );
}

#[test]
fn text_block_shows_stop_restart_and_link() {
    let mut s = status(PairState::Stopped, 100.0);
    s.stop_reason = Some("STOPPED_AT_POINT".into());
    s.stop_at = Some(StopAt { point: Some(42), time: None });
    s.restart = Some(RestartInfo {
        requested_at: "2026-05-02T08:00:00Z".into(),
        full_copy: true,
        keep_points_until_synced: true,
        kept_points: 3,
    });
    s.change_history_from = Some(30);
    s.stats.chunks_total = 200;
    s.stats.chunks_shipped = 150;
    s.stats.chunks_queued = 7;
    s.stats.bytes_on_wire = 3 << 20;
    s.stats.compression_ratio = 2.345;
    s.stats.throughput_bytes_per_second = 1024.0 * 1024.0;
    s.link = drpair_types::LinkStatus {
        connected: true,
        wire_bytes_per_second: 2.0 * 1048576.0,
        rtt_ms: Some(51.5),
        last_byte_ms_ago: Some(120),
        last_ack_ms_ago: Some(1500),
        bandwidth_limit_bytes_per_second: Some(10 << 20),
        bandwidth_limited_by: Some("pair".into()),
        bandwidth: "Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited".into(),
        connections: 4,
        reconnects: 3,
        connections_failed: 2,
        stalls: 1,
        frames_refused_checksum: 1,
        chunks_refused: 5,
        ..Default::default()
    };
    let text = render_status(&s, 0);
    assert_lines(
        &text,
        &[
            ("State", "Stopped (the first full copy is running)"),
            ("Stop reason", "STOPPED_AT_POINT"),
            ("Stop at", "point 42"),
            (
                "Restart",
                "new baseline requested at 2026-05-02T08:00:00Z, full copy yes, 3 old points kept read-only until it completes",
            ),
            ("Ready for failover", "no (new baseline in progress)"),
            ("Change history from", "epoch 30 (replay from a point at or after it)"),
            ("Pass chunks", "150 of 200 shipped, 7 queued"),
            ("Read rate", "1.0 MiB/s (the agent's reads from its disks)"),
            ("Wire rate", "2.0 MiB/s from the agent, limit 10.0 MiB/s (the pair's)"),
            ("Bandwidth", "Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited"),
            ("Link", "round trip 51.5 ms, last byte 0.1s ago, last heartbeat answer 1.5s ago"),
            ("Link faults", "3 reconnects, 2 failed connections (1 stalled), 1 frames refused for a checksum"),
            ("Bytes", "read 4.0 GiB, shipped 0 B, on the wire 3.0 MiB, stored 0 B"),
            ("Compression ratio", "2.35"),
        ],
    );
    let both = StopAt { point: Some(42), time: Some("2026-05-03T00:00:00Z".into()) };
    assert_eq!(render_stop_at(&both).unwrap(), "point 42 or 2026-05-03T00:00:00Z, whichever comes first");
    assert_eq!(render_stop_at(&StopAt::default()), None);
}

#[test]
fn unset_fields_are_left_out() {
    let text = render_status(&status(PairState::Paused, 10.0), 0);
    for key in ["Stop reason:", "Stop at:", "Restart:", "Change history from:", "Pass chunks:", "Compression", "Spool:"]
    {
        assert!(!text.contains(key), "{key} in\n{text}");
    }
    assert!(text.starts_with("DR pair:              web-01\nState:                Paused ("), "{text}");
}

#[test]
fn maintenance_section() {
    let now = 1_777_629_902_000;
    let mut s = status(PairState::Replicating, 100.0);
    assert!(!render_status(&s, now).contains("Retention"), "nothing reported, no section");
    s.retention = Some(crate::retention::tests::view());
    s.verify = Some(crate::verify::tests::damaged_status());
    s.source_verify = Some(crate::verify_source::tests::mismatched());
    s.storage = Some(drpair_types::StorageSummary {
        computed_unix_ms: 1_777_629_600_000,
        logical_bytes: 20 << 30,
        stored_bytes: 4 << 30,
        unique_stored_bytes: 3 << 30,
        compression_ratio: 2.3149,
        dedup_ratio: 1.5,
        space_saving_ratio: 5.0,
    });
    let text = render_status(&s, now);
    assert!(text.contains("Registered:           2026-05-01T10:00:00Z\n\nRetention:"), "a section:\n{text}");
    assert_lines(
        &text,
        &[
            ("Retention", "1x10m(keep=all) | 60x1m, keep last 5 (set for this pair; pruned every 1h)"),
            ("Last prune", "2026-05-01T10:00:02Z (5m ago), on request: removed 2 of 5 points, kept 3; 3.0 GiB freed"),
            (
                "Verify",
                "DAMAGED at 2026-05-01T10:03:12Z (1m 50s ago): 2 point(s) see damaged or missing chunks: points 12, \
                 13; 10 intact",
            ),
            (
                "Source verify",
                "MISMATCHED at 2026-05-01T10:01:00Z (4m 2s ago): 3 chunk(s) differed from point 41 (disk 0 chunk \
                 17, disk 1 chunk 4, disk 0 chunk 23); repaired in point 42",
            ),
            (
                "Storage",
                "4.0 GiB stored (3.0 GiB unique) for 20.0 GiB of points; compression 2.31×, dedup 1.50×, space \
                 saving 5.00× (computed 5m 2s ago)",
            ),
        ],
    );
    s.retention = None;
    s.verify = None;
    s.source_verify = None;
    let text = render_status(&s, now);
    assert!(text.contains("\n\nStorage:") && !text.contains("Verify:") && !text.contains("Retention:"), "{text}");
}

#[test]
fn failover_and_failback_sections() {
    use drpair_types::{FailbackPhase, JobState};
    let mut s = status(PairState::FailedOver, 100.0);
    assert!(!render_status(&s, 0).contains("Failover:"), "never failed over, no section");
    s.failover = Some(crate::failover::tests::failover_status(JobState::Done, 20 << 30));
    let text = render_status(&s, 0);
    assert!(text.contains("Registered:           2026-05-01T10:00:00Z\n\nFailover:"), "a section:\n{text}");
    assert!(!text.contains("Failback"), "{text}");
    s.failback = Some(crate::failback::tests::failback_status(JobState::Running, FailbackPhase::Writing));
    let text = render_status(&s, 0);
    let indent = " ".repeat(22);
    assert_lines(
        &text,
        &[
            (
                "Failover",
                "done: point 42 (cut 2026-05-01T10:00:00Z) written, 20.0 GiB in 40.0 s, at 2026-05-01T10:05:40Z",
            ),
            ("Failover targets", "disk 0: /dev/vg0/sda"),
            ("Failover started", "2026-05-01T10:05:00Z by alice"),
            ("Failover message", "point 42 written onto 2 target(s)"),
            ("Failback", "running 60% to-original, writing: 305 differing chunk(s), 100 moved"),
            ("Failback from", "/dev/vg0/sda"),
            ("Failback chunks", "original changed 12, recovered changed 300, differing 305; original kept as point 57"),
            ("Failback check", "not checked (yet)"),
        ],
    );
    assert!(text.lines().any(|l| l == format!("{indent}disk 1: /srv/fo/sdb.img")), "{text}");
    assert!(text.contains("\n\nFailback:"), "a section of its own:\n{text}");
    s.failover = Some(crate::failover::tests::failover_status(JobState::Failed, 0));
    let text = render_status(&s, 0);
    let want = format!("{:<22}FAILED: point 42: disk 1: /srv/fo/sdb.img: No space left on device", "Failover:");
    assert!(text.lines().any(|l| l == want) && !text.contains("Failover message"), "{text}");
}

#[test]
fn wait_synced_polls_until_in_sync() {
    let replies = [status(PairState::InitialSync, 50.0), status(PairState::Replicating, 100.0)]
        .iter()
        .map(|s| Reply::json(200, &serde_json::to_string(s).unwrap()))
        .collect();
    let server = FakeServer::start(replies);
    let client = Client::new(&server.url, None).unwrap();
    let pair = PairId::new("web-01").unwrap();
    let args = StatusArgs { pair, watch: false, wait_synced: true, timeout: Some(Duration::from_secs(30)) };
    run(&client, OutputFormat::Json, &args).unwrap();
    let reqs = server.finish();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.path == "/api/v1/pairs/web-01"));
}

#[test]
fn wait_synced_times_out_with_exit_7() {
    let body = serde_json::to_string(&status(PairState::InitialSync, 10.0)).unwrap();
    let server = FakeServer::start(vec![Reply::json(200, &body)]);
    let client = Client::new(&server.url, None).unwrap();
    let pair = PairId::new("web-01").unwrap();
    let args = StatusArgs { pair, watch: false, wait_synced: true, timeout: Some(Duration::ZERO) };
    let err = run(&client, OutputFormat::Text, &args).unwrap_err();
    assert_eq!(err.exit_code(), exit::TIMED_OUT);
    assert!(err.to_string().contains("pair web-01 not in sync after 0s: Start Replication 10%"), "{err}");
    server.finish();
}

/// Asserts that `text` has each `key: value` line of a status block.
pub(crate) fn assert_lines(text: &str, lines: &[(&str, &str)]) {
    for (key, value) in lines {
        let want = format!("{:<22}{value}", format!("{key}:"));
        assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
    }
}

#[test]
fn a_full_spool_is_shown() {
    let mut s = status(PairState::Replicating, 100.0);
    (s.stats.spool_bytes, s.stats.spool_full) = (48 << 20, true);
    let text = render_status(&s, 0);
    assert!(text.contains("Spool:") && text.contains("48.0 MiB read at the cut, waiting for the link; FULL"), "{text}");
}

#[test]
fn last_successes_in_one_line() {
    use drpair_types::{LastSuccess, LastSuccesses};
    let at = |ms: u64, point: Option<u64>| {
        Some(LastSuccess { at: String::new(), at_unix_ms: ms, point, detail: String::new() })
    };
    let l = LastSuccesses { point: at(95_000, Some(12)), drill: at(40_000, Some(9)), ..Default::default() };
    assert_eq!(
        super::last_successes_line(&l, 100_000),
        "point 5s ago (#12) · verify never · source verify never · drill 1m ago (#9) · app-consistent never"
    );
    let mut s = status(PairState::Replicating, 100.0);
    s.last_successes = l;
    let text = super::render_status(&s, 100_000);
    assert!(text.contains("Last successes") && text.contains("point 5s ago (#12)"), "{text}");
}
