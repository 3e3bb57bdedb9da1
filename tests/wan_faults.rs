//! A link that fails in the ways a WAN does, through the fault-injecting proxy (issue 20):
//! - a link that stalls without closing (half-open): status falls to 0 B/s on the wire
//!   within 5 s, the pair is Disconnected with the reason within 15 s, both sides log why,
//!   and once the link is back the agent is connected again within seconds and converges;
//! - a corrupted byte (plaintext: the frame checksum; TLS: the record's MAC): a pending
//!   `points create --wait` ends at once with the reason, the refused frame is counted,
//!   nothing bad is stored and the pair converges;
//! - a cut in the middle of a frame, a reset, and a standby that cannot be reached for a
//!   while: no half point, the agent back within 5 s of the link's return, and the newest
//!   point equals the source.

use drpair_e2e::fault_proxy::FaultProxy;
use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::PairStatus;
use std::time::{Duration, Instant};

const SIZE: u64 = 48 * MIB;
const CHUNK: u64 = 64 << 10;

/// Fields drop in order: the daemons before the test directory (whose drop prints their
/// logs when the test failed).
struct Rig {
    agent: drpair_e2e::Daemon,
    proxy: FaultProxy,
    sb: Standby,
    api: Api,
    img: std::path::PathBuf,
    pair: &'static str,
    _env: TestEnv,
}

/// A standby, a proxy in front of its link and an agent through it, ready for failover.
fn rig(name: &str, pair: &'static str, plaintext: bool) -> Rig {
    let env = TestEnv::new(name);
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 7);
    let extra: &[&str] = if plaintext { &["--insecure-plaintext"] } else { &[] };
    // Without TLS an agent authenticates with the standby's token.
    let token = plaintext.then_some("wan-faults-token-0123");
    let sb = Standby::start_with(&env, token, extra);
    let api = sb.api();
    let proxy = FaultProxy::start(sb.link);
    let mut spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    spec.standby = proxy.addr;
    if plaintext {
        spec.fingerprint = None;
        spec.enroll_with = None;
    }
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, Duration::from_secs(120));
    Rig { agent, proxy, sb, api, img, pair, _env: env }
}

impl Rig {
    /// Limits the pair's link (through the CLI, as an operator would).
    fn bandwidth(&self, rate: &str) {
        self.sb.cli().run(&["pairs", "set", self.pair, "--bandwidth", rate]).ok();
    }

    /// Overwrites `n` chunks: a backlog the limited link needs seconds to ship.
    fn backlog(&self, n: u64, seed: u64) {
        overwrite_chunks(&self.img, CHUNK, &pick_chunks(SIZE / CHUNK, n, seed), seed + 1);
    }

    /// Waits for the first status that satisfies `f`; returns it and how long it took.
    fn wait(&self, what: &str, within: Duration, f: impl Fn(&PairStatus) -> bool) -> (PairStatus, Duration) {
        let t = Instant::now();
        loop {
            let s = self.api.status(self.pair);
            if f(&s) {
                return (s, t.elapsed());
            }
            assert!(t.elapsed() < within, "{what}: not within {within:?}; last status: {:?}", s.link);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The pair converged: a new point equals the source, and so does every listed point's
    /// export succeed.
    fn converges(&mut self) {
        let want = hash_file(&self.img).1;
        let p = self.api.create_point_wait(self.pair);
        assert_eq!(self.api.export_full(self.pair, &p.id.to_string(), 0, SIZE), want, "newest point {}", p.id);
        for pt in self.api.points(self.pair) {
            let e = self.api.export(self.pair, &pt.id.to_string(), 0);
            assert_eq!(e.len, SIZE, "point {} exports whole", pt.id);
        }
        assert!(self.agent.is_running(), "the agent died:\n{}", self.agent.tail(30));
        step(format!("converged: point {} equals the source", p.id));
    }

    /// A `points create --wait` started in the background.
    fn pending_wait(&self) -> std::thread::JoinHandle<(drpair_e2e::Reply, Instant)> {
        let (api, pair) = (self.api.clone(), self.pair.to_string());
        std::thread::spawn(move || {
            let r = api.post(
                &format!("/api/v1/pairs/{pair}/points"),
                "application/json",
                br#"{"wait": true, "timeout_seconds": 300}"#,
            );
            (r, Instant::now())
        })
    }
}

#[test]
fn a_stalled_link_is_noticed_explained_and_left_behind() {
    let mut r = rig("wan-stall", "stall-01", false);
    r.bandwidth("2MiB/s");
    r.backlog(384, 11);
    let (s, _) = r.wait("shipping at the limit", Duration::from_secs(30), |s| s.link.wire_bytes_per_second > 1e6);
    step(format!(
        "shipping: {} B/s on the wire, limit {:?}",
        s.link.wire_bytes_per_second, s.link.bandwidth_limit_bytes_per_second
    ));
    assert!(s.link.wire_bytes_per_second < 2.3 * MIB as f64, "over the 2 MiB/s limit: {:?}", s.link);

    let stalled_at = Instant::now();
    r.proxy.stall(true);
    step("link stalled (no FIN, no RST)");
    let (s, zero) = r.wait("0 B/s on the wire", Duration::from_secs(6), |s| s.link.wire_bytes_per_second == 0.0);
    step(format!("status read 0 B/s {:.1}s into the stall (state {})", zero.as_secs_f64(), s.state_label));
    let (s, gone) = r.wait("Disconnected", Duration::from_secs(15), |s| !s.agent.as_ref().is_some_and(|a| a.connected));
    let why = s.failure_messages.join("\n");
    step(format!("Disconnected {:.1}s into the stall: {} / {}", gone.as_secs_f64(), s.state_label, why));
    assert_eq!(s.state_label, "Disconnected", "{why}");
    assert!(why.contains("stalled"), "no reason given: {why}");
    assert!(
        s.link.stalls >= 1 && s.link.last_disconnect.as_deref().is_some_and(|d| d.contains("stalled")),
        "{:?}",
        s.link
    );
    // The agent saw it too, and said so.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !r.agent.log().contains("stalled") {
        assert!(Instant::now() < deadline, "the agent never logged the stall:\n{}", r.agent.tail(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(20).saturating_sub(stalled_at.elapsed()));

    r.proxy.stall(false);
    let back = Instant::now();
    wait_connected(&r.api, r.pair, true, Duration::from_secs(30));
    let took = back.elapsed();
    step(format!("connected again {:.1}s after the link came back", took.as_secs_f64()));
    assert!(took < Duration::from_secs(8), "reconnected only {took:?} after the link came back");
    r.bandwidth("unlimited");
    r.converges();
    let (s, _) = r.wait("the heartbeat's round trip", Duration::from_secs(10), |s| s.link.rtt_ms.is_some());
    step(format!("after the stall: {:?}", s.link));
    assert!(s.link.reconnects >= 1 && s.link.last_ack_ms_ago.is_some_and(|ms| ms < 5000), "{:?}", s.link);
}

#[test]
fn a_corrupted_frame_is_refused_counted_and_ends_a_pending_wait_at_once() {
    let mut r = rig("wan-corrupt", "corrupt-01", true);
    r.bandwidth("2MiB/s");
    r.backlog(256, 21);
    std::thread::sleep(Duration::from_millis(1500));
    let waiting = r.pending_wait();
    std::thread::sleep(Duration::from_millis(1000));
    let corrupted_at = Instant::now();
    r.proxy.corrupt_after(300_000);
    step("one bit of the agent's stream flipped 300000 bytes from now");
    let (reply, ended) = waiting.join().unwrap();
    let after = ended.saturating_duration_since(corrupted_at);
    step(format!("the wait ended {:.1}s after the corruption: {} {}", after.as_secs_f64(), reply.status, reply.text()));
    assert!(after < Duration::from_secs(10), "the wait outlived the fault by {after:?}");
    assert_eq!(reply.status, 409, "{}", reply.text());
    assert!(reply.text().contains("connection ended"), "{}", reply.text());
    let (s, _) = r.wait("the refused frame counted", Duration::from_secs(10), |s| s.link.frames_refused_checksum >= 1);
    let why = s.failure_messages.join("\n");
    assert!(why.contains("checksum"), "{why}");
    // The agent heard why from the standby before the connection closed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !r.agent.log().contains("checksum") {
        assert!(Instant::now() < deadline, "the agent never logged why:\n{}", r.agent.tail(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_connected(&r.api, r.pair, true, Duration::from_secs(10));
    r.bandwidth("unlimited");
    r.converges();
}

#[test]
fn cuts_resets_and_an_unreachable_standby_lose_nothing() {
    let mut r = rig("wan-cuts", "cuts-01", false);
    r.bandwidth("4MiB/s");
    let connections = |r: &Rig| r.api.status(r.pair).link.connections;
    // A cut in the middle of a frame of the incremental shipping.
    r.backlog(256, 31);
    std::thread::sleep(Duration::from_millis(1500));
    let before = connections(&r);
    r.proxy.cut_after(100_000);
    let t = Instant::now();
    r.wait("connected again after the cut", Duration::from_secs(15), |s| {
        s.link.connections > before && s.agent.as_ref().is_some_and(|a| a.connected)
    });
    step(format!("cut mid-frame: connected again {:.1}s later", t.elapsed().as_secs_f64()));
    // A reset (RST both ways) while shipping.
    r.backlog(128, 41);
    std::thread::sleep(Duration::from_millis(1000));
    let before = connections(&r);
    assert!(r.proxy.reset() >= 1, "no connection to reset");
    let t = Instant::now();
    r.wait("connected again after the reset", Duration::from_secs(10), |s| {
        s.link.connections > before && s.agent.as_ref().is_some_and(|a| a.connected)
    });
    step(format!("reset: connected again {:.1}s later", t.elapsed().as_secs_f64()));
    // The standby unreachable for 12 s (connections refused), then back.
    let before = connections(&r);
    r.proxy.refuse(true);
    r.proxy.cut();
    std::thread::sleep(Duration::from_secs(12));
    r.proxy.refuse(false);
    let back = Instant::now();
    r.wait("connected again after the outage", Duration::from_secs(30), |s| {
        s.link.connections > before && s.agent.as_ref().is_some_and(|a| a.connected)
    });
    let took = back.elapsed();
    step(format!("unreachable for 12 s: connected again {:.1}s after it came back", took.as_secs_f64()));
    assert!(took < Duration::from_secs(6), "back only {took:?} after the standby was reachable again");
    r.bandwidth("unlimited");
    r.converges();
    let s = r.api.status(r.pair);
    step(format!("link counters: {:?}", s.link));
    assert!(s.link.reconnects >= 3, "{:?}", s.link);
}

#[test]
fn a_hung_standby_and_an_unresolvable_address_are_survived_and_explained() {
    let mut r = rig("wan-hung", "hung-01", false);
    // A standby that stops answering (SIGSTOP) for longer than the stall watch: the agent
    // leaves the connection, says why, and is back once the standby answers again.
    let pid = r.sb.pid().expect("standby pid").to_string();
    r.backlog(64, 51);
    drpair_e2e::sh("kill", &["-STOP", &pid]);
    let stopped = Instant::now();
    let deadline = stopped + Duration::from_secs(20);
    while !r.agent.log().contains("stalled") {
        assert!(Instant::now() < deadline, "the agent never noticed the hung standby:\n{}", r.agent.tail(20));
        std::thread::sleep(Duration::from_millis(200));
    }
    step(format!("the agent left the hung standby {:.1}s after it stopped answering", stopped.elapsed().as_secs_f64()));
    drpair_e2e::sh("kill", &["-CONT", &pid]);
    let back = Instant::now();
    r.wait("connected again after the standby answered", Duration::from_secs(30), |s| {
        s.agent.as_ref().is_some_and(|a| a.connected) && s.link.connections >= 2
    });
    step(format!("connected again {:.1}s after the standby answered again", back.elapsed().as_secs_f64()));
    r.converges();

    // An address that does not resolve: the agent says so, keeps tracking and retrying.
    let mut spec = AgentSpec::new(&r._env, &r.sb, "nodns-01", &[&r.img]);
    spec.standby_address = Some("no-such-standby.invalid:7700".into());
    let mut lost = spec.spawn(&r._env, "agent-nodns");
    std::thread::sleep(Duration::from_secs(7));
    let log = lost.log();
    assert!(lost.is_running(), "the agent gave up:\n{}", lost.tail(20));
    assert!(log.contains("no-such-standby.invalid"), "the log does not name the address:\n{log}");
    assert!(log.matches("retrying in").count() >= 2, "no retries:\n{log}");
    step(format!("unresolvable address: {}", log.lines().find(|l| l.contains("retrying in")).unwrap_or("").trim()));
    lost.kill9();
}
