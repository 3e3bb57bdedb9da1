//! The connection's part in an online verify against the source (`verify-source`): the
//! standby's request makes the next epoch a full pass that compares every chunk with the
//! newest point, the same comparison as a differential resync. Chunks that differ although
//! the change map recorded no change after that point are mismatches (a write the tracker
//! never saw, or damage on either side); they are shipped in the pass like every other
//! differing chunk, so the point that commits it equals the source again.

use super::{Conn, Res};
use drpair_ship::pass::PassSummary;
use drpair_types::Epoch;
use drpair_wire::{SourceCheck, VerifyReport};

/// Why a pass's comparison with a point concludes nothing: changes cannot be told from
/// mismatches. The standby hears the message (an online verify then ends inconclusive, and
/// asking again runs another pass).
#[derive(Debug, Clone, thiserror::Error)]
pub(super) enum Inconclusive {
    /// The tracker lost events at the cut that began the pass.
    #[error("the tracker lost events before the pass ({0})")]
    LostBeforePass(String),
    /// The tracker lost events while the pass read.
    #[error("the tracker lost events during the pass ({0})")]
    LostDuringPass(String),
    /// The pass had no digests of the point to compare with.
    #[error("the pass compared nothing (no digests of the point)")]
    ComparedNothing,
}

impl Conn {
    /// Queues an online verify for the next epoch. The standby asks for one at a time; a
    /// newer request replaces one still queued.
    pub(super) fn request_verify(&mut self, request_id: u64) {
        if let Some(old) = self.verify.replace(request_id) {
            tracing::debug!(pair = %self.agent.cfg.pair, old, request_id, "online verify request replaced");
        }
        tracing::info!(
            pair = %self.agent.cfg.pair, request_id,
            "online verify requested: the next epoch reads every chunk and compares it with the newest point"
        );
    }

    /// Loads the standby's digests of the newest point (the acknowledged one) for the verify
    /// pass the next epoch runs; returns why that pass reads every chunk.
    pub(super) async fn begin_verify(&mut self, request_id: u64) -> Res<String> {
        let acked: Epoch = self.agent.local.lock().expect("maps").acked();
        let reason = format!("online verify against point {acked} (operator request)");
        tracing::info!(pair = %self.agent.cfg.pair, request_id, against = acked, "online verify: comparing every chunk with point {acked}");
        self.load_standby_digests(&reason, Some(acked)).await?;
        self.verify_pass = Some(request_id);
        Ok(reason)
    }

    /// The verify's report for the standby, logged in plain words.
    pub(super) fn verify_report(
        &self,
        request_id: u64,
        epoch: Epoch,
        check: Option<Result<SourceCheck, Inconclusive>>,
        summary: &PassSummary,
    ) -> VerifyReport {
        let pair = &self.agent.cfg.pair;
        let result = check.unwrap_or(Err(Inconclusive::ComparedNothing));
        match &result {
            Ok(c) if c.mismatched > 0 => tracing::warn!(
                pair = %pair, epoch, against = c.against, compared = c.compared, mismatched = c.mismatched,
                sample = ?c.sample, shipped = summary.chunks,
                "online verify: {} chunk(s) differ from point {} although no change to them was tracked; they are shipped in epoch {epoch}",
                c.mismatched, c.against
            ),
            Ok(c) => tracing::info!(
                pair = %pair, epoch, against = c.against, compared = c.compared, shipped = summary.chunks,
                "online verify: every chunk matches point {} or changed after it", c.against
            ),
            Err(e) => tracing::warn!(
                pair = %pair, epoch, "online verify inconclusive: {e}; every differing chunk is shipped in epoch {epoch}"
            ),
        }
        // The standby hears why in words.
        VerifyReport { request_id, result: result.map_err(|e| e.to_string()) }
    }
}
