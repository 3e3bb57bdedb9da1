//! Parsers for the layout files tracefs publishes: `events/header_page` (where a ring-buffer
//! page keeps its commit word and its data) and `events/block/block_rq_complete/format` (the
//! event's ID and where its fields lie in a record).
//!
//! Both files list fields as `field:<declaration>;\toffset:N;\tsize:N;\tsigned:N;`. The
//! tracker reads them at run time rather than trusting offsets compiled in, so a kernel that
//! moves a field is handled, and one that drops a field is refused at start.

use std::fmt;

/// Where a field lies in a record (or in a page): byte offset and size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub offset: usize,
    pub size: usize,
}

impl Field {
    /// The field's bytes, if the record is long enough to hold them.
    pub fn bytes<'a>(&self, record: &'a [u8]) -> Option<&'a [u8]> {
        record.get(self.offset..self.offset.checked_add(self.size)?)
    }

    /// The field read as an unsigned integer in the machine's byte order (sizes 1, 2, 4, 8).
    /// `None` when the record is too short or the size is not one of those.
    pub fn read_uint(&self, record: &[u8]) -> Option<u64> {
        let b = self.bytes(record)?;
        Some(match self.size {
            1 => u64::from(b[0]),
            2 => u64::from(u16::from_ne_bytes(b.try_into().ok()?)),
            4 => u64::from(u32::from_ne_bytes(b.try_into().ok()?)),
            8 => u64::from_ne_bytes(b.try_into().ok()?),
            _ => return None,
        })
    }

    fn end(&self) -> usize {
        self.offset.saturating_add(self.size)
    }
}

/// A layout file that cannot be used (what is wrong with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError(pub String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

/// Every `field:` line of a layout file as (name, field), in file order. The name is the last
/// word of the declaration without any array suffix (`char rwbs[10]` → `rwbs`).
pub fn parse_fields(text: &str) -> Vec<(String, Field)> {
    let mut fields = Vec::new();
    for line in text.lines() {
        let (mut name, mut offset, mut size) = (None, None, None);
        for part in line.split(';').map(str::trim) {
            if let Some(decl) = part.strip_prefix("field:") {
                name = decl.split_whitespace().last().map(|w| w.split('[').next().unwrap_or(w).to_string());
            } else if let Some(v) = part.strip_prefix("offset:") {
                offset = v.trim().parse::<usize>().ok();
            } else if let Some(v) = part.strip_prefix("size:") {
                size = v.trim().parse::<usize>().ok();
            }
        }
        if let (Some(name), Some(offset), Some(size)) = (name, offset, size) {
            fields.push((name, Field { offset, size }));
        }
    }
    fields
}

fn find(fields: &[(String, Field)], name: &str, what: &str) -> Result<Field, FormatError> {
    fields
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, f)| *f)
        .ok_or_else(|| FormatError(format!("{what} has no field '{name}'")))
}

fn check_size(field: Field, name: &str, allowed: &[usize], what: &str) -> Result<Field, FormatError> {
    if allowed.contains(&field.size) {
        Ok(field)
    } else {
        Err(FormatError(format!("{what}: field '{name}' has size {}, expected one of {allowed:?}", field.size)))
    }
}

/// The layout of a ring-buffer page, from `events/header_page`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageLayout {
    /// The commit word: data length in the low bits, loss flags in bits 31 and 30.
    pub commit: Field,
    /// The data area holding the event records.
    pub data: Field,
}

impl PageLayout {
    /// Parses the text of `events/header_page`.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let what = "events/header_page";
        let fields = parse_fields(text);
        let commit = check_size(find(&fields, "commit", what)?, "commit", &[4, 8], what)?;
        let data = find(&fields, "data", what)?;
        if data.offset < commit.end() || data.size == 0 {
            return Err(FormatError(format!("{what}: data ({data:?}) does not follow commit ({commit:?})")));
        }
        Ok(Self { commit, data })
    }

    /// Size of a whole page as `trace_pipe_raw` hands it out.
    pub fn page_size(&self) -> usize {
        self.data.end()
    }
}

/// The record layout of `block:block_rq_complete`, from its `format` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompleteFormat {
    /// The event's ID, found in every record's `common_type`.
    pub id: u64,
    pub common_type: Field,
    /// Whole-disk device, kernel encoding `major << 20 | minor`.
    pub dev: Field,
    /// First 512-byte sector of the request, on the whole disk.
    pub sector: Field,
    /// Length in 512-byte sectors (0 for a flush).
    pub nr_sector: Field,
    /// Operation letters, NUL-terminated.
    pub rwbs: Field,
}

/// A decoded `block_rq_complete` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion<'a> {
    pub dev: u64,
    pub sector: u64,
    pub nr_sector: u64,
    pub rwbs: &'a [u8],
}

/// What a record turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Record<'a> {
    /// A `block_rq_complete` event.
    Complete(Completion<'a>),
    /// Another event type (a marker, for instance): not ours.
    Other,
    /// Too short to hold its type or, being ours, its fields: its content is unknown.
    Truncated,
}

impl CompleteFormat {
    /// Parses the text of `events/block/block_rq_complete/format`.
    pub fn parse(text: &str) -> Result<Self, FormatError> {
        let what = "block_rq_complete format";
        let id = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("ID:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| FormatError(format!("{what} has no 'ID:' line")))?;
        let fields = parse_fields(text);
        let int = |name: &str, sizes: &[usize]| check_size(find(&fields, name, what)?, name, sizes, what);
        let rwbs = find(&fields, "rwbs", what)?;
        if rwbs.size == 0 {
            return Err(FormatError(format!("{what}: field 'rwbs' is empty")));
        }
        Ok(Self {
            id,
            common_type: int("common_type", &[1, 2, 4])?,
            dev: int("dev", &[4, 8])?,
            sector: int("sector", &[4, 8])?,
            nr_sector: int("nr_sector", &[4, 8])?,
            rwbs,
        })
    }

    /// Decodes one record's payload (the bytes after the ring-buffer event header).
    pub fn decode<'a>(&self, record: &'a [u8]) -> Record<'a> {
        match self.common_type.read_uint(record) {
            None => Record::Truncated,
            Some(t) if t != self.id => Record::Other,
            Some(_) => {
                let fields = (
                    self.dev.read_uint(record),
                    self.sector.read_uint(record),
                    self.nr_sector.read_uint(record),
                    self.rwbs.bytes(record),
                );
                match fields {
                    (Some(dev), Some(sector), Some(nr_sector), Some(rwbs)) => {
                        Record::Complete(Completion { dev, sector, nr_sector, rwbs })
                    }
                    _ => Record::Truncated,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracefs::samples::{COMPLETE_FORMAT, HEADER_PAGE};

    #[test]
    fn parses_the_real_format_file() {
        let f = CompleteFormat::parse(COMPLETE_FORMAT).unwrap();
        assert_eq!(f.id, 2107);
        assert_eq!(f.common_type, Field { offset: 0, size: 2 });
        assert_eq!(f.dev, Field { offset: 8, size: 4 });
        assert_eq!(f.sector, Field { offset: 16, size: 8 });
        assert_eq!(f.nr_sector, Field { offset: 24, size: 4 });
        assert_eq!(f.rwbs, Field { offset: 34, size: 10 });
        let names: Vec<String> = parse_fields(COMPLETE_FORMAT).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.last().map(String::as_str), Some("cmd"));
    }

    #[test]
    fn parses_the_real_header_page() {
        let l = PageLayout::parse(HEADER_PAGE).unwrap();
        assert_eq!(l.commit, Field { offset: 8, size: 8 });
        assert_eq!(l.data, Field { offset: 16, size: 4080 });
        assert_eq!(l.page_size(), 4096);
    }

    #[test]
    fn refuses_files_missing_what_we_need() {
        let no_sector = COMPLETE_FORMAT.replace("sector_t sector;", "sector_t first;");
        assert_eq!(
            CompleteFormat::parse(&no_sector).unwrap_err().to_string(),
            "block_rq_complete format has no field 'sector'"
        );
        let no_id = COMPLETE_FORMAT.replace("ID: 2107", "");
        assert!(CompleteFormat::parse(&no_id).unwrap_err().0.contains("ID:"));
        let odd = COMPLETE_FORMAT.replace("offset:8;\tsize:4;", "offset:8;\tsize:3;");
        assert!(CompleteFormat::parse(&odd).unwrap_err().0.contains("'dev' has size 3"));
        assert!(PageLayout::parse("").is_err());
        let overlapping = HEADER_PAGE.replace("offset:16;\tsize:4080", "offset:4;\tsize:4080");
        assert!(PageLayout::parse(&overlapping).is_err());
    }

    fn record(id: u16, dev: u32, sector: u64, nr: u32, rwbs: &[u8]) -> Vec<u8> {
        let mut r = vec![0u8; 48];
        r[0..2].copy_from_slice(&id.to_ne_bytes());
        r[8..12].copy_from_slice(&dev.to_ne_bytes());
        r[16..24].copy_from_slice(&sector.to_ne_bytes());
        r[24..28].copy_from_slice(&nr.to_ne_bytes());
        r[34..34 + rwbs.len()].copy_from_slice(rwbs);
        r
    }

    #[test]
    fn decodes_records() {
        let f = CompleteFormat::parse(COMPLETE_FORMAT).unwrap();
        let r = record(2107, 7 << 20 | 3, 1 << 33, 8, b"WS");
        match f.decode(&r) {
            Record::Complete(c) => {
                assert_eq!((c.dev, c.sector, c.nr_sector), ((7 << 20) | 3, 1 << 33, 8));
                assert_eq!(&c.rwbs[..3], b"WS\0");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(f.decode(&record(5, 0, 0, 0, b"")), Record::Other);
        assert_eq!(f.decode(&r[..30]), Record::Truncated);
        assert_eq!(f.decode(&r[..1]), Record::Truncated);
    }
}
