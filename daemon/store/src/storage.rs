//! What a pair's points cost in the store: one scan of its version entries, chunk sizes
//! from `sizes`, sharing from `refs`.

use crate::keys::prefix_end;
use crate::keys::{REF_KEY_LEN, decode_ref_key, decode_sizes};
use crate::options::{CF_REFS, CF_SIZES};
use crate::scan::Scope;
use crate::{ChunkVersion, Hash, Store, StoreError, StoredChunk};
use rocksdb::ReadOptions;
use std::collections::{BTreeMap, HashMap};

/// Byte totals of a set of chunk versions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkTotals {
    /// Version entries.
    pub versions: u64,
    /// Uncompressed bytes of the entries naming a chunk.
    pub written_bytes: u64,
    /// Uncompressed bytes of the distinct chunks named.
    pub distinct_bytes: u64,
    /// Stored bytes of the distinct chunks named.
    pub stored_bytes: u64,
    /// Of those, chunks named by this set only (no other version of any pair).
    pub unique_bytes: u64,
}

/// A pair's storage: totals over all its committed entries, and per point the entries it
/// introduced (written after the previous point, up to it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PairStorage {
    pub total: ChunkTotals,
    /// Of `total.stored_bytes`, chunks no other pair names.
    pub pair_unique_bytes: u64,
    pub per_point: BTreeMap<u64, ChunkTotals>,
}

/// Who names one chunk.
#[derive(Default)]
struct Sharing {
    other_pairs: bool,
    refs: u64,
}

impl Store {
    /// The pair's storage report (committed entries only).
    pub fn pair_storage(&self, pair_no: u32) -> Result<PairStorage, StoreError> {
        let points: Vec<u64> = self.list_points(pair_no)?.iter().map(|p| p.epoch).collect();
        let mut out = PairStorage::default();
        let Some(&newest) = points.last() else { return Ok(out) };
        // Per point: the distinct chunks it introduced, with how many of its entries name each.
        let mut point_chunks: BTreeMap<u64, HashMap<Hash, u64>> = BTreeMap::new();
        let mut all: HashMap<Hash, u64> = HashMap::new();
        for entry in self.scan_versions(Scope::Pair(pair_no)) {
            let (vk, version) = entry?;
            if vk.epoch > newest {
                continue;
            }
            let point = points[points.partition_point(|&p| p < vk.epoch)];
            let t = out.per_point.entry(point).or_default();
            t.versions += 1;
            out.total.versions += 1;
            if let ChunkVersion::Data(h) = version {
                let raw = self.chunk_sizes(&h)?.0;
                t.written_bytes += raw;
                out.total.written_bytes += raw;
                *point_chunks.entry(point).or_default().entry(h).or_default() += 1;
                *all.entry(h).or_default() += 1;
            }
        }
        let mut sharing: HashMap<Hash, Sharing> = HashMap::with_capacity(all.len());
        for h in all.keys() {
            let (raw, stored) = self.chunk_sizes(h)?;
            let s = self.sharing(h, pair_no)?;
            out.total.distinct_bytes += raw;
            out.total.stored_bytes += stored;
            if !s.other_pairs {
                out.pair_unique_bytes += stored;
            }
            sharing.insert(*h, s);
        }
        for (point, chunks) in point_chunks {
            let t = out.per_point.entry(point).or_default();
            for (h, named) in chunks {
                let (raw, stored) = self.chunk_sizes(&h)?;
                t.distinct_bytes += raw;
                t.stored_bytes += stored;
                // Unique when every live entry naming it is one of this point's (a point may
                // name the same content at several places).
                if sharing.get(&h).is_some_and(|s| s.refs <= named) {
                    t.unique_bytes += stored;
                }
            }
        }
        out.total.unique_bytes = out.pair_unique_bytes;
        Ok(out)
    }

    /// Raw and stored length of a chunk (0, 0 when not stored).
    fn chunk_sizes(&self, hash: &Hash) -> Result<(u64, u64), StoreError> {
        if let Some(v) = self.db().get_pinned_cf(self.cf(CF_SIZES), hash)?
            && let Some((raw, stored)) = decode_sizes(&v)
        {
            return Ok((u64::from(raw), u64::from(stored)));
        }
        match self.get_chunk_raw(hash)? {
            Some(v) => {
                let raw = StoredChunk::parse(hash, &v).map(|c| u64::from(c.raw_len)).unwrap_or(0);
                Ok((raw, v.len() as u64))
            }
            None => Ok((0, 0)),
        }
    }

    /// How many live entries name `hash`, and whether another pair is among them.
    fn sharing(&self, hash: &Hash, pair_no: u32) -> Result<Sharing, StoreError> {
        let mut ro = ReadOptions::default();
        ro.set_iterate_upper_bound(prefix_end(hash, REF_KEY_LEN));
        let mut it = self.db().raw_iterator_cf_opt(self.cf(CF_REFS), ro);
        it.seek(hash);
        let mut s = Sharing::default();
        while let Some(k) = it.key() {
            let vk = decode_ref_key(k)?;
            if self.get_version(&vk)? == Some(ChunkVersion::Data(*hash)) {
                s.refs += 1;
                s.other_pairs |= vk.pair_no != pair_no;
            }
            it.next();
        }
        it.status()?;
        Ok(s)
    }
}

#[cfg(test)]
mod tests;
