//! Renewing the agent's certificate over its authenticated link: once two thirds of its life
//! are over, a new key is made and its public half sent (`Renew`); the standby's
//! `Certificate` answer is kept in the state dir and used from the next connection on.

use super::{Conn, Res};
use drpair_tls::AgentKey;
use drpair_wire::AgentMsg;

impl Conn {
    /// Asks for a new certificate if the current one is due for renewal and none is asked
    /// for yet.
    pub(super) async fn maybe_renew(&mut self) -> Res<()> {
        let state_dir = &self.agent.cfg.state_dir;
        if !self.agent.dialer.enrolled || self.renewing.is_some() || !crate::agent::enroll::renewal_due(state_dir) {
            return Ok(());
        }
        let key = match AgentKey::generate() {
            Ok(k) => k,
            Err(e) => {
                tracing::warn!("cannot make a key to renew the agent's certificate: {e}");
                return Ok(());
            }
        };
        tracing::info!(pair = %self.agent.cfg.pair, "renewing the agent's certificate");
        self.send(&AgentMsg::Renew { public_key: key.public_raw() }).await?;
        self.renewing = Some(key);
        Ok(())
    }

    /// Keeps the certificate the standby issued for the key being renewed.
    pub(super) fn take_certificate(&mut self, pem: &str, not_after_unix: u64) {
        let Some(key) = self.renewing.take() else {
            tracing::warn!("the standby sent a certificate nobody asked for; ignored");
            return;
        };
        let state_dir = self.agent.cfg.state_dir.clone();
        let saved = crate::agent::enroll::save(&state_dir, &key, pem, not_after_unix, None)
            .and_then(|()| self.agent.dialer.reload(&state_dir));
        match saved {
            Ok(()) => tracing::info!(
                pair = %self.agent.cfg.pair,
                "renewed the agent's certificate, valid until {}",
                crate::timefmt::rfc3339_ms(not_after_unix.saturating_mul(1000))
            ),
            Err(e) => tracing::error!("keeping the renewed certificate failed ({e}); the current one stays in use"),
        }
    }
}
