//! The tracefs tracker against the real kernel, on loop devices (run as root).

mod support;

use drpair_track::tracefs::format::{Field, PageLayout, parse_fields};
use drpair_track::tracefs::page::parse_page;
use drpair_track::tracefs::read_text;
use drpair_track::{ChangeMap, TracefsTracker, Tracker};
use drpair_types::Consistency;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Duration;
use support::*;

/// Begins a cut on every map (they move in step) and collects.
fn cut(t: &mut TracefsTracker, maps: &mut [ChangeMap]) -> (u64, drpair_track::Collected) {
    let epochs: Vec<u64> = maps.iter_mut().map(|m| m.begin_cut().unwrap()).collect();
    assert!(epochs.windows(2).all(|w| w[0] == w[1]));
    let c = t.collect(maps, epochs[0]).unwrap();
    assert_eq!(c.consistency, Consistency::Fuzzy);
    assert!(!c.scan);
    (epochs[0], c)
}

#[test]
fn new_refuses_what_it_cannot_track_and_changes_nothing() {
    let mut fx = Fixture::new("refuse");
    let file = backing_file(fx.dir.path(), "disk.img", 16 * MIB);
    fx.cfg.disks = vec![file.clone()];
    let err = TracefsTracker::new(fx.cfg.clone()).unwrap_err().to_string();
    assert!(err.contains("is not a block device (tracefs sees only block devices; use the scan tracker)"), "{err}");
    let lo = LoopDev::attach(&file, false);
    fx.cfg.disks = vec![lo.path.clone()];
    let mut cfg = fx.cfg.clone();
    cfg.tracefs_root = fx.dir.path().to_path_buf();
    let err = TracefsTracker::new(cfg).unwrap_err().to_string();
    assert!(err.contains("tracefs is not mounted at"), "{err}");
    let t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    assert!(!fx.instance_dir().exists(), "new() must not create the instance");
    assert!(!fx.cfg.state_file.exists());
    drop(t);
}

#[test]
fn writes_discards_and_zeroes_are_stamped_reads_are_not() {
    let mut fx = Fixture::new("ops");
    let file = backing_file(fx.dir.path(), "disk.img", 64 * MIB);
    let lo = LoopDev::attach(&file, false);
    fx.cfg.disks = vec![lo.path.clone()];
    let mut maps = fx.maps("ops");
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    assert!(!t.devices()[0].is_partition());
    let gap = t.start(&mut maps).unwrap();
    assert!(gap.unwrap().contains("no tracking record"));

    write_direct(&lo.path, 0, 4096);
    write_direct(&lo.path, MIB + 60 * KIB, 8192); // straddles two chunks
    run("blkdiscard", &["-o", &(4 * MIB).to_string(), "-l", &(128 * KIB).to_string(), lo.path.to_str().unwrap()]);
    run("blkdiscard", &["-z", "-o", &(8 * MIB).to_string(), "-l", &CHUNK.to_string(), lo.path.to_str().unwrap()]);
    write_buffered(&lo.path, 12 * MIB, 4096);
    read_direct(&lo.path, 20 * MIB, 64 * 1024);
    read_direct(&lo.path, 0, 4096);

    let (epoch, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    let expected = vec![
        0,
        chunk(MIB + 60 * KIB),
        chunk(MIB + 64 * KIB),
        chunk(4 * MIB),
        chunk(4 * MIB) + 1,
        chunk(8 * MIB),
        chunk(12 * MIB),
    ];
    assert_eq!(changed(&maps[0], 0), expected);
    assert!(expected.iter().all(|&ch| maps[0].epoch_of(ch) == epoch));
    let s = t.stats();
    assert!(s.writes >= 3, "{s:?}");
    if lo.queue_limit("discard_max_bytes") > 0 {
        assert!(s.discards >= 1, "{s:?}");
    }
    if lo.queue_limit("write_zeroes_max_bytes") > 0 {
        assert!(s.zeroes >= 1, "{s:?}");
    }
    assert_eq!((s.losses, s.lost_events), (0, 0));

    // Nothing new: nothing stamped.
    let (epoch2, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    assert_eq!(changed(&maps[0], epoch), Vec::<u64>::new());
    write_direct(&lo.path, 30 * MIB, 4096);
    let (epoch3, _) = cut(&mut t, &mut maps);
    assert_eq!(changed(&maps[0], epoch2), vec![chunk(30 * MIB)]);
    assert_eq!(maps[0].epoch_of(chunk(30 * MIB)), epoch3);
    t.stop().unwrap();
}

#[test]
fn a_partition_gets_only_its_own_changes_relative_to_its_start() {
    let mut fx = Fixture::new("part");
    let file = backing_file(fx.dir.path(), "disk.img", 64 * MIB);
    let lo = LoopDev::attach(&file, true);
    // p1: from 1 MiB, 32 MiB long.
    let p1 = lo.add_partition(1, 2048, 65536);
    fx.cfg.disks = vec![p1.clone()];
    let mut maps = fx.maps("part");
    assert_eq!(maps[0].chunk_count(), 32 * MIB / CHUNK);
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    let d = &t.devices()[0];
    assert!(d.is_partition());
    assert_eq!((d.start_sector, d.size_sectors), (2048, 65536));
    assert_eq!(t.filter(), format!("dev == {}", d.disk_kernel_dev()));
    t.start(&mut maps).unwrap();

    write_direct(&p1, 128 * KIB, 4096); // p1 chunk 2
    write_direct(&lo.path, 512 * KIB, 4096); // whole disk, before p1
    write_direct(&lo.path, MIB + 192 * KIB, 4096); // whole disk, inside p1: chunk 3
    write_direct(&lo.path, 40 * MIB, 4096); // whole disk, after p1
    write_direct(&lo.path, 33 * MIB - 4 * KIB, 8192); // across p1's end: its last chunk only

    let (_, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    assert_eq!(changed(&maps[0], 0), vec![2, 3, 511]);
    assert_eq!(t.stats().events, 3);
    t.stop().unwrap();
}

#[test]
fn a_disk_not_protected_is_not_stamped() {
    let mut fx = Fixture::new("other");
    let a = LoopDev::attach(&backing_file(fx.dir.path(), "a.img", 16 * MIB), false);
    let b = LoopDev::attach(&backing_file(fx.dir.path(), "b.img", 16 * MIB), false);
    fx.cfg.disks = vec![a.path.clone()];
    let mut maps = fx.maps("other");
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    t.start(&mut maps).unwrap();
    write_direct(&b.path, 0, 4096);
    write_direct(&b.path, 2 * MIB, 65536);
    write_direct(&a.path, 3 * MIB, 4096);
    let (_, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    assert_eq!(changed(&maps[0], 0), vec![chunk(3 * MIB)]);
    assert_eq!(t.stats().events, 1);
    t.stop().unwrap();
}

#[test]
fn settings_changed_while_running_are_a_gap_and_put_back() {
    let mut fx = Fixture::new("meddle");
    let lo = LoopDev::attach(&backing_file(fx.dir.path(), "disk.img", 16 * MIB), false);
    fx.cfg.disks = vec![lo.path.clone()];
    let mut maps = fx.maps("meddle");
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    t.start(&mut maps).unwrap();
    let enable = fx.instance_dir().join("events/block/block_rq_complete/enable");
    std::fs::write(&enable, "0").unwrap();
    write_direct(&lo.path, 2 * CHUNK, 4096); // not recorded: the event is off
    let (_, c) = cut(&mut t, &mut maps);
    let gap = c.gap.expect("a disabled event is a gap");
    assert!(gap.contains("changed by someone else") && gap.contains("put back"), "{gap}");
    assert_eq!(std::fs::read_to_string(&enable).unwrap().trim(), "1");
    write_direct(&lo.path, 4 * CHUNK, 4096);
    let (e, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    assert_eq!(changed(&maps[0], e - 1), vec![4]);
    t.stop().unwrap();
}

#[test]
fn writes_before_start_are_not_reported() {
    let mut fx = Fixture::new("late");
    let lo = LoopDev::attach(&backing_file(fx.dir.path(), "disk.img", 16 * MIB), false);
    fx.cfg.disks = vec![lo.path.clone()];
    let mut maps = fx.maps("late");
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    write_direct(&lo.path, 5 * CHUNK, 4096);
    let gap = t.start(&mut maps).unwrap();
    assert!(gap.is_some(), "a first start must say that earlier writes are unknown");
    write_direct(&lo.path, 9 * CHUNK, 4096);
    cut(&mut t, &mut maps);
    assert_eq!(changed(&maps[0], 0), vec![9]);
    t.stop().unwrap();
}

#[test]
fn ring_buffer_overrun_is_reported_as_a_gap() {
    let mut fx = Fixture::new("loss");
    let lo = LoopDev::attach(&backing_file(fx.dir.path(), "disk.img", 256 * MIB), false);
    fx.cfg.disks = vec![lo.path.clone()];
    fx.cfg.buffer_kib = 4;
    fx.cfg.poll_interval = Duration::from_secs(3600); // the drainer never runs
    let mut maps = fx.maps("loss");
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    t.start(&mut maps).unwrap();
    let dev = open_direct(&lo.path, true);
    let buf = Aligned::new(4096, 1);
    let requests = 30_000u64;
    let begin = std::time::Instant::now();
    for i in 0..requests {
        dev.write_all_at(buf.bytes(), (i * 4096) % (256 * MIB)).unwrap();
    }
    let secs = begin.elapsed().as_secs_f64();
    eprintln!("{requests} O_DIRECT 4 KiB writes in {secs:.2} s ({:.0} requests/s)", requests as f64 / secs);
    let (_, c) = cut(&mut t, &mut maps);
    let gap = c.gap.expect("a 4 KiB buffer cannot hold 30000 events: the loss must be reported");
    assert!(gap.contains("lost events"), "{gap}");
    assert!(gap.contains("ring buffer overrun"), "{gap}");
    assert!(!gap.contains("malformed") && !gap.contains("beyond the counters"), "{gap}");
    let s = t.stats();
    assert_eq!(s.losses, 1);
    assert!(s.lost_events > 20_000, "{s:?}");
    assert!(s.events + s.lost_events >= requests, "{s:?}");
    eprintln!("gap: {gap}\nstats: {s:?}");
    // Reported once.
    let (_, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    t.stop().unwrap();
}

#[test]
fn a_clean_stop_is_taken_over_and_a_crash_or_a_lost_record_is_a_gap() {
    let mut fx = Fixture::new("restart");
    let lo = LoopDev::attach(&backing_file(fx.dir.path(), "disk.img", 16 * MIB), false);
    fx.cfg.disks = vec![lo.path.clone()];
    let mut maps = fx.maps("restart");
    let state = fx.cfg.state_file.clone();
    let clean_in_file = || -> bool {
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
        v["clean"].as_bool().unwrap()
    };

    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    assert!(t.start(&mut maps).unwrap().unwrap().contains("no tracking record"));
    assert!(!clean_in_file());
    write_direct(&lo.path, CHUNK, 4096);
    let (e1, _) = cut(&mut t, &mut maps);
    assert_eq!(changed(&maps[0], 0), vec![1]);
    t.stop().unwrap();
    assert!(clean_in_file());
    assert!(fx.instance_dir().is_dir(), "a clean stop leaves the instance recording");

    // Written while the agent is stopped.
    write_direct(&lo.path, 7 * CHUNK, 4096);
    write_direct(&lo.path, 8 * CHUNK, 4096);

    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    assert_eq!(t.start(&mut maps).unwrap(), None);
    assert!(!clean_in_file(), "a running tracker's state file must not say clean");
    let (e2, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    assert_eq!(changed(&maps[0], e1), vec![7, 8]);
    assert_eq!(maps[0].epoch_of(7), e2);

    // Drained by the stop but not stamped yet: carried in the state file.
    write_direct(&lo.path, 3 * CHUNK, 4096);
    t.stop().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(v["pending"], serde_json::json!([[[3, 1]]]));
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    assert_eq!(t.start(&mut maps).unwrap(), None);
    let (e3, c) = cut(&mut t, &mut maps);
    assert_eq!(c.gap, None);
    assert_eq!(changed(&maps[0], e2), vec![3]);
    assert_eq!(maps[0].epoch_of(3), e3);

    // A crash (dropped without stop): the next start reports the gap.
    write_direct(&lo.path, 12 * CHUNK, 4096);
    drop(t);
    assert!(!clean_in_file());
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    let gap = t.start(&mut maps).unwrap().expect("a crash is a gap");
    assert!(gap.contains("did not stop cleanly"), "{gap}");
    t.stop().unwrap();

    // The state file is lost.
    std::fs::remove_file(&state).unwrap();
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    let gap = t.start(&mut maps).unwrap().expect("no record is a gap");
    assert!(gap.contains("no tracking record"), "{gap}");
    t.stop().unwrap();

    // The instance is removed, or re-created with the same settings, while stopped.
    std::fs::remove_dir(fx.instance_dir()).unwrap();
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    let gap = t.start(&mut maps).unwrap().expect("a vanished instance is a gap");
    assert!(gap.contains("disappeared or was changed"), "{gap}");
    t.stop().unwrap();
    let filter = t.filter();
    std::fs::remove_dir(fx.instance_dir()).unwrap();
    std::fs::create_dir(fx.instance_dir()).unwrap();
    let event = fx.instance_dir().join("events/block/block_rq_complete");
    std::fs::write(fx.instance_dir().join("buffer_size_kb"), fx.cfg.buffer_kib.to_string()).unwrap();
    std::fs::write(event.join("filter"), &filter).unwrap();
    std::fs::write(event.join("enable"), "1").unwrap();
    let mut t = TracefsTracker::new(fx.cfg.clone()).unwrap();
    let gap = t.start(&mut maps).unwrap().expect("a re-created instance is a gap");
    assert!(gap.contains("disappeared or was changed"), "{gap}");

    // remove() deletes the instance and the state file.
    t.remove().unwrap();
    assert!(!fx.instance_dir().exists());
    assert!(!state.exists());
}

/// Checks the page format against pages the kernel wrote: markers of several sizes (large
/// ones use type_len 0) must come back whole, in order, with no malformed page.
#[test]
fn real_pages_parse_as_documented() {
    let fx = Fixture::new("pages");
    let dir = fx.instance_dir();
    std::fs::create_dir(&dir).unwrap();
    let layout = PageLayout::parse(&read_text(&dir.join("events/header_page")).unwrap()).unwrap();
    let print = read_text(&dir.join("events/ftrace/print/format")).unwrap();
    let print_id: u64 = print.lines().find_map(|l| l.strip_prefix("ID:")).map(|v| v.trim().parse().unwrap()).unwrap();
    let buf_field = parse_fields(&print).into_iter().find(|(n, _)| n == "buf").unwrap().1;
    let type_field = Field { offset: 0, size: 2 };

    let texts: Vec<String> =
        [3usize, 111, 112, 113, 200, 500, 1000, 3000].iter().map(|&n| format!("{n:04}{}", "x".repeat(n))).collect();
    // All markers from this thread, pinned to one CPU so they land in one buffer in order.
    // SAFETY: an all-zero cpu_set_t is a valid, empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_ZERO/CPU_SET write inside the set we own; sched_setaffinity reads it.
    unsafe {
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(0, &mut set);
        assert_eq!(libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set), 0);
    }
    for t in &texts {
        std::fs::write(dir.join("trace_marker"), t).unwrap();
    }
    let pipe = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join("per_cpu/cpu0/trace_pipe_raw"))
        .unwrap();
    let mut found = Vec::new();
    let mut page = vec![0u8; layout.page_size()];
    loop {
        use std::io::Read;
        let n = match (&pipe).read(&mut page) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(n, layout.page_size(), "trace_pipe_raw hands out whole pages");
        let summary = parse_page(&layout, &page[..n], |rec| {
            if type_field.read_uint(rec) == Some(print_id) {
                let text = &rec[buf_field.offset..];
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                // The payload is the record rounded up to 4 bytes: at most 3 bytes past the NUL
                // (and the kernel may end the string with a newline it adds).
                assert!(text.len() - end <= 4, "payload longer than the record: {} > {}", text.len(), end);
                found.push(String::from_utf8_lossy(&text[..end]).trim_end_matches('\n').to_string());
            }
        });
        assert_eq!(summary.malformed, None);
    }
    drop(pipe);
    std::fs::remove_dir(&dir).unwrap();
    assert_eq!(found, texts);
}
