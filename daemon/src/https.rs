//! The API's listener: HTTPS with the standby's certificate by default (plain HTTP only on
//! loopback, when asked for). TLS handshakes run in their own tasks (10 s each), so a slow
//! client holds up nobody; the peer's address reaches handlers as [`Peer`].

use crate::link::LinkStream;
use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use drpair_tls::rustls::ServerConfig;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// The address of an API caller (`ConnectInfo<Peer>`).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// Accepted (and, with TLS, handshaken) API connections.
pub struct ApiListener {
    ready: mpsc::Receiver<(LinkStream, SocketAddr)>,
    local: SocketAddr,
    _accept: crate::link::AbortOnDrop,
}

impl ApiListener {
    /// Serves `tcp`, with TLS when `tls` is given.
    pub fn spawn(tcp: TcpListener, tls: Option<Arc<ServerConfig>>) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let task = tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("api accept: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let tx = tx.clone();
                match &tls {
                    None => {
                        let _ = tx.send((Box::new(stream) as LinkStream, peer)).await;
                    }
                    Some(config) => {
                        let acceptor = tokio_rustls::TlsAcceptor::from(config.clone());
                        tokio::spawn(async move {
                            match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream)).await {
                                Ok(Ok(s)) => {
                                    let _ = tx.send((Box::new(s) as LinkStream, peer)).await;
                                }
                                Ok(Err(e)) => tracing::debug!(%peer, "api TLS handshake failed: {e}"),
                                Err(_) => tracing::debug!(%peer, "api TLS handshake timed out"),
                            }
                        });
                    }
                }
            }
        });
        Ok(Self { ready, local, _accept: crate::link::AbortOnDrop(task) })
    }
}

impl Listener for ApiListener {
    type Io = LinkStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(x) => x,
            // The accept task never ends while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

impl Connected<IncomingStream<'_, ApiListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, ApiListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}
