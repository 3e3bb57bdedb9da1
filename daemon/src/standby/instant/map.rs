//! The copied-chunk map of an instant failover's disk (`disk<N>.copied`): which chunks the
//! target holds. Format: magic `DRPICOPY`, version u32 LE (1), chunk count u64 LE, one u64 LE
//! word per 64 chunks, then the blake3 of everything before it. Written to a temporary file,
//! synced and renamed over the old one, so a crash leaves the old map or the new one.

use std::io::{self, Write};
use std::path::Path;

const MAGIC: &[u8; 8] = b"DRPICOPY";
const VERSION: u32 = 1;

fn words_for(chunks: u64) -> usize {
    usize::try_from(chunks.div_ceil(64)).expect("a map fits in memory")
}

/// The map at `path` for a disk of `chunks` chunks; all zero when there is none yet. A map of
/// another size, version or a bad checksum is an error (never guessed: a client's writes may
/// be on the target).
pub fn load(path: &Path, chunks: u64) -> io::Result<Vec<u64>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![0; words_for(chunks)]),
        Err(e) => return Err(e),
    };
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{}: {why}", path.display()));
    let n = words_for(chunks);
    if bytes.len() != 8 + 4 + 8 + n * 8 + 32 {
        return Err(bad("not a copied-chunk map of this disk (size)"));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 32);
    if blake3::hash(body).as_bytes() != sum {
        return Err(bad("checksum mismatch"));
    }
    if &body[..8] != MAGIC || body[8..12] != VERSION.to_le_bytes() {
        return Err(bad("bad magic or version"));
    }
    if body[12..20] != chunks.to_le_bytes() {
        return Err(bad("made for another chunk count"));
    }
    Ok(body[20..].chunks_exact(8).map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))).collect())
}

/// Saves `words` as the map at `path`.
pub fn save(path: &Path, chunks: u64, words: &[u64]) -> io::Result<()> {
    let mut body = Vec::with_capacity(20 + words.len() * 8 + 32);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&VERSION.to_le_bytes());
    body.extend_from_slice(&chunks.to_le_bytes());
    for w in words {
        body.extend_from_slice(&w.to_le_bytes());
    }
    let sum = *blake3::hash(&body).as_bytes();
    body.extend_from_slice(&sum);
    let tmp = path.with_extension("copied.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&body)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_round_trips_and_damage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("disk0.copied");
        assert_eq!(load(&p, 130).unwrap(), vec![0, 0, 0]);
        save(&p, 130, &[1, u64::MAX, 3]).unwrap();
        assert_eq!(load(&p, 130).unwrap(), vec![1, u64::MAX, 3]);
        assert!(load(&p, 200).is_err(), "another disk size");
        let mut b = std::fs::read(&p).unwrap();
        b[25] ^= 1;
        std::fs::write(&p, &b).unwrap();
        assert!(load(&p, 130).unwrap_err().to_string().contains("checksum"));
    }
}
