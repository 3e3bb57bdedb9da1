use super::*;
use crate::tracefs::format::PageLayout;
use crate::tracefs::samples::HEADER_PAGE;

fn layout() -> PageLayout {
    PageLayout::parse(HEADER_PAGE).unwrap()
}

/// Builds the data area of a synthetic page, record by record.
#[derive(Default)]
struct Data(Vec<u8>);

impl Data {
    fn header(&mut self, type_len: u32, delta: u32) -> &mut Self {
        self.word(type_len | (delta << 5))
    }
    fn word(&mut self, w: u32) -> &mut Self {
        self.0.extend_from_slice(&w.to_ne_bytes());
        self
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    /// A small record (type_len 1..=28) with a payload of `payload.len()` bytes (a multiple of 4).
    fn small(&mut self, payload: &[u8]) -> &mut Self {
        assert_eq!(payload.len() % 4, 0);
        let n = u32::try_from(payload.len() / 4).unwrap();
        self.header(n, 7).bytes(payload)
    }
    /// A large record (type_len 0), laid out as the kernel does: the payload padded to 4 bytes,
    /// the length word = padded payload + 4 (the word counts itself).
    fn large(&mut self, payload: &[u8]) -> &mut Self {
        let pad = (4 - payload.len() % 4) % 4;
        let length = u32::try_from(payload.len() + pad + 4).unwrap();
        self.header(0, 3).word(length).bytes(payload).bytes(&vec![0u8; pad])
    }
}

/// A 4096-byte page holding `data`, its commit word = data length | `flags`.
fn page(data: &[u8], flags: u64) -> Vec<u8> {
    let mut p = vec![0u8; 4096];
    p[0..8].copy_from_slice(&123456789u64.to_ne_bytes());
    p[8..16].copy_from_slice(&(data.len() as u64 | flags).to_ne_bytes());
    p[16..16 + data.len()].copy_from_slice(data);
    p
}

fn parse(p: &[u8]) -> (Vec<Vec<u8>>, PageSummary) {
    let mut records = Vec::new();
    let summary = parse_page(&layout(), p, |r| records.push(r.to_vec()));
    (records, summary)
}

#[test]
fn every_record_type() {
    let a = [1u8; 8];
    let b: Vec<u8> = (0..112).collect(); // the largest small record: type_len 28
    let c: Vec<u8> = (0..201u8).collect(); // large, unaligned length
    let d = [4u8; 44];
    let mut data = Data::default();
    data.header(30, 5)
        .word(99) // time extend: 8 bytes, no payload
        .small(&a)
        .header(31, 0)
        .word(1) // absolute time stamp
        .small(&b)
        .large(&c)
        .header(29, 1)
        .word(16)
        .bytes(&[0xee; 12]) // discarded event: the word counts itself and what follows
        .large(&d)
        .small(&[9u8; 4])
        .header(29, 0); // end of page
    let p = page(&data.0, 0);
    let (records, summary) = parse(&p);
    assert_eq!(summary, PageSummary { missed: Missed::None, malformed: None, records: 5 });
    // The large record of 201 bytes is padded to 204 in the page; its payload is the padded
    // length (length word - 4).
    let mut c_padded = c.clone();
    c_padded.resize(204, 0);
    assert_eq!(records, vec![a.to_vec(), b, c_padded, d.to_vec(), vec![9u8; 4]]);
}

#[test]
fn empty_and_full_pages() {
    let (records, summary) = parse(&page(&[], 0));
    assert!(records.is_empty());
    assert_eq!(summary, PageSummary { missed: Missed::None, malformed: None, records: 0 });
    // A page filled exactly by records, and a tail of padding up to the end.
    let mut data = Data::default();
    for _ in 0..(4080 / 52) {
        data.small(&[1u8; 48]);
    }
    let used = data.0.len();
    data.header(29, 1).word(u32::try_from(4080 - used - 4).unwrap());
    data.0.resize(4080, 0);
    let (records, summary) = parse(&page(&data.0, 0));
    assert_eq!(records.len(), 4080 / 52);
    assert_eq!(summary.malformed, None);
}

#[test]
fn lost_events_flags() {
    let mut data = Data::default();
    data.small(&[1u8; 8]);
    let mut p = page(&data.0, MISSED_EVENTS);
    assert_eq!(parse(&p).1.missed, Missed::Unknown);
    p[8..16].copy_from_slice(&(12 | MISSED_EVENTS | MISSED_STORED).to_ne_bytes());
    p[16 + 12..16 + 20].copy_from_slice(&4242u64.to_ne_bytes());
    let (records, summary) = parse(&p);
    assert_eq!(summary.missed, Missed::Count(4242));
    assert_eq!(records.len(), 1);
    // As the kernel really hands it out: the flags sign-extended into the upper 32 bits.
    p[8..16].copy_from_slice(&0xffff_ffff_c000_000cu64.to_ne_bytes());
    let (records, summary) = parse(&p);
    assert_eq!((summary.missed, summary.malformed, records.len()), (Missed::Count(4242), None, 1));
    p[8..16].copy_from_slice(&0xffff_ffff_8000_000cu64.to_ne_bytes());
    assert_eq!(parse(&p).1.missed, Missed::Unknown);
    // Stored flag but no room for the count: still a loss, number unknown.
    let full = vec![0u8; 4080];
    let mut p = page(&full, MISSED_EVENTS | MISSED_STORED);
    p[16..20].copy_from_slice(&(29u32 | 1 << 5).to_ne_bytes());
    p[20..24].copy_from_slice(&(4080u32 - 4).to_ne_bytes());
    let (_, summary) = parse(&p);
    assert_eq!(summary.missed, Missed::Unknown);
    assert_eq!(summary.malformed, None);
}

#[test]
fn malformed_pages_stop_the_parse_and_say_why() {
    let good = {
        let mut d = Data::default();
        d.small(&[1u8; 8]);
        d.0
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // commit longer than the data area
        (
            {
                let mut p = page(&good, 0);
                p[8..16].copy_from_slice(&5000u64.to_ne_bytes());
                p
            },
            "larger than the page's data area",
        ),
        // a small record running past the data
        (
            {
                let mut d = Data::default();
                d.small(&[1u8; 8]).header(10, 0).bytes(&[0; 8]);
                page(&d.0, 0)
            },
            "runs past the end",
        ),
        // a large record whose length word runs past the data
        (
            {
                let mut d = Data::default();
                d.small(&[1u8; 8]).header(0, 0).word(4000).bytes(&[0; 8]);
                page(&d.0, 0)
            },
            "runs past the end",
        ),
        // a large record with a length word below its own size
        (
            {
                let mut d = Data::default();
                d.header(0, 0).word(2).bytes(&[0; 8]);
                page(&d.0, 0)
            },
            "below its own 4 bytes",
        ),
        // padding with a huge length
        (
            {
                let mut d = Data::default();
                d.header(29, 1).word(u32::MAX);
                page(&d.0, 0)
            },
            "runs past the end",
        ),
        // data length not a multiple of 4: header cut
        (
            {
                let mut d = Data::default();
                d.small(&[1u8; 8]).bytes(&[1, 2]);
                page(&d.0, 0)
            },
            "cut by the end of data",
        ),
        // time extend cut short
        (
            {
                let mut d = Data::default();
                d.header(30, 0);
                page(&d.0, 0)
            },
            "runs past the end",
        ),
        // large record header without its length word
        (
            {
                let mut d = Data::default();
                d.header(0, 0);
                page(&d.0, 0)
            },
            "cut by the end of data",
        ),
    ];
    for (p, why) in cases {
        let (records, summary) = parse(&p);
        let reason = summary.malformed.unwrap_or_else(|| panic!("not flagged: {why}"));
        assert!(reason.contains(why), "{reason} / {why}");
        assert!(records.len() <= 1);
    }
    // Pages shorter than their header, or cut inside the data.
    assert!(parse(&[0u8; 10]).1.malformed.unwrap().contains("shorter than its header"));
    let p = page(&good, 0);
    assert!(parse(&p[..20]).1.malformed.is_some());
}

#[test]
fn random_bytes_never_panic() {
    // A cheap deterministic generator: the parser must end on any input.
    let mut x = 0x9e3779b97f4a7c15u64;
    for round in 0..2000 {
        let mut p = vec![0u8; 4096];
        for b in p.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x.to_le_bytes()[0];
        }
        // Keep the commit plausible half of the time so the walk runs.
        if round % 2 == 0 {
            let len = (x % 4081) & !3;
            p[8..16].copy_from_slice(&len.to_ne_bytes());
        }
        let (records, summary) = parse(&p);
        assert_eq!(records.len(), summary.records);
    }
}
