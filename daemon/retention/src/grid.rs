//! The retention grid: its rules, their text form and their checks.
//!
//! The text form is `COUNTxINTERVAL[(keep=all)]` rules separated by `|`; [`Grid`]'s `Display`
//! prints the canonical form (intervals through `humantime::format_duration`, rules joined by
//! ` | `), which parses back to the same grid. Serde reads and writes a grid as that text.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::PolicyError;

/// The most rules a grid may have.
pub const MAX_RULES: usize = 32;
/// The shortest interval a rule may have.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// The longest total span of a grid: 100 years of 365.25 days (humantime's `1y`).
pub const MAX_SPAN: Duration = Duration::from_secs(100 * 31_557_600);

/// One rule of a grid: `count` intervals of `interval`, keeping one point per interval bucket,
/// or every point when `keep_all`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rule {
    pub count: u32,
    pub interval: Duration,
    pub keep_all: bool,
}

impl Rule {
    /// How far back in time the rule reaches from its start: `count * interval`.
    pub fn span(&self) -> Duration {
        self.interval.saturating_mul(self.count)
    }

    /// The span in milliseconds, saturating.
    pub(crate) fn span_ms(&self) -> u64 {
        u64::try_from(self.span().as_millis()).unwrap_or(u64::MAX)
    }

    /// The bucket width in milliseconds, at least 1 so that a hand-built zero interval cannot
    /// divide by zero.
    pub(crate) fn bucket_ms(&self) -> u64 {
        u64::try_from(self.interval.as_millis()).unwrap_or(u64::MAX).max(1)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.count, humantime::format_duration(self.interval))?;
        if self.keep_all {
            f.write_str("(keep=all)")?;
        }
        Ok(())
    }
}

/// A retention grid: rules applied one after the other going back in time from now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Grid {
    pub rules: Vec<Rule>,
}

impl Grid {
    /// A grid of these rules, if they pass [`Grid::validate`].
    pub fn new(rules: Vec<Rule>) -> Result<Grid, PolicyError> {
        let grid = Grid { rules };
        grid.validate()?;
        Ok(grid)
    }

    /// Checks a grid built by hand the way parsing checks its text.
    pub fn validate(&self) -> Result<(), PolicyError> {
        check(&self.rules, |i| self.rules[i].to_string())
    }

    /// The total span: points older than this have expired (unless kept for another reason).
    pub fn span(&self) -> Duration {
        self.rules.iter().fold(Duration::ZERO, |sum, rule| sum.saturating_add(rule.span()))
    }

    /// A short plain-English sentence for status output, such as
    /// `every point for 10m, then one per 1m for 1h, one per 10m for 1day`.
    pub fn describe(&self) -> String {
        let clauses: Vec<String> = self
            .rules
            .iter()
            .map(|rule| {
                let span = humantime::format_duration(rule.span());
                if rule.keep_all {
                    format!("every point for {span}")
                } else {
                    format!("one per {} for {span}", humantime::format_duration(rule.interval))
                }
            })
            .collect();
        match clauses.split_first() {
            None => "no points but the newest".to_string(),
            Some((first, [])) => first.clone(),
            Some((first, rest)) => format!("{first}, then {}", rest.join(", ")),
        }
    }
}

impl fmt::Display for Grid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

impl FromStr for Grid {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<Grid, PolicyError> {
        if text.trim().is_empty() {
            return Err(PolicyError::Empty);
        }
        let parts: Vec<&str> = text.split('|').map(str::trim).collect();
        if parts.len() > MAX_RULES {
            return Err(PolicyError::TooManyRules { rules: parts.len() });
        }
        let rules = parts.iter().enumerate().map(|(i, part)| parse_rule(i + 1, part)).collect::<Result<Vec<_>, _>>()?;
        check(&rules, |i| parts[i].to_string())?;
        Ok(Grid { rules })
    }
}

impl From<Grid> for String {
    fn from(grid: Grid) -> String {
        grid.to_string()
    }
}

impl TryFrom<String> for Grid {
    type Error = PolicyError;

    fn try_from(text: String) -> Result<Grid, PolicyError> {
        text.parse()
    }
}

/// Parses one rule's text (trimmed), `pos` counting from 1; only the syntax is checked here.
fn parse_rule(pos: usize, text: &str) -> Result<Rule, PolicyError> {
    let rule = || text.to_string();
    if text.is_empty() {
        return Err(PolicyError::EmptyRule { pos });
    }
    let (body, keep_all) = match text.split_once('(') {
        None => (text, false),
        Some((body, after_open)) => {
            let Some((inner, trailing)) = after_open.split_once(')') else {
                let modifier = format!("({after_open}");
                return Err(PolicyError::UnknownModifier { pos, rule: rule(), modifier });
            };
            if inner.split_whitespace().collect::<String>() != "keep=all" {
                let modifier = format!("({inner})");
                return Err(PolicyError::UnknownModifier { pos, rule: rule(), modifier });
            }
            if !trailing.trim().is_empty() {
                return Err(PolicyError::Trailing { pos, rule: rule(), trailing: trailing.trim().to_string() });
            }
            (body, true)
        }
    };
    let Some((count, interval)) = body.split_once('x') else {
        return Err(PolicyError::NotARule { pos, rule: rule() });
    };
    let (count, interval) = (count.trim(), interval.trim());
    if count.is_empty() || interval.is_empty() {
        return Err(PolicyError::NotARule { pos, rule: rule() });
    }
    let count = match count.bytes().all(|b| b.is_ascii_digit()).then(|| count.parse::<u32>()) {
        Some(Ok(count)) => count,
        _ => return Err(PolicyError::BadCount { pos, rule: rule(), count: count.to_string() }),
    };
    let interval = humantime::parse_duration(interval).map_err(|e| PolicyError::BadInterval {
        pos,
        rule: rule(),
        interval: interval.to_string(),
        reason: e.to_string(),
    })?;
    Ok(Rule { count, interval, keep_all })
}

/// The checks beyond syntax, in rule order; `text(i)` is how rule `i` is named in errors.
fn check(rules: &[Rule], text: impl Fn(usize) -> String) -> Result<(), PolicyError> {
    if rules.is_empty() {
        return Err(PolicyError::Empty);
    }
    if rules.len() > MAX_RULES {
        return Err(PolicyError::TooManyRules { rules: rules.len() });
    }
    let mut last_thinning: Option<usize> = None;
    for (i, r) in rules.iter().enumerate() {
        let (pos, rule) = (i + 1, text(i));
        let interval = || humantime::format_duration(r.interval).to_string();
        if r.count == 0 {
            return Err(PolicyError::ZeroCount { pos, rule });
        }
        if r.interval.is_zero() {
            return Err(PolicyError::ZeroInterval { pos, rule });
        }
        if r.interval < MIN_INTERVAL {
            return Err(PolicyError::IntervalTooShort { pos, rule, interval: interval() });
        }
        if r.interval.subsec_nanos() % 1_000_000 != 0 {
            return Err(PolicyError::SubMillisecond { pos, rule, interval: interval() });
        }
        match last_thinning {
            Some(p) if r.keep_all => {
                return Err(PolicyError::KeepAllAfterThinning { pos, rule, previous_pos: p + 1 });
            }
            Some(p) if r.interval < rules[p].interval => {
                let previous = humantime::format_duration(rules[p].interval).to_string();
                return Err(PolicyError::FinerInterval {
                    pos,
                    rule,
                    interval: interval(),
                    previous_pos: p + 1,
                    previous,
                });
            }
            _ if !r.keep_all => last_thinning = Some(i),
            _ => {}
        }
    }
    let span = rules.iter().try_fold(Duration::ZERO, |sum, r| sum.checked_add(r.interval.checked_mul(r.count)?));
    match span {
        Some(span) if span <= MAX_SPAN => Ok(()),
        Some(span) => Err(PolicyError::SpanTooLong { span: humantime::format_duration(span).to_string() }),
        None => Err(PolicyError::SpanTooLong { span: "more than 500 billion years".to_string() }),
    }
}

#[cfg(test)]
mod tests;
