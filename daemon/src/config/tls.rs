//! How the link is secured, from flags and file: TLS 1.3 unless both sides are started with
//! `insecure_plaintext`.

use anyhow::{Result, bail};
use drpair_tls::Fingerprint;
use std::path::{Path, PathBuf};

/// The standby's side of the link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StandbyLinkSecurity {
    /// TLS with the standby's own identity (`DATA_DIR/tls/`), or the operator's certificate
    /// and key; agents' certificates are checked against the standby's CA and `client_ca`.
    Tls { cert: Option<PathBuf>, key: Option<PathBuf>, client_ca: Option<PathBuf> },
    /// `insecure_plaintext`: everything crosses the network readable and forgeable.
    Plaintext,
}

/// How the agent knows it talks to its standby.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentTrust {
    /// `standby_fingerprint`: a certificate of the standby's chain has this fingerprint.
    Pinned(Fingerprint),
    /// `standby_ca`: the standby's certificate chains to a CA of this file.
    CaFile(PathBuf),
    /// Neither: the fingerprint saved at enrollment in `STATE_DIR/tls/` (checked at start).
    Enrolled,
    /// `insecure_plaintext`.
    Plaintext,
}

impl StandbyLinkSecurity {
    pub(super) fn resolve(
        cert: Option<PathBuf>,
        key: Option<PathBuf>,
        client_ca: Option<PathBuf>,
        plaintext: bool,
    ) -> Result<Self> {
        if plaintext {
            if cert.is_some() || key.is_some() || client_ca.is_some() {
                bail!("insecure_plaintext contradicts tls_cert / tls_key / client_ca: choose TLS or plaintext");
            }
            return Ok(StandbyLinkSecurity::Plaintext);
        }
        if cert.is_some() != key.is_some() {
            bail!("tls_cert and tls_key go together: set both or neither");
        }
        for p in cert.iter().chain(&key).chain(&client_ca) {
            must_exist(p)?;
        }
        Ok(StandbyLinkSecurity::Tls { cert, key, client_ca })
    }
}

impl AgentTrust {
    pub(super) fn resolve(fingerprint: Option<String>, ca: Option<PathBuf>, plaintext: bool) -> Result<Self> {
        match (fingerprint, ca, plaintext) {
            (None, None, true) => Ok(AgentTrust::Plaintext),
            (Some(_), _, true) | (_, Some(_), true) => {
                bail!("insecure_plaintext contradicts standby_fingerprint / standby_ca: choose TLS or plaintext")
            }
            (Some(_), Some(_), false) => {
                bail!("standby_fingerprint and standby_ca both given: trust the standby by one of them")
            }
            (Some(f), None, false) => Ok(AgentTrust::Pinned(
                f.parse::<Fingerprint>().map_err(|e| anyhow::anyhow!("standby_fingerprint: {e}"))?,
            )),
            (None, Some(p), false) => {
                must_exist(&p)?;
                Ok(AgentTrust::CaFile(p))
            }
            (None, None, false) => Ok(AgentTrust::Enrolled),
        }
    }
}

fn must_exist(p: &Path) -> Result<()> {
    if !p.is_file() {
        bail!("{} is not a readable file", p.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_trust_choices() {
        let fp = Fingerprint::of(b"x").to_string();
        assert_eq!(AgentTrust::resolve(None, None, false).unwrap(), AgentTrust::Enrolled);
        assert_eq!(AgentTrust::resolve(None, None, true).unwrap(), AgentTrust::Plaintext);
        assert!(matches!(AgentTrust::resolve(Some(fp.clone()), None, false).unwrap(), AgentTrust::Pinned(_)));
        let e = AgentTrust::resolve(Some(fp.clone()), None, true).unwrap_err().to_string();
        assert!(e.contains("insecure_plaintext"), "{e}");
        let e = AgentTrust::resolve(Some("sha256:beef".into()), None, false).unwrap_err().to_string();
        assert!(e.contains("standby_fingerprint") && e.contains("64 hex"), "{e}");
        let e = AgentTrust::resolve(None, Some("/nonexistent/ca.pem".into()), false).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }

    #[test]
    fn standby_choices() {
        assert_eq!(StandbyLinkSecurity::resolve(None, None, None, true).unwrap(), StandbyLinkSecurity::Plaintext);
        let e = StandbyLinkSecurity::resolve(Some("/etc/hostname".into()), None, None, false).unwrap_err();
        assert!(e.to_string().contains("together"), "{e}");
        let e = StandbyLinkSecurity::resolve(None, None, Some("/etc/hostname".into()), true).unwrap_err();
        assert!(e.to_string().contains("insecure_plaintext"), "{e}");
    }
}
