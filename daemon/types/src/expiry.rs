//! Credentials that stop working at a known time (issue 26): the standby's TLS server
//! certificate, the CA that signs enrolled agents, each pair's agent certificate, and API
//! tokens made with an expiry. The standby computes them in one place
//! (`drpaird`'s `standby/expiry.rs`) for the metrics, `GET /api/v1` and notifications.

use serde::{Deserialize, Serialize};

/// At or under this many days left: a warning (the shipped alert rules say the same).
pub const EXPIRY_WARNING_DAYS: i64 = 14;
/// At or under this many days left (or expired): critical.
pub const EXPIRY_CRITICAL_DAYS: i64 = 3;

/// What expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryRole {
    /// The certificate the standby presents to agents and API clients.
    Server,
    /// The CA that signs agents' certificates at enrollment.
    Ca,
    /// A pair's agent certificate (the newest one not revoked).
    Agent,
    /// An API token made with an expiry.
    Token,
}

impl ExpiryRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ExpiryRole::Server => "server",
            ExpiryRole::Ca => "ca",
            ExpiryRole::Agent => "agent",
            ExpiryRole::Token => "token",
        }
    }

    /// A certificate (not a token).
    pub fn is_certificate(self) -> bool {
        self != ExpiryRole::Token
    }
}

/// How close an expiry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExpiryLevel {
    Ok,
    /// [`EXPIRY_WARNING_DAYS`] or fewer left.
    Warning,
    /// [`EXPIRY_CRITICAL_DAYS`] or fewer left.
    Critical,
    /// Past its end: refused by peers (a certificate) or by the standby (a token).
    Expired,
}

impl ExpiryLevel {
    /// The level of something that ends at `not_after_unix`, at `now_unix` (seconds).
    pub fn of(not_after_unix: i64, now_unix: i64) -> Self {
        let left = not_after_unix.saturating_sub(now_unix);
        if left <= 0 {
            ExpiryLevel::Expired
        } else if left <= EXPIRY_CRITICAL_DAYS * 86_400 {
            ExpiryLevel::Critical
        } else if left <= EXPIRY_WARNING_DAYS * 86_400 {
            ExpiryLevel::Warning
        } else {
            ExpiryLevel::Ok
        }
    }
}

/// One credential and when it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub role: ExpiryRole,
    /// The pair (agent), the token's name, or the subject's common name (server, CA).
    pub name: String,
    /// The certificate's subject, when the standby holds the certificate (server, CA).
    #[serde(default)]
    pub subject: Option<String>,
    /// The agent certificate's fingerprint (`sha256:…`).
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// RFC 3339 UTC.
    pub not_after: String,
    pub not_after_unix: i64,
    /// Whole days left (floored; negative once expired).
    pub days_left: i64,
    pub level: ExpiryLevel,
}

impl Expiry {
    /// Fills in the days left and the level at `now_unix`.
    pub fn new(role: ExpiryRole, name: String, not_after_unix: i64, not_after: String, now_unix: i64) -> Self {
        Self {
            role,
            name,
            subject: None,
            fingerprint: None,
            not_after,
            not_after_unix,
            days_left: not_after_unix.saturating_sub(now_unix).div_euclid(86_400),
            level: ExpiryLevel::of(not_after_unix, now_unix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_days_left_at_the_edges() {
        let day = 86_400;
        let now = 1_800_000_000;
        for (left, level, days) in [
            (400 * day, ExpiryLevel::Ok, 400),
            (14 * day + 1, ExpiryLevel::Ok, 14),
            (14 * day, ExpiryLevel::Warning, 14),
            (3 * day + 1, ExpiryLevel::Warning, 3),
            (3 * day, ExpiryLevel::Critical, 3),
            (1, ExpiryLevel::Critical, 0),
            (0, ExpiryLevel::Expired, 0),
            (-1, ExpiryLevel::Expired, -1),
            (-2 * day, ExpiryLevel::Expired, -2),
        ] {
            let e = Expiry::new(ExpiryRole::Server, "s".into(), now + left, String::new(), now);
            assert_eq!((e.level, e.days_left), (level, days), "{left} s left");
        }
        assert_eq!(serde_json::to_value(ExpiryRole::Ca).unwrap(), "ca");
        assert_eq!(serde_json::to_value(ExpiryLevel::Expired).unwrap(), "expired");
        assert!(!ExpiryRole::Token.is_certificate() && ExpiryRole::Agent.is_certificate());
    }
}
