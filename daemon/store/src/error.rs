//! The one error type of the store. Each message names the object at fault.

use drpair_types::Epoch;
use rocksdb::ErrorKind;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The store directory could not be opened (missing permissions, held by another process,
    /// written by an incompatible version, damaged).
    #[error("open store at {dir}: {source}")]
    Open { dir: String, source: rocksdb::Error },
    /// rocksdb refused or failed an operation.
    #[error("rocksdb: {0}")]
    Db(#[from] rocksdb::Error),
    /// A stored chunk (or one offered for storing) is damaged: bad header, wrong length, or its
    /// bytes do not hash to its name.
    #[error("chunk {hash}: {reason}")]
    Corrupt { hash: String, reason: String },
    /// A chunk the version index refers to (or a caller asked for) is not in the store.
    #[error("chunk {hash}: not in the store")]
    MissingChunk { hash: String },
    /// A stored zstd chunk could not be decompressed.
    #[error("chunk {hash}: zstd decompression failed: {reason}")]
    Decompress { hash: String, reason: String },
    /// A stored record (version entry, recovery point, pair record, counter) does not decode,
    /// or a record to be stored does not encode.
    #[error("{what}: {reason}")]
    BadRecord { what: String, reason: String },
    /// Versions were written for, or a point committed at, an epoch that is not newer than the
    /// pair's newest committed point: that would change a committed point (invariant 2).
    #[error("pair #{pair_no} epoch {epoch}: not newer than its committed point at epoch {committed}")]
    EpochNotOpen { pair_no: u32, epoch: Epoch, committed: Epoch },
    /// A recovery point given to `commit_point` / `update_point` is not acceptable.
    #[error("pair #{pair_no} recovery point {id}: {reason}")]
    InvalidPoint { pair_no: u32, id: u64, reason: String },
    /// `update_point` on a point that was never committed (or was wiped).
    #[error("pair #{pair_no} recovery point {id}: not found")]
    PointNotFound { pair_no: u32, id: u64 },
    /// A chunk range that cannot be answered: its end does not fit in 64 bits, or it holds
    /// more chunks than one call answers.
    #[error("pair #{pair_no} disk {disk} chunks {first}+{count}: {reason}")]
    Range { pair_no: u32, disk: u32, first: u64, count: u64, reason: String },
    /// Every pair number has been handed out.
    #[error("no pair number left to allocate")]
    PairNumbersExhausted,
    /// The object store holding the chunk packs (`store = "s3"`) failed a request or cannot
    /// be reached; `store` names it (endpoint, bucket and prefix, never a credential).
    #[error("object store {store}: {what}: {reason}")]
    ObjectStore { store: String, what: String, reason: String, retryable: bool },
    /// The store was created with another chunk backend than the one it is opened with.
    #[error("store at {dir}: {reason}")]
    Backend { dir: String, reason: String },
}

impl StoreError {
    /// True when the same call may succeed if repeated later (rocksdb busy, timed out, write
    /// stall aborted). Corruption, bad input and missing objects are permanent.
    pub fn is_retryable(&self) -> bool {
        match self {
            StoreError::Db(e) => matches!(
                e.kind(),
                ErrorKind::Busy
                    | ErrorKind::TimedOut
                    | ErrorKind::TryAgain
                    | ErrorKind::Aborted
                    | ErrorKind::Incomplete
            ),
            StoreError::ObjectStore { retryable, .. } => *retryable,
            StoreError::Open { .. }
            | StoreError::Backend { .. }
            | StoreError::Corrupt { .. }
            | StoreError::MissingChunk { .. }
            | StoreError::Decompress { .. }
            | StoreError::BadRecord { .. }
            | StoreError::EpochNotOpen { .. }
            | StoreError::InvalidPoint { .. }
            | StoreError::PointNotFound { .. }
            | StoreError::Range { .. }
            | StoreError::PairNumbersExhausted => false,
        }
    }

    pub(crate) fn bad_record(what: impl Into<String>, reason: impl ToString) -> Self {
        StoreError::BadRecord { what: what.into(), reason: reason.to_string() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_object() {
        let e = StoreError::Corrupt { hash: "ab12".into(), reason: "hash mismatch".into() };
        assert_eq!(e.to_string(), "chunk ab12: hash mismatch");
        assert!(!e.is_retryable());
        let e = StoreError::MissingChunk { hash: "ff".into() };
        assert_eq!(e.to_string(), "chunk ff: not in the store");
        let e = StoreError::EpochNotOpen { pair_no: 3, epoch: 7, committed: 9 };
        assert_eq!(e.to_string(), "pair #3 epoch 7: not newer than its committed point at epoch 9");
        let e = StoreError::bad_record("pair 'web-01' record", "expected value");
        assert_eq!(e.to_string(), "pair 'web-01' record: expected value");
    }
}
