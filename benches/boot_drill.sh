#!/usr/bin/env bash
# The boot-verified drill figure (issue 24, part 1), in one run on one machine: the time from
# `drpair drill start --boot` to the console's match against the same guest booted by QEMU
# from a local raw copy of the same image (goal: the drill ≥ 0.8× as fast, i.e. local/drill
# ≥ 0.8). Both guests have the same machine, memory, CPUs, devices and accelerator (the
# standby's choice: KVM when it can run the guest, else TCG); the local one is timed from
# QEMU's start to the match, the drill from the command to the match (so it also pays for the
# drill's exports and the API). Two rounds, alternating, each figure printed.
# The disk: the boot tests' bootable image (tests/harness/bootdisk.rs, cached in
# /var/cache/drpair-boot by `cargo test -p drpair-e2e --test boot_drills`), replicated by a
# scan agent. Needs the release binaries and QEMU.
#
#   bash benches/boot_drill.sh   (DRPAIR_BENCH_BIN or DRPAIR_BIN_DIR: release binaries;
#                                 DRPAIR_BENCH_DIR: work dir; DRPAIR_BENCH_ROUNDS: default 2)
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
bin=${DRPAIR_BENCH_BIN:-${DRPAIR_BIN_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release}}
base=$(ls -t /var/cache/drpair-boot/boot-disk-*.img 2>/dev/null | head -1 || true)
[ -n "$base" ] || { echo "no bootable test image in /var/cache/drpair-boot: run cargo test -p drpair-e2e --test boot_drills first" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "SKIPPED: qemu-system-x86_64 is not installed" >&2; exit 2; }
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-boot-bench.XXXXXX")
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
qpid=""
cleanup() {
  [ -n "$qpid" ] && kill "$qpid" 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
rounds=${DRPAIR_BENCH_ROUNDS:-2}
expect='drpair-test login:'

"$bin/drpaird" standby --data-dir "$work/standby" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" --allowed-path "$work/*" 2>"$work/standby.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/standby/api.addr" ] && break; sleep 0.1; done
export DRPAIR_SERVER="https://$(cat "$work/standby/api.addr")" DRPAIR_CA_FILE="$work/standby/tls/ca.pem"
link=$(cat "$work/standby/link.addr")
drpair() { "$bin/drpair" "$@"; }
api() { curl -sk -H "Authorization: Bearer $DRPAIR_TOKEN" "$DRPAIR_SERVER/api/v1/$1"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
now() { date +%s.%N; }

img="$work/source.img"
cp "$base" "$img"
"$bin/drpaird" agent --token-file "$work/token" --pair bench --disk "$img" --standby "$link" --standby-fingerprint "$(cat "$work/standby/fingerprint")" --tracker scan \
  --cut-interval 1h --state-dir "$work/agent" 2>"$work/agent.log" &
pids+=($!)
drpair status bench --wait-synced --timeout 10m >/dev/null 2>&1 || {
  sleep 2; drpair status bench --wait-synced --timeout 10m >/dev/null
}
local_copy="$work/local.img"
cp "$img" "$local_copy"

# One drill: seconds from the command to the match; sets `accel`.
drill_once() {
  local t0 id s state
  t0=$(now)
  id=$(drpair drill start bench --latest --boot --memory 256M --cpus 1 --expect "$expect" --timeout 5m --no-wait --output json | json 'd["id"]')
  while :; do
    s=$(api "drills/$id")
    state=$(echo "$s" | json 'd["boot"]["state"]')
    [ "$state" != booting ] && break
    sleep 0.05
  done
  drill_s=$(python3 -c "print($(now) - $t0)")
  [ "$state" = passed ] || { echo "the drill's boot $state: $s" >&2; exit 1; }
  accel=$(echo "$s" | json 'd["boot"]["accel"]')
  drill_boot_ms=$(echo "$s" | json 'd["boot"]["boot_ms"]')
  drpair drill stop "$id" >/dev/null
}

# The same guest from the local copy, as the standby starts it (drill/guest/qemu.rs).
local_once() {
  local t0 out="$work/local-console.txt"
  : >"$out"
  t0=$(now)
  qemu-system-x86_64 -machine "q35,accel=$accel" -m 256 -smp 1 -nodefaults -no-user-config -display none -device VGA \
    -nic none -serial stdio -drive "file=$local_copy,format=raw,if=virtio" >"$out" 2>"$work/local-qemu.log" &
  qpid=$!
  until grep -q "$expect" "$out"; do
    kill -0 "$qpid" 2>/dev/null || { echo "local QEMU exited: $(cat "$work/local-qemu.log")" >&2; exit 1; }
    sleep 0.05
  done
  local_s=$(python3 -c "print($(now) - $t0)")
  kill "$qpid"; wait "$qpid" 2>/dev/null || true; qpid=""
}

calc() { python3 -c "print(f'{$1:.${2:-2}f}')"; }
lines=()
for r in $(seq "$rounds"); do
  drill_once
  local_once
  lines+=("    round $r: drill start --boot → match $(calc "$drill_s")s (QEMU start → match ${drill_boot_ms} ms); local raw copy → match $(calc "$local_s")s; local/drill $(calc "$local_s / $drill_s")x")
done

cat <<REPORT

== drpair boot-verified drill benchmark ($(nproc) cores, guests under $accel) — $invoked
$(( $(stat -c %s "$img") >> 20 )) MiB bootable disk, guest 256 MiB / 1 CPU, console match on '$expect':
$(printf '%s\n' "${lines[@]}")
    goal: local/drill ≥ 0.80 (the drill boots at least 0.8× as fast as a local copy)
REPORT
