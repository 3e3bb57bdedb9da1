//! Reading a disk of a recovery point straight from the version index (no materialising):
//! each chunk is the newest version at or before the point's epoch, read back and
//! blake3-verified.

use drpair_store::{ChunkVersion, Store};
use drpair_types::{DiskGeometry, Epoch, PairId};

/// Chunks looked up per index scan.
const SPAN: u64 = 256;

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
) -> Result<(), String> {
    let n = g.chunk_count();
    let mut first = 0;
    while first < n {
        let count = SPAN.min(n - first);
        let versions = store.versions_at(pair_no, disk, epoch, first, count).map_err(|e| e.to_string())?;
        let mut out = Vec::with_capacity((count * g.chunk_size.bytes() as u64) as usize);
        for (i, v) in versions.into_iter().enumerate() {
            let c = first + i as u64;
            let len = g.chunk_len(c) as usize;
            match v {
                Some(ChunkVersion::Zero) => out.resize(out.len() + len, 0),
                Some(ChunkVersion::Data(h)) => {
                    let data = store
                        .read_chunk(&h)
                        .map_err(|e| format!("pair '{pair}' disk {disk} chunk {c} at epoch {epoch}: {e}"))?;
                    if data.len() != len {
                        return Err(format!(
                            "pair '{pair}' disk {disk} chunk {c}: stored length {} differs from {len}",
                            data.len()
                        ));
                    }
                    out.extend_from_slice(&data);
                }
                None => {
                    return Err(format!("pair '{pair}' disk {disk} chunk {c}: no version at or before epoch {epoch}"));
                }
            }
        }
        if !emit(out) {
            return Ok(());
        }
        first += count;
    }
    Ok(())
}
