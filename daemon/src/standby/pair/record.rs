//! What the standby persists about a pair (the `pairs` column family): the record, its disks,
//! a restart, a rewind and a stop position. This JSON is a format on disk of its own, and
//! `testdata/pair_record.json` (decoded by `record_tests.rs`) keeps it from changing by
//! accident. The last results of features (source verify, prune, verify, failover, failback)
//! are stored as types of the record's own (`results.rs`), not as the API shows them: an API
//! answer can change without changing this format. (The dump workflow's record, `DumpRecord`,
//! still nests a few of the API's dump types.)

use super::dates::PairDates;
use super::protection::{ProtectionRecord, RecoveredFromRecord};
use super::results::{FailbackRecord, FailoverRecord, PruneRecord, SourceVerifyRecord, VerifyRecord};
use super::successes::SuccessesRecord;
use crate::standby::dump::DumpRecord;
use crate::timefmt::now_ms;
use drpair_pair::Lifecycle;
use drpair_store::{GeometryEra, geometry_at};
use drpair_types::{
    Checkpoint, ConfigurationChange, DiskChange, DiskChangeKind, DiskGeometry, DiskShape, Epoch, Lineage, PairId,
    compare_disks,
};
use serde::{Deserialize, Serialize};

/// One disk as registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskRecord {
    pub path: String,
    pub geometry: DiskGeometry,
}

impl DiskRecord {
    /// The disk as a configuration change names it.
    pub fn shape(&self) -> DiskShape {
        DiskShape {
            path: self.path.clone(),
            size_bytes: self.geometry.size_bytes,
            chunk_size: self.geometry.chunk_size.into(),
        }
    }
}

/// What the standby persists about a pair (in the `pairs` column family).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairRecord {
    pub pair_id: PairId,
    pub pair_no: u32,
    pub lineage: Lineage,
    pub disks: Vec<DiskRecord>,
    /// Newest committed epoch (0 = none yet).
    pub committed: Epoch,
    pub registered_unix_ms: u64,
    pub source_host: String,
    pub source_address: String,
    pub tracker: String,
    /// The state machine (persisted on every transition).
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Epochs of this pair's store at or below this belong to an earlier lineage: the agent
    /// cuts above it, so point ids never repeat within a pair.
    #[serde(default)]
    pub epoch_floor: Epoch,
    /// A restart whose new baseline is not complete yet.
    #[serde(default)]
    pub restart: Option<RestartRecord>,
    /// The head was rolled back (replay) and no epoch was committed since.
    #[serde(default)]
    pub rewound: Option<Rewound>,
    /// Where the pair stops by itself.
    #[serde(default)]
    pub stop_at: Option<StopAtRecord>,
    /// Oldest epoch the agent's change history reaches, as it last reported.
    #[serde(default)]
    pub agent_history_from: Option<Epoch>,
    /// Points and versions below this epoch (an old lineage kept until the new baseline)
    /// are to be deleted; set at the baseline's commit, cleared once done.
    #[serde(default)]
    pub retire_below: Option<Epoch>,
    /// The third-party dump workflow in progress, or the last one completed.
    #[serde(default)]
    pub dump: Option<DumpRecord>,
    /// The online verify against the source requested or running, or the last one.
    #[serde(default)]
    pub source_verify: Option<SourceVerifyRecord>,
    /// The pair's own retention policy (None: the standby's default).
    #[serde(default)]
    pub retention: Option<drpair_retention::Policy>,
    /// The last prune that ran (not dry runs).
    #[serde(default)]
    pub last_prune: Option<PruneRecord>,
    /// The last verification of stored chunks that finished.
    #[serde(default)]
    pub verify: Option<VerifyRecord>,
    /// The failover in force (while failed over or failing back): the point, the targets and
    /// how the materialisation went.
    #[serde(default)]
    pub failover: Option<FailoverRecord>,
    /// The last failback that ended.
    #[serde(default)]
    pub failback: Option<FailbackRecord>,
    /// The agent offers other disks than `disks` (state *Configuration changed*).
    #[serde(default)]
    pub reconfigured: Option<ReconfiguredRecord>,
    /// The disks of older points, when they differ from `disks` (oldest era first).
    #[serde(default)]
    pub geometry_eras: Vec<GeometryEra>,
    /// When the pair started, stopped, copied its baseline, changed (DMS's dates).
    #[serde(default)]
    pub dates: PairDates,
    /// The pair's own bandwidth limit on the link: a rate or a schedule (None: unlimited,
    /// apart from the standby-wide limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<String>,
    /// The RPO target in seconds (None: none), and the error threshold when not twice it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_target_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rpo_error_secs: Option<u64>,
    /// The pair has no RPO target even where the standby has a default (`rpo_target = off`);
    /// without a target of its own and this, the standby's default applies.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rpo_target_off: bool,
    /// When the pair last committed a point, passed a verify or a drill, cut an
    /// app-consistent point (`successes.rs`).
    #[serde(default, skip_serializing_if = "SuccessesRecord::is_empty")]
    pub last_successes: SuccessesRecord,
    /// The agent protecting this pair's recovered disks while it is failed over (running, or
    /// the last one until the failover ends).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_by: Option<ProtectionRecord>,
    /// This pair was registered by an agent protecting another pair's recovered disks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovered_from: Option<RecoveredFromRecord>,
}

/// The disks an agent came back with, differing from the registered ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconfiguredRecord {
    pub detected_unix_ms: u64,
    pub offered: Vec<DiskRecord>,
}

/// A restart in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartRecord {
    pub requested_unix_ms: u64,
    pub full_copy: bool,
    pub keep_points: bool,
    pub kept_points: u64,
}

/// A rollback of the head from epoch `from` to point `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rewound {
    pub to: Epoch,
    pub from: Epoch,
}

/// A stop position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopAtRecord {
    pub point: Option<Epoch>,
    /// The time of the agent's cut (commit time).
    pub time_unix_ms: Option<u64>,
    /// The standby's clock.
    #[serde(default)]
    pub server_time_unix_ms: Option<u64>,
    /// Stop with this reason once the baseline is committed (`full_load_only`,
    /// `stop_after_full_load`).
    #[serde(default)]
    pub after_full_load: Option<drpair_types::StopReason>,
}

impl PairRecord {
    /// A pair registered now by an agent at `source_address`: a fresh lineage, nothing
    /// committed, no operator action pending.
    pub fn register(
        pair_id: PairId,
        pair_no: u32,
        disks: Vec<DiskRecord>,
        source_host: String,
        source_address: String,
        tracker: String,
        lifecycle: Lifecycle,
    ) -> Self {
        let now = now_ms();
        let started = lifecycle.started.then_some(now);
        let dates = PairDates {
            fresh_start_unix_ms: started,
            start_unix_ms: started,
            full_load_start_unix_ms: started,
            update_unix_ms: Some(now),
            ..PairDates::default()
        };
        Self {
            dates,
            pair_id,
            pair_no,
            lineage: uuid::Uuid::new_v4(),
            disks,
            committed: 0,
            registered_unix_ms: now,
            source_host,
            source_address,
            tracker,
            lifecycle,
            epoch_floor: 0,
            restart: None,
            rewound: None,
            stop_at: None,
            agent_history_from: None,
            retire_below: None,
            dump: None,
            source_verify: None,
            retention: None,
            last_prune: None,
            verify: None,
            failover: None,
            failback: None,
            reconfigured: None,
            geometry_eras: Vec::new(),
            bandwidth: None,
            rpo_target_secs: None,
            rpo_error_secs: None,
            rpo_target_off: false,
            last_successes: SuccessesRecord::default(),
            protected_by: None,
            recovered_from: None,
        }
    }

    pub fn checkpoint(&self) -> Option<Checkpoint> {
        (self.committed > 0).then_some(Checkpoint { lineage: self.lineage, epoch: self.committed })
    }

    /// Sets the dates from how this record differs from `before` (at `now`).
    pub fn note_dates(&mut self, before: &PairRecord, now: u64) {
        let settings = before.retention != self.retention
            || before.stop_at != self.stop_at
            || before.disks != self.disks
            || before.bandwidth != self.bandwidth
            || before.rpo_target_secs != self.rpo_target_secs
            || before.rpo_error_secs != self.rpo_error_secs
            || before.rpo_target_off != self.rpo_target_off;
        super::dates::note(&before.lifecycle, &self.lifecycle, settings, &mut self.dates, now);
    }

    /// The disks the point of `epoch` was cut with.
    pub fn geometries_at(&self, epoch: Epoch) -> Vec<DiskGeometry> {
        geometry_at(self.disks.iter().map(|d| d.geometry).collect(), &self.geometry_eras, epoch)
    }

    /// Takes `disks` as the pair's disks from the next epoch on: the points up to now keep
    /// the disks they were cut with.
    pub fn take_disks(&mut self, disks: Vec<DiskRecord>) {
        let through = self.committed.max(self.epoch_floor);
        let old: Vec<DiskGeometry> = self.disks.iter().map(|d| d.geometry).collect();
        let new: Vec<DiskGeometry> = disks.iter().map(|d| d.geometry).collect();
        // A change with nothing cut since the one before has no points of its own.
        if old != new && through > 0 && !self.geometry_eras.iter().any(|e| e.through >= through) {
            self.geometry_eras.push(GeometryEra { through, disks: old });
        }
        self.disks = disks;
        self.reconfigured = None;
    }

    /// How `offered` disks differ from the registered ones, position by position (none: the
    /// same disks, perhaps under other names).
    pub fn disk_changes(&self, offered: &[DiskRecord]) -> Vec<DiskChange> {
        let shapes = |d: &[DiskRecord]| d.iter().map(DiskRecord::shape).collect::<Vec<_>>();
        compare_disks(&shapes(&self.disks), &shapes(offered))
    }

    /// What status shows of a configuration change.
    pub fn configuration_change(&self) -> Option<ConfigurationChange> {
        let r = self.reconfigured.as_ref()?;
        let changes = self.disk_changes(&r.offered);
        Some(ConfigurationChange {
            detected_at: crate::timefmt::rfc3339_ms(r.detected_unix_ms),
            growth_only: !changes.is_empty() && changes.iter().all(|c| c.change == DiskChangeKind::Grown),
            changes,
            offered: r.offered.iter().map(DiskRecord::shape).collect(),
        })
    }
}

/// A connected, started pair in `state` with one 1 MiB disk, `committed` points in (a
/// baseline exactly when `committed > 0`), for unit tests.
#[cfg(test)]
pub(crate) fn test_record(state: drpair_types::PairState, committed: Epoch) -> PairRecord {
    let lifecycle =
        Lifecycle { state, has_baseline: committed > 0, started: true, connected: true, ..Lifecycle::new() };
    let disks = vec![DiskRecord {
        path: "/d".into(),
        geometry: DiskGeometry::new(1 << 20, drpair_types::ChunkSize::DEFAULT).expect("geometry"),
    }];
    let mut r = PairRecord::register(
        PairId::new("p").expect("id"),
        1,
        disks,
        "h".into(),
        "127.0.0.1".into(),
        "scan".into(),
        lifecycle,
    );
    r.committed = committed;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::PairState;

    #[test]
    fn disk_changes_and_eras() {
        let mut r = test_record(PairState::Replicating, 3);
        let disk = |size: u64| DiskRecord {
            path: "/d".into(),
            geometry: DiskGeometry::new(size, drpair_types::ChunkSize::DEFAULT).unwrap(),
        };
        assert!(r.disk_changes(&[disk(1 << 20)]).is_empty());
        let c = r.disk_changes(&[disk(2 << 20)]);
        assert_eq!((c.len(), c[0].change), (1, DiskChangeKind::Grown));
        assert_eq!(r.disk_changes(&[])[0].change, DiskChangeKind::Removed);
        let old = r.disks.clone();
        let mut big = old.clone();
        big[0].geometry = DiskGeometry::new(2 << 20, drpair_types::ChunkSize::DEFAULT).unwrap();
        r.take_disks(big.clone());
        assert_eq!(r.geometries_at(3), vec![old[0].geometry], "points up to now keep their size");
        assert_eq!(r.geometries_at(4), vec![big[0].geometry]);
        // Taken again before anything was cut: the points' era stays.
        r.take_disks(old.clone());
        assert_eq!(r.geometry_eras.len(), 1);
        assert_eq!(r.geometries_at(3), vec![old[0].geometry]);
    }
}
