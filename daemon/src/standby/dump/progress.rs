//! The live progress of a dump load and what a finished load did.

use std::sync::atomic::{AtomicBool, AtomicU64};

/// Live progress of a load (read by status while it runs); `cancel` stops it between blocks.
#[derive(Debug, Default)]
pub struct LoadProgress {
    /// Bytes of the image processed so far.
    pub done: AtomicU64,
    /// Bytes of the image to process (its virtual size), set once after probing.
    pub total: AtomicU64,
    /// Set to stop the load: it ends with [`DumpLoadError::Cancelled`] after the blocks in work
    /// (or kills a running `qemu-img convert`).
    pub cancel: AtomicBool,
    /// True while a qcow2 image is being converted to raw (`done` stays 0 meanwhile).
    pub converting: AtomicBool,
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LoadStats {
    /// Chunks read.
    pub chunks: u64,
    /// All-zero chunks (stored as a flag, no data).
    pub zero: u64,
    /// Version entries written at D (content differs from the base point).
    pub entries: u64,
    /// Chunks equal to their version at the base point: no entry.
    pub same_as_base: u64,
    /// Data chunks whose hash the store already held.
    pub dedup: u64,
    /// Bytes newly written to the chunk store.
    pub stored_bytes: u64,
    /// Bytes of the image read.
    pub raw_bytes: u64,
    /// `raw` or `qcow2`.
    pub format: String,
    /// Duration of the load (conversion included), milliseconds.
    pub millis: u64,
}

impl LoadStats {
    pub(super) fn add(&mut self, o: &LoadStats) {
        self.chunks += o.chunks;
        self.zero += o.zero;
        self.entries += o.entries;
        self.same_as_base += o.same_as_base;
        self.dedup += o.dedup;
        self.stored_bytes += o.stored_bytes;
        self.raw_bytes += o.raw_bytes;
    }
}
