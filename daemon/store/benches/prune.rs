//! Store benchmark for retention, on real zstd-compressed 64 KiB chunks of semi-compressible
//! data (half random, half drawn from a small vocabulary: zstd level 1 keeps about 67%):
//!
//! (a) stored bytes per retained point: a 4 GiB disk baseline, then points each rewriting 1%
//!     of its chunks with new content; each point's cost (`pair_storage`, and the growth of
//!     the files on disk) against the zstd size of the data it changed (goal ≤ 1.1×);
//! (b) pruning 10,000 points and reclaiming their space, in two stores ~4× apart in size:
//!     11,000 small points (3 chunks of a 16-chunk journal area each, mostly-zero blocks), of
//!     which every 11th stays and the 10,000 others are removed; time of `remove_points` +
//!     `reclaim` per version entry deleted, in both stores (goal: the same, i.e. the time
//!     follows what is deleted, not the store size). `compact_chunks` (space back on disk)
//!     is timed too.
//!
//! Plain `main` (harness = false): `cargo bench --offline -p drpair-store --bench prune`.
//! `DRPAIR_BENCH_SCALE` (default 1) scales every count for quick runs; `DRPAIR_BENCH_DIR`
//! (default /var/tmp) holds the stores, deleted at the end. Results are printed as
//! `RESULT key value` lines for `benches/prune.sh`.

use drpair_store::{ChunkVersion, PairId, RecoveryPoint, Store, StoredChunk};
use drpair_types::{Consistency, PointKind, PointSizes};
use std::path::Path;
use std::time::Instant;

const CHUNK: usize = 64 << 10;
const CHUNK_U32: u32 = 64 << 10;
/// Chunks of a 4 GiB disk.
const DISK_CHUNKS: u64 = 65_536;
/// Chunks per write batch / baseline epoch slice.
const SLICE: u64 = 1024;
/// Points of (a), each rewriting 1% of the disk.
const CHANGE_POINTS: u64 = 10;
/// Small points of (b): every `KEEP_EVERY`-th is kept, the others removed.
const SMALL_POINTS: u64 = 11_000;
const KEEP_EVERY: u64 = 11;
/// Chunks each small point rewrites, within a journal area of `HOT` chunks.
const SMALL_WRITES: u64 = 3;
const HOT: u64 = 16;
const ZSTD_LEVEL: i32 = 1;

/// xorshift64*, seeded.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Semi-compressible content: each 8-byte word is random or one of 256 vocabulary words.
fn fill(buf: &mut [u8], seed: u64) {
    let mut r = Rng::new(seed);
    for word in buf.chunks_exact_mut(8) {
        let x = r.next();
        let w = if x >> 63 == 0 { x } else { (x & 0xFF).wrapping_mul(0x0101_0101_0101_0101) ^ 0x2020_6173_6520_7468 };
        word.copy_from_slice(&w.to_le_bytes());
    }
}

/// A journal-like block: 4 KiB of content, the rest zeros.
fn fill_sparse(buf: &mut [u8], seed: u64) {
    buf.fill(0);
    fill(&mut buf[..4096], seed);
}

/// A chunk ready to store: hash, raw length, zstd payload.
struct Prepared {
    hash: [u8; 32],
    payload: Vec<u8>,
}

fn prepare(seeds: &[u64], sparse: bool) -> Vec<Prepared> {
    let work = |seeds: &[u64]| -> Vec<Prepared> {
        let mut buf = vec![0u8; CHUNK];
        seeds
            .iter()
            .map(|&seed| {
                if sparse {
                    fill_sparse(&mut buf, seed)
                } else {
                    fill(&mut buf, seed)
                }
                let hash = *blake3::hash(&buf).as_bytes();
                let payload = zstd::bulk::compress(&buf, ZSTD_LEVEL).expect("zstd");
                Prepared { hash, payload }
            })
            .collect()
    };
    // Two cores: hash and compress in two halves.
    let (a, b) = seeds.split_at(seeds.len() / 2);
    std::thread::scope(|t| {
        let h = t.spawn(|| work(a));
        let mut out = work(b);
        let mut first = h.join().expect("worker");
        first.append(&mut out);
        first
    })
}

fn store_chunks(s: &Store, chunks: &[Prepared], bulk: bool) -> u64 {
    let mut compressed = 0;
    for c in chunks {
        let chunk = StoredChunk { compressed: true, raw_len: CHUNK_U32, payload: &c.payload };
        if bulk {
            s.put_chunk_bulk(&c.hash, chunk).expect("put chunk");
        } else {
            s.put_chunk(&c.hash, chunk).expect("put chunk");
        }
        compressed += c.payload.len() as u64;
    }
    compressed
}

fn pair_id() -> PairId {
    PairId::new("bench").expect("pair id")
}

fn point(epoch: u64) -> RecoveryPoint {
    RecoveryPoint {
        id: epoch,
        pair_id: pair_id(),
        epoch,
        lineage: uuid::Uuid::nil(),
        time: "2025-01-01T00:00:00Z".into(),
        time_unix_ms: 1_735_689_600_000 + epoch,
        committed_unix_ms: 1_735_689_600_000 + epoch,
        kind: if epoch == 1 { PointKind::Baseline } else { PointKind::Scheduled },
        consistency: Consistency::CrashConsistent,
        pinned: false,
        verified_at: None,
        tested_at: None,
        sizes: PointSizes::default(),
        quiesce: None,
        full_pass: false,
        damage: None,
        read_window_ms: None,
        window_exceeded: false,
    }
}

fn commit(s: &Store, epoch: u64) {
    s.commit_point(1, &point(epoch), &pair_id(), &serde_json::json!({ "epoch": epoch })).expect("commit");
}

/// Writes and commits `epoch`: chunk `positions[i]` gets `chunks[i]`.
fn write_epoch(s: &Store, epoch: u64, positions: &[u64], chunks: &[Prepared]) {
    let items: Vec<_> = positions.iter().zip(chunks).map(|(&p, c)| (0u32, p, ChunkVersion::Data(c.hash))).collect();
    s.write_versions(1, epoch, &items).expect("write versions");
}

fn dir_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| d.filter_map(Result::ok).filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// Bytes this process has caused to be written to storage (`/proc/self/io`).
fn written_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    io.lines().find_map(|l| l.strip_prefix("write_bytes: ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// CPU seconds used by this process so far (user + system, `/proc/self/stat`, 100 Hz ticks):
/// less disturbed than wall time by other work on the machine.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which ends with the last ')'): utime and stime are
    // the 12th and 13th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest.split_whitespace().filter_map(|x| x.parse().ok()).collect();
    f.get(10..12).map_or(0.0, |t| (t[0] + t[1]) as f64 / 100.0)
}

/// Waits until background flushes and compactions stop writing (no write for a second).
fn settle() {
    let mut last = written_bytes();
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
        let now = written_bytes();
        if now == last {
            return;
        }
        last = now;
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

/// A store holding a baseline of `disk_chunks` chunks and `points` points of 1% each;
/// returns the next epoch.
fn build(s: &Store, disk_chunks: u64, points: u64, report: bool) -> u64 {
    let t0 = Instant::now();
    let written0 = written_bytes();
    let mut raw = 0u64;
    let mut compressed = 0u64;
    let mut first = 0;
    while first < disk_chunks {
        let n = SLICE.min(disk_chunks - first);
        let seeds: Vec<u64> = (first..first + n).collect();
        let chunks = prepare(&seeds, false);
        compressed += store_chunks(s, &chunks, true);
        raw += n * CHUNK as u64;
        let positions: Vec<u64> = (first..first + n).collect();
        write_epoch(s, 1, &positions, &chunks);
        first += n;
    }
    commit(s, 1);
    s.flush().expect("flush");
    settle();
    let written = written_bytes() - written0;
    if report {
        println!(
            "baseline: {disk_chunks} chunks, {:.0} MiB raw, {:.0} MiB zstd-{ZSTD_LEVEL} ({:.1}%), stored in {:.1}s, \
             {:.0} MiB written to disk ({:.2}x the compressed data)",
            mib(raw),
            mib(compressed),
            100.0 * compressed as f64 / raw as f64,
            t0.elapsed().as_secs_f64(),
            mib(written),
            written as f64 / compressed as f64
        );
        println!("RESULT baseline_write_amp {:.3}", written as f64 / compressed as f64);
    }
    let before = s.approximate_sizes().expect("sizes");
    let per_point = (disk_chunks / 100).max(1);
    let mut rng = Rng::new(disk_chunks);
    let mut changed_zstd = Vec::new();
    for p in 0..points {
        let epoch = 2 + p;
        let mut positions = std::collections::BTreeSet::new();
        while (positions.len() as u64) < per_point {
            positions.insert(rng.next() % disk_chunks);
        }
        let positions: Vec<u64> = positions.into_iter().collect();
        let seeds: Vec<u64> = (0..per_point).map(|i| (epoch << 32) + i).collect();
        let chunks = prepare(&seeds, false);
        changed_zstd.push(store_chunks(s, &chunks, false));
        write_epoch(s, epoch, &positions, &chunks);
        commit(s, epoch);
    }
    s.flush().expect("flush");
    if report && points > 0 {
        let after = s.approximate_sizes().expect("sizes");
        let storage = s.pair_storage(1).expect("storage");
        let zstd_total: u64 = changed_zstd.iter().sum();
        let stored_total: u64 = (2..2 + points).map(|e| storage.per_point[&e].stored_bytes).sum();
        let worst = changed_zstd
            .iter()
            .zip(2..)
            .map(|(&zstd, e)| storage.per_point[&e].stored_bytes as f64 / zstd as f64)
            .fold(0.0, f64::max);
        let blob_growth = after.chunk_blob_bytes - before.chunk_blob_bytes;
        let disk_growth = after.disk_bytes().saturating_sub(before.disk_bytes());
        println!(
            "(a) {points} points of 1% ({per_point} chunks): zstd of the changed data {:.2} MiB per point; \
             stored (pair_storage) {:.2} MiB per point; blob files grew {:.2} MiB per point, blob+sst files {:.2} MiB",
            mib(zstd_total / points),
            mib(stored_total / points),
            mib(blob_growth / points),
            mib(disk_growth / points)
        );
        println!("RESULT a_points {points}");
        println!("RESULT a_chunks_per_point {per_point}");
        println!("RESULT a_zstd_bytes_per_point {}", zstd_total / points);
        println!("RESULT a_stored_bytes_per_point {}", stored_total / points);
        println!("RESULT a_ratio_stored {:.4}", stored_total as f64 / zstd_total as f64);
        println!("RESULT a_ratio_stored_worst_point {worst:.4}");
        println!("RESULT a_ratio_blob_files {:.4}", blob_growth as f64 / zstd_total as f64);
        println!("RESULT a_ratio_disk_files {:.4}", disk_growth as f64 / zstd_total as f64);
    }
    2 + points
}

/// (b) on one store: commits the small points after `next`, removes all but every 11th
/// (and the newest), reclaims and compacts, reporting under `label`.
fn prune_run(s: &Store, label: &str, next: u64, small_points: u64) {
    let t0 = Instant::now();
    let mut rng = Rng::new(0x5EED);
    for i in 0..small_points {
        let epoch = next + i;
        let mut positions = std::collections::BTreeSet::new();
        while (positions.len() as u64) < SMALL_WRITES {
            positions.insert(rng.next() % HOT);
        }
        let positions: Vec<u64> = positions.into_iter().collect();
        let seeds: Vec<u64> = (0..SMALL_WRITES).map(|k| (1 << 62) + epoch * 16 + k).collect();
        let chunks = prepare(&seeds, true);
        store_chunks(s, &chunks, false);
        write_epoch(s, epoch, &positions, &chunks);
        commit(s, epoch);
    }
    let newest = next + small_points;
    let last = prepare(&[u64::MAX, u64::MAX - 1], true);
    store_chunks(s, &last, false);
    write_epoch(s, newest, &[HOT, HOT + 1], &last);
    commit(s, newest);
    s.flush().expect("flush");
    let built = t0.elapsed().as_secs_f64();
    let sizes = s.approximate_sizes().expect("sizes");
    let points = s.list_points(1).expect("points").len();
    let entries = s.pair_storage(1).expect("storage").total.versions;
    println!(
        "(b) {label}: store {:.0} MiB on disk ({:.0} MiB chunk blobs), {points} points, {entries} version entries \
         (small points committed in {built:.1}s)",
        mib(sizes.disk_bytes()),
        mib(sizes.chunk_blob_bytes)
    );
    let ids: Vec<u64> = (next..newest).filter(|e| (e - next) % KEEP_EVERY != KEEP_EVERY - 1).collect();
    let cpu0 = cpu_seconds();
    let t1 = Instant::now();
    let pruned = s.remove_points(1, &ids).expect("remove points");
    let t_prune = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let reclaimed = s.reclaim().expect("reclaim");
    let t_reclaim = t2.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    s.flush().expect("flush");
    let before_compact = s.approximate_sizes().expect("sizes");
    let t3 = Instant::now();
    s.compact_chunks().expect("compact");
    let t_compact = t3.elapsed().as_secs_f64();
    s.flush().expect("flush");
    let after = s.approximate_sizes().expect("sizes");
    assert!(!pruned.interrupted);
    assert_eq!(pruned.points, ids.len() as u64);
    let per_version_us = 1e6 * (t_prune + t_reclaim) / pruned.versions as f64;
    let cpu_per_version_us = 1e6 * cpu / pruned.versions as f64;
    println!(
        "(b) {label}: removed {} points, {} versions deleted of {} examined in {t_prune:.2}s; reclaim: {} candidates, \
         {} chunks, {:.1} MiB freed in {t_reclaim:.2}s; {per_version_us:.1} us per version deleted ({cpu_per_version_us:.1} us CPU); \
         compact_chunks {t_compact:.2}s: chunk blobs {:.1} -> {:.1} MiB",
        pruned.points,
        pruned.versions,
        pruned.examined,
        reclaimed.candidates,
        reclaimed.chunks_deleted,
        mib(reclaimed.bytes_freed),
        mib(before_compact.chunk_blob_bytes),
        mib(after.chunk_blob_bytes)
    );
    for (k, v) in [
        ("disk_bytes", sizes.disk_bytes() as f64),
        ("entries", entries as f64),
        ("points", points as f64),
        ("removed_points", pruned.points as f64),
        ("versions_deleted", pruned.versions as f64),
        ("examined", pruned.examined as f64),
        ("chunks_deleted", reclaimed.chunks_deleted as f64),
        ("bytes_freed", reclaimed.bytes_freed as f64),
        ("prune_seconds", t_prune),
        ("reclaim_seconds", t_reclaim),
        ("us_per_version", per_version_us),
        ("cpu_seconds", cpu),
        ("cpu_us_per_version", cpu_per_version_us),
        ("compact_seconds", t_compact),
        ("blob_bytes_before_compact", before_compact.chunk_blob_bytes as f64),
        ("blob_bytes_after_compact", after.chunk_blob_bytes as f64),
    ] {
        println!("RESULT b_{label}_{k} {v}");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    let scale: f64 = std::env::var("DRPAIR_BENCH_SCALE").ok().and_then(|v| v.parse().ok()).unwrap_or(1.0);
    let root = std::env::var("DRPAIR_BENCH_DIR").unwrap_or_else(|_| "/var/tmp".into());
    // A small positive factor: the product fits.
    #[allow(clippy::cast_possible_truncation)]
    let scaled = |n: u64| ((n as f64 * scale) as u64).max(100);
    let big_chunks = scaled(DISK_CHUNKS);
    let small_chunks = (big_chunks / 4).max(100);
    let small_points = scaled(SMALL_POINTS);
    let t0 = Instant::now();
    println!(
        "drpair store prune benchmark: scale {scale}, {} cores, stores under {root}",
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    // Small store first: a baseline of a quarter of the disk, the same history.
    {
        let dir = tempfile::Builder::new().prefix("drpair-bench-prune-").tempdir_in(&root).expect("temp dir");
        let s = Store::open(dir.path()).expect("open");
        let next = build(&s, small_chunks, CHANGE_POINTS, false);
        prune_run(&s, "small", next, small_points);
        println!("RESULT b_small_dir_bytes {}", dir_bytes(dir.path()));
    }
    {
        let dir = tempfile::Builder::new().prefix("drpair-bench-prune-").tempdir_in(&root).expect("temp dir");
        let s = Store::open(dir.path()).expect("open");
        let next = build(&s, big_chunks, CHANGE_POINTS, true);
        prune_run(&s, "large", next, small_points);
        println!("RESULT b_large_dir_bytes {}", dir_bytes(dir.path()));
    }
    println!("RESULT total_seconds {:.1}", t0.elapsed().as_secs_f64());
}
