//! Fixtures of the dump workflow shared by the tests of `dump` and `status`, and the bodies of
//! `resume` (the workflow's step 4, in `lifecycle.rs`).

use super::*;
use crate::client::Client;
use crate::fake_server::{FakeServer, Reply};
use crate::lifecycle::tests::{body, points_reply};
use crate::lifecycle::{ResumeArgs, resume};
use crate::output::OutputFormat;
use crate::status::tests::status;
use drpair_types::{
    ActionResponse, Consistency, DumpDiskLoad, DumpEvent, DumpLoadState, DumpMarker, PairId, PairState,
};

pub(crate) fn pair() -> PairId {
    PairId::new("web-01").unwrap()
}

pub(crate) fn disk_load(disk: u32, state: DumpLoadState, percent: f64) -> DumpDiskLoad {
    let loaded = state == DumpLoadState::Loaded;
    DumpDiskLoad {
        disk,
        state,
        image: (state != DumpLoadState::Pending).then(|| format!("/srv/dumps/d{disk}.img")),
        format: (state != DumpLoadState::Pending).then(|| "raw".into()),
        percent,
        chunks: if loaded { 163_840 } else { 0 },
        changed_chunks: if loaded { 1200 } else { 0 },
        zero_chunks: if loaded { 90_000 } else { 0 },
        dedup_chunks: if loaded { 5000 } else { 0 },
        stored_bytes: if loaded { 3 << 30 } else { 0 },
        loaded_at: loaded.then(|| "2026-05-01T11:00:00Z".into()),
        error: (state == DumpLoadState::Failed).then(|| "short read at byte 4096: image smaller than the disk".into()),
    }
}

pub(crate) fn marker() -> DumpMarker {
    DumpMarker {
        epoch: 42,
        time: "2026-05-01T10:30:00Z".into(),
        time_unix_ms: 1_777_631_400_000,
        at: "now".into(),
        consistency: Consistency::CrashConsistent,
        quiesce: None,
        exec: None,
    }
}

pub(crate) fn dump_status(step: DumpStep, disks: Vec<DumpDiskLoad>, next_step: &str) -> DumpStatus {
    DumpStatus {
        step,
        step_label: "Apply suspended: load the dump".into(),
        next_step: next_step.into(),
        suspended_at: "2026-05-01T10:00:00Z".into(),
        checkpoint_epoch: 41,
        purged_versions: 12,
        marker: Some(marker()),
        resync_marker_at: Some("2026-05-01T10:40:00Z".into()),
        dump_marker_at: Some("2026-05-01T10:40:01Z".into()),
        disks,
        point: None,
        verification: None,
        events: (1..=7)
            .map(|i| DumpEvent { time: format!("2026-05-01T10:0{i}:00Z"), message: format!("event {i}") })
            .collect(),
    }
}

pub(crate) fn action_reply(state: PairState, next: &str) -> Reply {
    let mut s = status(state, 0.0);
    s.dump = Some(dump_status(DumpStep::Suspended, vec![], next));
    let r = ActionResponse { message: "done".into(), points_deleted: 0, status: s };
    Reply::json(200, &serde_json::to_string(&r).unwrap())
}

fn resume_args(resync: bool, reinit: bool) -> ResumeArgs {
    ResumeArgs { pair: pair(), resync, reinit, force: reinit }
}

#[test]
fn resume_bodies() {
    // Plain resume: the empty object, as before.
    let server = FakeServer::start(vec![action_reply(PairState::Replicating, "")]);
    let client = Client::new(&server.url, None).unwrap();
    resume(&client, OutputFormat::Text, &resume_args(false, false)).unwrap();
    assert_eq!(body(&server.finish()[0]), serde_json::json!({}));
    // --resync.
    let server = FakeServer::start(vec![action_reply(
        PairState::ApplySuspended,
        "drpair standby load-dump web-01 --disk 0 --image FILE",
    )]);
    let client = Client::new(&server.url, None).unwrap();
    resume(&client, OutputFormat::Text, &resume_args(true, false)).unwrap();
    let req = &server.finish()[0];
    assert_eq!(req.path, "/api/v1/pairs/web-01/resume");
    let sent: drpair_types::ResumeRequest = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent, drpair_types::ResumeRequest { resync: true, reinit: false, confirm: None });
    // --resync --reinit --force: the points are counted for the warning, the pair id confirms.
    let server = FakeServer::start(vec![points_reply(4), action_reply(PairState::InitialSync, "")]);
    let client = Client::new(&server.url, None).unwrap();
    resume(&client, OutputFormat::Json, &resume_args(true, true)).unwrap();
    let reqs = server.finish();
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("GET", "/api/v1/pairs/web-01/points"));
    let sent: drpair_types::ResumeRequest = serde_json::from_slice(&reqs[1].body).unwrap();
    assert_eq!(sent, drpair_types::ResumeRequest { resync: true, reinit: true, confirm: Some("web-01".into()) });
}
