#!/usr/bin/env bash
# The tracking benchmark: what the tracefs tracker costs and what it buys, on a 4 GiB loop
# device, against baselines measured in the same run:
#   1. tracking overhead: fio 4 KiB random O_DIRECT writes, IOPS with the agent tracking the
#      device (tracefs, pair held in `initiating` by --hold-new-pairs: every write is traced
#      and drained, nothing is shipped) against IOPS with no agent; runs alternate
#      untracked, tracked, untracked, tracked;
#   2. catch-up after 1% of the 64 KiB chunks changed (random positions, random data):
#      `drpair points create --wait` (cut, read the changed chunks, ship, commit) against one
#      O_DIRECT read of the device and a local `rsync --inplace --no-whole-file` of the
#      backing file onto a copy of it taken before the change; bytes shipped against
#      `zstd -1` of the changed data; then the same catch-up over a plaintext link (another 1%,
#      standby and agent restarted with --insecure-plaintext): TLS's speed against plaintext;
#   3. lag under 20 MB/s of random 64 KiB writes with 1 s cuts: a probe writes 4 KiB every
#      50 ms; each write's lag is the commit time of the first point cut after it returned;
#      the newest point must then equal the device byte for byte.
# Ratios are what to read: another workload on the machine moves the absolute numbers.
#
#   bash benches/tracking.sh
# Needs root, fio, rsync, zstd, tracefs at /sys/kernel/tracing, about 12 GiB free in /var/tmp.
# Takes about 4 minutes.
set -euo pipefail
invoked="bash $0${*:+ $*}"
started=$(date +%s.%N)
cd "$(dirname "$0")/.."
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --release --locked --bins -q
bin="$target/release"
export DRPAIR_LOG=${DRPAIR_LOG:-warn}
size=$((4 << 30))
chunk=65536
tracing=/sys/kernel/tracing
work=$(mktemp -d /var/tmp/drpair-tracking.XXXXXX)
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
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
die() { echo "error: $*" >&2; exit 1; }
forget() { local q=() p; for p in "${pids[@]}"; do [ "$p" = "$1" ] || q+=("$p"); done; pids=("${q[@]}"); }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; forget "$1"; }
# Loop devices with direct I/O on the backing file: a buffered loop device serves its reads one
# after the other from the page cache of its file (a cold 1% catch-up waited 0.33 s for 655
# random 64 KiB reads that a disk, or a direct-I/O loop device, serves several at a time).
attach() { loop=$(losetup -f --show --direct-io=on "$1"); loops+=("$loop"); }
detach() { losetup -d "$1"; local q=() l; for l in "${loops[@]}"; do [ "$l" = "$1" ] || q+=("$l"); done; loops=("${q[@]}"); }
rm_instance() { # pair: the tracker leaves its instance recording on a clean stop
  local d="$tracing/instances/drpair-$1"
  for _ in $(seq 50); do [ -d "$d" ] || return 0; rmdir "$d" 2>/dev/null && return 0; sleep 0.1; done
  die "cannot remove $d"
}
cli() { DRPAIR_SERVER="$server" "$bin/drpair" "$@"; }
json() { python3 -c "import json,sys; s=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

start_standby() { # data_dir [--hold-new-pairs | --insecure-plaintext]
  rm -rf "$1"; mkdir -p "$1"
  run_standby "$@"
}
run_standby() { # data_dir [flags]: on the data dir as it is
  rm -f "$1/api.addr" "$1/link.addr"
  "$bin/drpaird" standby --data-dir "$1" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" "${@:2}" 2>"$1.log" &
  standby=$!; pids+=("$standby")
  for _ in $(seq 100); do [ -s "$1/api.addr" ] && [ -s "$1/link.addr" ] && break; sleep 0.1; done
  [ -s "$1/api.addr" ] || die "standby did not start: $(tail -3 "$1.log")"
  server="https://$(cat "$1/api.addr")"; export DRPAIR_CA_FILE="$1/tls/ca.pem"; link=$(cat "$1/link.addr"); fingerprint=$(cat "$1/fingerprint" 2>/dev/null || true)   # none in plaintext
}
start_agent() { # pair state_dir cut_interval [--insecure-plaintext]
  local trust=(--standby-fingerprint "$fingerprint")
  [ "${4:-}" = --insecure-plaintext ] && trust=(--insecure-plaintext)
  "$bin/drpaird" agent --token-file "$work/token" --pair "$1" --disk "$loop" --standby "$link" "${trust[@]}" --state-dir "$2" --tracker tracefs \
    --cut-interval "$3" --chunk-size "$chunk" --compression zstd:1 2>>"$2.log" &
  agent=$!; pids+=("$agent"); instances+=("$tracing/instances/drpair-$1")
}
wait_status() { # pair python-condition-on-s seconds what
  local end=$(($(date +%s) + $3))
  while [ "$(date +%s)" -lt "$end" ]; do
    kill -0 "$agent" 2>/dev/null || die "agent exited while waiting for $4: $(tail -3 "$work"/*agent*.log)"
    cli status "$1" --output json 2>/dev/null |
      python3 -c "import json,sys; s=json.load(sys.stdin); sys.exit(0 if ($2) else 1)" 2>/dev/null && return 0
    sleep 0.2
  done
  die "timed out after $3 s waiting for $4"
}

# --- 1. tracking overhead: untracked, tracked, untracked, tracked
pair1="bench-ovh-$$"
truncate -s "$size" "$work/ovh.img"
attach "$work/ovh.img"
start_standby "$work/standby-ovh" --hold-new-pairs
# Each run starts with no dirty pages: the loop device writes through the backing file's page
# cache, and the writeback a run leaves behind would slow the next one.
fio_iops() {
  sync
  fio --name=ovh --filename="$loop" --direct=1 --ioengine=io_uring --iodepth=16 --rw=randwrite --bs=4k \
    --runtime=15 --time_based --size=4G --output-format=json | json "f\"{s['jobs'][0]['write']['iops']:.0f}\""
}
# Unmeasured: allocate every block of the backing file first, or the first run pays for it.
fio --name=warm --filename="$loop" --direct=1 --ioengine=io_uring --iodepth=4 --rw=write --bs=1M --size=4G \
  --output-format=json >/dev/null
untracked=() tracked=() agent_cpu=()
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
traced() { cat "$tracing/instances/drpair-$1"/per_cpu/cpu*/stats | awk '/^read events:/ {s += $3} END {print s}'; }
for round in 1 2; do
  v=$(fio_iops); untracked+=("$v")
  echo "round $round untracked: $v IOPS"
  rm -rf "$work/agent-ovh"
  start_agent "$pair1" "$work/agent-ovh" 1s
  wait_status "$pair1" "s['agent'] and s['agent']['connected'] and s['agent']['tracker'] == 'tracefs'" 60 "the agent to connect"
  for _ in $(seq 100); do [ -d "$tracing/instances/drpair-$pair1" ] && break; sleep 0.1; done
  [ -d "$tracing/instances/drpair-$pair1" ] || die "no tracefs instance drpair-$pair1"
  c0=$(cpu_ticks "$agent"); e0=$(traced "$pair1"); t0=$(now)
  v=$(fio_iops); tracked+=("$v")
  agent_cpu+=("$(python3 -c "print(f'{($(cpu_ticks "$agent") - $c0) / $(getconf CLK_TCK) / ($(now) - $t0) * 100:.1f}%')")")
  sleep 0.2; events=$(($(traced "$pair1") - e0))   # what the drainer read
  held=$(cli status "$pair1" --output json | json "f\"{s['state']}, {s['stats']['bytes_shipped']} bytes shipped\"")
  echo "round $round tracked:   $v IOPS (pair $held; the agent drained $events events, used ${agent_cpu[-1]} of one core)"
  stop "$agent"; rm_instance "$pair1"
done
stop "$standby"; detach "$loop"; rm -f "$work/ovh.img"
iops_u=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print(f'{sum(v)/len(v):.0f}')" "${untracked[@]}")
iops_t=$(python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print(f'{sum(v)/len(v):.0f}')" "${tracked[@]}")

# --- 2. catch-up after changing 1% of the chunks
# The device: the first half alternates 1 MiB of random data and 1 MiB of text (Python's own
# sources), the second half is zero (a hole).
img="$work/disk.img"
truncate -s "$size" "$img"
python3 - "$img" "$size" <<'PY'
import os, random, sys, sysconfig
path, size = sys.argv[1], int(sys.argv[2])
MiB = 1 << 20
text = bytearray()
for root, _, files in os.walk(sysconfig.get_paths()['stdlib']):
    for f in sorted(files):
        if f.endswith('.py') and len(text) < 16 * MiB:
            text += open(os.path.join(root, f), 'rb').read()
rng = random.Random(1)
with open(path, 'r+b') as f:
    for i in range(size // 2 // MiB):
        if i % 2 == 0:
            f.write(os.urandom(MiB))
        else:
            o = rng.randrange(len(text) - MiB)
            f.write(text[o:o + MiB])
    f.flush(); os.fsync(f.fileno())
PY
attach "$img"
cp --sparse=always "$img" "$work/before.img"
echo "device $loop: 4 GiB, first half random and text, second half zero"

pair="bench-trk-$$"
start_standby "$work/standby"
t0=$(now)
start_agent "$pair" "$work/agent" 1h
wait_status "$pair" "s['ready_for_failover']" 600 "the baseline point"
echo "baseline point committed after $(elapsed "$t0" "$(now)")s"

# 1% of the chunks, at random, rewritten whole with random data through O_DIRECT.
change_1pct() { # seed: prints how many chunks changed; their data goes to $work/changed.bin
python3 - "$loop" "$work/changed.bin" "$size" "$chunk" "$1" <<'PY'
import mmap, os, random, sys
dev, out, size, cs, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
n = size // cs
k = n // 100
buf = mmap.mmap(-1, cs)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
with open(out, 'wb') as o:
    for c in random.Random(seed).sample(range(n), k):
        d = os.urandom(cs)
        buf[:] = d
        assert os.pwrite(fd, buf, c * cs) == cs
        o.write(d)
os.fsync(fd)
os.close(fd)
print(k)
PY
}
changed=$(change_1pct 42)
zsize=$(zstd -1 -c "$work/changed.bin" | wc -c)
echo "changed $changed chunks of 64 KiB; zstd -1 of the changed data: $zsize bytes"

drop_caches
t0=$(now); cli points create "$pair" --wait --output json >"$work/catchup.json"; t1=$(now); t_catch=$(python3 -c "print(f'{$t1 - $t0:.3f}')")
read -r ship catch_chunks catch_full <<<"$(json "s['point']['sizes']['shipped_bytes'], s['point']['sizes']['changed_chunks'], s['point']['full_pass']" <"$work/catchup.json" | tr -d '(),')"
catch_parts=$(json "f\"request to cut {s['point']['time_unix_ms'] - $t0 * 1000:.0f} ms, cut to commit {s['point']['committed_unix_ms'] - s['point']['time_unix_ms']} ms, commit to answer {$t1 * 1000 - s['point']['committed_unix_ms']:.0f} ms\"" <"$work/catchup.json")
echo "drpair catch-up: ${t_catch}s ($catch_parts), $catch_chunks chunks, shipped $ship bytes, full pass: $catch_full"
# The baselines run without the agent: its tracker would also see dd's reads. The tracefs
# instance keeps recording meanwhile; the agent takes it over when it starts again.
stop "$agent"

drop_caches; t0=$(now); dd if="$loop" of=/dev/null bs=4M iflag=direct status=none; t_read=$(elapsed "$t0" "$(now)")
echo "O_DIRECT read of the device: ${t_read}s"
drop_caches
t0=$(now); rsync --inplace --no-whole-file --stats "$img" "$work/before.img" >"$work/rsync.stats"; t_rsync=$(elapsed "$t0" "$(now)")
literal=$(awk -F': ' '/^Literal data/ {print $2}' "$work/rsync.stats")
echo "rsync --inplace --no-whole-file: ${t_rsync}s (literal data: $literal)"

# --- 2b. the same catch-up over a plaintext link (standby and agent --insecure-plaintext, same
# data dir): what TLS costs. Another 1% of the chunks (another seed), caches dropped as above.
stop "$standby"
run_standby "$work/standby" --insecure-plaintext
start_agent "$pair" "$work/agent" 1h --insecure-plaintext
wait_status "$pair" "s['agent'] and s['agent']['connected'] and s['state'] == 'replicating'" 60 "the plaintext agent to connect"
changed_plain=$(change_1pct 43)
drop_caches
t0=$(now); cli points create "$pair" --wait --output json >"$work/catchup-plain.json"; t_catch_plain=$(elapsed "$t0" "$(now)")
ship_plain=$(json "s['point']['sizes']['shipped_bytes']" <"$work/catchup-plain.json")
echo "drpair catch-up over a plaintext link: ${t_catch_plain}s, $changed_plain chunks changed, shipped $ship_plain bytes"
stop "$agent"; stop "$standby"
run_standby "$work/standby"

# --- 3. lag under 20 MB/s of random writes, cuts every second
start_agent "$pair" "$work/agent" 1s
wait_status "$pair" "s['agent'] and s['agent']['connected'] and s['state'] == 'replicating'" 60 "the agent to reconnect"
probe_off=$((size - (1 << 19)))   # in the last MiB, which fio does not touch
fio --name=lag --filename="$loop" --rw=randwrite --bs=64k --rate=20m --direct=1 --ioengine=io_uring --iodepth=4 \
  --runtime=60 --time_based --size=$((size - (1 << 20))) --output-format=json >"$work/fio-lag.json" &
fio_pid=$!; pids+=("$fio_pid")
python3 - "$loop" "$probe_off" 60 >"$work/probe.txt" <<'PY' &
import mmap, os, sys, time
dev, off, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
buf = mmap.mmap(-1, 4096)
fd = os.open(dev, os.O_WRONLY | os.O_DIRECT)
t, end = time.monotonic(), time.monotonic() + secs
while t < end:
    buf[:] = os.urandom(4096)
    os.pwrite(fd, buf, off)
    print(f'{time.time() * 1000:.3f}', flush=True)   # wall clock when the write returned
    t += 0.05
    time.sleep(max(0.0, t - time.monotonic()))
os.close(fd)
PY
probe_pid=$!; pids+=("$probe_pid")
wait "$fio_pid"; forget "$fio_pid"
wait "$probe_pid"; forget "$probe_pid"
fio_bw=$(json "f\"{s['jobs'][0]['write']['bw_bytes'] / 1e6:.1f}\"" <"$work/fio-lag.json")
# One more point, cut after the last write: every probe write has a point, and this one
# must equal the device.
cli points create "$pair" --wait --output json >/dev/null
cli points list "$pair" --output json >"$work/points.json"
stop "$agent"
# Each probe write returned at t (ms since the epoch). The tracker drains every event that
# completed before a cut into that cut's epoch (collect() drains under the drainer's lock;
# tests/tracking_no_miss.rs proves no write is missed), so a write that returned before the
# cut is in that point: its lag is committed_unix_ms of the first point with time_unix_ms
# >= t, minus t. The agent stamps time_unix_ms just before it drains, so a write landing
# between the stamp and the drain is counted against the next point: the lag is never
# understated.
read -r probes p50 p99 pmax unmatched cc50 cc99 nwin nfull <<<"$(python3 - "$work/probe.txt" "$work/points.json" <<'PY'
import bisect, json, math, sys
ts = [float(l) for l in open(sys.argv[1]) if l.strip()]
pts = sorted(json.load(open(sys.argv[2])), key=lambda p: p['time_unix_ms'])
cuts = [p['time_unix_ms'] for p in pts]
lags, unmatched = [], 0
for t in ts:
    i = bisect.bisect_left(cuts, t)
    if i == len(pts):
        unmatched += 1
    else:
        lags.append(pts[i]['committed_unix_ms'] - t)
def pct(v, q):
    v = sorted(v)
    return v[max(0, math.ceil(q * len(v)) - 1)] if v else float('nan')
window = [p for p in pts if ts and ts[0] <= p['time_unix_ms'] <= ts[-1] + 1000]
cut_to_commit = [p['committed_unix_ms'] - p['time_unix_ms'] for p in window]
print(len(lags), f'{pct(lags, .5):.0f}', f'{pct(lags, .99):.0f}', f'{pct(lags, 1):.0f}', unmatched,
      pct(cut_to_commit, .5), pct(cut_to_commit, .99), len(window), sum(p['full_pass'] for p in window))
PY
)"
echo "lag: $probes probe writes, p50 ${p50} ms, p99 ${p99} ms, max ${pmax} ms ($unmatched without a point); fio wrote ${fio_bw} MB/s; $nwin points ($nfull full passes), cut to commit p50 ${cc50} ms, p99 ${cc99} ms"
cli points export "$pair" latest -o "$work/export.img" >/dev/null
if cmp -s "$work/export.img" <(dd if="$loop" bs=4M iflag=direct status=none); then match=yes; else match=NO; fi
echo "newest point equals the device: $match"

verdict() { python3 -c "print('PASS' if $1 else 'MISS')"; }   # on the unrounded figures
speed_rsync=$(ratio "$t_rsync" "$t_catch"); speed_read=$(ratio "$t_read" "$t_catch")
ship_ratio=$(ratio "$ship" "$zsize"); iops_ratio=$(python3 -c "print(f'{$iops_t / $iops_u:.3f}')")
lag_ok=$([ "$match" = yes ] && [ "$unmatched" = 0 ] && [ "$probes" -gt 0 ] && echo "$p99 <= 2000" || echo False)
row() { printf '%-32s %-14s %-28s %-8s %-11s %s\n' "$@"; }
echo
echo "== drpair tracking benchmark (4096 MiB loop device, 64 KiB chunks, zstd:1, loopback, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)) — ratios against baselines of this run"
row "measure" "drpair" "baseline" "ratio" "target" "result"
row "4 KiB randwrite IOPS, tracked" "$iops_t" "untracked $iops_u" "$iops_ratio" ">= 0.95" "$(verdict "$iops_t / $iops_u >= 0.95")"
row "catch-up, 1% chunks changed" "${t_catch}s" "rsync --inplace ${t_rsync}s" "${speed_rsync}x" ">= 20x" "$(verdict "$t_rsync / $t_catch >= 20")"
row "catch-up, 1% chunks changed" "${t_catch}s" "O_DIRECT read ${t_read}s" "${speed_read}x" ">= 5x" "$(verdict "$t_read / $t_catch >= 5")"
row "catch-up, TLS vs plaintext" "${t_catch}s" "plaintext ${t_catch_plain}s" "$(ratio "$t_catch_plain" "$t_catch")x" ">= 0.9x" "$(verdict "$t_catch_plain / $t_catch >= 0.9")"
row "catch-up bytes shipped" "$ship" "zstd -1 changed $zsize" "$ship_ratio" "<= 1.1" "$(verdict "$ship / $zsize <= 1.1")"
row "lag p99 at 20 MB/s, 1 s cuts" "${p99} ms" "-" "-" "<= 2000 ms" "$(verdict "$lag_ok")"
echo "IOPS untracked, tracked per round: $(for i in "${!tracked[@]}"; do printf '%s, %s (%s); ' "${untracked[$i]}" "${tracked[$i]}" "$(python3 -c "print(f'{${tracked[$i]} / ${untracked[$i]}:.3f}')")"; done)agent CPU while tracking: ${agent_cpu[*]} of one core"
echo "catch-up: $catch_parts; $catch_chunks chunks in the point (changed $changed), full pass: $catch_full; rsync literal data: $literal"
echo "lag: $probes probe writes, p50 ${p50} ms, p99 ${p99} ms, max ${pmax} ms; fio ${fio_bw} MB/s; $nwin points ($nfull full passes), cut to commit p50 ${cc50} ms, p99 ${cc99} ms"
echo "newest point equals the device: $match (the lag counts only if yes)"
echo "total $(elapsed "$started" "$(now)")s"
echo "command: $invoked"
