//! The standby's identity: a CA of its own (which signs its server certificate and, at
//! enrollment, the agents' client certificates) and the server certificate it presents.
//!
//! Made on first start under `DATA_DIR/tls/` (keys 0600), or read from the operator's files
//! (`tls_cert`, `tls_key`; the CA that signs agents stays the standby's own). The
//! fingerprint operators pin is that of the last certificate of the presented chain: the
//! standby's CA when it made its own, which stays the same when the server certificate is
//! made again for new names.

use crate::{Fingerprint, STANDBY_NAME, TlsError, read_certs, read_key};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use time::{Duration, OffsetDateTime};

/// Where the identity's files are.
#[derive(Debug, Clone)]
pub struct IdentityFiles {
    pub dir: PathBuf,
    /// The operator's server chain (PEM, leaf first) and key, instead of the standby's own.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// The standby's CA and server certificate, loaded.
pub struct StandbyIdentity {
    /// The CA that signs agents' certificates (and, when the standby made its own, its server
    /// certificate).
    pub ca_cert: CertificateDer<'static>,
    ca_pem: String,
    pub(crate) ca_key: KeyPair,
    /// Presented to every peer, leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub(crate) key: PrivateKeyDer<'static>,
    /// Of the last certificate of `chain`.
    pub fingerprint: Fingerprint,
    /// Made just now (first start).
    pub created: bool,
}

impl std::fmt::Debug for StandbyIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the keys.
        f.debug_struct("StandbyIdentity").field("fingerprint", &self.fingerprint).finish_non_exhaustive()
    }
}

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";

impl StandbyIdentity {
    /// Loads the identity from `files.dir`, making what is missing. `names` go into a server
    /// certificate the standby makes (host names and addresses it is reached by), besides
    /// [`STANDBY_NAME`], `localhost` and the loopback addresses.
    pub fn load_or_create(files: &IdentityFiles, names: &[String]) -> Result<Self, TlsError> {
        let dir = &files.dir;
        std::fs::create_dir_all(dir).map_err(|e| TlsError::io(dir, e))?;
        let (ca_pem, ca_key_pem, mut created) = match (read(&dir.join(CA_CERT))?, read(&dir.join(CA_KEY))?) {
            (Some(c), Some(k)) => (c, k, false),
            (None, None) => {
                let (c, k) = make_ca()?;
                write_file(&dir.join(CA_KEY), k.as_bytes(), 0o600)?;
                write_file(&dir.join(CA_CERT), c.as_bytes(), 0o644)?;
                (c, k, true)
            }
            _ => {
                return Err(TlsError::Invalid(format!(
                    "{}: one of {CA_CERT} and {CA_KEY} is missing; restore it from a backup, or move both away to make a new identity (every agent must then enroll again)",
                    dir.display()
                )));
            }
        };
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let ca_cert = read_certs(&dir.join(CA_CERT))?.remove(0);
        let (chain, key) = match (&files.cert, &files.key) {
            (Some(c), Some(k)) => (read_certs(c)?, read_key(k)?),
            (None, None) => {
                let (sp, sk) = (dir.join(SERVER_CERT), dir.join(SERVER_KEY));
                if !sp.exists() || !sk.exists() {
                    let issuer = Issuer::new(ca_params(&ca_key), &ca_key);
                    let (leaf, key) = make_server(names, &issuer)?;
                    write_file(&sk, key.as_bytes(), 0o600)?;
                    write_file(&sp, format!("{leaf}{ca_pem}").as_bytes(), 0o644)?;
                    created = true;
                }
                (read_certs(&sp)?, read_key(&sk)?)
            }
            _ => return Err(TlsError::Invalid("tls_cert and tls_key go together: set both or neither".into())),
        };
        let fingerprint = Fingerprint::of(chain.last().expect("read_certs returns one at least"));
        Ok(Self { ca_cert, ca_pem, ca_key, chain, key, fingerprint, created })
    }

    /// The server's private key (for a rustls config).
    pub fn key(&self) -> PrivateKeyDer<'static> {
        self.key.clone_key()
    }

    /// The CA certificate as PEM (for `--ca-file` users and browsers).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }
}

fn read(path: &Path) -> Result<Option<String>, TlsError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(TlsError::io(path, e)),
    }
}

/// Writes a file whole with `mode` from its creation (a key is never readable by others,
/// not even for a moment), then renames it into place.
pub fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(|e| TlsError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| TlsError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TlsError::io(path, e))
}

fn make_ca() -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let cert = ca_params(&key).self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// The CA's parameters, rebuilt from its key alone (its name is derived from the key), so the
/// standby can sign with it after a restart without parsing its own certificate back.
pub(crate) fn ca_params(key: &KeyPair) -> CertificateParams {
    let id = Fingerprint::of(key.public_key_raw()).0;
    let mut p = CertificateParams::default();
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name
        .push(DnType::CommonName, format!("drpair standby CA {:02x}{:02x}{:02x}{:02x}", id[0], id[1], id[2], id[3]));
    p.distinguished_name.push(DnType::OrganizationName, "drpair");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(365 * 20);
    p
}

fn make_server(names: &[String], issuer: &Issuer<'_, &KeyPair>) -> Result<(String, String), TlsError> {
    let key = KeyPair::generate()?;
    let mut all: Vec<String> = vec![STANDBY_NAME.into(), "localhost".into(), "127.0.0.1".into(), "::1".into()];
    for n in names {
        if !n.is_empty() && !all.contains(n) {
            all.push(n.clone());
        }
    }
    let mut p = CertificateParams::new(all)?;
    p.distinguished_name = rcgen::DistinguishedName::new();
    p.distinguished_name.push(DnType::CommonName, STANDBY_NAME);
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.use_authority_key_identifier_extension = true;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(1);
    p.not_after = now + Duration::days(365 * 10);
    let cert = p.signed_by(&key, issuer)?;
    Ok((cert.pem(), key.serialize_pem()))
}

/// A key as rustls takes it, from rcgen's PKCS#8.
pub(crate) fn pkcs8(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn made_once_then_loaded_with_the_same_fingerprint() {
        let d = tempfile::tempdir().unwrap();
        let files = IdentityFiles { dir: d.path().join("tls"), cert: None, key: None };
        let a = StandbyIdentity::load_or_create(&files, &["backup.example".into()]).unwrap();
        assert!(a.created);
        assert_eq!(a.chain.len(), 2);
        assert_eq!(a.fingerprint, Fingerprint::of(&a.ca_cert));
        for k in [CA_KEY, SERVER_KEY] {
            let mode = std::fs::metadata(files.dir.join(k)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{k}");
        }
        let b = StandbyIdentity::load_or_create(&files, &[]).unwrap();
        assert!(!b.created);
        assert_eq!(a.fingerprint, b.fingerprint);
        assert!(!format!("{b:?}").contains("PRIVATE"));
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert_eq!(read_certs_from(a.ca_pem())[0], a.ca_cert);
    }

    #[test]
    fn half_an_identity_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let files = IdentityFiles { dir: d.path().to_path_buf(), cert: None, key: None };
        StandbyIdentity::load_or_create(&files, &[]).unwrap();
        std::fs::remove_file(d.path().join(CA_KEY)).unwrap();
        let e = StandbyIdentity::load_or_create(&files, &[]).unwrap_err().to_string();
        assert!(e.contains("ca.key is missing") || e.contains("is missing"), "{e}");
    }

    fn read_certs_from(pem: &str) -> Vec<CertificateDer<'static>> {
        use rustls::pki_types::pem::PemObject;
        CertificateDer::pem_slice_iter(pem.as_bytes()).collect::<Result<_, _>>().unwrap()
    }
}
