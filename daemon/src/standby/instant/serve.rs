//! An instant failover's NBD listener on loopback: its exports (the recovered disks in mode
//! `nbd`; the point read-only, under the guest's own overlay, in mode `boot`), one thread per
//! client, every client cut off when the session stops. The exports' names hold a secret only
//! the API tells. A resume binds the address it had before when it is free, so the URIs stay.

use drpair_nbd::Export;
use std::collections::HashMap;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Longest a client may take for the NBD handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Clients at once.
const MAX_CLIENTS: usize = 8;

pub struct Server {
    pub addr: SocketAddr,
    stopping: Arc<AtomicBool>,
    conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    /// Clients served so far (connected and past the handshake or not).
    pub served: Arc<AtomicU64>,
}

fn bind(hint: Option<&str>) -> std::io::Result<TcpListener> {
    if let Some(Ok(l)) = hint.and_then(|h| h.parse::<SocketAddr>().ok()).map(TcpListener::bind) {
        return Ok(l);
    }
    TcpListener::bind("127.0.0.1:0")
}

impl Server {
    /// Serves `exports` on loopback (at `hint` if it is free), on a thread named `name`.
    pub fn start(hint: Option<&str>, exports: Vec<Export>, name: &str) -> std::io::Result<Self> {
        let listener = bind(hint)?;
        let addr = listener.local_addr()?;
        let stopping = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<HashMap<u64, TcpStream>>> = Arc::default();
        let served = Arc::new(AtomicU64::new(0));
        let (stop2, conns2, served2) = (stopping.clone(), conns.clone(), served.clone());
        std::thread::Builder::new().name(name.to_string()).spawn(move || {
            for conn in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let n = served2.fetch_add(1, Ordering::Relaxed) + 1;
                {
                    let mut c = conns2.lock().expect("conns");
                    if c.len() >= MAX_CLIENTS {
                        tracing::warn!("instant failover: refused an NBD client ({MAX_CLIENTS} connected)");
                        continue;
                    }
                    match conn.try_clone() {
                        Ok(s) => c.insert(n, s),
                        Err(_) => continue,
                    };
                }
                let (exports, conns3) = (exports.clone(), conns2.clone());
                std::thread::spawn(move || {
                    let r = serve_client(conn, &exports);
                    conns3.lock().expect("conns").remove(&n);
                    if let Err(e) = r {
                        tracing::debug!("instant failover: nbd client ended: {e}");
                    }
                });
            }
        })?;
        Ok(Server { addr, stopping, conns, served })
    }

    /// Clients connected now.
    pub fn connections(&self) -> usize {
        self.conns.lock().expect("conns").len()
    }

    /// Stops listening and cuts every client off.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        for (_, c) in self.conns.lock().expect("conns").drain() {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn serve_client(mut conn: TcpStream, exports: &[Export]) -> Result<drpair_nbd::Stats, drpair_nbd::NbdError> {
    conn.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let Some(export) = drpair_nbd::handshake(&mut conn, exports)? else {
        return Ok(Default::default());
    };
    conn.set_read_timeout(None)?;
    conn.set_nodelay(true)?;
    let writer = conn.try_clone()?;
    let r = drpair_nbd::transmission_split(&mut conn, writer, &export, 2);
    let _ = conn.shutdown(Shutdown::Both);
    r
}
