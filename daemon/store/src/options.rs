//! rocksdb options: memory bounded for a small standby (under 512 MiB RSS while ingesting
//! 4 GiB), no rocksdb-level compression (none is compiled in; chunks arrive zstd-compressed
//! already), chunks in BlobDB blob files.
//!
//! Memory budget: block cache 64 MiB (index and filter blocks included) + memtables capped at
//! 128 MiB in total across column families + table cache for at most 512 open files.

use rocksdb::{BlockBasedOptions, Cache, ColumnFamilyDescriptor, DBCompressionType, Options};

pub(crate) const CF_CHUNKS: &str = "chunks";
pub(crate) const CF_VERSIONS: &str = "versions";
pub(crate) const CF_PENDING: &str = "pending";
pub(crate) const CF_POINTS: &str = "points";
pub(crate) const CF_PAIRS: &str = "pairs";
pub(crate) const CF_META: &str = "meta";
pub(crate) const CF_EPOCHS: &str = "epochs";
pub(crate) const CF_REFS: &str = "refs";
pub(crate) const CF_RECLAIM: &str = "reclaim";
pub(crate) const CF_SIZES: &str = "sizes";
/// Where each chunk lies in the object store's packs (`store = "s3"`; empty otherwise).
pub(crate) const CF_PACKED: &str = "packed";
/// The pack ledger: per pack, its live chunks and bytes (`packs/ledger.rs`).
pub(crate) const CF_PACKS: &str = "packs";

/// Every column family the store opens, in a fixed order.
pub(crate) const ALL_CFS: [&str; 12] = [
    CF_CHUNKS,
    CF_VERSIONS,
    CF_PENDING,
    CF_POINTS,
    CF_PAIRS,
    CF_META,
    CF_EPOCHS,
    CF_REFS,
    CF_RECLAIM,
    CF_SIZES,
    CF_PACKED,
    CF_PACKS,
];

const MIB: usize = 1 << 20;
/// Block cache shared by every column family.
const BLOCK_CACHE_BYTES: usize = 64 * MIB;
/// Cap on the memtables of all column families together.
const ALL_MEMTABLES_BYTES: usize = 256 * MIB;

/// Options of the database as a whole.
pub(crate) fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    // Bounds memory: rocksdb flushes the largest memtable once all of them together hold
    // this much, whatever the per-CF write buffer sizes add up to.
    o.set_db_write_buffer_size(ALL_MEMTABLES_BYTES);
    // Two cores: one flush and one compaction at a time, leaving CPU for verifying chunks
    // (a second flush thread measured no gain).
    o.set_max_background_jobs(2);
    // Bounds the table cache (one open table reader per file, with its metadata).
    o.set_max_open_files(512);
    // The WAL is shared by all column families: without a cap, a rarely written CF (points,
    // pairs) would keep every WAL file alive and replay after a crash would grow unbounded.
    // Small epochs write their chunk data through the WAL, so the cap is also disk space the
    // store holds twice: 64 MiB (was 256, which held 120 MiB of a 512 MiB data filesystem in
    // tests/low_disk_delete.rs and made a stopped pair's resume fail at the reserve).
    o.set_max_total_wal_size(64 * MIB as u64);
    // Flushes (which write the blob files holding chunk data) and compactions bypass the page
    // cache: measured here, O_DIRECT writes reached 1.3 GB/s where buffered writes with
    // fdatasync reached 284 MB/s, and the page cache gains nothing from data written once.
    o.set_use_direct_io_for_flush_and_compaction(true);
    // Write back SST and blob files in 1 MiB steps instead of large bursts at fsync.
    o.set_bytes_per_sync(MIB as u64);
    o.set_wal_bytes_per_sync(MIB as u64);
    // Keep the info LOG small on an appliance.
    o.set_max_log_file_size(8 * MIB);
    o.set_keep_log_file_num(4);
    // No compressor is compiled into rocksdb (default features off).
    o.set_compression_type(DBCompressionType::None);
    o.set_wal_compression_type(DBCompressionType::None);
    o
}

/// Options shared by every column family; `cache` is the one block cache.
fn cf_base(cache: &Cache, write_buffer: usize, bloom: bool) -> (Options, BlockBasedOptions) {
    let mut t = BlockBasedOptions::default();
    // One cache for all column families, so the total is bounded.
    t.set_block_cache(cache);
    // Index and filter blocks live in (and are bounded by) the block cache instead of
    // growing outside it with the number of files.
    t.set_cache_index_and_filter_blocks(true);
    // ... but those of L0 files stay pinned: they are read on every lookup.
    t.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if bloom {
        // ~1% false positives: most `has_chunks` lookups of new data are for absent keys.
        t.set_bloom_filter(10.0, false);
    }
    let mut o = Options::default();
    // No compressor is compiled into rocksdb (default features off); set it everywhere so
    // no level ever asks for one.
    o.set_compression_type(DBCompressionType::None);
    o.set_bottommost_compression_type(DBCompressionType::None);
    // Bounded memtables: at most two per CF (one being written, one being flushed); a
    // writer waits for the flush instead of piling up memory. `chunks` allows more (below).
    o.set_write_buffer_size(write_buffer);
    o.set_max_write_buffer_number(2);
    (o, t)
}

/// Descriptors of every column family.
pub(crate) fn cf_descriptors(cache: &Cache) -> Vec<ColumnFamilyDescriptor> {
    ALL_CFS
        .iter()
        .map(|&name| {
            let opts = match name {
                CF_CHUNKS => chunks_options(cache),
                CF_VERSIONS => small_value_options(cache, 32 * MIB),
                CF_PENDING | CF_EPOCHS => small_value_options(cache, 16 * MIB),
                CF_REFS => small_value_options(cache, 32 * MIB),
                CF_SIZES | CF_PACKED | CF_PACKS => point_lookup_options(cache, 8 * MIB),
                _ => small_value_options(cache, 4 * MIB),
            };
            ColumnFamilyDescriptor::new(name, opts)
        })
        .collect()
}

/// `chunks`: large values (up to 4 MiB, typically tens of KiB) in blob files.
fn chunks_options(cache: &Cache) -> Options {
    let (mut o, t) = cf_base(cache, 48 * MIB, true);
    // During an initial sync chunks arrive faster than one memtable flushes to a blob file;
    // with only two memtables rocksdb stopped writes outright (measured on a 4 GiB baseline).
    // Four of 48 MiB absorb the bursts; 192 MiB at most, within the standby's budget.
    o.set_max_write_buffer_number(4);
    o.set_block_based_table_factory(&t);
    // Values go to blob files, so compactions rewrite only the small key → blob index
    // entries, not the chunk bytes (write amplification ~1 for 4 GiB of chunks).
    o.set_enable_blob_files(true);
    // Tiny values (highly compressible chunks) stay inline: a blob reference is ~20 bytes.
    o.set_min_blob_size(512);
    // Few, large blob files: fewer open files and less metadata.
    o.set_blob_file_size(256 * MIB as u64);
    // Chunks are zstd-compressed by the agent already; none is compiled in anyway.
    o.set_blob_compression_type(DBCompressionType::None);
    // No blob garbage collection in background compactions: it relocates the live blobs of
    // the oldest quarter of the blob files whenever a compaction meets them, whether they
    // hold garbage or not. During a 4 GiB baseline that wrote 2.03x the chunk bytes to disk
    // (1.02x without; benches/prune.sh); afterwards, rocksdb's age-based choice fits a
    // backup store badly: its oldest files (the baseline) stay mostly live for good, while
    // pruning frees space anywhere. Space reclaim deletes
    // chunks; a blob file holding only garbage is dropped at the next compaction, and
    // `Store::compact_chunks` turns collection on for one compaction of every file (age
    // cutoff 1, no forced collection) once enough of them is garbage.
    o.set_enable_blob_gc(false);
    o.set_blob_gc_age_cutoff(1.0);
    o.set_blob_gc_force_threshold(1.0);
    o
}

/// `sizes`: small values read by key (storage report, reclaim), with a bloom filter.
fn point_lookup_options(cache: &Cache, write_buffer: usize) -> Options {
    let (mut o, t) = cf_base(cache, write_buffer, true);
    o.set_block_based_table_factory(&t);
    o
}

/// `versions`, `pending`, `points`, `pairs`, `meta`: small values, read by seeks.
fn small_value_options(cache: &Cache, write_buffer: usize) -> Options {
    // No bloom filter: these column families are read by range seeks, which filters do not
    // help.
    let (mut o, t) = cf_base(cache, write_buffer, false);
    o.set_block_based_table_factory(&t);
    o
}

/// The block cache shared by every column family.
pub(crate) fn block_cache() -> Cache {
    Cache::new_lru_cache(BLOCK_CACHE_BYTES)
}
