//! Link faults (issue 20's first findings, as regression tests): a `points create --wait`
//! pending when the link is cut ends within seconds with the reason, not after its timeout
//! (and the waiting call keeps no link alive); after the cut the agent is connected again
//! within 5 s, and a new point equals the source.

use drpair_e2e::image::{Fill, create_image, hash_file, overwrite_chunks, pick_chunks};
use drpair_e2e::proxy::RecordingProxy;
use drpair_e2e::{AgentSpec, MIB, Standby, TestEnv, step, wait_connected, wait_ready};
use std::time::{Duration, Instant};

const SIZE: u64 = 32 * MIB;
const CHUNK: u64 = 64 << 10;

#[test]
fn a_pending_wait_ends_with_the_reason_when_the_link_is_cut() {
    let env = TestEnv::new("link-faults");
    let pair = "faults-01";
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 5);
    let sb = Standby::start(&env, None);
    let api = sb.api();
    let proxy = RecordingProxy::start(sb.link);
    let mut spec = AgentSpec::new(&env, &sb, pair, &[&img]);
    spec.standby = proxy.addr;
    spec.throttle_bps = Some(4 * MIB);
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, pair, &mut agent, Duration::from_secs(120));

    // A backlog the throttled agent needs seconds to ship, so the cut request waits behind it.
    overwrite_chunks(&img, CHUNK, &pick_chunks(SIZE / CHUNK, 320, 9), 10);
    std::thread::sleep(Duration::from_millis(1500));
    let waiting = {
        let api = api.clone();
        let pair = pair.to_string();
        std::thread::spawn(move || {
            let t = Instant::now();
            let r = api.post(
                &format!("/api/v1/pairs/{pair}/points"),
                "application/json",
                br#"{"wait": true, "timeout_seconds": 300}"#,
            );
            (r, t.elapsed())
        })
    };
    std::thread::sleep(Duration::from_millis(1500));
    let cut_at = Instant::now();
    assert!(proxy.cut() >= 1, "no connection to cut");
    step("link cut with a points create --wait pending");
    let (r, took) = waiting.join().unwrap();
    let after_cut = cut_at.elapsed();
    step(format!(
        "the wait ended {:.1}s after the cut ({:.1}s in all): {} {}",
        after_cut.as_secs_f64(),
        took.as_secs_f64(),
        r.status,
        r.text()
    ));
    assert!(after_cut < Duration::from_secs(10), "the wait outlived the cut by {after_cut:?}");
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(r.text().contains("connection ended"), "no reason given: {}", r.text());

    // Back within 5 s of the cut, whatever the backoff was before.
    let s = wait_connected(&api, pair, true, Duration::from_secs(30));
    let back = cut_at.elapsed();
    step(format!("agent connected again {:.1}s after the cut: {}", back.as_secs_f64(), s.state_label));
    assert!(back < Duration::from_secs(8), "reconnected only {back:?} after the cut");
    let p = api.create_point_wait(pair);
    assert_eq!(api.export_full(pair, &p.id.to_string(), 0, SIZE), hash_file(&img).1, "point {} after the cut", p.id);
}
