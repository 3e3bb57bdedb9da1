//! Growing a change map with its disk: the history of the chunks the disk had is kept, the new
//! chunks (and a formerly partial last chunk, whose bytes now run further) are stamped as
//! changed in the next epoch, so the next pass ships exactly them.

use super::{ChangeMap, ChangeMapError, EPOCH_LEN, HASH_LEN, Opened, epoch_off, file_len, io_err, sync_parent};
use crate::header::{HEADER_SIZE, Header};
use drpair_types::DiskGeometry;
use std::io::Read;
use std::path::Path;

impl ChangeMap {
    /// Opens the map at `path`, grown to `geometry` if it was made for a smaller disk with
    /// the same chunk size (written beside it and renamed over it: a crash leaves the old map
    /// or the whole new one). Any other difference is [`ChangeMapError::GeometryMismatch`],
    /// as for [`open`](Self::open). `was_clean` is the old map's.
    pub fn open_grown(path: &Path, geometry: DiskGeometry) -> Result<Opened, ChangeMapError> {
        let recorded = match recorded_geometry(path) {
            Some(g) if g.chunk_size == geometry.chunk_size && g.size_bytes < geometry.size_bytes => g,
            _ => return Self::open(path, geometry),
        };
        let old = Self::open(path, recorded)?;
        let tmp = path.with_extension("chmap.grow");
        let _ = std::fs::remove_file(&tmp);
        let grown = old.map.grown_copy(&tmp, geometry).inspect_err(|_| {
            let _ = std::fs::remove_file(&tmp);
        })?;
        std::fs::rename(&tmp, path).map_err(io_err(path))?;
        sync_parent(path)?;
        drop(grown);
        drop(old.map);
        tracing::info!(
            path = %path.display(),
            from = recorded.size_bytes,
            to = geometry.size_bytes,
            "change map grown with its disk: the new chunks ship in the next epoch"
        );
        let reopened = Self::open(path, geometry)?;
        Ok(Opened { map: reopened.map, was_clean: old.was_clean })
    }

    /// Writes this map's entries, grown to `geometry`, into a new file at `tmp` (synced), a
    /// slice at a time: a map of a large disk is not copied through memory whole.
    fn grown_copy(&self, tmp: &Path, geometry: DiskGeometry) -> Result<std::fs::File, ChangeMapError> {
        use std::os::unix::fs::FileExt;
        const SLICE: usize = 4 << 20;
        let count = geometry.chunk_count();
        let len = file_len(count).ok_or_else(|| ChangeMapError::Io {
            path: tmp.to_path_buf(),
            source: std::io::Error::other(format!("{count} chunks make a change map too large for this system")),
        })?;
        let file = std::fs::OpenOptions::new().write(true).create_new(true).open(tmp).map_err(io_err(tmp))?;
        // Zeros everywhere first (unknown hashes, epoch 0), sparse: only the slices that hold
        // something are written (the rest gets its blocks when first written, as in any map).
        file.set_len(len as u64).map_err(io_err(tmp))?;
        let write = |bytes: &[u8], at: usize| {
            if bytes.iter().all(|b| *b == 0) {
                return Ok(());
            }
            file.write_all_at(bytes, at as u64).map_err(io_err(tmp))
        };
        let mut head = vec![0u8; HEADER_SIZE];
        Header { geometry, clean: false, ..self.header.clone() }.encode_into(&mut head);
        write(&head, 0)?;
        let old = self.count as usize;
        let new_hash_base = HEADER_SIZE + count as usize * EPOCH_LEN;
        for (k, part) in self.mmap[HEADER_SIZE..self.hash_base].chunks(SLICE).enumerate() {
            write(part, HEADER_SIZE + k * SLICE)?;
        }
        for (k, part) in self.mmap[self.hash_base..].chunks(SLICE).enumerate() {
            write(part, new_hash_base + k * SLICE)?;
        }
        // The new chunks, and a partial last chunk that now reads further: changed in the
        // next epoch, hash unknown.
        let partial = self.header.geometry.size_bytes % self.header.geometry.chunk_size.bytes() as u64 != 0;
        let first_new = if partial { old - 1 } else { old };
        if partial {
            write(&[0u8; HASH_LEN], new_hash_base + first_new * HASH_LEN)?;
        }
        let stamp = self.header.next_epoch.to_le_bytes();
        let per_slice = SLICE / EPOCH_LEN;
        let mut c = first_new;
        while c < count as usize {
            let n = per_slice.min(count as usize - c);
            let run: Vec<u8> = stamp.iter().copied().cycle().take(n * EPOCH_LEN).collect();
            write(&run, epoch_off(c as u64))?;
            c += n;
        }
        file.sync_all().map_err(io_err(tmp))?;
        Ok(file)
    }
}

/// The geometry a map file records, if its header reads.
fn recorded_geometry(path: &Path) -> Option<DiskGeometry> {
    let mut head = vec![0u8; HEADER_SIZE];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    Header::decode(&head).ok().map(|h| h.geometry)
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{ChunkSize, Lineage};

    #[test]
    fn growing_keeps_history_and_dirties_only_the_new_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk-0.chmap");
        let cs = ChunkSize::new(4096).unwrap();
        // 2.5 chunks: the last one partial.
        let small = DiskGeometry::new(10240, cs).unwrap();
        let lineage = Lineage::new_v4();
        let mut m = ChangeMap::create(&path, small, lineage, 1).unwrap();
        let e = m.begin_cut().unwrap();
        m.set_acked(e).unwrap();
        m.set_hash(0, Some([7; 32])).unwrap();
        assert_eq!(m.dirty_count(), 0);
        m.close_clean().unwrap();

        let big = DiskGeometry::new(20480, cs).unwrap();
        let o = ChangeMap::open_grown(&path, big).unwrap();
        assert!(o.was_clean, "the old map's clean flag");
        let m = o.map;
        assert_eq!((m.geometry(), m.lineage(), m.acked()), (big, lineage, e));
        assert_eq!(m.hash(0), Some([7; 32]), "history kept");
        let dirty: Vec<u64> = (0..m.chunk_count()).filter(|&c| m.is_dirty(c)).collect();
        assert_eq!(dirty, vec![2, 3, 4], "the partial last chunk and the new ones");
        assert!(!path.with_extension("chmap.grow").exists());
        drop(m);

        // Smaller, or another chunk size: refused as before, the map untouched.
        for other in
            [DiskGeometry::new(4096, cs).unwrap(), DiskGeometry::new(40960, ChunkSize::new(8192).unwrap()).unwrap()]
        {
            assert!(matches!(ChangeMap::open_grown(&path, other), Err(ChangeMapError::GeometryMismatch { .. })));
        }
        assert_eq!(ChangeMap::open(&path, big).unwrap().map.chunk_count(), 5);
    }

    /// A map larger than the copy's slices: entries on both sides of each slice boundary
    /// arrive where they belong.
    #[test]
    fn a_large_map_grows_slice_by_slice() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("disk-0.chmap");
        let cs = ChunkSize::new(4096).unwrap();
        let (old, new) = (600_000u64, 1_300_000u64);
        let mut m = ChangeMap::create(&path, DiskGeometry::new(old * 4096, cs).unwrap(), Lineage::new_v4(), 1).unwrap();
        let e = m.begin_cut().unwrap();
        m.set_acked(e).unwrap();
        let probes = [0u64, 131_071, 131_072, 524_287, 524_288, 599_999];
        for &c in &probes {
            m.set_hash(c, Some([(c % 251) as u8 + 1; 32])).unwrap();
        }
        m.close_clean().unwrap();
        let m = ChangeMap::open_grown(&path, DiskGeometry::new(new * 4096, cs).unwrap()).unwrap().map;
        for &c in &probes {
            assert_eq!(m.hash(c), Some([(c % 251) as u8 + 1; 32]), "hash of chunk {c}");
            assert!(!m.is_dirty(c), "chunk {c} kept its history");
        }
        for c in [600_000u64, 600_001, 1_124_287, 1_124_288, 1_299_999] {
            assert!(m.is_dirty(c) && m.hash(c).is_none(), "new chunk {c}");
        }
        assert_eq!(m.dirty_count(), new - old);
    }
}
