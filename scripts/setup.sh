#!/usr/bin/env bash
# Installs what building and testing drpair needs on a fresh Debian 12 machine (idempotent),
# then builds every binary in the one profile we use (release).
#   scripts/setup.sh          everything the tests need (browser, databases, packaging tools)
#   scripts/setup.sh --demo   only what the demo needs: the build's tools, then drpaird and drpair
set -euo pipefail
cd "$(dirname "$0")/.."
mode=test
[ "${1:-}" = --demo ] && mode=demo

need=()
dpkg -s libclang-dev >/dev/null 2>&1 || need+=(libclang-dev)
for pkg in e2fsprogs util-linux; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
# chromium: the web panel's browser tests (Debian's build; playwright drives it, no download).
# libnbd-bin (nbdfuse), fuse3: a drill export mounted through the kernel (tests/drills.rs);
# Debian 12 ships nbdfuse in libnbd-bin, so that is the package checked and installed.
# systemd, systemd-container, debootstrap: the packaging tests, which boot a Debian root with
# systemd-nspawn (cached in /var/cache/drpair-debootstrap).
# postgresql, postgresql-contrib: recovery points started by a real database (tests/pg_points.rs:
# initdb, pg_ctl, pgbench, pg_amcheck).
# libnss3-tools (certutil): the browser test makes Chromium trust the standby's CA.
# prometheus (with promtool): tests/prometheus_metrics.rs lints /metrics and scrapes it; the
# test runs its own server, so the package's service is stopped and disabled below.
# python3-aiosmtpd: a real SMTP server for the e-mail notifications (tests/notifications.rs).
# qemu-system-x86, ovmf: boot-verified drills run a QEMU guest (SeaBIOS, or OVMF for uefi);
# busybox-static, extlinux: tests/boot_drills.rs builds a small bootable disk from them.
# qemu-system-x86 must come in qemu-utils' version: a qemu-utils from bookworm-backports with
# qemu-system-x86 from bookworm makes apt remove qemu-utils. On such a machine (this kind has
# qemu-utils from backports) it is installed from bookworm-backports, named in a sources list
# of its own that is used for that one install and removed; if that fails, a warning (the boot
# drills' test then says it skipped), never that removal.
# qemu-system-x86 in qemu-utils' version ($1) from bookworm-backports, through a sources list
# and package lists of its own (the machine's apt configuration is left as it was).
qemu_from_backports() {
  case "$1" in *bpo12*) ;; *) return 1 ;; esac
  local dir
  dir=$(mktemp -d)
  mkdir -p "$dir/parts" "$dir/lists/partial"
  cp /etc/apt/sources.list.d/*.sources "$dir/parts/" 2>/dev/null || true
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    >"$dir/parts/drpair-backports.sources"
  local opts=(-o "Dir::Etc::SourceParts=$dir/parts" -o "Dir::State::Lists=$dir/lists")
  [ -f /etc/apt/sources.list ] && opts+=(-o "Dir::Etc::SourceList=/etc/apt/sources.list")
  echo "setup: installing qemu-system-x86 $1 from bookworm-backports (qemu-utils' version)"
  local ok=0
  DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" update -qq >/dev/null 2>&1 &&
    DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq --no-install-recommends \
      -t bookworm-backports "qemu-system-x86=$1" >/dev/null 2>&1 || ok=1
  rm -rf "$dir"
  return $ok
}
if [ $mode = test ]; then
  for pkg in rsync fio zstd qemu-utils chromium libnbd-bin fuse3 \
             systemd systemd-container debootstrap postgresql postgresql-contrib libnss3-tools \
             prometheus python3-aiosmtpd ovmf busybox-static extlinux; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
  done
  if ! dpkg -s qemu-system-x86 >/dev/null 2>&1; then
    utils=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    system=$(apt-cache policy qemu-system-x86 2>/dev/null | awk '/Candidate:/ {print $2}')
    if [ -z "$utils" ] || [ "$utils" = "$system" ]; then
      need+=(qemu-system-x86)
    elif ! qemu_from_backports "$utils"; then
      echo "setup: warning: qemu-utils $utils is installed but qemu-system-x86's candidate is $system;" \
        "install qemu-system-x86=$utils (e.g. from bookworm-backports) for tests/boot_drills.rs" >&2
    fi
  fi
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $(printf '%s\n' "${need[@]}" | sort -u) >/dev/null
  if [[ " ${need[*]} " == *" prometheus "* ]]; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

# The kernel of tests/boot_drills.rs's bootable disk: Debian's cloud kernel package, only
# downloaded (apt-get download) into a cache outside the clone, never installed: installing
# it would add a kernel, its initramfs and a boot entry to this machine for a test's sake.
if [ $mode = test ]; then
  boot_cache=/var/cache/drpair-boot
  kernel_pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
  if [ -n "$kernel_pkg" ] && ! ls "$boot_cache/${kernel_pkg}_"*.deb >/dev/null 2>&1; then
    echo "setup: downloading $kernel_pkg into $boot_cache (the boot drills' test disk)"
    mkdir -p "$boot_cache"
    (cd "$boot_cache" && apt-get download -qq "$kernel_pkg" 2>/dev/null)
  fi
fi

# The tracefs tracker reads the kernel's block tracepoints from tracefs; systemd mounts it on
# most machines, a bare container or VM may not have it mounted.
if [ -d /sys/kernel/tracing ] && ! mountpoint -q /sys/kernel/tracing; then
  echo "setup: mounting tracefs at /sys/kernel/tracing"
  mount -t tracefs nodev /sys/kernel/tracing
fi

build() {
  # The target directory lives outside the clone (see .cargo/config.toml). Cargo's own progress
  # bar ("Building [===>  ] N/M: crate") shows on a terminal; RocksDB's C++ is the long unit.
  if [ -d "$(cargo metadata --format-version 1 --no-deps 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])' 2>/dev/null)/release/build" ]; then
    echo "setup: building $1 (release; incremental)"
  else
    echo "setup: building $1 (release; a first build compiles RocksDB's C++, about 15 of some 20 minutes on 2 cores)"
  fi
  shift
  cargo build --release --locked "$@"
}

if [ $mode = demo ]; then
  build "drpaird and drpair" --bin drpaird --bin drpair
  exit 0
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

# garage (a distributed S3-compatible object store) for the object-store tests
# (tests/object_store_garage.rs runs a 3-node cluster of it), built once into a cache outside the
# clone, as RocksDB's target dir is. Pinned: its CLI's output is read by tests/harness/garage.rs.
GARAGE_VERSION=2.5.0
GARAGE_ROOT=/var/cache/drpair-tools/garage
if [ "$("$GARAGE_ROOT/bin/garage" --version 2>/dev/null | awk '{print $2}' | sed -E 's/^(cargo:|v)//')" != "$GARAGE_VERSION" ]; then
  echo "setup: cargo install garage $GARAGE_VERSION into $GARAGE_ROOT (about 10 minutes on an idle 2-core machine, 25 under load)"
  mkdir -p /var/cache/drpair-tools
  CARGO_TARGET_DIR=/var/cache/drpair-tools/garage-build cargo install garage@"$GARAGE_VERSION" --locked \
    --no-default-features --features bundled-libs,lmdb --root "$GARAGE_ROOT" --quiet
  # Its build directory is several GB and serves no later build.
  rm -rf /var/cache/drpair-tools/garage-build
fi

build "every binary" --bins
