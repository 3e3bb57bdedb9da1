//! Read at the cut, ship from a spool (issue "Recovery points a database can start from",
//! parts 1 and 2), on a tracefs-tracked 256 MiB loop device whose agent ships at 8 MiB/s (the
//! test throttle stands for a slow link), with a spool of 16 MiB of memory and a 40 MiB file:
//! - 40 MiB changed: the epoch is read into the spool at once (its file is in use while it
//!   ships, the status counts its bytes), shipping takes seconds, yet the point's read window
//!   stays within the 2 s bound; the spool file is gone once it is shipped; the point equals
//!   the device;
//! - 96 MiB changed, more than the spool holds: the status says `spool full`, a failure
//!   message is recorded, the point's read window is over the bound and it is marked; nothing
//!   is lost (the point equals the device);
//! - kill -9 of the agent while its spool file holds an epoch: the file is left behind, the
//!   restarted agent clears it, reads the chunks again, and the next point equals the device.

use drpair_e2e::image::{hash_file, sparse_image};
use drpair_e2e::tracking::{TraceInstance, fill_random};
use drpair_e2e::{AgentSpec, Api, LoopDev, MIB, Standby, TestEnv, step, wait_connected, wait_ready, wait_until};
use drpair_types::RecoveryPoint;
use std::path::Path;
use std::time::Duration;

const DISK: u64 = 256 * MIB;
const LINK: u64 = 8 * MIB;
const LONG: Duration = Duration::from_secs(180);

fn spool_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".spool"))
                .collect()
        })
        .unwrap_or_default()
}

/// Cuts a point in the background (it takes as long as the link needs).
fn cut(api: &Api, pair: &str) -> std::thread::JoinHandle<RecoveryPoint> {
    let (api, pair) = (api.clone(), pair.to_string());
    std::thread::spawn(move || api.create_point_wait(&pair))
}

fn assert_equals_device(api: &Api, pair: &str, p: &RecoveryPoint, img: &Path) {
    let exported = api.export_full(pair, &p.id.to_string(), 0, DISK);
    assert_eq!(exported, hash_file(img).1, "point {} must equal the device", p.id);
}

#[test]
fn a_slow_link_ships_exact_points_from_the_spool() {
    let pair = "spool";
    let env = TestEnv::new("spool");
    let img = env.path("disk0.img");
    sparse_image(&img, DISK);
    let lo = LoopDev::attach(&img);
    let _trace = TraceInstance::of_pair(pair);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let spool_dir = env.path("spool");
    let mut spec = AgentSpec::new(&env, &sb, pair, &[lo.dev.as_path()]);
    spec.tracker = "tracefs".into();
    spec.cut_interval = "1h".into();
    spec.extra = ["--spool-memory-mib", "16", "--spool-file-mib", "40", "--spool-dir", spool_dir.to_str().unwrap()]
        .map(String::from)
        .to_vec();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, LONG);
    agent.term(Duration::from_secs(30));
    spec.throttle_bps = Some(LINK);
    let mut agent = spec.spawn(&env, "agent-slow");
    wait_connected(&api, pair, true, LONG);

    // 1. An epoch that fits the spool: read at once, shipped slowly, exact.
    fill_random(&lo.dev, 0, 40 * MIB, 1);
    let pending = cut(&api, pair);
    let held = wait_until("the spool file in use while the epoch ships", LONG, || {
        let bytes = api.status(pair).stats.spool_bytes;
        let files = spool_files(&spool_dir);
        if bytes > 0 && !files.is_empty() { Ok(bytes) } else { Err(format!("spool {bytes} bytes, files {files:?}")) }
    });
    let p1 = pending.join().expect("cut");
    let window = p1.read_window_ms.expect("read window");
    let shipping = p1.committed_unix_ms - p1.time_unix_ms;
    step(format!(
        "point {}: 40 MiB read in {window} ms, committed {shipping} ms after its cut (spool held {held} bytes)",
        p1.id
    ));
    assert!(shipping >= 3000, "40 MiB at 8 MiB/s takes seconds to ship: {p1:?}");
    assert!(window < 2000 && !p1.window_exceeded, "read at the cut, whatever the link: {p1:?}");
    // The agent drops the epoch's spool once the standby's ack reaches it, just after the commit.
    wait_until("the spool file gone after the ack", Duration::from_secs(10), || {
        let files = spool_files(&spool_dir);
        if files.is_empty() { Ok(()) } else { Err(format!("{files:?}")) }
    });
    assert_equals_device(&api, pair, &p1, &img);

    // 2. An epoch larger than the spool: said so, the point marked, nothing lost.
    fill_random(&lo.dev, 64 * MIB, 96 * MIB, 2);
    let pending = cut(&api, pair);
    let why = wait_until("the status to say the spool is full", LONG, || {
        let s = api.status(pair);
        if s.stats.spool_full && s.state_explanation.contains("spool full") {
            Ok(s.state_explanation)
        } else {
            Err(format!("spool_full {}, explanation: {}", s.stats.spool_full, s.state_explanation))
        }
    });
    step(format!("status: {why}"));
    let p2 = pending.join().expect("cut");
    assert!(p2.window_exceeded && p2.read_window_ms.unwrap_or(0) > 2000, "a spilled epoch's point says so: {p2:?}");
    let failures = api.status(pair).failure_messages;
    assert!(failures.iter().any(|f| f.contains("spool full")), "{failures:?}");
    assert_equals_device(&api, pair, &p2, &img);
    step(format!("point {}: read window {:?} ms, marked window_exceeded; equals the device", p2.id, p2.read_window_ms));

    // 3. kill -9 while the spool file holds an epoch.
    fill_random(&lo.dev, 160 * MIB, 40 * MIB, 3);
    let r = api.post(&format!("/api/v1/pairs/{pair}/points"), "application/json", b"{}");
    assert!(r.status == 200 || r.status == 202, "{}", r.text());
    wait_until("an epoch in the spool file", LONG, || {
        let files = spool_files(&spool_dir);
        if files.is_empty() { Err("no spool file yet".to_string()) } else { Ok(files) }
    });
    agent.kill9();
    let left = spool_files(&spool_dir);
    assert!(!left.is_empty(), "kill -9 leaves the spool file behind");
    agent.start();
    wait_connected(&api, pair, true, LONG);
    let p3 = api.create_point_wait(pair);
    assert_equals_device(&api, pair, &p3, &img);
    wait_until("no spool file left", Duration::from_secs(10), || {
        let files = spool_files(&spool_dir);
        if files.is_empty() { Ok(()) } else { Err(format!("{files:?}")) }
    });
    assert!(
        agent.log_of_last_start().contains("removed a previous run's spool files"),
        "the restarted agent says it cleared {left:?}"
    );
    step(format!("after kill -9 with {left:?} in the spool: point {} equals the device", p3.id));
    agent.term(Duration::from_secs(30));
}
