//! A hand-driven agent side of the replication link, for sending the standby bad input.

use drpair_wire::{AgentMsg, AgentState, HEADER_LEN, Hello, StandbyMsg, WireDisk, decode_body, decode_header, encode};
use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// What reading the next frame gave.
#[derive(Debug)]
pub enum Recv {
    Msg(StandbyMsg),
    /// The standby closed the connection (EOF or reset).
    Closed,
    /// Nothing within the read timeout.
    Timeout,
    /// The standby sent something that is not a valid frame.
    Bad(String),
}

trait Io: Read + Write + Send {}
impl<T: Read + Write + Send> Io for T {}

pub struct RawLink {
    /// The socket below (read timeouts are set on it).
    socket: TcpStream,
    stream: Box<dyn Io>,
}

impl RawLink {
    /// Connects to the standby's link as it is secured: TLS pinned to its fingerprint, or
    /// plain TCP when it runs with `--insecure-plaintext`.
    pub fn to(sb: &crate::daemons::Standby) -> Self {
        Self::connect(sb.link, sb.fingerprint.as_deref(), None)
    }

    /// Like [`RawLink::to`], from the local address `source` (any of 127.0.0.0/8 reaches a
    /// standby on loopback): the standby records it as the agent's address.
    pub fn to_from(sb: &crate::daemons::Standby, source: Ipv4Addr) -> Self {
        let socket = tcp_from(source, sb.link).unwrap_or_else(|e| panic!("connect {} from {source}: {e}", sb.link));
        Self::over(socket, sb.fingerprint.as_deref(), None)
    }

    /// Connects to `addr`: TLS pinned to `fingerprint` (presenting `client`, an agent's
    /// certificate, when given), or plain TCP without a fingerprint.
    pub fn connect(addr: SocketAddr, fingerprint: Option<&str>, client: Option<drpair_tls::ClientIdentity>) -> Self {
        let socket =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::over(socket, fingerprint, client)
    }

    fn over(socket: TcpStream, fingerprint: Option<&str>, client: Option<drpair_tls::ClientIdentity>) -> Self {
        socket.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        socket.set_nodelay(true).expect("nodelay");
        let stream: Box<dyn Io> = match fingerprint {
            None => Box::new(socket.try_clone().expect("clone")),
            Some(f) => {
                let pin = f.parse().expect("fingerprint");
                let config = drpair_tls::client_config(&drpair_tls::StandbyTrust::Pinned(pin), client).expect("tls");
                let name = drpair_tls::rustls::pki_types::ServerName::try_from(drpair_tls::STANDBY_NAME).expect("name");
                let conn = drpair_tls::rustls::ClientConnection::new(config, name).expect("tls connection");
                Box::new(drpair_tls::rustls::StreamOwned::new(conn, socket.try_clone().expect("clone")))
            }
        };
        Self { socket, stream }
    }

    /// Writes raw bytes; an error means the standby already closed (fine for bad input).
    pub fn send_bytes(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(b)?;
        self.stream.flush()
    }

    /// Encodes and sends a message; panics if the standby already closed.
    pub fn send(&mut self, m: &AgentMsg) {
        let f = encode(m).expect("encode");
        self.send_bytes(&f).unwrap_or_else(|e| panic!("sending {}: {e}", m.name()));
    }

    /// Reads one frame; heartbeats are answered, as a real agent does, and neither they nor
    /// the standby's pace are returned.
    pub fn recv(&mut self) -> Recv {
        loop {
            match self.recv_frame() {
                Recv::Msg(StandbyMsg::Ping { seq }) => {
                    let f = encode(&AgentMsg::Pong { seq }).expect("encode");
                    let _ = self.send_bytes(&f);
                }
                Recv::Msg(StandbyMsg::Pace { .. }) => {}
                other => return other,
            }
        }
    }

    fn recv_frame(&mut self) -> Recv {
        let mut h = [0u8; HEADER_LEN];
        if let Err(e) = self.stream.read_exact(&mut h) {
            return match e.kind() {
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe => Recv::Closed,
                ErrorKind::WouldBlock | ErrorKind::TimedOut => Recv::Timeout,
                _ => Recv::Bad(e.to_string()),
            };
        }
        let header = match decode_header(&h) {
            Ok(x) => x,
            Err(e) => return Recv::Bad(e.to_string()),
        };
        let mut body = vec![0u8; header.len as usize];
        if let Err(e) = self.stream.read_exact(&mut body) {
            return Recv::Bad(format!("truncated frame: {e}"));
        }
        match decode_body::<StandbyMsg>(header, &body) {
            Ok(m) => Recv::Msg(m),
            Err(e) => Recv::Bad(e.to_string()),
        }
    }

    /// Reads frames until the standby closes or `timeout` passes. Returns the messages and
    /// whether the connection was closed.
    pub fn drain(&mut self, timeout: Duration) -> (Vec<StandbyMsg>, bool) {
        let deadline = Instant::now() + timeout;
        self.socket.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
        let mut got = vec![];
        let mut closed = false;
        while Instant::now() < deadline {
            match self.recv() {
                Recv::Msg(m) => got.push(m),
                Recv::Closed => {
                    closed = true;
                    break;
                }
                Recv::Timeout => {}
                Recv::Bad(e) => panic!("the standby sent a bad frame: {e}"),
            }
        }
        self.socket.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        (got, closed)
    }

    /// Sends a Hello and returns the standby's first answer.
    pub fn hello(&mut self, h: Hello) -> StandbyMsg {
        self.send(&AgentMsg::Hello(h));
        match self.recv() {
            Recv::Msg(m) => m,
            other => panic!("no answer to Hello: {other:?}"),
        }
    }
}

/// A TCP connection to `to` bound to the local address `source` first (std connects only
/// from the address the kernel picks).
fn tcp_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let SocketAddr::V4(to) = to else { return Err(std::io::Error::other("the standby's link is not IPv4")) };
    let sockaddr = |ip: Ipv4Addr, port: u16| libc::sockaddr_in {
        sin_family: libc::sa_family_t::try_from(libc::AF_INET).expect("AF_INET"),
        sin_port: port.to_be(),
        sin_addr: libc::in_addr { s_addr: u32::from(ip).to_be() },
        sin_zero: [0; 8],
    };
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr_in>()).expect("sockaddr_in size");
    // SAFETY: plain socket(2); the descriptor is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let (local, remote) = (sockaddr(source, 0), sockaddr(*to.ip(), to.port()));
    // SAFETY: the addresses are valid sockaddr_in of `len` bytes, alive for the calls.
    if unsafe { libc::bind(fd, (&raw const local).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: as above; a blocking connect to loopback.
    if unsafe { libc::connect(fd, (&raw const remote).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(TcpStream::from(owned))
}

/// A Hello of an agent without state (first start) offering one disk.
pub fn hello(pair: &str, token: Option<&str>, path: &str, size: u64, chunk_size: u64) -> Hello {
    Hello {
        pair_id: pair.into(),
        token: token.map(String::from),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| "unknown".into()),
        agent_version: "e2e-raw".into(),
        tracker: "scan".into(),
        disks: vec![WireDisk { path: path.into(), size_bytes: size, chunk_size }],
        state: AgentState::default(),
        reinit: false,
    }
}
