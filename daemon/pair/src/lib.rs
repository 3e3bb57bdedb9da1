//! The lifecycle of a DR pair: one state machine ([`Lifecycle`]) that every operator action
//! and every agent event goes through ([`PairOp`], applied by [`Lifecycle::apply`]).
//!
//! The standby persists the lifecycle with the pair record on every transition, so a pair
//! that was paused, stopped or being restarted is still so after the standby restarts.

pub mod machine;

pub use machine::{Lifecycle, PairOp, Refusal};
