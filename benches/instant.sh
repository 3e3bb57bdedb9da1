#!/usr/bin/env bash
# The instant recovery figure (issue 24, part 2), in one run on one machine: the time from
# `drpair failover --instant --boot` to a running recovered machine (the guest's console
# shows its marker) against the plain failover's materialisation time of the same point.
# The disk: the boot tests' bootable image (tests/harness/bootdisk.rs, cached in
# /var/cache/drpair-boot by `cargo test -p drpair-e2e --test boot_drills` or `--test
# instant_recovery`) grown to DRPAIR_BENCH_MIB (default 4096) with random data after its
# partition, so neither copy can skip it. Targets: files in the work directory. The guest
# runs under KVM when it can, else TCG (the standby decides; the figure says which).
# Needs the release binaries and QEMU.
#
#   bash benches/instant.sh      (DRPAIR_BENCH_BIN or DRPAIR_BIN_DIR: release binaries;
#                                 DRPAIR_BENCH_MIB: the disk's size; DRPAIR_BENCH_DIR: work dir)
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
bin=${DRPAIR_BENCH_BIN:-${DRPAIR_BIN_DIR:-$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release}}
base=$(ls -t /var/cache/drpair-boot/boot-disk-*.img 2>/dev/null | head -1 || true)
[ -n "$base" ] || { echo "no bootable test image in /var/cache/drpair-boot: run cargo test -p drpair-e2e --test instant_recovery first" >&2; exit 2; }
command -v qemu-system-x86_64 >/dev/null || { echo "SKIPPED: qemu-system-x86_64 is not installed" >&2; exit 2; }
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-instant-bench.XXXXXX")
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
cleanup() {
  [ -n "${DRPAIR_SERVER:-}" ] && "$bin/drpair" failover bench --stop-instant >/dev/null 2>&1 || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mib=${DRPAIR_BENCH_MIB:-4096}

"$bin/drpaird" standby --data-dir "$work/standby" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" --allowed-path "$work/*" 2>"$work/standby.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/standby/api.addr" ] && break; sleep 0.1; done
export DRPAIR_SERVER="https://$(cat "$work/standby/api.addr")" DRPAIR_CA_FILE="$work/standby/tls/ca.pem"
link=$(cat "$work/standby/link.addr")
drpair() { "$bin/drpair" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
now() { date +%s.%N; }

img="$work/source.img"
cp "$base" "$img"
base_mib=$(( $(stat -c %s "$base") >> 20 ))
head -c $(( (mib - base_mib) << 20 )) /dev/urandom >>"$img"
"$bin/drpaird" agent --token-file "$work/token" --pair bench --disk "$img" --standby "$link" --standby-fingerprint "$(cat "$work/standby/fingerprint")" --tracker scan \
  --cut-interval 1h --state-dir "$work/agent" 2>"$work/agent.log" &
pids+=($!)
drpair status bench --wait-synced --timeout 20m >/dev/null 2>&1 || {
  sleep 2; drpair status bench --wait-synced --timeout 20m >/dev/null
}

# Instant: from the command to the guest's marker, and to the pivot onto the target.
t0=$(now)
drpair failover bench --latest --to "$work/instant.img" --instant --boot --memory 256M --cpus 1 \
  --expect 'DRPAIR-TEST-GUEST booted' --timeout 10m --yes --no-wait --output json >"$work/instant.json"
up_s="" done_s=""
# Until the copy is done and the console matched (either may come first; a guest is up only
# at its marker, also when that comes after the pivot).
while [ -z "$up_s" ] || [ -z "$done_s" ]; do
  s=$(curl -sk -H "Authorization: Bearer $DRPAIR_TOKEN" "$DRPAIR_SERVER/api/v1/pairs/bench/failover")
  if [ -z "$up_s" ] && [ "$(echo "$s" | json 'd["instant"]["guest"]["boot_ms"] is not None')" = True ]; then
    up_s=$(python3 -c "print($(now) - $t0)")
  fi
  if [ -z "$done_s" ] && [ "$(echo "$s" | json 'd["state"]')" != running ]; then
    done_s=$(python3 -c "print($(now) - $t0)")
    echo "$s" >"$work/instant.json"
    [ "$(json 'd["state"]' <"$work/instant.json")" = done ] || { echo "instant failover ended: $s" >&2; exit 1; }
  fi
  [ "$(python3 -c "print($(now) - $t0 > 900)")" = True ] && { echo "no console match within 15 min: $s" >&2; exit 1; }
  sleep 0.2
done
echo "$s" >"$work/instant.json"
accel=$(json 'd["instant"]["guest"]["accel"]' <"$work/instant.json")
boot_ms=$(json 'd["instant"]["guest"]["boot_ms"]' <"$work/instant.json")
note=$(json 'd["instant"]["guest"].get("note") or ""' <"$work/instant.json")
drpair failover bench --stop-instant >/dev/null
# The session is over: its target's space back before the plain failover writes another.
rm -f "$work/instant.img"

# Plain failover of the same point: its materialisation time.
drpair failover bench --latest --to "$work/plain.img" --yes --output json >"$work/plain.json"
fo_s=$(json 'd["elapsed_seconds"]' <"$work/plain.json")

calc() { python3 -c "print(f'{$1:.${2:-1}f}')"; }
cat <<REPORT

== drpair instant recovery benchmark ($(nproc) cores, guest under $accel) — $invoked
a ${mib} MiB bootable disk (random data after its partition):
    plain failover: materialised in      $(calc "$fo_s")s: the machine can start only then
    --instant --boot: machine running in $(calc "$up_s")s (console marker; ${boot_ms} ms after its QEMU started), copy done and pivoted in $(calc "$done_s")s
    -> running $(calc "$fo_s / $up_s")x sooner than after a plain failover (> 1: instant wins)
${note:+    note: $note}
REPORT
