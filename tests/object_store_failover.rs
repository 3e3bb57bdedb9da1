//! Failover and failback with the chunks on an S3-compatible object store (issue 23, point 2),
//! on a real 3-node garage cluster with replication factor 3.
//!
//! A standby with `store = "s3"` (packs of 1 MiB) protects a disk image; after some changes a
//! point is cut. Failover of the latest point onto a file: the file equals the point (read
//! back from packs through ranged GETs). The recovered side then changes a few chunks, and a
//! failback `to-original` keeps the original's state as a pinned point (its chunks going to
//! new packs), moves exactly the differing chunks, and leaves the original equal to the
//! recovered side; replication resumes and its next point exports equal to the disk.
//! A prune and reclaim afterwards keep the failover point (pinned by the failover) and that
//! point (pinned here) equal. With the standby stopped, `drpair debug recover` rebuilds that
//! point from the bucket (credentials from the environment) equal to the disk; without them it
//! is refused, naming the store.
//!
//! Skipped, saying so, when garage is not installed (`scripts/setup.sh` installs it).

use drpair_e2e::dump::differing_chunks;
use drpair_e2e::garage::Garage;
use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::lifecycle::action;
use drpair_e2e::maintenance::Maint;
use drpair_e2e::pair::wait_status;
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_ready, wait_until};
use drpair_types::{FailbackStatus, FailoverStatus, JobState, PairState};
use serde_json::json;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

const PAIR: &str = "s3-fo";
const TOKEN: &str = "s3-failover-token";
const SIZE: u64 = 16 * MIB;
const CHUNK: u64 = 64 << 10;
const LONG: Duration = Duration::from_secs(180);
const BUCKET: &str = "drpair-failover";

fn failover(api: &Api) -> FailoverStatus {
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/failover"));
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

fn failback(api: &Api) -> FailbackStatus {
    let r = api.get(&format!("/api/v1/pairs/{PAIR}/failback"));
    assert_eq!(r.status, 200, "{}", r.text());
    serde_json::from_slice(&r.body).unwrap()
}

/// Writes `seed`-derived bytes over whole chunks of a file and syncs.
fn write_chunks(path: &Path, chunks: &[u64], seed: u8) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    for &c in chunks {
        let data: Vec<u8> = (0..CHUNK).map(|i| (i % 251) as u8 ^ seed).collect();
        f.write_all_at(&data, c * CHUNK).unwrap();
    }
    f.sync_all().unwrap();
}

#[test]
fn failover_and_failback_with_the_chunks_on_garage() {
    let env = TestEnv::new("s3-failover");
    let Some(g) = Garage::start(&env, "failover_and_failback_with_the_chunks_on_garage", BUCKET) else { return };
    let cfg = g.standby_config(
        &env,
        0,
        "standby-s3.toml",
        "standby-f",
        "pack_size = \"1MiB\"\ncache = \"16MiB\"\norphan_grace = \"0s\"\n",
    );
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 41);
    let mut sb = Standby::start_with(&env, Some(TOKEN), &["--config", cfg.to_str().unwrap()]);
    let api = sb.api();
    let mut agent = AgentSpec::new(&env, &sb, PAIR, &[&img]).spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    overwrite_chunks(&img, CHUNK, &pick_chunks(SIZE / CHUNK, 40, 5), 55);
    let p = api.create_point_wait(PAIR);
    let p_hash = hash_file(&img).1;

    // Failover of that point onto a file.
    let target = env.path("recovered.img");
    let r = action(&api, PAIR, "failover", &json!({"point": p.id, "targets": [target]}));
    assert_eq!(r.status, 202, "failover: {}", r.text());
    let f = wait_until("failover done", LONG, || {
        let f = failover(&api);
        if f.state == JobState::Running { Err(format!("{:.0}%", f.progress_percent)) } else { Ok(f) }
    });
    assert_eq!(f.state, JobState::Done, "{}", f.message);
    assert_eq!(hash_file(&target).1, p_hash, "the failover target differs from point {}", p.id);
    step(format!("failover of point {} from garage onto a file: equal ({})", p.id, f.message));

    // The recovered side changes; failback to the original.
    wait_status(&api, PAIR, Some(&mut agent), "the agent back, holding", LONG, |s| {
        s.agent.as_ref().is_some_and(|a| a.connected)
    });
    write_chunks(&target, &[3, 4, 200], 0x5A);
    let r = action(&api, PAIR, "failback", &json!({"from": [target], "direction": "to-original"}));
    assert_eq!(r.status, 202, "failback: {}", r.text());
    let b = wait_until("failback done", LONG, || {
        let b = failback(&api);
        if b.state == JobState::Running { Err(format!("{:?} {:.0}%", b.phase, b.progress_percent)) } else { Ok(b) }
    });
    assert_eq!(b.state, JobState::Done, "{b:?}");
    assert_eq!((b.differing_chunks, b.chunks_moved), (3, 3), "{b:?}");
    let differ = differing_chunks(&img, &target, CHUNK);
    assert!(differ.is_empty(), "the original differs from the recovered side in chunks {differ:?}");
    step(format!("failback to-original: {}", b.message));

    // Replication resumes; its next point equals the disk; a prune and reclaim keep it so.
    wait_status(&api, PAIR, Some(&mut agent), "replicating", LONG, |s| s.state == PairState::Replicating);
    let after = api.create_point_wait(PAIR);
    let after_hash = hash_file(&img).1;
    assert_eq!(api.export_full(PAIR, &after.id.to_string(), 0, SIZE), after_hash, "point {} after failback", after.id);
    let m = Maint::new(&sb, PAIR);
    assert_eq!(m.pin(&after.id.to_string(), true).status, 200, "pin {}", after.id);
    assert_eq!(m.set_retention(&json!({"grid": "1x1s", "keep_last": 1})).status, 200);
    let pr = m.prune_ok(false);
    let left: Vec<u64> = api.points(PAIR).iter().map(|p| p.id).collect();
    for (id, h) in [(p.id, p_hash), (after.id, after_hash)] {
        assert!(left.contains(&id), "pinned point {id} went: {left:?}");
        assert_eq!(api.export_full(PAIR, &id.to_string(), 0, SIZE), h, "point {id} after the prune");
    }
    let v = m.verify_ok(None);
    assert_eq!(v.points_damaged, 0, "{v:?}");
    let usage = m.storage().object_store.expect("object store usage");
    step(format!(
        "replicating again: point {} equal; prune kept {left:?} (reclaim {:?}); packs {} ({:.1} MiB, {:.1} MiB garbage); verify clean",
        after.id,
        pr.reclaim.and_then(|r| r.packs),
        usage.packs,
        usage.pack_bytes as f64 / MIB as f64,
        usage.garbage_bytes as f64 / MIB as f64
    ));

    // Offline: `drpair debug recover` reads the point from the bucket with the standby
    // stopped; without the bucket's credentials it is refused, naming the store.
    drop(agent);
    sb.term();
    let out = env.path("offline.img");
    let recover = |creds: bool| {
        let mut c = std::process::Command::new(drpair_e2e::bin("drpair"));
        c.args(["debug", "recover", "--data-dir"]).arg(&sb.data_dir);
        c.args(["--pair", PAIR, "--point", &after.id.to_string(), "--out"]).arg(&out);
        c.env_remove("DRPAIR_S3_ACCESS_KEY_ID").env_remove("DRPAIR_S3_SECRET_ACCESS_KEY");
        if creds {
            c.env("DRPAIR_S3_ACCESS_KEY_ID", &g.key_id).env("DRPAIR_S3_SECRET_ACCESS_KEY", &g.secret);
        }
        let o = c.output().expect("drpair debug recover");
        (o.status.code(), format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr)))
    };
    let (code, said) = recover(false);
    assert!(code != Some(0) && said.contains("DRPAIR_S3_ACCESS_KEY_ID"), "without credentials: {code:?} {said}");
    assert!(said.contains(&format!("{}/{BUCKET}/standby-f", g.endpoint(0))), "the store is not named: {said}");
    assert!(!out.exists(), "a refused recovery wrote {}", out.display());
    let (code, said) = recover(true);
    assert_eq!(code, Some(0), "debug recover: {said}");
    assert!(!said.contains(&g.secret), "the secret shown: {said}");
    assert_eq!(hash_file(&out).1, after_hash, "the offline recovery of point {} differs", after.id);
    step(format!("debug recover of point {} from the bucket, standby stopped: equal", after.id));
}
