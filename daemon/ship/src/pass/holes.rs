//! Planning around the holes of a sparse disk: a disk that is a regular file, or a loop device
//! whose backing file the kernel names (`/sys/block/loopN/loop/backing_file`), tells with
//! `lseek(SEEK_DATA/SEEK_HOLE)` where it holds data. A dirty chunk lying wholly in a hole is
//! all zero: it is neither read nor hashed, and ships inside one [`ChunkBody::ZeroRun`] item
//! per run of such chunks, which the standby records without an entry per chunk. An 8 TiB
//! sparse disk with a few GiB written then costs its data, not its size.
//!
//! Only for passes that ship what is dirty, straight (no spool, no differential resync):
//! a scan or reconcile pass compares every chunk's hash and plans as before. A disk whose
//! backing cannot be found (a real block device, a partition, a deleted backing file) is
//! planned as before too. A write landing in a hole after the plan is stamped with the next
//! epoch by the tracker and ships then, as a write after a chunk's read does.

use super::{PassCtx, PassError, PassMode, PassSummary, chunks_per_read};
use crate::ReadRequest;
use drpair_track::extents::data_segments;
use drpair_types::DiskGeometry;
use drpair_wire::{ChunkBody, ChunkItem};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// A run of zero chunks: (disk, first chunk, count).
pub(super) type ZeroRun = (u32, u64, u64);

/// Run items per frame (a run item is a few bytes on the wire).
const RUNS_PER_FRAME: usize = 4096;

/// The reads and the zero runs of the pass, or `None` when the pass plans as before (not a
/// straight dirty pass, or no disk whose holes can be found).
pub(super) fn plan(ctx: &PassCtx) -> Option<(Vec<ReadRequest>, Vec<ZeroRun>)> {
    if ctx.mode != PassMode::Dirty || ctx.spool.is_some() || ctx.resync.is_some() {
        return None;
    }
    let data: Vec<Option<Vec<(u64, u64)>>> = ctx.disks.iter().map(|(p, g)| data_chunks(p, g)).collect();
    if data.iter().all(Option::is_none) {
        return None;
    }
    let mut st = ctx.maps.lock().expect("maps");
    let (mut reqs, mut zero) = (Vec::new(), Vec::new());
    for (d, m) in st.maps().iter_mut().enumerate() {
        let g = m.geometry();
        let per = chunks_per_read(&g);
        let runs = match &data[d] {
            Some(data) => {
                let (read, holes) = split(&m.dirty_runs(u64::MAX), data);
                for &(first, count) in &holes {
                    // Their content changes without being read: a stale hash must not match.
                    if let Err(e) = m.forget_hashes(first, count) {
                        tracing::warn!(disk = d, error = %e, "could not forget the hashes of a hole; planning it as data");
                        return None;
                    }
                    zero.push((d as u32, first, count));
                }
                cut(&read, per)
            }
            None => m.dirty_runs(per),
        };
        for (first, count) in runs {
            reqs.push(ReadRequest { disk: d as u32, first_chunk: first, chunk_count: count as u32, tag: 0 });
        }
    }
    let holes: u64 = zero.iter().map(|z| z.2).sum();
    if holes > 0 {
        tracing::info!(
            epoch = ctx.epoch,
            chunks = holes,
            runs = zero.len(),
            "holes of sparse disks ship as zero runs, unread"
        );
    }
    Some((reqs, zero))
}

/// Sends the zero runs; what they add to the pass's summary.
pub(super) fn ship(ctx: &PassCtx, runs: &[ZeroRun]) -> Result<PassSummary, PassError> {
    let mut sum = PassSummary::default();
    for part in runs.chunks(RUNS_PER_FRAME) {
        let items: Vec<ChunkItem> = part
            .iter()
            .map(|&(disk, index, count)| ChunkItem { disk, index, body: ChunkBody::ZeroRun { count } })
            .collect();
        let chunks: u64 = part.iter().map(|r| r.2).sum();
        super::ship_frame(ctx, items)?;
        // ship_frame counted one per item; a run stands for `count` chunks.
        ctx.progress.shipped.fetch_add(chunks - part.len() as u64, Ordering::Relaxed);
        ctx.progress.done.fetch_add(chunks, Ordering::Relaxed);
        sum.chunks += chunks;
        sum.zero += chunks;
    }
    Ok(sum)
}

/// The chunk ranges `(first, count)` of the disk that hold data (each chunk touching a data
/// segment of its backing file), ascending; `None` when the backing file cannot be found.
fn data_chunks(disk: &Path, g: &DiskGeometry) -> Option<Vec<(u64, u64)>> {
    let (file, offset) = backing(disk)?;
    let end = offset.checked_add(g.size_bytes)?;
    let segments = match data_segments(&file, offset, end) {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(disk = %disk.display(), error = %e, "no hole information: planned as data");
            return None;
        }
    };
    let cs = g.chunk_size.bytes() as u64;
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (from, to) in segments {
        let (first, last) = ((from - offset) / cs, (to - offset).div_ceil(cs));
        match out.last_mut() {
            Some((f, n)) if *f + *n >= first => *n = (*n).max(last - *f),
            _ => out.push((first, last - first)),
        }
    }
    Some(out)
}

/// The file that holds the disk's bytes and where they start in it: the disk itself when it
/// is a regular file; a loop device's backing file and offset.
fn backing(disk: &Path) -> Option<(File, u64)> {
    let meta = std::fs::metadata(disk).ok()?;
    if meta.is_file() {
        return Some((File::open(disk).ok()?, 0));
    }
    let name = std::fs::canonicalize(disk).ok()?.file_name()?.to_str()?.to_string();
    let sys = PathBuf::from("/sys/block").join(&name).join("loop");
    let file = std::fs::read_to_string(sys.join("backing_file")).ok()?;
    let file = file.trim_end_matches('\n');
    if file.ends_with(" (deleted)") {
        return None;
    }
    let offset = std::fs::read_to_string(sys.join("offset")).ok()?.trim().parse().ok()?;
    Some((File::open(file).ok()?, offset))
}

/// Splits dirty runs into the parts that hold data (to read) and those in holes (zero),
/// given the data ranges; both ascending, adjacent zero parts merged.
fn split(dirty: &[(u64, u64)], data: &[(u64, u64)]) -> (Vec<(u64, u64)>, Vec<(u64, u64)>) {
    let (mut read, mut zero) = (Vec::new(), Vec::<(u64, u64)>::new());
    let mut push_zero = |first: u64, end: u64| {
        if end <= first {
            return;
        }
        match zero.last_mut() {
            Some((f, n)) if *f + *n == first => *n += end - first,
            _ => zero.push((first, end - first)),
        }
    };
    let mut k = 0;
    for &(first, count) in dirty {
        let end = first + count;
        let mut at = first;
        while k < data.len() && data[k].0 + data[k].1 <= at {
            k += 1;
        }
        let mut j = k;
        while at < end {
            match data.get(j) {
                Some(&(df, dn)) if df < end => {
                    let (ds, de) = (df.max(at), (df + dn).min(end));
                    push_zero(at, ds);
                    if de > ds {
                        read.push((ds, de - ds));
                    }
                    at = de.max(at);
                    if df + dn <= end {
                        j += 1;
                    } else {
                        break;
                    }
                }
                _ => {
                    push_zero(at, end);
                    at = end;
                }
            }
        }
    }
    (read, zero)
}

/// Runs cut to at most `per` chunks.
fn cut(runs: &[(u64, u64)], per: u64) -> Vec<(u64, u64)> {
    let per = per.max(1);
    let mut out = Vec::new();
    for &(first, count) in runs {
        let mut at = first;
        while at < first + count {
            let n = per.min(first + count - at);
            out.push((at, n));
            at += n;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::ChunkSize;
    use std::os::unix::fs::FileExt;

    #[test]
    fn split_reads_data_and_zeroes_holes() {
        let data = [(2, 3), (10, 1), (20, 5)];
        let (read, zero) = split(&[(0, 30)], &data);
        assert_eq!(read, vec![(2, 3), (10, 1), (20, 5)]);
        assert_eq!(zero, vec![(0, 2), (5, 5), (11, 9), (25, 5)]);
        // Dirty runs cutting through data ranges; zero parts of adjacent runs merged.
        let (read, zero) = split(&[(0, 3), (3, 1), (4, 8), (21, 2), (40, 3)], &data);
        assert_eq!(read, vec![(2, 1), (3, 1), (4, 1), (10, 1), (21, 2)]);
        assert_eq!(zero, vec![(0, 2), (5, 5), (11, 1), (40, 3)]);
        assert_eq!(split(&[(0, 9)], &[]), (vec![], vec![(0, 9)]));
        assert_eq!(split(&[], &data), (vec![], vec![]));
        assert_eq!(cut(&[(0, 10), (20, 3)], 4), vec![(0, 4), (4, 4), (8, 2), (20, 3)]);
    }

    #[test]
    fn a_sparse_file_is_planned_from_its_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk.img");
        let f = std::fs::OpenOptions::new().read(true).write(true).create(true).open(&path).unwrap();
        let cs = 65536u64;
        // 1000 chunks and a short last one of 4 KiB.
        let size = 1000 * cs + 4096;
        f.set_len(size).unwrap();
        f.write_all_at(&[1; 4096], 0).unwrap(); // chunk 0
        f.write_all_at(&[2; 8192], 300 * cs - 4096).unwrap(); // end of 299, start of 300
        f.write_all_at(&[3; 100], 1000 * cs + 10).unwrap(); // the short last chunk
        let g = DiskGeometry::new(size, ChunkSize::new(cs).unwrap()).unwrap();
        assert_eq!(g.chunk_count(), 1001);
        let data = data_chunks(&path, &g).unwrap();
        // A filesystem may report data in blocks larger than what was written (not on the
        // filesystems we run on), never less: each written chunk is in a data range.
        for c in [0u64, 299, 300, 1000] {
            assert!(data.iter().any(|&(f, n)| f <= c && c < f + n), "chunk {c} in {data:?}");
        }
        let (read, zero) = split(&[(0, g.chunk_count())], &data);
        let zeros: u64 = zero.iter().map(|z| z.1).sum();
        let reads: u64 = read.iter().map(|r| r.1).sum();
        assert_eq!(zeros + reads, 1001);
        if data == vec![(0, 1), (299, 2), (1000, 1)] {
            assert_eq!(zero, vec![(1, 298), (301, 699)]);
        }
        // Not a file, not a loop device: no hole information.
        assert!(data_chunks(Path::new("/dev/null"), &g).is_none());
        assert!(data_chunks(&dir.path().join("missing"), &g).is_none());
    }

    /// A pass over a disk file with holes: the holes ship as zero runs, unread, the data
    /// chunks as before, and the standby's point equals the disk.
    #[test]
    fn holes_ship_as_zero_runs() {
        use crate::pass::tests::{CS, Fixture, noise_chunk};
        use std::os::fd::AsRawFd;
        let data = [0u64, 10, 40, 63];
        let content: Vec<Vec<u8>> =
            (0..64u64).map(|i| if data.contains(&i) { noise_chunk(i) } else { vec![0u8; CS] }).collect();
        let f = Fixture::new(content);
        let file = std::fs::OpenOptions::new().write(true).open(f.disk_path()).unwrap();
        for (from, to) in [(1u64, 10u64), (11, 40), (41, 63)] {
            let flags = libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE;
            let (at, len) = ((from * CS as u64) as libc::off_t, ((to - from) * CS as u64) as libc::off_t);
            // SAFETY: an open descriptor; only deallocates blocks of the range.
            assert_eq!(unsafe { libc::fallocate(file.as_raw_fd(), flags, at, len) }, 0);
        }
        let (epoch, sum) = f.pass_with(false, |_| None, None);
        let sum = sum.unwrap();
        assert_eq!((sum.chunks, sum.zero, sum.data), (64, 60, 4), "{sum:?}");
        f.end(epoch);
        f.assert_standby_equals_disk();
        assert_eq!(f.dirty(), 0);
    }
}
