//! A TCP proxy that injects link faults between agent and standby, scripted by the test while
//! it runs: one-way delay, a rate cap, stalls (a half-open link), cuts (FIN), resets (RST), a
//! cut or a flipped bit at a chosen byte of the agent→standby stream, and refused connects.
//!
//! Each connection is carried by a reader and a writer thread per direction: the reader queues
//! what it reads with the time it read it, the writer delivers it when due (after the delay,
//! outside stalls, within the rate). At most [`MAX_HELD`] bytes wait per direction and
//! connection; past that the reader stops reading and the sender's socket buffers fill
//! (back-pressure, as on a real link). Dropping the proxy stops accepting and cuts every
//! connection.

use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The most bytes read but not yet delivered, per direction and connection.
pub const MAX_HELD: usize = 8 << 20;

const BUF: usize = 64 << 10;
/// How often waits look again at stalls, delays and connections ended under them.
const POLL: Duration = Duration::from_millis(10);
/// Socket read/write timeouts, so a blocked thread notices its connection was ended.
const IO_TIMEOUT: Duration = Duration::from_millis(50);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const NS: u128 = 1_000_000_000;

/// Direction indexes.
const C2S: usize = 0;
const S2C: usize = 1;

/// Connection states: how it was ended, if it was.
const ALIVE: u8 = 0;
const CUT: u8 = 1;
const RESET: u8 = 2;

/// A fault-injecting TCP proxy: see the module documentation. All methods take `&self` and may
/// be called from any thread while traffic flows.
pub struct FaultProxy {
    /// Where the proxy listens (127.0.0.1, a free port).
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    delay_ns: AtomicU64,
    /// Bytes per second, 0 = unlimited.
    rate: AtomicU64,
    stalled: AtomicBool,
    refusing: AtomicBool,
    faults: Mutex<Faults>,
    buckets: [Mutex<Bucket>; 2],
    forwarded: [AtomicU64; 2],
    accepted: AtomicU64,
    next_id: AtomicU64,
    conns: Mutex<Vec<Arc<Conn>>>,
}

/// One-shot faults on the client→server stream, in bytes still to forward before them.
#[derive(Default)]
struct Faults {
    cut_after: Option<u64>,
    corrupt_after: Option<u64>,
}

/// A token bucket; tokens are counted in byte-nanoseconds so no fraction is lost.
#[derive(Default)]
struct Bucket {
    scaled: u128,
    last: Option<Instant>,
}

struct Conn {
    id: u64,
    client: TcpStream,
    /// Set once the target accepted (deferred while the link is stalled).
    server: OnceLock<TcpStream>,
    state: AtomicU8,
    /// Directions whose writer finished.
    ends: AtomicU8,
}

/// What one direction of one connection holds between its reader and its writer.
#[derive(Default)]
struct Queue {
    inner: Mutex<Held>,
    cv: Condvar,
}

/// Chunks with their read times; `eof`: the reader is done, `closed`: the writer is done.
#[derive(Default)]
struct Held {
    chunks: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    eof: bool,
    closed: bool,
}

impl FaultProxy {
    /// Listens on 127.0.0.1:0 and forwards every accepted connection to `target`.
    pub fn start(target: SocketAddr) -> Self {
        let l = TcpListener::bind("127.0.0.1:0").expect("proxy listen");
        let addr = l.local_addr().expect("proxy addr");
        l.set_nonblocking(true).expect("proxy nonblocking");
        let shared = Arc::new(Shared::default());
        let sh = shared.clone();
        let acceptor = spawn("fault-proxy", move || accept_loop(&sh, &l, target));
        Self { addr, shared, acceptor: Some(acceptor) }
    }

    /// Added one-way delay, each direction (`Duration::ZERO` = none). Bytes are delivered `d`
    /// after they were read: a delayed link, not a slow one (throughput is not cut, up to
    /// [`MAX_HELD`] bytes in flight per direction).
    pub fn set_delay(&self, d: Duration) {
        self.shared.delay_ns.store(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX), SeqCst);
    }

    /// Rate cap in bytes per second, each direction separately and shared by all connections
    /// (`None` = unlimited); a token bucket with 50 ms of burst. Takes effect at once on live
    /// connections.
    pub fn set_rate(&self, bytes_per_sec: Option<u64>) {
        self.shared.rate.store(bytes_per_sec.map_or(0, |r| r.max(1)), SeqCst);
    }

    /// Stall: while on, nothing is forwarded in either direction but connections stay open
    /// (no FIN, no RST), a half-open link as a stuck middlebox makes it. Bytes read meanwhile
    /// (up to [`MAX_HELD`] per direction and connection) are held and delivered after the
    /// stall ends, or dropped if the connection is cut. Connections accepted while stalled
    /// are accepted but not even connected to the target until the stall ends.
    pub fn stall(&self, on: bool) {
        self.shared.stalled.store(on, SeqCst);
    }

    /// Cuts every live connection with FIN both ways (held bytes are dropped); returns how
    /// many connections were cut.
    pub fn cut(&self) -> usize {
        self.shared.end_all(CUT).len()
    }

    /// Resets every live connection (SO_LINGER 0 then close: the peers see ECONNRESET);
    /// returns how many. Waits (up to 2 s) until the resets were sent.
    pub fn reset(&self) -> usize {
        let conns = self.shared.end_all(RESET);
        let deadline = Instant::now() + Duration::from_secs(2);
        while conns.iter().any(|c| Arc::strong_count(c) > 1) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(2));
        }
        conns.len() // dropping the last handles closes the sockets, with RST
    }

    /// After `n` more bytes forwarded client→server (agent→standby) on any connection, cuts
    /// that connection (mid-frame, mid-stream): the server gets exactly those bytes, then
    /// EOF. One-shot.
    pub fn cut_after(&self, n: u64) {
        self.shared.faults.lock().expect("faults").cut_after = Some(n);
    }

    /// Flips one bit (the lowest) of the byte of the client→server stream `after` bytes from
    /// now (one-shot, on whichever connection carries that byte), then forwards normally.
    pub fn corrupt_after(&self, after: u64) {
        self.shared.faults.lock().expect("faults").corrupt_after = Some(after);
    }

    /// While on, new connections are refused (accepted and closed at once): the standby
    /// unreachable. Live ones are untouched.
    pub fn refuse(&self, on: bool) {
        self.shared.refusing.store(on, SeqCst);
    }

    /// Bytes forwarded so far: (client→server, server→client).
    pub fn forwarded(&self) -> (u64, u64) {
        (self.shared.forwarded[C2S].load(SeqCst), self.shared.forwarded[S2C].load(SeqCst))
    }

    /// Connections accepted so far (refused ones not counted).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(SeqCst)
    }

    /// Connections open now.
    pub fn live(&self) -> usize {
        self.shared.conns.lock().expect("conns").len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
        self.shared.end_all(CUT);
    }
}

fn accept_loop(shared: &Arc<Shared>, l: &TcpListener, target: SocketAddr) {
    while !shared.stop.load(SeqCst) {
        let Ok((client, _)) = l.accept() else {
            thread::sleep(Duration::from_millis(5));
            continue;
        };
        if shared.refusing.load(SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let _ = client.set_nonblocking(false);
        shared.accepted.fetch_add(1, SeqCst);
        let conn = Arc::new(Conn {
            id: shared.next_id.fetch_add(1, SeqCst),
            client,
            server: OnceLock::new(),
            state: AtomicU8::new(ALIVE),
            ends: AtomicU8::new(0),
        });
        shared.conns.lock().expect("conns").push(conn.clone());
        let sh = shared.clone();
        spawn("fault-proxy-conn", move || carry(&sh, &conn, target));
    }
}

/// Connects one accepted connection to the target and pumps it until it ends.
fn carry(shared: &Arc<Shared>, conn: &Arc<Conn>, target: SocketAddr) {
    // A stalled link forwards nothing, not even the connect.
    while shared.stalled.load(SeqCst) && !conn.dead() {
        thread::sleep(POLL);
    }
    if conn.dead() {
        return;
    }
    let Ok(server) = TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) else {
        shared.abort(conn, CUT);
        return;
    };
    for s in [&conn.client, &server] {
        let _ = s.set_nodelay(true);
        let _ = s.set_read_timeout(Some(IO_TIMEOUT));
        let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    }
    let _ = conn.server.set(server);
    if conn.dead() {
        conn.apply();
        return;
    }
    let queues = [Arc::new(Queue::default()), Arc::new(Queue::default())];
    for dir in [C2S, S2C] {
        let (sh, c, q) = (shared.clone(), conn.clone(), queues[dir].clone());
        spawn("fault-proxy-read", move || read_in(&sh, &c, dir, &q));
    }
    let (sh, c, q) = (shared.clone(), conn.clone(), queues[C2S].clone());
    spawn("fault-proxy-write", move || write_out(&sh, &c, C2S, &q));
    write_out(shared, conn, S2C, &queues[S2C]);
}

/// The reader of one direction: reads and queues, with the time read.
fn read_in(shared: &Shared, conn: &Conn, dir: usize, q: &Queue) {
    let mut src = conn.side(dir, true);
    let mut buf = vec![0u8; BUF];
    while q.wait_room(conn) {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => q.push(buf[..n].to_vec()),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => {
                // The peer reset (or worse): pass the reset on.
                shared.abort(conn, RESET);
                break;
            }
        }
    }
    q.finish();
    conn.apply();
}

/// The writer of one direction: delivers what was queued when due, half-closes at the end.
fn write_out(shared: &Shared, conn: &Conn, dir: usize, q: &Queue) {
    let mut dest = conn.side(dir, false);
    'chunks: while let Some((read_at, mut data)) = q.pop(conn) {
        // Wait until due (read time + delay) and not stalled.
        let due = || {
            let at = read_at + Duration::from_nanos(shared.delay_ns.load(SeqCst));
            if shared.stalled.load(SeqCst) { Some(POLL) } else { at.checked_duration_since(Instant::now()) }
        };
        if !hold(conn, due) {
            break;
        }
        let mut off = 0;
        while off < data.len() {
            let mut k = 0;
            let got = hold(conn, || {
                if shared.stalled.load(SeqCst) {
                    return Some(POLL);
                }
                shared.take_tokens(dir, data.len() - off).map(|n| k = n).err()
            });
            if !got {
                break 'chunks;
            }
            let piece = &mut data[off..off + k];
            let keep = if dir == C2S { shared.inject(piece) } else { None };
            let piece = &piece[..keep.unwrap_or(k)];
            if !write_full(conn, &mut dest, piece) {
                shared.abort(conn, CUT);
                break 'chunks;
            }
            shared.forwarded[dir].fetch_add(piece.len() as u64, SeqCst);
            if keep.is_some() {
                shared.abort(conn, CUT);
                break 'chunks;
            }
            off += k;
        }
    }
    if !conn.dead() {
        let _ = dest.shutdown(Shutdown::Write);
    }
    q.close();
    if conn.ends.fetch_add(1, SeqCst) == 1 {
        shared.remove(conn.id);
    }
    conn.apply();
}

/// Waits while `wait` asks to (for at most [`POLL`] at a time); false if the connection ended.
fn hold(conn: &Conn, mut wait: impl FnMut() -> Option<Duration>) -> bool {
    loop {
        if conn.dead() {
            return false;
        }
        match wait() {
            None => return true,
            Some(d) => thread::sleep(d.min(POLL)),
        }
    }
}

/// Writes all of `buf`, looking at the connection between write timeouts; false if it failed.
fn write_full(conn: &Conn, dest: &mut &TcpStream, mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        if conn.dead() {
            return false;
        }
        match dest.write(buf) {
            Ok(0) => return false,
            Ok(n) => buf = &buf[n..],
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
            Err(_) => return false,
        }
    }
    true
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> JoinHandle<()> {
    thread::Builder::new().name(name.into()).spawn(f).expect("spawn proxy thread")
}

fn set_linger_zero(s: &TcpStream) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    let len = libc::socklen_t::try_from(size_of::<libc::linger>()).expect("linger size");
    // SAFETY: the fd is open (owned by `s`) and `l` is a live `linger` of `len` bytes.
    unsafe {
        libc::setsockopt(s.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, (&raw const l).cast(), len);
    }
}

impl Shared {
    fn remove(&self, id: u64) {
        self.conns.lock().expect("conns").retain(|c| c.id != id);
    }

    /// Ends one connection `how` (the first end wins) and forgets it.
    fn abort(&self, conn: &Conn, how: u8) {
        conn.kill(how);
        self.remove(conn.id);
    }

    /// Ends every live connection `how`; returns them.
    fn end_all(&self, how: u8) -> Vec<Arc<Conn>> {
        let conns = std::mem::take(&mut *self.conns.lock().expect("conns"));
        for c in &conns {
            c.kill(how);
        }
        conns
    }

    /// Takes up to `want` bytes of the rate of `dir`, or says how long to wait for some.
    fn take_tokens(&self, dir: usize, want: usize) -> Result<usize, Duration> {
        let rate = self.rate.load(SeqCst);
        let mut b = self.buckets[dir].lock().expect("bucket");
        let now = Instant::now();
        let elapsed = b.last.replace(now).map_or(0, |t| now.duration_since(t).as_nanos());
        if rate == 0 {
            return Ok(want);
        }
        let burst = u128::from((rate / 20).max(1));
        b.scaled = (b.scaled + elapsed * u128::from(rate)).min(burst * NS);
        let have = b.scaled / NS;
        let need = (want as u128).min((burst / 4).max(1));
        if have < need {
            let ns = (need * NS - b.scaled) / u128::from(rate);
            return Err(Duration::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX)));
        }
        let k = have.min(want as u128);
        b.scaled -= k * NS;
        Ok(usize::try_from(k).expect("token count"))
    }

    /// Applies the one-shot faults to a piece about to be forwarded client→server; returns
    /// how much of it to forward before cutting, if the cut falls in it.
    fn inject(&self, piece: &mut [u8]) -> Option<usize> {
        let mut f = self.faults.lock().expect("faults");
        let len = piece.len() as u64;
        if let Some(at) = f.corrupt_after {
            if at < len {
                piece[usize::try_from(at).expect("offset")] ^= 0x01;
                f.corrupt_after = None;
            } else {
                f.corrupt_after = Some(at - len);
            }
        }
        let n = f.cut_after?;
        f.cut_after = (n > len).then(|| n - len);
        (n <= len).then(|| usize::try_from(n).expect("offset"))
    }
}

impl Conn {
    fn dead(&self) -> bool {
        self.state.load(SeqCst) != ALIVE
    }

    /// The socket `dir` reads from (`src`) or writes to.
    fn side(&self, dir: usize, src: bool) -> &TcpStream {
        if (dir == C2S) == src { &self.client } else { self.server.get().expect("server connected") }
    }

    /// Marks the connection ended `how` (the first mark wins) and applies the mark.
    fn kill(&self, how: u8) {
        let _ = self.state.compare_exchange(ALIVE, how, SeqCst, SeqCst);
        self.apply();
    }

    /// Applies the end mark to the sockets there are (again: the server may have come late).
    /// A reset only wakes the readers: the RST goes when the last handle closes the socket.
    fn apply(&self) {
        let how = self.state.load(SeqCst);
        for s in std::iter::once(&self.client).chain(self.server.get()).filter(|_| how != ALIVE) {
            if how == RESET {
                set_linger_zero(s);
            }
            let _ = s.shutdown(if how == CUT { Shutdown::Both } else { Shutdown::Read });
        }
    }
}

impl Queue {
    /// Waits until there is room for another read; false if the connection or writer ended.
    fn wait_room(&self, conn: &Conn) -> bool {
        let mut h = self.inner.lock().expect("queue");
        while h.bytes >= MAX_HELD && !h.closed && !conn.dead() {
            h = self.cv.wait_timeout(h, POLL).expect("queue").0;
        }
        !h.closed && !conn.dead()
    }

    fn push(&self, data: Vec<u8>) {
        let mut h = self.inner.lock().expect("queue");
        h.bytes += data.len();
        h.chunks.push_back((Instant::now(), data));
        self.cv.notify_all();
    }

    /// The next chunk, waiting for one; `None` at the end of the stream or of the connection.
    fn pop(&self, conn: &Conn) -> Option<(Instant, Vec<u8>)> {
        let mut h = self.inner.lock().expect("queue");
        loop {
            if conn.dead() {
                return None;
            }
            if let Some(c) = h.chunks.pop_front() {
                h.bytes -= c.1.len();
                self.cv.notify_all();
                return Some(c);
            }
            if h.eof {
                return None;
            }
            h = self.cv.wait_timeout(h, POLL).expect("queue").0;
        }
    }

    fn finish(&self) {
        self.inner.lock().expect("queue").eof = true;
        self.cv.notify_all();
    }

    fn close(&self) {
        self.inner.lock().expect("queue").closed = true;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MIB;
    const M: usize = 1 << 20; // MIB as a length
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// What a sink connection received: the bytes, how the stream ended, when.
    type Received = (Vec<u8>, Option<ErrorKind>, Instant);

    struct Sink {
        addr: SocketAddr,
        rx: mpsc::Receiver<Received>,
        got: Arc<AtomicU64>,
        conns: Arc<AtomicUsize>,
    }

    impl Sink {
        fn recv(&self) -> Received {
            self.rx.recv_timeout(Duration::from_secs(5)).expect("sink result")
        }
    }

    /// A server that reads every connection to its end and reports what it got.
    fn sink() -> Sink {
        let l = TcpListener::bind("127.0.0.1:0").expect("sink listen");
        let addr = l.local_addr().expect("sink addr");
        let (tx, rx) = mpsc::channel();
        let got = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(AtomicUsize::new(0));
        let (g, c) = (got.clone(), conns.clone());
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                c.fetch_add(1, SeqCst);
                let (tx, g) = (tx.clone(), g.clone());
                thread::spawn(move || {
                    let (mut data, mut buf) = (Vec::new(), vec![0u8; BUF]);
                    let err = loop {
                        match s.read(&mut buf) {
                            Ok(0) => break None,
                            Ok(n) => {
                                data.extend_from_slice(&buf[..n]);
                                g.fetch_add(n as u64, SeqCst);
                            }
                            Err(e) => break Some(e.kind()),
                        }
                    };
                    let _ = tx.send((data, err, Instant::now()));
                });
            }
        });
        Sink { addr, rx, got, conns }
    }

    /// A server that echoes every connection; returns its address and connection count.
    fn echo() -> (SocketAddr, Arc<AtomicUsize>) {
        let l = TcpListener::bind("127.0.0.1:0").expect("echo listen");
        let addr = l.local_addr().expect("echo addr");
        let conns = Arc::new(AtomicUsize::new(0));
        let c = conns.clone();
        thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                c.fetch_add(1, SeqCst);
                thread::spawn(move || {
                    let mut buf = vec![0u8; BUF];
                    while let Ok(n @ 1..) = s.read(&mut buf) {
                        if s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s.shutdown(Shutdown::Write);
                });
            }
        });
        (addr, conns)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n as u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes()[0]).collect()
    }

    fn connect(addr: SocketAddr) -> TcpStream {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(3))).map(|()| s).expect("read timeout")
    }

    /// Writes `data` from a thread, then half-closes; write errors are ignored.
    fn send(s: &TcpStream, data: Vec<u8>) -> JoinHandle<()> {
        let mut s = s.try_clone().expect("clone");
        thread::spawn(move || {
            let _ = s.write_all(&data);
            let _ = s.shutdown(Shutdown::Write);
        })
    }

    fn read_n(s: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        s.read_exact(&mut v).map(|()| v).expect("read back")
    }

    /// Sends `m` and expects it back.
    fn echoes(c: &mut TcpStream, m: &[u8]) {
        c.write_all(m).expect("write");
        assert_eq!(read_n(c, m.len()), m);
    }

    /// The next read finds the connection ended: EOF, or ECONNRESET.
    fn assert_ended(c: &mut TcpStream) {
        let r = c.read(&mut [0u8; 8]);
        assert!(matches!(&r, Ok(0)) || r.as_ref().is_err_and(|e| e.kind() == ErrorKind::ConnectionReset), "{r:?}");
    }

    fn eventually(what: &str, f: impl Fn() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(t.elapsed() < Duration::from_secs(3), "timed out waiting for {what}");
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn fault_proxy_forwards_both_ways() {
        let (target, _) = echo();
        let p = FaultProxy::start(target);
        let mut c = connect(p.addr);
        let data = pattern(M);
        let w = send(&c, data.clone());
        assert!(read_n(&mut c, data.len()) == data, "echo differs");
        w.join().expect("writer");
        assert_eq!(c.read(&mut [0u8; 1]).expect("eof"), 0);
        eventually("counters", || p.forwarded() == (MIB, MIB));
        assert_eq!(p.accepted(), 1);
        eventually("connection end", || p.live() == 0);
    }

    #[test]
    fn fault_proxy_rate_cap() {
        let s = sink();
        let p = FaultProxy::start(s.addr);
        let c = connect(p.addr);
        p.set_rate(Some(2 * MIB));
        let t = Instant::now();
        let _w = send(&c, pattern(3 * M));
        let (data, err, at) = s.recv();
        let took = at - t;
        assert_eq!((data.len(), err), (3 * M, None));
        assert!(took >= Duration::from_millis(1300) && took <= Duration::from_millis(1800), "3 MiB took {took:?}");
    }

    #[test]
    fn fault_proxy_delay_not_slowness() {
        let (target, _) = echo();
        let p = FaultProxy::start(target);
        p.set_delay(Duration::from_millis(50));
        let mut c = connect(p.addr);
        let t = Instant::now();
        echoes(&mut c, b"ping");
        let rtt = t.elapsed();
        assert!(rtt >= Duration::from_millis(100) && rtt < Duration::from_millis(500), "round trip {rtt:?}");
        let data = pattern(4 * M);
        let t = Instant::now();
        let w = send(&c, data.clone());
        assert!(read_n(&mut c, data.len()) == data, "echo differs");
        w.join().expect("writer");
        let took = t.elapsed();
        assert!(took < Duration::from_millis(100 + 500), "4 MiB round trip took {took:?}");
    }

    #[test]
    fn fault_proxy_stall_holds_then_delivers() {
        let s = sink();
        let p = FaultProxy::start(s.addr);
        let mut a = connect(p.addr);
        eventually("first connection at the server", || s.conns.load(SeqCst) == 1);
        p.stall(true);
        let first = pattern(100_000);
        a.write_all(&first).expect("write a");
        let mut b = connect(p.addr);
        b.write_all(b"hello").expect("write b");
        thread::sleep(Duration::from_millis(500));
        assert_eq!(s.got.load(SeqCst), 0);
        assert_eq!(s.conns.load(SeqCst), 1, "a connect crossed a stalled link");
        assert_eq!((p.forwarded(), p.accepted(), p.live()), ((0, 0), 2, 2));
        p.stall(false);
        a.shutdown(Shutdown::Write).and_then(|()| b.shutdown(Shutdown::Write)).expect("shutdown");
        let mut got: Vec<Vec<u8>> = (0..2).map(|_| s.recv().0).collect();
        got.sort_by_key(Vec::len);
        assert!(got[0] == b"hello" && got[1] == first, "held bytes not delivered intact");
    }

    #[test]
    fn fault_proxy_cut_and_drop_give_eof_even_stalled() {
        let (target, conns) = echo();
        let p = FaultProxy::start(target);
        let mut c = connect(p.addr);
        echoes(&mut c, b"abc");
        assert_eq!(p.cut(), 1);
        assert_eq!(c.read(&mut [0u8; 8]).expect("eof"), 0);
        assert_eq!((p.live(), p.cut()), (0, 0));
        // A stall holds bytes but does not hold up a cut.
        let mut d = connect(p.addr);
        echoes(&mut d, b"x");
        p.stall(true);
        d.write_all(b"held").expect("write");
        let t = Instant::now();
        assert_eq!(p.cut(), 1);
        assert!(t.elapsed() < Duration::from_millis(100));
        assert_eq!(d.read(&mut [0u8; 8]).expect("eof"), 0);
        p.stall(false);
        let mut e = connect(p.addr);
        echoes(&mut e, b"again");
        assert_eq!(conns.load(SeqCst), 3);
        // Dropping the proxy cuts too, and stops listening.
        let addr = p.addr;
        drop(p);
        assert_eq!(e.read(&mut [0u8; 8]).expect("eof"), 0);
        assert!(TcpStream::connect(addr).is_err(), "still listening");
    }

    #[test]
    fn fault_proxy_reset_gives_econnreset() {
        let s = sink();
        let p = FaultProxy::start(s.addr);
        let mut c = connect(p.addr);
        c.write_all(b"abc").expect("write");
        eventually("bytes at the server", || s.got.load(SeqCst) == 3);
        assert_eq!(p.reset(), 1);
        assert_ended(&mut c);
        let (got, err, _) = s.recv();
        assert_eq!((&got[..], err), (&b"abc"[..], Some(ErrorKind::ConnectionReset)));
        assert_eq!(p.live(), 0);
    }

    #[test]
    fn fault_proxy_cut_after_exact_bytes() {
        let s = sink();
        let p = FaultProxy::start(s.addr);
        p.cut_after(100_000);
        let c = connect(p.addr);
        let data = pattern(300_000);
        let _w = send(&c, data.clone());
        let (got, err, _) = s.recv();
        assert_eq!((got.len(), err), (100_000, None));
        assert!(got[..] == data[..100_000], "prefix differs");
        eventually("connection gone", || p.live() == 0);
        // One-shot: the next connection is carried whole.
        let d = connect(p.addr);
        let _w = send(&d, data);
        let (got, err, _) = s.recv();
        assert_eq!((got.len(), err), (300_000, None));
    }

    #[test]
    fn fault_proxy_corrupt_after_flips_one_bit() {
        let s = sink();
        let p = FaultProxy::start(s.addr);
        let c = connect(p.addr);
        p.corrupt_after(123_457);
        let data = pattern(400_000);
        let _w = send(&c, data.clone());
        let (got, err, _) = s.recv();
        assert_eq!((got.len(), err), (data.len(), None));
        let diffs: Vec<usize> = (0..got.len()).filter(|&i| got[i] != data[i]).collect();
        assert_eq!((diffs, (got[123_457] ^ data[123_457]).count_ones()), (vec![123_457], 1));
    }

    #[test]
    fn fault_proxy_refuse_new_keeps_live() {
        let (target, conns) = echo();
        let p = FaultProxy::start(target);
        let mut a = connect(p.addr);
        echoes(&mut a, b"a");
        p.refuse(true);
        let mut b = connect(p.addr);
        let _ = b.write_all(b"lost");
        let t = Instant::now();
        assert_ended(&mut b);
        assert!(t.elapsed() < Duration::from_secs(1));
        echoes(&mut a, b"still");
        assert_eq!((conns.load(SeqCst), p.accepted(), p.live()), (1, 1, 1));
        p.refuse(false);
        let mut d = connect(p.addr);
        echoes(&mut d, b"ok");
        assert_eq!(p.accepted(), 2);
    }
}
