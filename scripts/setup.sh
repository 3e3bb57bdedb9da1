#!/usr/bin/env bash
# Installs what building and testing drpair needs on a fresh Debian 12 machine (idempotent),
# then builds every binary in the one profile we use (release).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
# chromium: the web panel's browser tests (Debian's build; playwright drives it, no download).
# libnbd-bin (nbdfuse), fuse3: a drill export mounted through the kernel (tests/drills.rs);
# Debian 12 ships nbdfuse in libnbd-bin, so that is the package checked and installed.
# systemd, systemd-container, debootstrap: the packaging tests, which boot a Debian root with
# systemd-nspawn (cached in /var/cache/drpair-debootstrap).
# postgresql, postgresql-contrib: recovery points started by a real database (tests/pg_points.rs:
# initdb, pg_ctl, pgbench, pg_amcheck).
# libnss3-tools (certutil): the browser test makes Chromium trust the standby's CA.
for pkg in e2fsprogs util-linux rsync fio zstd qemu-utils chromium libnbd-bin fuse3 \
           systemd systemd-container debootstrap postgresql postgresql-contrib libnss3-tools; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
fi

# The tracefs tracker reads the kernel's block tracepoints from tracefs; systemd mounts it on
# most machines, a bare container or VM may not have it mounted.
if [ -d /sys/kernel/tracing ] && ! mountpoint -q /sys/kernel/tracing; then
  echo "setup: mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing
fi

# The browser tests' node packages (playwright-core, axe-core), pinned by web/package-lock.json.
# The panel itself has no build step: its files are compiled into drpaird as they are.
if ! command -v node >/dev/null 2>&1; then
  echo "setup: node (Node.js 20+) is needed for the web panel's browser tests" >&2
  exit 1
fi
if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
  echo "setup: npm ci (web/)"
  (cd web && npm ci --no-audit --no-fund --loglevel=error)
fi

# cargo-deb for scripts/package.sh (pinned: its maintainer-script snippets are part of the .deb).
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb 3.8.0" ]; then
  echo "setup: cargo install cargo-deb 3.8.0 (about 2 minutes)"
  cargo install cargo-deb@3.8.0 --locked --quiet
fi

# The target directory lives outside the clone (see .cargo/config.toml).
echo "setup: building (release; the first build compiles rocksdb and takes ~10 minutes on 2 cores)"
cargo build --release --locked --bins
