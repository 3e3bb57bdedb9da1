#!/usr/bin/env bash
# Hostile input against every decoder: at least 100,000 cases each (the test suite runs 256).
# Frames and messages of the link (drpair-wire), the NBD server's handshake and requests
# (drpair-nbd), API JSON bodies and TOML configs (drpaird), sizes from the wire (drpair-types);
# dump images go through qemu-img, so they get a hundredth. A case that panics fails the run.
#
#   bash benches/decoders.sh                 # 100,000 cases per decoder
#   DRPAIR_FUZZ_CASES=1000000 bash benches/decoders.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export DRPAIR_FUZZ_CASES=${DRPAIR_FUZZ_CASES:-100000}
cargo test --release --locked -p drpair-wire -p drpair-nbd -p drpair-types -p drpaird --lib --no-run >/dev/null 2>&1
report=()
run() { # crate filter
  local t0 t1 out
  t0=$(date +%s.%N)
  out=$(cargo test --release --locked -p "$1" --lib "$2" -- --test-threads=2 2>&1) || { echo "$out" >&2; echo "FAILED: $1 $2" >&2; exit 1; }
  t1=$(date +%s.%N)
  local n; n=$(grep -c '^test .* ok$' <<<"$out" || true)
  report+=("$(printf '%-14s %-40s %2d properties  %7.1fs' "$1" "$2" "$n" "$(python3 -c "print($t1 - $t0)")")")
}
run drpair-wire hostile_tests
run drpair-nbd hostile_tests
run drpair-types hostile_tests
run drpaird api::hostile_tests
run drpaird config::hostile_tests
run drpaird standby::dump::image_hostile_tests
echo
echo "== hostile input, $DRPAIR_FUZZ_CASES cases per property (dump images: $((DRPAIR_FUZZ_CASES / 100))), no panic"
printf '%s\n' "${report[@]}"
