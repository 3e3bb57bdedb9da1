//! One disk of a drill: the recovery point as a writable, throw-away block device.
//!
//! Reads come from the point through the store's [`PointReader`] (the newest version of each
//! chunk at or before the point's epoch, read back and blake3-verified; zero chunks unread),
//! with read-ahead when the reads go through the disk in order ([`ReadAhead`]). Writes land
//! in a sparse scratch file beside the drill, a whole chunk at a time (copy on first write);
//! a bitmap says which chunks the overlay holds, and is looked at before the point (and its
//! read-ahead). A read is split into stretches of chunks from the same side, each read in one
//! call. Reads may run on several threads at once; a read racing a write to the same chunk
//! gets either the old or the new bytes, as on any disk. The store is never written: when the
//! drill ends, the scratch file is deleted and the point is as it was.

use super::readahead::ReadAhead;
use drpair_nbd::BlockDev;
use drpair_store::PointReader;
use drpair_types::DiskGeometry;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

pub struct DrillDisk {
    point: ReadAhead,
    g: DiskGeometry,
    overlay: File,
    /// One bit per chunk: the overlay holds it. Also serialises copy-on-write.
    present: Mutex<Vec<u64>>,
}

impl DrillDisk {
    /// A view of the disk `point` reads, with its overlay at `scratch` (created).
    pub fn new(point: PointReader, scratch: &Path) -> io::Result<Self> {
        let g = point.geometry();
        let overlay = File::options().read(true).write(true).create_new(true).open(scratch)?;
        overlay.set_len(g.size_bytes)?;
        let words = g.chunk_count().div_ceil(64) as usize;
        Ok(Self { point: ReadAhead::new(point)?, g, overlay, present: Mutex::new(vec![0; words]) })
    }

    fn chunk_bytes(&self) -> u64 {
        u64::from(self.g.chunk_size.bytes())
    }

    fn has(bits: &[u64], c: u64) -> bool {
        bits[(c / 64) as usize] & (1 << (c % 64)) != 0
    }

    /// Chunks the overlay holds (written during the drill).
    pub fn written_chunks(&self) -> u64 {
        self.present.lock().expect("present").iter().map(|w| u64::from(w.count_ones())).sum()
    }

    /// The point's bytes of chunk `c`.
    fn base_chunk(&self, c: u64) -> io::Result<Vec<u8>> {
        Ok(self.point.reader().chunk(c).map_err(io::Error::other)?.into_bytes())
    }

    /// Calls `f(chunk, offset in chunk, range in the request)` for each chunk `[offset, offset+len)` covers.
    fn spans(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(u64, u64, std::ops::Range<usize>) -> io::Result<()>,
    ) -> io::Result<()> {
        let cs = self.chunk_bytes();
        let mut pos = offset;
        let end = offset + len;
        while pos < end {
            let c = pos / cs;
            let within = pos % cs;
            let n = (cs - within).min(end - pos);
            let at = (pos - offset) as usize;
            f(c, within, at..at + n as usize)?;
            pos += n;
        }
        Ok(())
    }
}

impl BlockDev for DrillDisk {
    fn size(&self) -> u64 {
        self.g.size_bytes
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let cs = self.chunk_bytes();
        // Which chunks the overlay holds, looked up once; then each stretch of chunks from
        // the same side is read in one call (one index scan for a stretch of the point).
        let mut parts: Vec<(bool, u64, std::ops::Range<usize>)> = Vec::new();
        {
            let bits = self.present.lock().expect("present");
            self.spans(offset, buf.len() as u64, |c, within, r| {
                let in_overlay = Self::has(&bits, c);
                match parts.last_mut() {
                    Some((side, _, run)) if *side == in_overlay => run.end = r.end,
                    _ => parts.push((in_overlay, c * cs + within, r)),
                }
                Ok(())
            })?;
        }
        for (in_overlay, at, r) in parts {
            if in_overlay {
                self.overlay.read_exact_at(&mut buf[r], at)?;
            } else {
                self.point.read_at(at, &mut buf[r]).map_err(io::Error::other)?;
            }
        }
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let cs = self.chunk_bytes();
        self.spans(offset, data.len() as u64, |c, within, r| {
            let mut bits = self.present.lock().expect("present");
            if !Self::has(&bits, c) {
                // First write to this chunk: the overlay gets the whole chunk, the point's
                // bytes patched with the write.
                let mut chunk = if r.len() as u64 == u64::from(self.g.chunk_len(c)) {
                    data[r.clone()].to_vec()
                } else {
                    let mut base = self.base_chunk(c)?;
                    base[within as usize..within as usize + r.len()].copy_from_slice(&data[r.clone()]);
                    base
                };
                chunk.truncate(self.g.chunk_len(c) as usize);
                self.overlay.write_all_at(&chunk, c * cs)?;
                bits[(c / 64) as usize] |= 1 << (c % 64);
                Ok(())
            } else {
                self.overlay.write_all_at(&data[r], c * cs + within)
            }
        })
    }
}
