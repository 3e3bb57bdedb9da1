//! The pair record's on-disk format: a record written by the format as it was when this test
//! was added (`testdata/pair_record.json`, kept as it was written) must still decode to the same record, and encode
//! back to the same bytes.

use super::record::{DiskRecord, PairRecord, ReconfiguredRecord, RestartRecord, Rewound, StopAtRecord};
use crate::standby::dump::{DiskLoadRecord, DumpRecord, LoadStats};
use drpair_pair::Lifecycle;
use drpair_types::{
    ChunkSize, Consistency, DiskGeometry, DumpEvent, DumpLoadState, DumpMarker, DumpStep, DumpVerification, PairId,
    PairState,
};
use serde_json::json;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/standby/pair/testdata/pair_record.json");

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("fixture value")
}

/// A record with every optional part present.
pub(crate) fn fully_populated() -> PairRecord {
    let lifecycle = Lifecycle {
        state: PairState::Replicating,
        stop_reason: None,
        has_baseline: true,
        started: true,
        restarting: false,
        connected: true,
        verifying_dump: true,
        config_changed: false,
    };
    let disks = vec![
        DiskRecord {
            path: "/dev/vdb".into(),
            geometry: DiskGeometry::new(1 << 30, ChunkSize::DEFAULT).expect("geometry"),
        },
        DiskRecord {
            path: "/dev/vdc".into(),
            geometry: DiskGeometry::new(8 << 20, ChunkSize::new(4096).expect("chunk size")).expect("geometry"),
        },
    ];
    let dump = DumpRecord {
        step: DumpStep::Verifying,
        suspended_unix_ms: 1_767_000_000_000,
        checkpoint_epoch: 40,
        purged_versions: 12,
        marker: Some(DumpMarker {
            epoch: 41,
            time: "2025-12-29T09:20:00.000Z".into(),
            time_unix_ms: 1_767_000_000_000,
            at: "now".into(),
            consistency: Consistency::Fuzzy,
            quiesce: None,
            exec: None,
        }),
        resync_marker_unix_ms: Some(1_767_000_100_000),
        dump_marker_unix_ms: Some(1_767_000_100_500),
        disks: vec![
            DiskLoadRecord {
                state: DumpLoadState::Loaded,
                image: Some("/srv/dumps/vdb.qcow2".into()),
                format: Some("qcow2".into()),
                stats: Some(LoadStats {
                    chunks: 16384,
                    zero: 100,
                    entries: 16000,
                    same_as_base: 284,
                    dedup: 7,
                    stored_bytes: 900_000_000,
                    raw_bytes: 1 << 30,
                    format: "qcow2".into(),
                    millis: 65_000,
                }),
                loaded_unix_ms: Some(1_767_000_200_000),
                error: None,
            },
            DiskLoadRecord {
                state: DumpLoadState::Failed,
                image: Some("/srv/dumps/vdc.raw".into()),
                format: None,
                stats: None,
                loaded_unix_ms: None,
                error: Some("image is 4096 bytes, the disk 8388608".into()),
            },
        ],
        point: Some(41),
        verification: Some(DumpVerification {
            epoch: 42,
            chunks_compared: 18432,
            chunks_shipped: 30,
            mismatched_chunks: 2,
            mismatched_sample: vec![[0, 17], [1, 3]],
            verified_at: "2025-12-29T09:40:00.000Z".into(),
        }),
        events: vec![DumpEvent { time: "2025-12-29T09:20:00.000Z".into(), message: "suspended".into() }],
    };
    PairRecord {
        pair_id: PairId::new("web-01").expect("id"),
        pair_no: 3,
        lineage: "6f1c1a3e-2b7d-4d2f-9a57-0e8d1c2b3a4f".parse().expect("uuid"),
        disks,
        committed: 42,
        registered_unix_ms: 1_766_900_000_000,
        source_host: "web-01.example".into(),
        source_address: "192.0.2.10".into(),
        tracker: "tracefs".into(),
        lifecycle,
        epoch_floor: 7,
        restart: Some(RestartRecord {
            requested_unix_ms: 1_766_950_000_000,
            full_copy: true,
            keep_points: true,
            kept_points: 5,
        }),
        rewound: Some(Rewound { to: 30, from: 35 }),
        stop_at: Some(StopAtRecord {
            point: Some(50),
            time_unix_ms: Some(1_767_100_000_000),
            server_time_unix_ms: Some(1_767_100_500_000),
            after_full_load: Some(drpair_types::StopReason::StoppedAfterFullLoad),
        }),
        agent_history_from: Some(20),
        retire_below: Some(8),
        dump: Some(dump),
        source_verify: Some(from(json!({
            "state": "done",
            "requested_unix_ms": 1_767_000_300_000u64,
            "finished_unix_ms": 1_767_000_400_000u64,
            "against_point": 42,
            "progress_percent": 100.0,
            "chunks_compared": 18432,
            "mismatched_chunks": 1,
            "shipped_chunks": 4,
            "sample": [{"disk": 0, "chunk": 99}],
            "repair_point": 43,
            "message": "1 chunk differed and was repaired",
        }))),
        retention: Some(from(json!({"grid": "1x10m(keep=all) | 24x1h | 7x1d", "keep_last": 3}))),
        last_prune: Some(from(json!({
            "pair_id": "web-01",
            "dry_run": false,
            "scheduled": true,
            "started_unix_ms": 1_767_000_500_000u64,
            "finished_unix_ms": 1_767_000_501_000u64,
            "points_before": 10,
            "points_kept": 9,
            "removed": [{"id": 9, "time": "2025-12-28T09:00:00.000Z", "reason": "expired"}],
            "kept": [{"id": 42, "time": "2025-12-29T09:20:00.000Z", "reason": "newest"}],
            "versions_deleted": 77,
            "reclaim": {"candidates_checked": 80, "chunks_deleted": 60, "bytes_freed": 3_932_160, "seconds": 0.25},
        }))),
        verify: Some(from(json!({
            "state": "done",
            "scheduled": false,
            "point": 42,
            "requested_unix_ms": 1_767_000_600_000u64,
            "finished_unix_ms": 1_767_000_660_000u64,
            "progress_percent": 100.0,
            "chunks_checked": 18000,
            "bytes_checked": 700_000_000u64,
            "points_verified": 0,
            "points_damaged": 1,
            "damaged": [{"disk": 0, "chunk": 5, "hash": "ab".repeat(32), "reason": "missing", "points": [41, 42]}],
            "message": "1 damaged chunk",
        }))),
        failover: Some(from(json!({
            "pair_id": "web-01",
            "state": "done",
            "point": 42,
            "epoch": 42,
            "point_time": "2025-12-29T09:30:00.000Z",
            "targets": ["/dev/sdx", "/dev/sdy"],
            "bytes_total": 1_082_130_432u64,
            "bytes_written": 1_082_130_432u64,
            "progress_percent": 100.0,
            "started_at": "2025-12-29T10:00:00.000Z",
            "finished_at": "2025-12-29T10:05:00.000Z",
            "elapsed_seconds": 300.5,
            "throughput_bytes_per_sec": 3_600_000.0,
            "operator": "alice",
            "message": "materialised",
        }))),
        failback: Some(from(json!({
            "pair_id": "web-01",
            "state": "failed",
            "phase": "writing",
            "direction": "to-original",
            "from": ["/dev/sdx", "/dev/sdy"],
            "failover_point": 42,
            "original_point": 44,
            "original_changed_chunks": 3,
            "recovered_changed_chunks": 9,
            "differing_chunks": 10,
            "chunks_compared": 18432,
            "chunks_total": 18432,
            "chunks_moved": 4,
            "bytes_moved": 262_144,
            "progress_percent": 40.0,
            "check_point": null,
            "check_mismatched_chunks": null,
            "started_at": "2025-12-29T11:00:00.000Z",
            "finished_at": "2025-12-29T11:02:00.000Z",
            "operator": "bob",
            "message": "the agent disconnected",
        }))),
        reconfigured: Some(ReconfiguredRecord {
            detected_unix_ms: 1_767_200_000_000,
            offered: vec![DiskRecord {
                path: "/dev/vdb".into(),
                geometry: DiskGeometry::new(2 << 30, ChunkSize::DEFAULT).expect("geometry"),
            }],
        }),
        dates: super::dates::PairDates {
            fresh_start_unix_ms: Some(1_766_900_000_000),
            start_unix_ms: Some(1_766_950_000_000),
            stop_unix_ms: None,
            last_stop_unix_ms: Some(1_766_940_000_000),
            full_load_start_unix_ms: Some(1_766_950_000_000),
            full_load_finish_unix_ms: None,
            update_unix_ms: Some(1_767_200_000_000),
        },
        geometry_eras: vec![drpair_store::GeometryEra {
            through: 6,
            disks: vec![DiskGeometry::new(512 << 20, ChunkSize::DEFAULT).expect("geometry")],
        }],
        bandwidth: Some("Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited".into()),
        // Added after the fixture was written: absent there, so None.
        rpo_target_secs: None,
        rpo_error_secs: None,
        rpo_target_off: false,
        last_successes: Default::default(),
        protected_by: None,
        recovered_from: None,
    }
}

/// Writes the fixture again (run by hand only when the format changes on purpose, with a
/// migration for the records already on disk).
#[test]
#[ignore = "rewrites testdata/pair_record.json"]
fn write_fixture() {
    let text = serde_json::to_string_pretty(&fully_populated()).expect("encode") + "\n";
    std::fs::write(FIXTURE, text).expect("write fixture");
}

/// A record written by the format of the release that added this test decodes with every
/// field in place, and encodes back to the same JSON.
#[test]
fn a_record_written_by_an_earlier_release_decodes_unchanged() {
    let text = std::fs::read_to_string(FIXTURE).expect("read fixture");
    let rec: PairRecord = serde_json::from_str(&text).expect("the stored format decodes");
    assert_eq!(rec, fully_populated());
    assert_eq!((rec.pair_id.as_str(), rec.pair_no, rec.committed), ("web-01", 3, 42));
    assert_eq!(rec.lineage.to_string(), "6f1c1a3e-2b7d-4d2f-9a57-0e8d1c2b3a4f");
    assert_eq!(rec.disks.len(), 2);
    assert_eq!((rec.disks[1].path.as_str(), rec.disks[1].geometry.size_bytes), ("/dev/vdc", 8 << 20));
    assert_eq!(u64::from(rec.disks[1].geometry.chunk_size), 4096);
    assert_eq!(rec.lifecycle.state, PairState::Replicating);
    assert!(rec.lifecycle.verifying_dump);
    assert_eq!(rec.epoch_floor, 7);
    assert_eq!(rec.restart.as_ref().map(|r| (r.full_copy, r.kept_points)), Some((true, 5)));
    assert_eq!(rec.rewound, Some(Rewound { to: 30, from: 35 }));
    assert_eq!(rec.stop_at.as_ref().and_then(|s| s.point), Some(50));
    assert_eq!((rec.agent_history_from, rec.retire_below), (Some(20), Some(8)));
    let dump = rec.dump.as_ref().expect("dump");
    assert_eq!((dump.step, dump.point, dump.disks.len()), (DumpStep::Verifying, Some(41), 2));
    assert_eq!(dump.disks[0].stats.as_ref().map(|s| (s.entries, s.format.as_str())), Some((16000, "qcow2")));
    assert_eq!(dump.verification.as_ref().map(|v| v.mismatched_sample.clone()), Some(vec![[0, 17], [1, 3]]));
    assert_eq!(rec.source_verify.as_ref().and_then(|v| v.repair_point), Some(43));
    assert_eq!(rec.retention.as_ref().map(|p| p.keep_last), Some(3));
    assert_eq!(rec.last_prune.as_ref().map(|p| p.versions_deleted), Some(77));
    assert_eq!(rec.verify.as_ref().map(|v| v.points_damaged), Some(1));
    assert_eq!(rec.failover.as_ref().map(|f| f.targets.len()), Some(2));
    assert_eq!(rec.failback.as_ref().and_then(|f| f.original_point), Some(44));
    let again = serde_json::to_string_pretty(&rec).expect("encode") + "\n";
    assert_eq!(again, text, "the record encodes to the bytes of the fixture");
}

/// A record of the oldest format (before the optional parts existed) still decodes, each
/// missing part taking its default.
#[test]
fn a_record_without_the_optional_parts_decodes_with_defaults() {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("read fixture")).expect("fixture is JSON");
    let obj = v.as_object_mut().expect("object");
    for k in [
        "lifecycle",
        "epoch_floor",
        "restart",
        "rewound",
        "stop_at",
        "agent_history_from",
        "retire_below",
        "dump",
        "source_verify",
        "retention",
        "last_prune",
        "verify",
        "failover",
        "failback",
        "reconfigured",
        "geometry_eras",
        "dates",
        "bandwidth",
    ] {
        assert!(obj.remove(k).is_some(), "fixture has {k}");
    }
    let rec: PairRecord = serde_json::from_value(v).expect("decodes");
    assert_eq!(rec.lifecycle, Lifecycle::default());
    assert_eq!((rec.epoch_floor, rec.committed), (0, 42));
    assert!(rec.dump.is_none() && rec.failover.is_none() && rec.retention.is_none());
}

/// The fixture as JSON.
fn fixture_value() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(FIXTURE).expect("read fixture")).expect("fixture is JSON")
}

/// The features' results as the JSON of the API's types, as the previous format wrote them
/// (when the record embedded those types): each part of the fixture read as the API's type,
/// given a task (the fixture predates tasks) and written again by it.
fn written_by_the_api_types() -> serde_json::Value {
    use drpair_types::{FailbackStatus, FailoverStatus, PruneReport, SourceVerifyStatus, TaskId, VerifyStatus};
    fn rewrite<T: serde::Serialize + serde::de::DeserializeOwned>(
        v: &mut serde_json::Value,
        key: &str,
        f: impl FnOnce(&mut T),
    ) {
        let mut t: T = serde_json::from_value(v[key].clone()).expect("the API's type reads the fixture");
        f(&mut t);
        v[key] = serde_json::to_value(&t).expect("encode");
    }
    let mut v = fixture_value();
    rewrite(&mut v, "source_verify", |s: &mut SourceVerifyStatus| s.task = Some(TaskId(11)));
    rewrite(&mut v, "last_prune", |s: &mut PruneReport| s.task = Some(TaskId(12)));
    rewrite(&mut v, "verify", |s: &mut VerifyStatus| s.task = Some(TaskId(13)));
    rewrite(&mut v, "failover", |s: &mut FailoverStatus| s.task = Some(TaskId(14)));
    rewrite(&mut v, "failback", |s: &mut FailbackStatus| s.task = Some(TaskId(15)));
    v
}

/// `view` shows every field `record` holds, with the same value (it may show more).
fn shows_all_of(view: &serde_json::Value, record: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (view, record) {
        (Value::Object(v), Value::Object(r)) => r.iter().all(|(k, rv)| v.get(k).is_some_and(|vv| shows_all_of(vv, rv))),
        (Value::Array(v), Value::Array(r)) => v.len() == r.len() && v.iter().zip(r).all(|(a, b)| shows_all_of(a, b)),
        _ => view == record,
    }
}

/// A record whose features' results were written by the previous format (the API's types,
/// tasks included) decodes into the record's own types and encodes back to the same JSON.
#[test]
fn a_record_written_by_the_previous_format_round_trips() {
    use drpair_types::TaskId;
    let old = written_by_the_api_types();
    let rec: PairRecord = serde_json::from_value(old.clone()).expect("the previous format decodes");
    let tasks = (
        rec.source_verify.as_ref().and_then(|v| v.task),
        rec.last_prune.as_ref().and_then(|p| p.task),
        rec.verify.as_ref().and_then(|v| v.task),
        rec.failover.as_ref().and_then(|f| f.task),
        rec.failback.as_ref().and_then(|f| f.task),
    );
    assert_eq!(tasks, (Some(TaskId(11)), Some(TaskId(12)), Some(TaskId(13)), Some(TaskId(14)), Some(TaskId(15))));
    assert_eq!(serde_json::to_value(&rec).expect("encode"), old, "encodes back to what the previous format wrote");
    // Without the tasks it is the fixture's record.
    let mut untasked = rec.clone();
    untasked.source_verify.as_mut().expect("source verify").task = None;
    untasked.last_prune.as_mut().expect("prune").task = None;
    untasked.verify.as_mut().expect("verify").task = None;
    untasked.failover.as_mut().expect("failover").task = None;
    untasked.failback.as_mut().expect("failback").task = None;
    assert_eq!(untasked, fully_populated());
}

/// The record's JSON is its own: a record built in code encodes to the fixture's bytes, made
/// by the record's types alone. The views (the API's types) show everything the record holds
/// but the record is not made from them, so a field an API type gains shows in its view and
/// leaves this JSON (and the fixture) as it is.
#[test]
fn the_record_encodes_to_the_fixture_whatever_the_api_shows() {
    let text = std::fs::read_to_string(FIXTURE).expect("read fixture");
    let rec = fully_populated();
    assert_eq!(serde_json::to_string_pretty(&rec).expect("encode") + "\n", text, "the record encodes to the fixture");
    let fixture = fixture_value();
    let views = [
        ("source_verify", serde_json::to_value(rec.source_verify.as_ref().map(|v| v.to_view()))),
        ("last_prune", serde_json::to_value(rec.last_prune.as_ref().map(|v| v.to_view()))),
        ("verify", serde_json::to_value(rec.verify.as_ref().map(|v| v.to_view()))),
        ("failover", serde_json::to_value(rec.failover.as_ref().map(|v| v.to_view()))),
        ("failback", serde_json::to_value(rec.failback.as_ref().map(|v| v.to_view()))),
    ];
    for (key, view) in views {
        let view = view.expect("encode the view");
        assert!(shows_all_of(&view, &fixture[key]), "{key}: the view shows all the record holds: {view}");
    }
}
