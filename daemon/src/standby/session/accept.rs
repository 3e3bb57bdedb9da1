//! Before admission: a connection counted against the limits (per source address and in
//! all), its TLS handshake completed within a deadline, and the agent's certificate, if it
//! presented one, taken by its fingerprint. Nothing here touches a pair: refusals before
//! authentication go to a rate-limited log and a counter, never to a pair's history.

use super::conn::serve;
use super::refusals::refused_unauthenticated;
use crate::link::LinkStream;
use crate::link::meter::{LinkMeter, Metered};
use crate::standby::Standby;
use drpair_tls::Fingerprint;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;

/// Longest a peer may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Link connections open at once from one address.
pub const MAX_CONNS_PER_SOURCE: usize = 16;
/// Link connections open at once in all.
pub const MAX_CONNS: usize = 512;

/// The connections open, by source address.
#[derive(Default)]
pub struct ConnLimits {
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted when dropped.
pub struct ConnSlot {
    limits: Arc<ConnLimits>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().expect("conn limits");
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

impl ConnLimits {
    /// A slot for a connection from `ip`, or why there is none.
    pub fn take(self: &Arc<Self>, ip: IpAddr) -> Result<ConnSlot, &'static str> {
        let mut open = self.open.lock().expect("conn limits");
        if open.values().sum::<usize>() >= MAX_CONNS {
            return Err("too many link connections open");
        }
        let n = open.entry(ip).or_default();
        if *n >= MAX_CONNS_PER_SOURCE {
            return Err("too many link connections open from this address");
        }
        *n += 1;
        Ok(ConnSlot { limits: self.clone(), ip })
    }
}

/// Takes one accepted TCP connection through the limits and TLS, then serves it.
pub async fn accept(sb: Arc<Standby>, limits: Arc<ConnLimits>, tcp: TcpStream, peer: SocketAddr) {
    let _slot = match limits.take(peer.ip()) {
        Ok(s) => s,
        Err(why) => return refused_unauthenticated(peer, "limit", why),
    };
    let _ = tcp.set_nodelay(true);
    // Counted below TLS: the meter sees bytes on the wire, and paces them once the pair is known.
    let meter = Arc::new(LinkMeter::default());
    let tcp = Metered::new(tcp, meter.clone());
    let (stream, cert): (LinkStream, Option<Fingerprint>) = match &sb.identity {
        None => (Box::new(tcp), None),
        Some(id) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(id.link.clone());
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => {
                    let cert = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(|c| Fingerprint::of(c));
                    (Box::new(tls), cert)
                }
                Ok(Err(e)) => return refused_unauthenticated(peer, "tls", &format!("TLS handshake failed: {e}")),
                Err(_) => {
                    return refused_unauthenticated(peer, "timeout", "no TLS handshake within 10 s");
                }
            }
        }
    };
    serve(sb, stream, peer, cert, meter).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_source_and_release() {
        let l = Arc::new(ConnLimits::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let slots: Vec<_> = (0..MAX_CONNS_PER_SOURCE).map(|_| l.take(ip).unwrap()).collect();
        assert!(l.take(ip).is_err());
        assert!(l.take("192.0.2.2".parse().unwrap()).is_ok());
        drop(slots);
        assert!(l.take(ip).is_ok());
        assert!(l.open.lock().unwrap().len() <= 1);
    }
}
