//! The rustls configs drpair uses: TLS 1.3 only, one provider.

use crate::verify::PinnedStandby;
use crate::{Fingerprint, StandbyIdentity, TlsError, provider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::sync::Arc;

/// How a client knows the standby is the one it means.
#[derive(Debug, Clone)]
pub enum StandbyTrust {
    /// The fingerprint of a certificate of the standby's chain (normally its CA).
    Pinned(Fingerprint),
    /// CA certificates (from a file): the standby's certificate must chain to one and carry
    /// the name dialled.
    Roots(Vec<CertificateDer<'static>>),
}

/// A client certificate chain and its key (an enrolled agent's credential).
pub struct ClientIdentity {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A client config: the standby verified as `trust` says, `me` presented when given.
pub fn client_config(trust: &StandbyTrust, me: Option<ClientIdentity>) -> Result<Arc<ClientConfig>, TlsError> {
    let provider = provider();
    let builder =
        ClientConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match trust {
        StandbyTrust::Pinned(pin) => {
            builder.dangerous().with_custom_certificate_verifier(Arc::new(PinnedStandby::new(*pin, &provider)))
        }
        StandbyTrust::Roots(certs) => {
            let mut roots = RootCertStore::empty();
            for c in certs {
                roots.add(c.clone())?;
            }
            builder.with_root_certificates(roots)
        }
    };
    let config = match me {
        Some(id) => builder.with_client_auth_cert(id.chain, id.key)?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The standby's server config. With `client_roots`, clients are asked for a certificate
/// signed by one of them (the standby's own CA first) but may connect without one (to enroll);
/// without, no client certificate is asked for (the HTTPS API).
pub fn server_config(
    id: &StandbyIdentity,
    client_roots: Option<&[CertificateDer<'static>]>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = provider();
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&[&rustls::version::TLS13])?;
    let builder = match client_roots {
        Some(extra) => {
            let mut roots = RootCertStore::empty();
            roots.add(id.ca_cert.clone())?;
            for c in extra {
                roots.add(c.clone())?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(builder.with_single_cert(id.chain.clone(), id.key())?))
}
