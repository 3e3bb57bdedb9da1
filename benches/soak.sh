#!/usr/bin/env bash
# Soak: 100 cycles (CYCLES=N for another count) of a random fault (link cut, stall,
# corruption, kill -9 of the agent, kill -9 of the standby, standby restart) during writes to
# a mounted ext4 on a loop device, through the fault-injecting proxy. Each cycle's point must
# equal the frozen device; every stored chunk is verified at the end. Prints one SOAK line:
# cycles, faults by kind, lost acknowledged writes (0), unreadable points (0), median and max
# time to converge, max lag. Not in CI (a 10-cycle run of the same test is). Needs root.
#   bash benches/soak.sh            # 100 cycles, random seed
#   CYCLES=20 SEED=7 bash benches/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-/var/cache/drpair-target}
CARGO_TARGET_DIR=$target cargo build --release --locked --bins
seed=${SEED:-$RANDOM}
DRPAIR_BIN_DIR=$target/release DRPAIR_SOAK_CYCLES=${CYCLES:-100} DRPAIR_SOAK_SEED=$seed \
  CARGO_TARGET_DIR=$target cargo test --release --locked -p drpair-e2e --test soak -- --nocapture 2>&1 |
  grep -E "^SOAK|cycle [0-9]+/|panicked|FAILED|test result"
