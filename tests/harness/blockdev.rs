//! Loop devices, mounts and filesystem freezes, each undone on drop (even when a test fails).
//! Declare them in the order loop → mount → freeze so they are undone freeze → mount → loop.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A loop device attached to an image file; detached on drop.
pub struct LoopDev {
    pub dev: PathBuf,
}

impl LoopDev {
    pub fn attach(image: &Path) -> Self {
        let out = crate::sh("losetup", &["-f", "--show", &image.display().to_string()]);
        let dev = PathBuf::from(out.trim());
        crate::step(format!("attached {} to {}", dev.display(), image.display()));
        Self { dev }
    }

    /// Size of the device in bytes.
    pub fn size(&self) -> u64 {
        crate::sh("blockdev", &["--getsize64", &self.dev.display().to_string()]).trim().parse().expect("device size")
    }
}

impl Drop for LoopDev {
    fn drop(&mut self) {
        let dev = self.dev.display().to_string();
        for _ in 0..50 {
            if crate::sh_ok("losetup", &["-d", &dev]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: could not detach {dev}");
    }
}

/// Makes an ext4 filesystem on an image file or device.
pub fn mkfs_ext4(target: &Path) {
    crate::sh("mkfs.ext4", &["-q", "-F", &target.display().to_string()]);
}

/// A mounted filesystem; unmounted on drop (lazily if it stays busy).
pub struct Mount {
    pub dir: PathBuf,
}

impl Mount {
    pub fn mount(dev: &Path, dir: &Path) -> Self {
        std::fs::create_dir_all(dir).expect("mount point");
        crate::sh("mount", &[&dev.display().to_string(), &dir.display().to_string()]);
        Self { dir: dir.to_path_buf() }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let dir = self.dir.display().to_string();
        // Never leave a frozen filesystem behind: umount would block on it.
        let _ = crate::sh_ok("fsfreeze", &["-u", &dir]);
        for _ in 0..30 {
            if crate::sh_ok("umount", &[&dir]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!("warning: {dir} stays busy; lazy unmount");
        let _ = crate::sh_ok("umount", &["-l", &dir]);
    }
}

/// A filesystem frozen with `fsfreeze -f`; thawed by [`Freeze::thaw`] or on drop.
pub struct Freeze {
    dir: PathBuf,
    frozen: bool,
}

impl Freeze {
    /// Flushes and freezes the filesystem mounted at `dir`.
    pub fn freeze(dir: &Path) -> Self {
        crate::sh("fsfreeze", &["-f", &dir.display().to_string()]);
        crate::step(format!("froze {}", dir.display()));
        Self { dir: dir.to_path_buf(), frozen: true }
    }

    pub fn thaw(&mut self) {
        if self.frozen {
            crate::sh("fsfreeze", &["-u", &self.dir.display().to_string()]);
            self.frozen = false;
            crate::step(format!("thawed {}", self.dir.display()));
        }
    }
}

impl Drop for Freeze {
    fn drop(&mut self) {
        if self.frozen && !crate::sh_ok("fsfreeze", &["-u", &self.dir.display().to_string()]) {
            eprintln!("warning: could not thaw {}", self.dir.display());
        }
    }
}
