//! drpair change tracking: the persistent change map and the trackers that feed it.
//!
//! A [`ChangeMap`] per protected disk records, for every chunk, the epoch of its last change
//! and the blake3 hash of its content as the agent last read it. A [`Tracker`] (`tracefs`, the
//! kernel's block tracepoints; `scan`, reading and hashing every chunk; and a fake for tests)
//! finds what changed and stamps it into the maps of all disks of a pair at each cut. How the
//! pieces fit: `ARCHITECTURE.md` at the repository's root.
//!
//! # Invariants
//!
//! 1. **A chunk's epoch never decreases within a lineage.** Marks only raise an epoch; only
//!    [`ChangeMap::reset`], which starts a new lineage, rewrites them.
//! 2. **Dirty = epoch > acknowledged epoch.** "Changed since epoch E" is answerable (replay,
//!    dump markers, failback) with [`ChangeMap::changed_since`] for every E from the map's
//!    history start ([`ChangeMap::history_from`]) on; older E are refused
//!    ([`ChangeMapError::HistoryTooShort`]), never answered from an incomplete history. The
//!    history start only rises within a lineage (joining a pair, a tracking gap).
//! 3. **The acknowledged epoch only advances on the standby's commit**
//!    ([`ChangeMap::set_acked`]), never lowers within a lineage except when the standby rolls
//!    its head back to a point ([`ChangeMap::rewind`], not past the history start), and can
//!    only name an epoch that was cut; the entries are made durable before it is.
//! 4. **Epochs keep growing**, across cuts and across lineages: `acked <= last cut < next
//!    epoch`, and a reset never lowers the next epoch.
//! 5. **An unclean stop is detectable.** The clean-shutdown flag is false on disk while a
//!    process owns the map (from [`ChangeMap::create`]/[`ChangeMap::open`] until
//!    [`ChangeMap::close_clean`]); an open that finds it false reports `was_clean = false`,
//!    and the caller treats it as a tracking gap (differential resync), as it does a damaged
//!    or missing map. Never a silent skip.
//! 6. **Bad input changes nothing**: an out-of-range chunk, a map of another geometry, a
//!    damaged file or an epoch not cut yet is refused with an error naming it.

pub mod changemap;
pub mod extents;
pub mod fake;
pub mod header;
pub mod scan;
pub mod tracefs;
pub mod tracker;

pub use changemap::{ChangeMap, ChangeMapError, Hash, Opened};
pub use fake::{FakeHandle, FakeTracker};
pub use scan::ScanTracker;
pub use tracefs::{TracefsConfig, TracefsTracker};
pub use tracker::{Collected, TrackError, Tracker, TrackerSetup, TrackerStats, tracker_by_name};
