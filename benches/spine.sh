#!/usr/bin/env bash
# The spine benchmark: initial sync and scan-mode catch-up of drpair over loopback, against
# baselines measured in the same run on the same image:
#   - one O_DIRECT read of the image (dd iflag=direct): the floor for any tool that reads it;
#   - rsync --whole-file to an empty target over an rsync daemon on 127.0.0.1 (plain, and with
#     -z --compress-choice=zstd --compress-level=1 against drpair at zstd level 1);
#   - rsync --inplace --no-whole-file for the catch-up after 1% of the chunks changed.
# Also reports peak RSS (VmHWM) of agent and standby during the initial sync, and how close
# `drpair bench`'s estimate of the initial sync comes to the syncs measured here.
#
#   bash benches/spine.sh            # 4 GiB image holding ext4 filled with files from /usr
#   DRPAIR_BENCH_SIZE_GIB=1 bash benches/spine.sh
#   DRPAIR_BENCH_CHUNK=1048576 bash benches/spine.sh   # the agent's chunk size (default 64 KiB)
#   DRPAIR_BENCH_IMAGE_ONLY=1 bash benches/spine.sh     # only make the cached image (other benches use it)
# Needs root. The image is cached in DRPAIR_BENCH_CACHE (default /var/cache/drpair-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo build --release --locked --bins -q
bin="$target/release"
size=${DRPAIR_BENCH_SIZE_GIB:-4}
cache=${DRPAIR_BENCH_CACHE:-/var/cache/drpair-bench}
work=$(mktemp -d /var/tmp/drpair-bench.XXXXXX)
# The standby's token (the API and the agent present it; agents also pin the standby's TLS
# fingerprint).
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
img="$cache/fs-${size}g.img"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [ -s "$work/rsyncd.pid" ] && kill "$(cat "$work/rsyncd.pid")" 2>/dev/null
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  [ -n "${loop:-}" ] && losetup -d "$loop"
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }

mkdir -p "$cache" "$work/mnt"
if [ ! -s "$img" ]; then
  echo "making $img: ext4 filled with real files from /usr (once)"
  truncate -s "${size}G" "$img.tmp"
  mkfs.ext4 -q -F "$img.tmp"
  loop=$(losetup -f --show "$img.tmp")
  mount "$loop" "$work/mnt"
  i=0
  while [ "$(df --output=pcent "$work/mnt" | tail -1 | tr -dc 0-9)" -lt 85 ]; do
    i=$((i + 1))
    for d in /usr/lib /usr/share /usr/bin /root/.rustup; do
      [ "$(df --output=pcent "$work/mnt" | tail -1 | tr -dc 0-9)" -ge 85 ] && break
      cp -a "$d" "$work/mnt/$i-$(basename "$d")" 2>/dev/null || true
    done
  done
  df -h "$work/mnt" | tail -1
  umount "$work/mnt"; losetup -d "$loop"; loop=
  mv "$img.tmp" "$img"
fi
[ -n "${DRPAIR_BENCH_IMAGE_ONLY:-}" ] && { echo "$img"; exit 0; }
src="$work/src.img"
cp "$img" "$src"
bytes=$(stat -c %s "$src")
echo "image: $src ($((bytes >> 20)) MiB)"

# --- baselines
drop_caches; t0=$(now); dd if="$src" of=/dev/null bs=4M iflag=direct status=none; t_read=$(elapsed "$t0" "$(now)")
echo "O_DIRECT read: ${t_read}s"

mkdir -p "$work/rsync-dst"
cat > "$work/rsyncd.conf" <<CONF
pid file = $work/rsyncd.pid
use chroot = no
[bench]
path = $work/rsync-dst
read only = no
uid = root
gid = root
CONF
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rsync --daemon --config="$work/rsyncd.conf" --port="$port" --address=127.0.0.1
for _ in $(seq 50); do [ -s "$work/rsyncd.pid" ] && break; sleep 0.1; done
rsync_to() { rsync "$@" "$src" "rsync://127.0.0.1:$port/bench/src.img"; }
drop_caches; rm -f "$work/rsync-dst/src.img"; t0=$(now); rsync_to --whole-file; t_rsync=$(elapsed "$t0" "$(now)")
echo "rsync --whole-file: ${t_rsync}s"
drop_caches; rm -f "$work/rsync-dst/src.img"; t0=$(now); rsync_to --whole-file -z --compress-choice=zstd --compress-level=1; t_rsync_z=$(elapsed "$t0" "$(now)")
echo "rsync --whole-file -z zstd:1: ${t_rsync_z}s"

# --- drpair initial sync
api() { curl -sf --cacert "$1/tls/ca.pem" -H "Authorization: Bearer $DRPAIR_TOKEN" "https://$(cat "$1/api.addr")/api/v1/$2"; }
field() { python3 -c "import json,sys; s=json.load(sys.stdin); print(eval('s' + sys.argv[1]))" "$1"; }
start_standby() {
  rm -rf "$1"; mkdir -p "$1"
  DRPAIR_LOG=info "$bin/drpaird" standby --data-dir "$1" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" ${PLAIN:+--insecure-plaintext} 2>"$1.log" &
  standby=$!; pids+=("$standby")
  for _ in $(seq 100); do [ -s "$1/api.addr" ] && break; sleep 0.1; done
}
start_agent() { # state_dir standby_dir compression
  local trust=(--standby-fingerprint "$(cat "$2/fingerprint" 2>/dev/null)")
  [ -n "${PLAIN:-}" ] && trust=(--insecure-plaintext)
  "$bin/drpaird" agent --token-file "$work/token" --pair bench --disk "$src" --standby "$(cat "$2/link.addr")" "${trust[@]}" --state-dir "$1" --cut-interval 1h --compression "$3" ${DRPAIR_BENCH_CHUNK:+--chunk-size "$DRPAIR_BENCH_CHUNK"} 2>>"$1.log" &
  agent=$!; pids+=("$agent")
}
wait_epoch() { # standby_dir min_epoch
  # Follows the standby's log, not its API: a curl and a python3 every 50 ms took about a sixth
  # of this 2-core machine from the sync being timed. Gives up when the pair stops.
  local r
  for _ in $(seq 72000); do
    r=0
    awk -v n="$2" '/recovery point committed/ && match($0, / epoch=[0-9]+/) { if (substr($0, RSTART + 7, RLENGTH - 7) + 0 >= n) done = 1 }
                   /to=Stopped|to=FatalError/ { stopped = $0 }
                   END { if (done) exit 0; if (stopped != "") { print "the pair stopped: " stopped > "/dev/stderr"; exit 2 }; exit 1 }' "$1.log" || r=$?
    [ $r = 0 ] && return 0
    [ $r = 2 ] && return 1
    sleep 0.05
  done
  echo "timed out" >&2; return 1
}
hwm() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
stop() { kill "$1"; wait "$1" 2>/dev/null || true; }

declare -A t_init rss_agent rss_standby
for comp in off zstd:1 auto; do
  sd="$work/standby-${comp/:/}"; ad="$work/agent-${comp/:/}"
  rm -rf "$ad"
  start_standby "$sd"
  drop_caches
  t0=$(now); start_agent "$ad" "$sd" "$comp"; wait_epoch "$sd" 1; t_init[$comp]=$(elapsed "$t0" "$(now)")
  rss_agent[$comp]=$(hwm "$agent"); rss_standby[$comp]=$(hwm "$standby")
  shipped=$(api "$sd" pairs/bench | field "['stats']['bytes_shipped']")
  echo "drpair initial sync ($comp): ${t_init[$comp]}s, shipped $((shipped >> 20)) MiB, agent RSS ${rss_agent[$comp]} MiB, standby RSS ${rss_standby[$comp]} MiB"
  stop "$agent"
  [ "$comp" = zstd:1 ] || stop "$standby"
  [ "$comp" = zstd:1 ] && keep_standby=$standby
done

# --- the same initial sync (compression off) without TLS on the link: what TLS costs
sd="$work/standby-plain"; ad="$work/agent-plain"; rm -rf "$ad"
PLAIN=1 start_standby "$sd"
drop_caches
t0=$(now); PLAIN=1 start_agent "$ad" "$sd" off; wait_epoch "$sd" 1; t_plain=$(elapsed "$t0" "$(now)")
echo "drpair initial sync (off, plaintext link): ${t_plain}s"
stop "$agent"; stop "$standby"

# --- catch-up after changing 1% of the chunks at random (content taken from real files)
cp "$src" "$work/rsync-dst/src.img"     # rsync's target holds the old image
changed=$(python3 - "$src" "$work/changed.bin" <<'PY'
import os, random, sys
path, out = sys.argv[1], sys.argv[2]
cs = 65536
n = os.path.getsize(path) // cs
k = max(1, n // 100)
pool = open('/usr/bin/' + 'python3', 'rb').read() + open('/usr/lib/x86_64-linux-gnu/libc.so.6', 'rb').read()
random.seed(42)
with open(path, 'r+b') as f, open(out, 'wb') as o:
    for c in random.sample(range(n), k):
        off = random.randrange(0, len(pool) - cs)
        data = bytearray(pool[off:off + cs])
        data[0:8] = os.urandom(8)   # never equal to an existing chunk
        f.seek(c * cs); f.write(data); o.write(data)
print(k)
PY
)
# Compressed size of the changed chunks, each compressed alone at zstd level 1.
zsize=$(python3 - "$work/changed.bin" <<'PY'
import subprocess, sys
d = open(sys.argv[1], 'rb').read()
print(sum(len(subprocess.run(['zstd', '-1', '-c'], input=d[i:i + 65536], capture_output=True).stdout) for i in range(0, len(d), 65536)))
PY
)
sync
drop_caches; t0=$(now); rsync_to --inplace --no-whole-file; t_rsync_inplace=$(elapsed "$t0" "$(now)")
echo "rsync --inplace --no-whole-file: ${t_rsync_inplace}s"

sd="$work/standby-zstd1"; ad="$work/agent-zstd1"
before=$(api "$sd" pairs/bench | field "['stats']['bytes_shipped']")
epoch=$(api "$sd" pairs/bench | field "['checkpoint']['epoch']")
drop_caches
t0=$(now); start_agent "$ad" "$sd" zstd:1; wait_epoch "$sd" $((epoch + 1)); t_catch=$(elapsed "$t0" "$(now)")
after=$(api "$sd" pairs/bench | field "['stats']['bytes_shipped']")
ship=$((after - before))
echo "drpair scan catch-up: ${t_catch}s, changed $changed chunks, shipped $ship bytes (changed chunks compressed: $zsize bytes)"
stop "$agent"

# --- drpair bench's estimate of the initial sync, against the syncs measured above
drop_caches
est=$(DRPAIR_SERVER="https://$(cat "$sd/api.addr")" DRPAIR_CA_FILE="$sd/tls/ca.pem" \
  "$bin/drpair" bench --disk "$src" --seconds 3 --output json)
est_off=$(echo "$est" | field "['estimates'][0]['initial_sync_seconds']")   # compression off
est_z=$(echo "$est" | field "['estimates'][1]['initial_sync_seconds']")     # zstd:1
bound_off=$(echo "$est" | field "['estimates'][0]['bound']")
bound_z=$(echo "$est" | field "['estimates'][1]['bound']")
stop "$keep_standby"

cat <<REPORT

== drpair spine benchmark ($((bytes >> 20)) MiB ext4 image, loopback, $(nproc) cores) — ratios against baselines of this run
initial sync, compression off : ${t_init[off]}s = $(ratio "${t_init[off]}" "$t_read")x O_DIRECT read (goal <= 2), $(ratio "${t_init[off]}" "$t_rsync")x rsync --whole-file (goal < 1)
initial sync, zstd level 1    : ${t_init[zstd:1]}s = $(ratio "${t_init[zstd:1]}" "$t_read")x O_DIRECT read, $(ratio "${t_init[zstd:1]}" "$t_rsync_z")x rsync -z zstd:1 (goal < 1)
initial sync, auto            : ${t_init[auto]}s = $(ratio "${t_init[auto]}" "$t_read")x O_DIRECT read
TLS vs plaintext link (off)   : TLS runs at $(ratio "$t_plain" "${t_init[off]}")x the plaintext speed (goal >= 0.9; plaintext ${t_plain}s)
scan catch-up (1% changed)    : ${t_catch}s = $(ratio "$t_catch" "$t_read")x O_DIRECT read (goal <= 1.3), $(ratio "$t_catch" "$t_rsync_inplace")x rsync --inplace (goal < 1)
drpair bench estimate (off)   : $(printf %.2f "$est_off")s, bound by the $bound_off = $(ratio "$est_off" "${t_init[off]}")x the measured sync (goal 0.75-1.25)
drpair bench estimate (zstd:1): $(printf %.2f "$est_z")s, bound by the $bound_z = $(ratio "$est_z" "${t_init[zstd:1]}")x the measured sync (goal 0.75-1.25)
catch-up bytes shipped        : $ship = $(ratio "$ship" "$zsize")x compressed size of the changed chunks (goal <= 1.1)
peak RSS during initial sync  : agent ${rss_agent[zstd:1]} MiB (goal <= 256), standby ${rss_standby[zstd:1]} MiB (goal <= 512) [zstd:1]; off: ${rss_agent[off]}/${rss_standby[off]}; auto: ${rss_agent[auto]}/${rss_standby[auto]}
baselines: O_DIRECT read ${t_read}s, rsync --whole-file ${t_rsync}s, rsync -z zstd:1 ${t_rsync_z}s, rsync --inplace ${t_rsync_inplace}s
REPORT
