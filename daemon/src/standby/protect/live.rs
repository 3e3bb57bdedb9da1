//! The protections running now ([`Protections`]): per original pair, the handle of the
//! thread supervising its agent ([`Supervisor`]). Knows nothing of the standby, so the
//! standby can hold it.

use drpair_types::PairId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// The supervising thread of one protection (`supervise.rs` runs it).
pub struct Supervisor {
    stop: Arc<AtomicBool>,
    pid: Arc<AtomicU32>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    /// The handle of a thread that watches `stop` and keeps the agent's pid in `pid` (0: none).
    pub fn new(stop: Arc<AtomicBool>, pid: Arc<AtomicU32>, thread: JoinHandle<()>) -> Self {
        Self { stop, pid, thread: Some(thread) }
    }

    /// The agent's process id while it runs.
    pub fn pid(&self) -> Option<u32> {
        Some(self.pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    /// Stops the agent (cleanly, SIGTERM) and waits for the thread.
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The supervisors of the protections running now, by original pair.
#[derive(Default)]
pub struct Protections {
    map: Mutex<HashMap<PairId, Supervisor>>,
}

impl Protections {
    /// The agent's process id, while the protection of `original` runs one.
    pub fn pid(&self, original: &PairId) -> Option<u32> {
        self.map.lock().expect("protections").get(original).and_then(Supervisor::pid)
    }

    /// Removes the supervisor of `original` (to stop it).
    pub fn take(&self, original: &PairId) -> Option<Supervisor> {
        self.map.lock().expect("protections").remove(original)
    }

    /// Keeps the supervisor of `original` (one replaced is stopped).
    pub fn put(&self, original: PairId, s: Supervisor) {
        let old = self.map.lock().expect("protections").insert(original, s);
        if let Some(old) = old {
            old.stop();
        }
    }
}
