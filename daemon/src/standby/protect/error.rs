//! Why a protection of recovered disks did not start or stop ([`ProtectError`]); each
//! message names the pair, the standby or the parameter.

/// Why a protection did not start or stop. Nothing changed.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// A parameter is wrong, or the standby it names does not answer (400).
    #[error("{1}")]
    Param(&'static str, String),
    /// The pair's state does not allow it now (409).
    #[error("{0}")]
    State(String),
    /// The other standby refused the agent's enrollment (409).
    #[error("{0}")]
    Refused(String),
    #[error("internal error: {0}")]
    Internal(String),
}
