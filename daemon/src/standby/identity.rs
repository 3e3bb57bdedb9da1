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
        let identity = StandbyIdentity::load_or_create(&files, &host_names()).context("the standby's TLS identity")?;
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

/// The API's TLS config: the link's identity, or (when the link runs in plaintext) the same
/// identity loaded for the API alone.
pub fn api_tls(link: Option<&LinkIdentity>, cfg: &crate::config::StandbyConfig) -> Result<Arc<ServerConfig>> {
    let identity = match link {
        Some(l) => l.identity.clone(),
        None => {
            let files = IdentityFiles { dir: tls_dir(&cfg.data_dir), cert: None, key: None };
            Arc::new(StandbyIdentity::load_or_create(&files, &host_names()).context("the API's TLS identity")?)
        }
    };
    let mut config = drpair_tls::server_config(&identity, None).context("the API's TLS config")?;
    Arc::get_mut(&mut config).expect("just made").alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The names a certificate the standby makes for itself carries besides the defaults: its
/// host name and the addresses of its interfaces.
pub fn host_names() -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| vec![h.trim().to_string()]).unwrap_or_default();
    names.extend(interface_addresses().into_iter().map(|a| a.to_string()));
    names
}

/// Every address of the host's interfaces (getifaddrs).
fn interface_addresses() -> Vec<std::net::IpAddr> {
    let mut out = vec![];
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return out;
    }
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: an AF_INET address is a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(std::net::IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: an AF_INET6 address is a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out.retain(|a| !matches!(a, std::net::IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80));
    out.sort();
    out.dedup();
    out
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
