//! Dialling the standby: TCP, then TLS 1.3 with the standby checked as the config says (a
//! pinned fingerprint, a CA file, or the fingerprint saved at enrollment), presenting the
//! agent's own certificate when it has enrolled. One client config for the agent's life, so
//! reconnects resume the TLS session.

use super::SessionError;
use crate::config::{AgentConfig, AgentTrust};
use crate::link::LinkStream;
use crate::link::meter::{LinkMeter, Metered};
use anyhow::{Context, Result};
use drpair_tls::rustls::ClientConfig;
use drpair_tls::rustls::pki_types::ServerName;
use drpair_tls::{AgentKey, Fingerprint, StandbyTrust};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;

/// The agent's credentials and the standby's pinned fingerprint, below the state dir.
pub fn tls_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("tls")
}

/// The file holding the fingerprint saved at enrollment.
pub fn pinned_file(state_dir: &Path) -> PathBuf {
    tls_dir(state_dir).join("standby.fingerprint")
}

/// How the agent reaches its standby.
pub struct Dialer {
    address: String,
    /// The TLS config and the name asked for (`None`: plaintext); replaced when the agent's
    /// certificate is renewed.
    tls: std::sync::Mutex<Option<(Arc<ClientConfig>, ServerName<'static>)>>,
    /// How the standby is checked (kept to rebuild the config at renewal).
    trust: Option<StandbyTrust>,
    /// The agent presents an enrolled certificate.
    pub enrolled: bool,
}

impl Dialer {
    /// Builds the TLS config the agent's config asks for; refuses to start when nothing says
    /// how to trust the standby.
    pub fn new(cfg: &AgentConfig) -> Result<Self> {
        let me = AgentKey::load(&tls_dir(&cfg.state_dir)).context("the agent's enrolled certificate")?;
        let enrolled = me.is_some();
        let (trust, name) = match &cfg.trust {
            AgentTrust::Plaintext => {
                tracing::warn!(
                    "insecure_plaintext: the link to the standby is not encrypted and the standby is not authenticated; anyone on the path reads the disks and can impersonate the standby"
                );
                return Ok(Self {
                    address: cfg.standby.clone(),
                    tls: Default::default(),
                    trust: None,
                    enrolled: false,
                });
            }
            AgentTrust::Pinned(f) => (StandbyTrust::Pinned(*f), drpair_tls::STANDBY_NAME.to_string()),
            AgentTrust::CaFile(p) => {
                let roots = drpair_tls::read_certs(p).context("standby_ca")?;
                (StandbyTrust::Roots(roots), host_of(&cfg.standby))
            }
            AgentTrust::Enrolled => {
                let file = pinned_file(&cfg.state_dir);
                let text = std::fs::read_to_string(&file).map_err(|_| {
                    anyhow::anyhow!(
                        "no way to check the standby: this agent has not enrolled ({} is missing). \
                         Run the line `drpair pairs enroll {}` prints (drpaird agent enroll …), or give --standby-fingerprint \
                         (`drpaird standby fingerprint` on the standby prints it) or --standby-ca; \
                         --insecure-plaintext only if both sides are started so",
                        file.display(),
                        cfg.pair
                    )
                })?;
                let f: Fingerprint = text.trim().parse().with_context(|| format!("{}", file.display()))?;
                (StandbyTrust::Pinned(f), drpair_tls::STANDBY_NAME.to_string())
            }
        };
        let config = drpair_tls::client_config(&trust, me)?;
        let name = ServerName::try_from(name.clone()).with_context(|| format!("standby host name '{name}'"))?;
        Ok(Self {
            address: cfg.standby.clone(),
            tls: std::sync::Mutex::new(Some((config, name))),
            trust: Some(trust),
            enrolled,
        })
    }

    /// Takes the renewed certificate in `state_dir` for the next connections.
    pub fn reload(&self, state_dir: &Path) -> Result<()> {
        let Some(trust) = &self.trust else { return Ok(()) };
        let me = AgentKey::load(&tls_dir(state_dir))?;
        let config = drpair_tls::client_config(trust, me)?;
        if let Some((c, _)) = self.tls.lock().expect("tls").as_mut() {
            *c = config;
        }
        Ok(())
    }

    /// Connects (10 s for TCP, 10 s more for TLS); the meter counts the connection's bytes on
    /// the wire and when the last one arrived.
    pub async fn dial(&self) -> Result<(LinkStream, Arc<LinkMeter>), SessionError> {
        let transient = |m: String| SessionError::Transient(m);
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(&self.address))
            .await
            .map_err(|_| transient(format!("connecting to {} timed out", self.address)))?
            .map_err(|e| transient(format!("cannot connect to {}: {e}", self.address)))?;
        let _ = tcp.set_nodelay(true);
        let meter = Arc::new(LinkMeter::default());
        let tcp = Metered::new(tcp, meter.clone());
        let Some((config, name)) = self.tls.lock().expect("tls").clone() else {
            return Ok((Box::new(tcp), meter));
        };
        let connector = tokio_rustls::TlsConnector::from(config);
        match tokio::time::timeout(Duration::from_secs(10), connector.connect(name, tcp)).await {
            Ok(Ok(tls)) => Ok((Box::new(tls), meter)),
            Ok(Err(e)) => Err(transient(format!("TLS with the standby at {}: {e}", self.address))),
            Err(_) => Err(transient(format!("the standby at {} did not complete TLS within 10s", self.address))),
        }
    }
}

/// The host part of `HOST:PORT` (brackets of an IPv6 address removed).
fn host_of(address: &str) -> String {
    let host = address.rsplit_once(':').map_or(address, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']').to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn host_of_addresses() {
        assert_eq!(super::host_of("backup.example:7700"), "backup.example");
        assert_eq!(super::host_of("10.0.0.1:7700"), "10.0.0.1");
        assert_eq!(super::host_of("[::1]:7700"), "::1");
    }
}
