#!/usr/bin/env bash
# The third-party dump benchmark (README "Seeding from a third-party dump"), in one run on one
# machine: seeding a new pair from a dump (`drpair standby load-dump`, then
# `drpair standby resume-apply`, which ships only what changed after the dump point and
# verifies every chunk against the source) against seeding the same disk by the ordinary
# initial copy over the link (the baseline), measured one after the other in this script.
# The disk: 1 GiB of random data (incompressible: every chunk of the initial copy is read,
# compressed, shipped and stored), a loop device over a file on the work directory's
# filesystem, tracked by tracefs (which dates every change: with the scan tracker a chunk
# changed since the last read cannot be told before or after the dump point, so the
# verification is weaker, see tests/dump_resync.rs). After the dump point 1% of the
# 64 KiB chunks are rewritten (O_DIRECT): those, and only those, should cross the link. Each
# pair has its own standby (so the dump's load cannot dedup against the baseline's chunks) and
# its own copy of the disk; the dump's standby holds new pairs, so no initial copy starts.
# Times run from the request (the agent's start for the baseline) to the standby's record of
# completion (the baseline point's commit, the dump's loaded_at, the verification's
# verified_at); the commands' wall times (they poll: --wait-synced every second, load-dump every
# half second) are shown beside them. Reported: the time and bytes over the link of each, as
# ratios against the baseline, and the verification's mismatched chunks (the script fails
# unless 0, and unless the newest point equals the source). Needs the release binaries and root
# (losetup, tracefs).
#
#   bash benches/dump.sh
# Size in MiB: DRPAIR_BENCH_MIB (default 1024); tracker: DRPAIR_BENCH_TRACKER (default
# tracefs). Work files go to DRPAIR_BENCH_DIR (default /var/tmp) and are deleted at the end.
set -euo pipefail
invoked="bash $0${*:+ $*}"
[ -n "${DRPAIR_BENCH_MIB:-}" ] && invoked="DRPAIR_BENCH_MIB=$DRPAIR_BENCH_MIB $invoked"
[ -n "${DRPAIR_BENCH_TRACKER:-}" ] && invoked="DRPAIR_BENCH_TRACKER=$DRPAIR_BENCH_TRACKER $invoked"
cd "$(dirname "$0")/.."
bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-dump-bench.XXXXXX")
# The standby's token (the API and the agent present it; agents also pin the standby's TLS
# fingerprint).
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
devs=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in "${devs[@]}"; do losetup -d "$d" 2>/dev/null || true; done
  # A cleanly stopped agent leaves its tracefs instance recording, for its next start.
  rmdir /sys/kernel/tracing/instances/drpair-{copy,seed} 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mib=${DRPAIR_BENCH_MIB:-1024}
chunk=65536

drpair() { "$bin/drpair" "$@"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
calc() { python3 -c "print(f'{$1:.${2:-2}f}')"; }
now() { date +%s.%N; }
fail() { echo "$*" >&2; exit 1; }
# standby NAME [FLAGS...]: starts a standby with its own data dir; sets DRPAIR_SERVER, link and
# fingerprint.
standby() {
  local name=$1; shift
  "$bin/drpaird" standby --data-dir "$work/$name" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" "$@" \
    2>"$work/$name.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/$name/api.addr" ] && [ -s "$work/$name/link.addr" ] && break; sleep 0.1; done
  export DRPAIR_SERVER="https://$(cat "$work/$name/api.addr")" DRPAIR_CA_FILE="$work/$name/tls/ca.pem"
  link=$(cat "$work/$name/link.addr"); fingerprint=$(cat "$work/$name/fingerprint")
}
# agent PAIR DEVICE
agent() {
  "$bin/drpaird" agent --token-file "$work/token" --pair "$1" --disk "$2" --standby "$link" --standby-fingerprint "$fingerprint" --tracker "${DRPAIR_BENCH_TRACKER:-tracefs}" \
    --cut-interval 1h --state-dir "$work/agent-$1" 2>"$work/agent-$1.log" &
  pids+=($!)
}
# wait_for SECONDS PAIR PYTHON-CONDITION-ON-d (the status JSON)
wait_for() {
  local deadline=$(($(date +%s) + $1)) s
  while :; do
    s=$(drpair status "$2" --output json 2>/dev/null) && [ "$(echo "$s" | json "bool($3)" 2>/dev/null)" = True ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || { echo "$s" >&2; fail "timed out waiting for $2: $3"; }
    sleep 0.2
  done
}
status() { drpair status "$1" --output json; }
# at FILE EXPR: a time the standby recorded (RFC 3339 or ms), in seconds since the Unix epoch.
at() {
  python3 -c "import json,sys; from datetime import datetime; d=json.load(open(sys.argv[1])); v=$2
print(v / 1000 if isinstance(v, (int, float)) else datetime.fromisoformat(v).timestamp())" "$1"
}

head -c $((mib << 20)) /dev/urandom >"$work/copy.img"
cp "$work/copy.img" "$work/seed.img"
cat "$work/copy.img" "$work/seed.img" >/dev/null
dev=$(losetup -f --show "$work/copy.img")
devs+=("$dev")

# Baseline: a new pair seeded by the initial copy over the link, from the agent's start to
# Replicating at 100%.
standby standby-copy
t0=$(now)
agent copy "$dev"
wait_for 60 copy True
drpair status copy --wait-synced --timeout 30m >/dev/null 2>"$work/wait-synced.out"
t1=$(now)
status copy >"$work/copy.json"
[ "$(json 'd["stats"]["points"]' <"$work/copy.json")" = 1 ] || fail "more than the baseline point committed"
t1s=$(at "$work/copy.json" 'd["last_point"]["committed_unix_ms"]')
copy_shipped=$(json 'd["stats"]["bytes_shipped"]' <"$work/copy.json")
copy_wire=$(json 'd["stats"]["bytes_on_wire"]' <"$work/copy.json")

# Seeding by a dump: a second pair on its own standby, held so that no initial copy starts.
dev=$(losetup -f --show "$work/seed.img")
devs+=("$dev")
dump="$work/dump.img"
standby standby-dump --hold-new-pairs
agent seed "$dev"
wait_for 60 seed 'd["agent"] and d["agent"]["connected"]'
drpair suspend seed >/dev/null
drpair standby skip-to-resync-marker seed >/dev/null
# The "third-party" dump, then its point recorded (now: after the dump was taken).
dd if="$dev" of="$dump" bs=16M iflag=direct status=none
sync
drpair marker dump seed --output json >"$work/marker.json"
marker_epoch=$(json 'd["marker"]["epoch"]' <"$work/marker.json")
# Changes after the dump point: 1% of the chunks rewritten with random data.
chunks=$((mib * 1048576 / chunk))
nchanged=$(((chunks + 99) / 100))
for c in $(python3 -c "import random; print(*sorted(random.sample(range($chunks), $nchanged)))"); do
  dd if=/dev/urandom of="$dev" bs=$chunk seek="$c" count=1 oflag=direct status=none
done
sync
drpair resume seed --resync >/dev/null
wait_for 120 seed 'd["dump"] and d["dump"]["step"] == "apply_suspended"'

t2=$(now)
drpair standby load-dump seed --disk 0 --image "$dump" >"$work/load-dump.out" 2>&1 \
  || { cat "$work/load-dump.out" >&2; fail "load-dump failed"; }
t3=$(now)
status seed >"$work/loaded.json"
load_state=$(json 'd["dump"]["disks"][0]["state"]' <"$work/loaded.json")
[ "$load_state" = loaded ] || { cat "$work/loaded.json" >&2; fail "the dump's load ended $load_state"; }
t3s=$(at "$work/loaded.json" 'd["dump"]["disks"][0]["loaded_at"]')
shipped_before_apply=$(json 'd["stats"]["bytes_shipped"]' <"$work/loaded.json")
dump_stored=$(json 'd["dump"]["disks"][0]["stored_bytes"]' <"$work/loaded.json")

t4=$(now)
drpair standby resume-apply seed >/dev/null
wait_for 1800 seed 'd["dump"]["step"] == "done"'
t5=$(now)
status seed >"$work/applied.json"
seed_shipped=$(json 'd["stats"]["bytes_shipped"]' <"$work/applied.json")
seed_wire=$(json 'd["stats"]["bytes_on_wire"]' <"$work/applied.json")
verification() { json "d['dump']['verification']['$1']" <"$work/applied.json"; }
compared=$(verification chunks_compared)
vshipped=$(verification chunks_shipped)
mismatched=$(verification mismatched_chunks)
t5s=$(at "$work/applied.json" 'd["dump"]["verification"]["verified_at"]')
[ "$mismatched" = 0 ] || { cat "$work/applied.json" >&2; fail "the verification found $mismatched mismatched chunks"; }

# The newest point equals the source.
point=$(drpair points create seed --wait --timeout 10m --output json | json 'd["point"]["id"]')
drpair points export seed "$point" -o "$work/newest.img" >/dev/null 2>&1
cmp -s "$dev" "$work/newest.img" || fail "the newest point ($point) differs from the source"

copy_s=$(calc "$t1s - $t0" 3)
load_s=$(calc "$t3s - $t2" 3)
apply_s=$(calc "$t5s - $t4" 3)
seed_s=$(calc "$load_s + $apply_s" 3)
cat <<REPORT

== drpair dump seeding benchmark ($(nproc) cores) — $invoked
seeding a new pair with ${mib} MiB (random data) on a loop device; $nchanged of $chunks 64 KiB chunks changed after the dump point
(request to the standby's record of completion; the command's wall time in brackets):
    initial copy over the link     : ${copy_s}s = $(calc "$mib / $copy_s" 0) MiB/s [status --wait-synced: $(calc "$t1 - $t0" 3)s] (baseline)
    standby load-dump              : ${load_s}s = $(calc "$mib / $load_s" 0) MiB/s [$(calc "$t3 - $t2" 3)s] -> $(calc "$load_s / $copy_s") of the baseline's time ($(calc "$copy_s / $load_s")x as fast)
    standby resume-apply (verified): ${apply_s}s [until dump.step = done: $(calc "$t5 - $t4" 3)s]
    load-dump + resume-apply       : ${seed_s}s -> $(calc "$seed_s / $copy_s") of the baseline's time ($(calc "$copy_s / $seed_s")x as fast)
bytes over the link (payload shipped / frames on the wire):
    initial copy                   : $copy_shipped / $copy_wire (baseline)
    dump seeding (before apply)    : $shipped_before_apply
    dump seeding incl. the changes : $seed_shipped / $seed_wire -> $(calc "$seed_shipped / $copy_shipped" 4)x the baseline's bytes (changed: $((nchanged * chunk)))
    dump load stored               : $dump_stored bytes into the chunk store
verification (marker epoch $marker_epoch): $compared chunks compared, $vshipped shipped, $mismatched mismatched; newest point $point equals the source
REPORT
