//! The tracefs tracker: passive change tracking from the kernel's block-layer trace event
//! `block:block_rq_complete`, with no kernel module and nothing in the write path.
//!
//! # Why this event
//!
//! `block_rq_complete` fires once per completed request, after the data reached the device,
//! and covers merged and split requests; the number of events matched the I/O count of fio
//! exactly in every measured run. The other candidates are worse: `block_bio_queue` fires
//! before the data lands and counts resubmitted bios twice, `block_rq_insert` misses ordinary
//! writes on disks without an I/O scheduler, and `block_bio_complete` never fires on
//! request-based disks such as loop.
//!
//! # How
//!
//! The tracker owns a private tracefs instance (`<tracefs>/instances/<name>`, see
//! `instance.rs`) with its own per-CPU ring buffers. It enables only this event, with a
//! kernel filter `dev == A || dev == B` on the whole disks of the pair (kernel device
//! numbers, `MAJOR << 20 | MINOR`), so requests to other disks are never recorded. A
//! background thread reads each CPU's `trace_pipe_raw` every poll interval: binary
//! ring-buffer pages ([`page`]) whose layout and record fields are read from the instance's
//! `header_page` and `format` files at start ([`format`](mod@format)), never compiled in. Each event's
//! `rwbs` letters give the operation ([`rwbs`]): reads are ignored; writes, discards,
//! write-zeroes and secure erases are changes, as is anything else that covers sectors
//! (`nr_sector == 0`, a flush, is ignored). Write-zeroes matter: a tracker that only looked
//! at writes missed blocks that ext4 and `fallocate` zeroed.
//!
//! The chunks an event touches are set in a per-disk bitset of pending chunks. At a cut,
//! [`collect`](crate::Tracker::collect) drains once more under the lock the thread also
//! holds while it reads and folds a page, so every request that completed before the call is
//! included; it stamps the pending chunks into the change maps with the cut's epoch and
//! clears them. Cuts are [`Fuzzy`](drpair_types::Consistency::Fuzzy): the disks are live.
//!
//! # Partitions
//!
//! Requests to a partition are reported on the whole disk, in whole-disk sectors. A
//! protected partition therefore filters on its whole disk, and each event is intersected
//! with the partition's `[start, start + size)` from sysfs and made relative to its start
//! (`device.rs`). Writes elsewhere on that disk are not the partition's and are not stamped.
//!
//! # Loss is detected, never assumed away
//!
//! The ring buffer overwrites unread events when the reader falls behind. At every cut the
//! tracker compares each CPU's `overrun`, `commit overrun` and `dropped events` counters with
//! the previous cut, and also counts pages flagged as following lost events, malformed
//! pages, records too short to decode and read errors (`loss.rs`); it also checks that the
//! instance still has the filter, event switch and buffer size it set (someone else may have
//! changed them), and puts them back if not. Any of these makes the cut report a gap, which
//! forces a scan: the tracker never pretends to know what it did not see. Out of its reach
//! entirely is what the block layer never sees: SG_IO and NVMe passthrough, DAX, and writes
//! from outside this kernel.
//!
//! # Across agent restarts
//!
//! The instance keeps recording while no one reads it. A clean
//! [`stop`](crate::Tracker::stop) leaves it recording and writes the state file
//! (`state.rs`): the instance and its settings, this boot's id, the loss accounting as last
//! reported, and the chunks drained but not yet stamped. The next
//! [`start`](crate::Tracker::start) takes the instance over when the state file says clean,
//! the boot is the same, the disks and buffer size are the same, and the instance is the
//! very one it left (same inode and creation time, same filter, enabled, same buffer size).
//! Then what was written meanwhile is drained and stamped at the first cut, and if the
//! buffer overflowed meanwhile, the counters say so at that cut. Otherwise the old instance
//! is removed, a fresh one is created, and `start` says why writes before it are unknown;
//! the caller decides what that gap means. Right after reading a clean state file, `start`
//! rewrites it as not clean, so a crash later is never taken for a clean stop; dropping the
//! tracker without `stop` leaves it so.
//!
//! Tracking covers only writes that complete after the instance exists: start it before the
//! first copy of a disk.

mod device;
mod drain;
pub mod format;
mod instance;
mod loss;
pub mod page;
mod pending;
pub mod rwbs;
#[cfg(test)]
mod samples;
mod state;
mod tracker;

pub use device::{DiskDevice, kernel_dev};
pub use instance::{filter_for, read_text};
pub use tracker::TracefsTracker;

use crate::tracker::TrackerSetup;
use std::path::PathBuf;
use std::time::Duration;

/// How a [`TracefsTracker`] is set up.
#[derive(Debug, Clone)]
pub struct TracefsConfig {
    /// Instance name under `<tracefs_root>/instances/`.
    pub instance: String,
    /// The pair's disks in map order (block devices or partitions).
    pub disks: Vec<PathBuf>,
    /// Per-CPU ring buffer size, KiB.
    pub buffer_kib: u64,
    /// Where the tracker records what a clean stop left behind.
    pub state_file: PathBuf,
    /// Mount point of tracefs (default `/sys/kernel/tracing`).
    pub tracefs_root: PathBuf,
    /// How often the background drainer empties the per-CPU buffers.
    pub poll_interval: Duration,
}

/// Removes the tracefs instance of `pair` under the default mount, if there is one (an agent
/// decommissioned). Returns whether one was removed. Its tracker must be stopped.
pub fn remove_pair_instance(pair: &str) -> std::io::Result<bool> {
    let inst = instance::Instance::new(std::path::Path::new("/sys/kernel/tracing"), &format!("drpair-{pair}"));
    if !inst.exists() {
        return Ok(false);
    }
    // Stop recording first: an instance being written to may be refused removal.
    let _ = std::fs::write(inst.dir.join("tracing_on"), "0");
    inst.remove().map(|()| true)
}

impl TracefsConfig {
    /// The agent's setup: instance `drpair-<pair>`, state in `<state_dir>/tracefs.state`.
    pub fn for_pair(setup: &TrackerSetup) -> Self {
        Self {
            instance: format!("drpair-{}", setup.pair),
            disks: setup.disks.clone(),
            buffer_kib: setup.tracefs_buffer_kib,
            state_file: setup.state_dir.join("tracefs.state"),
            tracefs_root: PathBuf::from("/sys/kernel/tracing"),
            poll_interval: Duration::from_millis(20),
        }
    }
}
