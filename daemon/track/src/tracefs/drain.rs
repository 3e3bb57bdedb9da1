//! Reading the per-CPU pipes and folding their events into the pending chunks; the background
//! thread that does it between cuts.
//!
//! Everything the reader and the cuts share lives in one [`Shared`] behind one mutex: a page
//! is read, parsed and folded while holding it, so a cut that takes the lock and drains once
//! more sees every event that completed before it, and nothing is stamped twice or dropped
//! between a read and a fold.

use super::device::Target;
use super::format::{CompleteFormat, PageLayout, Record};
use super::loss::Loss;
use super::page::parse_page;
use super::pending::Pending;
use super::rwbs::{OpClass, classify};
use crate::tracker::TrackerStats;
use std::fs::File;
use std::io::{self, Read};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// One CPU's `trace_pipe_raw`, open non-blocking.
#[derive(Debug)]
pub struct Reader {
    pub cpu: u32,
    pub file: File,
}

/// The state the drainer and the cuts share.
#[derive(Debug)]
pub struct Shared {
    pub layout: PageLayout,
    pub format: CompleteFormat,
    pub readers: Vec<Reader>,
    /// Pages read per CPU per drain at most: more than the buffer holds, so a drain reads
    /// everything that was in the buffer when it began, yet ends under a writer that never
    /// stops.
    pub max_pages: usize,
    pub targets: Vec<Target>,
    pub pending: Pending,
    pub loss: Loss,
    pub stats: TrackerStats,
    buf: Vec<u8>,
}

impl Shared {
    pub fn new(
        layout: PageLayout,
        format: CompleteFormat,
        readers: Vec<Reader>,
        buffer_kib: u64,
        targets: Vec<Target>,
        pending: Pending,
        loss: Loss,
    ) -> Self {
        let page = layout.page_size().max(1);
        let buffer_pages = usize::try_from(buffer_kib.saturating_mul(1024)).unwrap_or(usize::MAX).div_ceil(page);
        Self {
            buf: vec![0u8; page],
            max_pages: buffer_pages.saturating_add(8),
            layout,
            format,
            readers,
            targets,
            pending,
            loss,
            stats: TrackerStats::default(),
        }
    }

    /// Reads every CPU's pipe until it is empty (or `max_pages` were read).
    pub fn drain(&mut self) {
        for i in 0..self.readers.len() {
            self.drain_cpu(i);
        }
    }

    fn drain_cpu(&mut self, i: usize) {
        let cpu = self.readers[i].cpu;
        for _ in 0..self.max_pages {
            let n = match self.readers[i].file.read(&mut self.buf) {
                Ok(0) => return,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.loss.note(format!("cpu {cpu}: reading trace_pipe_raw failed ({e})"));
                    return;
                }
            };
            self.fold_page(cpu, n);
        }
    }

    /// Parses the page in `buf[..n]` and folds its events.
    fn fold_page(&mut self, cpu: u32, n: usize) {
        let Self { layout, format, buf, targets, pending, stats, .. } = self;
        let mut truncated = 0usize;
        let summary = parse_page(layout, &buf[..n], |record| match format.decode(record) {
            Record::Complete(c) => {
                let class = classify(c.rwbs);
                if !class.changes_data() || c.nr_sector == 0 {
                    return;
                }
                let mut ours = false;
                for (disk, t) in targets.iter().enumerate() {
                    if let Some((first, last)) = t.chunks(c.dev, c.sector, c.nr_sector) {
                        pending.mark(disk, first, last);
                        ours = true;
                    }
                }
                if ours {
                    count(stats, class);
                }
            }
            Record::Other => {}
            Record::Truncated => truncated += 1,
        });
        self.loss.in_band(cpu, summary.missed);
        if let Some(reason) = summary.malformed {
            self.loss.note(format!("cpu {cpu}: malformed ring-buffer page ({reason})"));
        }
        if truncated > 0 {
            self.loss.note(format!("cpu {cpu}: {truncated} records too short to decode"));
        }
    }
}

fn count(stats: &mut TrackerStats, class: OpClass) {
    stats.events += 1;
    match class {
        OpClass::Discard => stats.discards += 1,
        OpClass::Zeroes => stats.zeroes += 1,
        OpClass::Write | OpClass::Other | OpClass::Read => stats.writes += 1,
    }
}

/// Locks the shared state. A panic while holding it cannot leave it torn in a way that
/// matters (at worst a page half folded, which only over-reports), so poison is ignored.
pub fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The background thread draining the pipes every poll interval.
#[derive(Debug)]
pub struct Drainer {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drainer {
    pub fn spawn(shared: Arc<Mutex<Shared>>, interval: Duration) -> io::Result<Self> {
        let interval = interval.max(Duration::from_millis(1));
        let (tx, rx) = mpsc::channel::<()>();
        let thread = std::thread::Builder::new().name("tracefs-drain".into()).spawn(move || {
            // Any message or a dropped sender means stop.
            while let Err(RecvTimeoutError::Timeout) = rx.recv_timeout(interval) {
                lock(&shared).drain();
            }
        })?;
        Ok(Self { stop: Some(tx), thread: Some(thread) })
    }

    /// Stops the thread and waits for it (it finishes the drain it is in).
    pub fn stop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Drainer {
    fn drop(&mut self) {
        self.stop();
    }
}
