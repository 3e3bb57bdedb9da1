//! A small bootable disk for the boot-verified drill tests, built from Debian's own parts:
//! an MBR with one ext4 partition holding busybox (`busybox-static`), an init script that
//! prints a marker, the content of `/etc/drill-note` and a login-style prompt (and powers off
//! on the ACPI power button, [`POWER_BUTTON`]), the Debian
//! cloud kernel (from its package, downloaded by scripts/setup.sh into [`CACHE`] and never
//! installed on the host) with a tiny initramfs (the cloud kernel builds virtio_blk as a
//! module; ext4 is built in), made bootable by extlinux (BIOS).
//!
//! The built image is cached in [`CACHE`], keyed by its inputs (the kernel package, busybox,
//! extlinux's MBR code, the scripts below), so later runs only copy it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where the kernel package and the built images are kept (outside the clone).
pub const CACHE: &str = "/var/cache/drpair-boot";
/// The disk: 1 MiB of MBR gap, the ext4 partition, then 15 MiB no partition covers (a place
/// to write while a drill runs, without touching the filesystem).
pub const PART_OFFSET: u64 = 1 << 20;
pub const PART_SIZE: u64 = 64 << 20;
pub const DISK_SIZE: u64 = 80 << 20;
/// The prompt the guest's init prints last.
pub const PROMPT: &str = "drpair-test login:";
/// The line the guest's init prints first.
pub const MARKER: &str = "DRPAIR-TEST-GUEST booted";

const MODULES: [&str; 8] = [
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "drivers/block/virtio_blk.ko",
    // The ACPI power button as an input device: how the guest hears QMP `system_powerdown`.
    "drivers/input/evdev.ko",
    "drivers/acpi/button.ko",
];

const INITRAMFS_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk evdev button; do
  /bin/busybox insmod /lib/modules/$m.ko
done
i=0
while [ ! -b /dev/vda1 ] && [ $i -lt 200 ]; do /bin/busybox sleep 0.1; i=$((i+1)); done
/bin/busybox mount -t ext4 /dev/vda1 /newroot || { echo "initramfs: cannot mount /dev/vda1"; exec /bin/busybox sh; }
/bin/busybox umount /proc
exec /bin/busybox switch_root /newroot /sbin/init
"#;

const ROOT_INIT: &str = r#"#!/bin/busybox sh
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
say() { echo "$@"; echo "$@" > /dev/tty0 2>/dev/null; }
say "DRPAIR-TEST-GUEST booted"
say "drill-note: $(/bin/busybox cat /etc/drill-note)"
say ""
say "drpair-test login: "
while :; do /bin/busybox sleep 3600; done
"#;

/// Put by [`with_power_button`] at the top of every init of the test disk: a press of the
/// ACPI power button (what QMP `system_powerdown` sends) syncs and powers the guest off, as
/// a distribution's acpid or systemd-logind would.
pub const POWER_BUTTON: &str = r#"/bin/busybox mount -t sysfs sysfs /sys 2>/dev/null
/bin/busybox mount -t devtmpfs dev /dev 2>/dev/null
for n in /sys/class/input/event*; do
  if [ "$(/bin/busybox cat $n/device/name 2>/dev/null)" = "Power Button" ]; then
    ( /bin/busybox dd if=/dev/input/${n##*/} of=/dev/null bs=24 count=1 2>/dev/null &&
      { echo "drpair-test: power button pressed: powering off"; /bin/busybox sync; /bin/busybox poweroff -f; } ) &
  fi
done
"#;

/// `script` (an init starting with its `#!` line) with [`POWER_BUTTON`] after that line.
pub fn with_power_button(script: &str) -> String {
    let (first, rest) = script.split_once('\n').unwrap_or((script, ""));
    format!("{first}\n{POWER_BUTTON}{rest}")
}

const EXTLINUX_CONF: &str = "SERIAL 0 115200\nDEFAULT drill\nTIMEOUT 1\nLABEL drill\n  KERNEL /boot/vmlinuz\n  INITRD /boot/initrd.img\n  APPEND root=/dev/vda1 console=tty0 console=ttyS0,115200 quiet\n";

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why this machine cannot run the boot tests (QEMU or /dev/kvm absent), if it cannot.
pub fn missing() -> Option<String> {
    let qemu = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .any(|d| d.join("qemu-system-x86_64").is_file());
    if !qemu {
        return Some("qemu-system-x86_64 is not installed (Debian: qemu-system-x86; scripts/setup.sh)".into());
    }
    if !Path::new("/dev/kvm").exists() {
        return Some("/dev/kvm is absent".into());
    }
    None
}

/// The Debian cloud kernel package in the cache.
fn kernel_deb() -> PathBuf {
    let found = std::fs::read_dir(CACHE).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .filter(|p| {
                let n = p.file_name().unwrap_or_default().to_string_lossy().into_owned();
                n.starts_with("linux-image-") && n.contains("-cloud-amd64_") && n.ends_with(".deb")
            })
            .max()
    });
    found.unwrap_or_else(|| panic!("no Debian cloud kernel package in {CACHE}: run scripts/setup.sh"))
}

/// The cached bootable image (built first when its inputs changed); copy it before use.
pub fn base_image() -> PathBuf {
    let deb = kernel_deb();
    let mut key = blake3::Hasher::new();
    key.update(b"drpair boot disk v1");
    key.update(deb.file_name().unwrap().as_encoded_bytes());
    for f in ["/bin/busybox", "/usr/lib/EXTLINUX/mbr.bin"] {
        key.update(
            &std::fs::read(f).unwrap_or_else(|e| panic!("{f}: {e} (busybox-static, extlinux: scripts/setup.sh)")),
        );
    }
    for t in [INITRAMFS_INIT, ROOT_INIT, POWER_BUTTON, EXTLINUX_CONF] {
        key.update(t.as_bytes());
    }
    key.update(&[PART_OFFSET, PART_SIZE, DISK_SIZE].map(u64::to_le_bytes).concat());
    let key = key.finalize().to_hex();
    let img = Path::new(CACHE).join(format!("boot-disk-{}.img", &key[..16]));
    if img.exists() {
        crate::step(format!("boot disk: cached {}", img.display()));
        return img;
    }
    let t0 = std::time::Instant::now();
    let work = Path::new(CACHE).join(format!("build-{}-{}", &key[..16], std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    build(&deb, &work, &img);
    std::fs::remove_dir_all(&work).ok();
    crate::step(format!("boot disk: built {} in {:.1} s", img.display(), t0.elapsed().as_secs_f64()));
    img
}

fn build(deb: &Path, work: &Path, img: &Path) {
    let (kx, initrd, root) = (work.join("kernel"), work.join("initrd"), work.join("root"));
    for d in ["bin", "dev", "proc", "sys", "newroot", "lib/modules"] {
        std::fs::create_dir_all(initrd.join(d)).unwrap();
    }
    for d in ["bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "boot/extlinux"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    run("dpkg-deb", &["-x", deb.to_str().unwrap(), kx.to_str().unwrap()]);
    let modules = std::fs::read_dir(kx.join("lib/modules")).unwrap().next().unwrap().unwrap().path();
    let vmlinuz = std::fs::read_dir(kx.join("boot"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with("vmlinuz-"))
        .expect("vmlinuz in the kernel package");
    for m in MODULES {
        let name = Path::new(m).file_name().unwrap();
        std::fs::copy(modules.join("kernel").join(m), initrd.join("lib/modules").join(name))
            .unwrap_or_else(|e| panic!("{m}: {e}"));
    }
    let exec = |p: &Path, text: &str| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(p, text).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    std::fs::copy("/bin/busybox", initrd.join("bin/busybox")).unwrap();
    exec(&initrd.join("init"), INITRAMFS_INIT);
    let initrd_img = root.join("boot/initrd.img");
    run(
        "sh",
        &[
            "-c",
            &format!(
                "cd '{}' && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > '{}'",
                initrd.display(),
                initrd_img.display()
            ),
        ],
    );
    std::fs::copy(&vmlinuz, root.join("boot/vmlinuz")).unwrap();
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).unwrap();
    exec(&root.join("sbin/init"), &with_power_button(ROOT_INIT));
    std::fs::write(root.join("etc/drill-note"), "as built\n").unwrap();
    std::fs::write(root.join("boot/extlinux/extlinux.conf"), EXTLINUX_CONF).unwrap();

    let tmp = work.join("disk.img");
    let f = std::fs::File::create(&tmp).unwrap();
    f.set_len(DISK_SIZE).unwrap();
    drop(f);
    // extlinux's MBR code, one bootable Linux partition, the boot signature.
    let mut mbr = std::fs::read("/usr/lib/EXTLINUX/mbr.bin").unwrap();
    mbr.resize(440, 0);
    mbr.resize(446, 0);
    let sectors_of = |bytes: u64| u32::try_from(bytes / 512).expect("an MBR partition");
    let (start, sectors) = (sectors_of(PART_OFFSET), sectors_of(PART_SIZE));
    mbr.extend([0x80, 0xfe, 0xff, 0xff, 0x83, 0xfe, 0xff, 0xff]);
    mbr.extend(start.to_le_bytes());
    mbr.extend(sectors.to_le_bytes());
    mbr.resize(510, 0);
    mbr.extend([0x55, 0xaa]);
    write_at(&tmp, 0, &mbr);
    // 4 KiB blocks and no 64bit feature: what syslinux 6.04 reads on ext4.
    run(
        "mkfs.ext4",
        &[
            "-q",
            "-F",
            "-b",
            "4096",
            "-O",
            "^64bit",
            "-L",
            "drill-root",
            "-E",
            &format!("offset={PART_OFFSET}"),
            "-d",
            root.to_str().unwrap(),
            tmp.to_str().unwrap(),
            &format!("{}k", PART_SIZE / 1024),
        ],
    );
    let mnt = work.join("mnt");
    with_partition(&tmp, &mnt, |dir| run("extlinux", &["--install", dir.join("boot/extlinux").to_str().unwrap()]));
    std::fs::rename(&tmp, img).unwrap();
}

/// Mounts the image's partition (a loop device at its offset) on `mnt` for `f`; unmounts and
/// detaches after, and flushes the image file.
pub fn with_partition<T>(image: &Path, mnt: &Path, f: impl FnOnce(&Path) -> T) -> T {
    std::fs::create_dir_all(mnt).unwrap();
    let out = Command::new("losetup")
        .args(["-f", "--show", "-o", &PART_OFFSET.to_string(), "--sizelimit", &PART_SIZE.to_string()])
        .arg(image)
        .output()
        .unwrap();
    assert!(out.status.success(), "losetup: {}", String::from_utf8_lossy(&out.stderr));
    let dev = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let _loop = crate::blockdev::LoopDev { dev: PathBuf::from(&dev) };
    let r = {
        let _m = crate::blockdev::Mount::mount(Path::new(&dev), mnt);
        f(mnt)
    };
    run("sync", &[]);
    r
}

/// Writes `text` as `/etc/drill-note` of the image's filesystem.
pub fn write_note(image: &Path, mnt: &Path, text: &str) {
    with_partition(image, mnt, |dir| std::fs::write(dir.join("etc/drill-note"), format!("{text}\n")).unwrap());
}

/// Replaces the guest's `/sbin/init` in the image's filesystem with `script` (with the power
/// button's handler, [`with_power_button`]).
pub fn replace_init(image: &Path, mnt: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    with_partition(image, mnt, |dir| {
        let init = dir.join("sbin/init");
        std::fs::write(&init, with_power_button(script)).unwrap();
        std::fs::set_permissions(&init, std::fs::Permissions::from_mode(0o755)).unwrap();
    });
}

/// Whether QEMU is installed (the instant recovery tests run under TCG without /dev/kvm).
pub fn qemu_missing() -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    ["qemu-system-x86_64", "qemu-img", "qemu-io"]
        .into_iter()
        .find(|p| !std::env::split_paths(&path).any(|d| d.join(p).is_file()))
        .map(|p| format!("{p} is not installed (Debian: qemu-system-x86, qemu-utils; scripts/setup.sh)"))
}

/// Whether process `pid` runs (and is no zombie).
pub fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// Writes `bytes` at `offset` of `file`, synced.
pub fn write_at(file: &Path, offset: u64, bytes: &[u8]) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new().write(true).open(file).unwrap();
    f.write_all_at(bytes, offset).unwrap();
    f.sync_all().unwrap();
}
