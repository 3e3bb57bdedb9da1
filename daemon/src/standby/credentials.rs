//! Agents' credentials: single-use enrollment secrets (`drpair pairs enroll PAIR`), the
//! certificates issued for them, and revocations. The pair a connection speaks for is taken
//! from here by its certificate's fingerprint, never from what the peer claims.
//!
//! Kept in `DATA_DIR/credentials.json` (0600), written whole and renamed into place on every
//! change; secrets are stored only as their BLAKE3 hash.

use crate::timefmt::now_ms;
use drpair_tls::Fingerprint;
use drpair_types::PairId;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a credential was refused (the text goes to the peer and the audit log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredError {
    #[error("enrollment secret refused: no enrollment has this secret")]
    UnknownSecret,
    #[error("enrollment secret refused: it was already used (each secret enrolls one agent once)")]
    SecretUsed { pair: String },
    #[error("enrollment secret refused: it expired at {at}")]
    SecretExpired { pair: String, at: String },
    #[error("enrollment secret refused: it is for pair '{secret_pair}', the agent enrolls as '{claimed}'")]
    OtherPair { secret_pair: String, claimed: String },
    #[error("certificate {0} is not known to this standby (enroll the agent: drpair pairs enroll PAIR)")]
    UnknownCertificate(String),
    #[error("the certificate of pair '{0}' was revoked: enroll the agent again (drpair pairs enroll {0})")]
    Revoked(String),
    #[error("the certificate of pair '{pair}' expired at {at}: enroll the agent again")]
    Expired { pair: String, at: String },
    #[error("credentials file: {0}")]
    Io(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct CredFile {
    enrollments: Vec<Enrollment>,
    certificates: Vec<AgentCert>,
    /// Pairs whose credentials were revoked and not enrolled again: refused on every path.
    revoked_pairs: Vec<PairId>,
    /// Pairs deleted (`drpair pairs delete`): their agents are refused with the reason until
    /// one starts with `--reinit` (a new pair of the same id).
    #[serde(default)]
    deleted_pairs: Vec<DeletedPair>,
}

/// A pair an operator deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedPair {
    pub pair: PairId,
    pub deleted_unix_ms: u64,
    pub by: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Enrollment {
    pair: PairId,
    secret_blake3: String,
    created_unix_ms: u64,
    expires_unix_ms: u64,
    by: String,
    used_unix_ms: Option<u64>,
}

/// A certificate issued to an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCert {
    pub pair: PairId,
    pub fingerprint: String,
    pub issued_unix_ms: u64,
    pub not_after_unix_ms: u64,
    pub revoked_unix_ms: Option<u64>,
}

/// The standby's agents' credentials.
pub struct Credentials {
    path: PathBuf,
    state: Mutex<CredFile>,
}

fn hash(secret: &str) -> String {
    blake3::hash(secret.trim().as_bytes()).to_hex().to_string()
}

impl CredError {
    /// The pair an enrollment secret was for, when the secret was known.
    pub fn pair(&self) -> Option<&str> {
        match self {
            CredError::SecretUsed { pair } | CredError::SecretExpired { pair, .. } => Some(pair),
            CredError::OtherPair { secret_pair, .. } => Some(secret_pair),
            CredError::Revoked(p) => Some(p),
            CredError::Expired { pair, .. } => Some(pair),
            _ => None,
        }
    }
}

impl Credentials {
    /// Opens `DATA_DIR/credentials.json` (none yet: empty).
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("credentials.json");
        let state = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => CredFile::default(),
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        Ok(Self { path, state: Mutex::new(state) })
    }

    fn save(&self, f: &CredFile) -> Result<(), CredError> {
        let bytes = serde_json::to_vec_pretty(f).map_err(|e| CredError::Io(e.to_string()))?;
        drpair_tls::write_file(&self.path, &bytes, 0o600).map_err(|e| CredError::Io(e.to_string()))
    }

    /// A new single-use secret enrolling an agent as `pair`, valid for `ttl_ms`.
    pub fn new_enrollment(&self, pair: &PairId, ttl_ms: u64, by: &str) -> Result<(String, u64), CredError> {
        let secret = drpair_tls::random_secret();
        let now = now_ms();
        let mut f = self.state.lock().expect("credentials");
        // Forget what can no longer matter: enrollments ended a week ago.
        f.enrollments.retain(|e| e.used_unix_ms.unwrap_or(e.expires_unix_ms) + 7 * 86_400_000 > now);
        let expires = now.saturating_add(ttl_ms);
        f.enrollments.push(Enrollment {
            pair: pair.clone(),
            secret_blake3: hash(&secret),
            created_unix_ms: now,
            expires_unix_ms: expires,
            by: by.to_string(),
            used_unix_ms: None,
        });
        self.save(&f)?;
        Ok((secret, expires))
    }

    /// Uses up `secret` (persisted before anything is issued for it): the pair it enrolls.
    /// `claimed` (the agent's configured pair, may be empty) must be that pair.
    pub fn redeem(&self, secret: &str, claimed: &str) -> Result<PairId, CredError> {
        let now = now_ms();
        let h = hash(secret);
        let mut f = self.state.lock().expect("credentials");
        let e = f.enrollments.iter_mut().find(|e| e.secret_blake3 == h).ok_or(CredError::UnknownSecret)?;
        if e.used_unix_ms.is_some() {
            return Err(CredError::SecretUsed { pair: e.pair.to_string() });
        }
        if now > e.expires_unix_ms {
            return Err(CredError::SecretExpired {
                pair: e.pair.to_string(),
                at: crate::timefmt::rfc3339_ms(e.expires_unix_ms),
            });
        }
        if !claimed.is_empty() && claimed != e.pair.as_str() {
            return Err(CredError::OtherPair { secret_pair: e.pair.to_string(), claimed: claimed.to_string() });
        }
        e.used_unix_ms = Some(now);
        let pair = e.pair.clone();
        self.save(&f)?;
        Ok(pair)
    }

    /// Records a certificate issued to `pair`'s agent; the pair is no longer revoked.
    pub fn record(&self, pair: &PairId, fp: Fingerprint, not_after_unix: u64) -> Result<(), CredError> {
        let now = now_ms();
        let mut f = self.state.lock().expect("credentials");
        f.certificates.retain(|c| c.not_after_unix_ms + 30 * 86_400_000 > now);
        f.certificates.push(AgentCert {
            pair: pair.clone(),
            fingerprint: fp.to_string(),
            issued_unix_ms: now,
            not_after_unix_ms: not_after_unix.saturating_mul(1000),
            revoked_unix_ms: None,
        });
        f.revoked_pairs.retain(|p| p != pair);
        self.save(&f)
    }

    /// The pair a certificate was issued to, if it is still good.
    pub fn pair_of(&self, fp: Fingerprint) -> Result<PairId, CredError> {
        let f = self.state.lock().expect("credentials");
        let text = fp.to_string();
        let c = f
            .certificates
            .iter()
            .find(|c| c.fingerprint == text)
            .ok_or_else(|| CredError::UnknownCertificate(text.clone()))?;
        if c.revoked_unix_ms.is_some() {
            return Err(CredError::Revoked(c.pair.to_string()));
        }
        if now_ms() > c.not_after_unix_ms {
            return Err(CredError::Expired {
                pair: c.pair.to_string(),
                at: crate::timefmt::rfc3339_ms(c.not_after_unix_ms),
            });
        }
        Ok(c.pair.clone())
    }

    /// Whether `pair`'s credentials were revoked (and it did not enroll again).
    pub fn is_revoked(&self, pair: &PairId) -> bool {
        self.state.lock().expect("credentials").revoked_pairs.contains(pair)
    }

    /// Revokes every certificate of `pair` and its unused enrollments; returns how many
    /// certificates were revoked.
    pub fn revoke(&self, pair: &PairId) -> Result<usize, CredError> {
        let now = now_ms();
        let mut f = self.state.lock().expect("credentials");
        let mut n = 0;
        for c in f.certificates.iter_mut().filter(|c| &c.pair == pair && c.revoked_unix_ms.is_none()) {
            c.revoked_unix_ms = Some(now);
            n += 1;
        }
        for e in f.enrollments.iter_mut().filter(|e| &e.pair == pair && e.used_unix_ms.is_none()) {
            e.expires_unix_ms = e.expires_unix_ms.min(now);
        }
        if !f.revoked_pairs.contains(pair) {
            f.revoked_pairs.push(pair.clone());
        }
        self.save(&f)?;
        Ok(n)
    }

    /// Records that `pair` was deleted by `by`.
    pub fn mark_deleted(&self, pair: &PairId, by: &str) -> Result<(), CredError> {
        let mut f = self.state.lock().expect("credentials");
        f.deleted_pairs.retain(|d| &d.pair != pair);
        f.deleted_pairs.push(DeletedPair { pair: pair.clone(), deleted_unix_ms: now_ms(), by: by.to_string() });
        self.save(&f)
    }

    /// When and by whom `pair` was deleted, if it was (and not registered again since).
    pub fn deleted(&self, pair: &PairId) -> Option<DeletedPair> {
        self.state.lock().expect("credentials").deleted_pairs.iter().find(|d| &d.pair == pair).cloned()
    }

    /// A pair of a deleted pair's id is registered again.
    pub fn forget_deleted(&self, pair: &PairId) -> Result<(), CredError> {
        let mut f = self.state.lock().expect("credentials");
        if f.deleted_pairs.iter().any(|d| &d.pair == pair) {
            f.deleted_pairs.retain(|d| &d.pair != pair);
            self.save(&f)?;
        }
        Ok(())
    }

    /// The certificates issued (for the API's listing).
    pub fn certificates(&self) -> Vec<AgentCert> {
        self.state.lock().expect("credentials").certificates.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(s: &str) -> PairId {
        PairId::new(s).unwrap()
    }

    #[test]
    fn a_secret_enrolls_once_and_only_its_pair() {
        let d = tempfile::tempdir().unwrap();
        let c = Credentials::open(d.path()).unwrap();
        let (secret, _) = c.new_enrollment(&pair("db1"), 60_000, "admin").unwrap();
        assert_eq!(
            c.redeem(&secret, "db2"),
            Err(CredError::OtherPair { secret_pair: "db1".into(), claimed: "db2".into() })
        );
        assert_eq!(c.redeem(&secret, "db1").unwrap(), pair("db1"));
        assert_eq!(c.redeem(&secret, "db1"), Err(CredError::SecretUsed { pair: "db1".into() }));
        assert_eq!(c.redeem("nonsense", ""), Err(CredError::UnknownSecret));
        let (old, _) = c.new_enrollment(&pair("db1"), 0, "admin").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert!(matches!(c.redeem(&old, ""), Err(CredError::SecretExpired { .. })));
        // Secrets are not kept in clear.
        let file = std::fs::read_to_string(d.path().join("credentials.json")).unwrap();
        assert!(!file.contains(&secret));
    }

    #[test]
    fn certificates_bind_pairs_until_revoked_and_survive_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let c = Credentials::open(d.path()).unwrap();
        let fp = Fingerprint::of(b"cert");
        let far = now_ms() / 1000 + 3600;
        c.record(&pair("db1"), fp, far).unwrap();
        assert_eq!(c.pair_of(fp).unwrap(), pair("db1"));
        assert!(matches!(c.pair_of(Fingerprint::of(b"other")), Err(CredError::UnknownCertificate(_))));
        let c = Credentials::open(d.path()).unwrap();
        assert_eq!(c.pair_of(fp).unwrap(), pair("db1"));
        assert_eq!(c.revoke(&pair("db1")).unwrap(), 1);
        assert!(c.is_revoked(&pair("db1")));
        assert_eq!(c.pair_of(fp), Err(CredError::Revoked("db1".into())));
        // Enrolling again lifts the revocation for the new certificate only.
        let fp2 = Fingerprint::of(b"cert2");
        c.record(&pair("db1"), fp2, far).unwrap();
        assert!(!c.is_revoked(&pair("db1")));
        assert_eq!(c.pair_of(fp), Err(CredError::Revoked("db1".into())));
        assert_eq!(c.pair_of(fp2).unwrap(), pair("db1"));
        let expired = Fingerprint::of(b"cert3");
        c.record(&pair("db2"), expired, 1).unwrap();
        assert!(matches!(c.pair_of(expired), Err(CredError::Expired { .. })));
    }
}
