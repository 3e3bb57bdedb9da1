//! A full standby disk and deleting a pair, on a standby whose data dir is a 512 MiB ext4
//! filesystem on a loop device:
//!
//! (a) a pair's initial sync fills it: the pair stops with `STOPPED_DUE_TO_LOW_DISK` before
//!     the filesystem is full (a failure message names the free space), nothing committed is
//!     lost, and the other pairs' points still export;
//! (b) bad input to `pairs delete` (unknown pair, wrong confirmation, unknown parameter, a
//!     drill serving the pair) changes nothing;
//! (c) deleting another pair reclaims the chunks only it used (free space before/after), a
//!     pair sharing chunks with it still exports equal, its agent decommissions itself
//!     (change maps gone) and holds, and the stopped pair resumes by itself and converges;
//!     `debug recover` of its newest point equals the source.

use drpair_e2e::blockdev::mkfs_ext4;
use drpair_e2e::image::{Fill, create_image, hash_file};
use drpair_e2e::pair::{describe, wait_status};
use drpair_e2e::{AgentSpec, LoopDev, MIB, Mount, Standby, TestEnv, sh, step, wait_ready};
use drpair_types::PairState;
use std::path::Path;
use std::time::Duration;

const LONG: Duration = Duration::from_secs(240);

fn free_bytes(dir: &Path) -> u64 {
    let out = sh("df", &["-B1", "--output=avail", &dir.display().to_string()]);
    out.lines().nth(1).expect("df line").trim().parse().expect("free bytes")
}

#[test]
fn full_standby_disk_and_pair_delete() {
    let env = TestEnv::new("low-disk-delete");
    let fs_img = env.path("standby-fs.img");
    sh("truncate", &["-s", "512M", &fs_img.display().to_string()]);
    mkfs_ext4(&fs_img);
    let fs_loop = LoopDev::attach(&fs_img);
    let data = env.mkdir("standby");
    let _mount = Mount::mount(&fs_loop.dev, &data);
    // Bad reserves are refused before anything starts.
    for (flag, value) in [("--disk-reserve", "60%"), ("--disk-reserve", "lots"), ("--memory-reserve", "5%")] {
        let out = std::process::Command::new(drpair_e2e::bin("drpaird"))
            .args(["standby", "--data-dir", &env.path("never").display().to_string(), flag, value])
            .output()
            .expect("drpaird");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(flag.trim_start_matches("--").replace('-', "_").as_str()),
            "{flag} {value}: {err}"
        );
    }
    let sb = Standby::start_with(&env, None, &["--disk-reserve", "48MiB"]);
    let (api, cli) = (sb.api(), sb.cli());

    // keep-01: 192 MiB; share-01: the first 32 MiB of keep-01's bytes (every chunk shared).
    let keep_img = env.path("keep.img");
    let share_img = env.path("share.img");
    let big_img = env.path("big.img");
    create_image(&keep_img, 192 * MIB, Fill::Random, 11);
    let keep_bytes = std::fs::read(&keep_img).expect("read keep.img");
    std::fs::write(&share_img, &keep_bytes[..32 * MIB as usize]).expect("write share.img");
    create_image(&big_img, 96 * MIB, Fill::Random, 12);
    let keep_spec = AgentSpec::new(&env, &sb, "keep-01", &[&keep_img]);
    let mut keep = keep_spec.spawn(&env, "agent-keep");
    wait_ready(&api, "keep-01", &mut keep, LONG);
    let mut share = AgentSpec::new(&env, &sb, "share-01", &[&share_img]).spawn(&env, "agent-share");
    wait_ready(&api, "share-01", &mut share, LONG);
    let keep_point = api.points("keep-01").last().unwrap().id;
    step(format!("keep-01 and share-01 replicate; {} MiB free on the standby", free_bytes(&data) >> 20));

    // (a) big-01 fills the filesystem: stopped at the reserve, before ENOSPC.
    let mut big = AgentSpec::new(&env, &sb, "big-01", &[&big_img]).spawn(&env, "agent-big");
    let s = wait_status(&api, "big-01", Some(&mut big), "STOPPED_DUE_TO_LOW_DISK", LONG, |s| {
        s.stop_reason.as_deref() == Some("STOPPED_DUE_TO_LOW_DISK")
    });
    step(format!("big-01 stopped: {} ({} MiB free)", describe(&s), free_bytes(&data) >> 20));
    assert_eq!(s.state, PairState::Stopped);
    assert!(!s.ready_for_failover, "the baseline cannot have completed");
    assert!(
        s.failure_messages.iter().any(|m| m.contains("free") && m.contains("reserve") || m.contains("limit")),
        "{:?}",
        s.failure_messages
    );
    std::thread::sleep(Duration::from_secs(2));
    // Ingest stops at the 48 MiB reserve; what was in flight then still lands.
    assert!(free_bytes(&data) > 24 * MIB, "the 48 MiB reserve was kept: {} bytes free", free_bytes(&data));
    assert!(!sb.proc.log().contains("No space left"), "the store met ENOSPC");
    assert_eq!(api.export_full("keep-01", &keep_point.to_string(), 0, 192 * MIB), hash_file(&keep_img).1);

    // (b) Bad input to delete: nothing changes.
    cli.run(&["pairs", "delete", "no-such-pair", "--yes"]).expect_code(3);
    cli.run_with_stdin(&["pairs", "delete", "keep-01"], Some(b"keep-02\n")).expect_code(9);
    api.delete("/api/v1/pairs/keep-01").assert_error(400, "InvalidParameter");
    api.delete("/api/v1/pairs/keep-01?confirm=keep-01&force=1").assert_error(400, "InvalidParameter");
    let drill = cli.run(&["drill", "start", "keep-01", "--latest", "--output", "json"]);
    let drill_id = drill.ok().json()["id"].as_str().expect("drill id").to_string();
    let refused = cli.run(&["pairs", "delete", "keep-01", "--yes"]);
    refused.expect_code(4);
    assert!(refused.stderr.contains(&drill_id), "{}", refused.stderr);
    cli.run(&["drill", "stop", &drill_id]).ok();
    assert!(api.points("keep-01").iter().any(|p| p.id == keep_point), "a refused delete changed nothing");

    // (c) Delete keep-01: its own chunks are reclaimed, share-01's stay.
    let before = free_bytes(&data);
    let out = cli.run_with_stdin(&["pairs", "delete", "keep-01", "--output", "json"], Some(b"keep-01\n"));
    let j = out.ok().json();
    step(format!("deleted: {j}"));
    assert!(j["points_deleted"].as_u64().unwrap() >= 1 && j["chunks_reclaimed"].as_u64().unwrap() > 0, "{j}");
    let after = free_bytes(&data);
    step(format!("free on the standby: {} MiB before the delete, {} MiB after", before >> 20, after >> 20));
    assert!(after > before + 128 * MIB, "keep-01's own 160 MiB were not given back: {before} -> {after}");
    api.get("/api/v1/pairs/keep-01").assert_error(404, "PairNotFound");
    let share_point = api.points("share-01").last().unwrap().id;
    assert_eq!(api.export_full("share-01", &share_point.to_string(), 0, 32 * MIB), hash_file(&share_img).1);
    // keep-01's agent: refused with the reason, decommissioned, still running (it holds).
    let maps = keep_spec.state_dir.join("disk-0.chmap");
    drpair_e2e::wait_until("keep-01's agent decommissions itself", LONG, || {
        if maps.exists() { Err("change map still there".to_string()) } else { Ok(()) }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert!(keep.is_running(), "the agent of a deleted pair holds:\n{}", keep.tail(20));
    assert!(keep.log().contains("was deleted on this standby"), "{}", keep.tail(20));

    // big-01 resumes by itself once there is room, and converges.
    let s = wait_status(&api, "big-01", Some(&mut big), "resumed and replicating", LONG, |s| {
        s.state == PairState::Replicating && s.ready_for_failover
    });
    step(format!(
        "big-01 converged: {}; {} MiB freed by the delete",
        describe(&s),
        (free_bytes(&data) as i64 - before as i64) >> 20
    ));
    let p = api.create_point_wait("big-01");
    let source = hash_file(&big_img).1;
    assert_eq!(api.export_full("big-01", &p.id.to_string(), 0, 96 * MIB), source);

    // debug recover of the newest point, offline.
    drop(big);
    drop(share);
    let mut sb = sb;
    sb.term();
    let out_img = env.path("recovered.img");
    let r = cli.run(&[
        "debug",
        "recover",
        "--data-dir",
        &data.display().to_string(),
        "--pair",
        "big-01",
        "--point",
        &p.id.to_string(),
        "--disk",
        "0",
        "--out",
        &out_img.display().to_string(),
    ]);
    r.ok();
    assert_eq!(hash_file(&out_img).1, source, "debug recover equals the source");
}
