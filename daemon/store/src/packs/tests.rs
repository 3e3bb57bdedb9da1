//! Packs over object_store's in-memory store (the real S3 path is tested end to end on a
//! garage cluster in `tests/object_store_garage.rs`).

use super::remote::Remote;
use super::*;
use crate::test_support::{point, record};
use crate::{ChunkVersion, PairId, StoredChunk};
use object_store::ObjectStoreExt;
use object_store::memory::InMemory;

pub(super) fn open(dir: &std::path::Path, bucket: &Arc<InMemory>, pack_bytes: u64) -> Store {
    let remote = Remote::over(bucket.clone(), "memory bucket".into(), "site-a").unwrap();
    Store::open_inner(dir, Some(Packs::over(remote, pack_bytes, 4 << 20))).unwrap()
}

pub(super) fn objects(bucket: &Arc<InMemory>) -> usize {
    let remote = Remote::over(bucket.clone(), "memory bucket".into(), "site-a").unwrap();
    remote.count_packs().unwrap().0 as usize
}

/// Incompressible chunks of 64 KiB, stored raw.
pub(super) fn chunks(n: usize, seed: u8) -> Vec<(Hash, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let data: Vec<u8> =
                (0..65536u32).map(|j| (j.wrapping_mul(2654435761) >> (i % 13)) as u8 ^ seed ^ i as u8).collect();
            (*blake3::hash(&data).as_bytes(), data)
        })
        .collect()
}

pub(super) fn write_epoch(s: &Store, epoch: u64, data: &[(Hash, Vec<u8>)]) {
    let stored: Vec<(Hash, StoredChunk<'_>)> =
        data.iter().map(|(h, d)| (*h, StoredChunk { compressed: false, raw_len: 65536, payload: d })).collect();
    let versions: Vec<(u32, u64, ChunkVersion)> =
        data.iter().enumerate().map(|(i, (h, _))| (0, i as u64, ChunkVersion::Data(*h))).collect();
    for (part_s, part_v) in stored.chunks(8).zip(versions.chunks(8)) {
        s.write_frame(1, epoch, part_s, part_v, true).unwrap();
    }
    let a = PairId::new("a").unwrap();
    s.commit_point(1, &point("a", epoch), &a, &record("a", epoch)).unwrap();
}

#[test]
fn chunks_go_to_packs_uploaded_before_the_commit_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let s = open(dir.path(), &bucket, 1 << 20);
    let data = chunks(40, 1);
    // Before the commit: written chunks are held (in memory) and readable.
    let stored: Vec<(Hash, StoredChunk<'_>)> =
        data.iter().map(|(h, d)| (*h, StoredChunk { compressed: false, raw_len: 65536, payload: d })).collect();
    s.write_frame(1, 1, &stored[..4], &[(0, 0, ChunkVersion::Data(data[0].0))], true).unwrap();
    assert_eq!(objects(&bucket), 0, "a part-filled pack is not uploaded before a commit");
    assert_eq!(s.has_chunks(&[data[1].0, data[10].0]).unwrap(), [true, false]);
    assert_eq!(s.read_chunk(&data[2].0).unwrap(), data[2].1);
    // The commit uploads the open pack first.
    s.commit_point(1, &point("a", 1), &PairId::new("a").unwrap(), &record("a", 1)).unwrap();
    assert_eq!(objects(&bucket), 1);
    write_epoch(&s, 2, &data);
    // 40 chunks of 64 KiB in packs of at least 1 MiB: 3 packs, not 40 objects.
    let n = objects(&bucket);
    assert!((3..=4).contains(&n), "{n} pack objects");
    let stats = s.pack_stats().unwrap();
    assert_eq!(stats.packs_uploaded as usize, n);
    assert_eq!(s.pack_objects().unwrap().unwrap().0 as usize, n);
    drop(s);
    // Reopened: every chunk comes from the bucket, verified.
    let s = open(dir.path(), &bucket, 1 << 20);
    assert!(s.has_chunks(&data.iter().map(|(h, _)| *h).collect::<Vec<_>>()).unwrap().iter().all(|b| *b));
    for (h, d) in &data {
        assert_eq!(&s.read_chunk(h).unwrap(), d);
    }
    let v = s.verify_points(1, None, |_| true).unwrap();
    assert!(v.damaged.is_empty(), "{:?}", v.damaged);
    assert_eq!(v.chunks_checked, 40);
    // Every pack is self-describing.
    let remote = Remote::over(bucket.clone(), "memory bucket".into(), "site-a").unwrap();
    let listed: Vec<_> = remote
        .wait({
            let b = bucket.clone();
            async move {
                use futures_util::TryStreamExt;
                object_store::ObjectStore::list(&*b, None).try_collect::<Vec<_>>().await.unwrap()
            }
        })
        .into_iter()
        .map(|m| m.location)
        .collect();
    let mut indexed = 0;
    for key in listed {
        assert!(key.as_ref().starts_with("site-a/packs/"), "{key}");
        let b = bucket.clone();
        let bytes = remote.wait(async move { b.get(&key).await.unwrap().bytes().await.unwrap() });
        indexed += location::read_index(&bytes).unwrap().len();
    }
    assert_eq!(indexed, 40);
}

#[test]
fn a_damaged_pack_is_found_by_verify_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let s = open(dir.path(), &bucket, 1 << 20);
    let data = chunks(3, 7);
    write_epoch(&s, 1, &data);
    drop(s);
    // Flip one byte of the second chunk in the bucket.
    let remote = Remote::over(bucket.clone(), "memory bucket".into(), "site-a").unwrap();
    let b = bucket.clone();
    let key = remote
        .wait(async move {
            use futures_util::TryStreamExt;
            object_store::ObjectStore::list(&*b, None).try_collect::<Vec<_>>().await.unwrap()
        })
        .remove(0)
        .location;
    let b = bucket.clone();
    let k = key.clone();
    let mut bytes = remote.wait(async move { b.get(&k).await.unwrap().bytes().await.unwrap() }).to_vec();
    bytes[8 + 5 + 65536 + 5 + 100] ^= 1;
    let b = bucket.clone();
    remote.wait(async move { b.put(&key, bytes.into()).await.unwrap() });
    let s = open(dir.path(), &bucket, 1 << 20);
    let e = s.read_chunk(&data[1].0).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    assert_eq!(s.read_chunk(&data[0].0).unwrap(), data[0].1);
    let v = s.verify_points(1, None, |_| true).unwrap();
    assert_eq!(v.damaged.len(), 1);
    assert!(v.damaged[0].reason.contains("hash mismatch"), "{}", v.damaged[0].reason);
}

#[test]
fn a_store_keeps_its_backend() {
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let s = open(dir.path(), &bucket, 1 << 20);
    s.check_backend(&ChunkBackend::S3(settings("b1"))).unwrap();
    drop(s);
    // Opened without the bucket, or on another one: refused, naming both.
    let e = Store::open(dir.path()).unwrap_err().to_string();
    assert!(e.contains("'s3:b1/site-a', not 'local'"), "{e}");
    let s = open(dir.path(), &bucket, 1 << 20);
    let e = s.check_backend(&ChunkBackend::S3(settings("b2"))).unwrap_err().to_string();
    assert!(e.contains("not 's3:b2/site-a'"), "{e}");
    // A store holding local chunks cannot move to a bucket.
    let local = tempfile::tempdir().unwrap();
    let l = Store::open(local.path()).unwrap();
    l.put_chunk(&[1; 32], StoredChunk { compressed: false, raw_len: 1, payload: &[1] }).unwrap();
    let e = l.check_backend(&ChunkBackend::S3(settings("b1"))).unwrap_err().to_string();
    assert!(e.contains("holds chunks locally"), "{e}");
}

fn settings(bucket: &str) -> S3Settings {
    S3Settings {
        endpoint: "http://127.0.0.1:1".into(),
        region: "garage".into(),
        bucket: bucket.into(),
        prefix: "site-a".into(),
        access_key_id: "k".into(),
        secret_access_key: "s".into(),
        pack_bytes: DEFAULT_PACK_BYTES,
        cache_bytes: DEFAULT_CACHE_BYTES,
        rewrite_below: DEFAULT_REWRITE_BELOW,
        orphan_grace: DEFAULT_ORPHAN_GRACE,
    }
}

#[test]
fn an_offline_open_finds_the_object_store_the_standby_last_used() {
    let dir = tempfile::tempdir().unwrap();
    // Opening makes no request: an endpoint nobody serves will do.
    let s = Store::open_with(dir.path(), &ChunkBackend::S3(settings("b1"))).unwrap();
    drop(s);
    let e = Store::open_recorded(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("s3 http://127.0.0.1:1/b1/site-a") && e.contains("DRPAIR_S3_ACCESS_KEY_ID"), "{e}");
    let creds = S3Credentials { access_key_id: "k".into(), secret_access_key: "never-shown".into() };
    assert!(!format!("{creds:?}").contains("never-shown"));
    let s = Store::open_recorded(dir.path(), Some(&creds)).unwrap();
    assert_eq!(s.chunk_backend_name(), "s3 http://127.0.0.1:1/b1/site-a");
    drop(s);
    // A local store opens as it is, credentials or not.
    let local = tempfile::tempdir().unwrap();
    drop(Store::open(local.path()).unwrap());
    assert_eq!(Store::open_recorded(local.path(), Some(&creds)).unwrap().chunk_backend_name(), "local");
}
