//! Why a command was refused or failed ([`CommandError`]), with what the API needs to answer:
//! the stable error code and, for a parameter, its name.

use super::super::dump::FlowError;
use super::super::pair::OpError;
use drpair_types::{ErrorCode, PairId};

/// Why a command was refused or failed. Every message names the pair.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A parameter is malformed, contradicts another or is not confirmed (400, naming it).
    #[error("{message}")]
    Param {
        /// The request's field at fault (`from_time`, `confirm`, `body`, ...).
        parameter: &'static str,
        /// What is wrong with it and what to give instead.
        message: String,
    },
    /// The point the request names does not exist (404).
    #[error("{0}")]
    PointNotFound(String),
    /// The pair's state does not allow the command now (409); the message names the state.
    #[error("{0}")]
    State(String),
    /// The agent did not answer in time (504).
    #[error("{0}")]
    Timeout(String),
    /// The store or a worker thread failed (500).
    #[error("{0}")]
    Internal(String),
}

impl CommandError {
    /// A parameter error.
    pub fn param(parameter: &'static str, message: impl Into<String>) -> Self {
        CommandError::Param { parameter, message: message.into() }
    }

    /// An internal failure with the error's own message.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        CommandError::Internal(e.to_string())
    }

    /// A refused or failed state change of pair `id`.
    pub fn op(id: &PairId, e: OpError) -> Self {
        match e {
            OpError::Refused(r) => CommandError::State(format!("pair '{id}': {r}")),
            OpError::Store(m) => CommandError::Internal(format!("pair '{id}': {m}")),
        }
    }

    /// The API's stable code for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            CommandError::Param { .. } => ErrorCode::InvalidParameter,
            CommandError::PointNotFound(_) => ErrorCode::PointNotFound,
            CommandError::State(_) => ErrorCode::InvalidPairState,
            CommandError::Timeout(_) => ErrorCode::Timeout,
            CommandError::Internal(_) => ErrorCode::Internal,
        }
    }

    /// The parameter at fault, for a parameter error.
    pub fn parameter(&self) -> Option<&'static str> {
        match self {
            CommandError::Param { parameter, .. } => Some(parameter),
            _ => None,
        }
    }
}

impl From<FlowError> for CommandError {
    fn from(e: FlowError) -> Self {
        match e {
            FlowError::State(m) => CommandError::State(m),
            FlowError::Param(p, m) => CommandError::Param { parameter: p, message: m },
            FlowError::Timeout(m) => CommandError::Timeout(m),
            FlowError::Internal(m) => CommandError::Internal(m),
        }
    }
}
