//! Notifications (issue 26): the standby tells operators when something needs them.
//!
//! Once a second [`evaluate`] reads the conditions that hold ([`conditions`]: RPO levels, an
//! agent away, a pair stopped by an error, a tracking gap, damaged points, a full spool, low
//! disk or memory, expiring certificates and tokens), and [`tracker::Told`] turns their
//! changes into notifications: one when a condition begins (after `hold`), one when its
//! severity changes, one "resolved" when it ends. Single events (a failed drill) come through
//! [`Notifier::raise`].
//!
//! Every notification goes to the journal (tracing) at once, and into the outbox
//! ([`outbox`]) in the store, in the same synced write as the told conditions, before anyone
//! is sent anything: an event is not lost because the standby stopped before sending it, nor
//! told twice because it restarted. Each target has its own delivery task: in order, retried
//! with backoff while it fails, at most `max_per_hour` per hour (more wait, none dropped),
//! given up (and logged) only after `give_up_after`.

pub mod conditions;
mod delivery;
mod notifier;
mod outbox;
pub mod run;
mod smtp;
pub mod tracker;
pub mod webhook;

pub use notifier::Notifier;
pub use outbox::TargetStats;
