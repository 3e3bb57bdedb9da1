#!/usr/bin/env bash
# Runs every test of drpair: unit and property tests of each crate, then the end-to-end
# scenarios with real processes, real rocksdb and real loop devices (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check || { echo "test: run cargo fmt --all" >&2; exit 1; }
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export DRPAIR_BIN_DIR="$target/release"
cargo test --release --locked --workspace -- --test-threads=2
