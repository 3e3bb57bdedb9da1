//! A retention policy: a grid plus keep-last, with the defaults in one place.

use serde::{Deserialize, Serialize};

use crate::{Grid, PolicyError};

/// The default grid, finer than AWS DRS: every point for 10 minutes, one per minute for the
/// next hour, one per 10 minutes for a day, one per hour for a week, one per day for a month.
pub const DEFAULT_GRID: &str = "1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1d";
/// The default number of newest points always kept.
pub const DEFAULT_KEEP_LAST: u32 = 10;
/// The largest `keep_last` allowed.
pub const MAX_KEEP_LAST: u32 = 1_000_000;

/// A retention policy: a grid plus keep-last.
///
/// Serialised as `{"grid": "<grid text>", "keep_last": N}`. Reading one refuses unknown
/// fields, fills missing ones from [`Policy::default`] and checks the result like
/// [`Policy::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "PolicyConfig")]
pub struct Policy {
    pub grid: Grid,
    /// The `keep_last` newest points are always kept.
    pub keep_last: u32,
}

impl Default for Policy {
    /// [`DEFAULT_GRID`] and [`DEFAULT_KEEP_LAST`].
    fn default() -> Policy {
        let grid = DEFAULT_GRID.parse().expect("the default grid is valid (see the tests)");
        Policy { grid, keep_last: DEFAULT_KEEP_LAST }
    }
}

impl Policy {
    /// A policy from the grid's text and keep-last.
    pub fn parse(grid: &str, keep_last: u32) -> Result<Policy, PolicyError> {
        Policy::new(grid.parse()?, keep_last)
    }

    /// A policy of a grid built by hand, if both pass [`Policy::validate`].
    pub fn new(grid: Grid, keep_last: u32) -> Result<Policy, PolicyError> {
        let policy = Policy { grid, keep_last };
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the grid (see [`Grid::validate`]) and that `keep_last` is at most
    /// [`MAX_KEEP_LAST`].
    pub fn validate(&self) -> Result<(), PolicyError> {
        self.grid.validate()?;
        if self.keep_last > MAX_KEEP_LAST {
            return Err(PolicyError::KeepLastTooLarge { keep_last: self.keep_last });
        }
        Ok(())
    }
}

/// A policy as read, before the checks.
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct PolicyConfig {
    grid: Grid,
    keep_last: u32,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        let Policy { grid, keep_last } = Policy::default();
        PolicyConfig { grid, keep_last }
    }
}

impl TryFrom<PolicyConfig> for Policy {
    type Error = PolicyError;

    fn try_from(config: PolicyConfig) -> Result<Policy, PolicyError> {
        Policy::new(config.grid, config.keep_last)
    }
}
