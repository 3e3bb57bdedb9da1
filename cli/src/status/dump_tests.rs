use super::*;
use crate::dump::tests::{disk_load, dump_status};
use crate::status::tests::status;
use drpair_types::{DumpStep, PairState, QuiesceOutcome};

fn with_dump() -> PairStatus {
    let mut s = status(PairState::ApplySuspended, 0.0);
    s.dump = Some(dump_status(
        DumpStep::ApplySuspended,
        vec![
            disk_load(0, DumpLoadState::Loaded, 100.0),
            disk_load(1, DumpLoadState::Loading, 42.0),
            disk_load(2, DumpLoadState::Failed, 0.0),
            disk_load(3, DumpLoadState::Pending, 0.0),
        ],
        "drpair standby load-dump web-01 --disk 1 --image FILE",
    ));
    s
}

fn has_line(text: &str, key: &str, value: &str) -> bool {
    let want = format!("{:<22}{value}", format!("{key}:"));
    text.lines().any(|l| l == want)
}

#[test]
fn dump_section() {
    let text = render_status(&with_dump(), 0);
    assert!(text.contains("Registered:           2026-05-01T10:00:00Z\n\nDump:"), "a section of its own:\n{text}");
    for (key, value) in [
        ("Dump", "Apply suspended: load the dump"),
        ("Next step", "drpair standby load-dump web-01 --disk 1 --image FILE"),
        ("Suspended at", "2026-05-01T10:00:00Z, recovery checkpoint epoch 41, 12 queued chunk version(s) purged"),
        ("Marker", "epoch 42, cut at 2026-05-01T10:30:00Z (given as: now)"),
        ("Consistency", "crash-consistent"),
        ("Markers processed", "resync at 2026-05-01T10:40:00Z, dump at 2026-05-01T10:40:01Z"),
        (
            "Dump loads",
            "disk 0: loaded 100%, /srv/dumps/d0.img (raw), at 2026-05-01T11:00:00Z: 163840 chunks read, 1200 differ \
             from the newest point before the dump, 90000 zero, 5000 already held (dedup), 3.0 GiB stored",
        ),
        ("Dump events", "2026-05-01T10:03:00Z  event 3"),
    ] {
        assert!(has_line(&text, key, value), "missing {key}: {value:?} in\n{text}");
    }
    let indent = " ".repeat(22);
    for more in [
        "disk 1: loading 42%, /srv/dumps/d1.img (raw)",
        "disk 2: failed, /srv/dumps/d2.img (raw): short read at byte 4096: image smaller than the disk",
        "disk 3: pending",
        "2026-05-01T10:07:00Z  event 7",
    ] {
        assert!(text.lines().any(|l| l == format!("{indent}{more}")), "missing {more:?} in\n{text}");
    }
    assert!(!text.contains("event 2"), "only the last 5 events:\n{text}");
    for key in ["Verification:", "Dump point:", "Freeze:"] {
        assert!(!text.contains(key), "{key} in\n{text}");
    }
    assert!(!render_status(&status(PairState::Replicating, 100.0), 0).contains("Dump"), "no dump, no section");
}

#[test]
fn dump_section_after_resume_apply() {
    let mut s = with_dump();
    let d = s.dump.as_mut().unwrap();
    d.step = DumpStep::Verifying;
    d.step_label = "Verifying the dump".into();
    d.point = Some(42);
    d.marker.as_mut().unwrap().quiesce = Some(QuiesceOutcome {
        freeze: vec!["/data".into()],
        hooks: false,
        achieved: false,
        frozen_ms: 0,
        budget_ms: 30_000,
        failure: Some("/data is not a mount point".into()),
    });
    d.verification = Some(DumpVerification {
        epoch: 43,
        chunks_compared: 163_840,
        chunks_shipped: 17,
        mismatched_chunks: 2,
        mismatched_sample: vec![[0, 17], [1, 4]],
        verified_at: "2026-05-01T12:00:00Z".into(),
    });
    let text = render_status(&s, 0);
    for (key, value) in [
        ("Dump", "Verifying the dump"),
        ("Dump point", "recovery point 42 (dump-marker)"),
        ("Freeze", "/data: not app-consistent: /data is not a mount point"),
        (
            "Verification",
            "at 2026-05-01T12:00:00Z (epoch 43): 163840 chunks compared, 17 shipped, 2 mismatched (e.g. disk 0 \
             chunk 17, disk 1 chunk 4); the dump did not match its marker there: repaired from the source",
        ),
    ] {
        assert!(has_line(&text, key, value), "missing {key}: {value:?} in\n{text}");
    }
    s.dump.as_mut().unwrap().verification.as_mut().unwrap().mismatched_chunks = 0;
    let text = render_status(&s, 0);
    assert!(has_line(
        &text,
        "Verification",
        "at 2026-05-01T12:00:00Z (epoch 43): 163840 chunks compared, 17 shipped, 0 mismatched"
    ));
}

#[test]
fn json_output_is_the_struct() {
    let s = with_dump();
    let raw = serde_json::to_value(&s).unwrap();
    assert_eq!(raw["dump"]["disks"][1]["state"], "loading");
    let back: PairStatus = serde_json::from_value(raw).unwrap();
    assert_eq!(back.dump, s.dump);
}
