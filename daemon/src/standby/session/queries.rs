//! The agent's queries about what the standby holds: chunk versions and range digests of the
//! newest committed point.

use super::Session;
use super::{ConnError, MAX_HASH_RANGE};
use drpair_wire::{StandbyMsg, WireVersion};

impl Session {
    /// The versions of `count` chunks from `first` of disk `disk` in the newest point.
    pub(super) async fn hashes(&mut self, req: u64, disk: u32, first: u64, count: u64) -> Result<(), ConnError> {
        let versions = self.committed_versions(disk, first, count).await?;
        self.send(StandbyMsg::Hashes { req, disk, first, versions }).await;
        Ok(())
    }

    /// One [`drpair_wire::range_digest`] per `span` chunks of `first..first + count`.
    pub(super) async fn digests(
        &mut self,
        req: u64,
        disk: u32,
        first: u64,
        count: u64,
        span: u32,
    ) -> Result<(), ConnError> {
        if span == 0 || span > 4096 {
            return Err(ConnError::Protocol(format!(
                "pair '{}': digest span {span} is outside 1..=4096",
                self.pair_id
            )));
        }
        let versions = self.committed_versions(disk, first, count).await?;
        let digests = versions.chunks(span as usize).map(|r| drpair_wire::range_digest(r.iter().copied())).collect();
        self.send(StandbyMsg::Digests { req, disk, first, span, digests }).await;
        Ok(())
    }

    /// Versions of a range of a disk in the newest committed point (all `None` before the
    /// first commit); a range outside the disk is refused.
    async fn committed_versions(
        &mut self,
        disk: u32,
        first: u64,
        count: u64,
    ) -> Result<Vec<Option<WireVersion>>, ConnError> {
        // The agent offers other disks than those registered (Configuration changed): nothing
        // is shipped on this connection, and its questions about its disks have no answer
        // here (a restart or adoption ends the connection first).
        if self.handle.record.lock().expect("record").lifecycle.config_changed && count <= MAX_HASH_RANGE {
            return Ok(vec![None; count as usize]);
        }
        let disks = self.geometries();
        let Some(g) = disks.get(disk as usize) else {
            return Err(ConnError::Protocol(format!(
                "pair '{}': hash request for disk {disk}, which does not exist",
                self.pair_id
            )));
        };
        if count > MAX_HASH_RANGE || first.checked_add(count).is_none_or(|e| e > g.chunk_count()) {
            return Err(ConnError::Protocol(format!(
                "pair '{}' disk {disk}: hash request {first}+{count} is outside 0..{} or over {MAX_HASH_RANGE}",
                self.pair_id,
                g.chunk_count()
            )));
        }
        let committed = self.handle.record.lock().expect("record").committed;
        let versions = if committed == 0 {
            vec![None; count as usize]
        } else {
            let (store, pair_no) = (self.sb.store.clone(), self.pair_no);
            tokio::task::spawn_blocking(move || store.versions_at(pair_no, disk, committed, first, count))
                .await
                .map_err(ConnError::worker)?
                .map_err(|e| ConnError::Store(e.to_string()))?
                .into_iter()
                .map(|v| {
                    v.map(|v| match v {
                        drpair_store::ChunkVersion::Zero => WireVersion::Zero,
                        drpair_store::ChunkVersion::Data(h) => WireVersion::Data(h),
                    })
                })
                .collect()
        };
        Ok(versions)
    }
}
