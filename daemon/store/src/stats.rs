//! Sizes of the store, from rocksdb's own estimates (cheap: no scan).

use crate::options::{ALL_CFS, CF_CHUNKS};
use crate::{Store, StoreError};

/// Approximate sizes of the store, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreSizes {
    /// Blob files of the `chunks` column family: the chunk bytes on disk
    /// (`rocksdb.total-blob-file-size`).
    pub chunk_blob_bytes: u64,
    /// SST files of every column family (`rocksdb.total-sst-files-size`): keys, the version
    /// index, points, and chunks too small for blob files.
    pub sst_bytes: u64,
    /// Estimated live data, without overwritten or deleted entries: SST files plus the live
    /// bytes of blob files (`rocksdb.estimate-live-data-size`, summed over column families).
    pub live_data_bytes: u64,
    /// Data still in memtables, not yet in files (`rocksdb.cur-size-all-mem-tables`).
    pub memtable_bytes: u64,
    /// Bytes held by the shared block cache (`rocksdb.block-cache-usage`).
    pub block_cache_bytes: u64,
}

impl StoreSizes {
    /// Bytes on disk: blob and SST files.
    pub fn disk_bytes(&self) -> u64 {
        self.chunk_blob_bytes + self.sst_bytes
    }
}

impl Store {
    /// Approximate sizes from rocksdb properties.
    pub fn approximate_sizes(&self) -> Result<StoreSizes, StoreError> {
        let prop = |cf: &str, name: &str| -> Result<u64, StoreError> {
            Ok(self.db().property_int_value_cf(self.cf(cf), name)?.unwrap_or(0))
        };
        let mut s = StoreSizes {
            chunk_blob_bytes: prop(CF_CHUNKS, "rocksdb.total-blob-file-size")?,
            block_cache_bytes: prop(CF_CHUNKS, "rocksdb.block-cache-usage")?,
            ..StoreSizes::default()
        };
        for cf in ALL_CFS {
            s.sst_bytes += prop(cf, "rocksdb.total-sst-files-size")?;
            s.live_data_bytes += prop(cf, "rocksdb.estimate-live-data-size")?;
            s.memtable_bytes += prop(cf, "rocksdb.cur-size-all-mem-tables")?;
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use crate::StoredChunk;
    use crate::test_support::open_temp;

    #[test]
    fn sizes_grow_with_chunks() {
        let (_dir, s) = open_temp();
        let before = s.approximate_sizes().unwrap();
        for i in 0..8u8 {
            let data = vec![i; 65536];
            let h = *blake3::hash(&data).as_bytes();
            s.put_chunk(&h, StoredChunk { compressed: false, raw_len: 65536, payload: &data }).unwrap();
        }
        assert!(s.approximate_sizes().unwrap().memtable_bytes > before.memtable_bytes);
        s.flush().unwrap();
        let after = s.approximate_sizes().unwrap();
        assert!(after.chunk_blob_bytes >= 8 * 65536, "{after:?}");
        assert!(after.sst_bytes > 0, "{after:?}");
        assert!(after.disk_bytes() > after.chunk_blob_bytes);
    }
}
