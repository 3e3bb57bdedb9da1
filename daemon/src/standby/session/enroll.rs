//! Enrollment on the link: an agent without a certificate sends the single-use secret and the
//! public half of its own key, and gets a certificate bound to the secret's pair. Renewal: an
//! enrolled agent asks for a certificate for a new key over its authenticated connection.

use super::admission::refuse;
use super::refusals::refused_unauthenticated;
use crate::standby::Standby;
use drpair_tls::issue_client_cert;
use drpair_types::PairId;
use drpair_wire::{RefuseCode, StandbyMsg};
use std::net::SocketAddr;
use tokio::sync::mpsc;

/// Issues a certificate for `public_key` bound to `pair` and records it.
pub(super) fn issue(sb: &Standby, pair: &PairId, public_key: &[u8]) -> Result<StandbyMsg, String> {
    let Some(id) = &sb.identity else {
        return Err("this standby runs its link in plaintext (insecure_plaintext): it issues no certificates".into());
    };
    let cert =
        issue_client_cert(&id.identity, public_key, pair.as_str(), sb.agent_cert_ttl).map_err(|e| e.to_string())?;
    sb.credentials.record(pair, cert.fingerprint, cert.not_after_unix).map_err(|e| e.to_string())?;
    tracing::info!(%pair, certificate = %cert.fingerprint, "issued an agent certificate");
    Ok(StandbyMsg::Certificate { pair_id: pair.to_string(), pem: cert.pem, not_after_unix: cert.not_after_unix })
}

/// Answers an `Enroll` (the connection's first message); the connection ends after.
pub(super) async fn enroll(
    sb: &Standby,
    tx: &mpsc::Sender<Vec<u8>>,
    peer: SocketAddr,
    claimed: &str,
    secret: &str,
    public_key: &[u8],
) {
    let pair = match sb.credentials.redeem(secret, claimed) {
        Ok(p) => p,
        Err(e) => {
            refused_unauthenticated(peer, "enroll", &e.to_string());
            sb.audit.record_link(peer, "enroll", e.pair().unwrap_or(claimed), Err(&e.to_string()));
            return refuse(tx, RefuseCode::AccessDenied, e.to_string()).await;
        }
    };
    match issue(sb, &pair, public_key) {
        Ok(answer) => {
            sb.audit.record_link(peer, "enroll", pair.as_str(), Ok(()));
            let _ = tx.send(drpair_wire::encode(&answer).expect("encode")).await;
        }
        Err(e) => {
            sb.audit.record_link(peer, "enroll", pair.as_str(), Err(&e.to_string()));
            refuse(tx, RefuseCode::BadRequest, e.to_string()).await
        }
    }
}
