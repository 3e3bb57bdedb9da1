//! Failback towards the original side: the standby sends the recovered side's chunks that
//! differ from this server's disks, and the agent writes them in place. Each chunk's bytes are
//! checked against their blake3 hash before they touch a disk; the disks are opened
//! exclusively (a mounted disk refuses) and synced before the answer. The tracker sees these
//! writes like any other, so the next epoch ships them back (as known hashes: the standby
//! stored them first) and the standby's newest point equals the recovered side again.

use crate::link::AbortOnDrop;
use drpair_types::DiskGeometry;
use drpair_wire::{AgentMsg, ChunkBody, ChunkItem, FailbackWrites, StandbyMsg, encode};
use std::fs::File;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// The disks being written by one failback request.
struct Writer {
    disks: Vec<(PathBuf, DiskGeometry)>,
    open: Vec<Option<File>>,
    done: FailbackWrites,
    /// The first failure; later chunks of the request are skipped.
    failed: Option<String>,
}

impl Writer {
    fn new(disks: Vec<(PathBuf, DiskGeometry)>) -> Self {
        let open = disks.iter().map(|_| None).collect();
        Self { disks, open, done: FailbackWrites::default(), failed: None }
    }

    fn file(&mut self, disk: usize) -> Result<&File, String> {
        let (path, _) = self.disks.get(disk).ok_or_else(|| format!("the agent has no disk {disk}"))?;
        if self.open[disk].is_none() {
            // O_EXCL on a block device: refused while it is mounted or held exclusively.
            let f = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(libc::O_EXCL)
                .open(path)
                .map_err(|e| match e.raw_os_error() {
                    Some(libc::EBUSY) => format!(
                        "{} is in use (mounted, or held by another program): stop the workload on the original server and unmount it, then fail back again",
                        path.display()
                    ),
                    _ => format!("cannot open {} for writing: {e}", path.display()),
                })?;
            self.open[disk] = Some(f);
        }
        Ok(self.open[disk].as_ref().expect("opened above"))
    }

    fn write(&mut self, items: Vec<ChunkItem>) {
        for it in items {
            if self.failed.is_some() {
                return;
            }
            if let Err(e) = self.write_one(it) {
                self.failed = Some(e);
            }
        }
    }

    fn write_one(&mut self, it: ChunkItem) -> Result<(), String> {
        let d = it.disk as usize;
        let g = self.disks.get(d).map(|(_, g)| *g).ok_or_else(|| format!("the agent has no disk {d}"))?;
        if it.index >= g.chunk_count() {
            return Err(format!("disk {d} has {} chunks, not chunk {}", g.chunk_count(), it.index));
        }
        let len = g.chunk_len(it.index) as usize;
        let data = match it.body {
            ChunkBody::Zero => vec![0u8; len],
            ChunkBody::Data { hash, raw_len, compressed, payload } => {
                let data = if compressed {
                    drpair_codec::decompress(&payload, raw_len)
                        .map_err(|e| format!("disk {d} chunk {}: cannot decompress: {e}", it.index))?
                } else {
                    payload
                };
                if data.len() != len || *blake3::hash(&data).as_bytes() != hash {
                    return Err(format!(
                        "disk {d} chunk {}: the bytes do not match their hash; nothing more written",
                        it.index
                    ));
                }
                data
            }
            ChunkBody::Known(_) => {
                return Err(format!("disk {d} chunk {}: a failback write must carry the bytes", it.index));
            }
        };
        let at = it.index * g.chunk_size.bytes() as u64;
        self.file(d)?.write_all_at(&data, at).map_err(|e| format!("disk {d} at byte {at}: write failed: {e}"))?;
        self.done.chunks += 1;
        self.done.bytes += len as u64;
        Ok(())
    }

    /// Syncs and closes the disks; the request's result.
    fn finish(&mut self) -> Result<FailbackWrites, String> {
        for (i, f) in self.open.iter_mut().enumerate() {
            if let Some(f) = f.take()
                && let Err(e) = f.sync_all()
            {
                self.failed.get_or_insert(format!("disk {i}: sync failed: {e}"));
            }
        }
        let done = std::mem::take(&mut self.done);
        match self.failed.take() {
            Some(e) => Err(format!("{e} ({} chunk(s) were written before)", done.chunks)),
            None => Ok(done),
        }
    }
}

/// Starts the task writing failback chunks for one connection: feed it
/// [`StandbyMsg::FailbackWrite`] and [`StandbyMsg::FailbackEnd`]; it answers on `out`.
pub fn spawn(
    disks: Vec<(PathBuf, DiskGeometry)>,
    out: mpsc::Sender<Vec<u8>>,
) -> (mpsc::Sender<StandbyMsg>, AbortOnDrop) {
    let (tx, mut rx) = mpsc::channel::<StandbyMsg>(8);
    let task = tokio::spawn(async move {
        let mut w = Some(Writer::new(disks));
        while let Some(m) = rx.recv().await {
            let mut writer = w.take().expect("writer");
            let (writer, answer) = tokio::task::spawn_blocking(move || {
                let answer = match m {
                    StandbyMsg::FailbackWrite { items, .. } => {
                        writer.write(items);
                        None
                    }
                    StandbyMsg::FailbackEnd { req } => {
                        let result = writer.finish();
                        match &result {
                            Ok(r) => tracing::warn!(chunks = r.chunks, bytes = r.bytes, "failback: wrote the recovered side's differing chunks onto this server's disks and synced them"),
                            Err(e) => tracing::error!("failback: writing onto this server's disks failed: {e}"),
                        }
                        Some(AgentMsg::FailbackWritten { req, result })
                    }
                    _ => None,
                };
                (writer, answer)
            })
            .await
            .expect("failback writer");
            w = Some(writer);
            if let Some(a) = answer
                && out.send(encode(&a).expect("encode")).await.is_err()
            {
                break;
            }
        }
    });
    (tx, AbortOnDrop(task))
}
