//! Verification of what a pair's points see: every chunk they name is read back,
//! decompressed and re-hashed, once however many points share it.
//!
//! One scan of the pair's version entries (chunk by chunk, newest entry first) gives each
//! entry the points that see it: those in *[e, n)*, *n* being the next newer entry's epoch.
//! A damaged or missing chunk is reported with those points.

use crate::scan::Scope;
use crate::{ChunkVersion, Hash, Store, StoreError, StoredChunk, hash_hex};
use std::collections::{BTreeSet, HashMap};

/// A chunk version that failed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub disk: u32,
    pub chunk: u64,
    /// Epoch the version was written at.
    pub epoch: u64,
    pub hash: String,
    /// `missing`, or what is wrong with the stored bytes.
    pub reason: String,
    /// The points that see this version (all of them, ascending).
    pub points: Vec<u64>,
}

/// Progress: the disk and chunk being verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifyProgress {
    pub disk: u32,
    pub chunk: u64,
    pub chunks_checked: u64,
}

/// What a verification found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyOutcome {
    /// The points verified (ascending).
    pub points: Vec<u64>,
    /// Distinct chunks read and hashed.
    pub chunks_checked: u64,
    /// Stored bytes read.
    pub bytes_checked: u64,
    pub damaged: Vec<Damaged>,
}

impl VerifyOutcome {
    /// Points that see no damaged chunk.
    pub fn intact_points(&self) -> Vec<u64> {
        let bad: BTreeSet<u64> = self.damaged.iter().flat_map(|d| d.points.iter().copied()).collect();
        self.points.iter().copied().filter(|p| !bad.contains(p)).collect()
    }
}

impl Store {
    /// Verifies the chunks seen by the pair's points (or by `only`). `progress` is called
    /// now and then; returning false stops the verification ([`StoreError::Range`] is not
    /// used for that: the outcome so far is returned with `points` emptied).
    pub fn verify_points(
        &self,
        pair_no: u32,
        only: Option<u64>,
        mut progress: impl FnMut(VerifyProgress) -> bool,
    ) -> Result<VerifyOutcome, StoreError> {
        let all: BTreeSet<u64> = self.list_points(pair_no)?.iter().map(|p| p.epoch).collect();
        let points: BTreeSet<u64> = match only {
            Some(id) if all.contains(&id) => [id].into(),
            Some(id) => return Err(StoreError::PointNotFound { pair_no, id }),
            None => all.clone(),
        };
        let newest = all.last().copied().unwrap_or(0);
        let mut out = VerifyOutcome { points: points.iter().copied().collect(), ..VerifyOutcome::default() };
        let mut checked: HashMap<Hash, Option<String>> = HashMap::new();
        // The chunk being scanned and the epoch of its newer committed entry.
        let mut current: Option<(u32, u64)> = None;
        let mut newer: Option<u64> = None;
        let mut steps = 0u64;
        for entry in self.scan_versions(Scope::Pair(pair_no)) {
            let (vk, version) = entry?;
            if current != Some((vk.disk, vk.chunk)) {
                current = Some((vk.disk, vk.chunk));
                newer = None;
                steps += 1;
                if steps.is_multiple_of(1024)
                    && !progress(VerifyProgress { disk: vk.disk, chunk: vk.chunk, chunks_checked: out.chunks_checked })
                {
                    out.points.clear();
                    return Ok(out);
                }
            }
            // Entries of open epochs are no point's yet, and do not hide older ones.
            if vk.epoch > newest {
                continue;
            }
            let seen_by: Vec<u64> = match newer {
                Some(n) => points.range(vk.epoch..n).copied().collect(),
                None => points.range(vk.epoch..).copied().collect(),
            };
            newer = Some(vk.epoch);
            let ChunkVersion::Data(hash) = version else { continue };
            if seen_by.is_empty() {
                continue;
            }
            let verdict = match checked.get(&hash) {
                Some(v) => v.clone(),
                None => {
                    let v = self.check_chunk(&hash, &mut out)?;
                    checked.insert(hash, v.clone());
                    v
                }
            };
            if let Some(reason) = verdict {
                out.damaged.push(Damaged {
                    disk: vk.disk,
                    chunk: vk.chunk,
                    epoch: vk.epoch,
                    hash: hash_hex(&hash),
                    reason,
                    points: seen_by,
                });
            }
        }
        Ok(out)
    }

    /// Reads back one chunk: None when intact, else what is wrong.
    fn check_chunk(&self, hash: &Hash, out: &mut VerifyOutcome) -> Result<Option<String>, StoreError> {
        out.chunks_checked += 1;
        let raw = match self.get_chunk_fresh(hash) {
            Ok(Some(raw)) => raw,
            Ok(None) => return Ok(Some("missing".into())),
            // rocksdb's own checksums (blob records, blocks) caught the damage first.
            Err(StoreError::Db(e)) if e.kind() == rocksdb::ErrorKind::Corruption => {
                return Ok(Some(format!("stored bytes damaged: {e}")));
            }
            Err(e) => return Err(e),
        };
        out.bytes_checked += raw.len() as u64;
        match StoredChunk::parse(hash, &raw).and_then(|c| c.decode(hash)) {
            Ok(_) => Ok(None),
            Err(e @ (StoreError::Corrupt { .. } | StoreError::Decompress { .. })) => Ok(Some(e.to_string())),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests;
