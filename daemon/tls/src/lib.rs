//! drpair's TLS, one crypto provider (aws-lc-rs) for the whole tree, TLS 1.3 only.
//!
//! - [`StandbyIdentity`]: the standby's own CA and server certificate, made on first start in
//!   its data dir (or read from configured files), and the [`Fingerprint`] operators pin.
//! - [`client_config`]: how an agent or the CLI trusts a standby — by a pinned fingerprint
//!   (the name in the certificate is then not checked, as ssh and Proxmox Backup Server do) or
//!   by a CA file — optionally presenting a client certificate.
//! - [`server_config`]: the standby's side, asking for (not requiring) a client certificate
//!   signed by its CA: an agent without one can only enroll.
//! - [`issue_client_cert`]: the standby's CA signs an agent's own key at enrollment.
//! - [`cert_validity`]: a certificate's subject and `notAfter` (expiry metrics and alerts).
//!
//! See ARCHITECTURE.md, "Security".

mod config;
mod fingerprint;
mod identity;
mod issue;
mod pem;
mod probe;
mod validity;
mod verify;

pub use config::{ClientIdentity, StandbyTrust, client_config, server_config};
pub use fingerprint::{Fingerprint, FingerprintError};
pub use identity::{IdentityFiles, StandbyIdentity, write_file};
pub use issue::{AgentKey, IssuedCert, issue_client_cert};
pub use pem::{read_certs, read_key};
pub use probe::{fetch_chain, pinned_anchor};
pub use rustls;
pub use validity::{CertValidity, cert_validity};

use std::sync::Arc;

/// A random secret of 24 bytes, in hex (enrollment secrets, API tokens).
pub fn random_secret() -> String {
    use aws_lc_rs::rand::SecureRandom as _;
    let mut b = [0u8; 24];
    aws_lc_rs::rand::SystemRandom::new().fill(&mut b).expect("system random");
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The crypto provider of every TLS config drpair builds.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The DNS name every certificate the standby makes for itself carries: agents that pin a
/// CA fingerprint ask for it, whatever address they dialled.
pub const STANDBY_NAME: &str = "drpair-standby";

/// Why a TLS set-up step failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Pem { path: String, message: String },
    #[error("cannot make a certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    #[error("{0}")]
    Invalid(String),
}

impl TlsError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        TlsError::Io { path: path.display().to_string(), source }
    }
}

#[cfg(test)]
mod handshake_tests;
