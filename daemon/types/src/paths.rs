//! Where the standby keeps its files: shared by the daemon, which writes them, and the offline
//! tools that read them with no daemon running.

use std::path::{Path, PathBuf};

/// Where the standby keeps its store when neither flag nor file says (`[standby] data_dir`).
pub const DEFAULT_STANDBY_DATA_DIR: &str = "/var/lib/drpair/standby";

/// The store's directory below a standby's data dir.
pub fn standby_store_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("store")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_is_below_the_data_dir() {
        assert_eq!(standby_store_dir(Path::new(DEFAULT_STANDBY_DATA_DIR)), Path::new("/var/lib/drpair/standby/store"));
    }
}
