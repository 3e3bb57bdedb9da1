//! Errors of the change map.

use drpair_types::{DiskGeometry, Epoch};
use std::path::PathBuf;

/// Why a change map operation failed. Operations that fail change nothing.
#[derive(Debug, thiserror::Error)]
pub enum ChangeMapError {
    /// reading, writing, mapping, locking or syncing the file failed
    #[error("change map {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// the file does not exist
    #[error("change map {} does not exist", path.display())]
    Missing { path: PathBuf },
    /// bad magic, version, checksum, field or length: the caller treats it as a tracking gap
    #[error("change map {} is damaged: {reason}; tracking has a gap, a differential resync is needed", path.display())]
    Damaged { path: PathBuf, reason: String },
    /// the map was made for another disk size or chunk size
    #[error(
        "change map {} was made for a disk of {} bytes in chunks of {} bytes, but the disk is now \
         {} bytes in chunks of {} bytes: the disk changed size or chunk size; restart replication \
         (`drpair restart PAIR`) or restore the old geometry",
        path.display(),
        recorded.size_bytes,
        recorded.chunk_size.bytes(),
        actual.size_bytes,
        actual.chunk_size.bytes()
    )]
    GeometryMismatch { path: PathBuf, recorded: DiskGeometry, actual: DiskGeometry },
    /// a chunk number beyond the end of the disk
    #[error("chunk {chunk} is out of range: the disk has {count} chunks")]
    ChunkOutOfRange { chunk: u64, count: u64 },
    /// `set_acked` with an epoch that was never cut: acknowledging it would hide changes
    #[error(
        "change map {}: cannot acknowledge epoch {epoch}: the last cut of this lineage is epoch \
         {last_cut} (only a cut epoch can be committed by the standby)",
        path.display()
    )]
    NotCut { path: PathBuf, epoch: Epoch, last_cut: Epoch },
    /// `rewind` to an epoch older than the map's history start: the chunks changed since then
    /// are not all known
    #[error(
        "change map {}: cannot replay from epoch {epoch}: the change history of this map reaches \
         back to epoch {history_from}, not {epoch}",
        path.display()
    )]
    HistoryTooShort { path: PathBuf, epoch: Epoch, history_from: Epoch },
}

impl ChangeMapError {
    /// True when the map cannot be trusted or does not exist: tracking has a gap, and the
    /// caller recovers with a differential resync (a scan) on a fresh map.
    pub fn is_tracking_gap(&self) -> bool {
        matches!(self, Self::Missing { .. } | Self::Damaged { .. })
    }
}
