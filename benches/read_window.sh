#!/usr/bin/env bash
# The read-window benchmark: how exact points stay when the link is slower than the server's
# change rate, with and without the spool, on a 512 MiB loop device tracked by tracefs, and
# what shipping a backlog through the spool costs the protected server.
#   A. fio writes 64 KiB random blocks at 16 MB/s over the first 64 MiB, cuts every second,
#      link unlimited, spool on: the baseline read windows;
#   B. the same with the agent's shipping capped at 4 MB/s (a quarter of the change rate; the
#      test throttle DRPAIR_TEST_THROTTLE_BPS stands for the link), spool on;
#   C. as B with --no-spool (read while shipping: the behaviour before the spool).
#   Per run: the points cut during the load, their read_window_ms p50 and p99, how many were
#   marked window_exceeded (the standby's bound is 2 s); ratios B/A and C/A.
#   D. protected-host cost: fio 4 KiB random O_DIRECT writes for 20 s, IOPS with the agent of
#      B shipping its backlog through the spool against IOPS with no agent.
# Ratios are what to read: another workload on the machine moves the absolute numbers.
#
#   bash benches/read_window.sh
# Needs root, fio, tracefs at /sys/kernel/tracing, about 2 GiB free in /var/tmp.
# Takes about 7 minutes.
set -euo pipefail
invoked="bash $0${*:+ $*}"
started=$(date +%s.%N)
cd "$(dirname "$0")/.."
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --release --locked --bins -q
bin="$target/release"
export DRPAIR_LOG=${DRPAIR_LOG:-warn}
size=$((512 << 20))
hot=64m
rate=16m
link_bps=$((4 << 20))
load_secs=90
tracing=/sys/kernel/tracing
work=$(mktemp -d /var/tmp/drpair-readwin.XXXXXX)
# The standby's token (the API and the agent present it; agents also pin the standby's TLS
# fingerprint).
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=() loops=() instances=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for i in "${instances[@]}"; do [ -d "$i" ] && rmdir "$i"; done
  for l in "${loops[@]}"; do losetup -d "$l"; done
  rm -rf "$work"
}
trap cleanup EXIT
die() { echo "error: $*" >&2; exit 1; }
forget() { local q=() p; for p in "${pids[@]}"; do [ "$p" = "$1" ] || q+=("$p"); done; pids=("${q[@]}"); }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget "$1"; }
cli() { DRPAIR_SERVER="$server" "$bin/drpair" "$@"; }
json() { python3 -c "import json,sys; s=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
rm_instance() {
  local d="$tracing/instances/drpair-$1"
  for _ in $(seq 50); do [ -d "$d" ] || return 0; rmdir "$d" 2>/dev/null && return 0; sleep 0.1; done
  die "cannot remove $d"
}

truncate -s "$size" "$work/disk.img"
loop=$(losetup -f --show "$work/disk.img"); loops+=("$loop")
fio --name=fill --filename="$loop" --direct=1 --ioengine=io_uring --rw=write --bs=1M --size="$size" \
  --output-format=json >/dev/null

mkdir -p "$work/standby"
"$bin/drpaird" standby --data-dir "$work/standby" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" \
  --prune-interval 0 --verify-interval 0 2>"$work/standby.log" &
standby=$!; pids+=("$standby")
for _ in $(seq 100); do [ -s "$work/standby/api.addr" ] && [ -s "$work/standby/link.addr" ] && break; sleep 0.1; done
[ -s "$work/standby/api.addr" ] || die "standby did not start: $(tail -3 "$work/standby.log")"
server="https://$(cat "$work/standby/api.addr")"; export DRPAIR_CA_FILE="$work/standby/tls/ca.pem"; link=$(cat "$work/standby/link.addr")
pair="bench-rw-$$"
instances+=("$tracing/instances/drpair-$pair")

start_agent() { # throttle_bps (0: none) extra-args...
  local env=()
  [ "$1" != 0 ] && env=(DRPAIR_TEST_THROTTLE_BPS="$1")
  env "${env[@]}" "$bin/drpaird" agent --token-file "$work/token" --pair "$pair" --disk "$loop" --standby "$link" --standby-fingerprint "$(cat "$work/standby/fingerprint")" --state-dir "$work/agent" \
    --tracker tracefs --cut-interval 1s --compression zstd:1 "${@:2}" >/dev/null 2>>"$work/agent.log" &
  agent=$!; pids+=("$agent")
}
wait_status() { # python-condition-on-s seconds what
  local end=$(($(date +%s) + $2))
  while [ "$(date +%s)" -lt "$end" ]; do
    kill -0 "$agent" 2>/dev/null || die "agent exited while waiting for $3: $(tail -3 "$work/agent.log")"
    cli status "$pair" --output json 2>/dev/null |
      python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($1) else 1)" 2>/dev/null && return 0
    sleep 0.2
  done
  die "timed out after $2 s waiting for $3"
}

# The baseline at full speed; each run then starts from a caught-up pair.
start_agent 0
wait_status "s['ready_for_failover']" 600 "the baseline point"
stop "$agent"

run() { # label throttle extra-args... -> "p50 p99 points exceeded"
  local label=$1
  start_agent "${@:2}"
  wait_status "s['agent'] and s['agent']['connected'] and s['state'] == 'replicating'" 60 "the agent to connect"
  local t0 t1
  t0=$(date +%s%3N)
  fio --name=load --filename="$loop" --rw=randwrite --bs=64k --rate="$rate" --direct=1 --ioengine=io_uring \
    --iodepth=4 --runtime="$load_secs" --time_based --size="$hot" --output-format=json >"$work/fio-$label.json"
  t1=$(date +%s%3N)
  stop "$agent"
  cli points list "$pair" --output json >"$work/points-$label.json"
  python3 - "$work/points-$label.json" "$t0" "$t1" <<'PY'
import json, sys
pts = [p for p in json.load(open(sys.argv[1])) if int(sys.argv[2]) <= p['time_unix_ms'] <= int(sys.argv[3])]
w = sorted(p['read_window_ms'] for p in pts if p.get('read_window_ms') is not None)
q = lambda f: w[min(len(w) - 1, int(f * len(w)))] if w else 0
print(q(0.5), q(0.99), len(pts), sum(1 for p in pts if p.get('window_exceeded')))
PY
}

read -r a50 a99 an ax <<<"$(run A 0)"
echo "A unlimited link, spool:    read window p50 ${a50} ms, p99 ${a99} ms over $an points ($ax window_exceeded)"
read -r b50 b99 bn bx <<<"$(run B "$link_bps")"
echo "B link 1/4 of changes, spool: read window p50 ${b50} ms, p99 ${b99} ms over $bn points ($bx window_exceeded)"
read -r c50 c99 cn cx <<<"$(run C "$link_bps" --no-spool)"
echo "C link 1/4, no spool:       read window p50 ${c50} ms, p99 ${c99} ms over $cn points ($cx window_exceeded)"

fio_iops() {
  sync
  fio --name=cost --filename="$loop" --direct=1 --ioengine=io_uring --iodepth=16 --rw=randwrite --bs=4k \
    --runtime=20 --time_based --size="$hot" --output-format=json | json "f\"{s['jobs'][0]['write']['iops']:.0f}\""
}
rm_instance "$pair"
iops_none=$(fio_iops)
start_agent "$link_bps"
wait_status "s['agent'] and s['agent']['connected']" 60 "the agent to connect"
iops_spool=$(fio_iops)
spool_peak=$(cli status "$pair" --output json | json "s['stats']['spool_bytes']")
stop "$agent"
echo "D fio 4 KiB random writes: $iops_none IOPS without an agent, $iops_spool IOPS while the agent ships through the spool (spool held $spool_peak bytes at the end)"

r() { python3 -c "print(f'{$1 / max($2, 1):.2f}')"; }
cat <<EOF

read_window benchmark ($invoked, $(python3 -c "print(f'{$(date +%s.%N) - $started:.0f}')") s)
  read window p50, link 1/4 with spool / unlimited:     $(r "$b50" "$a50")  (target <= 1.5)
  read window p99, link 1/4 with spool / unlimited:     $(r "$b99" "$a99")  (target <= 1.5)
  read window p50, link 1/4 without spool / unlimited:  $(r "$c50" "$a50")
  read window p99, link 1/4 without spool / unlimited:  $(r "$c99" "$a99")
  points marked window_exceeded: A $ax/$an, B $bx/$bn, C $cx/$cn
  protected-host IOPS, shipping through the spool / no agent: $(r "$iops_spool" "$iops_none")  (target >= 0.8)
EOF
