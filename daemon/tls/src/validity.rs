//! When a certificate stops being valid, read from the certificate itself (its `notAfter`), so
//! what the standby reports is what a peer's TLS stack will check, whoever made the file.

use crate::TlsError;
use rustls::pki_types::CertificateDer;

/// A certificate's subject and the end of its validity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertValidity {
    /// The subject as text (`CN=drpair-standby`).
    pub subject: String,
    /// `notAfter`, in Unix seconds (negative before 1970, as X.509 allows).
    pub not_after_unix: i64,
}

/// Parses `der` (one X.509 certificate) for its subject and `notAfter`.
pub fn cert_validity(der: &CertificateDer<'_>) -> Result<CertValidity, TlsError> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| TlsError::Invalid(format!("not an X.509 certificate: {e}")))?;
    if !rest.is_empty() {
        return Err(TlsError::Invalid(format!("{} bytes after the certificate", rest.len())));
    }
    Ok(CertValidity { subject: cert.subject().to_string(), not_after_unix: cert.validity().not_after.timestamp() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AgentKey, IdentityFiles, StandbyIdentity, issue_client_cert};

    fn now() -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    #[test]
    fn reads_the_not_after_of_the_standbys_own_and_issued_certificates() {
        let d = tempfile::tempdir().unwrap();
        let files = IdentityFiles { dir: d.path().join("tls"), cert: None, key: None };
        let id = StandbyIdentity::load_or_create(&files, &[]).unwrap();
        let day = 86_400;
        let server = cert_validity(&id.chain[0]).unwrap();
        assert_eq!(server.subject, "CN=drpair-standby");
        assert!((server.not_after_unix - (now() + 3650 * day)).abs() < day, "{server:?}");
        let ca = cert_validity(&id.ca_cert).unwrap();
        assert!(ca.subject.starts_with("CN=drpair standby CA "), "{ca:?}");
        assert!((ca.not_after_unix - (now() + 7300 * day)).abs() < day, "{ca:?}");
        // An agent's certificate: the not-after the issuer reported, to the second.
        let key = AgentKey::generate().unwrap();
        let issued = issue_client_cert(&id, &key.public_raw(), "web-01", std::time::Duration::from_secs(3600)).unwrap();
        let agent = cert_validity(&issued.der).unwrap();
        assert_eq!(agent.not_after_unix, issued.not_after_unix as i64);
        assert!(agent.subject.contains("CN=web-01"), "{agent:?}");
    }

    #[test]
    fn garbage_is_refused() {
        let e = cert_validity(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])).unwrap_err();
        assert!(e.to_string().contains("not an X.509 certificate"), "{e}");
    }
}
