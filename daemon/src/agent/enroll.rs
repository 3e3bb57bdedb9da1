//! The agent's credential: `drpaird agent enroll` (the line `drpair pairs enroll PAIR`
//! prints) makes the agent's own key, sends its public half with the single-use secret to the
//! standby it pins, and keeps the certificate it gets in `STATE_DIR/tls/` with the pinned
//! fingerprint. Renewal replaces key and certificate the same way, over the agent's link.

use super::dial::{pinned_file, tls_dir};
use crate::link::{read_msg, write_frame};
use crate::timefmt::now_ms;
use anyhow::{Context, Result, bail};
use drpair_tls::rustls::pki_types::ServerName;
use drpair_tls::{AgentKey, Fingerprint, StandbyTrust};
use drpair_wire::{AgentMsg, StandbyMsg, encode};
use std::path::Path;
use std::time::Duration;

/// `STATE_DIR/tls/agent.expires`: when the certificate was issued and when it expires (unix
/// seconds), for renewal.
fn expires_file(state_dir: &Path) -> std::path::PathBuf {
    tls_dir(state_dir).join("agent.expires")
}

/// Keeps a certificate issued for `key` (and the standby's fingerprint, when enrolling).
pub fn save(state_dir: &Path, key: &AgentKey, pem: &str, not_after_unix: u64, pin: Option<Fingerprint>) -> Result<()> {
    let dir = tls_dir(state_dir);
    key.save(&dir, pem)?;
    let issued = now_ms() / 1000;
    drpair_tls::write_file(&expires_file(state_dir), format!("{issued} {not_after_unix}\n").as_bytes(), 0o644)?;
    if let Some(f) = pin {
        drpair_tls::write_file(&pinned_file(state_dir), format!("{f}\n").as_bytes(), 0o644)?;
    }
    Ok(())
}

/// Whether two thirds of the certificate's life are over (or its dates are unknown: no).
pub fn renewal_due(state_dir: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(expires_file(state_dir)) else { return false };
    let mut it = text.split_whitespace().map(|t| t.parse::<u64>().ok());
    let (Some(Some(issued)), Some(Some(not_after))) = (it.next(), it.next()) else { return false };
    let now = now_ms() / 1000;
    now >= issued + not_after.saturating_sub(issued) * 2 / 3
}

/// Enrolls: returns the pair the certificate binds and its expiry (RFC 3339).
pub async fn enroll(
    standby: &str,
    pin: Fingerprint,
    secret: &str,
    pair: Option<&str>,
    state_dir: &Path,
) -> Result<(String, String)> {
    if !standby.contains(':') {
        bail!("standby '{standby}' must be HOST:PORT (the standby's link port, 7700 by default)");
    }
    let key = AgentKey::generate()?;
    let config = drpair_tls::client_config(&StandbyTrust::Pinned(pin), None)?;
    let tcp = tokio::time::timeout(Duration::from_secs(10), tokio::net::TcpStream::connect(standby))
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {standby} timed out"))?
        .with_context(|| format!("cannot connect to {standby}"))?;
    let name = ServerName::try_from(drpair_tls::STANDBY_NAME).expect("a valid name");
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS with the standby at {standby}"))?;
    let (mut rd, mut wr) = tokio::io::split(tls);
    let msg = AgentMsg::Enroll {
        pair_id: pair.unwrap_or_default().to_string(),
        secret: secret.trim().to_string(),
        public_key: key.public_raw(),
    };
    write_frame(&mut wr, &encode(&msg)?).await?;
    let mut buf = Vec::new();
    let answer = tokio::time::timeout(Duration::from_secs(30), read_msg::<_, StandbyMsg>(&mut rd, &mut buf))
        .await
        .map_err(|_| anyhow::anyhow!("the standby did not answer the enrollment within 30s"))??;
    match answer {
        StandbyMsg::Certificate { pair_id, pem, not_after_unix } => {
            if pair.is_some_and(|p| p != pair_id) {
                bail!("the standby issued a certificate for pair '{pair_id}', not '{}'", pair.unwrap_or_default());
            }
            std::fs::create_dir_all(state_dir).with_context(|| format!("state dir {}", state_dir.display()))?;
            save(state_dir, &key, &pem, not_after_unix, Some(pin))?;
            Ok((pair_id, crate::timefmt::rfc3339_ms(not_after_unix.saturating_mul(1000))))
        }
        StandbyMsg::Refused { message, .. } => bail!("the standby refused the enrollment: {message}"),
        other => bail!("unexpected answer to the enrollment: {}", other_name(&other)),
    }
}

fn other_name(m: &StandbyMsg) -> String {
    let s = format!("{m:?}");
    s.split([' ', '{', '(']).next().unwrap_or("?").to_string()
}
