//! How the CLI trusts a standby over HTTPS: a CA file (`--ca-file`, `DRPAIR_CA_FILE`), a pinned
//! fingerprint (`--fingerprint`, `DRPAIR_FINGERPRINT`), one remembered by `drpair login`
//! (`~/.config/drpair/known_standbys`), or, for a standby on this host, its own CA
//! (`/var/lib/drpair/standby/tls/ca.pem`, readable by root and the drpair group).
//!
//! A pinned fingerprint is checked on a first connection, and the pinned certificate of the
//! standby's chain (its CA) becomes the only trust anchor of the HTTPS client: every request
//! is verified against it.

use crate::client::CliError;
use drpair_tls::Fingerprint;
use std::path::PathBuf;
use std::sync::Arc;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// Where the local standby keeps its CA (the package's data dir).
const LOCAL_CA: &str = "/var/lib/drpair/standby/tls/ca.pem";

/// What the user said about trusting the standby.
#[derive(Debug, Clone, Default)]
pub struct TrustOpts {
    pub ca_file: Option<PathBuf>,
    pub fingerprint: Option<String>,
}

/// The host and port of an `https://` URL.
pub fn host_port(server: &str) -> Option<(String, u16)> {
    let rest = server.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once(']')?;
            (h.to_string(), p.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (authority.to_string(), None),
        },
    };
    let port = match port {
        Some(p) => p.parse().ok()?,
        None => 443,
    };
    (!host.is_empty()).then_some((host, port))
}

fn failed(m: String) -> CliError {
    CliError::Failed(m)
}

/// The file of standbys trusted by `drpair login`: one `URL FINGERPRINT` per line.
pub fn known_file() -> PathBuf {
    if let Some(d) = std::env::var_os("DRPAIR_CONFIG_DIR") {
        return PathBuf::from(d).join("known_standbys");
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("drpair").join("known_standbys")
}

/// The fingerprint remembered for `server`.
pub fn known(server: &str) -> Option<Fingerprint> {
    let text = std::fs::read_to_string(known_file()).ok()?;
    text.lines().filter_map(|l| l.split_once(' ')).find(|(u, _)| *u == server).and_then(|(_, f)| f.trim().parse().ok())
}

/// Remembers `fp` for `server` (replacing what was there).
pub fn remember(server: &str, fp: Fingerprint) -> Result<PathBuf, CliError> {
    let file = known_file();
    let mut lines: Vec<String> = std::fs::read_to_string(&file)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.split_once(' ').is_some_and(|(u, _)| u != server))
        .map(String::from)
        .collect();
    lines.push(format!("{server} {fp}"));
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| failed(format!("{}: {e}", dir.display())))?;
    }
    std::fs::write(&file, lines.join("\n") + "\n").map_err(|e| failed(format!("{}: {e}", file.display())))?;
    Ok(file)
}

/// The TLS config for `server` (`None` for `http://`).
pub fn tls_config(server: &str, opts: &TrustOpts) -> Result<Option<TlsConfig>, CliError> {
    let Some((host, port)) = host_port(server) else { return Ok(None) };
    let roots: Vec<Certificate<'static>> = if let Some(f) = &opts.ca_file {
        read_roots(f, "--ca-file")?
    } else {
        let pin = match &opts.fingerprint {
            Some(f) => Some(f.parse::<Fingerprint>().map_err(|e| failed(format!("--fingerprint: {e}")))?),
            None => known(server),
        };
        match pin {
            Some(pin) => {
                let chain = drpair_tls::fetch_chain(&host, port, Some(pin))
                    .map_err(|e| CliError::Failed(format!("{server}: {e}")))?;
                let anchor = drpair_tls::pinned_anchor(&chain, pin)
                    .ok_or_else(|| failed(format!("{server} does not present the pinned certificate {pin}")))?;
                vec![Certificate::from_der(anchor.as_ref()).to_owned()]
            }
            None if is_local(&host) && std::path::Path::new(LOCAL_CA).exists() => {
                drpair_tls::read_certs(std::path::Path::new(LOCAL_CA))
                    .map_err(|e| failed(format!("{LOCAL_CA}: {e}")))?
                    .iter()
                    .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                    .collect()
            }
            None => {
                return Err(failed(format!(
                    "the standby at {server} is not known to this client: run `drpair login --server {server}` to check and remember its fingerprint, or give --fingerprint sha256:… (`drpaird standby fingerprint` on the standby) or --ca-file"
                )));
            }
        }
    };
    Ok(Some(
        TlsConfig::builder()
            .provider(TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(drpair_tls::provider())
            .root_certs(RootCerts::Specific(Arc::new(roots)))
            .build(),
    ))
}

/// The CA certificates of a PEM file, as roots of the HTTPS client.
fn read_roots(file: &std::path::Path, what: &str) -> Result<Vec<Certificate<'static>>, CliError> {
    let certs = drpair_tls::read_certs(file).map_err(|e| failed(format!("{what}: {e}")))?;
    Ok(certs.iter().map(|c| Certificate::from_der(c.as_ref()).to_owned()).collect())
}

fn is_local(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port_of_urls() {
        assert_eq!(host_port("https://backup:7701"), Some(("backup".into(), 7701)));
        assert_eq!(host_port("https://backup/x"), Some(("backup".into(), 443)));
        assert_eq!(host_port("https://[::1]:7701/"), Some(("::1".into(), 7701)));
        assert_eq!(host_port("http://backup:7701"), None);
        assert_eq!(host_port("https://:7701"), None);
    }
}
