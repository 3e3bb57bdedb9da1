//! Hostile peers: frames with a valid header and checksum around arbitrary or mutated
//! payloads reach the message decoder itself; it must refuse them (or decode a message) without
//! panicking. Cases: `DRPAIR_FUZZ_CASES` (default 256; `benches/decoders.sh` runs 100,000).

use crate::frame::{HEADER_LEN, MAGIC, MAX_FRAME_PAYLOAD, PROTOCOL_VERSION, decode_frame, decode_header, encode};
use crate::messages::*;
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("DRPAIR_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

/// A frame whose header and checksum are right for `payload`.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; HEADER_LEN];
    f[0..4].copy_from_slice(&MAGIC);
    f[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    f[8..12].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    f[12..16].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn samples() -> Vec<Vec<u8>> {
    let hello = AgentMsg::Hello(Hello {
        pair_id: "web-01".into(),
        token: Some("t".into()),
        host: "h".into(),
        agent_version: "1".into(),
        tracker: "scan".into(),
        disks: vec![WireDisk { path: "/dev/vdb".into(), size_bytes: 1 << 30, chunk_size: 65536 }],
        state: AgentState::default(),
        reinit: false,
    });
    let msgs = [
        hello,
        AgentMsg::Have { batch: 1, hashes: vec![[3; 32]; 3] },
        AgentMsg::Enroll { pair_id: "p".into(), secret: "s".into(), public_key: vec![4; 65] },
        AgentMsg::EpochEnd(EpochEnd { epoch: 5, request_ids: vec![1], ..Default::default() }),
    ];
    msgs.iter().map(|m| encode(m).unwrap()[HEADER_LEN..].to_vec()).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_payloads_never_panic(payload in proptest::collection::vec(any::<u8>(), 0..512)) {
        let f = framed(&payload);
        let _ = decode_frame::<AgentMsg>(&f);
        let _ = decode_frame::<StandbyMsg>(&f);
    }

    #[test]
    fn mutated_messages_never_panic(which in 0usize..4, edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8), cut in any::<usize>()) {
        let mut p = samples()[which].clone();
        for (i, b) in edits {
            let n = p.len();
            p[i % n] = b;
        }
        p.truncate(cut % (p.len() + 1));
        let _ = decode_frame::<AgentMsg>(&framed(&p));
        let _ = decode_frame::<StandbyMsg>(&framed(&p));
    }

    #[test]
    fn oversized_headers_are_refused_before_reading(len in (MAX_FRAME_PAYLOAD + 1)..=u32::MAX) {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
        h[8..12].copy_from_slice(&len.to_le_bytes());
        prop_assert!(decode_header(&h).is_err());
    }
}
