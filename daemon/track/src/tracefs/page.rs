//! Parser of the ring-buffer pages `per_cpu/cpuN/trace_pipe_raw` hands out.
//!
//! A page is `timestamp | commit | data` at the offsets `events/header_page` gives (on x86_64:
//! u64 at 0, an 8-byte `local_t` at 8, data from 16 to the end of the 4096-byte page). The
//! commit word holds the length of the data in its low bits; bit 31 says events were lost
//! between the previous page and this one, and bit 30 that their number is stored right after
//! the data (the kernel stores it only when there is room; it is a `long`, as wide as the
//! commit word). Only the low 32 bits count: `local_t` is a signed long and the kernel adds
//! the flags as `int` constants, so bit 31 sign-extends into the upper half (Linux 6.18 hands
//! out `0xffffffffc0000fc0` for a page with 4032 bytes of data, both flags set).
//!
//! The data is a sequence of records, each starting with a u32 header: `type_len` in the low
//! 5 bits, a time delta in the upper 27. By `type_len`:
//!
//! - 1..=28: a data record of `type_len * 4` bytes follows the header;
//! - 0: a data record too large for the above; the next u32 holds its length **plus the 4
//!   bytes of that length word itself** (checked against real pages: a 200-byte marker on
//!   Linux 6.18 had length word 224 = 4 + 220 bytes of payload), and the payload follows that
//!   word; the record takes `4 + length` bytes, rounded up to 4;
//! - 29: padding. With a zero time delta, the rest of the page is empty; otherwise (an event
//!   discarded after it was written) the next u32 is the number of bytes after the header;
//! - 30: time extend, 8 bytes in all; 31: absolute time stamp, 8 bytes in all.
//!
//! Nothing in a page is trusted: a length running past the data, a commit length past the
//! page or a record too short to read stops the parse of that page, which is reported as
//! malformed (the caller counts it as lost events, since what the rest held is unknown). Every
//! step advances at least 4 bytes, so a parse always ends.

use super::format::PageLayout;

/// Commit bit 31: events were lost before this page.
pub const MISSED_EVENTS: u64 = 1 << 31;
/// Commit bit 30: the number of lost events is stored after the data.
pub const MISSED_STORED: u64 = 1 << 30;
/// The bits of the commit word below the flags: the data length.
pub const LENGTH_MASK: u64 = (1 << 30) - 1;

const TYPE_PADDING: u32 = 29;
const TYPE_TIME_EXTEND: u32 = 30;
const TYPE_TIME_STAMP: u32 = 31;
const TYPE_DATA_MAX: u32 = 28;

/// Events the kernel says it lost before a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// No loss flagged.
    None,
    /// Loss flagged, number not stored (no room after the data).
    Unknown,
    /// Loss flagged with the number of lost events.
    Count(u64),
}

/// What parsing a page found besides its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageSummary {
    pub missed: Missed,
    /// Why the parse stopped early; the records after that point are unknown.
    pub malformed: Option<String>,
    /// Data records handed to the callback.
    pub records: usize,
}

/// Parses one page, calling `on_record` with the payload of every data record in order (the
/// event's bytes, starting with its `common_type`). Never panics, whatever the bytes.
pub fn parse_page(layout: &PageLayout, page: &[u8], mut on_record: impl FnMut(&[u8])) -> PageSummary {
    let mut summary = PageSummary { missed: Missed::None, malformed: None, records: 0 };
    let Some(commit) = layout.commit.read_uint(page) else {
        summary.malformed = Some(format!("page of {} bytes is shorter than its header", page.len()));
        return summary;
    };
    let data_start = layout.data.offset;
    let room = page.len().saturating_sub(data_start).min(layout.data.size);
    let commit = commit & 0xffff_ffff;
    let len = commit & LENGTH_MASK;
    let Some(len) = usize::try_from(len).ok().filter(|l| *l <= room) else {
        summary.malformed = Some(format!("data length {len} is larger than the page's data area ({room} bytes)"));
        return summary;
    };
    if commit & MISSED_EVENTS != 0 {
        summary.missed = Missed::Unknown;
        if commit & MISSED_STORED != 0 {
            let at = data_start + len;
            let count = super::format::Field { offset: at, size: layout.commit.size }.read_uint(page);
            if let Some(count) = count {
                summary.missed = Missed::Count(count);
            }
        }
    }
    let data = &page[data_start..data_start + len];
    if let Err(reason) = walk(data, &mut on_record, &mut summary.records) {
        summary.malformed = Some(reason);
    }
    summary
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

/// Walks the records of a page's data area.
fn walk(data: &[u8], on_record: &mut impl FnMut(&[u8]), records: &mut usize) -> Result<(), String> {
    let mut pos = 0usize;
    while pos < data.len() {
        let header = u32_at(data, pos).ok_or_else(|| format!("record header at byte {pos} cut by the end of data"))?;
        let type_len = header & 0x1f;
        let delta = header >> 5;
        let word = |at: usize| {
            u32_at(data, at)
                .map(|w| w as usize)
                .ok_or_else(|| format!("record at byte {pos} (type {type_len}) cut by the end of data"))
        };
        let (payload, size) = match type_len {
            TYPE_PADDING if delta == 0 => return Ok(()),
            TYPE_PADDING => (None, word(pos + 4)?.saturating_add(4)),
            TYPE_TIME_EXTEND | TYPE_TIME_STAMP => (None, 8),
            0 => {
                let length = word(pos + 4)?;
                if length < 4 {
                    return Err(format!("record at byte {pos} has length word {length}, below its own 4 bytes"));
                }
                (Some((pos + 8, length - 4)), round4(length).saturating_add(4))
            }
            n => {
                debug_assert!(n <= TYPE_DATA_MAX);
                let length = n as usize * 4;
                (Some((pos + 4, length)), length + 4)
            }
        };
        let end = pos.checked_add(size).filter(|e| *e <= data.len());
        let Some(end) = end else {
            return Err(format!("record at byte {pos} of {size} bytes runs past the end of data ({})", data.len()));
        };
        if let Some((at, length)) = payload {
            // `at + length <= end` since the payload lies inside the record.
            on_record(&data[at..at + length]);
            *records += 1;
        }
        pos = end;
    }
    Ok(())
}

fn round4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

#[cfg(test)]
mod tests;
