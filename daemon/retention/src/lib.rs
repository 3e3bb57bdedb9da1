//! Retention: which recovery points of a pair are kept, as a pure function of the points, the
//! policy and the time.
//!
//! A standby cuts a recovery point every second or so; retention thins them the way operators
//! expect: every point for the last minutes, then one per minute, one per ten minutes, one per
//! hour, one per day. [`plan`] takes the points of one pair, a [`Policy`] and "now", and returns
//! a [`Mark`] (keep or remove, and why) for every point. It does no I/O and reads no clock; the
//! caller removes what it is told to remove.
//!
//! # The grid
//!
//! A [`Grid`] is written as rules separated by `|`, each `COUNTxINTERVAL`, optionally followed
//! by `(keep=all)`; whitespace is allowed around the tokens and the interval is a humantime
//! duration (`30s`, `1m`, `10m`, `1h`, `1d`, `7d`):
//!
//! ```text
//! 1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1d
//! ```
//!
//! - Rules apply one after the other going back in time from now: rule `i` covers the ages
//!   `[start_i, start_i + count_i * interval_i)`, with `start_0 = 0` and `start_{i+1}` the end of
//!   rule `i`. A point's age is `now - time`; a point from the future has age 0.
//! - A `keep=all` rule keeps every point of its span.
//! - Any other rule groups points in buckets of its interval **aligned to absolute time**
//!   (`bucket = floor(time_unix_ms / interval_ms)`, so `1d` buckets are UTC days). The
//!   representative of a bucket is its oldest point (tie: the smallest id). The rule keeps the
//!   representatives that lie in its span; the other points of its span are *thinned*.
//! - A point older than the end of the last rule has *expired*.
//!
//! # Precedence
//!
//! Every point gets exactly one [`Mark`], with the first [`Reason`] that applies:
//! [`Reason::Newest`] (the point with the largest time, tie: the largest id, is always kept),
//! [`Reason::Pinned`] (the caller's [`Pin`]s are never removed), [`Reason::KeepLast`] (the
//! `keep_last` newest points, counting the newest and pinned ones among them),
//! [`Reason::Grid`], and for removals [`Reason::Thinned`] or [`Reason::Expired`].
//!
//! # Invariants
//!
//! - **Pure and total.** The marks depend only on the arguments, come in the order of the
//!   points given (which may be in any order), and no input makes [`plan`] panic, even a
//!   [`Policy`] built by hand that [`Policy::validate`] would refuse.
//! - **The newest point and the pinned points are always kept.**
//! - **Stable.** A representative is the oldest point of its bucket, and later points are newer,
//!   so a kept point stays kept while it stays in the same rule, and a point thinned now is
//!   never kept later by the same rule. When a rule's old edge cuts a bucket, the bucket's
//!   representative lies beyond the edge (in the next rule), so the rule keeps nothing of that
//!   bucket rather than promoting a newer point that was thinned before.
//! - **History does not matter** when each interval is a multiple of the one before (as in the
//!   default): the oldest point of a coarse bucket is also the oldest of its fine bucket, so no
//!   point a rule wants was thinned by an earlier rule, and planning every few seconds and
//!   removing as told leaves the same points as one plan over all points. Intervals that are
//!   not multiples are allowed; they just cost a few more points at the rule edges.
//!
//! # Validation
//!
//! [`Policy::parse`], [`Grid::from_str`](std::str::FromStr) and deserialisation refuse (with a
//! [`PolicyError`] naming the bad rule, counted from 1): an empty grid, more than
//! [`MAX_RULES`] rules, a count of 0, an interval of 0, below one second or not a whole number
//! of milliseconds, a modifier other than `(keep=all)`, anything unparsable, an interval finer
//! than the one of a thinning rule before it and a `keep=all` rule after a thinning rule
//! (retention must not get finer going back in time), a total span above [`MAX_SPAN`], and a
//! `keep_last` above [`MAX_KEEP_LAST`].

mod error;
mod grid;
mod mark;
mod plan;
mod policy;

pub use error::PolicyError;
pub use grid::{Grid, MAX_RULES, MAX_SPAN, MIN_INTERVAL, Rule};
pub use mark::{Mark, Pin, PointInfo, Reason};
pub use plan::plan;
pub use policy::{DEFAULT_GRID, DEFAULT_KEEP_LAST, MAX_KEEP_LAST, Policy};
