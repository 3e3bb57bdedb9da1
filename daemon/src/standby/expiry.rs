//! When the standby's credentials end (issue 26): its TLS server certificate, the CA that
//! signs enrolled agents, each pair's agent certificate, and API tokens made with an expiry.
//! One function, [`expiries`], for everything that reports them: the metrics
//! (`drpair_tls_certificate_expiry_timestamp_seconds`, `drpair_api_token_expiry_timestamp_seconds`),
//! `GET /api/v1` (`certificates`) and, later, notifications.
//!
//! Certificates the standby holds are read for their real `notAfter` (an operator's
//! `tls_cert` included); agents' certificates are known by the record kept at enrollment and
//! renewal (`credentials.json`). Per pair only the newest certificate not revoked counts: an
//! agent renews at two thirds of its certificate's life, and the older one is left to lapse.
//! Revoked and deleted pairs have none.

use super::Standby;
use super::credentials::AgentCert;
use drpair_tls::rustls::pki_types::CertificateDer;
use drpair_types::{Expiry, ExpiryRole, PairId};
use std::collections::BTreeMap;

/// Every credential of the standby that ends, sorted by role then name.
pub fn expiries(sb: &Standby) -> Vec<Expiry> {
    let now = (crate::timefmt::now_ms() / 1000) as i64;
    let (server, ca) = own_certificates(sb);
    let agents = sb.credentials.certificates();
    let gone = |p: &PairId| sb.credentials.is_revoked(p) || sb.credentials.deleted(p).is_some();
    collect(server.as_ref(), ca.as_ref(), &agents, gone, &sb.tokens.expiries(), now)
}

/// The server certificate (the chain's leaf) and the CA: the link's identity, or, when the link
/// runs in plaintext, the files the API's TLS identity is kept in (none: the API is plain HTTP).
fn own_certificates(sb: &Standby) -> (Option<CertificateDer<'static>>, Option<CertificateDer<'static>>) {
    if let Some(id) = &sb.identity {
        return (id.identity.chain.first().cloned(), Some(id.identity.ca_cert.clone()));
    }
    let dir = super::identity::tls_dir(&sb.data_dir);
    let first = |f: &str| {
        let p = dir.join(f);
        if !p.exists() {
            return None;
        }
        drpair_tls::read_certs(&p)
            .map_err(|e| tracing::warn!("{}: {e}", p.display()))
            .ok()
            .and_then(|mut c| (!c.is_empty()).then(|| c.remove(0)))
    };
    (first("server.pem"), first("ca.pem"))
}

fn unix_text(unix: i64) -> String {
    crate::timefmt::rfc3339_ms(u64::try_from(unix).unwrap_or(0).saturating_mul(1000))
}

/// The pure part of [`expiries`]: `gone` says which pairs no longer count (revoked, deleted);
/// `tokens` are (name, expiry in Unix ms).
fn collect(
    server: Option<&CertificateDer<'_>>,
    ca: Option<&CertificateDer<'_>>,
    agents: &[AgentCert],
    gone: impl Fn(&PairId) -> bool,
    tokens: &[(String, u64)],
    now: i64,
) -> Vec<Expiry> {
    let mut out = vec![];
    for (role, cert) in [(ExpiryRole::Server, server), (ExpiryRole::Ca, ca)] {
        let Some(cert) = cert else { continue };
        match drpair_tls::cert_validity(cert) {
            Ok(v) => {
                let name = common_name(&v.subject);
                let mut e = Expiry::new(role, name, v.not_after_unix, unix_text(v.not_after_unix), now);
                e.subject = Some(v.subject);
                out.push(e);
            }
            Err(e) => tracing::warn!("the standby's {} certificate: {e}", role.as_str()),
        }
    }
    let mut newest: BTreeMap<&PairId, &AgentCert> = BTreeMap::new();
    for c in agents.iter().filter(|c| c.revoked_unix_ms.is_none() && !gone(&c.pair)) {
        let slot = newest.entry(&c.pair).or_insert(c);
        if c.not_after_unix_ms > slot.not_after_unix_ms {
            *slot = c;
        }
    }
    for (pair, c) in newest {
        let unix = (c.not_after_unix_ms / 1000) as i64;
        let mut e = Expiry::new(ExpiryRole::Agent, pair.to_string(), unix, unix_text(unix), now);
        e.fingerprint = Some(c.fingerprint.clone());
        out.push(e);
    }
    for (name, ms) in tokens {
        let unix = (ms / 1000) as i64;
        out.push(Expiry::new(ExpiryRole::Token, name.clone(), unix, unix_text(unix), now));
    }
    out.sort_by(|a, b| (a.role, &a.name).cmp(&(b.role, &b.name)));
    out
}

/// The CN of a subject as x509-parser writes it (`CN=drpair-standby, O=drpair`), else all of it.
fn common_name(subject: &str) -> String {
    subject
        .split(", ")
        .find_map(|part| part.strip_prefix("CN="))
        .map(str::to_string)
        .unwrap_or_else(|| subject.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_tls::{IdentityFiles, StandbyIdentity};
    use drpair_types::ExpiryLevel;

    fn pair(s: &str) -> PairId {
        PairId::new(s).unwrap()
    }

    fn cert(p: &str, fp: &str, not_after_unix: u64, revoked: bool) -> AgentCert {
        AgentCert {
            pair: pair(p),
            fingerprint: fp.into(),
            issued_unix_ms: 0,
            not_after_unix_ms: not_after_unix * 1000,
            revoked_unix_ms: revoked.then_some(1),
        }
    }

    #[test]
    fn own_certificates_newest_agent_certificate_per_pair_and_tokens() {
        // Now, before the identity is made: its certificates then have their full 10 and 20
        // years (and not a second less) left.
        let now = (crate::timefmt::now_ms() / 1000) as i64;
        let d = tempfile::tempdir().unwrap();
        let files = IdentityFiles { dir: d.path().join("tls"), cert: None, key: None };
        let id = StandbyIdentity::load_or_create(&files, &[]).unwrap();
        let day = 86_400;
        let n = now as u64;
        let agents = [
            // web-01 renewed: the newer certificate counts.
            cert("web-01", "sha256:old", n + 10 * 86_400, false),
            cert("web-01", "sha256:new", n + 90 * 86_400, false),
            // db-01: its newest was revoked; the one left ends in two days.
            cert("db-01", "sha256:a", n + 2 * 86_400, false),
            cert("db-01", "sha256:b", n + 80 * 86_400, true),
            // gone-01 was deleted; old-01's certificate has expired.
            cert("gone-01", "sha256:g", n + 5 * 86_400, false),
            cert("old-01", "sha256:o", n - 86_400, false),
        ];
        let tokens = [("prom".to_string(), (n + 86_400 * 10) * 1000)];
        let out = collect(Some(&id.chain[0]), Some(&id.ca_cert), &agents, |p| p.as_str() == "gone-01", &tokens, now);
        let seen: Vec<_> = out.iter().map(|e| (e.role, e.name.as_str(), e.days_left, e.level)).collect();
        assert_eq!(
            seen,
            vec![
                (ExpiryRole::Server, "drpair-standby", 3650, ExpiryLevel::Ok),
                (ExpiryRole::Ca, id_cn(&out).as_str(), 7300, ExpiryLevel::Ok),
                (ExpiryRole::Agent, "db-01", 2, ExpiryLevel::Critical),
                (ExpiryRole::Agent, "old-01", -1, ExpiryLevel::Expired),
                (ExpiryRole::Agent, "web-01", 90, ExpiryLevel::Ok),
                (ExpiryRole::Token, "prom", 10, ExpiryLevel::Warning),
            ]
        );
        assert_eq!(out[0].subject.as_deref(), Some("CN=drpair-standby"));
        assert_eq!(out[4].fingerprint.as_deref(), Some("sha256:new"));
        assert_eq!(out[5].not_after_unix, now + 10 * day);
        assert!(out[5].not_after.ends_with('Z'), "{}", out[5].not_after);
        // A certificate that cannot be read is left out (and logged), not guessed.
        let junk = CertificateDer::from(vec![1, 2, 3]);
        assert!(collect(Some(&junk), None, &[], |_| false, &[], now).is_empty());
    }

    fn id_cn(out: &[Expiry]) -> String {
        let ca = out.iter().find(|e| e.role == ExpiryRole::Ca).unwrap();
        assert!(ca.name.starts_with("drpair standby CA "), "{ca:?}");
        ca.name.clone()
    }
}
