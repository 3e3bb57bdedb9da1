//! The pass over a [`MemoryStandby`]: what ships, what is deduplicated, and what happens when
//! the standby loses an ack, refuses a chunk or drops the connection.

use super::*;
use crate::ErrorClass;
use crate::memory::{EndOutcome, MemoryStandby, Received};
use crate::pass::LevelSetting;
use drpair_types::{ChunkSize, Lineage};
use drpair_wire::WireVersion;
use tempfile::TempDir;

pub(super) const CS: usize = 4096;

/// One disk of `content.len()` chunks in a temp dir, its change map (every chunk stamped 1),
/// and a standby in memory.
pub(super) struct Fixture {
    pub(super) _dir: TempDir,
    disks: Vec<(PathBuf, DiskGeometry)>,
    maps: Arc<Mutex<Vec<ChangeMap>>>,
    pub(super) standby: Arc<MemoryStandby>,
    content: Vec<Vec<u8>>,
}

pub(super) fn text_chunk(i: u64) -> Vec<u8> {
    format!("chunk {i} of a text-like disk; ").bytes().cycle().take(CS).collect()
}

/// Bytes zstd cannot shrink, different for every chunk.
pub(super) fn noise_chunk(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..CS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

impl Fixture {
    pub(super) fn new(content: Vec<Vec<u8>>) -> Self {
        let dir = TempDir::new().unwrap();
        let path = dir.path().join("disk0.img");
        std::fs::write(&path, content.concat()).unwrap();
        let g = DiskGeometry::new((content.len() * CS) as u64, ChunkSize::new(CS as u64).unwrap()).unwrap();
        let map = ChangeMap::create(&dir.path().join("disk0.chmap"), g, Lineage::new_v4(), 1).unwrap();
        Fixture {
            disks: vec![(path, g)],
            maps: Arc::new(Mutex::new(vec![map])),
            standby: Arc::new(MemoryStandby::new()),
            content,
            _dir: dir,
        }
    }

    /// Cuts an epoch and runs a pass over the dirty chunks.
    fn pass(&self, dedup: bool) -> (Epoch, Result<PassSummary, PassError>) {
        self.pass_with(dedup, |_| None, None)
    }

    /// Like [`Fixture::pass`], with the spool `spool(epoch)` makes and a `reads_done` hook.
    pub(super) fn pass_with(
        &self,
        dedup: bool,
        spool: impl FnOnce(Epoch) -> Option<Arc<Spool>>,
        reads_done: Option<ReadsDone>,
    ) -> (Epoch, Result<PassSummary, PassError>) {
        self.pass_inner(dedup, spool, reads_done, None)
    }

    /// Like [`Fixture::pass_with`], with a recheck.
    pub(super) fn pass_full(
        &self,
        dedup: bool,
        spool: Option<Arc<Spool>>,
        reads_done: Option<ReadsDone>,
        recheck: Option<Recheck>,
    ) -> (Epoch, Result<PassSummary, PassError>) {
        self.pass_inner(dedup, |_| spool, reads_done, recheck)
    }

    /// The first disk's image file.
    pub(super) fn disk_path(&self) -> PathBuf {
        self.disks[0].0.clone()
    }

    fn pass_inner(
        &self,
        dedup: bool,
        spool: impl FnOnce(Epoch) -> Option<Arc<Spool>>,
        reads_done: Option<ReadsDone>,
        recheck: Option<Recheck>,
    ) -> (Epoch, Result<PassSummary, PassError>) {
        let epoch = self.maps.lock().unwrap()[0].begin_cut().unwrap();
        let maps: Arc<Mutex<dyn ChangeMaps>> = self.maps.clone();
        let ctx = PassCtx {
            maps,
            disks: self.disks.clone(),
            engine: Engine::Pread,
            epoch,
            mode: PassMode::Dirty,
            kind: PassKind::Incremental,
            workers: 2,
            compression: Arc::new(CompressionCtl::new(LevelSetting::Zstd(1), 2)),
            standby: self.standby.clone(),
            progress: Arc::new(PassProgress::default()),
            abort: Arc::new(AtomicBool::new(false)),
            hold: Arc::new(AtomicBool::new(false)),
            dedup,
            resync: None,
            reads_done,
            spool: spool(epoch),
            recheck,
        };
        (epoch, run(ctx))
    }

    /// Ends the epoch on the standby; an ack that arrives advances the change map.
    pub(super) fn end(&self, epoch: Epoch) -> EndOutcome {
        let out = self.standby.end_epoch(epoch).unwrap();
        if out == EndOutcome::Acked(epoch) {
            self.maps.lock().unwrap()[0].set_acked(epoch).unwrap();
        }
        out
    }

    pub(super) fn dirty(&self) -> u64 {
        self.maps.lock().unwrap()[0].dirty_count()
    }

    /// The standby's newest point equals the disk, chunk by chunk.
    pub(super) fn assert_standby_equals_disk(&self) {
        for (i, data) in self.content.iter().enumerate() {
            match self.standby.version(0, i as u64) {
                Some(WireVersion::Zero) => assert!(crate::is_zero(data), "chunk {i}"),
                Some(WireVersion::Data(h)) => {
                    assert_eq!(h, crate::hash_chunk(data), "chunk {i}");
                    assert_eq!(self.standby.data(&h).as_deref(), Some(&data[..]), "chunk {i}");
                }
                None => panic!("chunk {i} missing on the standby"),
            }
        }
    }
}

#[test]
fn a_pass_ships_every_dirty_chunk_and_nothing_once_acked() {
    let content: Vec<Vec<u8>> = (0..8).map(|i| if i == 2 || i == 5 { vec![0u8; CS] } else { text_chunk(i) }).collect();
    let f = Fixture::new(content);
    let (epoch, r) = f.pass(true);
    let s = r.unwrap();
    assert_eq!((s.chunks, s.zero, s.dedup, s.data), (8, 2, 0, 6));
    assert!(s.payload_bytes < 6 * CS as u64 / 4, "text compresses: {s:?}");
    assert!(f.standby.received().iter().all(|r| r.3 != Received::Data { compressed: false }));
    assert_eq!(f.end(epoch), EndOutcome::Acked(epoch));
    f.assert_standby_equals_disk();
    assert_eq!(f.dirty(), 0);
    let (_, r) = f.pass(true);
    assert_eq!(r.unwrap(), PassSummary::default());
}

#[test]
fn chunks_the_standby_holds_ship_as_hashes() {
    let content: Vec<Vec<u8>> = (0..6).map(text_chunk).collect();
    let f = Fixture::new(content.clone());
    for c in &content[..3] {
        f.standby.hold(c);
    }
    let (epoch, r) = f.pass(true);
    let s = r.unwrap();
    assert_eq!((s.chunks, s.dedup, s.data), (6, 3, 3));
    let known: Vec<u64> = f.standby.received().iter().filter(|r| r.3 == Received::Known).map(|r| r.2).collect();
    assert_eq!(known, vec![0, 1, 2]);
    f.end(epoch);
    f.assert_standby_equals_disk();

    // A full copy (no dedup) sends every byte even of held chunks, and asks nothing.
    let g = Fixture::new(content.clone());
    for c in &content {
        g.standby.hold(c);
    }
    let s = g.pass(false).1.unwrap();
    assert_eq!((s.dedup, s.data), (0, 6));
    assert_eq!(g.standby.counts().1, 0, "no Have query");
}

#[test]
fn zero_chunks_travel_as_a_flag() {
    let f = Fixture::new(vec![vec![0u8; CS]; 16]);
    let (epoch, r) = f.pass(true);
    let s = r.unwrap();
    assert_eq!((s.chunks, s.zero, s.data, s.dedup, s.payload_bytes), (16, 16, 0, 0, 0));
    assert_eq!(f.standby.counts().1, 0, "zero chunks need no Have query");
    f.end(epoch);
    f.assert_standby_equals_disk();
}

#[test]
fn a_lost_ack_ships_the_epoch_again() {
    let content: Vec<Vec<u8>> = (0..8).map(text_chunk).collect();
    let f = Fixture::new(content);
    let (e1, r) = f.pass(true);
    assert_eq!(r.unwrap().data, 8);
    f.standby.lose_next_ack();
    assert_eq!(f.end(e1), EndOutcome::AckLost(e1));
    // Nothing acknowledged: every chunk is still dirty and ships again, as hashes now.
    assert_eq!(f.dirty(), 8);
    let (e2, r) = f.pass(true);
    let s = r.unwrap();
    assert_eq!((s.chunks, s.dedup, s.data), (8, 8, 0));
    assert_eq!(f.end(e2), EndOutcome::Acked(e2));
    assert_eq!(f.standby.epochs(), vec![e1, e2]);
    assert_eq!(f.dirty(), 0);
    f.assert_standby_equals_disk();
}

#[test]
fn a_refused_chunk_fails_the_pass_and_acknowledges_nothing() {
    let content: Vec<Vec<u8>> = (0..8).map(text_chunk).collect();
    let f = Fixture::new(content);
    f.standby.refuse_chunk(0, 3);
    let (_, r) = f.pass(true);
    let e = r.unwrap_err();
    assert!(matches!(e, PassError::Refused(_)), "{e:?}");
    assert!(e.to_string().starts_with("standby refused: disk 0 chunk 3"), "{e}");
    assert_eq!(e.class(), ErrorClass::Permanent);
    assert_eq!(f.dirty(), 8);
    assert!(f.standby.epochs().is_empty());
}

#[test]
fn a_connection_dropped_mid_epoch_loses_nothing() {
    // 2048 chunks of noise: 8 MiB shipped raw in frames of about 1 MiB.
    let content: Vec<Vec<u8>> = (0..2048).map(noise_chunk).collect();
    let f = Fixture::new(content);
    f.standby.drop_after(2);
    let (_, r) = f.pass(true);
    let e = r.unwrap_err();
    assert!(matches!(e, PassError::LinkClosed | PassError::Aborted), "{e:?}");
    assert_eq!(e.class(), ErrorClass::Transient);
    let before = f.standby.received().len() as u64;
    assert!(before > 0 && before < 2048, "{before} chunks arrived before the drop");
    assert_eq!(f.dirty(), 2048);

    // Reconnect: the uncommitted epoch is gone on the standby; the next epoch ships every
    // chunk again, those already received as hashes.
    f.standby.reconnect();
    let (e2, r) = f.pass(true);
    let s = r.unwrap();
    assert_eq!(s.chunks, 2048);
    assert_eq!(s.dedup, before);
    assert_eq!(s.data, 2048 - before);
    assert_eq!(f.end(e2), EndOutcome::Acked(e2));
    assert_eq!(f.dirty(), 0);
    f.assert_standby_equals_disk();
}
