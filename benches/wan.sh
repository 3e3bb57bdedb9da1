#!/usr/bin/env bash
# The WAN benchmark: drpair through a link with a rate cap and a delay (the fault-injecting
# proxy of the test harness), in one run:
#   1. 100 Mbit/s, 50 ms RTT: initial sync of a 4 GiB loop device (512 MiB written) and a 1% catch-up, as
#      bytes on the wire per second against the link's rate, and against rsync (daemon mode,
#      behind the same kind of proxy) copying the file and catching up the same 1%;
#   2. 400 Mbit/s, 20 ms RTT: lag p50/p99/max while fio writes 20 MB/s of random 64 KiB
#      blocks to the tracked loop device (tracefs);
#   3. fio 4 KiB random-write IOPS on that device: no agent (before and after), agent tracking with
#      its pair paused, agent shipping a backlog.
# Prints the WAN lines. Needs root, fio, rsync, tracefs; about 8 minutes.
#   bash benches/wan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-/var/cache/drpair-target}
CARGO_TARGET_DIR=$target cargo build --release --locked --bins -q
DRPAIR_LOG=${DRPAIR_LOG:-warn} DRPAIR_BIN_DIR=$target/release CARGO_TARGET_DIR=$target \
  cargo test --release --locked -p drpair-e2e --test wan_bench -- --ignored --nocapture 2>&1 |
  grep -E "^WAN|panicked|FAILED|test result"
