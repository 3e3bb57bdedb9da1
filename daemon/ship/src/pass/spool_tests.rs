//! The spooled pass over a [`MemoryStandby`]: the whole epoch is read before anything is sent,
//! held chunks still ship as hashes, memory spills to the file, a full spool sends directly,
//! and a connection lost while shipping the spool loses nothing.

use super::tests::{CS, Fixture, noise_chunk, text_chunk};
use super::*;
use crate::memory::EndOutcome;
use std::sync::atomic::AtomicUsize;

fn memory_only(bytes: u64) -> SpoolConfig {
    SpoolConfig { memory_bytes: bytes, dir: None, file_bytes: 0 }
}

#[test]
fn a_spooled_pass_reads_the_whole_epoch_before_it_sends() {
    let content: Vec<Vec<u8>> = (0..64).map(|i| if i % 9 == 0 { vec![0u8; CS] } else { text_chunk(i) }).collect();
    let f = Fixture::new(content);
    let seen_at_reads_done = Arc::new(AtomicUsize::new(usize::MAX));
    let hook: ReadsDone = {
        let (standby, seen) = (f.standby.clone(), seen_at_reads_done.clone());
        Arc::new(move || {
            let _ = seen.compare_exchange(usize::MAX, standby.received().len(), Ordering::SeqCst, Ordering::SeqCst);
        })
    };
    let spool = Arc::new(Spool::new(memory_only(64 << 20), 0));
    let (epoch, r) = f.pass_with(true, |_| Some(spool.clone()), Some(hook));
    let s = r.unwrap();
    assert_eq!(seen_at_reads_done.load(Ordering::SeqCst), 0, "nothing is sent before every chunk is read");
    assert_eq!((s.chunks, s.zero, s.data), (64, 8, 56));
    assert_eq!(f.standby.received().len(), 64);
    assert!(!spool.usage().overflowed);
    assert_eq!(f.end(epoch), EndOutcome::Acked(epoch));
    f.assert_standby_equals_disk();
    assert_eq!(f.dirty(), 0);
}

#[test]
fn spooled_chunks_the_standby_holds_ship_as_hashes() {
    let content: Vec<Vec<u8>> = (0..6).map(text_chunk).collect();
    let f = Fixture::new(content.clone());
    for c in &content[..3] {
        f.standby.hold(c);
    }
    let (epoch, r) = f.pass_with(true, |e| Some(Arc::new(Spool::new(memory_only(1 << 20), e))), None);
    let s = r.unwrap();
    assert_eq!((s.chunks, s.dedup, s.data), (6, 3, 3));
    assert_eq!(f.standby.counts().1, 1, "one Have query for the batch");
    f.end(epoch);
    f.assert_standby_equals_disk();
}

#[test]
fn memory_spills_to_the_file_which_is_gone_with_the_spool() {
    let content: Vec<Vec<u8>> = (0..256).map(noise_chunk).collect();
    let f = Fixture::new(content);
    let dir = tempfile::TempDir::new().unwrap();
    let cfg = SpoolConfig { memory_bytes: 64 << 10, dir: Some(dir.path().to_path_buf()), file_bytes: 64 << 20 };
    let spool = Arc::new(Spool::new(cfg, 7));
    let (epoch, r) = f.pass_with(true, |_| Some(spool.clone()), None);
    assert_eq!(r.unwrap().data, 256);
    let file = spool::spool_path(dir.path(), 7);
    let spilled = std::fs::metadata(&file).unwrap().len();
    assert!(spilled > 900 * 1024, "most of 1 MiB of noise went to the file: {spilled}");
    let u = spool.usage();
    assert!(u.items < 256 && !u.overflowed, "{u:?}");
    f.end(epoch);
    f.assert_standby_equals_disk();
    drop(spool);
    assert!(!file.exists(), "the spool file outlived its spool");
}

#[test]
fn a_full_spool_sends_the_rest_as_it_is_read() {
    let content: Vec<Vec<u8>> = (0..64).map(noise_chunk).collect();
    let f = Fixture::new(content);
    let spool = Arc::new(Spool::new(memory_only(32 << 10), 0));
    let (epoch, r) = f.pass_with(true, |_| Some(spool.clone()), None);
    assert_eq!(r.unwrap().chunks, 64);
    assert!(spool.usage().overflowed, "the spool says it overflowed");
    assert_eq!(f.standby.received().len(), 64, "every chunk arrived once");
    assert_eq!(f.end(epoch), EndOutcome::Acked(epoch));
    f.assert_standby_equals_disk();
}

#[test]
fn a_connection_lost_while_shipping_the_spool_loses_nothing() {
    let content: Vec<Vec<u8>> = (0..1024).map(noise_chunk).collect();
    let f = Fixture::new(content);
    f.standby.drop_after(1);
    let (_, r) = f.pass_with(true, |e| Some(Arc::new(Spool::new(memory_only(64 << 20), e))), None);
    let e = r.unwrap_err();
    assert!(matches!(e, PassError::LinkClosed), "{e:?}");
    assert_eq!(f.dirty(), 1024, "nothing acknowledged: every chunk is still dirty");
    f.standby.reconnect();
    let (e2, r) = f.pass_with(true, |e| Some(Arc::new(Spool::new(memory_only(64 << 20), e))), None);
    assert_eq!(r.unwrap().chunks, 1024);
    assert_eq!(f.end(e2), EndOutcome::Acked(e2));
    assert_eq!(f.dirty(), 0);
    f.assert_standby_equals_disk();
}

#[test]
fn leftover_spool_files_are_cleared() {
    let dir = tempfile::TempDir::new().unwrap();
    std::fs::write(spool::spool_path(dir.path(), 3), b"left by a killed agent").unwrap();
    std::fs::write(dir.path().join("keep.txt"), b"not ours").unwrap();
    assert_eq!(clear_spool_dir(dir.path()).unwrap(), 1);
    assert!(dir.path().join("keep.txt").exists());
    assert_eq!(clear_spool_dir(&dir.path().join("absent")).unwrap(), 0);
}

#[test]
fn a_chunk_written_during_the_reads_is_read_again_and_shipped_once() {
    let content: Vec<Vec<u8>> = (0..8).map(text_chunk).collect();
    let f = Fixture::new(content);
    let disk = f.disk_path();
    // The "write" lands after the reads, before the spool ships; the tracker reports it.
    let later = noise_chunk(99);
    let hook: ReadsDone = {
        let (disk, later) = (disk.clone(), later.clone());
        Arc::new(move || {
            use std::os::unix::fs::FileExt;
            let file = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
            file.write_all_at(&later, 3 * CS as u64).unwrap();
            file.sync_all().unwrap();
        })
    };
    let recheck: Recheck = Arc::new(|| Some(vec![vec![(3, 1)]]));
    let spool = Arc::new(Spool::new(memory_only(1 << 20), 0));
    let (epoch, r) = f.pass_full(true, Some(spool.clone()), Some(hook), Some(recheck));
    let s = r.unwrap();
    assert_eq!((s.chunks, s.data), (8, 8), "chunk 3 counted once: {s:?}");
    let chunk3: Vec<_> = f.standby.received().into_iter().filter(|r| r.2 == 3).collect();
    assert_eq!(chunk3.len(), 1, "chunk 3 shipped once: {chunk3:?}");
    f.end(epoch);
    assert_eq!(f.standby.version(0, 3), Some(drpair_wire::WireVersion::Data(crate::hash_chunk(&later))));
    assert_eq!(f.standby.version(0, 2), Some(drpair_wire::WireVersion::Data(crate::hash_chunk(&text_chunk(2)))));
}

#[test]
fn many_scattered_chunks_are_read_again_without_stalling_the_reader() {
    // 200 runs of one chunk: more requests than the reader has buffers.
    let content: Vec<Vec<u8>> = (0..400).map(text_chunk).collect();
    let f = Fixture::new(content);
    let recheck: Recheck = Arc::new(|| Some(vec![(0..200).map(|i| (i * 2, 1)).collect()]));
    let spool = Arc::new(Spool::new(memory_only(64 << 20), 0));
    let (epoch, r) = f.pass_full(true, Some(spool), None, Some(recheck));
    assert_eq!(r.unwrap().chunks, 400);
    assert_eq!(f.standby.received().len(), 400, "each chunk once");
    f.end(epoch);
    f.assert_standby_equals_disk();
}
