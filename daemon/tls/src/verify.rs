//! Trusting a standby by a pinned fingerprint: the pinned certificate must be in the chain the
//! standby presents, and the leaf must be it or be signed through it. The name in the
//! certificate is not checked (the pin says who the standby is, whatever address was dialled).
//! A mismatch names both fingerprints.

use crate::Fingerprint;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::Arc;

#[derive(Debug)]
pub(crate) struct PinnedStandby {
    pin: Fingerprint,
    algs: WebPkiSupportedAlgorithms,
}

impl PinnedStandby {
    pub(crate) fn new(pin: Fingerprint, provider: &Arc<CryptoProvider>) -> Self {
        Self { pin, algs: provider.signature_verification_algorithms }
    }
}

impl ServerCertVerifier for PinnedStandby {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if Fingerprint::of(end_entity) == self.pin {
            return Ok(ServerCertVerified::assertion());
        }
        let Some(anchor) = intermediates.iter().find(|c| Fingerprint::of(c) == self.pin) else {
            let presented = Fingerprint::of(intermediates.last().unwrap_or(end_entity));
            return Err(Error::General(format!(
                "the standby's certificate does not match the pinned fingerprint: it presents {presented}, {} is pinned. \
                 If the standby was set up again, check its new fingerprint (`drpaird standby fingerprint` on it) and enroll again; \
                 otherwise something is between you and the standby",
                self.pin
            )));
        };
        let mut roots = RootCertStore::empty();
        roots.add(anchor.clone().into_owned())?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(&parsed, &roots, intermediates, now, self.algs.all)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}
