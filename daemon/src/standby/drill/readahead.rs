//! Read-ahead for a drill's disk: when reads go forward through the point one after the
//! other, [`THREADS`] threads of the disk read the next chunks (through the same
//! [`PointReader`]: one index scan per unit, every chunk decompressed and blake3-verified)
//! into a small cache before they are asked for, so a client reading the disk in order finds
//! them decoded. Several threads keep several reads of the store in flight: chunks are stored
//! by hash, so the next chunks of a disk are scattered over the store's files.
//!
//! The reads followed are one stream: a read near its end continues it (several reads in
//! flight start in any order, so "near" is within the read-ahead's reach). A read elsewhere
//! changes nothing and reads nothing ahead; when the next read continues that one, the stream
//! moves there.
//!
//! Invariants:
//! - **Exact.** A cache belongs to one reader: one pair, one disk, one point's epoch, and
//!   nothing else ever fills it; a point never changes, so a cached chunk is the point's
//!   chunk for as long as it is kept. (The drill's overlay is checked before this cache, so
//!   chunks written during the drill never come from here.)
//! - **Errors are not cached.** A chunk the read-ahead could not read is dropped; the
//!   caller's own read then meets the error, naming the disk and chunk.
//! - **Bounded.** Decoded chunks kept or being read ahead hold at most [`CACHE_BYTES`]; the
//!   oldest go first. Read-ahead runs at most [`AHEAD_BYTES`] past the last read.
//! - **No double work.** A read that needs a chunk the read-ahead is reading waits for it
//!   rather than reading it again. A chunk being read is always finished (read, or dropped on
//!   an error or a panic), so such a wait ends.
//! - **Ends with the disk.** When the [`ReadAhead`] goes, its threads finish the unit they
//!   are reading and end, skipping the units still asked for.

use drpair_store::{PointChunk, PointReadError, PointReader};
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

/// Bytes of decoded chunks one disk keeps at most.
pub const CACHE_BYTES: usize = 32 << 20;
/// How far past the last read the read-ahead goes.
pub const AHEAD_BYTES: u64 = 16 << 20;
/// Bytes read ahead per index scan.
const UNIT_BYTES: u64 = 2 << 20;
/// Reads in a row, each near where the one before ended, before read-ahead starts.
const STREAK: u32 = 2;
/// Threads reading ahead for one disk. They mostly wait for the store's files (a chunk's
/// decoding is a small part of its read): with 4, a cold 1 GiB drill read with `qemu-img
/// convert` took 1.2-1.5 s against 2.0-2.2 s with 2 and 2.8-3.1 s with no read-ahead (2 busy
/// cores).
pub const THREADS: usize = 4;

enum Slot {
    /// The read-ahead is reading it.
    Loading,
    Ready(Arc<PointChunk>),
}

#[derive(Default)]
struct Cache {
    slots: HashMap<u64, Slot>,
    /// Chunks in the order they were added, oldest first (for eviction).
    order: VecDeque<u64>,
    /// Bytes of the chunks in `slots` (loading ones counted at their length).
    bytes: usize,
    /// The stream followed: the chunk after its furthest read, and how many reads in a row
    /// continued it.
    next: u64,
    streak: u32,
    /// The chunk after the last read that did not continue the stream.
    elsewhere: Option<u64>,
    /// Read-ahead has been asked for every chunk below this.
    ahead_to: u64,
}

struct Shared {
    reader: PointReader,
    cache: Mutex<Cache>,
    loaded: Condvar,
    hits: AtomicU64,
    /// The [`ReadAhead`] is gone: units still asked for are skipped.
    stopped: AtomicBool,
}

/// A drill disk's reader with read-ahead.
pub struct ReadAhead {
    shared: Arc<Shared>,
    /// Units to read ahead; the threads end when this goes.
    jobs: SyncSender<(u64, u64)>,
}

fn lock(m: &Mutex<Cache>) -> MutexGuard<'_, Cache> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl ReadAhead {
    /// `reader`, with read-ahead threads that live as long as this value.
    pub fn new(reader: PointReader) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            reader,
            cache: Mutex::default(),
            loaded: Condvar::new(),
            hits: AtomicU64::new(0),
            stopped: AtomicBool::new(false),
        });
        let (jobs, rx) = sync_channel::<(u64, u64)>((AHEAD_BYTES / UNIT_BYTES) as usize);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..THREADS {
            let (s, rx) = (shared.clone(), rx.clone());
            std::thread::Builder::new().name("drill-readahead".into()).spawn(move || {
                loop {
                    let job = rx.lock().unwrap_or_else(PoisonError::into_inner).recv();
                    let Ok((first, count)) = job else { break };
                    if s.stopped.load(Ordering::Relaxed) {
                        break;
                    }
                    s.load_ahead(first, count);
                }
            })?;
        }
        Ok(Self { shared, jobs })
    }

    pub fn reader(&self) -> &PointReader {
        &self.shared.reader
    }

    /// Chunks served from the read-ahead so far.
    pub fn hits(&self) -> u64 {
        self.shared.hits.load(Ordering::Relaxed)
    }

    /// Bytes of decoded chunks held now.
    pub fn cached_bytes(&self) -> usize {
        lock(&self.shared.cache).bytes
    }

    /// Fills `buf` with the point's bytes from `offset`, as [`PointReader::read_at`] does,
    /// taking chunks from the read-ahead where it has them.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<(), PointReadError> {
        let r = &self.shared.reader;
        let g = r.geometry();
        let len = buf.len() as u64;
        if len == 0 || offset.checked_add(len).is_none_or(|end| end > g.size_bytes) {
            return r.read_at(offset, buf);
        }
        let cs = u64::from(g.chunk_size.bytes());
        let (first, last) = (offset / cs, (offset + len - 1) / cs);
        self.note_read(first, last);
        let mut pos = 0usize;
        let mut c = first;
        while c <= last {
            let within = if c == first { (offset % cs) as usize } else { 0 };
            if let Some(chunk) = self.shared.take(c) {
                self.shared.hits.fetch_add(1, Ordering::Relaxed);
                let n = (chunk.len() - within).min(buf.len() - pos);
                match &*chunk {
                    PointChunk::Zero(_) => buf[pos..pos + n].fill(0),
                    PointChunk::Data(d) => buf[pos..pos + n].copy_from_slice(&d[within..within + n]),
                }
                pos += n;
                c += 1;
                continue;
            }
            // A stretch the read-ahead does not hold: read it directly, in one call.
            let mut end = c + 1;
            while end <= last && !self.shared.holds(end) {
                end += 1;
            }
            let n = ((end * cs).min(g.size_bytes) - (c * cs + within as u64)).min((buf.len() - pos) as u64) as usize;
            r.read_at(c * cs + within as u64, &mut buf[pos..pos + n])?;
            pos += n;
            c = end;
        }
        debug_assert_eq!(pos, buf.len());
        Ok(())
    }

    /// Follows the reads' pattern; asks for read-ahead past a streak of reads in order.
    fn note_read(&self, first: u64, last: u64) {
        let r = &self.shared.reader;
        let total = r.geometry().chunk_count();
        let cs = u64::from(r.geometry().chunk_size.bytes());
        let unit = (UNIT_BYTES / cs).max(1);
        let ahead = (AHEAD_BYTES / cs).max(1);
        let near = |next: u64| first.abs_diff(next) <= ahead;
        let mut want = Vec::new();
        {
            let mut c = lock(&self.shared.cache);
            if near(c.next) {
                c.streak = c.streak.saturating_add(1);
                c.next = c.next.max(last + 1);
            } else if c.elsewhere.is_some_and(near) {
                // The read before this one started a new stream: follow it from here.
                c.streak = 2;
                c.next = last + 1;
                c.ahead_to = last + 1;
                c.elsewhere = None;
            } else {
                // A read elsewhere: the stream followed stays as it was.
                c.elsewhere = Some(last + 1);
                return;
            }
            if c.streak < STREAK {
                return;
            }
            let goal = (last + 1 + ahead).min(total);
            let mut from = c.ahead_to.max(last + 1);
            while from < goal {
                let count = unit.min(goal - from);
                want.push((from, count));
                from += count;
            }
            c.ahead_to = c.ahead_to.max(from);
        }
        for job in want {
            match self.jobs.try_send(job) {
                Ok(()) => {}
                // Full: the read-ahead is behind; what it skips, reads get directly.
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    lock(&self.shared.cache).ahead_to = job.0;
                    break;
                }
            }
        }
    }
}

impl Shared {
    /// Whether chunk `c` is held or being read ahead.
    fn holds(&self, c: u64) -> bool {
        lock(&self.cache).slots.contains_key(&c)
    }

    /// Chunk `c` from the read-ahead, waiting while it is being read; `None` when it does
    /// not hold it (or could not read it).
    fn take(&self, c: u64) -> Option<Arc<PointChunk>> {
        let mut cache = lock(&self.cache);
        loop {
            match cache.slots.get(&c) {
                None => return None,
                Some(Slot::Ready(chunk)) => return Some(chunk.clone()),
                Some(Slot::Loading) => cache = self.loaded.wait(cache).unwrap_or_else(PoisonError::into_inner),
            }
        }
    }

    /// Reads chunks `first..first + count` ahead, those still ahead of the reads and not held.
    fn load_ahead(&self, first: u64, count: u64) {
        let g = self.reader.geometry();
        let (from, end) = {
            let mut cache = lock(&self.cache);
            // Overtaken by the reads: nothing to gain.
            let to = first + count;
            let mut from = first.max(cache.next);
            while from < to && cache.slots.contains_key(&from) {
                from += 1;
            }
            let mut room = CACHE_BYTES.saturating_sub(cache.bytes);
            let mut end = from;
            while end < to && !cache.slots.contains_key(&end) {
                let len = g.chunk_len(end) as usize;
                if len > room {
                    // Make room: the oldest chunks that are ready go.
                    room += evict(&mut cache, len - room);
                    if len > room {
                        break;
                    }
                }
                room -= len;
                cache.slots.insert(end, Slot::Loading);
                cache.order.push_back(end);
                cache.bytes += len;
                end += 1;
            }
            (from, end)
        };
        if from >= end {
            return;
        }
        let to = end;
        // A panic must not leave the chunks loading: the reads waiting for them would wait on.
        let read = catch_unwind(AssertUnwindSafe(|| self.reader.chunks(from, to - from)));
        let mut cache = lock(&self.cache);
        match read {
            Ok(Ok(chunks)) => {
                for (c, chunk) in (from..).zip(chunks) {
                    cache.slots.insert(c, Slot::Ready(Arc::new(chunk)));
                }
            }
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "the reader panicked".to_string(),
                };
                tracing::debug!(disk = self.reader.disk(), "read-ahead of chunks {from}..{to}: {why}");
                for c in from..to {
                    cache.slots.remove(&c);
                    cache.bytes -= g.chunk_len(c) as usize;
                }
                cache.order.retain(|c| !(from..to).contains(c));
            }
        }
        drop(cache);
        self.loaded.notify_all();
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.shared.stopped.store(true, Ordering::Relaxed);
        let r = &self.shared.reader;
        tracing::debug!(disk = r.disk(), epoch = r.epoch(), hits = self.hits(), "drill read-ahead ends");
    }
}

/// Drops the oldest ready chunks until `need` bytes are freed (or none is left); returns the
/// bytes freed.
fn evict(cache: &mut Cache, need: usize) -> usize {
    let mut freed = 0;
    let mut kept = VecDeque::new();
    while freed < need {
        let Some(c) = cache.order.pop_front() else { break };
        match cache.slots.get(&c) {
            Some(Slot::Ready(chunk)) => {
                freed += chunk.len();
                cache.slots.remove(&c);
            }
            Some(Slot::Loading) => kept.push_back(c),
            None => {}
        }
    }
    while let Some(c) = kept.pop_back() {
        cache.order.push_front(c);
    }
    cache.bytes -= freed;
    freed
}

#[cfg(test)]
mod tests;
