//! Reads in flight at once: answered out of order with their own handles and bytes, a failing
//! or panicking read answered alone, everything answered before a disconnect returns.

use super::*;
use crate::BlockDev;
use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

const SIZE: usize = 1 << 20;
const SLOW: u64 = 0;
const FAILS: u64 = 8192;
const PANICS: u64 = 12288;

fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (offset..offset + len as u64).map(|i| (i * 7 % 251) as u8).collect()
}

/// The pattern, where a read at `SLOW` waits until a read elsewhere finished, a read at
/// `FAILS` fails and one at `PANICS` panics.
#[derive(Default)]
struct Dev {
    other_done: AtomicBool,
    written: Mutex<Vec<(u64, Vec<u8>)>>,
}

impl BlockDev for Dev {
    fn size(&self) -> u64 {
        SIZE as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        match offset {
            SLOW => {
                let t = Instant::now();
                while !self.other_done.load(Ordering::Acquire) && t.elapsed() < Duration::from_secs(5) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            FAILS => return Err(io::Error::other("chunk 2: hash mismatch")),
            PANICS => panic!("a bug in the device"),
            _ => {}
        }
        buf.copy_from_slice(&pattern(offset, buf.len()));
        if offset != SLOW {
            self.other_done.store(true, Ordering::Release);
        }
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        lock(&self.written).push((offset, data.to_vec()));
        Ok(())
    }
}

fn request(cmd: u16, handle: u64, offset: u64, len: u32) -> Vec<u8> {
    let mut m = REQUEST_MAGIC.to_be_bytes().to_vec();
    m.extend_from_slice(&0u16.to_be_bytes());
    m.extend_from_slice(&cmd.to_be_bytes());
    m.extend_from_slice(&handle.to_be_bytes());
    m.extend_from_slice(&offset.to_be_bytes());
    m.extend_from_slice(&len.to_be_bytes());
    m
}

/// A connected client, and the server's thread serving `dev` with `workers`.
fn connect(dev: Arc<Dev>, workers: usize) -> (TcpStream, std::thread::JoinHandle<Result<Stats, NbdError>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let w = s.try_clone().unwrap();
        let e = Export { name: "t".into(), dev, read_only: false };
        serve(&mut s, w, &e, workers)
    });
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    (c, server)
}

/// Reads one reply: (handle, error, data), the data's length known from the handle.
fn reply(c: &mut TcpStream, lens: &HashMap<u64, usize>) -> (u64, u32, Vec<u8>) {
    let mut h = [0u8; 16];
    c.read_exact(&mut h).unwrap();
    assert_eq!(u32::from_be_bytes(h[..4].try_into().unwrap()), SIMPLE_REPLY_MAGIC);
    let error = u32::from_be_bytes(h[4..8].try_into().unwrap());
    let handle = u64::from_be_bytes(h[8..].try_into().unwrap());
    let mut data = vec![0; if error == 0 { lens[&handle] } else { 0 }];
    c.read_exact(&mut data).unwrap();
    (handle, error, data)
}

#[test]
fn replies_come_as_reads_complete_with_their_own_handle_and_bytes() {
    let (mut c, server) = connect(Arc::new(Dev::default()), 2);
    let lens = HashMap::from([(1, 4096), (2, 65536)]);
    let mut m = request(CMD_READ, 1, SLOW, 4096);
    m.extend(request(CMD_READ, 2, 65536, 65536));
    c.write_all(&m).unwrap();
    // The slow read waits for the other: its reply comes second.
    assert_eq!(reply(&mut c, &lens), (2, 0, pattern(65536, 65536)));
    assert_eq!(reply(&mut c, &lens), (1, 0, pattern(SLOW, 4096)));
    c.write_all(&request(CMD_DISC, 3, 0, 0)).unwrap();
    let st = server.join().unwrap().unwrap();
    assert_eq!((st.reads, st.bytes_read), (2, 4096 + 65536));
}

#[test]
fn a_failing_read_in_flight_leaves_the_others_whole() {
    for workers in [0, 1, 3] {
        let dev = Arc::new(Dev::default());
        let (mut c, server) = connect(dev.clone(), workers);
        let mut lens = HashMap::new();
        let mut m = vec![];
        // Reads around the failing and the panicking ones, a write among them, then DISC:
        // every request is answered before the server returns.
        for h in 0..40u64 {
            let (offset, len) = match h % 5 {
                0 => (FAILS, 4096),
                1 => (PANICS, 512),
                _ => (16384 + h * 1000, 3000 + h as u32 * 17),
            };
            lens.insert(h, len as usize);
            m.extend(request(CMD_READ, h, offset, len));
        }
        lens.extend([(100, 0), (101, 11)]);
        m.extend(request(CMD_WRITE, 100, 4096, 3));
        m.extend_from_slice(b"abc");
        m.extend(request(CMD_READ, 101, SIZE as u64 - 10, 11));
        m.extend(request(CMD_DISC, 102, 0, 0));
        c.write_all(&m).unwrap();
        let mut seen = HashMap::new();
        for _ in 0..42 {
            let (h, error, data) = reply(&mut c, &lens);
            assert!(seen.insert(h, ()).is_none(), "handle {h} answered twice");
            match h {
                100 => assert_eq!((error, data.len()), (0, 0)),
                101 => assert_eq!(error, EINVAL, "past the end"),
                h if h % 5 < 2 => assert_eq!((error, data.len()), (EIO, 0), "handle {h}"),
                h => assert_eq!(
                    (error, data),
                    (0, pattern(16384 + h * 1000, lens[&h])),
                    "handle {h} ({workers} workers)"
                ),
            }
        }
        let st = server.join().unwrap().unwrap();
        assert_eq!((st.reads, st.writes), (24, 1), "{workers} workers");
        assert_eq!(*lock(&dev.written), vec![(4096, b"abc".to_vec())]);
    }
}

#[test]
fn the_budget_holds_reads_in_flight_to_its_bound() {
    let b = Budget { used: Mutex::new(0), freed: Condvar::new() };
    let first = b.take(MAX_IN_FLIGHT - 10);
    // One more byte than fits waits for the first to go; a lone request always fits.
    std::thread::scope(|s| {
        let t = s.spawn(|| {
            let _h = b.take(20);
            Instant::now()
        });
        std::thread::sleep(Duration::from_millis(50));
        let freed_at = Instant::now();
        drop(first);
        assert!(t.join().unwrap() >= freed_at);
    });
    let big = b.take(MAX_IN_FLIGHT + 1);
    drop(big);
    assert_eq!(*lock(&b.used), 0);
}

#[test]
fn a_hang_up_between_requests_ends_the_connection_cleanly() {
    let (mut c, server) = connect(Arc::new(Dev::default()), 2);
    c.write_all(&request(CMD_READ, 7, 4096, 100)).unwrap();
    assert_eq!(reply(&mut c, &HashMap::from([(7, 100)])), (7, 0, pattern(4096, 100)));
    drop(c);
    assert_eq!(server.join().unwrap().unwrap().reads, 1);
}
