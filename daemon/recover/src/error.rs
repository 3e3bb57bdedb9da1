//! Why a recovery did not run, or stopped.

use drpair_store::StoreError;
use std::io;

/// Why a recovery did not run (or stopped).
#[derive(Debug, thiserror::Error)]
pub enum RecoverError {
    /// A process (the standby) holds the store's lock.
    #[error("the store at {dir} is in use (is drpaird running?) — stop the standby first")]
    InUse { dir: String },
    /// The data dir holds no store.
    #[error("no standby store at {dir}: is {data_dir} a standby's data dir? (see --data-dir)")]
    NoStore { dir: String, data_dir: String },
    /// The store failed.
    #[error("reading the store: {0}")]
    Store(#[from] StoreError),
    #[error("pair '{pair}' is not in the store at {dir}; {known}")]
    PairNotFound { pair: String, dir: String, known: String },
    #[error("pair '{pair}' has no recovery point {point}; {nearest}")]
    PointNotFound { pair: String, point: String, nearest: String },
    #[error("pair '{pair}' has {count} disk(s), numbered from 0; disk {disk} does not exist")]
    DiskNotFound { pair: String, disk: u32, count: usize },
    /// The output was refused; nothing was written.
    #[error("{0}")]
    Target(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

pub(crate) fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> RecoverError {
    let context = context.into();
    move |source| RecoverError::Io { context, source }
}
