//! What an instant failover keeps in the pair's record (inside its `FailoverRecord`), so a
//! standby restart resumes it: the API's view of the session, the session's directory, the
//! NBD listener's address and the exports' secret (the same URIs after a restart), and what
//! the guest was asked to be.

use drpair_types::InstantStatus;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The guest an instant failover runs (mode `boot`), as asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuestAsked {
    pub memory_mib: u64,
    pub cpus: u32,
    pub firmware: String,
    pub expect: String,
    pub timeout_seconds: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstantRecord {
    #[serde(flatten)]
    pub view: InstantStatus,
    /// `DATA_DIR/instant/PAIR`: copied-chunk maps, overlays, the guest's files.
    pub dir: PathBuf,
    /// The NBD listener's last address (bound again on a resume when free).
    #[serde(default)]
    pub addr: Option<String>,
    /// The exports' names' secret.
    pub secret: String,
    #[serde(default)]
    pub asked: Option<GuestAsked>,
}
