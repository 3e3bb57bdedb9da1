//! Why an agent's connection ended with an error ([`ConnError`]). The message is what the
//! standby logs, shows in the pair's status and sends the agent in `StandbyMsg::Error`; each
//! names the pair (and the disk, chunk or epoch at fault).

use crate::link::LinkError;
use crate::standby::ingest::IngestError;
use drpair_types::{ErrorClass, PairId};

/// Why an agent's connection ended with an error. Nothing of the open epoch is committed
/// either way; the agent ships it again on its next connection.
#[derive(Debug, thiserror::Error)]
pub enum ConnError {
    /// The agent broke the link protocol: a second `Hello`, an oversized query, chunks for an
    /// epoch that is not open or does not follow, a chunk sent twice, an incomplete baseline,
    /// a claim without its proof, a range outside the disk.
    #[error("{0}")]
    Protocol(String),
    /// A frame's chunks were refused or could not be stored.
    #[error(transparent)]
    Ingest(#[from] IngestError),
    /// The pair refuses what the agent sends in its state (failed over).
    #[error("{0}")]
    Refused(String),
    /// The link failed (reset, garbled frame).
    #[error("pair '{pair}': {source}")]
    Link {
        /// The pair whose link it is.
        pair: PairId,
        /// What the link reported.
        source: LinkError,
    },
    /// The standby ended the connection (a reason given by the caller that ended it).
    #[error("{0}")]
    Ended(String),
    /// The store failed to answer a query or to commit.
    #[error("{0}")]
    Store(String),
    /// A worker thread of the standby failed (a bug: the connection ends, the agent retries).
    #[error("{0}")]
    Worker(String),
}

impl ConnError {
    /// Transient or permanent, for this connection's agent: the link, the standby ending it
    /// and worker failures go away on a new connection; a protocol breach, a refused chunk,
    /// a store failure or a refusing state repeat until someone acts.
    pub fn class(&self) -> ErrorClass {
        match self {
            ConnError::Link { .. } | ConnError::Ended(_) | ConnError::Worker(_) => ErrorClass::Transient,
            ConnError::Ingest(e) => e.class(),
            ConnError::Protocol(_) | ConnError::Refused(_) | ConnError::Store(_) => ErrorClass::Permanent,
        }
    }

    /// A failed worker thread.
    pub fn worker(e: tokio::task::JoinError) -> Self {
        ConnError::Worker(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_and_the_standby_ending_it_are_worth_a_new_connection() {
        let pair = PairId::new("web-01").unwrap();
        assert_eq!(ConnError::Link { pair, source: LinkError::Closed }.class(), ErrorClass::Transient);
        assert_eq!(ConnError::Ended("paused".into()).class(), ErrorClass::Transient);
        assert_eq!(ConnError::Protocol("Hello sent twice".into()).class(), ErrorClass::Permanent);
        let refused = IngestError::Corrupt("pair 'web-01' disk 0 chunk 9: hash mismatch".into());
        let e = ConnError::from(refused);
        assert_eq!(e.class(), ErrorClass::Transient, "damaged on the way: shipped again");
        assert_eq!(e.to_string(), "pair 'web-01' disk 0 chunk 9: hash mismatch");
    }
}
