//! Delivery to a webhook: the notification's JSON body POSTed to the target's URL, with
//! `X-Drpair-Event-Id` (a receiver drops an id it has seen: a retry after a lost answer
//! repeats one) and, when the target has a secret, `X-Drpair-Signature: sha256=HEX`, the
//! HMAC-SHA256 of the exact body under the secret, so the receiver knows who wrote it and
//! that nothing changed it. Any 2xx answer is a delivery; anything else is retried.

use crate::config::notify::Secret;
use drpair_types::notify::Notification;
use std::sync::Arc;
use std::time::Duration;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};

/// Where Debian keeps the system's CA certificates.
const SYSTEM_CAS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// `sha256=` and the lowercase hex HMAC-SHA256 of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

fn roots(extra_pem: Option<&[u8]>) -> Vec<Certificate<'static>> {
    use drpair_tls::rustls::pki_types::CertificateDer;
    use drpair_tls::rustls::pki_types::pem::PemObject;
    let system = std::fs::read(SYSTEM_CAS).unwrap_or_default();
    [system.as_slice(), extra_pem.unwrap_or_default()]
        .into_iter()
        .flat_map(|pem| CertificateDer::pem_slice_iter(pem).filter_map(Result::ok).collect::<Vec<_>>())
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect()
}

/// POSTs `n` to `url`; Ok with the answer's status line, or why it was not delivered.
pub fn send(
    url: &str,
    secret: Option<&Secret>,
    ca_pem: Option<&[u8]>,
    timeout: Duration,
    n: &Notification,
) -> Result<String, String> {
    let body = serde_json::to_vec(n).map_err(|e| format!("encoding the notification: {e}"))?;
    let tls = TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(drpair_tls::provider())
        .root_certs(RootCerts::Specific(Arc::new(roots(ca_pem))))
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(tls)
        .user_agent(format!("drpair/{}", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut req = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header("X-Drpair-Event-Id", n.id.to_string())
        .header("X-Drpair-Status", format!("{:?}", n.status).to_lowercase());
    if let Some(s) = secret {
        req = req.header("X-Drpair-Signature", signature(s.0.as_bytes(), &body));
    }
    let shown = shown(url);
    match req.send(&body[..]) {
        Ok(resp) if resp.status().is_success() => Ok(format!("{shown} answered {}", resp.status())),
        Ok(resp) => Err(format!("{shown} answered {}", resp.status())),
        Err(ureq::Error::Timeout(t)) => {
            Err(format!("{shown}: no answer within {} ({t})", humantime::format_duration(timeout)))
        }
        Err(e) => Err(format!("{shown}: {e}")),
    }
}

/// The URL without its path and query, which may hold a secret (a chat service's webhook).
pub fn shown(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    format!("{scheme}://{authority}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_the_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn shown_urls_keep_no_path_or_credentials() {
        assert_eq!(shown("https://hooks.example.net/services/T0K3N?x=1"), "https://hooks.example.net");
        assert_eq!(shown("http://user:pw@127.0.0.1:8080/x"), "http://127.0.0.1:8080");
    }
}
