#!/usr/bin/env bash
# The prune benchmark (daemon/store/benches/prune.rs), on real zstd-compressed 64 KiB chunks of
# semi-compressible data, against the issue's two numeric goals:
#   (a) stored bytes per retained point for a 1% change of a 4 GiB disk <= 1.1x the compressed
#       changed data: a 4 GiB baseline (65,536 chunks), then 10 points each rewriting 1% of the
#       chunks with new content; each point's stored bytes (the storage report, and the growth
#       of the blob and SST files) against the zstd size of the data it changed;
#   (b) pruning 10,000 points and reclaiming their space takes time proportional to what is
#       deleted, not to the store size: two stores ~4x apart in size (1 GiB and 4 GiB
#       baselines, the same history), each given 11,000 small points (3 chunks of a 16-chunk
#       journal area each); every 11th is kept, the other 10,000 are removed, then reclaimed.
#       Time per version entry deleted, large store against small (goal ~1); wall time, and
#       CPU time (less disturbed by other work on the machine; wall time includes fsyncs).
# Also reported: bytes written to disk for the 4 GiB baseline, and what compact_chunks gives back.
#
#   bash benches/prune.sh                         # full run: 3-4 minutes on 2 cores, ~4.5 GiB in /var/tmp
#   DRPAIR_BENCH_SCALE=0.1 bash benches/prune.sh  # quick run (every count scaled)
# Stores go to DRPAIR_BENCH_DIR (default /var/tmp) and are deleted at the end.
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
log=$(mktemp /tmp/drpair-prune-bench.XXXXXX)
trap 'rm -f "$log"' EXIT
cargo bench -q --locked -p drpair-store --bench prune | tee "$log"

declare -A r
while read -r _ key value; do r[$key]=$value; done < <(grep '^RESULT ' "$log")
calc() { python3 -c "print(f'{$1:.${2:-2}f}')"; }
mib() { calc "${r[$1]} / 1048576" 1; }

cat <<REPORT

== drpair prune benchmark (scale ${DRPAIR_BENCH_SCALE:-1}, $(nproc) cores, ${r[total_seconds]}s) — $invoked
(a) stored bytes per retained point (${r[a_points]} points of ${r[a_chunks_per_point]} chunks = 1%):
    storage report      : $(calc "${r[a_stored_bytes_per_point]} / 1048576") MiB = $(calc "${r[a_ratio_stored]}" 4)x the zstd size of the changed data ($(calc "${r[a_zstd_bytes_per_point]} / 1048576") MiB) (goal <= 1.1); worst point $(calc "${r[a_ratio_stored_worst_point]}" 4)x
    blob files on disk  : $(calc "${r[a_ratio_blob_files]}" 4)x; blob + SST files (with the version index): $(calc "${r[a_ratio_disk_files]}" 4)x
    baseline write      : $(calc "${r[baseline_write_amp]}")x the compressed chunk bytes written to disk for the 4 GiB baseline
(b) prune ${r[b_small_removed_points]} points + reclaim:
    small store         : $(mib b_small_disk_bytes) MiB, ${r[b_small_entries]} version entries: ${r[b_small_versions_deleted]} versions deleted (${r[b_small_examined]} examined) in $(calc "${r[b_small_prune_seconds]}")s + reclaim of ${r[b_small_chunks_deleted]} chunks in $(calc "${r[b_small_reclaim_seconds]}")s = $(calc "${r[b_small_us_per_version]}" 1) us per version deleted ($(calc "${r[b_small_cpu_us_per_version]}" 1) us CPU)
    large store         : $(mib b_large_disk_bytes) MiB ($(calc "${r[b_large_disk_bytes]} / ${r[b_small_disk_bytes]}")x), ${r[b_large_entries]} version entries: ${r[b_large_versions_deleted]} versions deleted (${r[b_large_examined]} examined) in $(calc "${r[b_large_prune_seconds]}")s + reclaim of ${r[b_large_chunks_deleted]} chunks in $(calc "${r[b_large_reclaim_seconds]}")s = $(calc "${r[b_large_us_per_version]}" 1) us per version deleted ($(calc "${r[b_large_cpu_us_per_version]}" 1) us CPU)
    large / small       : $(calc "${r[b_large_us_per_version]} / ${r[b_small_us_per_version]}")x the time per version deleted ($(calc "${r[b_large_cpu_us_per_version]} / ${r[b_small_cpu_us_per_version]}")x the CPU time), for $(calc "${r[b_large_disk_bytes]} / ${r[b_small_disk_bytes]}")x the store size (goal ~1)
    compact_chunks      : small $(calc "${r[b_small_compact_seconds]}")s, chunk blobs $(mib b_small_blob_bytes_before_compact) -> $(mib b_small_blob_bytes_after_compact) MiB; large $(calc "${r[b_large_compact_seconds]}")s, $(mib b_large_blob_bytes_before_compact) -> $(mib b_large_blob_bytes_after_compact) MiB ($(mib b_large_bytes_freed) MiB freed: blob files are rewritten once a quarter of them is garbage)
REPORT
