//! How status shows a pair's dump workflow: the step, the next command for the operator and
//! each disk's load.

use super::progress::LoadProgress;
use crate::standby::pair::PairRecord;
use crate::timefmt::rfc3339_ms;
use drpair_types::{DumpDiskLoad, DumpLoadState, DumpStatus, DumpStep, PairState};
use std::sync::atomic::Ordering;

/// The command the operator runs next, given the pair's state and its dump record.
pub fn next_step(rec: &PairRecord) -> String {
    let id = &rec.pair_id;
    let Some(d) = &rec.dump else {
        return format!("drpair suspend {id} (to seed the standby from a third-party dump)");
    };
    match rec.lifecycle.state {
        PairState::Suspended => format!("drpair standby skip-to-resync-marker {id}"),
        PairState::AwaitingResyncMarker if d.marker.is_none() => format!(
            "take the dump with your snapshot tool, then record its point: drpair marker dump {id} [--at now|EPOCH|TIME] (or let drpair run it: --freeze MOUNTPOINT --exec CMD)"
        ),
        PairState::AwaitingResyncMarker => format!("drpair resume {id} --resync"),
        PairState::AwaitingDumpMarker => {
            format!(
                "wait for the agent's dump marker (the agent must be connected), or drpair resume {id} --resync again"
            )
        }
        PairState::ApplySuspended => match d.first_unloaded() {
            Some(n) => format!("drpair standby load-dump {id} --disk {n} --image FILE"),
            None => format!("drpair standby resume-apply {id}"),
        },
        _ if d.step == DumpStep::Verifying => {
            "none: the agent ships the chunks changed after the dump point and compares every chunk with the dump"
                .into()
        }
        _ if d.finished() => "none: the dump workflow is complete".into(),
        _ => format!("drpair suspend {id} to start over"),
    }
}

/// `dump` in status; `loading` is the disk being loaded now and its live progress.
pub fn status(rec: &PairRecord, loading: Option<(u32, &LoadProgress)>) -> Option<DumpStatus> {
    let d = rec.dump.as_ref()?;
    let disks = d
        .disks
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let s = l.stats.clone().unwrap_or_default();
            let percent = match (l.state, loading) {
                (DumpLoadState::Loaded, _) => 100.0,
                (DumpLoadState::Loading, Some((n, p))) if n as usize == i => {
                    let total = p.total.load(Ordering::Relaxed);
                    let done = p.done.load(Ordering::Relaxed);
                    if total > 0 { ((done as f64 * 1000.0 / total as f64).round() / 10.0).min(100.0) } else { 0.0 }
                }
                _ => 0.0,
            };
            DumpDiskLoad {
                disk: i as u32,
                state: l.state,
                image: l.image.clone(),
                format: l.format.clone(),
                percent,
                chunks: s.chunks,
                changed_chunks: s.entries,
                zero_chunks: s.zero,
                dedup_chunks: s.dedup,
                stored_bytes: s.stored_bytes,
                loaded_at: l.loaded_unix_ms.map(rfc3339_ms),
                error: l.error.clone(),
            }
        })
        .collect();
    Some(DumpStatus {
        step: d.step,
        step_label: d.step.label().into(),
        next_step: next_step(rec),
        suspended_at: rfc3339_ms(d.suspended_unix_ms),
        checkpoint_epoch: d.checkpoint_epoch,
        purged_versions: d.purged_versions,
        marker: d.marker.clone(),
        resync_marker_at: d.resync_marker_unix_ms.map(rfc3339_ms),
        dump_marker_at: d.dump_marker_unix_ms.map(rfc3339_ms),
        disks,
        point: d.point,
        verification: d.verification.clone(),
        events: d.events.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::super::record::{DumpRecord, EVENTS_KEPT};
    use super::*;
    use crate::standby::pair::DiskRecord;
    use drpair_pair::{Lifecycle, PairOp};
    use drpair_types::{ChunkSize, DiskGeometry};
    use drpair_types::{DumpMarker, PairId};

    fn rec(disks: usize) -> PairRecord {
        let g = DiskGeometry::new(1 << 20, ChunkSize::DEFAULT).unwrap();
        let lifecycle = Lifecycle::new().apply(PairOp::Start).unwrap();
        let mut r = PairRecord::register(
            PairId::new("web-01").unwrap(),
            1,
            vec![DiskRecord { path: "/d".into(), geometry: g }; disks],
            "h".into(),
            "127.0.0.1".into(),
            "tracefs".into(),
            lifecycle,
        );
        r.dump = Some(DumpRecord::new(0, disks));
        r
    }

    fn step(r: &mut PairRecord, op: PairOp) {
        r.lifecycle = r.lifecycle.apply(op).unwrap();
    }

    #[test]
    fn the_next_step_follows_the_workflow() {
        let mut r = rec(2);
        step(&mut r, PairOp::Suspend);
        assert!(next_step(&r).starts_with("drpair standby skip-to-resync-marker web-01"));
        step(&mut r, PairOp::SkipToResyncMarker);
        assert!(next_step(&r).contains("drpair marker dump web-01"), "{}", next_step(&r));
        r.dump.as_mut().unwrap().marker = Some(DumpMarker {
            epoch: 4,
            time: rfc3339_ms(0),
            time_unix_ms: 0,
            at: "now".into(),
            consistency: drpair_types::Consistency::Fuzzy,
            quiesce: None,
            exec: None,
        });
        assert_eq!(next_step(&r), "drpair resume web-01 --resync");
        step(&mut r, PairOp::ResyncMarker);
        step(&mut r, PairOp::DumpMarker);
        assert_eq!(next_step(&r), "drpair standby load-dump web-01 --disk 0 --image FILE");
        r.dump.as_mut().unwrap().disks[0].state = DumpLoadState::Loaded;
        assert_eq!(next_step(&r), "drpair standby load-dump web-01 --disk 1 --image FILE");
        r.dump.as_mut().unwrap().disks[1].state = DumpLoadState::Loaded;
        assert_eq!(next_step(&r), "drpair standby resume-apply web-01");
        let s = status(&r, None).unwrap();
        assert_eq!(s.disks.iter().map(|d| d.percent).collect::<Vec<_>>(), vec![100.0, 100.0]);
    }

    #[test]
    fn loading_shows_a_percentage_and_the_log_is_bounded() {
        let mut r = rec(1);
        let d = r.dump.as_mut().unwrap();
        d.disks[0].state = DumpLoadState::Loading;
        for i in 0..(EVENTS_KEPT + 7) {
            d.note(&PairId::new("web-01").unwrap(), format!("line {i}"));
        }
        assert_eq!(d.events.len(), EVENTS_KEPT);
        assert_eq!(d.events.last().unwrap().message, format!("line {}", EVENTS_KEPT + 6));
        let p = LoadProgress::default();
        p.total.store(400, Ordering::Relaxed);
        p.done.store(100, Ordering::Relaxed);
        assert_eq!(status(&r, Some((0, &p))).unwrap().disks[0].percent, 25.0);
        assert_eq!(status(&r, Some((1, &p))).unwrap().disks[0].percent, 0.0, "another disk's progress");
    }
}
