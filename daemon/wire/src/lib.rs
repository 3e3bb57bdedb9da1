//! The replication link between agent and standby.
//!
//! A connection is a sequence of frames in each direction. Every frame is a 16-byte header
//! (magic, protocol version, payload length, crc32 of the payload) followed by a postcard
//! encoded message. Invariants:
//! - a decoder never trusts a length from the wire: headers announcing more than
//!   [`MAX_FRAME_PAYLOAD`] are refused before anything is allocated;
//! - a frame whose checksum, magic or version does not match is refused with an error that
//!   says which, and the connection is dropped (the standby discards the open epoch);
//! - chunk payloads are checked again end to end with blake3 by the standby, so the crc only
//!   guards framing.

pub mod frame;
pub mod messages;

pub use frame::{
    FrameError, FrameHeader, HEADER_LEN, MAGIC, MAX_FRAME_PAYLOAD, PROTOCOL_VERSION, decode_body, decode_header,
    encode, encode_sized,
};
pub use messages::*;

#[cfg(test)]
mod hostile_tests;
