//! The standby's instant failover sessions now running, one per pair at most: what each holds
//! (the pair, its failover's live record, the NBD listener, the disks in mode `nbd`, the
//! guest's process in mode `boot`). Owned by the standby (`Standby::instant`).

use super::disk::InstantDisk;
use super::serve::Server;
use crate::standby::pair::PairHandle;
use crate::standby::pair::results::FailoverRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

pub struct Session {
    pub pair: Arc<PairHandle>,
    /// The failover's record as it goes (the pair's `rt.failover` while the session lives).
    pub job: Arc<Mutex<FailoverRecord>>,
    pub stopping: AtomicBool,
    pub server: Mutex<Option<Server>>,
    /// Mode `nbd`: the recovered disks.
    pub disks: Vec<Arc<InstantDisk>>,
    /// Mode `boot`: QEMU's pid now (0: none).
    pub guest_pid: AtomicI32,
    /// The session's task, until the copy ends.
    pub task: Mutex<Option<crate::standby::tasks::TaskHandle>>,
    ended: Mutex<bool>,
    cv: Condvar,
}

impl Session {
    pub fn new(
        pair: Arc<PairHandle>,
        job: Arc<Mutex<FailoverRecord>>,
        disks: Vec<Arc<InstantDisk>>,
        task: crate::standby::tasks::TaskHandle,
    ) -> Self {
        Session {
            task: Mutex::new(Some(task)),
            pair,
            job,
            stopping: AtomicBool::new(false),
            server: Mutex::new(None),
            disks,
            guest_pid: AtomicI32::new(0),
            ended: Mutex::new(false),
            cv: Condvar::new(),
        }
    }

    /// Marks the session's worker gone.
    pub fn finished(&self) {
        *self.ended.lock().expect("ended") = true;
        self.cv.notify_all();
    }

    /// Waits at most `wait` for the worker to be gone; true when it is.
    pub fn wait_finished(&self, wait: Duration) -> bool {
        let g = self.ended.lock().expect("ended");
        let (g, _) = self.cv.wait_timeout_while(g, wait, |e| !*e).expect("ended");
        *g
    }

    /// Stops serving the exports (and cuts their clients off).
    pub fn stop_server(&self) {
        if let Some(s) = self.server.lock().expect("server").take() {
            s.stop();
        }
    }
}

/// The running sessions, by pair id.
#[derive(Default)]
pub struct Sessions {
    pub(super) map: Mutex<HashMap<String, Arc<Session>>>,
}

impl Sessions {
    pub fn get(&self, pair: &str) -> Option<Arc<Session>> {
        self.map.lock().expect("sessions").get(pair).cloned()
    }

    pub fn running(&self, pair: &str) -> bool {
        self.map.lock().expect("sessions").contains_key(pair)
    }
}
