#!/usr/bin/env bash
# The failover benchmark (issue "Failover drills, failover and failback"), in one run on one
# machine: materialising a recovery point onto a target block device (`drpair failover`)
# against the same device's raw O_DIRECT write bandwidth (`dd oflag=direct`, 16 MiB blocks,
# the same bytes from the page cache), measured one after the other in this script.
# The disk: 1 GiB of random data (incompressible: every chunk is read back from the store,
# decompressed, blake3-verified and written). The target: a loop device over a file on the
# work directory's filesystem. Needs the release binaries and root (losetup).
#
#   bash benches/failover.sh     (DRPAIR_BENCH_BIN or DRPAIR_BIN_DIR: another directory of release binaries;
#                                 DRPAIR_BENCH_MIB: the disk's size, default 1024)
# Work files go to DRPAIR_BENCH_DIR (default /var/tmp) and are deleted at the end.
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
bin=${DRPAIR_BENCH_BIN:-${DRPAIR_BIN_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release}}
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-failover-bench.XXXXXX")
# The standby's token (the API and the agent present it; agents also pin the standby's TLS
# fingerprint).
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
dev=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "$dev" ] && losetup -d "$dev" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mib=${DRPAIR_BENCH_MIB:-1024}

"$bin/drpaird" standby --data-dir "$work/standby" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" 2>"$work/standby.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/standby/api.addr" ] && break; sleep 0.1; done
export DRPAIR_SERVER="https://$(cat "$work/standby/api.addr")" DRPAIR_CA_FILE="$work/standby/tls/ca.pem"
link=$(cat "$work/standby/link.addr")
drpair() { "$bin/drpair" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

img="$work/source.img"
head -c $((mib << 20)) /dev/urandom >"$img"
"$bin/drpaird" agent --token-file "$work/token" --pair bench --disk "$img" --standby "$link" --standby-fingerprint "$(cat "$work/standby/fingerprint")" --tracker scan \
  --cut-interval 1h --state-dir "$work/agent" 2>"$work/agent.log" &
pids+=($!)
drpair status bench --wait-synced --timeout 10m >/dev/null 2>&1 || {
  sleep 2; drpair status bench --wait-synced --timeout 10m >/dev/null
}

truncate -s "${mib}M" "$work/target.img"
dev=$(losetup -f --show "$work/target.img")

# Baseline: the device's raw O_DIRECT write bandwidth, the source's bytes from the page cache.
cat "$img" >/dev/null
sync
t0=$(date +%s.%N)
dd if="$img" of="$dev" bs=16M oflag=direct conv=fsync status=none
t1=$(date +%s.%N)
blkdiscard "$dev" 2>/dev/null || true
sync

# Failover of the newest point onto the same device.
drpair failover bench --latest --to "$dev" --yes --output json >"$work/failover.json"
fo_s=$(json 'd["elapsed_seconds"]' <"$work/failover.json")
state=$(json 'd["state"]' <"$work/failover.json")
[ "$state" = done ] || { echo "failover ended $state" >&2; cat "$work/failover.json" >&2; exit 1; }
cmp -s "$img" "$dev" || { echo "the failover target differs from the source" >&2; exit 1; }

calc() { python3 -c "print(f'{$1:.${2:-2}f}')"; }
raw_s=$(calc "$t1 - $t0" 3)
cat <<REPORT

== drpair failover benchmark ($(nproc) cores) — $invoked
writing ${mib} MiB (random data) onto a loop device:
    dd oflag=direct (raw)  : ${raw_s}s = $(calc "$mib / $raw_s" 0) MiB/s (baseline)
    drpair failover        : $(calc "$fo_s" 3)s = $(calc "$mib / $fo_s" 0) MiB/s -> ratio $(calc "$raw_s / $fo_s")x (goal >= 0.95)
REPORT
