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
# qemu-system-x86 from bookworm makes apt remove qemu-utils. Such a machine gets a warning
# (install qemu-system-x86 from backports too), never that removal.
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
    else
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

build "every binary" --bins
