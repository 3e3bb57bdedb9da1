#!/usr/bin/env bash
# The object store benchmark (issue "Beyond one standby's disks"), in one run on one machine:
# the same replication into the local rocksdb store and into a 3-node garage cluster
# (replication factor 3, every node on this machine), on the 4 GiB ext4 image of
# benches/spine.sh, compression zstd:1:
#   - initial sync (agent start to the first committed point): garage / local (goal <= 2);
#   - catch-up after 1% of the chunks changed (agent restarted, scan tracker, to the next
#     committed point): garage / local (goal <= 2);
#   - PUT requests per GiB stored (the bucket's objects: packs are written once, never
#     replaced) and bytes in the bucket per byte shipped (goal <= 1.05 after packing);
#   - a drill's ready time on each store (median of 5, goal < 1 s).
# Needs root, the release binaries and garage (scripts/setup.sh installs it in
# /var/cache/drpair-tools/garage; DRPAIR_GARAGE_BIN names another).
#
#   bash benches/object_store.sh            (DRPAIR_BENCH_PACK: the pack size, default 32MiB;
#                                            DRPAIR_BENCH_GARAGE_COMPRESSION: garage's compression_level, default none)
set -euo pipefail
invoked="bash $0${*:+ $*}"
cd "$(dirname "$0")/.."
garage=${DRPAIR_GARAGE_BIN:-/var/cache/drpair-tools/garage/bin/garage}
[ -x "$garage" ] || { echo "garage is not installed at $garage (run scripts/setup.sh)" >&2; exit 1; }
img=$(DRPAIR_BENCH_IMAGE_ONLY=1 bash benches/spine.sh | tail -1)
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=${DRPAIR_BIN_DIR:-$target/release}
work=$(mktemp -d "${DRPAIR_BENCH_DIR:-/var/tmp}/drpair-s3-bench.XXXXXX")
export DRPAIR_TOKEN="bench-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$DRPAIR_TOKEN" > "$work/token"
pids=()
cleanup() {
  set +e
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$2 - $1:.2f}')"; }
calc() { python3 -c "print(f'{$1:.2f}')"; }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
field() { python3 -c "import json,sys; s=json.load(sys.stdin); print(eval('s' + sys.argv[1]))" "$1"; }

# --- a 3-node garage cluster, replication factor 3
secret=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')
g() { RUST_LOG=error "$garage" -c "$work/garage$1/garage.toml" "${@:2}"; }
retry() { for _ in $(seq 150); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }
rpcs=() ids=()
for i in 0 1 2; do
  d="$work/garage$i"; mkdir -p "$d"
  rpc=127.0.0.1:$(free_port); rpcs+=("$rpc")
  s3=127.0.0.1:$(free_port)
  admin=127.0.0.1:$(free_port)
  [ "$i" = 0 ] && admin0=$admin
  [ "$i" = 0 ] && endpoint="http://$s3"
  cat > "$d/garage.toml" <<CONF
metadata_dir = "$d/meta"
data_dir = "$d/data"
db_engine = "lmdb"
replication_factor = 3
# drpair's packs hold chunks already compressed with zstd (or incompressible): garage's own
# block compression would only cost CPU.
compression_level = "${DRPAIR_BENCH_GARAGE_COMPRESSION:-none}"
rpc_bind_addr = "$rpc"
rpc_public_addr = "$rpc"
rpc_secret = "$secret"

[s3_api]
s3_region = "garage"
api_bind_addr = "$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "$admin"
admin_token = "$secret"
CONF
  RUST_LOG=garage=warn "$garage" -c "$d/garage.toml" server 2>"$d.log" &
  pids+=($!)
done
for i in 0 1 2; do retry g "$i" node id -q; ids+=("$(g "$i" node id -q | cut -d@ -f1)"); done
for i in 1 2; do retry g 0 node connect "${ids[$i]}@${rpcs[$i]}"; done
for i in 0 1 2; do g 0 layout assign -z "dc$i" -c 10G "${ids[$i]}" >/dev/null; done
g 0 layout apply --version 1 >/dev/null
key=""
for _ in $(seq 150); do key=$(g 0 key create drpair-bench 2>/dev/null) && break; sleep 0.2; done
key_id=$(echo "$key" | awk -F': *' '/Key ID:/ {print $2; exit}')
key_secret=$(echo "$key" | awk -F': *' '/Secret key:/ {print $2; exit}')
[ -n "$key_id" ] && [ -n "$key_secret" ] || { echo "garage gave no key: $key" >&2; exit 1; }
retry g 0 bucket create bench
g 0 bucket allow --read --write --owner bench --key drpair-bench >/dev/null
printf 'access_key_id = "%s"\nsecret_access_key = "%s"\n' "$key_id" "$key_secret" > "$work/s3.credentials"
chmod 600 "$work/s3.credentials"
cat > "$work/standby-s3.toml" <<CONF
[standby]
store = "s3"

[standby.s3]
endpoint = "$endpoint"
region = "garage"
bucket = "bench"
prefix = "bench"
credentials_file = "$work/s3.credentials"
pack_size = "${DRPAIR_BENCH_PACK:-32MiB}"
CONF
bucket_field() { g 0 bucket info bench | awk -v f="$1" '$1 == f {print $2; exit}'; }
echo "garage: 3 nodes, replication factor 3, S3 at $endpoint"

# --- one store's run: initial sync, 1% catch-up, drill ready times
start_standby() { # dir [flags]
  rm -f "$1/api.addr" "$1/link.addr"; mkdir -p "$1"
  DRPAIR_LOG=info "$bin/drpaird" standby --data-dir "$1" --listen 127.0.0.1:0 --api-listen 127.0.0.1:0 --token-file "$work/token" "${@:2}" 2>>"$1.log" &
  standby=$!; pids+=("$standby")
  for _ in $(seq 100); do [ -s "$1/api.addr" ] && [ -s "$1/link.addr" ] && break; sleep 0.1; done
  [ -s "$1/api.addr" ] || { echo "the standby did not start: $(tail -3 "$1.log")" >&2; exit 1; }
}
start_agent() { # state_dir standby_dir
  "$bin/drpaird" agent --token-file "$work/token" --pair bench --disk "$src" --standby "$(cat "$2/link.addr")" \
    --standby-fingerprint "$(cat "$2/fingerprint")" --state-dir "$1" --cut-interval 1h --compression zstd:1 2>>"$1.log" &
  agent=$!; pids+=("$agent")
}
wait_epoch() { # standby_dir min_epoch: follows the standby's log, not its API
  for _ in $(seq 36000); do
    awk -v n="$2" '/recovery point committed/ && match($0, / epoch=[0-9]+/) { if (substr($0, RSTART + 7, RLENGTH - 7) + 0 >= n) f = 1 } END { exit !f }' "$1.log" && return 0
    sleep 0.05
  done
  echo "timed out waiting for epoch $2" >&2; exit 1
}
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }
api() { curl -sf --cacert "$1/tls/ca.pem" -H "Authorization: Bearer $DRPAIR_TOKEN" "https://$(cat "$1/api.addr")/api/v1/$2"; }
declare -A t_sync t_catch shipped ready
run() { # name [standby flags]
  local name=$1 sd="$work/standby-$1" ad="$work/agent-$1"
  src="$work/src.img"; cp "$img" "$src"
  start_standby "$sd" "${@:2}"
  drop_caches
  t0=$(now); start_agent "$ad" "$sd"; wait_epoch "$sd" 1; t_sync[$name]=$(elapsed "$t0" "$(now)")
  stop "$agent"
  local epoch before; epoch=$(api "$sd" pairs/bench | field "['checkpoint']['epoch']")
  before=$(api "$sd" pairs/bench | field "['stats']['bytes_shipped']")
  python3 - "$src" <<'PY'
import os, random, sys
path, cs = sys.argv[1], 65536
n = os.path.getsize(path) // cs
pool = open('/usr/lib/x86_64-linux-gnu/libc.so.6', 'rb').read()
random.seed(7)
with open(path, 'r+b') as f:
    for c in random.sample(range(n), n // 100):
        off = random.randrange(0, len(pool) - cs)
        data = bytearray(pool[off:off + cs]); data[0:8] = os.urandom(8)
        f.seek(c * cs); f.write(data)
PY
  drop_caches
  t0=$(now); start_agent "$ad" "$sd"; wait_epoch "$sd" $((epoch + 1)); t_catch[$name]=$(elapsed "$t0" "$(now)")
  shipped[$name]=$(api "$sd" pairs/bench | field "['stats']['bytes_shipped']")
  stop "$agent"
  local times=() out
  for _ in 1 2 3 4 5; do
    out=$(DRPAIR_SERVER="https://$(cat "$sd/api.addr")" DRPAIR_CA_FILE="$sd/tls/ca.pem" "$bin/drpair" drill start bench --latest --ttl 10m --output json)
    times+=("$(echo "$out" | field "['ready_ms']")")
    DRPAIR_SERVER="https://$(cat "$sd/api.addr")" DRPAIR_CA_FILE="$sd/tls/ca.pem" "$bin/drpair" drill stop "$(echo "$out" | field "['id']")" >/dev/null
  done
  ready[$name]=$(printf '%s\n' "${times[@]}" | sort -g | sed -n 3p)
  echo "$name: initial sync ${t_sync[$name]}s, catch-up ${t_catch[$name]}s (shipped $((before >> 20)) + $(((shipped[$name] - before) >> 20)) MiB), drill ready ${ready[$name]} ms"
  stop "$standby"
  rm -rf "$src"
}
run local
run garage --config "$work/standby-s3.toml"
# garage updates a bucket's counters shortly after the writes
for _ in $(seq 60); do [ "$(bucket_field Objects:)" -gt 0 ] && break; sleep 0.5; done
# Exact figures from garage's admin API (the CLI rounds the size to two digits).
info=$(curl -sf -H "Authorization: Bearer $secret" "http://$admin0/v2/GetBucketInfo?globalAlias=bench")
objects=$(echo "$info" | field "['objects']")
bytes=$(echo "$info" | field "['bytes']")
garage_cpu=$(for p in "${pids[@]:0:3}"; do awk '{print $14 + $15}' "/proc/$p/stat"; done | awk -v t="$(getconf CLK_TCK)" '{s += $1} END {printf "%.1f", s / t}')
cat <<REPORT

== drpair object store benchmark ($(($(stat -c %s "$img") >> 20)) MiB ext4 image, zstd:1, 3 garage nodes with replication factor 3 on this machine, $(nproc) cores) — $invoked
initial sync    : garage ${t_sync[garage]}s, local ${t_sync[local]}s -> $(calc "${t_sync[garage]} / ${t_sync[local]}")x (goal <= 2)
1% catch-up     : garage ${t_catch[garage]}s, local ${t_catch[local]}s -> $(calc "${t_catch[garage]} / ${t_catch[local]}")x (goal <= 2)
PUTs per GiB    : $objects objects (one PUT each) for $((bytes >> 20)) MiB in the bucket -> $(calc "$objects / ($bytes / 2**30)") per GiB stored
stored/shipped  : $bytes bytes in the bucket / ${shipped[garage]} shipped -> $(calc "$bytes / ${shipped[garage]}")x (goal <= 1.05)
garage's CPU    : ${garage_cpu} s over the whole run, its 3 nodes together (local sync + garage sync: $(calc "${t_sync[local]} + ${t_sync[garage]}") s)
drill ready     : garage ${ready[garage]} ms, local ${ready[local]} ms (median of 5, goal < 1000 ms)
REPORT
