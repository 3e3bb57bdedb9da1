//! Streaming a disk of a recovery point, read through the store's [`PointReader`] (no
//! materialising): each chunk is the newest version at or before the point's epoch, read back
//! and blake3-verified.

use drpair_store::{PointReadError, PointReader, Store};
use drpair_types::{DiskGeometry, Epoch, ErrorClass, PairId};

/// Chunks looked up per index scan.
pub const SPAN: u64 = 256;

/// Why a disk of a point could not be read back in full: a chunk missing or damaged, or the
/// store failing. The message names the pair, the disk and the chunk.
#[derive(Debug, thiserror::Error)]
#[error("pair '{pair}' {source}")]
pub struct ReadError {
    /// The pair whose point it is.
    pub pair: PairId,
    /// What the point's reader found.
    pub source: PointReadError,
}

impl ReadError {
    /// Transient when the store's failure is; a missing or damaged chunk stays so.
    pub fn class(&self) -> ErrorClass {
        self.source.class()
    }
}

/// Produces the disk image in order, a run of chunks at a time, into `emit`. Stops at the
/// first missing or corrupt chunk with an error naming it (the stream is then cut short, so a
/// client never mistakes a damaged image for a complete one).
pub fn stream_disk(
    store: &Store,
    pair: &PairId,
    pair_no: u32,
    disk: u32,
    g: DiskGeometry,
    epoch: Epoch,
    mut emit: impl FnMut(Vec<u8>) -> bool,
) -> Result<(), ReadError> {
    let reader = PointReader::new(store, pair_no, disk, g, epoch);
    for span in reader.spans(SPAN) {
        let (_, chunks) = span.map_err(|source| ReadError { pair: pair.clone(), source })?;
        let mut out = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
        for c in &chunks {
            c.append_to(&mut out);
        }
        if !emit(out) {
            return Ok(());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::standby::pair::{DiskRecord, PairRecord};
    use drpair_pair::Lifecycle;
    use drpair_types::ChunkSize;

    /// The offline recovery reads the standby's pair records through the store's own
    /// `PairFacts`: they must decode a record as the standby writes it.
    #[test]
    fn pair_facts_read_the_standbys_pair_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let g = DiskGeometry::new(3 * 4096 + 5, ChunkSize::new(4096).unwrap()).unwrap();
        let disks = vec![DiskRecord { path: "/dev/vdb".into(), geometry: g }];
        let id = PairId::new("web-01").unwrap();
        let mut rec =
            PairRecord::register(id.clone(), 7, disks, "h".into(), "a".into(), "scan".into(), Lifecycle::new());
        rec.committed = 12;
        store.put_pair(&id, &rec).unwrap();
        let facts = store.pair_facts().unwrap();
        let [f] = &facts[..] else { panic!("{facts:?}") };
        assert_eq!((&f.pair_id, f.pair_no, f.geometries()), (&id, 7, vec![g]));
    }
}
