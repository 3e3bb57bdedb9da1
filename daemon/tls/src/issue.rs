//! Client certificates for agents: the agent makes its own key (it never leaves the protected
//! server), sends the public half at enrollment, and the standby's CA signs a certificate for
//! it. The standby binds the certificate's fingerprint to the pair in its own table, so the
//! pair a connection speaks for comes from that table, never from what the peer claims.

use crate::identity::{ca_params, pkcs8, write_file};
use crate::{ClientIdentity, Fingerprint, StandbyIdentity, TlsError, read_certs, read_key};
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    PublicKeyData, SanType, SignatureAlgorithm,
};
use rustls::pki_types::CertificateDer;
use std::path::Path;
use time::{Duration, OffsetDateTime};

/// An agent's own key pair (ECDSA P-256).
pub struct AgentKey(KeyPair);

impl AgentKey {
    pub fn generate() -> Result<Self, TlsError> {
        Ok(AgentKey(KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?))
    }

    /// The public key as sent at enrollment (an uncompressed P-256 point).
    pub fn public_raw(&self) -> Vec<u8> {
        self.0.public_key_raw().to_vec()
    }

    /// Saves the key (0600) and the certificate issued for it under `dir` as `agent.key` and
    /// `agent.pem`, as one change: both are written beside as `.next` first, then renamed key
    /// first; [`AgentKey::load`] finishes or undoes a save that a crash cut short, so a key is
    /// never paired with another key's certificate.
    pub fn save(&self, dir: &Path, cert_pem: &str) -> Result<(), TlsError> {
        std::fs::create_dir_all(dir).map_err(|e| TlsError::io(dir, e))?;
        let [key, cert, key_next, cert_next] = names(dir);
        write_file(&key_next, self.0.serialize_pem().as_bytes(), 0o600)?;
        write_file(&cert_next, cert_pem.as_bytes(), 0o644)?;
        std::fs::rename(&key_next, &key).map_err(|e| TlsError::io(&key, e))?;
        std::fs::rename(&cert_next, &cert).map_err(|e| TlsError::io(&cert, e))?;
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(|e| TlsError::io(dir, e))
    }

    /// The credential saved under `dir`, if there is one.
    pub fn load(dir: &Path) -> Result<Option<ClientIdentity>, TlsError> {
        let [key, cert, key_next, cert_next] = names(dir);
        match (key_next.exists(), cert_next.exists()) {
            // Cut short between the two renames: the new key is in place, finish with its
            // certificate.
            (false, true) => std::fs::rename(&cert_next, &cert).map_err(|e| TlsError::io(&cert, e))?,
            // Cut short before the renames: the previous pair is whole, drop the new one.
            (true, _) => {
                let _ = std::fs::remove_file(&key_next);
                let _ = std::fs::remove_file(&cert_next);
            }
            (false, false) => {}
        }
        if !cert.exists() || !key.exists() {
            return Ok(None);
        }
        Ok(Some(ClientIdentity { chain: read_certs(&cert)?, key: read_key(&key)? }))
    }

    /// This key as rustls takes it, with its certificate.
    pub fn identity(&self, cert: CertificateDer<'static>) -> ClientIdentity {
        ClientIdentity { chain: vec![cert], key: pkcs8(&self.0) }
    }
}

/// `agent.key`, `agent.pem` and their `.next` while a save runs.
fn names(dir: &Path) -> [std::path::PathBuf; 4] {
    ["agent.key", "agent.pem", "agent.key.next", "agent.pem.next"].map(|n| dir.join(n))
}

/// A certificate the standby issued.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    pub pem: String,
    pub der: CertificateDer<'static>,
    pub fingerprint: Fingerprint,
    pub not_after_unix: u64,
}

struct RawP256<'a>(&'a [u8]);

impl PublicKeyData for RawP256<'_> {
    fn der_bytes(&self) -> &[u8] {
        self.0
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &PKCS_ECDSA_P256_SHA256
    }
}

/// Signs `public_raw` (an uncompressed P-256 point) for `pair`, valid for `ttl`.
pub fn issue_client_cert(
    id: &StandbyIdentity,
    public_raw: &[u8],
    pair: &str,
    ttl: std::time::Duration,
) -> Result<IssuedCert, TlsError> {
    if public_raw.len() != 65 || public_raw[0] != 4 {
        return Err(TlsError::Invalid(format!(
            "the agent's public key is not an uncompressed P-256 point ({} bytes)",
            public_raw.len()
        )));
    }
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, pair);
    p.distinguished_name.push(DnType::OrganizationName, "drpair agent");
    p.subject_alt_names = vec![SanType::URI(format!("drpair:pair:{pair}").try_into()?)];
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    let not_after = now + Duration::seconds(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX / 4).min(i64::MAX / 4));
    p.not_before = now - Duration::minutes(5);
    p.not_after = not_after;
    let issuer = Issuer::new(ca_params(&id.ca_key), &id.ca_key);
    let cert = p.signed_by(&RawP256(public_raw), &issuer)?;
    let der = cert.der().clone();
    Ok(IssuedCert {
        pem: cert.pem(),
        fingerprint: Fingerprint::of(&der),
        der,
        not_after_unix: u64::try_from(not_after.unix_timestamp()).unwrap_or(0),
    })
}
