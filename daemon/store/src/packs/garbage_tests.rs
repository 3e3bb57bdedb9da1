//! Garbage on packs, over object_store's in-memory store: reclaim debits the ledger and
//! deletes emptied packs, sparse packs are rewritten, a rewrite stopped at each step (as a
//! kill -9 would) loses nothing and leaves only garbage the next pass removes, and the
//! orphan sweep deletes exactly the unnamed, unflighted packs of this prefix.

use super::tests::{chunks, objects, open, write_epoch};
use super::*;
use crate::{ChunkVersion, StoredChunk};
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;

type Data = Vec<(Hash, Vec<u8>)>;

/// Point 1: 40 chunks (packs of 16, 16 and 8 chunks at 1 MiB per pack); point 2 rewrites
/// chunks 0..30. Point 1 removed and reclaimed: the first pack is emptied (deleted by
/// reclaim), the second keeps 2 of 16 chunks (sparse), the third all of its 8.
fn sparse_store(dir: &std::path::Path, bucket: &Arc<InMemory>) -> (Store, Data, Data) {
    let s = open(dir, bucket, 1 << 20);
    let first = chunks(40, 1);
    write_epoch(&s, 1, &first);
    let second = chunks(30, 2);
    write_epoch(&s, 2, &second);
    assert_eq!(objects(bucket), 3 + 2);
    s.remove_points(1, &[1]).unwrap();
    let r = s.reclaim().unwrap();
    assert_eq!((r.chunks_deleted, r.packs_emptied), (30, 1), "{r:?}");
    (s, first, second)
}

/// Every chunk point 2 sees reads back: chunks 0..30 from `second`, 30..40 from `first`.
fn assert_point_2(s: &Store, first: &Data, second: &Data) {
    for (i, at) in (0..40u64).zip(0..40usize) {
        let ((h, d), epoch) = if i < 30 { (&second[at], 2) } else { (&first[at], 1) };
        assert_eq!(s.version_at(1, 0, i, 2).unwrap(), Some((epoch, ChunkVersion::Data(*h))), "chunk {i}");
        assert_eq!(&s.read_chunk(h).unwrap(), d, "chunk {i}");
    }
}

fn ledger_packs(s: &Store) -> u64 {
    s.pack_usage().unwrap().unwrap().packs
}

#[test]
fn reclaim_debits_packs_and_a_rewrite_moves_live_chunks_out_of_sparse_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let (s, first, second) = sparse_store(dir.path(), &bucket);
    let u = s.pack_usage().unwrap().unwrap();
    assert_eq!((u.packs, u.sparse_packs), (4, 1), "{u:?}");
    let stored = 65536 + 5;
    assert_eq!(u.garbage_bytes, 14 * stored, "{u:?}");
    assert_eq!(u.live_bytes, 40 * stored, "{u:?}");
    assert_eq!(objects(&bucket), 4);

    let t = s.tidy_packs().unwrap().unwrap();
    assert_eq!((t.packs_rewritten, t.packs_written, t.chunks_moved, t.orphans_deleted), (1, 1, 2, 0), "{t:?}");
    let u = s.pack_usage().unwrap().unwrap();
    assert_eq!((u.packs, u.sparse_packs, u.garbage_bytes, u.live_bytes), (4, 0, 0, 40 * stored), "{u:?}");
    assert_eq!(objects(&bucket), 4);
    assert_point_2(&s, &first, &second);
    // Nothing left to do; reopened, the same.
    assert_eq!(s.tidy_packs().unwrap().unwrap().packs_rewritten, 0);
    drop(s);
    let s = open(dir.path(), &bucket, 1 << 20);
    assert_point_2(&s, &first, &second);
    assert!(s.verify_points(1, None, |_| true).unwrap().damaged.is_empty());
    // The pair wiped: every pack goes with the reclaim, none is left in the bucket.
    s.wipe_pair(1).unwrap();
    let r = s.reclaim().unwrap();
    assert_eq!((r.chunks_deleted, r.packs_emptied), (40, 4), "{r:?}");
    assert_eq!((ledger_packs(&s), objects(&bucket)), (0, 0));
}

#[test]
fn a_rewrite_stopped_at_any_step_loses_nothing_and_leaves_garbage_the_next_pass_removes() {
    for step in ["uploaded", "switched"] {
        let dir = tempfile::tempdir().unwrap();
        let bucket = Arc::new(InMemory::new());
        let (s, first, second) = sparse_store(dir.path(), &bucket);
        *s.packs().unwrap().crash_at.lock().unwrap() = Some(step);
        let e = s.tidy_packs().unwrap_err().to_string();
        assert!(e.contains(step), "{e}");
        // The standby dies here: the bucket holds one object more than the ledger names.
        drop(s);
        assert_eq!(objects(&bucket), 5, "after '{step}'");
        let mut s = open(dir.path(), &bucket, 1 << 20);
        assert_point_2(&s, &first, &second);
        assert_eq!(ledger_packs(&s), 4, "after '{step}'");
        let p = Arc::get_mut(&mut s.inner).unwrap().packs.as_mut().unwrap();
        p.orphan_grace = Duration::ZERO;
        let t = s.tidy_packs().unwrap().unwrap();
        assert_eq!(t.orphans_deleted, 1, "after '{step}': {t:?}");
        // Stopped before the switch, the sparse pack is rewritten now; after it, it is the
        // orphan.
        assert_eq!(t.packs_rewritten, u64::from(step == "uploaded"), "after '{step}': {t:?}");
        assert_eq!((ledger_packs(&s), objects(&bucket)), (4, 4), "after '{step}'");
        let u = s.pack_usage().unwrap().unwrap();
        assert_eq!((u.garbage_bytes, u.sparse_packs), (0, 0), "after '{step}': {u:?}");
        assert_point_2(&s, &first, &second);
        assert!(s.verify_points(1, None, |_| true).unwrap().damaged.is_empty());
    }
}

#[test]
fn the_sweep_deletes_only_unnamed_packs_of_its_prefix_that_are_not_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let mut s = open(dir.path(), &bucket, 1 << 20);
    Arc::get_mut(&mut s.inner).unwrap().packs.as_mut().unwrap().orphan_grace = Duration::ZERO;
    write_epoch(&s, 1, &chunks(8, 3));
    // A pack sealed and uploaded, not yet indexed (no writer came since): in flight.
    let data = chunks(17, 4);
    let stored: Vec<(Hash, StoredChunk<'_>)> =
        data.iter().map(|(h, d)| (*h, StoredChunk { compressed: false, raw_len: 65536, payload: d })).collect();
    s.put_chunks(&stored, false).unwrap();
    let t0 = std::time::Instant::now();
    while objects(&bucket) < 2 {
        assert!(t0.elapsed() < Duration::from_secs(10), "the sealed pack was never uploaded");
        std::thread::sleep(Duration::from_millis(5));
    }
    // An orphan (as left by a crash), and objects under the prefix that are not our packs.
    let p = s.packs().unwrap();
    let orphan = uuid::Uuid::new_v4();
    let foreign = [
        object_store::path::Path::from("site-a/packs/zz/notes.txt"),
        object_store::path::Path::from(format!("site-a/packs/00/{}.pack", orphan.simple())),
        object_store::path::Path::from(format!("site-b/packs/{}.pack", &orphan.simple().to_string()[..2])),
    ];
    for key in std::iter::once(p.remote.pack_key(&orphan)).chain(foreign.iter().cloned()) {
        let b = bucket.clone();
        p.remote.wait(async move { b.put(&key, Bytes::from_static(b"x").into()).await.unwrap() });
    }
    let t = s.tidy_packs().unwrap().unwrap();
    assert_eq!((t.orphans_deleted, t.bytes_deleted), (1, 1), "{t:?}");
    let b = bucket.clone();
    let left = p.remote.wait(async move {
        use futures_util::TryStreamExt;
        object_store::ObjectStore::list(&*b, None).try_collect::<Vec<_>>().await.unwrap()
    });
    assert_eq!(left.len(), 2 + foreign.len(), "{left:?}");
    // Once indexed, the in-flight pack is named by the ledger, and still kept.
    s.write_frame(1, 2, &[], &[(0, 0, ChunkVersion::Data(data[0].0))], false).unwrap();
    s.flush().unwrap();
    // (The commit sealed the 17th chunk into a third pack.)
    assert_eq!(ledger_packs(&s), 3);
    assert_eq!(s.tidy_packs().unwrap().unwrap().orphans_deleted, 0);
    for (h, d) in &data {
        assert_eq!(&s.read_chunk(h).unwrap(), d);
    }
    // With the default grace, a fresh orphan is left alone.
    drop(s);
    let s = open(dir.path(), &bucket, 1 << 20);
    let p = s.packs().unwrap();
    let key = p.remote.pack_key(&uuid::Uuid::new_v4());
    let b = bucket.clone();
    p.remote.wait(async move { b.put(&key, Bytes::from_static(b"y").into()).await.unwrap() });
    assert_eq!(s.tidy_packs().unwrap().unwrap().orphans_deleted, 0);
}

#[test]
fn a_store_with_packs_and_no_ledger_gets_one_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let s = open(dir.path(), &bucket, 1 << 20);
    write_epoch(&s, 1, &chunks(20, 5));
    let before = s.pack_usage().unwrap().unwrap();
    // As a store of the first slice left it: entries, no ledger.
    let mut batch = rocksdb::WriteBatch::default();
    for (id, _) in s.packs().unwrap().records(&s).unwrap() {
        batch.delete_cf(s.cf(CF_PACKS), ledger::pack_key(&id));
    }
    batch.delete_cf(s.cf(crate::options::CF_META), b"packs_ledger");
    s.write_synced(batch).unwrap();
    assert_eq!(ledger_packs(&s), 0);
    drop(s);
    let s = open(dir.path(), &bucket, 1 << 20);
    assert_eq!(s.pack_usage().unwrap().unwrap(), before);
}

#[test]
fn reads_during_a_rewrite_find_each_chunk_at_its_old_or_new_place() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let (s, first, second) = sparse_store(dir.path(), &bucket);
    let done = std::sync::atomic::AtomicBool::new(false);
    let reads = std::thread::scope(|t| {
        let reader = t.spawn(|| {
            let mut reads = 0u64;
            // `first[30]` and `first[31]` are the sparse pack's two live chunks (the last two
            // of its 16), the ones the rewrite moves; the others stay where they are. Reads
            // go through the block cache or, missing the old pack, look the chunk up again.
            while !done.load(std::sync::atomic::Ordering::SeqCst) || reads < 200 {
                for (h, d) in first[30..40].iter().chain(&second[..2]) {
                    assert_eq!(&s.read_chunk(h).unwrap(), d, "read {reads}");
                    reads += 1;
                }
            }
            reads
        });
        let t = s.tidy_packs().unwrap().unwrap();
        assert_eq!(t.packs_rewritten, 1, "{t:?}");
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        reader.join().unwrap()
    });
    eprintln!("{reads} reads during and after the rewrite, none failed");
    assert_point_2(&s, &first, &second);
}
