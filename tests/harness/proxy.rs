//! A TCP proxy that records every byte crossing it, both ways: what someone on the path
//! between agent and standby would see. It can also cut every connection it carries (a link
//! that breaks mid-stream).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

pub struct RecordingProxy {
    pub addr: SocketAddr,
    captured: Arc<Mutex<Vec<u8>>>,
    live: Arc<Mutex<Vec<TcpStream>>>,
}

impl RecordingProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let addr = l.local_addr().expect("proxy addr");
        let captured: Arc<Mutex<Vec<u8>>> = Default::default();
        let cap = captured.clone();
        let live: Arc<Mutex<Vec<TcpStream>>> = Default::default();
        let streams = live.clone();
        std::thread::spawn(move || {
            for client in l.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(target) else { continue };
                {
                    let mut v = streams.lock().expect("streams");
                    v.extend([client.try_clone().expect("clone"), server.try_clone().expect("clone")]);
                }
                for (mut from, mut to) in
                    [(client.try_clone().expect("clone"), server.try_clone().expect("clone")), (server, client)]
                {
                    let cap = cap.clone();
                    std::thread::spawn(move || {
                        let mut buf = vec![0u8; 64 << 10];
                        loop {
                            match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => {
                                    cap.lock().expect("capture").extend_from_slice(&buf[..n]);
                                    if to.write_all(&buf[..n]).is_err() {
                                        break;
                                    }
                                }
                            }
                        }
                        let _ = to.shutdown(Shutdown::Write);
                    });
                }
            }
        });
        Self { addr, captured, live }
    }

    /// Cuts every connection carried so far (both sides see it end); returns how many.
    pub fn cut(&self) -> usize {
        let mut v = self.live.lock().expect("streams");
        for s in v.iter() {
            let _ = s.shutdown(Shutdown::Both);
        }
        let n = v.len() / 2;
        v.clear();
        n
    }

    /// Everything seen so far.
    pub fn captured(&self) -> Vec<u8> {
        self.captured.lock().expect("capture").clone()
    }
}

/// Whether `needle` occurs in `haystack`.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}
