//! Looking at a standby's certificate chain before trusting it: `drpair login` shows the
//! fingerprint of what a server presents and asks; a client given a pinned fingerprint takes
//! the pinned certificate of the chain (verified by the pin) as the trust anchor of the HTTPS
//! client that follows, so every later connection is checked against it.

use crate::verify::PinnedStandby;
use crate::{Fingerprint, TlsError, provider};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, Error, SignatureScheme};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

/// Accepts any certificate (the handshake's signature is still checked): only to show what a
/// server presents, never to send anything over.
#[derive(Debug)]
struct ShowOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for ShowOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(m, c, d, &self.0)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(m, c, d, &self.0)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The chain `host:port` presents (leaf first), checked against `pin` when given.
pub fn fetch_chain(host: &str, port: u16, pin: Option<Fingerprint>) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let p = provider();
    let verifier: Arc<dyn ServerCertVerifier> = match pin {
        Some(f) => Arc::new(PinnedStandby::new(f, &p)),
        None => Arc::new(ShowOnly(p.signature_verification_algorithms)),
    };
    let config = ClientConfig::builder_with_provider(p)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    let name = ServerName::try_from(host.to_string()).map_err(|e| TlsError::Invalid(format!("{host}: {e}")))?;
    let mut conn = ClientConnection::new(Arc::new(config), name)?;
    let addr = format!("{}:{port}", if host.contains(':') { format!("[{host}]") } else { host.to_string() });
    let io = |e: std::io::Error| TlsError::Invalid(format!("{addr}: {e}"));
    let mut sock = TcpStream::connect(&addr).map_err(io)?;
    sock.set_read_timeout(Some(Duration::from_secs(10))).map_err(io)?;
    sock.set_write_timeout(Some(Duration::from_secs(10))).map_err(io)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(io)?;
    }
    let chain =
        conn.peer_certificates().map(|c| c.iter().map(|d| d.clone().into_owned()).collect()).unwrap_or_default();
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(chain)
}

/// The certificate of `chain` whose fingerprint is `pin`.
pub fn pinned_anchor(chain: &[CertificateDer<'static>], pin: Fingerprint) -> Option<CertificateDer<'static>> {
    chain.iter().find(|c| Fingerprint::of(c) == pin).cloned()
}
