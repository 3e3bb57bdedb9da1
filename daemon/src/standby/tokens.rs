//! API tokens: named, with a role, optionally expiring, kept as BLAKE3 hashes in
//! `DATA_DIR/tokens.json` (0600). The token of a configured `token_file` is an admin token named
//! `token-file` (not stored). A standby with neither gets a bootstrap admin token at its first
//! start, written to `DATA_DIR/admin.token` (0600).

use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_types::{Role, TokenInfo};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Why a token change was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("token name '{0}' must be 1 to 64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("a token named '{0}' exists already: revoke it first")]
    Exists(String),
    #[error("no token is named '{0}'")]
    Unknown(String),
    #[error("'{0}' is the token of the standby's token_file: change the file instead")]
    Configured(String),
    #[error("tokens file: {0}")]
    Io(String),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    name: String,
    role: Role,
    secret_blake3: String,
    created_unix_ms: u64,
    expires_unix_ms: Option<u64>,
}

/// Name of the token of a configured `token_file`.
pub const CONFIGURED: &str = "token-file";

/// The standby's API tokens.
pub struct Tokens {
    path: PathBuf,
    configured: Option<String>,
    entries: Mutex<Vec<Entry>>,
}

fn hash(secret: &str) -> String {
    blake3::hash(secret.trim().as_bytes()).to_hex().to_string()
}

impl Tokens {
    /// Opens the tokens of `data_dir`; without any (and without `configured`), makes the
    /// bootstrap admin token.
    pub fn open(data_dir: &Path, configured: Option<String>) -> anyhow::Result<Self> {
        let path = data_dir.join("tokens.json");
        let entries: Vec<Entry> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", path.display())),
        };
        let t = Self { path, configured, entries: Mutex::new(entries) };
        let empty = t.entries.lock().expect("tokens").is_empty();
        if empty && t.configured.is_none() {
            let secret = drpair_tls::random_secret();
            let file = data_dir.join("admin.token");
            drpair_tls::write_file(&file, format!("{secret}\n").as_bytes(), 0o600)?;
            t.insert("admin", Role::Admin, &secret, None).map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::warn!(file = %file.display(), "no API token was configured: made the bootstrap admin token 'admin' (drpair --token-file {}); make named tokens with `drpair tokens create`", file.display());
        }
        Ok(t)
    }

    fn save(&self, entries: &[Entry]) -> Result<(), TokenError> {
        let bytes = serde_json::to_vec_pretty(entries).map_err(|e| TokenError::Io(e.to_string()))?;
        drpair_tls::write_file(&self.path, &bytes, 0o600).map_err(|e| TokenError::Io(e.to_string()))
    }

    fn insert(&self, name: &str, role: Role, secret: &str, expires: Option<u64>) -> Result<(), TokenError> {
        let mut e = self.entries.lock().expect("tokens");
        e.push(Entry {
            name: name.into(),
            role,
            secret_blake3: hash(secret),
            created_unix_ms: now_ms(),
            expires_unix_ms: expires,
        });
        self.save(&e)
    }

    /// The name and role of the token `secret`, if it is valid now.
    pub fn authenticate(&self, secret: &str) -> Option<(String, Role)> {
        if let Some(c) = &self.configured
            && crate::token::token_eq(secret.trim(), c)
        {
            return Some((CONFIGURED.into(), Role::Admin));
        }
        let h = hash(secret);
        let now = now_ms();
        let e = self.entries.lock().expect("tokens");
        e.iter()
            .find(|t| crate::token::token_eq(&t.secret_blake3, &h) && t.expires_unix_ms.is_none_or(|x| now < x))
            .map(|t| (t.name.clone(), t.role))
    }

    /// Makes a token; returns its secret (shown once) and expiry.
    pub fn create(&self, name: &str, role: Role, ttl_ms: Option<u64>) -> Result<(String, Option<u64>), TokenError> {
        let ok = (1..=64).contains(&name.len())
            && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
        if !ok {
            return Err(TokenError::BadName(name.into()));
        }
        if name == CONFIGURED {
            return Err(TokenError::Configured(name.into()));
        }
        if self.entries.lock().expect("tokens").iter().any(|t| t.name == name) {
            return Err(TokenError::Exists(name.into()));
        }
        let secret = drpair_tls::random_secret();
        let expires = ttl_ms.map(|t| now_ms().saturating_add(t));
        self.insert(name, role, &secret, expires)?;
        Ok((secret, expires))
    }

    /// Deletes a token: it is refused from the next call on.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        if name == CONFIGURED && self.configured.is_some() {
            return Err(TokenError::Configured(name.into()));
        }
        let mut e = self.entries.lock().expect("tokens");
        let before = e.len();
        e.retain(|t| t.name != name);
        if e.len() == before {
            return Err(TokenError::Unknown(name.into()));
        }
        self.save(&e)
    }

    /// The tokens made with an expiry: (name, expiry in Unix ms), expired ones included.
    pub fn expiries(&self) -> Vec<(String, u64)> {
        let e = self.entries.lock().expect("tokens");
        e.iter().filter_map(|t| Some((t.name.clone(), t.expires_unix_ms?))).collect()
    }

    pub fn list(&self) -> Vec<TokenInfo> {
        let mut out: Vec<TokenInfo> = self
            .entries
            .lock()
            .expect("tokens")
            .iter()
            .map(|t| TokenInfo {
                name: t.name.clone(),
                role: t.role,
                created_at: rfc3339_ms(t.created_unix_ms),
                expires_at: t.expires_unix_ms.map(rfc3339_ms),
            })
            .collect();
        if self.configured.is_some() {
            out.insert(
                0,
                TokenInfo { name: CONFIGURED.into(), role: Role::Admin, created_at: "-".into(), expires_at: None },
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_roles_expiry_and_revocation() {
        let d = tempfile::tempdir().unwrap();
        let t = Tokens::open(d.path(), None).unwrap();
        let admin = std::fs::read_to_string(d.path().join("admin.token")).unwrap();
        assert_eq!(t.authenticate(&admin), Some(("admin".into(), Role::Admin)));
        let (viewer, _) = t.create("grafana", Role::Viewer, None).unwrap();
        assert_eq!(t.authenticate(&viewer), Some(("grafana".into(), Role::Viewer)));
        assert_eq!(t.create("grafana", Role::Admin, None), Err(TokenError::Exists("grafana".into())));
        assert!(matches!(t.create("bad name", Role::Admin, None), Err(TokenError::BadName(_))));
        let (short, _) = t.create("short", Role::Operator, Some(0)).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(3));
        assert_eq!(t.authenticate(&short), None, "expired");
        // Reopened: the same tokens, no second bootstrap token; secrets not kept in clear.
        let t = Tokens::open(d.path(), None).unwrap();
        assert_eq!(t.authenticate(&viewer), Some(("grafana".into(), Role::Viewer)));
        assert!(!std::fs::read_to_string(d.path().join("tokens.json")).unwrap().contains(&viewer));
        t.revoke("grafana").unwrap();
        assert_eq!(t.authenticate(&viewer), None);
        assert_eq!(t.revoke("grafana"), Err(TokenError::Unknown("grafana".into())));
        assert_eq!(t.authenticate("nonsense"), None);
    }

    #[test]
    fn a_configured_token_is_admin_and_no_bootstrap_token_is_made() {
        let d = tempfile::tempdir().unwrap();
        let t = Tokens::open(d.path(), Some("configured-secret".into())).unwrap();
        assert!(!d.path().join("admin.token").exists());
        assert_eq!(t.authenticate("configured-secret"), Some((CONFIGURED.into(), Role::Admin)));
        assert_eq!(t.revoke(CONFIGURED), Err(TokenError::Configured(CONFIGURED.into())));
        assert_eq!(t.list()[0].name, CONFIGURED);
    }
}
