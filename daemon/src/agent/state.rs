//! The agent's local state: one change map per disk in the state dir, and what it says about
//! the last run (clean stop or a tracking gap).

use anyhow::{Context, Result, bail};
use drpair_track::{ChangeMap, ChangeMapError};
use drpair_types::{DiskGeometry, Epoch, Lineage, PairId};
use drpair_wire::AgentState;
use std::path::{Path, PathBuf};

/// The change maps of all disks, kept in lockstep (one epoch clock for the pair).
pub struct LocalState {
    pub maps: Vec<ChangeMap>,
    /// The maps were created now: the agent does not know what the standby holds.
    pub fresh: bool,
    /// Why tracking may have missed changes since the last run (forces a reconcile).
    pub gap: Option<String>,
}

impl drpair_ship::pass::ChangeMaps for LocalState {
    fn maps(&mut self) -> &mut [ChangeMap] {
        &mut self.maps
    }
}

fn map_path(dir: &Path, disk: usize) -> PathBuf {
    dir.join(format!("disk-{disk}.chmap"))
}

/// The disks the maps were made for, one path per line in disk order (`disks` in the state
/// dir): a map belongs to its disk, not to its position.
fn disks_path(dir: &Path) -> PathBuf {
    dir.join("disks")
}

/// Whether the maps on disk still belong to the disks at their positions: not when disks were
/// added or removed (the count differs) or moved (a path now at another position). A path that
/// is simply new at its position is the same disk renamed (a device renumbered at boot).
fn same_disks(saved: &[String], now: &[String]) -> bool {
    saved.len() == now.len() && saved.iter().zip(now).all(|(a, b)| a == b || !saved.contains(b))
}

/// Opens the state dir for `pair` with the disks at `paths`, creating maps where there are
/// none. A disk that grew keeps its map (grown, the new chunks to ship); any other change of
/// the disks (added, removed, moved, shrunk) starts every map over, with a reconcile against
/// the standby: until the standby takes the new disks (a restart) nothing is shipped anyway.
pub fn open(dir: &Path, pair: &PairId, paths: &[String], geoms: &[DiskGeometry]) -> Result<LocalState> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create state dir {}", dir.display()))?;
    let id_file = dir.join("pair-id");
    match std::fs::read_to_string(&id_file) {
        Ok(s) if s.trim() != pair.as_str() => bail!(
            "state dir {} belongs to pair '{}', not '{pair}': give each pair its own --state-dir",
            dir.display(),
            s.trim()
        ),
        Ok(_) => {}
        Err(_) => std::fs::write(&id_file, format!("{pair}\n"))
            .with_context(|| format!("cannot write {}", id_file.display()))?,
    }
    let saved: Option<Vec<String>> =
        std::fs::read_to_string(disks_path(dir)).ok().map(|s| s.lines().map(str::to_string).collect());
    let mut reconfigured = None;
    if let Some(saved) = saved.as_ref().filter(|s| !same_disks(s, paths)) {
        let why = format!(
            "the disks changed (were {}, now {}): the change maps start over",
            saved.join(", "),
            paths.join(", ")
        );
        tracing::warn!("{why}");
        for i in 0..saved.len().max(paths.len()) {
            let _ = std::fs::remove_file(map_path(dir, i));
        }
        reconfigured = Some(why);
    }
    // Maps of positions beyond the disks now (a disk removed) would be stale if one came back.
    for i in geoms.len()..geoms.len() + 64 {
        let _ = std::fs::remove_file(map_path(dir, i));
    }
    let mut opened: Vec<Option<ChangeMap>> = Vec::new();
    let mut gap = reconfigured;
    let mut any_clean_or_unclean = gap.is_some();
    for (i, g) in geoms.iter().enumerate() {
        let p = map_path(dir, i);
        match ChangeMap::open_grown(&p, *g) {
            Ok(o) => {
                any_clean_or_unclean = true;
                if !o.was_clean && gap.is_none() {
                    gap = Some(
                        "unclean agent stop (crash, kill or power loss): changes made while it was down are unknown"
                            .to_string(),
                    );
                }
                opened.push(Some(o.map));
            }
            Err(ChangeMapError::Missing { .. }) => opened.push(None),
            Err(ChangeMapError::Damaged { reason, .. }) => {
                let aside = p.with_extension("chmap.damaged");
                let _ = std::fs::rename(&p, &aside);
                tracing::warn!(
                    disk = i,
                    "change map {} is damaged ({reason}); moved to {}",
                    p.display(),
                    aside.display()
                );
                gap = Some(format!("change map of disk {i} damaged: {reason}"));
                opened.push(None);
            }
            Err(ChangeMapError::GeometryMismatch { recorded, actual, .. }) => {
                tracing::warn!(
                    disk = i,
                    "disk {i} is {} bytes with {}-byte chunks, its change map was made for {} bytes with {}-byte chunks: the maps start over",
                    actual.size_bytes,
                    actual.chunk_size.bytes(),
                    recorded.size_bytes,
                    recorded.chunk_size.bytes()
                );
                let _ = std::fs::remove_file(&p);
                gap = Some(gap.unwrap_or_else(|| format!("disk {i} changed size")));
                any_clean_or_unclean = true;
                opened.push(None);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if gap.is_none() {
        // A resync that was interrupted (link loss, stop) must run again.
        gap = opened.iter().flatten().find_map(|m| m.suspect());
    }
    let lineages: Vec<Lineage> = opened.iter().flatten().map(|m| m.lineage()).collect();
    let consistent = lineages.windows(2).all(|w| w[0] == w[1]);
    let complete = opened.iter().all(Option::is_some);
    write_disks(dir, paths)?;
    if complete && consistent {
        return Ok(LocalState { maps: opened.into_iter().flatten().collect(), fresh: false, gap });
    }
    if any_clean_or_unclean {
        let why = if consistent {
            "a disk's change map is missing"
        } else {
            "the disks' change maps disagree on the lineage"
        };
        tracing::warn!("{why}: starting over with new maps and a reconcile against the standby");
        gap = Some(gap.unwrap_or_else(|| why.to_string()));
    }
    // Start from scratch: every chunk must be accounted for (copied, or reconciled by hash).
    let next = opened.iter().flatten().map(|m| m.next_epoch()).max().unwrap_or(1);
    drop(opened);
    let mut maps = Vec::new();
    for (i, g) in geoms.iter().enumerate() {
        let p = map_path(dir, i);
        let _ = std::fs::remove_file(&p);
        let mut m = ChangeMap::create(&p, *g, Lineage::nil(), 1)?;
        while m.next_epoch() < next {
            m.begin_cut()?;
        }
        maps.push(m);
    }
    Ok(LocalState { maps, fresh: true, gap })
}

/// Records which disks the maps are for (written beside, then renamed over the old list).
fn write_disks(dir: &Path, paths: &[String]) -> Result<()> {
    let path = disks_path(dir);
    let tmp = path.with_extension("new");
    let text: String = paths.iter().map(|p| format!("{p}\n")).collect();
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))
}

impl LocalState {
    /// What the Hello tells the standby.
    pub fn wire(&self) -> AgentState {
        if self.fresh {
            return AgentState::default();
        }
        AgentState {
            lineage: self.maps.first().map(|m| m.lineage()),
            acked: self.maps.iter().map(|m| m.acked()).min().unwrap_or(0),
            last_cut: self.maps.iter().map(|m| m.last_cut()).max().unwrap_or(0),
            history_from: self.history_from(),
        }
    }

    /// Oldest epoch from which every map can tell which chunks changed.
    pub fn history_from(&self) -> Epoch {
        self.maps.iter().map(|m| m.history_from()).max().unwrap_or(0)
    }

    /// After a tracking gap: changes since `epoch` may be missing, so no replay can reach
    /// further back than it.
    pub fn limit_history(&mut self, epoch: Epoch) -> Result<()> {
        for m in &mut self.maps {
            m.limit_history(epoch)?;
        }
        Ok(())
    }

    /// The standby rolled back to point `to`: every chunk changed since is dirty again.
    /// Errors (changing nothing) when the change history does not reach back that far.
    pub fn rewind(&mut self, to: Epoch) -> Result<(), ChangeMapError> {
        if let Some(m) = self.maps.iter().find(|m| m.history_from() > to) {
            return Err(ChangeMapError::HistoryTooShort {
                path: m.path().to_path_buf(),
                epoch: to,
                history_from: m.history_from(),
            });
        }
        for m in &mut self.maps {
            m.rewind(to)?;
        }
        Ok(())
    }

    /// The pair was restarted: start over in `lineage`, every chunk dirty, epochs above
    /// `epoch_floor` (the old lineage's points keep their ids).
    pub fn start_over(&mut self, lineage: Lineage, epoch_floor: Epoch) -> Result<()> {
        let stamp = self.maps.iter().map(|m| m.next_epoch()).max().unwrap_or(1).max(epoch_floor.saturating_add(1));
        for m in &mut self.maps {
            m.reset(lineage, stamp)?;
            m.set_suspect(None)?;
        }
        self.fresh = false;
        self.gap = None;
        Ok(())
    }

    /// Records durably that tracking had a gap (`Some(why)`) until a full pass has been
    /// acknowledged (`None`): a resync interrupted by a link loss or a stop runs again.
    pub fn set_suspect(&mut self, why: Option<&str>) -> Result<()> {
        for m in &mut self.maps {
            if m.suspect().as_deref() != why {
                m.set_suspect(why)?;
            }
        }
        Ok(())
    }

    /// Why the maps are suspect, if they are.
    pub fn suspect(&self) -> Option<String> {
        self.maps.iter().find_map(|m| m.suspect())
    }

    pub fn lineage(&self) -> Lineage {
        self.maps[0].lineage()
    }

    pub fn acked(&self) -> Epoch {
        self.maps.iter().map(|m| m.acked()).min().unwrap_or(0)
    }

    /// Begins a cut on every map at the same epoch; returns it.
    pub fn begin_cut(&mut self) -> Result<Epoch> {
        let e = self.maps.iter().map(|m| m.next_epoch()).max().unwrap_or(1);
        for m in &mut self.maps {
            while m.next_epoch() < e {
                m.begin_cut()?;
            }
            let got = m.begin_cut()?;
            debug_assert_eq!(got, e);
        }
        Ok(e)
    }

    pub fn set_acked(&mut self, e: Epoch) -> Result<()> {
        for m in &mut self.maps {
            m.set_acked(e)?;
        }
        Ok(())
    }

    pub fn dirty_chunks(&self) -> (u64, u64) {
        let mut chunks = 0;
        let mut bytes = 0;
        for m in &self.maps {
            let n = m.dirty_count();
            chunks += n;
            bytes += n * m.geometry().chunk_size.bytes() as u64;
        }
        (chunks, bytes)
    }

    pub fn close_clean(self) -> Result<()> {
        for m in self.maps {
            m.close_clean()?;
        }
        Ok(())
    }
}
