//! Failback towards the original side: the standby sends the recovered side's chunks that
//! differ from this server's disks, and the agent writes them in place. Each chunk's bytes are
//! checked against their blake3 hash before they touch a disk; the disks are opened
//! exclusively (a mounted disk refuses) and synced before the answer. The tracker sees these
//! writes like any other, so the next epoch ships them back (as known hashes: the standby
//! stored them first) and the standby's newest point equals the recovered side again.

use crate::link::AbortOnDrop;
use drpair_codec::CodecError;
use drpair_types::{DiskGeometry, ErrorClass};
use drpair_wire::{AgentMsg, ChunkBody, ChunkItem, FailbackWrites, StandbyMsg, encode};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::PathBuf;
use tokio::sync::mpsc;

/// Why the agent could not write a failback's chunks onto its disks. The message goes back to
/// the standby, into the failback's status; each names the disk, and the chunk or byte.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The standby named a disk the agent does not have.
    #[error("the agent has no disk {0}")]
    NoDisk(usize),
    /// The disk is mounted or held exclusively by another program.
    #[error(
        "{} is in use (mounted, or held by another program): stop the workload on the original server and unmount it, then fail back again",
        .0.display()
    )]
    InUse(PathBuf),
    /// The agent was not held: it replicates, so no failback runs that it was told of.
    #[error("the agent is replicating, not held for a failback: failback writes are refused")]
    NotHeld,
    /// Writes of a request no `FailbackBegin` announced (or another request's).
    #[error("failback request {0} was not announced to this agent: its writes are refused, nothing written")]
    NotBegun(u64),
    /// The failback announced another pair's disks.
    #[error("the failback is for pair '{asked}', this agent protects pair '{own}': refused, nothing written")]
    OtherPair { asked: String, own: String },
    /// The disk cannot be opened for writing.
    #[error("cannot open {} for writing: {source}", .path.display())]
    Open { path: PathBuf, source: io::Error },
    /// The chunk lies beyond the disk's end.
    #[error("disk {disk} has {chunks} chunks, not chunk {chunk}")]
    OutOfRange { disk: usize, chunks: u64, chunk: u64 },
    /// The chunk's bytes do not decompress.
    #[error("disk {disk} chunk {chunk}: cannot decompress: {source}")]
    Decompress { disk: usize, chunk: u64, source: CodecError },
    /// The chunk's bytes do not hash to what the standby announced.
    #[error("disk {disk} chunk {chunk}: the bytes do not match their hash; nothing more written")]
    Damaged { disk: usize, chunk: u64 },
    /// The standby sent a hash where the bytes are needed.
    #[error("disk {disk} chunk {chunk}: a failback write must carry the bytes")]
    NoBytes { disk: usize, chunk: u64 },
    /// Writing onto the disk failed.
    #[error("disk {disk} at byte {at}: write failed: {source}")]
    Write { disk: usize, at: u64, source: io::Error },
    /// Syncing the disk failed.
    #[error("disk {disk}: sync failed: {source}")]
    Sync { disk: usize, source: io::Error },
    /// The request's first failure, with what had been written before it.
    #[error("{first} ({written} chunk(s) were written before)")]
    Stopped {
        #[source]
        first: Box<WriteError>,
        written: u64,
    },
}

impl WriteError {
    /// Bytes damaged on the way may arrive intact when the failback is run again; a disk in
    /// use, failing or not the standby's idea of it needs someone to act first.
    pub fn class(&self) -> ErrorClass {
        match self {
            WriteError::Decompress { .. } | WriteError::Damaged { .. } => ErrorClass::Transient,
            WriteError::Stopped { first, .. } => first.class(),
            WriteError::NoDisk(_)
            | WriteError::InUse(_)
            | WriteError::Open { .. }
            | WriteError::OutOfRange { .. }
            | WriteError::NoBytes { .. }
            | WriteError::Write { .. }
            | WriteError::Sync { .. }
            | WriteError::NotHeld
            | WriteError::NotBegun(_)
            | WriteError::OtherPair { .. } => ErrorClass::Permanent,
        }
    }
}

/// The disks being written by one failback request.
struct Writer {
    disks: Vec<(PathBuf, DiskGeometry)>,
    open: Vec<Option<File>>,
    done: FailbackWrites,
    /// The first failure; later chunks of the request are skipped.
    failed: Option<WriteError>,
}

impl Writer {
    fn new(disks: Vec<(PathBuf, DiskGeometry)>) -> Self {
        let open = disks.iter().map(|_| None).collect();
        Self { disks, open, done: FailbackWrites::default(), failed: None }
    }

    fn file(&mut self, disk: usize) -> Result<&File, WriteError> {
        let (path, _) = self.disks.get(disk).ok_or(WriteError::NoDisk(disk))?;
        if self.open[disk].is_none() {
            // O_EXCL on a block device: refused while it is mounted or held exclusively.
            let f =
                std::fs::OpenOptions::new().write(true).custom_flags(libc::O_EXCL).open(path).map_err(|e| {
                    match e.raw_os_error() {
                        Some(libc::EBUSY) => WriteError::InUse(path.clone()),
                        _ => WriteError::Open { path: path.clone(), source: e },
                    }
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

    fn write_one(&mut self, it: ChunkItem) -> Result<(), WriteError> {
        let d = it.disk as usize;
        let g = self.disks.get(d).map(|(_, g)| *g).ok_or(WriteError::NoDisk(d))?;
        if it.index >= g.chunk_count() {
            return Err(WriteError::OutOfRange { disk: d, chunks: g.chunk_count(), chunk: it.index });
        }
        if let ChunkBody::ZeroRun { count } = it.body {
            // The whole run fits the disk, or nothing of it is written.
            let end =
                it.index.checked_add(count).filter(|&end| end <= g.chunk_count()).ok_or(WriteError::OutOfRange {
                    disk: d,
                    chunks: g.chunk_count(),
                    chunk: it.index.saturating_add(count) - 1,
                })?;
            for index in it.index..end {
                self.write_one(ChunkItem { disk: it.disk, index, body: ChunkBody::Zero })?;
            }
            return Ok(());
        }
        let len = g.chunk_len(it.index) as usize;
        let data = match it.body {
            ChunkBody::Zero | ChunkBody::ZeroRun { .. } => vec![0u8; len],
            ChunkBody::Data { hash, raw_len, compressed, payload } => {
                let data = if compressed {
                    drpair_codec::decompress(&payload, raw_len).map_err(|source| WriteError::Decompress {
                        disk: d,
                        chunk: it.index,
                        source,
                    })?
                } else {
                    payload
                };
                if data.len() != len || *blake3::hash(&data).as_bytes() != hash {
                    return Err(WriteError::Damaged { disk: d, chunk: it.index });
                }
                data
            }
            ChunkBody::Known(_) => {
                return Err(WriteError::NoBytes { disk: d, chunk: it.index });
            }
        };
        let at = it.index * g.chunk_size.bytes() as u64;
        self.file(d)?.write_all_at(&data, at).map_err(|source| WriteError::Write { disk: d, at, source })?;
        self.done.chunks += 1;
        self.done.bytes += len as u64;
        Ok(())
    }

    /// Syncs and closes the disks; the request's result.
    fn finish(&mut self) -> Result<FailbackWrites, WriteError> {
        for (i, f) in self.open.iter_mut().enumerate() {
            if let Some(f) = f.take()
                && let Err(source) = f.sync_all()
            {
                self.failed.get_or_insert(WriteError::Sync { disk: i, source });
            }
        }
        let done = std::mem::take(&mut self.done);
        match self.failed.take() {
            Some(e) => Err(WriteError::Stopped { first: Box::new(e), written: done.chunks }),
            None => Ok(done),
        }
    }
}

/// Which failback the agent was told of: the request begun, if any. Writes are
/// taken only between a `FailbackBegin` for this agent's own pair, received while held, and
/// the `FailbackEnd` of the same request.
struct Gate {
    pair: String,
    begun: Option<u64>,
}

impl Gate {
    /// Whether one message may act on the disks; the refusal otherwise.
    fn admit(&mut self, m: &StandbyMsg, held: bool) -> Result<(), WriteError> {
        match m {
            StandbyMsg::FailbackBegin { req, pair_id } => {
                self.begun = None;
                if !held {
                    return Err(WriteError::NotHeld);
                }
                if *pair_id != self.pair {
                    return Err(WriteError::OtherPair { asked: pair_id.clone(), own: self.pair.clone() });
                }
                self.begun = Some(*req);
                Ok(())
            }
            StandbyMsg::FailbackWrite { req, .. } | StandbyMsg::FailbackEnd { req } if self.begun != Some(*req) => {
                Err(WriteError::NotBegun(*req))
            }
            StandbyMsg::FailbackWrite { .. } if !held => Err(WriteError::NotHeld),
            _ => Ok(()),
        }
    }
}

/// Starts the task writing failback chunks for one connection: feed it
/// [`StandbyMsg::FailbackBegin`], [`StandbyMsg::FailbackWrite`] and [`StandbyMsg::FailbackEnd`];
/// it answers on `out`. Writes land only during a failback of `pair` begun while `held` says
/// the standby holds this agent (a failed-over pair is held); otherwise they are refused with
/// nothing written, and the failback's end hears why.
pub fn spawn(
    pair: String,
    disks: Vec<(PathBuf, DiskGeometry)>,
    out: mpsc::Sender<Vec<u8>>,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> (mpsc::Sender<StandbyMsg>, AbortOnDrop) {
    let (tx, mut rx) = mpsc::channel::<StandbyMsg>(8);
    let task = tokio::spawn(async move {
        let mut w = Some(Writer::new(disks));
        let mut gate = Gate { pair, begun: None };
        while let Some(m) = rx.recv().await {
            let is_held = held.load(std::sync::atomic::Ordering::Relaxed);
            let admitted = gate.admit(&m, is_held);
            if let StandbyMsg::FailbackEnd { .. } = m {
                gate.begun = None;
            }
            let mut writer = w.take().expect("writer");
            let (writer, answer) = tokio::task::spawn_blocking(move || {
                if let StandbyMsg::FailbackBegin { .. } = m {
                    // A request starts clean; a refused begin keeps only its own refusal.
                    writer.done = FailbackWrites::default();
                    writer.failed = None;
                }
                if let Err(e) = admitted {
                    tracing::error!("failback: {e}");
                    if writer.failed.is_none() {
                        writer.failed = Some(e);
                    }
                }
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
                        // The standby hears the failure in words.
                        Some(AgentMsg::FailbackWritten { req, result: result.map_err(|e| e.to_string()) })
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

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::ChunkSize;

    fn writer(dir: &std::path::Path) -> Writer {
        let path = dir.join("disk");
        std::fs::write(&path, vec![0u8; 2 * 4096]).unwrap();
        let g = DiskGeometry::new(2 * 4096, ChunkSize::new(4096).unwrap()).unwrap();
        Writer::new(vec![(path, g)])
    }

    fn data(index: u64, bytes: &[u8], hash: [u8; 32]) -> ChunkItem {
        let body = ChunkBody::Data { hash, raw_len: 4096, compressed: false, payload: bytes.to_vec() };
        ChunkItem { disk: 0, index, body }
    }

    fn begin(req: u64, pair: &str) -> StandbyMsg {
        StandbyMsg::FailbackBegin { req, pair_id: pair.into() }
    }

    fn write(req: u64) -> StandbyMsg {
        StandbyMsg::FailbackWrite { req, items: vec![] }
    }

    #[test]
    fn writes_land_only_inside_a_failback_of_this_pair_begun_while_held() {
        let mut g = Gate { pair: "web-01".into(), begun: None };
        // An impostor's or a stray write: no failback was announced.
        assert!(matches!(g.admit(&write(7), true), Err(WriteError::NotBegun(7))));
        assert!(matches!(g.admit(&StandbyMsg::FailbackEnd { req: 7 }, true), Err(WriteError::NotBegun(7))));
        // Announced while replicating, or for another pair's disks: refused.
        assert!(matches!(g.admit(&begin(8, "web-01"), false), Err(WriteError::NotHeld)));
        assert!(matches!(g.admit(&write(8), true), Err(WriteError::NotBegun(8))));
        let e = g.admit(&begin(9, "db-02"), true).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the failback is for pair 'db-02', this agent protects pair 'web-01': refused, nothing written"
        );
        assert!(matches!(g.admit(&write(9), true), Err(WriteError::NotBegun(9))));
        // The real thing: begun while held, for this pair; another request's writes refused.
        g.admit(&begin(10, "web-01"), true).unwrap();
        g.admit(&write(10), true).unwrap();
        assert!(matches!(g.admit(&write(11), true), Err(WriteError::NotBegun(11))));
        // Released (resumed) in the middle: the rest is refused.
        assert!(matches!(g.admit(&write(10), false), Err(WriteError::NotHeld)));
        g.admit(&StandbyMsg::FailbackEnd { req: 10 }, true).unwrap();
    }

    #[tokio::test]
    async fn an_unannounced_failback_writes_nothing_and_its_end_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk");
        std::fs::write(&path, vec![0u8; 2 * 4096]).unwrap();
        let g = DiskGeometry::new(2 * 4096, ChunkSize::new(4096).unwrap()).unwrap();
        let held = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let (tx, _task) = spawn("web-01".into(), vec![(path.clone(), g)], out_tx, held);
        let bytes = vec![9u8; 4096];
        let item = data(0, &bytes, *blake3::hash(&bytes).as_bytes());
        let answer = |frame: Vec<u8>| match drpair_wire::frame::decode_frame::<AgentMsg>(&frame).unwrap() {
            AgentMsg::FailbackWritten { req, result } => (req, result),
            other => panic!("unexpected {other:?}"),
        };
        tx.send(StandbyMsg::FailbackWrite { req: 1, items: vec![item.clone()] }).await.unwrap();
        tx.send(StandbyMsg::FailbackEnd { req: 1 }).await.unwrap();
        let (req, result) = answer(out_rx.recv().await.unwrap());
        assert_eq!(req, 1);
        assert!(result.unwrap_err().contains("was not announced to this agent"));
        assert_eq!(std::fs::read(&path).unwrap(), vec![0u8; 2 * 4096], "nothing written");

        tx.send(begin(2, "web-01")).await.unwrap();
        tx.send(StandbyMsg::FailbackWrite { req: 2, items: vec![item] }).await.unwrap();
        tx.send(StandbyMsg::FailbackEnd { req: 2 }).await.unwrap();
        let (req, result) = answer(out_rx.recv().await.unwrap());
        assert_eq!((req, result.unwrap().chunks), (2, 1));
        assert_eq!(std::fs::read(&path).unwrap()[..4096], bytes[..]);
    }

    #[test]
    fn the_standby_hears_the_first_failure_and_what_was_written_before() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = writer(dir.path());
        let good = vec![7u8; 4096];
        let bad = vec![8u8; 4096];
        w.write(vec![data(0, &good, *blake3::hash(&good).as_bytes()), data(1, &bad, [0; 32]), data(1, &good, [0; 32])]);
        let e = w.finish().unwrap_err();
        assert_eq!(
            e.to_string(),
            "disk 0 chunk 1: the bytes do not match their hash; nothing more written (1 chunk(s) were written before)"
        );
        assert_eq!(e.class(), ErrorClass::Transient, "damaged on the way: sent again, it may arrive intact");
        assert_eq!(std::fs::read(dir.path().join("disk")).unwrap()[..4096], good[..]);

        let mut w = writer(dir.path());
        w.write(vec![ChunkItem { disk: 3, index: 0, body: ChunkBody::Zero }]);
        let e = w.finish().unwrap_err();
        assert_eq!(e.to_string(), "the agent has no disk 3 (0 chunk(s) were written before)");
        assert_eq!(e.class(), ErrorClass::Permanent);
        let mut w = writer(dir.path());
        w.write(vec![ChunkItem { disk: 0, index: 2, body: ChunkBody::Zero }]);
        assert_eq!(
            w.finish().unwrap_err().to_string(),
            "disk 0 has 2 chunks, not chunk 2 (0 chunk(s) were written before)"
        );
    }
}
