use super::*;
use crate::client::exit;
use crate::dump::tests::{disk_load, dump_status, pair};
use crate::fake_server::{FakeServer, Reply};
use crate::lifecycle::tests::body;
use crate::status::tests::status;
use drpair_types::{ActionResponse, PairState};

/// A pair in ApplySuspended whose disk 0 is in `state`.
fn status_with_load(state: DumpLoadState, percent: f64) -> PairStatus {
    let mut s = status(PairState::ApplySuspended, 0.0);
    let next = match state {
        DumpLoadState::Loaded => "drpair standby resume-apply web-01",
        _ => "drpair standby load-dump web-01 --disk 0 --image FILE",
    };
    s.dump = Some(dump_status(DumpStep::ApplySuspended, vec![disk_load(0, state, percent)], next));
    s
}

fn status_reply(s: &PairStatus) -> Reply {
    Reply::json(200, &serde_json::to_string(s).unwrap())
}

fn accepted(s: PairStatus) -> Reply {
    let r = ActionResponse {
        message: "pair 'web-01': loading the dump of disk 0 from /srv/dumps/d0.img (raw)".into(),
        points_deleted: 0,
        status: s,
    };
    Reply::json(202, &serde_json::to_string(&r).unwrap())
}

fn load_args(image: &str, no_wait: bool) -> LoadDumpArgs {
    LoadDumpArgs { pair: pair(), disk: 0, image: PathBuf::from(image), format: Some(ImageFormatArg::Raw), no_wait }
}

#[test]
fn load_dump_polls_until_loaded() {
    let server = FakeServer::start(vec![
        accepted(status_with_load(DumpLoadState::Loading, 0.0)),
        status_reply(&status_with_load(DumpLoadState::Loading, 35.5)),
        status_reply(&status_with_load(DumpLoadState::Loading, 80.0)),
        status_reply(&status_with_load(DumpLoadState::Loaded, 100.0)),
    ]);
    let client = Client::new(&server.url, None).unwrap();
    let args = load_args("/srv/dumps/d0.img", false);
    load_dump(&client, OutputFormat::Text, &args, Duration::ZERO).unwrap();
    let reqs = server.finish();
    assert_eq!(reqs.len(), 4);
    assert_eq!((reqs[0].method.as_str(), reqs[0].path.as_str()), ("POST", "/api/v1/pairs/web-01/dump/load"));
    assert_eq!(body(&reqs[0]), serde_json::json!({"disk": 0, "image": "/srv/dumps/d0.img", "format": "raw"}));
    assert!(reqs[1..].iter().all(|r| r.method == "GET" && r.path == "/api/v1/pairs/web-01"), "{reqs:?}");
}

#[test]
fn load_dump_that_fails_exits_1_with_the_error() {
    for output in [OutputFormat::Text, OutputFormat::Json] {
        let server = FakeServer::start(vec![
            accepted(status_with_load(DumpLoadState::Loading, 0.0)),
            status_reply(&status_with_load(DumpLoadState::Loading, 20.0)),
            status_reply(&status_with_load(DumpLoadState::Failed, 0.0)),
        ]);
        let client = Client::new(&server.url, None).unwrap();
        let err = load_dump(&client, output, &load_args("/srv/dumps/d0.img", false), Duration::ZERO).unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        let msg = err.to_string();
        assert!(msg.starts_with("loading the dump of disk 0 of pair web-01 failed: short read at byte 4096"), "{msg}");
        assert!(msg.contains("drpair standby load-dump web-01 --disk 0 --image FILE"), "{msg}");
        assert_eq!(server.finish().len(), 3);
    }
}

#[test]
fn load_dump_no_wait_and_refusals() {
    let server = FakeServer::start(vec![accepted(status_with_load(DumpLoadState::Loading, 0.0))]);
    let client = Client::new(&server.url, None).unwrap();
    load_dump(&client, OutputFormat::Text, &load_args("/srv/dumps/d0.img", true), Duration::ZERO).unwrap();
    assert_eq!(server.finish().len(), 1, "no polling with --no-wait");

    let refusal =
        r#"{"code":"InvalidPairState","message":"pair 'web-01': not now; next step: drpair resume web-01 --resync"}"#;
    let server = FakeServer::start(vec![Reply::json(409, refusal)]);
    let client = Client::new(&server.url, None).unwrap();
    let err =
        load_dump(&client, OutputFormat::Text, &load_args("/srv/dumps/d0.img", false), Duration::ZERO).unwrap_err();
    assert_eq!(err.exit_code(), exit::INVALID_STATE);
    assert!(err.to_string().contains("next step: drpair resume web-01 --resync"));
    assert_eq!(server.finish().len(), 1);
}

#[test]
fn load_dump_ends_when_the_load_is_gone() {
    let mut abandoned = status(PairState::Replicating, 100.0);
    abandoned.dump = Some(dump_status(DumpStep::Abandoned, vec![disk_load(0, DumpLoadState::Loading, 5.0)], ""));
    let mut pending = status_with_load(DumpLoadState::Pending, 0.0);
    pending.dump.as_mut().unwrap().next_step = "drpair standby load-dump web-01 --disk 0 --image FILE".into();
    for (s, want) in [
        (status(PairState::Replicating, 100.0), "pair web-01 has no dump workflow any more"),
        (abandoned, "the dump workflow of pair web-01 was abandoned"),
        (pending, "is not running (pending); next step: drpair standby load-dump web-01"),
    ] {
        match load_seen(&pair(), 0, &s) {
            LoadSeen::Over(why) => assert!(why.contains(want), "{why}"),
            _ => panic!("{want}"),
        }
    }
    let s = status_with_load(DumpLoadState::Loading, 5.0);
    match load_seen(&pair(), 3, &s) {
        LoadSeen::Over(why) => assert!(why.contains("shows no dump load of disk 3"), "{why}"),
        _ => panic!(),
    }
}

#[test]
fn image_path_is_made_absolute() {
    let mut args = load_args("dumps/d0.qcow2", false);
    args.format = Some(ImageFormatArg::Qcow2);
    let request = load_request(&args).unwrap();
    let want = std::env::current_dir().unwrap().join("dumps/d0.qcow2");
    assert_eq!(request.image, want.to_str().unwrap());
    assert_eq!(request.format.as_deref(), Some("qcow2"));
    args.format = None;
    args.image = PathBuf::from("/dev/vg0/snap");
    let request = load_request(&args).unwrap();
    assert_eq!((request.image.as_str(), request.format), ("/dev/vg0/snap", None));
}

#[test]
fn loaded_summary() {
    let text = render_loaded(&pair(), &disk_load(0, DumpLoadState::Loaded, 100.0));
    assert_eq!(
        text,
        "disk 0 of pair web-01 loaded from /srv/dumps/d0.img (raw): 163840 chunks read, 1200 differ from the \
         newest point before the dump, 90000 zero, 5000 already held (dedup), 3.0 GiB stored"
    );
}
