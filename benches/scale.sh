#!/usr/bin/env bash
# The scale benchmark (issue 22, point 4: "costs that do not grow with the disk"): the same
# changes on a small and a huge sparse disk, protected by a real agent (tracefs tracker on a
# loop device) and standby over loopback, and the huge/small ratio of every cost:
#   - initial sync: time and bytes shipped;
#   - agent: peak RSS (VmHWM) and the change map's size, apparent and allocated (du);
#   - catch-up of 1 GiB of changes (16 x 64 MiB written with O_DIRECT to the loop device,
#     tracked by tracefs, then a manual point with wait): time to the committed point;
#   - a point's commit with nothing changed (median of 5);
#   - GET /api/v1/pairs/{pair} latency (median of 20);
#   - prune of 1,000 points (each one 4 KiB write + a manual point; keep_last 10);
#   - a drill's ready time (median of 3).
# Each disk: a sparse file (truncate) with 1 GiB of random data at the same offsets from the
# start (16 x 64 MiB, one every 512 MiB), the rest holes, attached to a loop device.
#
#   bash benches/scale.sh                              # 8G and 8T
#   DRPAIR_SCALE_SIZES="8G 256G" bash benches/scale.sh # other sizes (first = the reference)
#   DRPAIR_SCALE_BIN=/some/dir bash benches/scale.sh   # other drpaird/drpair binaries
#   DRPAIR_SCALE_POINTS=100 ...                        # fewer points for the prune row
#   DRPAIR_SCALE_SYNC_TIMEOUT=1800 ...                 # give up an initial sync after N s
# Needs root, tracefs and loop devices. Work files go to DRPAIR_BENCH_DIR (default /var/tmp).
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
if [ -z "${DRPAIR_SCALE_BIN:-}" ]; then
  cargo build --release --locked --bins -q
  bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
else
  bin=$DRPAIR_SCALE_BIN
fi
sizes=(${DRPAIR_SCALE_SIZES:-8G 8T})
npoints=${DRPAIR_SCALE_POINTS:-1000}
sync_timeout=${DRPAIR_SCALE_SYNC_TIMEOUT:-3600}
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-scale.XXXXXX")
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
loops=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for l in "${loops[@]}"; do losetup -d "$l"; done
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
ms_since() { python3 -c "print(round(($(now) - $1) * 1000, 1))"; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
field() { python3 -c "import json,sys; s=json.load(sys.stdin); print(eval('s' + sys.argv[1]))" "$1"; }
api() { # standby_dir method path [json]
  curl -sf --cacert "$1/tls/ca.pem" -H "Authorization: Bearer $DRPAIR_TOKEN" -H 'Content-Type: application/json' \
    -X "$2" ${4:+--data "$4"} "https://$(cat "$1/api.addr")/api/v1/$3"
}
epoch_of() { api "$1" GET pairs/scale 2>/dev/null | field "['checkpoint']['epoch'] if s['checkpoint'] else 0" 2>/dev/null || echo 0; }
point() { api "$1" POST pairs/scale/points '{"wait":true,"timeout_seconds":3600}' >/dev/null; }

write_data() { # target base_offset_mib [direct] (16 x 64 MiB of new random data, one every 512 MiB)
  for k in $(seq 0 15); do
    dd if=/dev/urandom of="$1" bs=1M count=64 iflag=fullblock seek=$(( $2 + k * 512 )) conv=notrunc ${3:+oflag=direct} status=none
  done
}

declare -A R
run_size() {
  local size=$1 img="$work/disk-$1.img" sd="$work/standby-$1" ad="$work/agent-$1"
  truncate -s "$size" "$img"
  write_data "$img" 0
  sync
  local loop; loop=$(losetup -f --show "$img"); loops+=("$loop")
  "$bin/drpaird" standby --data-dir "$sd" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" 2>"$sd.log" &
  local standby=$!; pids+=("$standby")
  for _ in $(seq 100); do [ -s "$sd/api.addr" ] && break; sleep 0.1; done
  echo 3 > /proc/sys/vm/drop_caches
  local t0; t0=$(now)
  "$bin/drpaird" agent --token-file "$work/token" --pair scale --disk "$loop" --standby "$(cat "$sd/link.addr")" \
    --standby-fingerprint "$(cat "$sd/fingerprint")" --tracker tracefs --state-dir "$ad" --cut-interval 24h \
    --compression off 2>"$ad.log" &
  local agent=$!; pids+=("$agent")
  local deadline=$(( $(date +%s) + sync_timeout ))
  until [ "$(epoch_of "$sd")" -ge 1 ]; do
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "$size: initial sync did not finish within ${sync_timeout}s" >&2
      R[$size,init_s]="> $sync_timeout"; return 1
    fi
    sleep 0.1
  done
  R[$size,init_s]=$(python3 -c "print(round($(now) - $t0, 2))")
  R[$size,init_mib]=$(( $(api "$sd" GET pairs/scale | field "['stats']['bytes_shipped']") >> 20 ))
  R[$size,rss_init]=$(hwm "$agent")
  local map; map=$(ls "$ad"/*.chmap | head -1)
  R[$size,map_apparent]=$(du -m --apparent-size "$map" | cut -f1)
  R[$size,map_alloc]=$(du -m "$map" | cut -f1)
  echo "$size: initial sync ${R[$size,init_s]}s, ${R[$size,init_mib]} MiB shipped, agent RSS ${R[$size,rss_init]} MiB, map ${R[$size,map_apparent]}/${R[$size,map_alloc]} MiB"

  write_data "$loop" 256 direct
  t0=$(now); point "$sd"; R[$size,catchup_ms]=$(ms_since "$t0")
  echo "$size: catch-up of 1 GiB ${R[$size,catchup_ms]} ms"

  local times=()
  for _ in 1 2 3 4 5; do t0=$(now); point "$sd"; times+=("$(ms_since "$t0")"); done
  R[$size,commit_ms]=$(printf '%s\n' "${times[@]}" | median)
  times=()
  for _ in $(seq 20); do t0=$(now); api "$sd" GET pairs/scale >/dev/null; times+=("$(ms_since "$t0")"); done
  R[$size,status_ms]=$(printf '%s\n' "${times[@]}" | median)
  echo "$size: commit ${R[$size,commit_ms]} ms, status ${R[$size,status_ms]} ms"

  for i in $(seq "$npoints"); do
    dd if=/dev/urandom of="$loop" bs=4k count=1 seek=$(( (3 << 18) + i % 64 )) oflag=direct conv=notrunc status=none
    point "$sd"
  done
  api "$sd" PUT pairs/scale/retention '{"grid":"1x1m","keep_last":10}' > "$work/retention-$size.json" || echo "$size: retention refused" >&2
  t0=$(now); local rep; rep=$(api "$sd" POST pairs/scale/prune '{"dry_run":false}'); R[$size,prune_ms]=$(ms_since "$t0")
  echo "$rep" > "$work/prune-$size.json"
  R[$size,pruned]=$(echo "$rep" | field "['points_before'] - s['points_kept']" 2>/dev/null || echo "?")
  echo "$size: prune of ${R[$size,pruned]} points ${R[$size,prune_ms]} ms"

  times=()
  for _ in 1 2 3; do
    local out; out=$(DRPAIR_SERVER="https://$(cat "$sd/api.addr")" DRPAIR_CA_FILE="$sd/tls/ca.pem" "$bin/drpair" drill start scale --latest --ttl 10m --output json)
    times+=("$(echo "$out" | field "['ready_ms']")")
    DRPAIR_SERVER="https://$(cat "$sd/api.addr")" DRPAIR_CA_FILE="$sd/tls/ca.pem" "$bin/drpair" drill stop "$(echo "$out" | field "['id']")" >/dev/null
  done
  R[$size,drill_ms]=$(printf '%s\n' "${times[@]}" | median)
  R[$size,rss_end]=$(hwm "$agent")
  R[$size,standby_rss]=$(hwm "$standby")
  R[$size,map_alloc_end]=$(du -m "$map" | cut -f1)
  R[$size,store_mib]=$(du -sm "$sd" | cut -f1)
  echo "$size: drill ${R[$size,drill_ms]} ms, agent RSS ${R[$size,rss_end]} MiB, standby RSS ${R[$size,standby_rss]} MiB, map ${R[$size,map_alloc_end]} MiB, store ${R[$size,store_mib]} MiB"
  kill "$agent" "$standby"; wait "$agent" "$standby" 2>/dev/null || true
  losetup -d "$loop"; rm -f "$img"
}

for s in "${sizes[@]}"; do run_size "$s" || true; done

a=${sizes[0]}; b=${sizes[1]}
ratio_py='import sys
label, x, y, unit = sys.argv[1:]
try:
    r = f"{float(y) / float(x):.2f}x" if float(x) > 0 else "-"
except ValueError:
    r = "?"
print(f"| {label} | {x} {unit} | {y} {unit} | {r} |")'
row() { python3 -c "$ratio_py" "$1" "${R[$a,$2]:-?}" "${R[$b,$2]:-?}" "$3"; }
echo
echo "== drpair scale benchmark ($(nproc) cores, $(uname -r)) — $invoked"
echo "same 1 GiB of data at the same offsets, tracefs tracker on a loop device, compression off"
echo "| cost | $a | $b | $b / $a |"
echo "|---|---:|---:|---:|"
row "initial sync" init_s s
row "initial sync shipped" init_mib MiB
row "agent RSS after initial sync" rss_init MiB
row "change map, apparent" map_apparent MiB
row "change map, allocated (du)" map_alloc MiB
row "catch-up of 1 GiB (tracefs)" catchup_ms ms
row "point commit, no change" commit_ms ms
row "GET pairs/{pair}" status_ms ms
row "prune of $npoints points (${R[$a,pruned]:-?}/${R[$b,pruned]:-?} removed)" prune_ms ms
row "drill ready" drill_ms ms
row "agent RSS, peak of the run" rss_end MiB
row "standby RSS, peak of the run" standby_rss MiB
row "change map allocated, end" map_alloc_end MiB
row "standby data dir, end" store_mib MiB
