//! Hostile clients: whatever bytes a client sends, the server answers or ends the connection;
//! it never panics and never sizes a buffer from the wire past `MAX_REQUEST`. Cases:
//! `DRPAIR_FUZZ_CASES` (default 256; `benches/decoders.sh` runs 100,000).

use super::{BlockDev, Export, serve};
use proptest::prelude::*;
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex};

struct Mem(Mutex<Vec<u8>>);

impl BlockDev for Mem {
    fn size(&self) -> u64 {
        self.0.lock().unwrap().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = self.0.lock().unwrap();
        buf.copy_from_slice(&d[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// A client that said `input` and hears what the server answers.
struct Client {
    input: Cursor<Vec<u8>>,
    output: Vec<u8>,
}

impl Read for Client {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Client {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A client that never reads: the server must not buffer without end either.
        if self.output.len() > 64 << 20 {
            return Err(io::Error::from(io::ErrorKind::BrokenPipe));
        }
        self.output.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn cases() -> u32 {
    std::env::var("DRPAIR_FUZZ_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)
}

fn exports() -> Vec<Export> {
    vec![Export { name: "drill".into(), dev: Arc::new(Mem(Mutex::new(vec![7u8; 1 << 16]))), read_only: false }]
}

/// A well-formed fixed-newstyle start: client flags, then OPT_GO for "drill".
fn good_prefix() -> Vec<u8> {
    let mut v = vec![];
    v.extend_from_slice(&3u32.to_be_bytes());
    v.extend_from_slice(&0x4948_4156_454f_5054u64.to_be_bytes());
    v.extend_from_slice(&7u32.to_be_bytes());
    let name = b"drill";
    v.extend_from_slice(&(4 + name.len() as u32 + 2).to_be_bytes());
    v.extend_from_slice(&(name.len() as u32).to_be_bytes());
    v.extend_from_slice(name);
    v.extend_from_slice(&0u16.to_be_bytes());
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let mut c = Client { input: Cursor::new(input), output: vec![] };
        let _ = serve(&mut c, &exports());
    }

    #[test]
    fn requests_after_a_good_handshake_never_panic(
        tail in proptest::collection::vec(any::<u8>(), 0..4096),
        requests in proptest::collection::vec((0u16..8, any::<u64>(), any::<u32>()), 0..8),
    ) {
        let mut input = good_prefix();
        for (cmd, offset, len) in requests {
            input.extend_from_slice(&0x2560_9513u32.to_be_bytes());
            input.extend_from_slice(&0u16.to_be_bytes());
            input.extend_from_slice(&cmd.to_be_bytes());
            input.extend_from_slice(&1u64.to_be_bytes());
            input.extend_from_slice(&(offset % (1 << 17)).to_be_bytes());
            input.extend_from_slice(&(len % (1 << 17)).to_be_bytes());
        }
        input.extend_from_slice(&tail);
        let mut c = Client { input: Cursor::new(input), output: vec![] };
        let _ = serve(&mut c, &exports());
        prop_assert!(c.output.len() < 64 << 20);
    }
}
