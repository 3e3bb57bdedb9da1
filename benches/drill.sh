#!/usr/bin/env bash
# The drill benchmark (issue "Failover drills"), in one run on one machine:
#   (a) drill export ready time (request to NBD exports served) for a 1 GiB and an 8 GiB disk:
#       it should not grow with the size (nothing is materialised);
#   (b) the goal of issue 22: sequential reads through a drill's NBD export against reading
#       the exported raw image of the same point, with the same client, each from a cold page
#       cache (`qemu-img convert -O raw` and `nbdcopy`, to a file on the same filesystem);
#       the ratio is the export's throughput over the image file's (goal >= 0.9).
# The 1 GiB disk is random data throughout (every chunk read back, verified and sent: an
# image file with holes would be read by seeking past them, which an NBD client without
# block status cannot do). The 8 GiB disk: 256 MiB of random data, the rest zeros (shipped
# as zero-chunk flags, so its sync takes seconds). Needs the release binaries, qemu-utils and
# libnbd-bin (nbdcopy).
#
#   bash benches/drill.sh        (DRPAIR_BENCH_BIN or DRPAIR_BIN_DIR: another directory of release binaries)
# Work files go to DRPAIR_BENCH_DIR (default /var/tmp) and are deleted at the end.
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
bin=${DRPAIR_BENCH_BIN:-${DRPAIR_BIN_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release}}
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-drill-bench.XXXXXX")
# The standby's token (the API and the agent present it; agents also pin the standby's TLS
# fingerprint).
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin/drpaird" standby --data-dir "$work/standby" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" 2>"$work/standby.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/standby/api.addr" ] && break; sleep 0.1; done
export DRPAIR_SERVER="https://$(cat "$work/standby/api.addr")" DRPAIR_CA_FILE="$work/standby/tls/ca.pem"
link=$(cat "$work/standby/link.addr")
drpair() { "$bin/drpair" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

ready_ms=()
for gib in 1 8; do
  img="$work/disk-${gib}g.img"
  truncate -s "${gib}G" "$img"
  data_mib=$([ "$gib" = 1 ] && echo 1024 || echo 256)
  head -c $((data_mib << 20)) /dev/urandom | dd of="$img" conv=notrunc status=none
  "$bin/drpaird" agent --token-file "$work/token" --pair "bench-${gib}g" --disk "$img" --standby "$link" --standby-fingerprint "$(cat "$work/standby/fingerprint")" --tracker scan \
    --cut-interval 1h --state-dir "$work/agent-${gib}g" 2>"$work/agent-${gib}g.log" &
  pids+=($!)
  drpair status "bench-${gib}g" --wait-synced --timeout 10m >/dev/null 2>&1 || {
    sleep 2; drpair status "bench-${gib}g" --wait-synced --timeout 10m >/dev/null
  }
  # Five drills of the same point; the median ready time.
  times=()
  for _ in 1 2 3 4 5; do
    out=$(drpair drill start "bench-${gib}g" --latest --ttl 10m --output json)
    times+=("$(echo "$out" | json 'd["ready_ms"]')")
    drpair drill stop "$(echo "$out" | json 'd["id"]')" >/dev/null
  done
  ready_ms+=("$(printf '%s\n' "${times[@]}" | sort -g | sed -n 3p)")
done

# (b) on the 1 GiB disk: the drill export against the exported raw image, same clients, each
# read from a cold page cache (the store's files and the image file alike).
drpair points export bench-1g latest --disk 0 --out "$work/exported.raw" >/dev/null 2>&1
out=$(drpair drill start bench-1g --latest --ttl 10m --output json)
uri=$(echo "$out" | json 'd["exports"][0]["uri"]')
cold() { rm -f "$work/copy.raw"; sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || true; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@"; t1=$(date +%s.%N); python3 -c "print(f'{$t1 - $t0:.3f}')"; }
cold; raw_qemu=$(timed qemu-img convert -f raw -O raw "$work/exported.raw" "$work/copy.raw")
cold; nbd_qemu=$(timed qemu-img convert -f raw -O raw "$uri" "$work/copy.raw")
cmp -s "$work/exported.raw" "$work/copy.raw" || { echo "drill export differs from the exported image (qemu-img)" >&2; exit 1; }
cold; raw_nbdcopy=$(timed nbdcopy "$work/exported.raw" "$work/copy.raw")
cold; nbd_nbdcopy=$(timed nbdcopy "$uri" "$work/copy.raw")
cmp -s "$work/exported.raw" "$work/copy.raw" || { echo "drill export differs from the exported image (nbdcopy)" >&2; exit 1; }
drpair drill stop "$(echo "$out" | json 'd["id"]')" >/dev/null

calc() { python3 -c "print(f'{$1:.${2:-2}f}')"; }
line() { echo "    $1: image file ${2}s = $(calc "1024 / $2" 0) MiB/s (baseline), NBD export ${3}s = $(calc "1024 / $3" 0) MiB/s -> ratio $(calc "$2 / $3")x (goal >= 0.9)"; }
cat <<REPORT

== drpair drill benchmark ($(nproc) cores) — $invoked
(a) export ready time (median of 5 drills): 1 GiB ${ready_ms[0]} ms, 8 GiB ${ready_ms[1]} ms -> 8 GiB / 1 GiB = $(calc "${ready_ms[1]} / ${ready_ms[0]}")x (goal ~1: does not grow with the disk)
(b) drill: sequential reads of 1 GiB (random data), cold cache, NBD export / exported image file:
$(line "qemu-img convert -O raw" "$raw_qemu" "$nbd_qemu")
$(line "nbdcopy                " "$raw_nbdcopy" "$nbd_nbdcopy")
REPORT
