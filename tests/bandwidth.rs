//! Bandwidth limits on the link (issue 20): a standby-wide limit from the command line holds
//! an initial sync at 40 MiB/s within ±5% over 30 s; a pair's own limit set live with
//! `drpair pairs set` is in force within a second, on the same connection; a schedule
//! switches at the minute it names (the standby's local time); status, settings and metrics
//! show the limit in force; bad settings are refused and change nothing; a pause on the
//! saturated link stops the shipping within a second or two.

use drpair_e2e::api::metric_value;
use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_connected};
use std::time::{Duration, Instant};

const SIZE: u64 = 1900 * MIB;
const PAIR: &str = "bw-01";

/// Bytes received on the pair's link so far, and when that was read.
fn received(api: &Api) -> (u64, Instant) {
    let s = api.status(PAIR);
    (s.link.wire_bytes_received, Instant::now())
}

/// The rate over `secs` seconds from now, measured by the standby's own count.
fn rate_over(api: &Api, secs: f64) -> f64 {
    let (b0, t0) = received(api);
    std::thread::sleep(Duration::from_secs_f64(secs));
    let (b1, t1) = received(api);
    (b1 - b0) as f64 / t1.duration_since(t0).as_secs_f64()
}

/// The weekday (0 = Monday) and minute of the day in local time, as the standby sees them.
fn local_now() -> (u32, u32) {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as libc::time_t;
    // SAFETY: a zeroed tm is valid to overwrite; both pointers are to locals.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    assert!(!unsafe { libc::localtime_r(&t, &mut tm) }.is_null());
    (((tm.tm_wday + 6) % 7) as u32, (tm.tm_hour * 60 + tm.tm_min) as u32)
}

fn hhmm(m: u32) -> String {
    format!("{:02}:{:02}", (m / 60) % 24, m % 60)
}

#[test]
fn limits_hold_change_live_and_follow_their_schedule() {
    let env = TestEnv::new("bandwidth");
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 3);
    let sb = Standby::start_with(&env, None, &["--bandwidth", "40MiB/s"]);
    let api = sb.api();
    let cli = sb.cli();
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[&img]);
    spec.compression = Some("off".into());
    let _agent = spec.spawn(&env, "agent");
    wait_connected(&api, PAIR, true, Duration::from_secs(60));

    // The standby-wide limit from the command line, over 30 s of the initial sync.
    std::thread::sleep(Duration::from_secs(3));
    let r = rate_over(&api, 30.0);
    let ratio = r / (40 * MIB) as f64;
    step(format!("standby-wide 40MiB/s: {:.2} MiB/s over 30 s of the initial sync ({ratio:.3}×)", r / MIB as f64));
    assert!((0.95..=1.05).contains(&ratio), "40 MiB/s limit held at {ratio:.3}×");
    let s = api.status(PAIR);
    assert_eq!(s.link.bandwidth_limit_bytes_per_second, Some(40 * MIB));
    assert_eq!(s.link.bandwidth_limited_by.as_deref(), Some("standby"));
    let connections = s.link.connections;

    // Bad input changes nothing.
    for (args, code, says) in [
        (vec!["pairs", "set", PAIR, "--bandwidth", "fast"], 8, "per second"),
        (vec!["pairs", "set", PAIR, "--bandwidth", "Funday = 1MiB/s"], 8, "not a day"),
        (vec!["pairs", "set", PAIR, "--bandwidth", "1KiB/s"], 8, "slowest"),
        (vec!["pairs", "set", "no-such-pair", "--bandwidth", "1MiB/s"], 3, "not known"),
        (vec!["standby", "set", "--bandwidth", "10MiB"], 8, "per second"),
    ] {
        let out = cli.run(&args);
        out.expect_code(code);
        assert!(out.stderr.contains(says), "{args:?}: {}", out.stderr);
    }
    let raw = api.get(&format!("/api/v1/pairs/{PAIR}/settings")).json();
    assert_eq!(raw["bandwidth"], "unlimited", "{raw}");
    let std = cli.run(&["standby", "set", "--output", "json"]);
    assert_eq!(std.ok().json()["bandwidth"], "40MiB/s");

    // The pair's own limit, live: in force within a second, on the same connection.
    let out = cli.run(&["pairs", "set", PAIR, "--bandwidth", "10MiB/s"]);
    out.ok();
    let changed = Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let r = rate_over(&api, 3.0);
    let ratio = r / (10 * MIB) as f64;
    step(format!(
        "pair set to 10MiB/s: {:.2} MiB/s from 1 s after the change ({ratio:.3}×); {}",
        r / MIB as f64,
        out.stdout.trim()
    ));
    assert!((0.9..=1.1).contains(&ratio), "10 MiB/s from {:?} after the change: {ratio:.3}×", changed.elapsed());
    let s = api.status(PAIR);
    assert_eq!(s.link.connections, connections, "the change reconnected: {:?}", s.link);
    assert_eq!(s.link.bandwidth_limited_by.as_deref(), Some("pair"));
    let m = api.metrics();
    assert_eq!(
        metric_value(&m, &format!("drpair_link_bandwidth_limit_bytes_per_second{{pair=\"{PAIR}\"}}")),
        Some((10 * MIB) as f64)
    );

    // A schedule: 4 MiB/s until the next minute, then 8 MiB/s; the standby-wide limit off.
    cli.run(&["standby", "set", "--bandwidth", "unlimited"]).ok();
    let (day, minute) = local_now();
    let days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    let next = (minute + 1) % 1440;
    let schedule = format!(
        "{} {}-{} = 4MiB/s; {} {}-{} = 8MiB/s; * = 1MiB/s",
        days[day as usize],
        hhmm(minute),
        hhmm(next),
        days[if next == 0 { (day as usize + 1) % 7 } else { day as usize }],
        hhmm(next),
        hhmm((next + 2) % 1440),
    );
    cli.run(&["pairs", "set", PAIR, "--bandwidth", &schedule]).ok();
    step(format!("schedule set: {schedule}"));
    // Before the switch (when there are at least 4 s of this minute left).
    let secs_left = 60 - (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60);
    if secs_left > 5 {
        std::thread::sleep(Duration::from_millis(1200));
        let r = rate_over(&api, (secs_left as f64 - 2.5).min(4.0));
        step(format!("before the switch: {:.2} MiB/s", r / MIB as f64));
        assert!((0.85..=1.15).contains(&(r / (4 * MIB) as f64)), "before the switch: {r}");
    }
    while local_now().1 != next {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    let r = rate_over(&api, 4.0);
    step(format!("after the switch at {}: {:.2} MiB/s", hhmm(next), r / MIB as f64));
    assert!((0.85..=1.15).contains(&(r / (8 * MIB) as f64)), "after the switch: {r}");
    let s = api.status(PAIR);
    assert_eq!(s.link.bandwidth_limit_bytes_per_second, Some(8 * MIB), "{:?}", s.link);
    assert_eq!(s.link.bandwidth, schedule);

    // A pause on the saturated link: the standby shows it at once, and the agent stops
    // shipping within a second or two (only the frames already queued still arrive).
    let paused_at = Instant::now();
    cli.run(&["pause", PAIR]).ok();
    let s = api.status(PAIR);
    assert_eq!(s.state_label, "Paused", "{}", drpair_e2e::pair::describe(&s));
    std::thread::sleep(Duration::from_millis(1500));
    let r = rate_over(&api, 2.0);
    step(format!(
        "paused: {:.0} B/s on the wire from {:.1}s after the pause",
        r,
        paused_at.elapsed().as_secs_f64() - 2.0
    ));
    assert!(r < 256.0 * 1024.0, "still shipping {r} B/s after the pause");
    cli.run(&["resume", PAIR]).ok();
}
