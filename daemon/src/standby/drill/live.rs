//! What the standby holds of its running drills: each drill's status, disks, scratch
//! directory and connections. Owned by the standby (`Standby::drills`); the code that starts,
//! serves and stops drills is in `drill/mod.rs`.

use super::disk::DrillDisk;
use crate::standby::pair::PairHandle;
use drpair_types::DrillStatus;
use std::collections::HashMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};

/// A drill being served.
pub(super) struct Live {
    pub(super) status: Mutex<DrillStatus>,
    pub(super) pair: Arc<PairHandle>,
    pub(super) disks: Vec<Arc<DrillDisk>>,
    pub(super) dir: PathBuf,
    pub(super) addr: std::net::SocketAddr,
    pub(super) stopping: AtomicBool,
    /// The clients connected now, by a number of their own (each removed when it ends).
    pub(super) conns: Arc<Mutex<HashMap<u64, TcpStream>>>,
    /// The guest booted from the exports, while it runs (taken by the drill's stop).
    pub(super) guest: Mutex<Option<Arc<super::guest::GuestCtl>>>,
    /// Whether the drill's success was noted (by whichever of its parts passed last).
    pub(super) noted: AtomicBool,
}

/// The standby's running drills.
#[derive(Default)]
pub struct Drills {
    pub(super) live: Mutex<HashMap<String, Arc<Live>>>,
    pub(super) next: AtomicU64,
}

impl Drills {
    /// The running drills (all pairs), with their overlays' sizes now.
    pub fn running(&self) -> Vec<DrillStatus> {
        let live: Vec<_> = self.live.lock().expect("drills").values().cloned().collect();
        let mut v: Vec<_> = live.iter().map(|l| l.snapshot()).collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v
    }

    pub fn get(&self, id: &str) -> Option<DrillStatus> {
        self.live.lock().expect("drills").get(id).map(|l| l.snapshot())
    }
}

impl Live {
    pub(super) fn snapshot(&self) -> DrillStatus {
        let mut s = self.status.lock().expect("drill").clone();
        for (e, d) in s.exports.iter_mut().zip(&self.disks) {
            e.written_chunks = d.written_chunks();
        }
        s
    }
}
