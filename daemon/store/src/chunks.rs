//! Content-addressed chunks: blake3 hash → the chunk as shipped.
//!
//! Stored value: `format u8 (0 = raw, 1 = zstd) · raw_len u32 LE · payload`. The payload is
//! kept exactly as shipped, never recompressed. Reading back decompresses with `raw_len` as a
//! hard limit and verifies blake3 of the result against the key.

use crate::keys::encode_sizes;
use crate::options::{CF_CHUNKS, CF_SIZES};
use crate::{Store, StoreError};
use rocksdb::{ErrorKind, ReadOptions, ReadTier};

/// A blake3 hash: the name of a chunk.
pub type Hash = [u8; 32];

const FORMAT_RAW: u8 = 0;
const FORMAT_ZSTD: u8 = 1;
const HEADER_LEN: usize = 5;
/// Largest chunk (4 MiB, the largest chunk size): no stored length is trusted beyond it.
pub(crate) const MAX_RAW_LEN: u32 = drpair_types::ChunkSize::MAX;

/// rocksdb's message when a cache-only read found a key whose value is in a blob file
/// (`BlobSource`, rocksdb 11). Should it change, such reads are simply redone in full.
const BLOB_NOT_READ: &str = "Cannot read blob(s)";

/// Lower-case hex of a hash, as used in messages and logs.
pub fn hash_hex(hash: &Hash) -> String {
    blake3::Hash::from_bytes(*hash).to_hex().to_string()
}

/// A chunk as shipped and stored: raw or zstd payload and the length of the raw bytes.
#[derive(Debug, Clone, Copy)]
pub struct StoredChunk<'a> {
    pub compressed: bool,
    pub raw_len: u32,
    pub payload: &'a [u8],
}

impl<'a> StoredChunk<'a> {
    /// Parses a stored value (as returned by [`Store::get_chunk_raw`]); `hash` names the chunk
    /// in errors. Checks the header and lengths, not the content.
    pub fn parse(hash: &Hash, bytes: &'a [u8]) -> Result<StoredChunk<'a>, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { hash: hash_hex(hash), reason };
        if bytes.len() < HEADER_LEN {
            return Err(corrupt(format!("stored value of {} bytes is shorter than its header", bytes.len())));
        }
        let compressed = match bytes[0] {
            FORMAT_RAW => false,
            FORMAT_ZSTD => true,
            f => return Err(corrupt(format!("unknown format {f}"))),
        };
        let raw_len = u32::from_le_bytes(bytes[1..HEADER_LEN].try_into().expect("4 bytes"));
        let chunk = StoredChunk { compressed, raw_len, payload: &bytes[HEADER_LEN..] };
        chunk.check(hash)?;
        Ok(chunk)
    }

    /// Length and size checks shared by storing and parsing.
    fn check(&self, hash: &Hash) -> Result<(), StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { hash: hash_hex(hash), reason };
        if self.raw_len > MAX_RAW_LEN {
            return Err(corrupt(format!("length {} exceeds the largest chunk size {MAX_RAW_LEN}", self.raw_len)));
        }
        if !self.compressed && self.payload.len() != self.raw_len as usize {
            return Err(corrupt(format!("raw payload of {} bytes, header says {}", self.payload.len(), self.raw_len)));
        }
        if self.compressed && self.payload.len() > drpair_codec::compress_bound(MAX_RAW_LEN as usize) {
            return Err(corrupt(format!("zstd payload of {} bytes is larger than any chunk's", self.payload.len())));
        }
        Ok(())
    }

    /// The stored value: header and payload.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEADER_LEN + self.payload.len());
        v.push(if self.compressed { FORMAT_ZSTD } else { FORMAT_RAW });
        v.extend_from_slice(&self.raw_len.to_le_bytes());
        v.extend_from_slice(self.payload);
        v
    }

    /// The chunk's bytes, decompressed (at most `raw_len` bytes) and blake3-verified against
    /// `hash`.
    pub fn decode(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        self.check(hash)?;
        let data = if self.compressed {
            match drpair_codec::decompress(self.payload, self.raw_len) {
                Ok(data) => data,
                Err(drpair_codec::CodecError::LengthMismatch { got, .. }) => {
                    return Err(StoreError::Corrupt {
                        hash: hash_hex(hash),
                        reason: format!("decompressed to {got} bytes, header says {}", self.raw_len),
                    });
                }
                Err(e) => return Err(StoreError::Decompress { hash: hash_hex(hash), reason: e.to_string() }),
            }
        } else {
            self.payload.to_vec()
        };
        if data.len() != self.raw_len as usize {
            return Err(StoreError::Corrupt {
                hash: hash_hex(hash),
                reason: format!("decompressed to {} bytes, header says {}", data.len(), self.raw_len),
            });
        }
        let actual = blake3::hash(&data);
        if actual.as_bytes() != hash {
            return Err(StoreError::Corrupt {
                hash: hash_hex(hash),
                reason: format!("hash mismatch: stored bytes hash to {}", actual.to_hex()),
            });
        }
        Ok(data)
    }
}

/// Bytes a chunk's stored value takes (header and payload).
fn batch_len(chunk: &StoredChunk<'_>) -> u64 {
    (HEADER_LEN + chunk.payload.len()) as u64
}

/// An empty write batch with room for the chunks' values and sizes entries: grown by
/// doubling instead, a batch of a frame's chunks copied its bytes about once more (6% of the
/// standby's CPU during an initial sync). `values`: whether the values go into the batch
/// (not with packs).
fn chunk_batch(chunks: &[(Hash, StoredChunk<'_>)], values: bool) -> rocksdb::WriteBatch {
    /// Bytes of a batch record besides the value: type, column family, lengths, the key, and
    /// the sizes entry beside it.
    const PER_CHUNK: usize = 128;
    let bytes: usize =
        chunks.iter().map(|(_, c)| if values { HEADER_LEN + c.payload.len() } else { 0 } + PER_CHUNK).sum();
    rocksdb::WriteBatch::with_capacity_bytes(bytes + 64)
}

impl Store {
    /// For each hash, whether the chunk is stored. Exact (never a false positive).
    ///
    /// First asks rocksdb without disk I/O (memtables, bloom filters, cached blocks): absent
    /// keys are answered there, and a present key whose value is in a blob file comes back as
    /// "incomplete: cannot read blob" (rocksdb found its blob reference, so it exists) instead
    /// of reading the blob. Hashes left undecided (a block not in the cache) get a normal
    /// read, which also reads their values.
    pub fn has_chunks(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        if let Some(p) = self.packs() {
            return p.has(self, hashes);
        }
        let db = self.db();
        let cf = self.cf(CF_CHUNKS);
        let mut cache_only = ReadOptions::default();
        cache_only.set_read_tier(ReadTier::BlockCache);
        let mut found = vec![false; hashes.len()];
        let mut undecided = Vec::new();
        for (i, r) in db.batched_multi_get_cf_opt(cf, hashes, false, &cache_only).into_iter().enumerate() {
            match r {
                // An empty value is rocksdb's "may exist" (bloom hit, data block not cached): never a stored chunk.
                Ok(Some(v)) if v.is_empty() => undecided.push(i),
                Ok(v) => found[i] = v.is_some(),
                Err(e) if e.kind() == ErrorKind::Incomplete && e.as_ref().contains(BLOB_NOT_READ) => found[i] = true,
                Err(e) if e.kind() == ErrorKind::Incomplete => undecided.push(i),
                Err(e) => return Err(e.into()),
            }
        }
        if !undecided.is_empty() {
            let keys: Vec<&Hash> = undecided.iter().map(|&i| &hashes[i]).collect();
            let results = db.batched_multi_get_cf(cf, keys, false);
            for (&i, r) in undecided.iter().zip(results) {
                found[i] = r?.is_some();
            }
        }
        Ok(found)
    }

    /// Like [`Store::has_chunks`], but every chunk found is also read back and verified
    /// (decompressed, blake3 against its hash), for a caller about to skip shipping the chunks
    /// the store already holds. A stored chunk that fails verification counts as not held
    /// and is deleted (one synced batch under the record lock, after checking again that it
    /// is still the damaged value), so that the same hash shipped again is stored fresh by
    /// [`Store::put_chunk`], which otherwise skips existing hashes; each is logged as a
    /// warning naming the hash. Any other error is returned.
    ///
    /// A point already referring to a damaged chunk stays damaged (re-shipping repairs it);
    /// a concurrent `put_chunk` of the same hash that found the damaged value may report it
    /// stored while it is deleted: no worse than the damaged value it relied on.
    pub fn has_verified_chunks(&self, hashes: &[Hash]) -> Result<Vec<bool>, StoreError> {
        let mut held = Vec::with_capacity(hashes.len());
        let mut damaged = Vec::new();
        for hash in hashes {
            match self.verify_stored(hash)? {
                Some(Ok(())) => held.push(true),
                Some(Err(e)) => {
                    held.push(false);
                    damaged.push((hash, e));
                }
                None => held.push(false),
            }
        }
        if damaged.is_empty() {
            return Ok(held);
        }
        let _records = self.lock_records();
        let _ledger = self.packs().map(|p| p.lock_ledger());
        let mut batch = rocksdb::WriteBatch::default();
        let mut gone = Vec::new();
        for (hash, e) in &damaged {
            // Checked again under the lock: another caller may have deleted it and a good
            // copy may have been stored since.
            if let Some(Err(_)) = self.verify_stored(hash)? {
                if self.packs().is_some() {
                    gone.push(**hash);
                } else {
                    batch.delete_cf(self.cf(CF_CHUNKS), hash);
                }
                tracing::warn!(
                    hash = %hash_hex(hash),
                    error = %e,
                    "stored chunk fails verification: deleted, to be stored again when shipped"
                );
            }
        }
        // With packs: the entry goes and its pack is debited; a pack it empties is left to
        // the orphan sweep.
        if let Some(p) = self.packs() {
            p.drop_entries(self, &mut batch, &gone)?;
        }
        self.write_synced(batch)?;
        Ok(held)
    }

    /// Reads back and verifies a stored chunk: `None` when not stored, `Some(Err(_))` when
    /// stored but damaged ([`StoreError::Corrupt`] or [`StoreError::Decompress`]). Other errors
    /// (rocksdb) are returned as such.
    fn verify_stored(&self, hash: &Hash) -> Result<Option<Result<(), StoreError>>, StoreError> {
        match self.read_chunk(hash) {
            Ok(_) => Ok(Some(Ok(()))),
            Err(StoreError::MissingChunk { .. }) => Ok(None),
            Err(e @ (StoreError::Corrupt { .. } | StoreError::Decompress { .. })) => Ok(Some(Err(e))),
            Err(e) => Err(e),
        }
    }

    /// Stores a chunk under `hash` (unsynced: durable with the next synced commit) and returns
    /// the bytes newly written, 0 when the hash was already stored. The caller has verified
    /// blake3 of the chunk; this checks only the header and lengths.
    pub fn put_chunk(&self, hash: &Hash, chunk: StoredChunk<'_>) -> Result<u64, StoreError> {
        self.put_chunk_with(hash, chunk, false)
    }

    /// Like [`Store::put_chunk`] but without the WAL, for the bulk of large epochs: the value
    /// is written once (to its blob file at flush) instead of twice. Durable once the next
    /// commit has flushed it; lost in a crash before that, like the epoch that wrote it.
    pub fn put_chunk_bulk(&self, hash: &Hash, chunk: StoredChunk<'_>) -> Result<u64, StoreError> {
        self.put_chunk_with(hash, chunk, true)
    }

    fn put_chunk_with(&self, hash: &Hash, chunk: StoredChunk<'_>, bulk: bool) -> Result<u64, StoreError> {
        Ok(self.put_chunks(&[(*hash, chunk)], bulk)?[0])
    }

    /// Stores one frame of an open epoch: its new chunks (`chunks`, verified by the caller)
    /// and the version entries of all its items (`versions`, as [`Store::write_versions`]),
    /// with one existence query for every hash the entries name, all under one shared hold
    /// of the reclaim gate, so a chunk found or written here cannot be reclaimed before the
    /// entry naming it is written. An entry naming a hash that is neither stored nor in
    /// `chunks` is refused with [`StoreError::MissingChunk`] and nothing is written. Returns
    /// the bytes newly written per chunk, as [`Store::put_chunks`].
    pub fn write_frame(
        &self,
        pair_no: u32,
        epoch: u64,
        chunks: &[(Hash, StoredChunk<'_>)],
        versions: &[(u32, u64, crate::ChunkVersion)],
        bulk: bool,
    ) -> Result<Vec<u64>, StoreError> {
        for (hash, chunk) in chunks {
            chunk.check(hash)?;
        }
        let entries = if versions.is_empty() { None } else { Some(self.versions_batch(pair_no, epoch, versions)?) };
        let named: Vec<Hash> = versions
            .iter()
            .filter_map(|(_, _, v)| match v {
                crate::ChunkVersion::Data(h) => Some(*h),
                crate::ChunkVersion::Zero => None,
            })
            .collect();
        let _gate = self.gate_shared();
        if let Some(p) = self.packs() {
            p.admit(self)?;
        }
        let held: std::collections::HashMap<Hash, bool> = named.iter().copied().zip(self.has_chunks(&named)?).collect();
        let coming: std::collections::HashSet<Hash> = chunks.iter().map(|(h, _)| *h).collect();
        if let Some(h) = named.iter().find(|h| !held[*h] && !coming.contains(*h)) {
            return Err(StoreError::MissingChunk { hash: hash_hex(h) });
        }
        let mut written = vec![0u64; chunks.len()];
        let mut batch = chunk_batch(chunks, self.packs().is_none());
        let mut seen = std::collections::HashSet::with_capacity(chunks.len());
        for (i, (hash, chunk)) in chunks.iter().enumerate() {
            if held.get(hash).copied().unwrap_or(false) || !seen.insert(*hash) {
                continue;
            }
            self.batch_chunk(&mut batch, hash, chunk);
            written[i] = batch_len(chunk);
        }
        if !batch.is_empty() {
            if bulk && self.packs().is_none() { self.write_bulk(batch)? } else { self.write_unsynced(batch)? }
        }
        if let Some(entries) = entries {
            self.write_unsynced(entries)?;
        }
        Ok(written)
    }

    /// Adds a chunk and its sizes entry to `batch` (with packs, the chunk goes to the open
    /// pack instead: see `packs/`).
    fn batch_chunk(&self, batch: &mut rocksdb::WriteBatch, hash: &Hash, chunk: &StoredChunk<'_>) {
        let value = chunk.encode();
        match self.packs() {
            Some(p) => p.append(hash, &value),
            None => batch.put_cf(self.cf(CF_CHUNKS), hash, &value),
        }
        let stored_len = u32::try_from(value.len()).unwrap_or(u32::MAX);
        batch.put_cf(self.cf(CF_SIZES), hash, encode_sizes(chunk.raw_len, stored_len));
    }

    /// Stores a frame's chunks in one write batch (one existence query for all of them, one
    /// write): per chunk, the bytes newly written, 0 when the hash was already stored or
    /// appears earlier in `chunks`. `bulk` writes without the WAL, as
    /// [`Store::put_chunk_bulk`]. The caller has verified blake3 of each chunk; this checks
    /// the headers and lengths, and stores nothing when one of them is refused.
    pub fn put_chunks(&self, chunks: &[(Hash, StoredChunk<'_>)], bulk: bool) -> Result<Vec<u64>, StoreError> {
        for (hash, chunk) in chunks {
            chunk.check(hash)?;
        }
        if let Some(p) = self.packs() {
            p.admit(self)?;
        }
        let hashes: Vec<Hash> = chunks.iter().map(|(h, _)| *h).collect();
        let held = self.has_chunks(&hashes)?;
        let mut written = vec![0u64; chunks.len()];
        let mut batch = chunk_batch(chunks, self.packs().is_none());
        let mut seen = std::collections::HashSet::with_capacity(chunks.len());
        for (i, ((hash, chunk), held)) in chunks.iter().zip(held).enumerate() {
            if held || !seen.insert(*hash) {
                continue;
            }
            self.batch_chunk(&mut batch, hash, chunk);
            written[i] = batch_len(chunk);
        }
        if batch.is_empty() {
            return Ok(written);
        }
        if bulk && self.packs().is_none() {
            self.write_bulk(batch)?
        } else {
            self.write_unsynced(batch)?
        }
        Ok(written)
    }

    /// The stored value of a chunk, undecoded (header and payload, as shipped).
    /// With packs, read through the local cache of pack blocks.
    pub fn get_chunk_raw(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(p) = self.packs() {
            return p.read(self, hash, true);
        }
        Ok(self.db().get_cf(self.cf(CF_CHUNKS), hash)?)
    }

    /// Like [`Store::get_chunk_raw`], but with packs the chunk's bytes are fetched from the
    /// bucket itself, not from the local cache (what verifying means there).
    pub(crate) fn get_chunk_fresh(&self, hash: &Hash) -> Result<Option<Vec<u8>>, StoreError> {
        match self.packs() {
            Some(p) => p.read(self, hash, false),
            None => self.get_chunk_raw(hash),
        }
    }

    /// The chunk's bytes, decompressed and blake3-verified against `hash`.
    pub fn read_chunk(&self, hash: &Hash) -> Result<Vec<u8>, StoreError> {
        if self.packs().is_some() {
            let raw = self.get_chunk_raw(hash)?.ok_or_else(|| StoreError::MissingChunk { hash: hash_hex(hash) })?;
            return StoredChunk::parse(hash, &raw)?.decode(hash);
        }
        let raw = self
            .db()
            .get_pinned_cf(self.cf(CF_CHUNKS), hash)?
            .ok_or_else(|| StoreError::MissingChunk { hash: hash_hex(hash) })?;
        StoredChunk::parse(hash, &raw)?.decode(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::open_temp;

    fn raw(data: &[u8]) -> StoredChunk<'_> {
        StoredChunk { compressed: false, raw_len: data.len().try_into().unwrap(), payload: data }
    }

    #[test]
    fn raw_and_zstd_chunks_round_trip_and_dedup() {
        let (_dir, s) = open_temp();
        let a = vec![7u8; 65536];
        let b: Vec<u8> = (0..65536u32).map(|i| (i * 31 % 251) as u8).collect();
        let (ha, hb) = (*blake3::hash(&a).as_bytes(), *blake3::hash(&b).as_bytes());
        let zb = drpair_codec::compress_at(3, &b).unwrap();
        assert_eq!(s.has_chunks(&[ha, hb]).unwrap(), vec![false, false]);
        assert_eq!(s.put_chunk(&ha, raw(&a)).unwrap(), 65536 + 5);
        let zchunk = StoredChunk { compressed: true, raw_len: 65536, payload: &zb };
        assert_eq!(s.put_chunk(&hb, zchunk).unwrap(), zb.len() as u64 + 5);
        assert_eq!(s.put_chunk(&hb, zchunk).unwrap(), 0, "already stored");
        assert_eq!(s.read_chunk(&ha).unwrap(), a);
        assert_eq!(s.read_chunk(&hb).unwrap(), b);
        let stored = s.get_chunk_raw(&hb).unwrap().unwrap();
        assert_eq!(stored[0], 1);
        assert_eq!(&stored[5..], &zb[..]);
        // Values in blob files after a flush, and in the memtable before: both exact.
        s.flush().unwrap();
        let absent = [9u8; 32];
        assert_eq!(s.has_chunks(&[ha, absent, hb]).unwrap(), vec![true, false, true]);
        assert_eq!(s.read_chunk(&hb).unwrap(), b);
        assert_eq!(s.put_chunk(&ha, raw(&a)).unwrap(), 0);
        assert_eq!(s.get_chunk_raw(&absent).unwrap(), None);
        // Bulk chunks (no WAL) read back the same and are flushed by the next commit.
        let c: Vec<u8> = (0..4096u32).map(|i| (i % 7) as u8).collect();
        let hc = *blake3::hash(&c).as_bytes();
        assert_eq!(s.put_chunk_bulk(&hc, raw(&c)).unwrap(), 4096 + 5);
        assert_eq!(s.read_chunk(&hc).unwrap(), c);
        assert!(s.inner_bulk_pending());
        s.make_bulk_durable().unwrap();
        assert!(!s.inner_bulk_pending());
    }

    #[test]
    fn write_frame_stores_chunks_and_entries_or_nothing() {
        use crate::ChunkVersion;
        let (_dir, s) = open_temp();
        let a = vec![1u8; 4096];
        let b = vec![2u8; 4096];
        let (ha, hb) = (*blake3::hash(&a).as_bytes(), *blake3::hash(&b).as_bytes());
        // The same content twice in a frame is stored once; a zero entry needs no chunk.
        let versions = [(0, 0, ChunkVersion::Data(ha)), (0, 1, ChunkVersion::Data(ha)), (0, 2, ChunkVersion::Zero)];
        let written = s.write_frame(1, 1, &[(ha, raw(&a)), (ha, raw(&a))], &versions, true).unwrap();
        assert_eq!(written, [4096 + 5, 0]);
        assert_eq!(s.version_at(1, 0, 1, 1).unwrap(), Some((1, ChunkVersion::Data(ha))));
        assert_eq!(s.read_chunk(&ha).unwrap(), a);
        // A stored hash may be named without its bytes; a hash neither stored nor in the
        // frame refuses the whole frame: neither its chunks nor its entries are written.
        let known = [(0, 3, ChunkVersion::Data(ha))];
        assert_eq!(s.write_frame(1, 1, &[], &known, false).unwrap(), Vec::<u64>::new());
        let absent = [7u8; 32];
        let bad = [(0, 4, ChunkVersion::Data(hb)), (0, 5, ChunkVersion::Data(absent))];
        let e = s.write_frame(1, 1, &[(hb, raw(&b))], &bad, false).unwrap_err();
        assert!(matches!(&e, StoreError::MissingChunk { hash } if *hash == hash_hex(&absent)), "{e:?}");
        assert_eq!(s.has_chunks(&[hb]).unwrap(), [false]);
        assert_eq!(s.version_at(1, 0, 4, 1).unwrap(), None);
        // A refused header stores nothing either.
        let short = StoredChunk { compressed: false, raw_len: 9, payload: b"x" };
        assert!(s.write_frame(1, 1, &[(hb, short)], &[(0, 6, ChunkVersion::Data(hb))], false).is_err());
        assert_eq!(s.version_at(1, 0, 6, 1).unwrap(), None);
    }

    #[test]
    fn read_chunk_detects_corruption() {
        let (_dir, s) = open_temp();
        let good = vec![1u8; 4096];
        let hash = *blake3::hash(&good).as_bytes();
        let mut bad = good.clone();
        bad[100] ^= 1;
        s.put_chunk(&hash, raw(&bad)).unwrap();
        s.flush().unwrap();
        match s.read_chunk(&hash).unwrap_err() {
            StoreError::Corrupt { hash: h, reason } => {
                assert_eq!(h, hash_hex(&hash));
                assert!(reason.contains("hash mismatch"), "{reason}");
            }
            e => panic!("expected Corrupt, got {e:?}"),
        }
    }

    #[test]
    fn read_chunk_refuses_bad_zstd_and_lengths() {
        let (_dir, s) = open_temp();
        let data = vec![3u8; 8192];
        let hash = *blake3::hash(&data).as_bytes();
        let z = drpair_codec::compress_at(1, &data).unwrap();
        // Header claims fewer bytes than the payload decompresses to: refused, not trusted.
        let short = StoredChunk { compressed: true, raw_len: 100, payload: &z };
        s.put_chunk(&hash, short).unwrap();
        let e = s.read_chunk(&hash).unwrap_err();
        assert!(matches!(e, StoreError::Decompress { .. }), "{e:?}");
        let other = [5u8; 32];
        let garbage = StoredChunk { compressed: true, raw_len: 100, payload: b"not zstd" };
        s.put_chunk(&other, garbage).unwrap();
        assert!(matches!(s.read_chunk(&other).unwrap_err(), StoreError::Decompress { .. }));
        // Raw payload whose length disagrees with the header is refused before storing.
        let e = s.put_chunk(&other, StoredChunk { compressed: false, raw_len: 9, payload: b"x" }).unwrap_err();
        assert!(e.to_string().starts_with(&format!("chunk {}:", hash_hex(&other))), "{e}");
        let e = s.put_chunk(&other, StoredChunk { compressed: true, raw_len: MAX_RAW_LEN + 1, payload: b"x" });
        assert!(e.is_err());
    }

    #[test]
    fn has_verified_chunks_deletes_damaged_chunks_so_they_are_stored_again() {
        for flush in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let s = Store::open(dir.path()).unwrap();
            // The fifth chunk is never stored.
            let (good, bad, unzstd, bad_header) = (0, 1, 2, 3);
            let contents: Vec<Vec<u8>> = (0..5u8).map(|i| vec![i; 4096]).collect();
            let hashes: Vec<Hash> = contents.iter().map(|c| *blake3::hash(c).as_bytes()).collect();
            s.put_chunk(&hashes[good], raw(&contents[good])).unwrap();
            // Damaged values written straight to the column family, in the stored format.
            let mut flipped = contents[bad].clone();
            flipped[7] ^= 0x10;
            let damaged = [
                (bad, raw(&flipped).encode()),
                (unzstd, StoredChunk { compressed: true, raw_len: 4096, payload: b"not zstd" }.encode()),
                (bad_header, vec![9, 0, 16, 0, 0, 1, 2, 3]),
            ];
            for (i, value) in &damaged {
                s.db().put_cf(s.cf(CF_CHUNKS), hashes[*i], value).unwrap();
            }
            if flush {
                s.flush().unwrap();
            }
            assert_eq!(s.has_chunks(&hashes).unwrap(), [true, true, true, true, false]);
            assert_eq!(s.has_verified_chunks(&hashes).unwrap(), [true, false, false, false, false], "flush {flush}");
            assert_eq!(s.has_chunks(&hashes).unwrap(), [true, false, false, false, false], "damaged ones deleted");
            assert!(s.has_verified_chunks(&[]).unwrap().is_empty());
            // The deletion is durable, and the same hashes shipped again are stored fresh.
            drop(s);
            let s = Store::open(dir.path()).unwrap();
            assert_eq!(s.has_chunks(&hashes).unwrap(), [true, false, false, false, false]);
            for i in [bad, unzstd, bad_header] {
                assert_eq!(s.put_chunk(&hashes[i], raw(&contents[i])).unwrap(), 4096 + 5);
                assert_eq!(s.read_chunk(&hashes[i]).unwrap(), contents[i]);
            }
            assert_eq!(s.has_verified_chunks(&hashes).unwrap(), [true, true, true, true, false]);
        }
    }

    #[test]
    fn missing_chunk_and_bad_header() {
        let (_dir, s) = open_temp();
        let h = [1u8; 32];
        let e = s.read_chunk(&h).unwrap_err();
        assert!(matches!(e, StoreError::MissingChunk { .. }));
        assert_eq!(e.to_string(), format!("chunk {}: not in the store", hash_hex(&h)));
        assert!(StoredChunk::parse(&h, &[0, 1]).is_err());
        assert!(StoredChunk::parse(&h, &[9, 0, 0, 0, 0]).is_err());
        let ok = StoredChunk::parse(&h, &[0, 1, 0, 0, 0, 42]).unwrap();
        assert_eq!((ok.compressed, ok.raw_len, ok.payload), (false, 1, &[42u8][..]));
    }
}
