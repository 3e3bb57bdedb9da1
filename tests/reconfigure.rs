//! Disks added, removed or grown (server-dr-restart-replication.txt: "you have changed the
//! configuration of the primary server (for example, adding or removing drives)"), on real
//! loop devices:
//!
//! (a) a disk grown (`truncate` + `losetup -c`, with a formerly partial last chunk): the pair
//!     is *Configuration changed* (nothing shipped, points kept, the difference named);
//!     bad input to `pairs adopt-growth` changes nothing; adopting it keeps the lineage, the
//!     newest point equals the grown device and an older point still exports at the old size;
//! (b) a disk added: *Configuration changed*, adopt-growth refused (nothing changed), the
//!     restart takes both disks (new lineage) and a point equals both devices;
//! (c) a disk removed, then the agent back with the registered disks: the change is withdrawn
//!     and the pair replicates again in the same lineage.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::{AgentSpec, Daemon, LoopDev, MIB, Standby, TestEnv, sh, step, wait_ready};
use drpair_types::{DiskChangeKind, PairState, PairStatus};
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(180);
/// 32 MiB and 4 KiB: the last 64 KiB chunk is partial before the disk grows.
const OLD: u64 = 32 * MIB + 4096;
const NEW: u64 = 48 * MIB;

fn spawn(env: &TestEnv, sb: &Standby, pair: &str, disks: &[&Path], label: &str) -> Daemon {
    AgentSpec::new(env, sb, pair, disks).spawn(env, label)
}

/// Overwrites chunks of a loop device's image, then drops the device's own cache so reads
/// through it see the new bytes.
fn write_through(img: &Path, dev: &LoopDev, chunks: &[u64], seed: u64) {
    overwrite_chunks(img, 64 << 10, chunks, seed);
    sh("blockdev", &["--flushbufs", &dev.dev.display().to_string()]);
}

fn wait_changed(sb: &Standby, pair: &str, agent: &mut Daemon) -> PairStatus {
    let s = wait_status(&sb.api(), pair, Some(agent), "Configuration changed", LONG, |s| {
        s.state == PairState::ConfigurationChanged && s.configuration_change.is_some()
    });
    step(format!("configuration changed: {}", describe(&s)));
    assert_eq!(s.state_label, "Configuration changed");
    assert!(s.ready_for_failover, "points are kept: still ready for failover");
    assert_eq!(s.stop_reason.as_deref(), Some("RECONFIGURATION_RESTART"), "{}", describe(&s));
    // The agent stays connected and held: its questions about its new disks end nothing.
    std::thread::sleep(Duration::from_millis(1500));
    let later = sb.api().status(pair);
    assert!(later.agent.as_ref().is_some_and(|a| a.connected), "{}", describe(&later));
    assert!(
        !later.failure_messages.iter().any(|m| m.contains("does not exist") || m.contains("outside")),
        "a held agent's connection failed: {:?}",
        later.failure_messages
    );
    s
}

#[test]
fn disks_grown_added_and_removed() {
    let env = TestEnv::new("reconfigure");
    let pair = "reconf-01";
    let img0 = env.path("disk0.img");
    let img1 = env.path("disk1.img");
    create_image(&img0, OLD, Fill::Random, 7);
    create_image(&img1, 8 * MIB, Fill::Random, 8);
    let loop0 = LoopDev::attach(&img0);
    let loop1 = LoopDev::attach(&img1);
    let sb = Standby::start(&env, None);
    let (api, cli) = (sb.api(), sb.cli());
    let mut agent = spawn(&env, &sb, pair, &[&loop0.dev], "agent-1");
    wait_ready(&api, pair, &mut agent, LONG);
    let before = api.create_point_wait(pair);
    let old_hash = hash_file(&loop0.dev).1;
    let lineage = api.status(pair).lineage;
    step(format!("point {} cut at the old size", before.id));

    // (a) The disk grows while the agent is down.
    agent.term(Duration::from_secs(20));
    sh("truncate", &["-s", &NEW.to_string(), &img0.display().to_string()]);
    sh("losetup", &["-c", &loop0.dev.display().to_string()]);
    write_through(&img0, &loop0, &[(OLD / (64 << 10)) + 3], 99);
    assert_eq!(loop0.size(), NEW, "the loop device took the new size");
    let mut agent = spawn(&env, &sb, pair, &[&loop0.dev], "agent-2");
    let s = wait_changed(&sb, pair, &mut agent);
    let c = s.configuration_change.as_ref().unwrap();
    assert!(c.growth_only, "{c:?}");
    assert_eq!(c.changes.len(), 1, "{c:?}");
    assert_eq!((c.changes[0].index, c.changes[0].change), (0, DiskChangeKind::Grown));
    assert_eq!(c.changes[0].old.as_ref().map(|d| d.size_bytes), Some(OLD));
    assert_eq!(c.changes[0].new.as_ref().map(|d| d.size_bytes), Some(NEW));
    assert!(s.state_explanation.contains("adopt-growth"), "{}", s.state_explanation);
    assert!(s.allowed_actions.contains(&"adopt_growth".to_string()), "{:?}", s.allowed_actions);
    assert_eq!(s.disks[0].size_bytes, OLD, "the registered size until the growth is taken");
    let text = cli.run(&["status", pair]).ok().stdout.clone();
    assert!(text.contains("Configuration change") && text.contains("grown from"), "{text}");
    // Nothing ships while the change waits: no new point appears.
    let points = api.points(pair);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(api.points(pair), points, "points changed while the configuration change waited");

    // Bad input: clear errors, nothing changed.
    cli.run(&["pairs", "adopt-growth", "no-such-pair"]).expect_code(3);
    let r = api.post(&format!("/api/v1/pairs/{pair}/adopt-growth"), "application/json", b"{\"force\":true}");
    r.assert_error(400, "InvalidParameter");
    assert_eq!(api.status(pair).state, PairState::ConfigurationChanged);

    let out = cli.run(&["pairs", "adopt-growth", pair]);
    out.ok();
    assert!(out.stdout.contains("took its grown disks"), "{}", out.stdout);
    let s = wait_status(&api, pair, Some(&mut agent), "replicating at the new size", LONG, |s| {
        s.state == PairState::Replicating && s.disks[0].size_bytes == NEW
    });
    assert_eq!(s.lineage, lineage, "growth is taken in the same lineage");
    assert!(s.configuration_change.is_none());
    let after = api.create_point_wait(pair);
    assert_eq!(api.export_full(pair, &after.id.to_string(), 0, NEW), hash_file(&loop0.dev).1, "newest point");
    let old = api.export(pair, &before.id.to_string(), 0);
    assert_eq!(old.len, OLD, "a point from before the growth exports at the old size");
    assert_eq!(api.export_full(pair, &before.id.to_string(), 0, OLD), old_hash, "old point unchanged");
    // The adoption is refused once taken.
    cli.run(&["pairs", "adopt-growth", pair]).expect_code(4);

    // (b) A disk added: only a restart takes it.
    agent.term(Duration::from_secs(20));
    let mut agent = spawn(&env, &sb, pair, &[&loop0.dev, &loop1.dev], "agent-3");
    let s = wait_changed(&sb, pair, &mut agent);
    let c = s.configuration_change.as_ref().unwrap();
    assert!(!c.growth_only && c.changes[0].change == DiskChangeKind::Added, "{c:?}");
    assert!(!s.allowed_actions.contains(&"adopt_growth".to_string()), "{:?}", s.allowed_actions);
    let out = cli.run(&["pairs", "adopt-growth", pair]);
    out.expect_code(4);
    assert!(out.stderr.contains("added") && out.stderr.contains("drpair restart"), "{}", out.stderr);
    assert_eq!(api.status(pair).state, PairState::ConfigurationChanged, "a refused adoption changes nothing");
    cli.run_with_stdin(&["restart", pair], Some(format!("{pair}\n").as_bytes())).ok();
    let s = wait_status(&api, pair, Some(&mut agent), "new baseline of both disks", LONG, |s| {
        s.state == PairState::Replicating && s.ready_for_failover && s.disks.len() == 2
    });
    assert_ne!(s.lineage, lineage, "the restart started a new lineage");
    let p = api.create_point_wait(pair);
    assert_eq!(api.export_full(pair, &p.id.to_string(), 0, NEW), hash_file(&loop0.dev).1);
    assert_eq!(api.export_full(pair, &p.id.to_string(), 1, 8 * MIB), hash_file(&loop1.dev).1);

    // (c) A disk removed, then back: the change is withdrawn.
    agent.term(Duration::from_secs(20));
    let mut agent = spawn(&env, &sb, pair, &[&loop0.dev], "agent-4");
    let s = wait_changed(&sb, pair, &mut agent);
    assert_eq!(s.configuration_change.as_ref().unwrap().changes[0].change, DiskChangeKind::Removed);
    agent.term(Duration::from_secs(20));
    let mut agent = spawn(&env, &sb, pair, &[&loop0.dev, &loop1.dev], "agent-5");
    let s = wait_status(&api, pair, Some(&mut agent), "replicating again", LONG, |s| s.state == PairState::Replicating);
    assert!(s.configuration_change.is_none(), "{}", describe(&s));
    write_through(&img1, &loop1, &[5], 123);
    let p = api.create_point_wait(pair);
    assert_eq!(api.export_full(pair, &p.id.to_string(), 1, 8 * MIB), hash_file(&loop1.dev).1);
    drop(agent);
}
