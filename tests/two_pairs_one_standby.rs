//! One standby serves several pairs at once, and a pair may protect several disks (one
//! consistency group): two agents replicate concurrently, one with two disks; each pair's
//! points export to its own sources, disk by disk, and neither pair sees the other's data.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_ready};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(120);

#[test]
fn two_pairs_replicate_concurrently_with_multi_disk_points() {
    let env = TestEnv::new("two-pairs");
    let a0 = env.path("a0.img");
    let b0 = env.path("b0.img");
    let b1 = env.path("b1.img");
    create_image(&a0, 48 * MIB, Fill::Mixed, 1);
    create_image(&b0, 32 * MIB, Fill::Mixed, 2);
    create_image(&b1, 40 * MIB + 12345, Fill::Random, 3);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let mut agent_a = AgentSpec::new(&env, &sb, "pair-a", &[&a0]).spawn(&env, "agent-a");
    let mut agent_b = AgentSpec::new(&env, &sb, "pair-b", &[&b0, &b1]).spawn(&env, "agent-b");
    wait_ready(&api, "pair-a", &mut agent_a, LONG);
    let sb_status = wait_ready(&api, "pair-b", &mut agent_b, LONG);
    assert_eq!(sb_status.disks.len(), 2);
    assert_eq!(sb_status.disks[1].size_bytes, 40 * MIB + 12345, "odd-sized second disk registered with its exact size");

    let pairs = api.get("/api/v1/pairs").json();
    let ids: Vec<&str> = pairs.as_array().unwrap().iter().map(|p| p["pair_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["pair-a", "pair-b"], "both pairs listed, sorted");

    // Change both disks of pair b, and pair a; cut a point of each (quiesced: no writes now).
    overwrite_chunks(&b0, 64 << 10, &pick_chunks(512, 20, 7), 70);
    overwrite_chunks(&b1, 64 << 10, &pick_chunks(640, 20, 8), 80);
    overwrite_chunks(&a0, 64 << 10, &pick_chunks(768, 10, 9), 90);
    let pa = api.create_point_wait("pair-a");
    let pb = api.create_point_wait("pair-b");
    step(format!("points: pair-a {} pair-b {}", pa.id, pb.id));
    assert_eq!(pb.sizes.logical_bytes, 32 * MIB + 40 * MIB + 12345, "a point covers every disk of the pair");

    for (pair, point, disk, src) in [("pair-a", pa.id, 0, &a0), ("pair-b", pb.id, 0, &b0), ("pair-b", pb.id, 1, &b1)] {
        let (size, want) = hash_file(src);
        let got = api.export_full(pair, &point.to_string(), disk, size);
        assert_eq!(got, want, "{pair} point {point} disk {disk} differs from its source");
    }
    // A disk number the pair does not have is refused, not served from another pair.
    let r = api.get(&format!("/api/v1/pairs/pair-a/points/{}/disks/1/image", pa.id));
    assert!(r.status == 400 || r.status == 404, "disk 1 of a one-disk pair: {}", r.status);
    agent_a.term(Duration::from_secs(30));
    agent_b.term(Duration::from_secs(30));
}
