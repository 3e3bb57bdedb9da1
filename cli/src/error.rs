//! Why a command failed, and the exit code that tells scripts.
//!
//! The exit code of an HTTP error follows its status alone ([`exit_code_for_status`]), so a
//! proxy's bare 404 and the standby's `PairNotFound` give the same code.

use drpair_types::{ApiError, ErrorCode};
use std::fmt;
use std::io;

/// Exit codes of `drpair` (also listed in `drpair --help`).
pub mod exit {
    pub const OK: u8 = 0;
    /// Any other failure (local I/O, truncated export, unexpected answer, HTTP 500).
    pub const FAILURE: u8 = 1;
    /// Usage error: bad arguments (clap).
    pub const USAGE: u8 = 2;
    /// HTTP 404: no such pair, point or disk.
    pub const NOT_FOUND: u8 = 3;
    /// HTTP 409: the pair's state does not allow this now.
    pub const INVALID_STATE: u8 = 4;
    /// HTTP 401/403: missing or wrong token.
    pub const ACCESS_DENIED: u8 = 5;
    /// The standby could not be reached (refused, DNS, connect timeout).
    pub const UNREACHABLE: u8 = 6;
    /// HTTP 504/408, or a `--wait`/`--wait-synced` timeout.
    pub const TIMED_OUT: u8 = 7;
    /// HTTP 400: a parameter was refused.
    pub const INVALID_PARAMETER: u8 = 8;
    /// Aborted: the confirmation of a destructive action was not given.
    pub const ABORTED: u8 = 9;
    /// An app-consistent cut was asked for, but quiescing failed: the point is fuzzy.
    pub const NOT_APP_CONSISTENT: u8 = 10;
    /// `debug recover` wrote the image, but some chunks could not be read and are zeros in it.
    pub const RECOVERED_WITH_DAMAGE: u8 = 11;
    /// `verify` found damaged points, or `verify --source` chunks that differed from the point.
    pub const DAMAGE_FOUND: u8 = 12;
}

/// The exit code for an HTTP error status.
pub fn exit_code_for_status(status: u16) -> u8 {
    match status {
        400 => exit::INVALID_PARAMETER,
        401 | 403 => exit::ACCESS_DENIED,
        404 => exit::NOT_FOUND,
        409 => exit::INVALID_STATE,
        408 | 504 => exit::TIMED_OUT,
        _ => exit::FAILURE,
    }
}

/// Why a command failed; `Display` is the message printed after `error: `.
#[derive(Debug)]
pub enum CliError {
    /// The standby answered an error status with an `ApiError` body.
    Api { status: u16, error: ApiError, hint: Option<String> },
    /// An error status whose body is not an `ApiError` (a proxy, an old standby).
    Http { status: u16, method: &'static str, url: String, body: String },
    /// No connection to the standby at all.
    Unreachable { url: String, detail: String },
    /// The connection broke or the standby sent something unreadable.
    Protocol { url: String, detail: String },
    /// A client-side wait gave up.
    TimedOut(String),
    /// A client-side wait found the pair in a state it will not leave by itself.
    State(String),
    /// The operator did not confirm a destructive action; nothing was sent.
    NotConfirmed,
    /// An image export ended before Content-Length bytes arrived.
    Truncated { pair: String, point: String, disk: u32, received: u64, total: u64, partial_kept: Option<String> },
    /// A local file operation failed.
    Io { context: String, source: io::Error },
    /// Anything else, with its message.
    Failed(String),
    /// `points create --wait` with --freeze/--hooks: the point was cut, but quiescing failed,
    /// so it is fuzzy. `response` is the standby's answer, printed as is with `--output json`.
    NotAppConsistent { point: u64, failure: String, response: serde_json::Value },
    /// `debug recover` wrote the image with `damaged` of its `chunks` as zeros; `report` is
    /// printed as is with `--output json`.
    RecoveredWithDamage { damaged: u64, chunks: u64, out: String, report: serde_json::Value },
    /// A job the command followed did not end well: `verify` found damage (`damage`: points
    /// damaged, or chunks of the source mismatched) or no result, or a failover or failback
    /// failed; `status` is the job's final status, printed as is with `--output json`.
    JobOutcome { damage: bool, message: String, status: serde_json::Value },
}

impl CliError {
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        CliError::Io { context: context.into(), source }
    }

    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::Api { status, .. } | CliError::Http { status, .. } => exit_code_for_status(*status),
            CliError::Unreachable { .. } => exit::UNREACHABLE,
            CliError::TimedOut(_) => exit::TIMED_OUT,
            CliError::State(_) => exit::INVALID_STATE,
            CliError::NotConfirmed => exit::ABORTED,
            CliError::NotAppConsistent { .. } => exit::NOT_APP_CONSISTENT,
            CliError::RecoveredWithDamage { .. } => exit::RECOVERED_WITH_DAMAGE,
            CliError::JobOutcome { damage: true, .. } => exit::DAMAGE_FOUND,
            CliError::JobOutcome { damage: false, .. } => exit::FAILURE,
            CliError::Protocol { .. } | CliError::Truncated { .. } | CliError::Io { .. } | CliError::Failed(_) => {
                exit::FAILURE
            }
        }
    }

    /// What `--output json` prints on stdout: the `ApiError` as the standby sent it, or an
    /// object of the same shape (`code`, `message`) for errors found by the CLI itself. A
    /// failed app-consistent attempt prints the standby's answer (the point), as on success.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            CliError::Api { error, .. } => return serde_json::to_value(error).unwrap_or_default(),
            CliError::NotAppConsistent { response, .. } => return response.clone(),
            CliError::RecoveredWithDamage { report, .. } => return report.clone(),
            CliError::JobOutcome { status, .. } => return status.clone(),
            _ => {}
        }
        let code = match self {
            CliError::Http { status, .. } => match error_code_for_status(*status) {
                Some(c) => crate::output::wire_name(&c),
                None => "HttpError".to_string(),
            },
            CliError::Unreachable { .. } => "Unreachable".into(),
            CliError::Protocol { .. } => "ProtocolError".into(),
            CliError::TimedOut(_) => "Timeout".into(),
            CliError::State(_) => crate::output::wire_name(&ErrorCode::InvalidPairState),
            CliError::NotConfirmed => "NotConfirmed".into(),
            CliError::Truncated { .. } => "Truncated".into(),
            CliError::Io { .. } => "LocalIo".into(),
            CliError::Api { .. }
            | CliError::NotAppConsistent { .. }
            | CliError::RecoveredWithDamage { .. }
            | CliError::JobOutcome { .. }
            | CliError::Failed(_) => "Failed".into(),
        };
        serde_json::json!({ "code": code, "message": self.to_string() })
    }
}

fn error_code_for_status(status: u16) -> Option<ErrorCode> {
    Some(match status {
        400 => ErrorCode::InvalidParameter,
        401 | 403 => ErrorCode::AccessDenied,
        404 => ErrorCode::NotFound,
        409 => ErrorCode::InvalidPairState,
        504 => ErrorCode::Timeout,
        500 => ErrorCode::Internal,
        _ => return None,
    })
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Api { error, hint, .. } => {
                f.write_str(&error.message)?;
                if let Some(p) = error.parameter.as_deref().filter(|p| !error.message.contains(*p)) {
                    write!(f, " (parameter '{p}')")?;
                }
                if let Some(h) = hint {
                    write!(f, "; {h}")?;
                }
                Ok(())
            }
            CliError::Http { status, method, url, body } => {
                write!(f, "the standby answered HTTP {status} to {method} {url}")?;
                if !body.trim().is_empty() {
                    write!(f, ": {}", body.trim())?;
                }
                Ok(())
            }
            CliError::Unreachable { url, detail } => {
                write!(f, "cannot reach the standby at {url} ({detail}); check --server or DRPAIR_SERVER")
            }
            CliError::Protocol { url, detail } => write!(f, "bad answer from {url}: {detail}"),
            CliError::TimedOut(what) | CliError::State(what) => f.write_str(what),
            CliError::NotConfirmed => f.write_str("not confirmed; nothing was changed"),
            CliError::Truncated { pair, point, disk, received, total, partial_kept } => {
                write!(
                    f,
                    "export of pair {pair} point {point} disk {disk} truncated at {received} of {total} bytes: \
                     the standby stopped sending (see its log)"
                )?;
                if let Some(dev) = partial_kept {
                    write!(f, "; block device {dev} now holds a partial image")?;
                }
                Ok(())
            }
            CliError::Io { context, source } => write!(f, "{context}: {source}"),
            CliError::Failed(msg) | CliError::JobOutcome { message: msg, .. } => f.write_str(msg),
            CliError::NotAppConsistent { point, failure, .. } => {
                write!(f, "app-consistent attempt failed: {failure}; point {point} is fuzzy")
            }
            CliError::RecoveredWithDamage { damaged, chunks, out, .. } => write!(
                f,
                "recovered with damage: {damaged} of {chunks} chunks could not be read and were written as zeros in {out}"
            ),
        }
    }
}

impl std::error::Error for CliError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_to_exit_code() {
        let cases = [
            (400, exit::INVALID_PARAMETER),
            (401, exit::ACCESS_DENIED),
            (403, exit::ACCESS_DENIED),
            (404, exit::NOT_FOUND),
            (409, exit::INVALID_STATE),
            (504, exit::TIMED_OUT),
            (500, exit::FAILURE),
            (502, exit::FAILURE),
        ];
        for (status, code) in cases {
            assert_eq!(exit_code_for_status(status), code, "{status}");
        }
        // Every ErrorCode of the API lands on the code of its status.
        for (c, want) in [
            (ErrorCode::InvalidParameter, 8),
            (ErrorCode::AccessDenied, 5),
            (ErrorCode::PairNotFound, 3),
            (ErrorCode::PointNotFound, 3),
            (ErrorCode::NotFound, 3),
            (ErrorCode::InvalidPairState, 4),
            (ErrorCode::Timeout, 7),
            (ErrorCode::Internal, 1),
        ] {
            assert_eq!(exit_code_for_status(c.http_status()), want, "{c:?}");
        }
    }

    #[test]
    fn local_errors_have_codes_and_json() {
        let cases = [
            (
                CliError::Unreachable { url: "http://s:7701".into(), detail: "refused".into() },
                exit::UNREACHABLE,
                "Unreachable",
            ),
            (CliError::TimedOut("gave up".into()), exit::TIMED_OUT, "Timeout"),
            (CliError::State("pair web-01 is Stopped".into()), exit::INVALID_STATE, "InvalidPairState"),
            (CliError::NotConfirmed, exit::ABORTED, "NotConfirmed"),
            (CliError::Failed("nope".into()), exit::FAILURE, "Failed"),
            (CliError::io("writing x", io::Error::other("disk full")), exit::FAILURE, "LocalIo"),
        ];
        for (err, code, json_code) in cases {
            assert_eq!(err.exit_code(), code, "{err}");
            let json = err.to_json();
            assert_eq!(json["code"], json_code);
            assert_eq!(json["message"], err.to_string());
        }
        let api = CliError::Api {
            status: 400,
            error: ApiError {
                code: ErrorCode::InvalidParameter,
                message: "bad value".into(),
                parameter: Some("timeout_seconds".into()),
            },
            hint: None,
        };
        assert_eq!(api.to_string(), "bad value (parameter 'timeout_seconds')");
        let fuzzy = CliError::NotAppConsistent {
            point: 14,
            failure: "thaw budget of 2s exceeded".into(),
            response: serde_json::json!({"request_id": 3}),
        };
        assert_eq!(fuzzy.exit_code(), 10);
        assert_eq!(fuzzy.to_string(), "app-consistent attempt failed: thaw budget of 2s exceeded; point 14 is fuzzy");
        assert_eq!(fuzzy.to_json(), serde_json::json!({"request_id": 3}));
        assert_eq!(
            api.to_json(),
            serde_json::json!({"code": "InvalidParameter", "message": "bad value", "parameter": "timeout_seconds"})
        );
    }
}
