//! The third-party dump workflow on the standby (see `drpair_types::dump`), one file per step:
//! [`suspend`] (and skip to the resync marker), [`marker`] (the dump point and the agent's
//! markers), [`load`] (a disk's image, loaded by [`loader`] from an [`image`]), [`apply`]
//! (resume apply, abandon, re-initialise, and the verification at the first commit after the
//! dump). What is persisted is in [`record`], how status shows it in [`status`].
//!
//! Each step checks the pair's state first and refuses with the next step to take, changing
//! nothing; every step that changes something logs it in plain words (see
//! [`DumpRecord::note`]).

pub mod answer;
pub mod apply;
pub mod errors;
pub mod flow;
pub mod format;
pub mod image;
#[cfg(test)]
mod image_hostile_tests;
pub mod load;
pub mod loader;
pub mod marker;
pub mod progress;
pub mod record;
pub mod status;
pub mod suspend;

#[cfg(test)]
mod loader_tests;

pub use answer::AgentAnswer;
pub use apply::{abandon, after_restart, on_verified, reinit, resume_apply};
pub use errors::{DumpLoadError, FlowError};
pub use format::{ImageFormat, ImageInfo};
pub use load::load;
pub use loader::DumpLoadSpec;
pub use marker::{mark, on_dump_marker, on_marked, on_resync_marker, on_resync_refused, resync};
pub use progress::{LoadProgress, LoadStats};
pub use record::{DiskLoadRecord, DumpRecord};
pub use status::{next_step, status};
pub use suspend::{skip_to_resync_marker, suspend};
