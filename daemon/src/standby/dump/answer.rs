//! The agent's answer to a dump request, handed to the API call waiting for it (kept by the
//! pair's runtime until it arrives).

use super::errors::FlowError;
use drpair_types::DumpMarker;
use drpair_wire::MarkRefusal;

/// The agent's answer to a dump request, handed to the API call waiting for it.
#[derive(Debug)]
pub enum AgentAnswer {
    Marked(Result<DumpMarker, MarkRefusal>),
    /// The dump marker that followed the resync marker, or why the resync was refused (the
    /// agent's or the standby's words, naming the pair).
    Resynced(Result<DumpMarker, FlowError>),
}
