//! The standby's identity on the link (and API): its TLS certificate and the fingerprint
//! operators pin, or the plaintext it was told to run with.

use crate::config::StandbyLinkSecurity;
use anyhow::{Context, Result};
use drpair_tls::rustls::ServerConfig;
use drpair_tls::{Fingerprint, IdentityFiles, StandbyIdentity};
use std::path::Path;
use std::sync::Arc;

/// Where the standby's own identity lives below its data dir.
pub fn tls_dir(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("tls")
}

/// The standby's TLS side, loaded once at start.
pub struct LinkIdentity {
    pub identity: Arc<StandbyIdentity>,
    /// The link's config: agents' certificates asked for (not required: an agent without one
    /// can only enroll).
    pub link: Arc<ServerConfig>,
}

impl LinkIdentity {
    /// Loads (making on first start) the identity the config asks for; `None` for plaintext,
    /// which is logged as the warning it is.
    pub fn load(data_dir: &Path, security: &StandbyLinkSecurity) -> Result<Option<Self>> {
        let StandbyLinkSecurity::Tls { cert, key, client_ca } = security else {
            tracing::warn!(
                "insecure_plaintext: the link is not encrypted or authenticated; chunks, tokens and failback writes cross the network readable and forgeable"
            );
            return Ok(None);
        };
        let files = IdentityFiles { dir: tls_dir(data_dir), cert: cert.clone(), key: key.clone() };
        let names: Vec<String> = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| vec![h.trim().to_string()])
            .unwrap_or_default();
        let identity = StandbyIdentity::load_or_create(&files, &names).context("the standby's TLS identity")?;
        if identity.created {
            tracing::info!(fingerprint = %identity.fingerprint, dir = %files.dir.display(), "made the standby's TLS identity");
        }
        let extra = match client_ca {
            Some(p) => drpair_tls::read_certs(p).context("client_ca")?,
            None => vec![],
        };
        let link = drpair_tls::server_config(&identity, Some(&extra)).context("the link's TLS config")?;
        tracing::info!(fingerprint = %identity.fingerprint, "the link is TLS 1.3; agents pin this fingerprint");
        Ok(Some(Self { identity: Arc::new(identity), link }))
    }

    pub fn fingerprint(&self) -> Fingerprint {
        self.identity.fingerprint
    }
}

/// `drpaird standby fingerprint`: the fingerprint of the identity in `data_dir`, without
/// making one (the standby makes it at its first start, as its own user).
pub fn read_fingerprint(data_dir: &Path, security: &StandbyLinkSecurity) -> Result<Fingerprint> {
    let StandbyLinkSecurity::Tls { cert, .. } = security else {
        anyhow::bail!("this standby is configured with insecure_plaintext: it has no fingerprint");
    };
    let chain_file = match cert {
        Some(c) => c.clone(),
        None => tls_dir(data_dir).join("server.pem"),
    };
    if !chain_file.exists() {
        anyhow::bail!(
            "{} does not exist: the standby makes its identity at its first start; start it once (or give tls_cert)",
            chain_file.display()
        );
    }
    let chain = drpair_tls::read_certs(&chain_file)?;
    Ok(Fingerprint::of(chain.last().expect("read_certs returns one at least")))
}
