//! The two ways the store walks the version index, written once.
//!
//! - [`VersionScan`]: every entry of a pair, of one disk, or of the whole store, in key order
//!   (per chunk, newest epoch first), decoded, read outside the block cache (a one-off scan
//!   must not evict what the hot paths use). Pruning, history rewrites, verification, storage
//!   reports, index builds and "what changed" all fold over it.
//! - [`LatestCursor`]: the newest entry at or before an epoch, for ascending chunks of one
//!   disk, on one iterator that steps forward and seeks only past long runs of older versions.
//!   Reading a point ([`crate::PointReader`]) and `version_at` / `versions_at` are built on it.

use crate::keys::{
    VERSION_KEY_LEN, VersionKey, decode_version, decode_version_key, pair_prefix, prefix_end, version_key,
};
use crate::options::CF_VERSIONS;
use crate::{ChunkVersion, Store, StoreError};
use rocksdb::{DBRawIterator, ReadOptions};

/// `LatestCursor` steps forward this many entries before it seeks instead.
const NEXT_BEFORE_SEEK: usize = 8;

/// Which version entries a [`VersionScan`] covers.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// Every entry in the store.
    All,
    /// Every entry of a pair.
    Pair(u32),
    /// Every entry of one disk of a pair.
    Disk(u32, u32),
}

/// A scan of version entries in key order: `(key, version)` per entry, then the iterator's
/// status (an error ends the scan).
pub(crate) struct VersionScan<'s> {
    it: DBRawIterator<'s>,
    done: bool,
}

impl Iterator for VersionScan<'_> {
    type Item = Result<(VersionKey, ChunkVersion), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let entry = match (self.it.key(), self.it.value()) {
            (Some(k), Some(v)) => decode_version_key(k).and_then(|vk| Ok((vk, decode_version(&vk, v)?))),
            _ => {
                self.done = true;
                return self.it.status().err().map(|e| Err(e.into()));
            }
        };
        if entry.is_err() {
            self.done = true;
        } else {
            self.it.next();
        }
        Some(entry)
    }
}

impl Store {
    /// Every version entry in `scope`, in key order, read outside the block cache.
    pub(crate) fn scan_versions(&self, scope: Scope) -> VersionScan<'_> {
        let mut ro = ReadOptions::default();
        ro.fill_cache(false);
        let start: Vec<u8> = match scope {
            Scope::All => Vec::new(),
            Scope::Pair(pair_no) => {
                let prefix = pair_prefix(pair_no);
                ro.set_iterate_upper_bound(prefix_end(&prefix, VERSION_KEY_LEN));
                prefix.to_vec()
            }
            Scope::Disk(pair_no, disk) => {
                let first = version_key(pair_no, disk, 0, u64::MAX);
                ro.set_iterate_lower_bound(first.to_vec());
                ro.set_iterate_upper_bound(prefix_end(&first[..8], VERSION_KEY_LEN));
                first.to_vec()
            }
        };
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_VERSIONS), ro);
        if start.is_empty() {
            it.seek_to_first();
        } else {
            it.seek(start);
        }
        VersionScan { it, done: false }
    }

    /// A cursor answering "newest version at or before `epoch`" for chunks `first..end` of a
    /// disk (`end` None: to the disk's last chunk number), asked in ascending order.
    pub(crate) fn latest_cursor(
        &self,
        pair_no: u32,
        disk: u32,
        epoch: u64,
        first: u64,
        end: Option<u64>,
    ) -> LatestCursor<'_> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_lower_bound(version_key(pair_no, disk, first, u64::MAX).to_vec());
        let upper = match end {
            Some(end) => version_key(pair_no, disk, end, u64::MAX).to_vec(),
            None => prefix_end(&version_key(pair_no, disk, 0, 0)[..8], VERSION_KEY_LEN),
        };
        ro.set_iterate_upper_bound(upper);
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_VERSIONS), ro);
        it.seek(version_key(pair_no, disk, first, epoch));
        LatestCursor { it, pair_no, disk, epoch }
    }
}

/// See [`Store::latest_cursor`].
pub(crate) struct LatestCursor<'s> {
    it: DBRawIterator<'s>,
    pair_no: u32,
    disk: u32,
    epoch: u64,
}

impl LatestCursor<'_> {
    /// The newest version of `chunk` at or before the cursor's epoch, with the epoch it was
    /// written at (`None`: never written up to then). Chunks must be asked in ascending order.
    pub(crate) fn latest(&mut self, chunk: u64) -> Result<Option<(u64, ChunkVersion)>, StoreError> {
        let target = version_key(self.pair_no, self.disk, chunk, self.epoch);
        let mut steps = 0;
        // Move to the first entry ≥ target: newest version ≤ epoch of this chunk or later.
        while let Some(k) = self.it.key() {
            if k >= &target[..] {
                break;
            }
            if steps == NEXT_BEFORE_SEEK {
                self.it.seek(target);
                break;
            }
            self.it.next();
            steps += 1;
        }
        let Some(k) = self.it.key() else {
            self.it.status()?;
            return Ok(None);
        };
        let vk = decode_version_key(k)?;
        if vk.chunk != chunk {
            return Ok(None);
        }
        let v = self.it.value().expect("valid iterator has a value");
        Ok(Some((vk.epoch, decode_version(&vk, v)?)))
    }

    /// Whether the cursor ran past the end of its range (no later chunk has a version).
    pub(crate) fn exhausted(&self) -> Result<bool, StoreError> {
        if self.it.valid() {
            return Ok(false);
        }
        self.it.status()?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{open_seeded, point, record};
    use crate::{ChunkVersion, PairId};

    fn data(b: u8) -> ChunkVersion {
        ChunkVersion::Data([b; 32])
    }

    #[test]
    fn scans_cover_their_scope_in_key_order() {
        let (_dir, s) = open_seeded();
        for pair_no in [1, 2] {
            let id = PairId::new(format!("p{pair_no}")).unwrap();
            s.write_versions(pair_no, 3, &[(0, 1, data(1)), (0, 0, ChunkVersion::Zero), (1, 0, data(2))]).unwrap();
            s.commit_point(pair_no, &point(id.as_str(), 3), &id, &record(id.as_str(), 3)).unwrap();
            s.write_versions(pair_no, 5, &[(0, 1, data(3))]).unwrap();
        }
        let keys = |scope| -> Vec<(u32, u32, u64, u64)> {
            s.scan_versions(scope).map(|e| e.map(|(k, _)| (k.pair_no, k.disk, k.chunk, k.epoch)).unwrap()).collect()
        };
        assert_eq!(keys(Scope::Disk(2, 0)), [(2, 0, 0, 3), (2, 0, 1, 5), (2, 0, 1, 3)]);
        assert_eq!(keys(Scope::Pair(1)), [(1, 0, 0, 3), (1, 0, 1, 5), (1, 0, 1, 3), (1, 1, 0, 3)]);
        assert_eq!(keys(Scope::All).len(), 8);
        assert!(keys(Scope::Pair(3)).is_empty());
        let versions: Vec<ChunkVersion> = s.scan_versions(Scope::Disk(1, 1)).map(|e| e.unwrap().1).collect();
        assert_eq!(versions, [data(2)]);
    }

    #[test]
    fn a_cursor_folds_to_the_newest_version_at_or_before_its_epoch() {
        let (_dir, s) = open_seeded();
        let id = PairId::new("p").unwrap();
        s.write_versions(1, 2, &[(0, 0, data(1)), (0, 1, data(1)), (0, 40, data(1))]).unwrap();
        s.commit_point(1, &point("p", 2), &id, &record("p", 2)).unwrap();
        // Many newer versions of chunk 0: the cursor seeks past them.
        for b in 3..30u8 {
            let e = u64::from(b);
            s.write_versions(1, e, &[(0, 0, data(b))]).unwrap();
            s.commit_point(1, &point("p", e), &id, &record("p", e)).unwrap();
        }
        let mut c = s.latest_cursor(1, 0, 10, 0, Some(50));
        assert_eq!(c.latest(0).unwrap(), Some((10, data(10))));
        assert_eq!(c.latest(1).unwrap(), Some((2, data(1))));
        assert_eq!(c.latest(2).unwrap(), None);
        assert!(!c.exhausted().unwrap());
        assert_eq!(c.latest(40).unwrap(), Some((2, data(1))));
        assert_eq!(c.latest(41).unwrap(), None);
        assert!(c.exhausted().unwrap());
        let mut c = s.latest_cursor(1, 0, 1, 0, Some(50));
        assert_eq!(c.latest(0).unwrap(), None, "before the chunk was ever written");
        // A one-chunk cursor at the last chunk number.
        assert_eq!(s.latest_cursor(1, 0, 10, u64::MAX, None).latest(u64::MAX).unwrap(), None);
    }
}
