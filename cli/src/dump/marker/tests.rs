use super::*;
use crate::dump::tests::{dump_status, marker, pair};
use crate::fake_server::{FakeServer, Reply};
use crate::status::tests::status;
use drpair_types::{Consistency, DumpStep, ExecOutcome, PairState, QuiesceOutcome};

fn marker_args(exec: Option<&str>) -> DumpMarkerArgs {
    DumpMarkerArgs {
        pair: pair(),
        at: None,
        freeze: exec.map(|_| vec!["/var/lib/postgresql".to_string()]).unwrap_or_default(),
        exec: exec.map(String::from),
        thaw_budget: exec.map(|_| Duration::from_millis(1500)),
        exec_timeout: exec.map(|_| Duration::from_secs(300)),
    }
}

#[test]
fn marker_request_and_answer_timeout() {
    let plain = marker_args(None);
    assert_eq!(plain.request(), DumpMarkerRequest::default());
    assert_eq!(plain.answer_timeout(), MARKER_ANSWER_TIMEOUT);
    let mut at = marker_args(None);
    at.at = Some("1742".into());
    assert_eq!(at.request().at.as_deref(), Some("1742"));
    let exec = marker_args(Some("lvcreate -s vg0/web01"));
    assert_eq!(
        exec.request(),
        DumpMarkerRequest {
            at: None,
            freeze: vec!["/var/lib/postgresql".into()],
            exec: Some("lvcreate -s vg0/web01".into()),
            thaw_budget_ms: Some(1500),
            exec_timeout_seconds: Some(300),
        }
    );
    let mut long = marker_args(Some("x"));
    long.exec_timeout = Some(Duration::from_secs(3600));
    assert!(long.answer_timeout() > Duration::from_secs(3660), "longer than the standby waits");
    assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
}

#[test]
fn marker_dump_posts_and_prints_the_marker() {
    let mut m = marker();
    m.at = "exec".into();
    m.consistency = Consistency::AppConsistent;
    m.quiesce = Some(QuiesceOutcome {
        freeze: vec!["/var/lib/postgresql".into()],
        hooks: false,
        achieved: true,
        frozen_ms: 850,
        budget_ms: 1500,
        failure: None,
    });
    m.exec = Some(ExecOutcome {
        command: "lvcreate -s vg0/web01".into(),
        exit_code: Some(0),
        millis: 1234,
        output: (1..=12).map(|i| format!("line {i}\n")).collect(),
    });
    let mut s = status(PairState::AwaitingResyncMarker, 0.0);
    s.state_label = "Waiting for resync marker".into();
    s.state_explanation = "the standby waits for the agent's resync marker".into();
    s.dump = Some(dump_status(DumpStep::AwaitingResyncMarker, vec![], "drpair resume web-01 --resync"));
    let answer =
        DumpMarkerResponse { message: "pair 'web-01': dump marker recorded at epoch 42".into(), marker: m, status: s };
    let text = render_marker_response(&answer);
    for want in [
        "Marker:            epoch 42, cut at 2026-05-01T10:30:00Z (given as: exec)",
        "Consistency:       app-consistent",
        "Freeze:            froze /var/lib/postgresql for 850 ms (budget 1500 ms)",
        "Snapshot command:  lvcreate -s vg0/web01 exited 0 after 1.2s",
        "Command output:    line 3",
        "                   line 12",
        "Next step:         drpair resume web-01 --resync",
    ] {
        assert!(text.lines().any(|l| l == want), "missing {want:?} in\n{text}");
    }
    assert!(!text.contains("line 2\n"), "only the last lines:\n{text}");
    assert_eq!(exec_warning(&answer.marker), None);

    let server = FakeServer::start(vec![Reply::json(200, &serde_json::to_string(&answer).unwrap())]);
    let client = Client::new(&server.url, None).unwrap();
    run_marker(
        &client,
        OutputFormat::Text,
        &MarkerArgs { command: MarkerCommand::Dump(marker_args(Some("lvcreate -s vg0/web01"))) },
    )
    .unwrap();
    let req = &server.finish()[0];
    assert_eq!((req.method.as_str(), req.path.as_str()), ("POST", "/api/v1/pairs/web-01/markers/dump"));
    let sent: DumpMarkerRequest = serde_json::from_slice(&req.body).unwrap();
    assert_eq!(sent.exec.as_deref(), Some("lvcreate -s vg0/web01"));
}

#[test]
fn a_failed_snapshot_command_is_warned_about() {
    let mut m = marker();
    m.exec = Some(ExecOutcome { command: "snap".into(), exit_code: Some(3), millis: 20, output: String::new() });
    assert!(exec_warning(&m).unwrap().contains("exited 3"));
    m.exec.as_mut().unwrap().exit_code = None;
    assert!(exec_warning(&m).unwrap().contains("killed or did not start"));
    let mut b = Block::default();
    render_marker(&mut b, &m, true);
    assert!(b.render().contains("Snapshot command:  snap killed or did not start (after 20 ms)"), "{}", b.render());
}

#[test]
fn marker_values() {
    for ok in ["now", "NOW", "1742", "2026-11-22T10:30:00Z", "@1763807400"] {
        assert!(dump_point(ok).is_ok(), "{ok}");
    }
    assert!(dump_point("yesterday").unwrap_err().contains("not 'now', an epoch number or a time"));
    assert!(thaw_budget("100ms").is_ok() && thaw_budget("10m").is_ok());
    assert!(thaw_budget("99ms").is_err() && thaw_budget("11m").is_err() && thaw_budget("soon").is_err());
    assert!(exec_timeout("1s").is_ok() && exec_timeout("24h").is_ok());
    assert!(exec_timeout("25h").is_err() && exec_timeout("0s").is_err());
    assert!(command_line("  ").is_err());
    assert_eq!(tail_lines("a\n\nb\nc\n", 2), "b\nc");
    assert_eq!(format_millis(999), "999 ms");
    assert_eq!(format_millis(192_000), "3m 12s");
}
