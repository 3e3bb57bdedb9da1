//! The truth about a pair's link, as the standby sees it (`link` in a pair's status).

use serde::{Deserialize, Serialize};

/// The link of a pair: what crosses it now, how alive the other side is, the limit in force,
/// and what went wrong on it since the standby started.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkStatus {
    /// An agent connection is open now.
    pub connected: bool,
    /// Bytes on the wire from the agent per second (TLS records included), over the last
    /// three seconds: zero within seconds of a stall.
    pub wire_bytes_per_second: f64,
    /// Bytes on the wire from the agent since the standby started.
    pub wire_bytes_received: u64,
    /// Bytes on the wire to the agent since the standby started.
    pub wire_bytes_sent: u64,
    /// The agent's own read rate from its disks (not the link's), bytes per second.
    pub agent_read_bytes_per_second: f64,
    /// Milliseconds since the last byte from the agent (None: not connected).
    pub last_byte_ms_ago: Option<u64>,
    /// Milliseconds since the agent last answered the standby's heartbeat.
    pub last_ack_ms_ago: Option<u64>,
    /// Round trip of the last heartbeat, ms (the network plus anything queued ahead of it).
    pub rtt_ms: Option<f64>,
    /// The limit in force now, bytes per second (None: unlimited).
    pub bandwidth_limit_bytes_per_second: Option<u64>,
    /// Which setting sets it: "pair", "standby", or None when unlimited.
    pub bandwidth_limited_by: Option<String>,
    /// The pair's own bandwidth setting (a rate or a schedule; "unlimited").
    pub bandwidth: String,
    /// Connections admitted since the standby started, and of those, the ones after the first.
    pub connections: u64,
    pub reconnects: u64,
    /// Connections that ended in a failure (a stall, a refused frame, a link error).
    pub connections_failed: u64,
    /// Connections ended because nothing arrived for too long (half-open link).
    pub stalls: u64,
    /// Frames refused because their checksum did not match (corrupted on the link).
    pub frames_refused_checksum: u64,
    /// Chunks refused (out of range, sent twice, no room on the standby).
    pub chunks_refused: u64,
    /// Why the last connection ended, with when (RFC 3339).
    pub last_disconnect: Option<String>,
}
