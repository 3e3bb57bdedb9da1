#!/usr/bin/env bash
# Runs every test of drpair: unit and property tests of each crate, then the end-to-end
# scenarios with real processes, real rocksdb and real loop devices (needs root).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check || { echo "test: run cargo fmt --all" >&2; exit 1; }
# The layout's rules (ARCHITECTURE.md, "Where things live"): no import cycle between the
# standby's modules, a CLI without the daemon, no source file over 800 lines.
python3 scripts/standby-layers.py || { echo "test: import cycle in daemon/src/standby" >&2; exit 1; }
if cargo tree --locked -p drpair -e normal | grep -E '\b(drpaird|axum) v'; then
  echo "test: the CLI (drpair) must not depend on drpaird or axum" >&2; exit 1
fi
long=$(find daemon cli tests -name '*.rs' -not -path '*/target/*' -exec wc -l {} + | awk '$2 != "total" && $1 > 800 {print}')
if [ -n "$long" ]; then echo "test: source files over 800 lines:" >&2; echo "$long" >&2; exit 1; fi
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export DRPAIR_BIN_DIR="$target/release"
cargo test --release --locked --workspace -- --test-threads=2
