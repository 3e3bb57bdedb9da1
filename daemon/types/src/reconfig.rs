//! A pair whose agent came back with other disks than those registered: what differs, disk by
//! disk (`configuration_change` in status).

use serde::{Deserialize, Serialize};

/// One disk as registered or as the agent now offers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskShape {
    pub path: String,
    pub size_bytes: u64,
    pub chunk_size: u64,
}

/// How one disk position differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskChangeKind {
    /// Same disk, larger (the only change `adopt-growth` takes without a restart).
    Grown,
    /// Same disk, smaller.
    Shrunk,
    /// Same size, another chunk size.
    ChunkSize,
    /// Another registered disk now sits at this position.
    Moved,
    /// A disk the pair did not have.
    Added,
    /// A registered disk the agent no longer offers.
    Removed,
}

impl DiskChangeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DiskChangeKind::Grown => "grown",
            DiskChangeKind::Shrunk => "shrunk",
            DiskChangeKind::ChunkSize => "chunk size changed",
            DiskChangeKind::Moved => "moved",
            DiskChangeKind::Added => "added",
            DiskChangeKind::Removed => "removed",
        }
    }
}

/// One disk position that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskChange {
    pub index: u32,
    pub change: DiskChangeKind,
    /// As registered (none for an added disk).
    pub old: Option<DiskShape>,
    /// As the agent offers it (none for a removed disk).
    pub new: Option<DiskShape>,
}

impl DiskChange {
    /// "disk 0 (/dev/vdb): grown from 1073741824 to 2147483648 bytes"
    pub fn describe(&self) -> String {
        let path = self.new.as_ref().or(self.old.as_ref()).map(|d| d.path.as_str()).unwrap_or("?");
        let detail = match (&self.old, &self.new) {
            (Some(o), Some(n)) if self.change == DiskChangeKind::Moved => {
                format!("was {}, now {} ({} bytes)", o.path, n.path, n.size_bytes)
            }
            (Some(o), Some(n)) if self.change == DiskChangeKind::ChunkSize => {
                format!("chunk size {} bytes, now {} bytes", o.chunk_size, n.chunk_size)
            }
            (Some(o), Some(n)) => format!("{} from {} to {} bytes", self.change.as_str(), o.size_bytes, n.size_bytes),
            (None, Some(n)) => format!("added: {} bytes, {}-byte chunks", n.size_bytes, n.chunk_size),
            (Some(o), None) => format!("removed (was {} bytes)", o.size_bytes),
            (None, None) => self.change.as_str().to_string(),
        };
        format!("disk {} ({path}): {detail}", self.index)
    }
}

/// The agent's disks differ from the registered ones (`configuration_change` in status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigurationChange {
    /// RFC 3339 time the agent first came back with these disks.
    pub detected_at: String,
    /// The positions that differ, in disk order.
    pub changes: Vec<DiskChange>,
    /// Every difference is a disk that grew: `drpair pairs adopt-growth` takes it without a
    /// restart. Otherwise only `drpair restart` adopts the new disks.
    pub growth_only: bool,
    /// The disks as the agent offers them.
    pub offered: Vec<DiskShape>,
}

/// Compares the registered disks with those an agent offers, position by position.
pub fn compare_disks(registered: &[DiskShape], offered: &[DiskShape]) -> Vec<DiskChange> {
    let mut out = Vec::new();
    for i in 0..registered.len().max(offered.len()) {
        let (old, new) = (registered.get(i), offered.get(i));
        let change = match (old, new) {
            (Some(o), Some(n)) if o == n => continue,
            (Some(o), Some(n)) if o.path != n.path && registered.iter().any(|r| r.path == n.path) => {
                DiskChangeKind::Moved
            }
            (Some(o), Some(n)) if o.chunk_size != n.chunk_size => DiskChangeKind::ChunkSize,
            (Some(o), Some(n)) if n.size_bytes > o.size_bytes => DiskChangeKind::Grown,
            (Some(o), Some(n)) if n.size_bytes < o.size_bytes => DiskChangeKind::Shrunk,
            // Same size and chunks under another name: the same disk renamed (a loop or
            // device node renumbered at boot), not a change of configuration.
            (Some(_), Some(_)) => continue,
            (None, Some(_)) => DiskChangeKind::Added,
            (Some(_), None) => DiskChangeKind::Removed,
            (None, None) => unreachable!("within the longer list"),
        };
        out.push(DiskChange { index: i as u32, change, old: old.cloned(), new: new.cloned() });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(path: &str, size: u64) -> DiskShape {
        DiskShape { path: path.into(), size_bytes: size, chunk_size: 65536 }
    }

    #[test]
    fn each_kind_of_difference_is_named() {
        let reg = [d("/dev/a", 1 << 20), d("/dev/b", 1 << 20)];
        assert!(compare_disks(&reg, &reg).is_empty());
        // Renamed with the same size: the same disk.
        assert!(compare_disks(&reg, &[d("/dev/x", 1 << 20), d("/dev/b", 1 << 20)]).is_empty());
        let grown = compare_disks(&reg, &[d("/dev/a", 2 << 20), d("/dev/b", 1 << 20)]);
        assert_eq!(grown.len(), 1);
        assert_eq!((grown[0].index, grown[0].change), (0, DiskChangeKind::Grown));
        assert!(grown[0].describe().contains("grown from 1048576 to 2097152 bytes"), "{}", grown[0].describe());
        let shrunk = compare_disks(&reg, &[d("/dev/a", 1 << 19), d("/dev/b", 1 << 20)]);
        assert_eq!(shrunk[0].change, DiskChangeKind::Shrunk);
        let swapped = compare_disks(&reg, &[d("/dev/b", 1 << 20), d("/dev/a", 1 << 20)]);
        assert_eq!(swapped.iter().map(|c| c.change).collect::<Vec<_>>(), vec![DiskChangeKind::Moved; 2]);
        let added = compare_disks(&reg, &[d("/dev/a", 1 << 20), d("/dev/b", 1 << 20), d("/dev/c", 4096)]);
        assert_eq!((added[0].index, added[0].change), (2, DiskChangeKind::Added));
        assert!(added[0].describe().contains("/dev/c"));
        let removed = compare_disks(&reg, &[d("/dev/a", 1 << 20)]);
        assert_eq!((removed[0].index, removed[0].change), (1, DiskChangeKind::Removed));
        let mut chunked = d("/dev/a", 1 << 20);
        chunked.chunk_size = 1 << 20;
        assert_eq!(compare_disks(&reg[..1], &[chunked])[0].change, DiskChangeKind::ChunkSize);
    }
}
