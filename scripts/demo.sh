#!/usr/bin/env bash
# The local demo: a standby and an agent on this machine protecting a demo disk (a loop device
# holding an ext4 filesystem) while files are written to it; shows status and recovery points,
# then exports a point and checks it byte for byte against the source. Needs root.
# DRPAIR_DEMO_DIR (default /tmp/drpair-demo) holds everything; DRPAIR_DEMO_KEEP=1 leaves the
# pair running at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --demo
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target/release"
dir=${DRPAIR_DEMO_DIR:-/tmp/drpair-demo}
pair=demo
export DRPAIR_SERVER=https://127.0.0.1:7701

cleanup() {
  set +e
  [ -n "${writer:-}" ] && kill "$writer" 2>/dev/null
  if [ "${DRPAIR_DEMO_KEEP:-0}" != 1 ]; then
    [ -n "${agent:-}" ] && kill "$agent" 2>/dev/null && wait "$agent" 2>/dev/null
    [ -n "${standby:-}" ] && kill "$standby" 2>/dev/null && wait "$standby" 2>/dev/null
    fsfreeze -u "$dir/mnt" 2>/dev/null
    mountpoint -q "$dir/mnt" && umount "$dir/mnt"
    [ -n "${loop:-}" ] && losetup -d "$loop"
  fi
}
trap cleanup EXIT

rm -rf "$dir" && mkdir -p "$dir/mnt"
echo "== demo disk: 1 GiB image with ext4, on a loop device"
truncate -s 1G "$dir/disk.img"
mkfs.ext4 -q -F "$dir/disk.img"
loop=$(losetup -f --show "$dir/disk.img")
mount "$loop" "$dir/mnt"
cp -a /usr/share/doc "$dir/mnt/doc" 2>/dev/null || true
sync

echo "== standby (link 127.0.0.1:7700, TLS; API https://127.0.0.1:7701) and agent (tracefs tracker, cut every 5s)"
echo "   web panel: https://127.0.0.1:7701/ (its CA: $dir/standby/tls/ca.pem; token: $dir/standby/admin.token)"
"$bin/drpaird" standby --data-dir "$dir/standby" --listen 127.0.0.1:7700 --api-listen 127.0.0.1:7701 2>"$dir/standby.log" &
standby=$!
for _ in $(seq 50); do [ -s "$dir/standby/api.addr" ] && break; sleep 0.1; done
export DRPAIR_CA_FILE="$dir/standby/tls/ca.pem"
# The standby made a bootstrap admin token; the agent enrolls as an operator would have it do.
DRPAIR_TOKEN=$(cat "$dir/standby/admin.token"); export DRPAIR_TOKEN
enroll=$("$bin/drpair" pairs enroll $pair | grep 'drpaird agent enroll')
echo "   enrolling the agent: ${enroll%%--secret*}--secret …"
eval "\"$bin/\"${enroll#  } --state-dir \"$dir/agent\" --pair $pair" >/dev/null
"$bin/drpaird" agent --pair $pair --disk "$loop" --standby 127.0.0.1:7700 --state-dir "$dir/agent" --cut-interval 5s 2>"$dir/agent.log" &
agent=$!

cat > "$dir/progress.py" <<'PY'
# One line of progress from `drpair status --output json` (exit 0 once ready for failover);
# anything else (the standby not answering yet, an error body) is said in words, never a traceback.
import json, sys
s = None
try:
    s = json.load(sys.stdin)
    st = s["stats"]
    eta = st.get("eta_seconds")
    print(f"  {s['state_label']:<18} progress {st['progress_percent']:5.1f}%  eta {eta if eta is not None else '-'}s  "
          f"lag {st['lag_seconds']}s  shipped {st['bytes_shipped'] // 1048576} MiB")
    sys.exit(0 if s["ready_for_failover"] else 1)
except (ValueError, KeyError, TypeError) as e:
    why = s["message"] if isinstance(s, dict) and s.get("message") else f"no status yet: {e!r}"
    print(f"  waiting for the pair's status ({why})")
    sys.exit(1)
PY

echo "== writes go on while it replicates"
( i=0; while true; do i=$((i+1)); cp -a /usr/share/common-licenses "$dir/mnt/copy-$i" 2>/dev/null || true; sleep 0.5; [ $i -ge 40 ] && break; done ) &
writer=$!

for _ in $(seq 600); do
  s=$("$bin/drpair" status $pair --output json 2>/dev/null || true)
  if [ -n "$s" ]; then
    echo "$s" | python3 "$dir/progress.py" && break
  fi
  sleep 1
done
wait "$writer" || true; writer=

echo "== status"
"$bin/drpair" status $pair
echo "== pairs"
"$bin/drpair" pairs list

echo "== an app-consistent point: the agent freezes the filesystem around the cut"
"$bin/drpair" points create $pair --freeze "$dir/mnt" --wait

echo "== quiesce by hand (fsfreeze) to keep a reference copy, cut a recovery point, thaw"
sync
fsfreeze -f "$dir/mnt"
cp "$dir/disk.img" "$dir/reference.img"
point=$("$bin/drpair" points create $pair --wait --output json | python3 -c 'import json,sys; print(json.load(sys.stdin)["point"]["id"])')
fsfreeze -u "$dir/mnt"
echo "  committed recovery point $point"
"$bin/drpair" points list $pair

echo "== export point $point and compare with the source as it was at the cut"
"$bin/drpair" points export $pair "$point" --out "$dir/export.img"
if cmp "$dir/reference.img" "$dir/export.img"; then
  echo "OK: exported point $point equals the source byte for byte"
else
  echo "FAIL: exported point differs from the source" >&2
  exit 1
fi
