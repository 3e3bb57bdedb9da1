//! The agent's answer to a dump request, handed to the API call waiting for it (kept by the
//! pair's runtime until it arrives).

use drpair_types::DumpMarker;
use drpair_wire::MarkRefusal;

/// The agent's answer to a dump request, handed to the API call waiting for it.
#[derive(Debug)]
pub enum AgentAnswer {
    Marked(Result<DumpMarker, MarkRefusal>),
    Resynced(Result<DumpMarker, String>),
}
