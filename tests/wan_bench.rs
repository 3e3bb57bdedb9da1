//! The WAN benchmark (issue 20), run by `benches/wan.sh` (ignored in the test suite: it
//! measures, it does not check). Through the fault proxy acting as a WAN link, in one process:
//! 1. 100 Mbit/s each way with 50 ms of round trip: the initial sync of a 4 GiB loop device
//!    holding 512 MiB of random data (the rest never written), tracked through tracefs, and a
//!    1% catch-up (41 MB of random chunks), as bytes on the wire per second against the link's
//!    rate, and against `rsync` (an rsync daemon behind the same proxy) copying the same file
//!    and then catching up the same 1% (`--inplace --no-whole-file -I`);
//! 2. 400 Mbit/s with 20 ms of round trip: the lag (RPO) sampled every 250 ms while fio writes
//!    20 MB/s of random 64 KiB blocks to the tracked loop device, p50/p99/max;
//! 3. the tracked host's cost: fio 4 KiB random-write IOPS on the loop device with no agent
//!    (before and after), with the agent tracking while its pair is paused (nothing shipped),
//!    and with the agent shipping a 512 MiB backlog as fast as the 400 Mbit/s link takes it.
//!
//! Prints one `WAN` line per figure; ratios are what to read. `DRPAIR_WAN_QUICK=1` runs only
//! drpair's part of 1, `DRPAIR_WAN_HOST=1` only 2 and 3.

use drpair_e2e::fault_proxy::FaultProxy;
use drpair_e2e::image::{Fill, create_image, overwrite_chunks, pick_chunks};
use drpair_e2e::{AgentSpec, LoopDev, MIB, Standby, TestEnv, step, wait_ready};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SIZE: u64 = 512 * MIB;
const BIG: u64 = 4096 * MIB;
const CHUNK: u64 = 64 << 10;

fn wan(line: String) {
    println!("WAN {line}");
    step(line);
}

/// An rsync daemon serving `dir` as module `m` on a free port; killed on drop.
struct Rsyncd(std::process::Child, std::net::SocketAddr);

impl Rsyncd {
    fn start(env: &TestEnv, dir: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let conf = env.path("rsyncd.conf");
        std::fs::write(
            &conf,
            format!("[m]\npath = {}\nread only = false\nuid = root\ngid = root\nuse chroot = false\n", dir.display()),
        )
        .unwrap();
        let child = Command::new("rsync")
            .args([
                "--daemon",
                "--no-detach",
                "--address=127.0.0.1",
                &format!("--port={port}"),
                &format!("--config={}", conf.display()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsync --daemon");
        std::thread::sleep(Duration::from_millis(500));
        Self(child, format!("127.0.0.1:{port}").parse().unwrap())
    }
}

impl Drop for Rsyncd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs rsync to the daemon behind `proxy`; returns the seconds it took.
fn rsync(args: &[&str], src: &std::path::Path, proxy: &FaultProxy, name: &str) -> f64 {
    let t = Instant::now();
    let st = Command::new("rsync")
        .args(args)
        .arg(src)
        .arg(format!("rsync://{}/m/{name}", proxy.addr))
        .status()
        .expect("rsync");
    assert!(st.success(), "rsync {args:?} failed");
    t.elapsed().as_secs_f64()
}

fn fio(dev: &std::path::Path, secs: u32, extra: &[&str]) -> serde_json::Value {
    let out = Command::new("fio")
        .args(["--name=bench", "--output-format=json", "--ioengine=libaio", "--direct=1", "--time_based"])
        .arg(format!("--filename={}", dev.display()))
        .arg(format!("--runtime={secs}"))
        .args(extra)
        .output()
        .expect("fio");
    assert!(out.status.success(), "fio: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("fio json")
}

/// A file of `data` random bytes, `size` long (the rest a hole).
fn partly_written(path: &std::path::Path, data: u64, size: u64, seed: u64) {
    create_image(path, data, Fill::Random, seed);
    std::fs::OpenOptions::new().write(true).open(path).unwrap().set_len(size).unwrap();
}

fn iops(dev: &std::path::Path) -> f64 {
    let j = fio(dev, 10, &["--rw=randwrite", "--bs=4k", "--iodepth=16", "--size=256M"]);
    j["jobs"][0]["write"]["iops"].as_f64().unwrap_or(0.0)
}

#[test]
#[ignore = "a benchmark: run by benches/wan.sh"]
fn wan_benchmark() {
    let env = TestEnv::new("wan-bench");
    let host_only = std::env::var_os("DRPAIR_WAN_HOST").is_some();
    let sb = Standby::start(&env, None);
    if !host_only {
        link_part(&env, &sb);
    }
    if std::env::var_os("DRPAIR_WAN_QUICK").is_none() {
        host_part(&env, &sb);
    }
}

/// Part 1: initial sync and catch-up through a 100 Mbit/s, 50 ms link, against rsync.
fn link_part(env: &TestEnv, sb: &Standby) {
    let api = sb.api();
    // 1. 100 Mbit/s, 50 ms round trip.
    let rate = 12_500_000u64;
    let img = env.path("disk0.img");
    partly_written(&img, SIZE, BIG, 1);
    let lo = LoopDev::attach(&img);
    let proxy = FaultProxy::start(sb.link);
    proxy.set_rate(Some(rate));
    proxy.set_delay(Duration::from_millis(25));
    let mut spec = AgentSpec::new(env, sb, "wan-01", &[&lo.dev]);
    spec.standby = proxy.addr;
    spec.tracker = "tracefs".into();
    spec.cut_interval = "30s".into();
    let t = Instant::now();
    let mut agent = spec.spawn(env, "agent");
    wait_ready(&api, "wan-01", &mut agent, Duration::from_secs(900));
    let secs = t.elapsed().as_secs_f64();
    let wire = proxy.forwarded().0;
    wan(format!(
        "initial sync of 4 GiB (512 MiB written) at 100 Mbit/s, 50 ms RTT: {secs:.1} s, {:.2} MB/s on the wire = {:.3}× the link",
        wire as f64 / secs / 1e6,
        wire as f64 / secs / rate as f64
    ));
    let changed = pick_chunks(BIG / CHUNK, BIG / CHUNK / 100, 5);
    let before = proxy.forwarded().0;
    overwrite_chunks(&lo.dev, CHUNK, &changed, 6);
    let t = Instant::now();
    api.create_point_wait("wan-01");
    let csecs = t.elapsed().as_secs_f64();
    let cwire = proxy.forwarded().0 - before;
    wan(format!(
        "1% catch-up ({} chunks, {:.1} MB): {csecs:.2} s, {:.1} MB on the wire, {:.3}× the link",
        changed.len(),
        (changed.len() as u64 * CHUNK) as f64 / 1e6,
        cwire as f64 / 1e6,
        cwire as f64 / csecs / rate as f64
    ));
    drop(agent);
    drop(lo);
    if std::env::var_os("DRPAIR_WAN_QUICK").is_some() {
        return;
    }

    // rsync through the same kind of link.
    let dst = env.mkdir("rsync-dst");
    let rs = Rsyncd::start(env, &dst);
    let rproxy = FaultProxy::start(rs.1);
    rproxy.set_rate(Some(rate));
    rproxy.set_delay(Duration::from_millis(25));
    let copy = env.path("rsync-src.img");
    partly_written(&copy, SIZE, BIG, 1);
    let r_init = rsync(&["--whole-file", "--sparse"], &copy, &rproxy, "disk.img");
    overwrite_chunks(&copy, CHUNK, &pick_chunks(BIG / CHUNK, BIG / CHUNK / 100, 7), 8);
    let t = Instant::now();
    let before = rproxy.forwarded();
    let r_catch = rsync(&["--inplace", "--no-whole-file", "--ignore-times"], &copy, &rproxy, "disk.img");
    let after = rproxy.forwarded();
    let r_wire = (after.0 - before.0, after.1 - before.1);
    wan(format!(
        "rsync through the same link: copy {r_init:.1} s (drpair took {:.2}× its time), 1% catch-up {r_catch:.2} s (drpair took {:.2}× its time); rsync's catch-up moved {:.1} MB in {:.1} s",
        secs / r_init,
        csecs / r_catch,
        (r_wire.0 + r_wire.1) as f64 / 1e6,
        t.elapsed().as_secs_f64()
    ));
    drop(rproxy);
    drop(rs);
    std::fs::remove_file(&copy).ok();
}

/// Parts 2 and 3: lag over a 400 Mbit/s, 20 ms link under 20 MB/s of writes, and the
/// tracked host's IOPS.
fn host_part(env: &TestEnv, sb: &Standby) {
    let api = sb.api();
    // 2. 400 Mbit/s, 20 ms: lag under 20 MB/s of random writes to a tracked loop device.
    let dimg = env.path("tracked.img");
    create_image(&dimg, SIZE, Fill::Random, 9);
    let lo = LoopDev::attach(&dimg);
    // The host's own IOPS before any agent tracks the device (the baseline of part 3).
    let none_before = iops(&lo.dev);
    let proxy2 = FaultProxy::start(sb.link);
    proxy2.set_rate(Some(50_000_000));
    proxy2.set_delay(Duration::from_millis(10));
    let mut spec = AgentSpec::new(env, sb, "wan-02", &[&lo.dev]);
    spec.standby = proxy2.addr;
    spec.tracker = "tracefs".into();
    let mut agent = spec.spawn(env, "agent2");
    wait_ready(&api, "wan-02", &mut agent, Duration::from_secs(600));
    let writer = {
        let dev = lo.dev.clone();
        std::thread::spawn(move || fio(&dev, 30, &["--rw=randwrite", "--bs=64k", "--iodepth=4", "--rate=20m"]))
    };
    let mut lags = vec![];
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(30) {
        lags.push(api.status("wan-02").stats.lag_seconds);
        std::thread::sleep(Duration::from_millis(250));
    }
    writer.join().unwrap();
    lags.sort_by(f64::total_cmp);
    let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
    wan(format!(
        "lag at 20 MB/s of random writes over 400 Mbit/s, 20 ms RTT: p50 {:.2} s, p99 {:.2} s, max {:.2} s ({} samples)",
        at(0.5),
        at(0.99),
        lags.last().unwrap(),
        lags.len()
    ));

    // 3. The tracked host's cost: IOPS with the agent idle (the pair paused: every write is
    // tracked, nothing shipped), then shipping a 512 MiB backlog written while it was paused.
    let t = Instant::now();
    while api.status("wan-02").stats.backlog_bytes > 0 && t.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(500));
    }
    sb.cli().run(&["pause", "wan-02"]).ok();
    let idle = iops(&lo.dev);
    fio(&lo.dev, 8, &["--rw=write", "--bs=1m", "--iodepth=8", "--size=512M"]);
    sb.cli().run(&["resume", "wan-02"]).ok();
    std::thread::sleep(Duration::from_millis(500));
    let shipping = iops(&lo.dev);
    let backlog = api.status("wan-02").stats.backlog_bytes;
    agent.term(Duration::from_secs(30));
    // The agent's clean stop leaves its trace instance recording: decommission removes it.
    let out = Command::new(drpair_e2e::bin("drpaird"))
        .args(["agent", "--decommission", "--pair", "wan-02", "--state-dir"])
        .arg(env.path("agent-wan-02"))
        .output()
        .expect("decommission");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let none_after = iops(&lo.dev);
    let none = (none_before + none_after) / 2.0;
    wan(format!(
        "fio 4 KiB random-write IOPS: no agent {none:.0} (before {none_before:.0}, after {none_after:.0}), agent idle {idle:.0} ({:.3}×), agent shipping a backlog {shipping:.0} ({:.3}×; {} MiB of it still queued after)",
        idle / none,
        shipping / none,
        backlog / MIB
    ));
}
