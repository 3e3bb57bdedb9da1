//! Differential resync: compare what is read with the standby's range digests of its newest
//! point, and ask for per-chunk hashes only where a range differs.

use super::PassError;
use super::worker::{ReadChunk, Worker};
use drpair_track::ChangeMap;
use drpair_types::Epoch;
use drpair_wire::{WireVersion, range_digest};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The standby's digests of its newest point, one per `span` chunks of each disk: a
/// differential resync compares each range read with them and asks for per-chunk hashes only
/// where a range differs.
#[derive(Debug, Default)]
pub struct ResyncRanges {
    pub span: u64,
    /// Per disk, one digest per range.
    pub digests: Vec<Vec<[u8; 32]>>,
    pub matched: AtomicU64,
    pub differed: AtomicU64,
    /// Report mismatches with the standby's head, which holds the source as of this epoch (a
    /// loaded third-party dump of it, or the newest point in an online verify): a chunk that
    /// differs from it although the change map saw no change after it is a mismatch.
    pub against: Option<Epoch>,
    /// Chunks that differed from the head with no change after `against` in the change map
    /// when read, (disk, chunk). A write during the pass is only stamped at the tracker's next
    /// collect: [`ResyncRanges::source_check`] filters those out.
    pub mismatch_candidates: Mutex<Vec<(u32, u64)>>,
    /// The tracker cannot date changes (scan): a chunk whose content changed since the agent
    /// last read it may have changed before or after `against`, so only a chunk still as it
    /// was last read can be a mismatch.
    pub undated: bool,
    /// Candidates beyond the list's bound (counted, not listed).
    pub candidates_dropped: AtomicU64,
}

/// Mismatch candidates listed; mismatched chunks named in a check.
const MAX_CANDIDATES: usize = 1 << 16;
const MISMATCH_SAMPLE: usize = drpair_types::SOURCE_VERIFY_SAMPLE;

impl ResyncRanges {
    /// What this resync found of the point it compared with (`compared` chunks read), once
    /// the tracker's changes since the pass's cut are stamped in `maps` with `next` (the epoch
    /// after the pass's): a candidate the tracker did not stamp then is a mismatch (the pass
    /// itself stamps what differed with its own epoch, below `next`). None when the pass was
    /// not asked to compare.
    pub fn source_check(&self, compared: u64, maps: &[ChangeMap], next: Epoch) -> Option<drpair_wire::SourceCheck> {
        let against = self.against?;
        let cands = self.mismatch_candidates.lock().expect("candidates");
        let mut real: Vec<(u32, u64)> =
            cands.iter().copied().filter(|&(d, c)| maps[d as usize].epoch_of(c) < next).collect();
        real.sort_unstable();
        Some(drpair_wire::SourceCheck {
            against,
            compared,
            mismatched: real.len() as u64 + self.candidates_dropped.load(Ordering::Relaxed),
            sample: real.into_iter().take(MISMATCH_SAMPLE).collect(),
        })
    }
}

impl Worker<'_> {
    /// Differential resync of one block: when the range's digest equals the standby's, the
    /// standby holds exactly this content, so the hashes read are recorded as known; when it
    /// differs, the standby's per-chunk hashes are recorded. Either way the scan that follows
    /// (`observe`) ships exactly the chunks that differ from the standby.
    pub(super) fn resync_block(
        &self,
        r: &ResyncRanges,
        disk: u32,
        first: u64,
        chunks: &[ReadChunk],
    ) -> Result<(), PassError> {
        let local =
            chunks.iter().map(|&(_, _, _, z, h)| Some(if z { WireVersion::Zero } else { WireVersion::Data(h) }));
        let theirs = (r.span > 0 && first % r.span == 0)
            .then(|| r.digests.get(disk as usize).and_then(|d| d.get((first / r.span) as usize)))
            .flatten();
        let same = theirs.is_some_and(|t| *t == range_digest(local)) && chunks.len() as u64 <= r.span;
        let known: Vec<Option<[u8; 32]>> = if same {
            r.matched.fetch_add(1, Ordering::Relaxed);
            chunks.iter().map(|c| Some(c.4)).collect()
        } else {
            r.differed.fetch_add(1, Ordering::Relaxed);
            let g = self.ctx.disks[disk as usize].1;
            self.ask_hashes(disk, first, chunks.len() as u64)?
                .into_iter()
                .zip(chunks)
                .map(|(v, &(c, ..))| match v {
                    Some(WireVersion::Data(h)) => Some(h),
                    Some(WireVersion::Zero) => Some(self.zero.get(g.chunk_len(c) as usize)),
                    None => None,
                })
                .collect()
        };
        let mut st = self.ctx.maps.lock().expect("maps");
        let m = &mut st.maps()[disk as usize];
        for (&(c, _, _, _, local), h) in chunks.iter().zip(known) {
            if let Some(against) = r.against
                && h != Some(local)
                && m.epoch_of(c) <= against
                && (!r.undated || m.hash(c) == Some(local))
            {
                let mut cands = r.mismatch_candidates.lock().expect("candidates");
                if cands.len() < MAX_CANDIDATES {
                    cands.push((disk, c));
                } else {
                    r.candidates_dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            m.set_hash(c, h)?;
        }
        Ok(())
    }

    /// Asks the standby for its per-chunk hashes of `first..first + count`; waits for them.
    fn ask_hashes(&self, disk: u32, first: u64, count: u64) -> Result<Vec<Option<WireVersion>>, PassError> {
        let v = self.ctx.standby.hashes(disk, first, count)?;
        if v.len() as u64 != count {
            return Err(PassError::HashesCount { got: v.len(), asked: count });
        }
        Ok(v)
    }
}
