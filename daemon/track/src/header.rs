//! The on-disk header of a change map file (`disk-N.chmap`).
//!
//! The first [`HEADER_SIZE`] bytes of the file. All integers are little endian at the fixed
//! offsets in [`offset`]; the magic, the version and the offsets are frozen by a test. A crc32
//! over every byte before it guards the header against damage; the bytes after the crc up to
//! [`HEADER_SIZE`] are reserved and zero. A file of another version is refused (the agent
//! treats it as damaged: a tracking gap, healed by a differential resync).
//!
//! Version history: 1 had no history start (its crc sat at 152); 2 added it; 3 added the
//! base epoch (its crc sat at 160). A version 2 header is still read (base epoch 0: its
//! entries are complete) and is rewritten as version 3 at the next header change.
//!
//! | offset | size | field |
//! |---:|---:|---|
//! | 0 | 8 | magic `DRPCMAP\0` |
//! | 8 | 4 | format version (3) |
//! | 12 | 4 | reserved, zero |
//! | 16 | 8 | disk size in bytes |
//! | 24 | 4 | chunk size in bytes |
//! | 28 | 4 | reserved, zero |
//! | 32 | 8 | chunk count |
//! | 40 | 16 | lineage (uuid bytes) |
//! | 56 | 8 | acknowledged epoch (0 = nothing acknowledged yet) |
//! | 64 | 8 | next epoch (new changes are stamped with it) |
//! | 72 | 8 | last cut epoch (0 = none) |
//! | 80 | 1 | clean shutdown flag (0/1) |
//! | 81 | 1 | suspect flag (0/1) |
//! | 82 | 2 | reserved, zero |
//! | 84 | 4 | length of the suspect reason text |
//! | 88 | 64 | suspect reason text (UTF-8, zero padded) |
//! | 152 | 8 | history start: oldest epoch E whose "changed since E" is complete (< next epoch) |
//! | 160 | 8 | base epoch: every chunk's epoch is at least this (a reset or creation that
//! stamps every chunk sets it instead of writing each entry, so the entries stay sparse) |
//! | 168 | 4 | crc32 of bytes 0..168 |

use drpair_types::{ChunkSize, DiskGeometry, Epoch, Lineage};

/// Size of the header; the entries start right after it.
pub const HEADER_SIZE: usize = 4096;
/// First bytes of every change map file.
pub const MAGIC: [u8; 8] = *b"DRPCMAP\0";
/// The format version this build writes and reads.
pub const VERSION: u32 = 3;
/// The previous format version, still read (see the module docs).
pub const VERSION_2: u32 = 2;
/// Longest suspect reason kept, in bytes (longer reasons are cut at a character boundary).
pub const SUSPECT_REASON_MAX: usize = 64;

/// Byte offsets of the header fields (frozen: changing one needs a new [`VERSION`]).
pub mod offset {
    pub const MAGIC: usize = 0;
    pub const VERSION: usize = 8;
    pub const DISK_SIZE: usize = 16;
    pub const CHUNK_SIZE: usize = 24;
    pub const CHUNK_COUNT: usize = 32;
    pub const LINEAGE: usize = 40;
    pub const ACKED: usize = 56;
    pub const NEXT_EPOCH: usize = 64;
    pub const LAST_CUT: usize = 72;
    pub const CLEAN: usize = 80;
    pub const SUSPECT: usize = 81;
    pub const SUSPECT_LEN: usize = 84;
    pub const SUSPECT_REASON: usize = 88;
    pub const HISTORY_FROM: usize = 152;
    pub const BASE_EPOCH: usize = 160;
    pub const CRC: usize = 168;
    /// First byte after the crc.
    pub const END: usize = 172;
    /// Where version 2 kept its crc.
    pub const CRC_V2: usize = 160;
}

const _: () = assert!(offset::SUSPECT_REASON + SUSPECT_REASON_MAX == offset::HISTORY_FROM);
const _: () = assert!(offset::HISTORY_FROM + 8 == offset::BASE_EPOCH);
const _: () = assert!(offset::BASE_EPOCH + 8 == offset::CRC);
const _: () = assert!(offset::END == offset::CRC + 4);
const _: () = assert!(offset::END <= HEADER_SIZE);
const _: () = assert!(HEADER_SIZE.is_multiple_of(32)); // entries stay aligned

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// the file is shorter than a header
    #[error("file is {0} bytes long, shorter than the {HEADER_SIZE}-byte header")]
    Truncated(u64),
    /// the file does not start with the magic
    #[error("bad magic (not a drpair change map)")]
    BadMagic,
    /// written by another format version
    #[error("unsupported format version {0} (this build reads version {VERSION})")]
    Version(u32),
    /// header checksum does not match
    #[error("header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Crc { stored: u32, computed: u32 },
    /// a field holds a value the writer never writes
    #[error("invalid header field: {0}")]
    Field(String),
}

/// The decoded header. `chunk_count` is not stored here: it is `geometry.chunk_count()`, and
/// decoding checks that the recorded count agrees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub geometry: DiskGeometry,
    pub lineage: Lineage,
    pub acked: Epoch,
    pub next_epoch: Epoch,
    pub last_cut: Epoch,
    pub clean: bool,
    pub suspect: Option<String>,
    /// The oldest epoch E for which the chunks changed since E are all known (0 = every
    /// change of the lineage). Older history is gone: the map joined an existing pair
    /// ([`adopt`](crate::ChangeMap::adopt)) or tracking had a gap.
    pub history_from: Epoch,
    /// Every chunk's epoch is at least this: [`create`](crate::ChangeMap::create) and
    /// [`reset`](crate::ChangeMap::reset) stamp the whole disk by setting it, leaving the
    /// entries zero (sparse). At most the next epoch.
    pub base_epoch: Epoch,
}

impl Header {
    /// Writes the header (fields, reserved zeros and crc) into `buf[..offset::END]`.
    ///
    /// Panics if `buf` is shorter than [`HEADER_SIZE`] (callers pass the mapped header).
    pub fn encode_into(&self, buf: &mut [u8]) {
        let buf = &mut buf[..HEADER_SIZE];
        buf[..offset::END].fill(0);
        buf[offset::MAGIC..offset::MAGIC + 8].copy_from_slice(&MAGIC);
        put_u32(buf, offset::VERSION, VERSION);
        put_u64(buf, offset::DISK_SIZE, self.geometry.size_bytes);
        put_u32(buf, offset::CHUNK_SIZE, self.geometry.chunk_size.bytes());
        put_u64(buf, offset::CHUNK_COUNT, self.geometry.chunk_count());
        buf[offset::LINEAGE..offset::LINEAGE + 16].copy_from_slice(self.lineage.as_bytes());
        put_u64(buf, offset::ACKED, self.acked);
        put_u64(buf, offset::NEXT_EPOCH, self.next_epoch);
        put_u64(buf, offset::LAST_CUT, self.last_cut);
        buf[offset::CLEAN] = u8::from(self.clean);
        if let Some(reason) = &self.suspect {
            let reason = truncate_reason(reason);
            buf[offset::SUSPECT] = 1;
            // The reason is at most SUSPECT_REASON_MAX (64) bytes, so it fits a u32.
            put_u32(buf, offset::SUSPECT_LEN, u32::try_from(reason.len()).unwrap_or(0));
            buf[offset::SUSPECT_REASON..offset::SUSPECT_REASON + reason.len()].copy_from_slice(reason.as_bytes());
        }
        put_u64(buf, offset::HISTORY_FROM, self.history_from);
        put_u64(buf, offset::BASE_EPOCH, self.base_epoch);
        let crc = crc32fast::hash(&buf[..offset::CRC]);
        put_u32(buf, offset::CRC, crc);
    }

    /// Decodes and checks a header: magic, version, crc, then every field's range.
    pub fn decode(buf: &[u8]) -> Result<Self, HeaderError> {
        if buf.len() < HEADER_SIZE {
            return Err(HeaderError::Truncated(buf.len() as u64));
        }
        if buf[offset::MAGIC..offset::MAGIC + 8] != MAGIC {
            return Err(HeaderError::BadMagic);
        }
        let version = get_u32(buf, offset::VERSION);
        let crc_at = match version {
            VERSION => offset::CRC,
            VERSION_2 => offset::CRC_V2,
            v => return Err(HeaderError::Version(v)),
        };
        let stored = get_u32(buf, crc_at);
        let computed = crc32fast::hash(&buf[..crc_at]);
        if stored != computed {
            return Err(HeaderError::Crc { stored, computed });
        }
        let field = |s: String| HeaderError::Field(s);
        let chunk_size = get_u32(buf, offset::CHUNK_SIZE);
        let chunk_size = ChunkSize::new(u64::from(chunk_size)).map_err(|e| field(e.to_string()))?;
        let geometry =
            DiskGeometry::new(get_u64(buf, offset::DISK_SIZE), chunk_size).map_err(|e| field(e.to_string()))?;
        let count = get_u64(buf, offset::CHUNK_COUNT);
        if count != geometry.chunk_count() {
            return Err(field(format!(
                "chunk count {count} does not match {} chunks of a {}-byte disk in {}-byte chunks",
                geometry.chunk_count(),
                geometry.size_bytes,
                chunk_size.bytes()
            )));
        }
        let mut lineage = [0u8; 16];
        lineage.copy_from_slice(&buf[offset::LINEAGE..offset::LINEAGE + 16]);
        let flag = |at: usize, name: &str| match buf[at] {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(field(format!("{name} flag is {v}, not 0 or 1"))),
        };
        let clean = flag(offset::CLEAN, "clean shutdown")?;
        let suspect = if flag(offset::SUSPECT, "suspect")? {
            let len = get_u32(buf, offset::SUSPECT_LEN);
            let len = usize::try_from(len)
                .ok()
                .filter(|l| *l <= SUSPECT_REASON_MAX)
                .ok_or_else(|| field(format!("suspect reason length {len} exceeds {SUSPECT_REASON_MAX}")))?;
            let text = &buf[offset::SUSPECT_REASON..offset::SUSPECT_REASON + len];
            let text = std::str::from_utf8(text).map_err(|_| field("suspect reason is not UTF-8".into()))?;
            Some(text.to_string())
        } else {
            None
        };
        let header = Self {
            geometry,
            lineage: Lineage::from_bytes(lineage),
            acked: get_u64(buf, offset::ACKED),
            next_epoch: get_u64(buf, offset::NEXT_EPOCH),
            last_cut: get_u64(buf, offset::LAST_CUT),
            clean,
            suspect,
            history_from: get_u64(buf, offset::HISTORY_FROM),
            base_epoch: if version == VERSION { get_u64(buf, offset::BASE_EPOCH) } else { 0 },
        };
        if header.next_epoch == 0 || header.last_cut >= header.next_epoch || header.acked > header.last_cut {
            return Err(field(format!(
                "epochs out of order (acknowledged {}, last cut {}, next {}): expected acknowledged <= last cut < next",
                header.acked, header.last_cut, header.next_epoch
            )));
        }
        if header.history_from >= header.next_epoch {
            return Err(field(format!(
                "history start {} is not before the next epoch {}",
                header.history_from, header.next_epoch
            )));
        }
        if header.base_epoch > header.next_epoch {
            return Err(field(format!(
                "base epoch {} is after the next epoch {}",
                header.base_epoch, header.next_epoch
            )));
        }
        Ok(header)
    }
}

/// Cuts a suspect reason to at most [`SUSPECT_REASON_MAX`] bytes at a character boundary.
pub fn truncate_reason(reason: &str) -> &str {
    if reason.len() <= SUSPECT_REASON_MAX {
        return reason;
    }
    let mut end = SUSPECT_REASON_MAX;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    &reason[..end]
}

/// Reads a little-endian u64 at `at`.
pub(crate) fn get_u64(buf: &[u8], at: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&buf[at..at + 8]);
    u64::from_le_bytes(b)
}

/// Writes a little-endian u64 at `at`.
pub(crate) fn put_u64(buf: &mut [u8], at: usize, v: u64) {
    buf[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

fn get_u32(buf: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&buf[at..at + 4]);
    u32::from_le_bytes(b)
}

fn put_u32(buf: &mut [u8], at: usize, v: u32) {
    buf[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            geometry: DiskGeometry::new(65536 * 3 + 100, ChunkSize::DEFAULT).unwrap(),
            lineage: Lineage::from_bytes([0x11; 16]),
            acked: 5,
            next_epoch: 8,
            last_cut: 7,
            clean: true,
            suspect: Some("ring overrun".into()),
            history_from: 3,
            base_epoch: 2,
        }
    }

    #[test]
    fn frozen_layout() {
        assert_eq!(HEADER_SIZE, 4096);
        assert_eq!(&MAGIC, b"DRPCMAP\0");
        assert_eq!(VERSION, 3);
        let offsets = [
            offset::MAGIC,
            offset::VERSION,
            offset::DISK_SIZE,
            offset::CHUNK_SIZE,
            offset::CHUNK_COUNT,
            offset::LINEAGE,
            offset::ACKED,
            offset::NEXT_EPOCH,
            offset::LAST_CUT,
            offset::CLEAN,
            offset::SUSPECT,
            offset::SUSPECT_LEN,
            offset::SUSPECT_REASON,
            offset::HISTORY_FROM,
            offset::BASE_EPOCH,
            offset::CRC,
            offset::END,
        ];
        assert_eq!(offsets, [0, 8, 16, 24, 32, 40, 56, 64, 72, 80, 81, 84, 88, 152, 160, 168, 172]);

        let mut buf = vec![0xAAu8; HEADER_SIZE];
        sample().encode_into(&mut buf);
        assert_eq!(&buf[0..8], b"DRPCMAP\0");
        assert_eq!(buf[8..12], 3u32.to_le_bytes());
        assert_eq!(buf[16..24], (65536u64 * 3 + 100).to_le_bytes());
        assert_eq!(buf[24..28], 65536u32.to_le_bytes());
        assert_eq!(buf[32..40], 4u64.to_le_bytes());
        assert_eq!(buf[40..56], [0x11; 16]);
        assert_eq!(buf[56..64], 5u64.to_le_bytes());
        assert_eq!(buf[64..72], 8u64.to_le_bytes());
        assert_eq!(buf[72..80], 7u64.to_le_bytes());
        assert_eq!(buf[80], 1);
        assert_eq!(buf[81], 1);
        assert_eq!(buf[84..88], 12u32.to_le_bytes());
        assert_eq!(&buf[88..100], b"ring overrun");
        assert!(buf[100..152].iter().all(|b| *b == 0));
        assert_eq!(buf[152..160], 3u64.to_le_bytes());
        assert_eq!(buf[160..168], 2u64.to_le_bytes());
        assert_eq!(buf[168..172], crc32fast::hash(&buf[..168]).to_le_bytes());
        // The crc of this exact header, frozen: any change of encoding shows up here.
        assert_eq!(u32::from_le_bytes(buf[168..172].try_into().unwrap()), FROZEN_CRC);
        // The bytes after the crc stay reserved (the caller's 0xAA is left alone).
        assert!(buf[172..].iter().all(|b| *b == 0xAA));
    }

    const FROZEN_CRC: u32 = 0xba6e_9012;

    #[test]
    fn round_trip() {
        let mut buf = vec![0u8; HEADER_SIZE];
        let far = Header { acked: u64::MAX - 9, last_cut: u64::MAX - 2, next_epoch: u64::MAX, ..sample() };
        for h in [
            sample(),
            Header { suspect: None, clean: false, ..sample() },
            Header { history_from: 0, ..sample() },
            Header { history_from: 7, ..sample() },
            Header { history_from: u64::MAX - 1, ..far },
        ] {
            h.encode_into(&mut buf);
            assert_eq!(Header::decode(&buf).unwrap(), h);
        }
    }

    #[test]
    fn refuses_damage() {
        let mut buf = vec![0u8; HEADER_SIZE];
        sample().encode_into(&mut buf);
        assert_eq!(Header::decode(&buf[..100]), Err(HeaderError::Truncated(100)));
        for at in [0, 8, 20, 60, 80, 151, 152, 159, 160, 167, 168, 171] {
            let mut bad = buf.clone();
            bad[at] ^= 0x40;
            let err = Header::decode(&bad).unwrap_err();
            match at {
                0 => assert_eq!(err, HeaderError::BadMagic),
                8 => assert_eq!(err, HeaderError::Version(3 ^ 0x40)),
                _ => assert!(matches!(err, HeaderError::Crc { .. }), "{at}: {err}"),
            }
        }
    }

    #[test]
    fn refuses_valid_crc_with_bad_fields() {
        let mut buf = vec![0u8; HEADER_SIZE];
        let reseal = |buf: &mut Vec<u8>| {
            let crc = crc32fast::hash(&buf[..offset::CRC]);
            put_u32(buf, offset::CRC, crc);
        };
        for (at, v) in [
            (offset::CHUNK_COUNT, 9u64),
            (offset::ACKED, 50),
            (offset::NEXT_EPOCH, 0),
            (offset::HISTORY_FROM, 8),
            (offset::HISTORY_FROM, u64::MAX),
            (offset::BASE_EPOCH, 9),
        ] {
            sample().encode_into(&mut buf);
            put_u64(&mut buf, at, v);
            reseal(&mut buf);
            assert!(matches!(Header::decode(&buf), Err(HeaderError::Field(_))), "{at}");
        }
        sample().encode_into(&mut buf);
        put_u32(&mut buf, offset::CHUNK_SIZE, 1000);
        reseal(&mut buf);
        assert!(matches!(Header::decode(&buf), Err(HeaderError::Field(_))));
    }

    /// A version 1 header (no history start, crc at 152), as the previous build wrote it.
    fn version_1(h: &Header) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_SIZE];
        h.encode_into(&mut buf);
        put_u32(&mut buf, offset::VERSION, 1);
        buf[152..164].fill(0);
        let crc = crc32fast::hash(&buf[..152]);
        put_u32(&mut buf, 152, crc);
        buf
    }

    #[test]
    fn refuses_the_previous_version() {
        let old = version_1(&Header { history_from: 0, ..sample() });
        // Byte for byte what version 1 wrote: its frozen crc of the same header.
        assert_eq!(u32::from_le_bytes(old[152..156].try_into().unwrap()), 0xaace_d886);
        assert_eq!(Header::decode(&old), Err(HeaderError::Version(1)));
        assert_eq!(HeaderError::Version(1).to_string(), "unsupported format version 1 (this build reads version 3)");
    }

    /// A version 2 header (no base epoch, crc at 160), as the previous build wrote it.
    fn version_2(h: &Header) -> Vec<u8> {
        let mut buf = vec![0u8; HEADER_SIZE];
        h.encode_into(&mut buf);
        put_u32(&mut buf, offset::VERSION, 2);
        buf[160..172].fill(0);
        let crc = crc32fast::hash(&buf[..160]);
        put_u32(&mut buf, 160, crc);
        buf
    }

    #[test]
    fn reads_version_2_with_base_epoch_0() {
        let h = Header { base_epoch: 0, ..sample() };
        let old = version_2(&h);
        // Byte for byte what version 2 wrote: its frozen crc of the same header.
        assert_eq!(u32::from_le_bytes(old[160..164].try_into().unwrap()), 0x9cba_9994);
        assert_eq!(Header::decode(&old), Ok(h));
        let mut bad = old.clone();
        bad[100] ^= 1;
        assert!(matches!(Header::decode(&bad), Err(HeaderError::Crc { .. })));
    }

    #[test]
    fn long_reasons_are_cut_at_a_char_boundary() {
        let long = "é".repeat(40); // 80 bytes
        let cut = truncate_reason(&long);
        assert_eq!(cut.len(), 64);
        let mut buf = vec![0u8; HEADER_SIZE];
        Header { suspect: Some(long.clone()), ..sample() }.encode_into(&mut buf);
        assert_eq!(Header::decode(&buf).unwrap().suspect.as_deref(), Some(cut));
        let odd = format!("x{long}"); // boundary falls inside a character
        assert_eq!(truncate_reason(&odd).len(), 63);
    }
}
