//! The standby's pairs: the persisted record of each pair ([`record`], with the features' last
//! results in types of its own: [`results`]), its runtime view (connection, progress,
//! counters: [`runtime`]), the handle and registry that own both ([`handle`]), how status is
//! derived from them ([`status`]), the short trend behind the panel's charts ([`trend`]), the
//! RPO target in force ([`rpo`]) and the last successes ([`successes`]).

pub mod dates;
pub mod handle;
pub mod link;
pub mod protection;
pub mod record;
pub mod results;
pub mod rpo;
pub mod runtime;
pub mod status;
pub mod successes;
pub mod trend;

#[cfg(test)]
mod record_tests;

pub use handle::{OpError, PairHandle, Registry};
#[cfg(test)]
pub(crate) use record::test_record;
pub use record::{DiskRecord, PairRecord, ReconfiguredRecord, RestartRecord, Rewound, StopAtRecord};
pub use runtime::{Committed, Counters, PairRuntime, RetentionDefaults, SessionHandle};
pub use trend::{INTERVAL, Trend, WINDOW};
