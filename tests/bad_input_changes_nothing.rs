//! Bad input gets a clear error and changes nothing (DESIGN invariant 4).
//!
//! Each test builds a pair with committed points, stops its agent cleanly, remembers the
//! points and the latest point's image, feeds the standby one family of bad input, and then
//! checks that the standby still serves, the points are exactly the same and the latest
//! point still exports identically. Where a real agent is refused, it must exit non-zero
//! with a message that says what to do.

use drpair_e2e::image::{Fill, create_image, hash_file, hash_range};
use drpair_e2e::link::{RawLink, hello};
use drpair_e2e::{AgentSpec, Api, Daemon, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use drpair_types::{DiskChangeKind, RecoveryPoint};
use drpair_wire::{
    AgentMsg, ChunkBody, ChunkItem, EpochEnd, HEADER_LEN, MAGIC, PROTOCOL_VERSION, Progress, RefuseCode, RunMode,
    StandbyMsg, encode,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const TOKEN: &str = "bad-input-token-1";
const CHUNK: u64 = 64 << 10;
/// A short last chunk (20 KiB) on purpose.
const DISK_SIZE: u64 = 24 * MIB + (20 << 10);
const CHUNKS: u64 = DISK_SIZE.div_ceil(CHUNK);

/// A pair with committed points whose agent is stopped. Fields drop in order: the agent,
/// the standby, then the environment (which prints logs on failure).
struct Fixture {
    pair: String,
    img: PathBuf,
    source: blake3::Hash,
    spec: AgentSpec,
    agent: Daemon,
    sb: Standby,
    api: Api,
    points: Vec<RecoveryPoint>,
    env: TestEnv,
}

impl Fixture {
    fn new(name: &str) -> Self {
        let env = TestEnv::new(name);
        let pair = format!("bad-{name}");
        let img = env.path("disk0.img");
        let source = create_image(&img, DISK_SIZE, Fill::Mixed, 31);
        let sb = Standby::start(&env, Some(TOKEN));
        let api = sb.api();
        let spec = AgentSpec::new(&env, &sb, &pair, &[&img]);
        let mut agent = spec.spawn(&env, "agent");
        wait_ready(&api, &pair, &mut agent, Duration::from_secs(120));
        let st = agent.term(Duration::from_secs(30));
        assert!(st.success(), "agent exited with {st} after SIGTERM:\n{}", agent.tail(20));
        wait_connected(&api, &pair, false, Duration::from_secs(30));
        let points = api.points(&pair);
        assert!(!points.is_empty());
        assert_eq!(
            api.export_full(&pair, "latest", 0, DISK_SIZE),
            source,
            "latest point differs from the source before any bad input"
        );
        step(format!("fixture ready: points {:?}", points.iter().map(|p| p.id).collect::<Vec<_>>()));
        Self { pair, img, source, spec, agent, sb, api, points, env }
    }

    fn committed(&self) -> u64 {
        self.points.last().expect("a point").epoch
    }

    /// The standby serves, the points are exactly as before, the latest exports identically.
    fn assert_unchanged(&self, after: &str) {
        let h = self.api.get("/healthz");
        assert_eq!(h.status, 200, "standby does not serve after {after}");
        assert_eq!(self.api.points(&self.pair), self.points, "points changed after {after}");
        assert_eq!(
            self.api.export_full(&self.pair, "latest", 0, DISK_SIZE),
            self.source,
            "latest point's image changed after {after}"
        );
        step(format!("unchanged after {after}"));
    }

    fn link(&self) -> RawLink {
        RawLink::to(&self.sb)
    }

    fn hello(&self) -> drpair_wire::Hello {
        hello(&self.pair, Some(TOKEN), &self.img.display().to_string(), DISK_SIZE, CHUNK)
    }

    /// A connection welcomed for the pair; returns it with the pair's lineage.
    fn welcomed(&self) -> (RawLink, drpair_types::Lineage) {
        let mut l = self.link();
        match l.hello(self.hello()) {
            StandbyMsg::Welcome { lineage, committed, registered, .. } => {
                assert_eq!(committed, self.committed(), "Welcome names the newest committed epoch");
                assert!(!registered, "an existing pair is not registered again");
                (l, lineage)
            }
            other => panic!("a valid Hello was not welcomed: {other:?}"),
        }
    }

    /// Restarts the real agent with its original arguments, cuts a point and checks it.
    fn agent_still_converges(&mut self) {
        self.agent.restart();
        wait_connected(&self.api, &self.pair, true, Duration::from_secs(60));
        let p = self.api.create_point_wait(&self.pair);
        assert_eq!(
            self.api.export_full(&self.pair, &p.id.to_string(), 0, DISK_SIZE),
            self.source,
            "new point {} differs from the source",
            p.id
        );
        for old in &self.points {
            assert!(self.api.points(&self.pair).contains(old), "point {} changed or vanished", old.id);
        }
        step(format!("real agent converges again: point {}", p.id));
    }
}

/// Expects the standby to close the connection within 10 s; returns what it said first.
fn expect_closed(l: &mut RawLink, what: &str) -> Vec<StandbyMsg> {
    let t = Instant::now();
    let (msgs, closed) = l.drain(Duration::from_secs(10));
    assert!(closed, "{what}: the standby kept the connection open (got {msgs:?})");
    assert!(t.elapsed() < Duration::from_secs(8), "{what}: the standby took {:?} to close", t.elapsed());
    msgs
}

/// Expects exactly an error naming `needles` (Refused or Error), then a close.
fn expect_error(l: &mut RawLink, what: &str, needles: &[&str]) -> String {
    let msgs = expect_closed(l, what);
    let msg = msgs
        .iter()
        .find_map(|m| match m {
            StandbyMsg::Error { message } | StandbyMsg::Refused { message, .. } => Some(message.clone()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("{what}: no error message before the close, got {msgs:?}"));
    for n in needles {
        assert!(msg.contains(n), "{what}: error message does not mention '{n}': {msg}");
    }
    step(format!("{what}: {msg}"));
    msg
}

fn refused(m: StandbyMsg, code: RefuseCode, what: &str) -> String {
    match m {
        StandbyMsg::Refused { code: c, message } if c == code => {
            step(format!("{what}: refused {c:?}: {message}"));
            message
        }
        other => panic!("{what}: expected Refused {code:?}, got {other:?}"),
    }
}

fn header(len: u32, crc: u32) -> Vec<u8> {
    let mut h = vec![0u8; HEADER_LEN];
    h[0..4].copy_from_slice(&MAGIC);
    h[4..6].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&len.to_le_bytes());
    h[12..16].copy_from_slice(&crc.to_le_bytes());
    h
}

#[test]
fn malformed_frames_close_the_connection() {
    let f = Fixture::new("frames");

    let mut l = f.link();
    let _ = l.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n and some more garbage bytes \x00\xff\x13\x37");
    let msgs = expect_closed(&mut l, "garbage bytes");
    assert!(
        msgs.iter().all(|m| matches!(m, StandbyMsg::Refused { code: RefuseCode::BadRequest, .. })),
        "garbage: {msgs:?}"
    );

    let mut frame = encode(&AgentMsg::Hello(f.hello())).expect("encode");
    frame[0..4].copy_from_slice(b"XXXX");
    let mut l = f.link();
    let _ = l.send_bytes(&frame);
    let msgs = expect_closed(&mut l, "bad magic");
    for m in &msgs {
        assert!(
            matches!(m, StandbyMsg::Refused { code: RefuseCode::BadRequest, message } if message.contains("magic")),
            "bad magic: {m:?}"
        );
    }

    let mut frame = encode(&AgentMsg::Hello(f.hello())).expect("encode");
    frame[4..6].copy_from_slice(&99u16.to_le_bytes());
    let mut l = f.link();
    let _ = l.send_bytes(&frame);
    let msgs = expect_closed(&mut l, "wrong protocol version");
    for m in &msgs {
        assert!(
            matches!(m, StandbyMsg::Refused { message, .. } if message.contains("version")),
            "wrong version: {m:?}"
        );
    }

    // A header announcing 1 GiB: refused from the header alone, nothing allocated or awaited.
    let mut l = f.link();
    l.send_bytes(&header(1 << 30, 0)).expect("send header");
    expect_error(&mut l, "1 GiB frame header", &["1073741824"]);

    // A header whose payload never completes, then EOF.
    let mut l = f.link();
    let mut h = header(1000, 0);
    h.extend_from_slice(&[7u8; 100]);
    l.send_bytes(&h).expect("send");
    drop(l);

    // After a welcome: a frame whose checksum does not match, and a body that is not a message.
    let (mut l, _) = f.welcomed();
    let mut frame = encode(&AgentMsg::Progress(Progress::default())).expect("encode");
    let last = frame.len() - 1;
    frame[last] ^= 0x5a;
    l.send_bytes(&frame).expect("send");
    expect_error(&mut l, "bad checksum", &["checksum"]);

    let (mut l, _) = f.welcomed();
    let garbage = [0xffu8; 40];
    let mut frame = header(garbage.len() as u32, crc32fast::hash(&garbage));
    frame.extend_from_slice(&garbage);
    l.send_bytes(&frame).expect("send");
    expect_error(&mut l, "undecodable payload", &["malformed"]);

    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Hello(f.hello()));
    expect_error(&mut l, "second Hello", &["Hello"]);

    f.assert_unchanged("malformed frames");
}

#[test]
fn wrong_token_is_refused() {
    let f = Fixture::new("token");
    let mut h = f.hello();
    h.token = Some("not-the-token".into());
    let msg = refused(f.link().hello(h), RefuseCode::AccessDenied, "wrong token");
    assert!(msg.contains("token"), "{msg}");
    let mut h = f.hello();
    h.token = None;
    refused(f.link().hello(h), RefuseCode::AccessDenied, "no token");

    // A real agent with the wrong token gives up at once and says why.
    let bad = f.env.token_file("wrong", "wrong-token-123");
    let mut spec = f.spec.clone();
    spec.token_file = Some(bad);
    spec.enroll_with = None;
    spec.state_dir = f.env.path("agent-wrong-token");
    let mut a = spec.daemon(&f.env, "agent-wrong-token");
    a.start();
    let st = a
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("an agent with a wrong token keeps running:\n{}", a.tail(20)));
    assert!(!st.success(), "an agent refused for its token exited with {st}");
    let log = a.log_of_last_start();
    assert!(log.contains("token"), "the refused agent's stderr does not name the token:\n{log}");

    // Refusals before authentication are counted, not written into the pair's history (anyone
    // could otherwise push the real failures out of it).
    let s = f.api.status(&f.pair);
    assert!(
        !s.failure_messages.iter().any(|m| m.contains("token")),
        "an unauthenticated refusal reached the pair's failure messages: {:?}",
        s.failure_messages
    );
    let metrics = f.api.metrics();
    let refused_total: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("drpair_link_refused_total{") && l.contains("reason=\"credential\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(refused_total >= 3.0, "refusals not counted ({refused_total}):\n{metrics}");
    f.assert_unchanged("wrong tokens");
}

/// Expects a Welcome that holds the agent because its disks differ (Configuration changed),
/// and status naming the difference; returns the change's description.
fn held_for_other_disks(f: &Fixture, m: StandbyMsg, kind: DiskChangeKind, what: &str) -> String {
    match m {
        StandbyMsg::Welcome { run: RunMode::Hold { reason }, .. } if reason.contains("Configuration changed") => {}
        other => panic!("{what}: expected a Welcome holding the agent (Configuration changed), got {other:?}"),
    }
    let s = f.api.status(&f.pair);
    assert_eq!(s.state, drpair_types::PairState::ConfigurationChanged, "{what}");
    let c = s.configuration_change.unwrap_or_else(|| panic!("{what}: no configuration_change in status"));
    assert_eq!(c.changes[0].change, kind, "{what}: {c:?}");
    let d = c.changes[0].describe();
    step(format!("{what}: held, {d}"));
    d
}

#[test]
fn other_disks_hold_the_pair_and_change_nothing() {
    let mut f = Fixture::new("geometry");
    let mut h = f.hello();
    h.disks[0].size_bytes = DISK_SIZE + MIB;
    let d = held_for_other_disks(&f, f.link().hello(h), DiskChangeKind::Grown, "bigger disk");
    assert!(d.contains(&DISK_SIZE.to_string()) && d.contains(&(DISK_SIZE + MIB).to_string()), "sizes not named: {d}");
    f.assert_unchanged("a bigger disk");
    let mut h = f.hello();
    h.disks[0].chunk_size = 2 * CHUNK;
    held_for_other_disks(&f, f.link().hello(h), DiskChangeKind::ChunkSize, "other chunk size");
    let mut h = f.hello();
    h.disks.push(h.disks[0].clone());
    h.disks[1].path = "/dev/other".into();
    held_for_other_disks(&f, f.link().hello(h), DiskChangeKind::Added, "extra disk");
    f.assert_unchanged("other disks offered");
    // The registered disks again: the change is withdrawn.
    let (l, _) = f.welcomed();
    drop(l);
    assert!(f.api.status(&f.pair).configuration_change.is_none(), "the change is withdrawn");

    // The real agent restarted on a grown disk holds (it runs, ships nothing) and the pair says why.
    std::fs::OpenOptions::new().write(true).open(&f.img).expect("img").set_len(DISK_SIZE + MIB).expect("grow");
    f.agent.restart();
    let s = drpair_e2e::pair::wait_status(
        &f.api,
        &f.pair,
        Some(&mut f.agent),
        "held for a grown disk",
        Duration::from_secs(60),
        |s| s.state == drpair_types::PairState::ConfigurationChanged,
    );
    assert!(s.state_explanation.contains("adopt-growth"), "{}", s.state_explanation);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(f.api.points(&f.pair), f.points, "a held agent shipped");
    f.agent.term(Duration::from_secs(20));

    f.assert_unchanged("an agent on a grown disk");
    std::fs::OpenOptions::new().write(true).open(&f.img).expect("img").set_len(DISK_SIZE).expect("shrink back");
    assert_eq!(hash_file(&f.img).1, f.source);
    f.agent_still_converges();
}

#[test]
fn bad_chunks_are_refused() {
    let mut f = Fixture::new("chunks");
    let next = f.committed() + 1;

    // Chunk and disk numbers out of range.
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks { epoch: next, items: vec![ChunkItem { disk: 0, index: CHUNKS, body: ChunkBody::Zero }] });
    expect_error(&mut l, "chunk out of range", &[&format!("chunk {CHUNKS}"), "out of range"]);
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks { epoch: next, items: vec![ChunkItem { disk: 1, index: 0, body: ChunkBody::Zero }] });
    expect_error(&mut l, "disk out of range", &["disk 1"]);
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks {
        epoch: next,
        items: vec![ChunkItem { disk: 0, index: u64::MAX, body: ChunkBody::Zero }],
    });
    expect_error(&mut l, "chunk u64::MAX", &["out of range"]);

    // Runs of zero chunks past the disk's end, empty, or overlapping another item.
    let run = |index, count| ChunkItem { disk: 0, index, body: ChunkBody::ZeroRun { count } };
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks { epoch: next, items: vec![run(CHUNKS - 2, 3)] });
    expect_error(&mut l, "run past the end", &[&format!("chunk {}", CHUNKS - 2), "does not fit the disk"]);
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks { epoch: next, items: vec![run(3, 0)] });
    expect_error(&mut l, "empty run", &["chunk 3", "a run of 0 zero chunks"]);
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks {
        epoch: next,
        items: vec![run(0, 4), ChunkItem { disk: 0, index: 2, body: ChunkBody::Zero }],
    });
    expect_error(&mut l, "run overlapping a chunk", &["chunk 2", "sent twice"]);

    // Chunks that would change real data, followed by a refused one, then the epoch's end:
    // nothing of the epoch may be committed, now or later. Done at the next two epochs, so
    // the real agent's next epoch reuses one of the numbers.
    let victims: Vec<u64> = (0..CHUNKS - 1)
        .filter(|&c| hash_range(&f.img, c * CHUNK, CHUNK) != blake3::hash(&vec![0u8; CHUNK as usize]))
        .take(4)
        .collect();
    assert_eq!(victims.len(), 4, "the image has too few non-zero chunks");
    for epoch in [next, next + 1] {
        let (mut l, lineage) = f.welcomed();
        let mut items: Vec<ChunkItem> =
            // The first time as zero items, the second as runs of one.
            victims
                .iter()
                .map(|&c| ChunkItem {
                    disk: 0,
                    index: c,
                    body: if epoch == next { ChunkBody::Zero } else { ChunkBody::ZeroRun { count: 1 } },
                })
                .collect();
        let payload = vec![0x42u8; CHUNK as usize];
        let bad_index = CHUNKS / 2;
        items.push(ChunkItem {
            disk: 0,
            index: bad_index,
            body: ChunkBody::Data {
                hash: *blake3::hash(b"something else").as_bytes(),
                raw_len: CHUNK as u32,
                compressed: false,
                payload,
            },
        });
        l.send(&AgentMsg::Chunks { epoch, items });
        l.send(&AgentMsg::EpochEnd(EpochEnd { epoch, lineage, cut_unix_ms: 1, chunks: 5, ..Default::default() }));
        expect_error(&mut l, "chunk bytes not matching the hash", &[&format!("chunk {bad_index}"), "hash mismatch"]);
    }

    // A "known" hash the standby does not hold.
    let (mut l, lineage) = f.welcomed();
    l.send(&AgentMsg::Chunks {
        epoch: next,
        items: vec![ChunkItem { disk: 0, index: victims[0], body: ChunkBody::Known([0xab; 32]) }],
    });
    l.send(&AgentMsg::EpochEnd(EpochEnd { epoch: next, lineage, cut_unix_ms: 1, chunks: 1, ..Default::default() }));
    expect_error(&mut l, "unknown known-hash", &[&format!("chunk {}", victims[0]), "does not hold"]);

    // A length that is not the chunk's, and compressed bytes that are not zstd.
    let (mut l, lineage) = f.welcomed();
    let payload = vec![1u8; 1000];
    let body = ChunkBody::Data { hash: *blake3::hash(&payload).as_bytes(), raw_len: 1000, compressed: false, payload };
    l.send(&AgentMsg::Chunks { epoch: next, items: vec![ChunkItem { disk: 0, index: 1, body }] });
    l.send(&AgentMsg::EpochEnd(EpochEnd { epoch: next, lineage, cut_unix_ms: 1, chunks: 1, ..Default::default() }));
    expect_error(&mut l, "wrong chunk length", &["chunk 1", "1000"]);
    let (mut l, lineage) = f.welcomed();
    let body = ChunkBody::Data { hash: [1; 32], raw_len: CHUNK as u32, compressed: true, payload: vec![9u8; 300] };
    l.send(&AgentMsg::Chunks { epoch: next, items: vec![ChunkItem { disk: 0, index: 1, body }] });
    l.send(&AgentMsg::EpochEnd(EpochEnd { epoch: next, lineage, cut_unix_ms: 1, chunks: 1, ..Default::default() }));
    expect_error(&mut l, "compressed garbage", &["chunk 1"]);

    // Epochs that do not chain, and an end in another lineage.
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::Chunks {
        epoch: f.committed(),
        items: vec![ChunkItem { disk: 0, index: 0, body: ChunkBody::Zero }],
    });
    expect_error(&mut l, "epoch not after the committed one", &["does not follow"]);
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::EpochEnd(EpochEnd {
        epoch: next,
        lineage: drpair_types::Lineage::nil(),
        cut_unix_ms: 1,
        ..Default::default()
    }));
    expect_error(&mut l, "epoch end in another lineage", &["lineage"]);

    // Hash requests outside the disk.
    let (mut l, _) = f.welcomed();
    l.send(&AgentMsg::HashesRequest { req: 1, disk: 0, first: CHUNKS - 1, count: 2 });
    expect_error(&mut l, "hash request past the end", &["outside"]);

    f.assert_unchanged("bad chunks");
    f.agent_still_converges();
    let s = f.api.status(&f.pair);
    assert!(s.stats.chunks_errored > 0, "refused chunks are not counted in stats.chunks_errored: {:?}", s.stats);
}

#[test]
fn api_errors() {
    let mut f = Fixture::new("api");
    let (api, pair) = (&f.api, f.pair.clone());

    for path in
        ["/api/v1/pairs/nosuch", "/api/v1/pairs/nosuch/points", "/api/v1/pairs/nosuch/points/latest/disks/0/image"]
    {
        let j = api.get(path).assert_error(404, "PairNotFound");
        assert!(j["message"].as_str().unwrap().contains("nosuch"), "{path}: {j}");
    }
    api.post("/api/v1/pairs/nosuch/points", "application/json", b"{}").assert_error(404, "PairNotFound");
    let j = api.get("/api/v1/pairs/a%20b").assert_error(400, "InvalidParameter");
    assert_eq!(j["parameter"], "pair", "{j}");
    api.get(&format!("/api/v1/pairs/{pair}/points/999999")).assert_error(404, "PointNotFound");
    let j = api.get(&format!("/api/v1/pairs/{pair}/points/abc")).assert_error(400, "InvalidParameter");
    assert_eq!(j["parameter"], "point", "{j}");
    let r = api.get(&format!("/api/v1/pairs/{pair}/points/latest/disks/7/image"));
    assert!(matches!(r.status, 400 | 404), "export of a disk the pair does not have: {} {}", r.status, r.text());
    assert!(r.json()["code"].is_string(), "{}", r.text());

    for (who, client, status) in
        [("no token", api.with_token(None), 401), ("wrong token", api.with_token(Some("wrong-token-xyz")), 403)]
    {
        for path in [
            "/api/v1/pairs",
            &format!("/api/v1/pairs/{pair}"),
            &format!("/api/v1/pairs/{pair}/points/latest/disks/0/image"),
            "/metrics",
        ] {
            let r = client.get(path);
            assert_eq!(r.status, status, "{who} on {path}: {} {}", r.status, r.text());
            assert_eq!(r.json()["code"], "AccessDenied", "{who} on {path}");
        }
        client
            .post(&format!("/api/v1/pairs/{pair}/points"), "application/json", b"{}")
            .assert_error(status, "AccessDenied");
    }

    let create = format!("/api/v1/pairs/{pair}/points");
    for body in [&b"{not json"[..], &br#"{"wait":"yes"}"#[..], &br#"{"wait":true,"frobnicate":1}"#[..]] {
        let j = api.post(&create, "application/json", body).assert_error(400, "InvalidParameter");
        assert_eq!(j["parameter"], "body", "{}: {j}", String::from_utf8_lossy(body));
    }
    let j = api
        .post(&create, "application/json", br#"{"wait":true,"timeout_seconds":0}"#)
        .assert_error(400, "InvalidParameter");
    assert_eq!(j["parameter"], "timeout_seconds", "{j}");
    // The agent is stopped: no cut can be made now.
    api.post(&create, "application/json", br#"{"wait":true}"#).assert_error(409, "InvalidPairState");
    api.post(&create, "application/json", b"{}").assert_error(409, "InvalidPairState");

    // The CLI maps them to its exit codes.
    let cli = f.sb.cli();
    let out = cli.run(&["status", "nosuch", "--output", "json"]);
    out.expect_code(3);
    assert_eq!(out.json()["code"], "PairNotFound", "error JSON on stdout: {}", out.stdout);
    assert!(out.stderr.contains("nosuch"), "stderr: {}", out.stderr);
    cli.run(&["points", "list", "nosuch"]).expect_code(3);
    let missing = f.env.path("missing.img");
    cli.run(&["points", "export", &pair, "999999", "--out", &missing.display().to_string()]).expect_code(3);
    assert!(!missing.exists(), "a failed export left {}", missing.display());
    cli.with_token(Some("wrong-token-xyz")).run(&["pairs", "list"]).expect_code(5);
    cli.with_token(None).run(&["status", &pair]).expect_code(5);
    let out = cli.run(&["points", "create", &pair, "--wait"]);
    out.expect_code(4);
    assert!(out.stderr.contains("not connected"), "stderr: {}", out.stderr);
    cli.run(&["status", "a b"]).expect_code(2);
    // Nothing listens on port 1: unreachable.
    drpair_e2e::Cli::new("http://127.0.0.1:1", Some(TOKEN)).run(&["pairs", "list"]).expect_code(6);

    f.assert_unchanged("API errors");
    f.agent_still_converges();
}
