#!/usr/bin/env bash
# The compression benchmark (issue 22 part 1): is `--compression auto` never the slower choice?
# For each link (loopback with no proxy; 1 Gbit/s with 2 ms RTT and 100 Mbit/s with 20 ms RTT
# through the harness's fault proxy) the initial sync of a 1 GiB mixed image (~40% random,
# ~30% zero, ~30% text), and on loopback also of /var/cache/drpair-bench/fs-4g.img (a 4 GiB
# ext4 of files from /usr) when it exists, once each with compression off, zstd:1 and auto,
# each against a fresh standby. Prints one COMPRESSION line per link: the three times and
# bytes, auto/best (goal ≤ 1.10) and auto/off bytes (goal ≤ 1.00); and one per auto run with
# the levels it went through. Needs root; about 10 minutes.
#   bash benches/compression.sh
# DRPAIR_COMP_LINKS=loopback,fs,1g,100m picks links; DRPAIR_COMP_SIZE_MIB sizes the mixed
# image; DRPAIR_COMP_LOGS=DIR keeps every run's agent log there.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-/var/cache/drpair-target}
CARGO_TARGET_DIR=$target cargo build --release --locked --bins -q
# auto's level changes are logged at info by drpair_ship; the rest stays at warn.
DRPAIR_LOG=${DRPAIR_LOG:-warn,drpair_ship=info} DRPAIR_BIN_DIR=${DRPAIR_BIN_DIR:-$target/release} CARGO_TARGET_DIR=$target \
  cargo test --release --locked -p drpair-e2e --test compression_bench -- --ignored --nocapture 2>&1 |
  grep -E "^COMPRESSION|panicked|FAILED|test result"
