//! The spool: an epoch's chunks, read and hashed right after the cut at the local disks'
//! speed, held raw until the link takes them (compressed as they ship: the read window holds
//! no compression time).
//!
//! Without it a pass reads while it sends, so on a link slower than the server's change rate
//! the last chunks of an epoch are read long after its cut and the point mixes states of the
//! disks far apart in time (a database may not start from it). With it, the read window is the
//! local read time of one epoch, whatever the link.
//!
//! Memory first (`memory_bytes`), then an append-only file in the spool directory (up to
//! `max_bytes`), each entry a checksummed frame of the link format. When both are full the
//! spool says so and the caller sends the chunk directly instead: nothing blocks the server's
//! writes and nothing is lost, the point's read window grows and says so.
//!
//! The spool holds one epoch and lives as long as its pass: its file is deleted when the pass
//! ends, shipped or not. An entry is never the only copy of anything: until the standby
//! acknowledges the epoch, every chunk of it stays dirty in the change map, so an agent that
//! dies with a full spool reads those chunks again at its next cut.

use super::PassError;
use drpair_types::Epoch;
use drpair_wire::{ChunkBody, ChunkItem, HEADER_LEN, decode_body, decode_header, encode};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Where and how much an epoch may spool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolConfig {
    /// Bytes held in memory before the file is used.
    pub memory_bytes: u64,
    /// The directory of the spool file; `None`: memory only.
    pub dir: Option<PathBuf>,
    /// Bytes the spool file may hold.
    pub file_bytes: u64,
}

/// Bytes an item is counted for: its payload plus its envelope.
fn cost(item: &ChunkItem) -> u64 {
    64 + match &item.body {
        ChunkBody::Data { payload, .. } => payload.len() as u64,
        _ => 0,
    }
}

/// What a spool holds now (for progress reports).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SpoolUse {
    pub items: u64,
    pub bytes: u64,
    /// Both memory and file were full at least once: some chunks went directly.
    pub overflowed: bool,
}

struct Inner {
    mem: Vec<ChunkItem>,
    mem_bytes: u64,
    /// Written one whole frame per call (about a chunk): a failed write shows at once.
    file: Option<File>,
    file_bytes: u64,
    file_items: u64,
    overflowed: bool,
    /// The file could not be written: the rest of the epoch goes directly.
    file_failed: bool,
    /// Chunks read again after the reads (see `recheck`): shipped last, in place of what was
    /// spooled for the same (disk, chunk).
    last: Vec<ChunkItem>,
}

impl Inner {
    /// A spool file that cannot be written (disk full, removed directory) never stops
    /// replication: the items written so far still ship, the rest goes directly.
    fn give_up(&mut self, path: &Path, what: &str, e: std::io::Error, item: ChunkItem) -> ChunkItem {
        tracing::warn!(path = %path.display(), "spool file: {what}: {e}; the rest of the epoch is sent as it is read");
        self.file_failed = true;
        self.overflowed = true;
        item
    }
}

/// One epoch's spool (see the module).
pub struct Spool {
    cfg: SpoolConfig,
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
}

/// The spool file of `epoch` in `dir`.
pub fn spool_path(dir: &Path, epoch: Epoch) -> PathBuf {
    dir.join(format!("epoch-{epoch}.spool"))
}

/// Deletes spool files a previous run left (an agent killed with a full spool): their chunks
/// are still dirty and are read again. Returns how many were removed.
pub fn clear_dir(dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for e in entries {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "spool") {
            std::fs::remove_file(&p)?;
            n += 1;
        }
    }
    Ok(n)
}

impl Spool {
    /// An empty spool for `epoch` (the file is created on first use).
    pub fn new(cfg: SpoolConfig, epoch: Epoch) -> Self {
        let path = cfg.dir.as_deref().map(|d| spool_path(d, epoch));
        let inner = Inner {
            mem: Vec::new(),
            mem_bytes: 0,
            file: None,
            file_bytes: 0,
            file_items: 0,
            overflowed: false,
            file_failed: false,
            last: Vec::new(),
        };
        Self { cfg, path, inner: Mutex::new(inner) }
    }

    /// Keeps `item`; gives it back when the spool is full (the caller sends it directly).
    pub fn push(&self, item: ChunkItem) -> Result<Option<ChunkItem>, PassError> {
        let c = cost(&item);
        let mut g = self.inner.lock().expect("spool");
        if g.mem_bytes + c <= self.cfg.memory_bytes {
            g.mem_bytes += c;
            g.mem.push(item);
            return Ok(None);
        }
        let Some(path) = &self.path else {
            g.overflowed = true;
            return Ok(Some(item));
        };
        if g.file_bytes + c > self.cfg.file_bytes {
            g.overflowed = true;
            return Ok(Some(item));
        }
        if g.file_failed {
            return Ok(Some(item));
        }
        if g.file.is_none() {
            match File::create(path) {
                Ok(f) => g.file = Some(f),
                Err(e) => return Ok(Some(g.give_up(path, "create", e, item))),
            }
        }
        let frame = encode(&item).map_err(|e| PassError::Encode(e.to_string()))?;
        if let Err(e) = g.file.as_mut().expect("opened above").write_all(&frame) {
            return Ok(Some(g.give_up(path, "write", e, item)));
        }
        g.file_bytes += c;
        g.file_items += 1;
        Ok(None)
    }

    /// Puts `items` in place of what the spool holds for the same chunks (they ship last).
    pub fn supersede(&self, items: Vec<ChunkItem>) {
        let mut g = self.inner.lock().expect("spool");
        g.mem_bytes += items.iter().map(cost).sum::<u64>();
        g.last.extend(items);
    }

    /// What the spool holds now.
    pub fn usage(&self) -> SpoolUse {
        let g = self.inner.lock().expect("spool");
        SpoolUse {
            items: g.mem.len() as u64 + g.file_items + g.last.len() as u64,
            bytes: g.mem_bytes + g.file_bytes,
            overflowed: g.overflowed,
        }
    }

    /// Hands everything spooled to `ship` in batches of about `batch_bytes`, memory first, then
    /// the file in the order written, then what superseded items (those go to `skipped`
    /// instead of `ship`).
    pub fn drain(
        &self,
        batch_bytes: u64,
        mut skipped: impl FnMut(&ChunkItem),
        mut ship: impl FnMut(Vec<ChunkItem>) -> Result<(), PassError>,
    ) -> Result<(), PassError> {
        let (mem, file, file_items, last) = {
            let mut g = self.inner.lock().expect("spool");
            let mem = std::mem::take(&mut g.mem);
            g.mem_bytes = 0;
            (mem, g.file.take(), g.file_items, std::mem::take(&mut g.last))
        };
        let replaced: HashSet<(u32, u64)> = last.iter().map(|i| (i.disk, i.index)).collect();
        let mut batch = Vec::new();
        let mut bytes = 0;
        let mut add = |item: ChunkItem, batch: &mut Vec<ChunkItem>, bytes: &mut u64| -> Result<(), PassError> {
            if replaced.contains(&(item.disk, item.index)) {
                skipped(&item);
                return Ok(());
            }
            *bytes += cost(&item);
            batch.push(item);
            if *bytes >= batch_bytes {
                *bytes = 0;
                ship(std::mem::take(batch))?;
            }
            Ok(())
        };
        for item in mem {
            add(item, &mut batch, &mut bytes)?;
        }
        if let (Some(f), Some(path)) = (file, &self.path) {
            // A frame cut short by a failed write is after the last counted one: never read.
            drop(f);
            let mut r = BufReader::with_capacity(1 << 20, File::open(path).map_err(|e| spool_error(path, "open", e))?);
            let mut head = [0u8; HEADER_LEN];
            let mut body = Vec::new();
            for _ in 0..file_items {
                r.read_exact(&mut head).map_err(|e| spool_error(path, "read", e))?;
                let h = decode_header(&head).map_err(|e| PassError::Spool(format!("{}: {e}", path.display())))?;
                body.resize(h.len as usize, 0);
                r.read_exact(&mut body).map_err(|e| spool_error(path, "read", e))?;
                let item: ChunkItem =
                    decode_body(h, &body).map_err(|e| PassError::Spool(format!("{}: {e}", path.display())))?;
                add(item, &mut batch, &mut bytes)?;
            }
        }
        // The rechecked chunks last (they are what replaced the others).
        for item in last {
            bytes += cost(&item);
            batch.push(item);
            if bytes >= batch_bytes {
                bytes = 0;
                ship(std::mem::take(&mut batch))?;
            }
        }
        if !batch.is_empty() {
            ship(batch)?;
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some(p) = &self.path
            && let Err(e) = std::fs::remove_file(p)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %p.display(), "removing the spool file: {e}");
        }
    }
}

fn spool_error(path: &Path, what: &str, e: std::io::Error) -> PassError {
    PassError::Spool(format!("spool file {}: {what}: {e}", path.display()))
}
