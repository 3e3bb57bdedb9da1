//! Frame layout: `magic[4] | version u16 LE | reserved u16 | len u32 LE | crc32 u32 LE`, then
//! `len` bytes of postcard. Frozen: changing it needs a new [`PROTOCOL_VERSION`].

use serde::{Serialize, de::DeserializeOwned};

/// First bytes of every frame.
pub const MAGIC: [u8; 4] = *b"DRPL";
/// Version of the frame layout and message set (2: `EpochEnd` carries `read_window_ms`; 3:
/// TLS, `Enroll`, `Renew` and `Certificate`; 4: `FailbackBegin`; 5: `Ping`, `Pong`, `Pace`; 6:
/// `ChunkBody::ZeroRun`).
pub const PROTOCOL_VERSION: u16 = 6;
/// Size of the frame header.
pub const HEADER_LEN: usize = 16;
/// Largest payload accepted: a 4 MiB chunk sent raw plus room for its envelope and a batch
/// of small items.
pub const MAX_FRAME_PAYLOAD: u32 = (4 << 20) + (256 << 10);

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    pub len: u32,
    pub crc: u32,
}

/// Why a frame was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FrameError {
    /// frame does not start with the magic bytes: not a drpair peer, or the stream is out of step
    #[error(
        "frame does not start with the drpair magic (got {0:02x?}): peer is not a drpair agent/standby or the stream is corrupt"
    )]
    BadMagic([u8; 4]),
    /// protocol version differs
    #[error(
        "peer speaks link protocol version {0}, this side speaks {PROTOCOL_VERSION}: upgrade both sides to the same drpair release"
    )]
    Version(u16),
    /// announced length over the limit
    #[error("frame announces {0} bytes of payload, the limit is {MAX_FRAME_PAYLOAD}")]
    TooLarge(u64),
    /// checksum mismatch
    #[error("frame checksum mismatch (expected {expected:08x}, computed {actual:08x}): data corrupted on the link")]
    Checksum { expected: u32, actual: u32 },
    /// payload does not decode as the expected message
    #[error("malformed message: {0}")]
    Malformed(String),
}

/// A `Vec` that postcard extends with whole slices (one `memcpy` per byte string; postcard's
/// own `Extend` flavor pushes byte by byte).
struct FrameBuf(Vec<u8>);

impl postcard::ser_flavors::Flavor for FrameBuf {
    type Output = Vec<u8>;

    fn try_push(&mut self, b: u8) -> postcard::Result<()> {
        self.0.push(b);
        Ok(())
    }

    fn try_extend(&mut self, b: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(b);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

/// Encodes one message as a complete frame (header + payload).
pub fn encode<M: Serialize>(msg: &M) -> Result<Vec<u8>, FrameError> {
    encode_sized(msg, 0)
}

/// Like [`encode`], with room for `payload_hint` bytes of payload allocated up front (a frame
/// of chunks is built without growing its buffer).
pub fn encode_sized<M: Serialize>(msg: &M, payload_hint: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::with_capacity(HEADER_LEN + payload_hint.min(MAX_FRAME_PAYLOAD as usize));
    out.resize(HEADER_LEN, 0);
    let mut out =
        postcard::serialize_with_flavor(msg, FrameBuf(out)).map_err(|e| FrameError::Malformed(e.to_string()))?;
    let len = out.len() - HEADER_LEN;
    if len as u64 > MAX_FRAME_PAYLOAD as u64 {
        return Err(FrameError::TooLarge(len as u64));
    }
    let crc = crc32fast::hash(&out[HEADER_LEN..]);
    out[0..4].copy_from_slice(&MAGIC);
    out[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    out[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// Checks a header; the caller then reads exactly `len` bytes and calls [`decode_body`].
pub fn decode_header(h: &[u8; HEADER_LEN]) -> Result<FrameHeader, FrameError> {
    let magic: [u8; 4] = h[0..4].try_into().expect("4 bytes");
    if magic != MAGIC {
        return Err(FrameError::BadMagic(magic));
    }
    let version = u16::from_le_bytes([h[4], h[5]]);
    if version != PROTOCOL_VERSION {
        return Err(FrameError::Version(version));
    }
    let len = u32::from_le_bytes(h[8..12].try_into().expect("4 bytes"));
    if len > MAX_FRAME_PAYLOAD {
        return Err(FrameError::TooLarge(len as u64));
    }
    let crc = u32::from_le_bytes(h[12..16].try_into().expect("4 bytes"));
    Ok(FrameHeader { len, crc })
}

/// Verifies the payload checksum and decodes the message. Trailing bytes are refused.
pub fn decode_body<M: DeserializeOwned>(h: FrameHeader, body: &[u8]) -> Result<M, FrameError> {
    if body.len() != h.len as usize {
        return Err(FrameError::Malformed(format!("payload is {} bytes, header says {}", body.len(), h.len)));
    }
    let actual = crc32fast::hash(body);
    if actual != h.crc {
        return Err(FrameError::Checksum { expected: h.crc, actual });
    }
    let (msg, rest) = postcard::take_from_bytes(body).map_err(|e| FrameError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(FrameError::Malformed(format!("{} trailing bytes after message", rest.len())));
    }
    Ok(msg)
}

/// Decodes a complete frame held in one buffer (tests, tools).
pub fn decode_frame<M: DeserializeOwned>(buf: &[u8]) -> Result<M, FrameError> {
    if buf.len() < HEADER_LEN {
        return Err(FrameError::Malformed(format!("frame of {} bytes is shorter than a header", buf.len())));
    }
    let h = decode_header(buf[..HEADER_LEN].try_into().expect("header"))?;
    decode_body(h, &buf[HEADER_LEN..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::*;
    use proptest::prelude::*;

    #[test]
    fn frozen_layout() {
        let f = encode(&AgentMsg::Progress(Progress::default())).unwrap();
        assert_eq!(&f[0..4], b"DRPL");
        assert_eq!(
            u16::from_le_bytes([f[4], f[5]]),
            6,
            "version 6: ChunkBody::ZeroRun (5: Ping, Pong, Pace; 4: FailbackBegin; 3: TLS, Enroll, Renew, Certificate)"
        );
        assert_eq!(HEADER_LEN, 16);
        assert_eq!(u32::from_le_bytes(f[8..12].try_into().unwrap()) as usize, f.len() - 16);
    }

    #[test]
    fn refuses_bad_frames() {
        let good = encode(&AgentMsg::Have { batch: 7, hashes: vec![[1; 32]] }).unwrap();
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(decode_frame::<AgentMsg>(&bad), Err(FrameError::BadMagic(_))));
        let mut bad = good.clone();
        bad[4] = 9;
        assert!(matches!(decode_frame::<AgentMsg>(&bad), Err(FrameError::Version(9))));
        let mut bad = good.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode_frame::<AgentMsg>(&bad), Err(FrameError::TooLarge(_))));
        let mut bad = good.clone();
        let n = bad.len();
        bad[n - 1] ^= 0xff;
        assert!(matches!(decode_frame::<AgentMsg>(&bad), Err(FrameError::Checksum { .. })));
        // A valid checksum over garbage still fails to decode.
        let garbage = [0xffu8; 40];
        let mut f = good[..16].to_vec();
        f[8..12].copy_from_slice(&40u32.to_le_bytes());
        f[12..16].copy_from_slice(&crc32fast::hash(&garbage).to_le_bytes());
        f.extend_from_slice(&garbage);
        assert!(matches!(decode_frame::<AgentMsg>(&f), Err(FrameError::Malformed(_))));
        // Truncated payload.
        assert!(decode_frame::<AgentMsg>(&good[..good.len() - 1]).is_err());
    }

    #[test]
    fn oversize_message_is_not_encoded() {
        let body = ChunkBody::Data { hash: [0; 32], raw_len: 0, compressed: false, payload: vec![0; 5 << 20] };
        let m = AgentMsg::Chunks { epoch: 1, items: vec![ChunkItem { disk: 0, index: 0, body }] };
        assert!(matches!(encode(&m), Err(FrameError::TooLarge(_))));
    }

    fn arb_body() -> impl Strategy<Value = ChunkBody> {
        prop_oneof![
            Just(ChunkBody::Zero),
            any::<[u8; 32]>().prop_map(ChunkBody::Known),
            (any::<[u8; 32]>(), any::<u32>(), any::<bool>(), proptest::collection::vec(any::<u8>(), 0..300)).prop_map(
                |(hash, raw_len, compressed, payload)| ChunkBody::Data { hash, raw_len, compressed, payload }
            ),
        ]
    }

    proptest! {
        #[test]
        fn chunk_frames_round_trip(epoch: u64, items in proptest::collection::vec((any::<u32>(), any::<u64>(), arb_body()), 0..20)) {
            let items: Vec<ChunkItem> = items.into_iter().map(|(disk, index, body)| ChunkItem { disk, index, body }).collect();
            let m = AgentMsg::Chunks { epoch, items };
            let f = encode(&m).unwrap();
            prop_assert_eq!(decode_frame::<AgentMsg>(&f).unwrap(), m);
        }

        #[test]
        fn random_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_frame::<AgentMsg>(&buf);
            let _ = decode_frame::<StandbyMsg>(&buf);
        }

        #[test]
        fn corrupting_any_byte_is_detected(idx in 0usize..100, flip in 1u8..=255) {
            let m = AgentMsg::EpochEnd(EpochEnd { epoch: 5, cut_unix_ms: 9, request_ids: vec![1, 2], ..Default::default() });
            let mut f = encode(&m).unwrap();
            let i = idx % f.len();
            f[i] ^= flip;
            // Either refused, or (reserved header bytes only) decodes to the same message.
            match decode_frame::<AgentMsg>(&f) {
                Ok(back) => { prop_assert!((6..8).contains(&i)); prop_assert_eq!(back, m); }
                Err(_) => {}
            }
        }
    }
}
