//! Why a retention policy is refused.
//!
//! Every message names the bad part: the rule by its position (counted from 1) and its text,
//! and the token in it that is wrong. All of them are permanent: the policy text must change.

/// A retention policy that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// the retention grid is empty: give at least one rule, such as `24x1h`
    #[error("the retention grid is empty: give at least one rule, such as `24x1h`")]
    Empty,

    /// rule {pos} is empty: is there one `|` too many?
    #[error("rule {pos} is empty: is there one `|` too many?")]
    EmptyRule { pos: usize },

    /// rule {pos} '{rule}': expected COUNTxINTERVAL, such as `24x1h`
    #[error("rule {pos} '{rule}': expected COUNTxINTERVAL, such as `24x1h`")]
    NotARule { pos: usize, rule: String },

    /// rule {pos} '{rule}': count '{count}' is not a whole number
    #[error("rule {pos} '{rule}': count '{count}' is not a whole number")]
    BadCount { pos: usize, rule: String, count: String },

    /// rule {pos} '{rule}': count is 0; a rule covers at least one interval
    #[error("rule {pos} '{rule}': count is 0; a rule covers at least one interval")]
    ZeroCount { pos: usize, rule: String },

    /// rule {pos} '{rule}': interval '{interval}' is not a duration such as `30s`, `10m`, `1h` or `7d` ({reason})
    #[error(
        "rule {pos} '{rule}': interval '{interval}' is not a duration such as `30s`, `10m`, `1h` or `7d` ({reason})"
    )]
    BadInterval { pos: usize, rule: String, interval: String, reason: String },

    /// rule {pos} '{rule}': interval is 0
    #[error("rule {pos} '{rule}': interval is 0")]
    ZeroInterval { pos: usize, rule: String },

    /// rule {pos} '{rule}': interval {interval} is below the minimum of 1s
    #[error("rule {pos} '{rule}': interval {interval} is below the minimum of 1s")]
    IntervalTooShort { pos: usize, rule: String, interval: String },

    /// rule {pos} '{rule}': interval {interval} is not a whole number of milliseconds
    #[error("rule {pos} '{rule}': interval {interval} is not a whole number of milliseconds")]
    SubMillisecond { pos: usize, rule: String, interval: String },

    /// rule {pos} '{rule}': unknown modifier '{modifier}'; the only one is `(keep=all)`
    #[error("rule {pos} '{rule}': unknown modifier '{modifier}'; the only one is `(keep=all)`")]
    UnknownModifier { pos: usize, rule: String, modifier: String },

    /// rule {pos} '{rule}': unexpected '{trailing}' after `(keep=all)`
    #[error("rule {pos} '{rule}': unexpected '{trailing}' after `(keep=all)`")]
    Trailing { pos: usize, rule: String, trailing: String },

    /// rule {pos} '{rule}': interval {interval} is finer than the {previous} of rule {previous_pos}; intervals must not get finer going back in time
    #[error(
        "rule {pos} '{rule}': interval {interval} is finer than the {previous} of rule {previous_pos}; intervals must not get finer going back in time"
    )]
    FinerInterval { pos: usize, rule: String, interval: String, previous_pos: usize, previous: String },

    /// rule {pos} '{rule}': keeps every point after rule {previous_pos} thinned; `(keep=all)` rules must come first, retention must not get finer going back in time
    #[error(
        "rule {pos} '{rule}': keeps every point after rule {previous_pos} thinned; `(keep=all)` rules must come first, retention must not get finer going back in time"
    )]
    KeepAllAfterThinning { pos: usize, rule: String, previous_pos: usize },

    /// the grid has {rules} rules; at most 32 are allowed
    #[error("the grid has {rules} rules; at most 32 are allowed")]
    TooManyRules { rules: usize },

    /// the grid spans {span}, more than the 100 years allowed
    #[error("the grid spans {span}, more than the 100 years allowed")]
    SpanTooLong { span: String },

    /// keep_last {keep_last} is above the 1000000 allowed
    #[error("keep_last {keep_last} is above the 1000000 allowed")]
    KeepLastTooLarge { keep_last: u32 },
}
