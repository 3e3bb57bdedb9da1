//! Identifiers: pair ids, epochs, lineages, recovery point ids, checkpoints.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Agent-side epoch counter. Every change is stamped with the epoch current when it happened;
/// a cut closes it. Epochs of one pair only grow, also across lineages.
pub type Epoch = u64;

/// A recovery point is named by the epoch it commits (unique within a pair).
pub type PointId = u64;

/// UUID of an unbroken chain of epochs; restarting replication starts a new one.
pub type Lineage = uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// pair id is empty or longer than 64 characters
    #[error("pair id must be 1 to 64 characters long, got {0}")]
    PairIdLength(usize),
    /// pair id holds a character outside `A-Z a-z 0-9 . _ -`
    #[error("pair id '{0}' may only contain letters, digits, '.', '_' and '-', and must not start with '.' or '-'")]
    PairIdChars(String),
    /// checkpoint text is not `LINEAGE:EPOCH`
    #[error("checkpoint '{0}' is not of the form LINEAGE:EPOCH (as shown in recovery_checkpoint)")]
    Checkpoint(String),
}

/// The id of a DR pair, shown everywhere as `DR Pair ID`. Safe to use in paths, URLs and keys.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PairId(String);

impl PairId {
    /// Checks and wraps a pair id.
    pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
        let s = s.into();
        if s.is_empty() || s.len() > 64 {
            return Err(IdError::PairIdLength(s.len()));
        }
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if !s.chars().all(ok_char) || s.starts_with('.') || s.starts_with('-') {
            return Err(IdError::PairIdChars(s));
        }
        Ok(Self(s))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PairId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl From<PairId> for String {
    fn from(p: PairId) -> String {
        p.0
    }
}

impl FromStr for PairId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        Self::new(s)
    }
}

impl fmt::Display for PairId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Where replication resumes: an epoch durably applied on the standby, within a lineage.
/// Shown to users as `recovery_checkpoint` in the text form `LINEAGE:EPOCH`, which is
/// accepted back as a start position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Checkpoint {
    pub lineage: Lineage,
    pub epoch: Epoch,
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.lineage, self.epoch)
    }
}

impl FromStr for Checkpoint {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        let bad = || IdError::Checkpoint(s.to_string());
        let (l, e) = s.rsplit_once(':').ok_or_else(bad)?;
        Ok(Self { lineage: l.parse().map_err(|_| bad())?, epoch: e.parse().map_err(|_| bad())? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_ids() {
        for ok in ["web-01", "a", "DB_2.prod", &"x".repeat(64)] {
            assert!(PairId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", ".x", "a/b", "a b", "é", &"x".repeat(65), "../etc"] {
            assert!(PairId::new(bad).is_err(), "{bad}");
        }
        let e = serde_json::from_str::<PairId>("\"a/b\"").unwrap_err();
        assert!(e.to_string().contains("may only contain"));
    }

    #[test]
    fn checkpoint_round_trip() {
        let c = Checkpoint { lineage: uuid::Uuid::new_v4(), epoch: 42 };
        assert_eq!(c.to_string().parse::<Checkpoint>().unwrap(), c);
        assert!("nope".parse::<Checkpoint>().is_err());
        assert!("x:1".parse::<Checkpoint>().is_err());
    }
}
