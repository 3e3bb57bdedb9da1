//! One answer, across the crates, to "will the same operation succeed if tried again?".

/// Whether retrying the same operation later can succeed. Every library error of drpair
/// that a caller may retry says which it is through a `class()` method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// May succeed later without anyone acting: a lost link, a busy device or database, a
    /// restarted peer, memory that was short for a moment.
    Transient,
    /// Fails the same way until someone changes something: bad input, damaged or missing
    /// data, a wrong configuration, a peer that refuses on purpose.
    Permanent,
}
