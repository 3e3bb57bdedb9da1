//! The benchmarks behind `drpair bench`, against a real standby over HTTPS:
//!
//! - `POST /api/v1/bench/sink` counts a 64 MiB body exactly, sent with its length and sent
//!   chunked (no body limit of the router cuts it short), and reports a positive rate; without
//!   a token it is refused (401), with a viewer's token too (403), an operator may.
//! - `POST /api/v1/bench/store` writes 64 MiB to a scratch store below the data dir, reports a
//!   positive rate and leaves no `bench-*` directory behind; bytes out of range and malformed
//!   bodies are refused naming the parameter; a second store benchmark while one runs is
//!   refused (409, `Busy`).
//!
//! The measured rates are printed, not asserted.

use drpair_e2e::api::{Reply, http_agent};
use drpair_e2e::{MIB, Standby, TestEnv, step};
use drpair_types::{BenchSinkResult, BenchStoreResult};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

const TOKEN: &str = "bench-api-token-0123456789";

/// The scratch directories of store benchmarks in the standby's data dir.
fn scratch_dirs(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir)
        .expect("data dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("bench-"))
        .collect()
}

fn mib_per_s(bytes_per_second: f64) -> String {
    format!("{:.0} MiB/s", bytes_per_second / MIB as f64)
}

fn sink_result(r: &Reply) -> BenchSinkResult {
    assert_eq!(r.status, 200, "sink: {}", r.text());
    let j = r.json();
    for k in ["bytes", "seconds", "bytes_per_second"] {
        assert!(j.get(k).is_some(), "sink answer without {k}: {j}");
    }
    serde_json::from_value(j).expect("BenchSinkResult")
}

#[test]
fn bench_endpoints() {
    let env = TestEnv::new("bench-api");
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let operator = api.with_token(Some(&api.make_token("bench-operator", "operator")));
    let viewer = api.with_token(Some(&api.make_token("bench-viewer", "viewer")));

    // ---- Sink: 64 MiB with a Content-Length, counted to the byte.
    let size = 64 * MIB;
    let body: Vec<u8> = (0..size).map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes()[2]).collect();
    let r = operator.post("/api/v1/bench/sink", "application/octet-stream", &body);
    let s = sink_result(&r);
    assert_eq!(s.bytes, size, "the sink counts the whole body");
    assert!(s.seconds > 0.0 && s.bytes_per_second > 0.0, "{s:?}");
    assert!((s.bytes_per_second - s.bytes as f64 / s.seconds).abs() < 1.0, "{s:?}");
    step(format!("sink, 64 MiB with its length: {:.3} s, {}", s.seconds, mib_per_s(s.bytes_per_second)));

    // The same, chunked (no length announced), from a reader.
    let http = http_agent(sb.ca_file().as_deref(), Duration::from_secs(300));
    let resp = http
        .post(format!("{}/api/v1/bench/sink", sb.url()))
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/octet-stream")
        .send(ureq::SendBody::from_owned_reader(std::io::repeat(0x5a).take(size)))
        .expect("chunked sink");
    let s = sink_result(&Reply::read(resp).expect("sink answer"));
    assert_eq!(s.bytes, size, "the sink counts a chunked body whole");
    assert!(s.bytes_per_second > 0.0, "{s:?}");
    step(format!("sink, 64 MiB chunked: {:.3} s, {}", s.seconds, mib_per_s(s.bytes_per_second)));

    // An empty body: nothing counted, no rate.
    let s = sink_result(&operator.post("/api/v1/bench/sink", "text/plain", b""));
    assert_eq!((s.bytes, s.bytes_per_second), (0, 0.0));

    // Tokens and roles.
    api.with_token(None).post("/api/v1/bench/sink", "application/octet-stream", b"x").assert_error(401, "AccessDenied");
    api.with_token(None).post("/api/v1/bench/store", "application/json", b"{}").assert_error(401, "AccessDenied");
    let e = viewer.post("/api/v1/bench/sink", "application/octet-stream", b"x").assert_error(403, "Forbidden");
    assert!(e["message"].as_str().unwrap().contains("operator role"), "{e}");
    viewer.post("/api/v1/bench/store", "application/json", b"{}").assert_error(403, "Forbidden");
    step("sink and store: refused without a token (401) and to a viewer (403)");

    // ---- Store: 64 MiB, then nothing left behind.
    let r = operator.post_json("/api/v1/bench/store", &json!({"bytes": size}));
    assert_eq!(r.status, 200, "store bench: {}", r.text());
    let j = r.json();
    assert_eq!(j["chunk_size"], 65536, "{j}");
    let s: BenchStoreResult = serde_json::from_value(j).expect("BenchStoreResult");
    assert_eq!(s.bytes, size);
    assert!(s.seconds > 0.0 && s.bytes_per_second > 0.0, "{s:?}");
    assert_eq!(scratch_dirs(&sb.data_dir), Vec::<String>::new(), "the scratch store is removed");
    step(format!("store, 64 MiB in 64 KiB chunks: {:.3} s, {}", s.seconds, mib_per_s(s.bytes_per_second)));

    // ---- Bad input: 400 naming the parameter, nothing written.
    for bytes in [json!(16 * MIB - 1), json!((8u64 << 30) + 1), json!(0), json!(-5), json!("64MiB"), json!(1.5)] {
        operator.post_json("/api/v1/bench/store", &json!({ "bytes": bytes })).assert_refused_param("bytes");
    }
    let malformed: [&[u8]; 5] = [b"{", b"[64]", b"\"bytes\"", br#"{"bytes": 16777216, "chunk": 1}"#, b"\xff\xfe"];
    for bad in malformed {
        operator.post("/api/v1/bench/store", "application/json", bad).assert_refused_param("body");
    }
    assert_eq!(scratch_dirs(&sb.data_dir), Vec::<String>::new(), "a refusal writes nothing");
    step("store: bytes out of range and malformed bodies refused (400), nothing written");

    // ---- One store benchmark at a time: a second while a 1 GiB one runs is refused.
    let first = {
        let operator = operator.clone();
        std::thread::spawn(move || operator.post_json("/api/v1/bench/store", &json!({"bytes": 1u64 << 30})))
    };
    let t = Instant::now();
    while scratch_dirs(&sb.data_dir).is_empty() {
        assert!(!first.is_finished(), "the 1 GiB store benchmark ended before its scratch store was seen");
        assert!(t.elapsed() < Duration::from_secs(60), "no scratch store appeared within 60 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    let e = operator.post_json("/api/v1/bench/store", &json!({"bytes": size})).assert_error(409, "Busy");
    step(format!("second store benchmark refused: {}", e["message"]));
    let r = first.join().expect("first store benchmark");
    assert_eq!(r.status, 200, "1 GiB store bench: {}", r.text());
    let s: BenchStoreResult = serde_json::from_slice(&r.body).expect("BenchStoreResult");
    assert_eq!(s.bytes, 1 << 30);
    assert_eq!(scratch_dirs(&sb.data_dir), Vec::<String>::new(), "the scratch store is removed");
    step(format!("store, 1 GiB in 64 KiB chunks: {:.3} s, {}", s.seconds, mib_per_s(s.bytes_per_second)));

    // Once it ended, the next one runs.
    let r = operator.post_json("/api/v1/bench/store", &json!({}));
    assert_eq!(r.status, 200, "default store bench: {}", r.text());
    let s: BenchStoreResult = serde_json::from_slice(&r.body).expect("BenchStoreResult");
    assert_eq!(s.bytes, 256 * MIB, "the default is 256 MiB");
    assert_eq!(scratch_dirs(&sb.data_dir), Vec::<String>::new());
    step(format!("store, default 256 MiB: {:.3} s, {}", s.seconds, mib_per_s(s.bytes_per_second)));
}
