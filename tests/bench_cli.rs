//! `drpair bench` (issue 22, part 5) on this machine against a real standby: a loop device read
//! with O_DIRECT, BLAKE3 and zstd per core, the link's round trip and upload rate, the
//! standby's store write rate; the report names what bounds the initial sync for compression
//! off and zstd:1 and estimates its time for the disk's size (or `--size`). `--local` leaves the
//! standby out and says so; an unreachable standby is said, not fatal. Bad input (a disk that
//! does not exist, a size or duration that is not one) fails with a clear message.

use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::{LoopDev, MIB, Standby, TestEnv, step};
use serde_json::Value;

const TOKEN: &str = "bench-cli-token";
const SIZE: u64 = 256 * MIB;
const BOUNDS: &[&str] = &["disk", "cpu", "link", "store", "unzstd", "host"];

fn rate(v: &Value, what: &str) -> f64 {
    let r = v.as_f64().unwrap_or_else(|| panic!("{what}: {v}"));
    assert!(r.is_finite() && r > 0.0, "{what}: {r}");
    r
}

fn check_estimates(j: &Value, size: u64, with_standby: bool) {
    let est = j["estimates"].as_array().expect("estimates");
    assert_eq!(est.iter().map(|e| e["compression"].as_str().unwrap()).collect::<Vec<_>>(), ["off", "zstd:1"]);
    for e in est {
        let r = rate(&e["initial_sync_bytes_per_second"], "initial sync rate");
        let bound = e["bound"].as_str().unwrap();
        assert!(BOUNDS.contains(&bound), "{e}");
        let limits = e["limits"].as_array().unwrap();
        let named: Vec<&str> = limits.iter().map(|l| l["resource"].as_str().unwrap()).collect();
        // With compression the standby's decompression is a limit (and a term of the host's).
        let zstd = e["compression"] == "zstd:1";
        if with_standby {
            // The standby runs here: its work and the agent's share the cores, which adds the
            // host limit, 1 / (1/cpu + 1/link + 1/store [+ 1/unzstd]), and that one binds.
            let want: &[&str] = if zstd {
                &["disk", "cpu", "link", "store", "unzstd", "host"]
            } else {
                &["disk", "cpu", "link", "store", "host"]
            };
            assert_eq!(named, want, "{e}");
            let of =
                |n: &str| limits.iter().find(|l| l["resource"] == n).unwrap()["bytes_per_second"].as_f64().unwrap();
            let unzstd = if zstd { 1.0 / of("unzstd") } else { 0.0 };
            let host = 1.0 / (1.0 / of("cpu") + 1.0 / of("link") + 1.0 / of("store") + unzstd);
            assert!((of("host") - host).abs() < 1e-6 * host, "{e}");
            assert!(bound == "host" || bound == "disk", "{e}");
        } else if zstd {
            assert_eq!(named, ["disk", "cpu", "unzstd"], "{e}");
        } else {
            assert_eq!(named, ["disk", "cpu"], "{e}");
        }
        // The bound is the smallest limit, and the time is the size at that rate.
        let least = limits.iter().map(|l| l["bytes_per_second"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
        assert_eq!(r, least, "{e}");
        let t = e["initial_sync_seconds"].as_f64().unwrap();
        assert!((t - size as f64 / r).abs() < 1e-6 * t.max(1.0), "{e}");
        rate(&e["sustainable_change_bytes_per_second"], "sustainable");
    }
}

#[test]
fn bench_measures_the_machine_the_link_and_the_store() {
    let env = TestEnv::new("bench-cli");
    let img = env.path("disk.img");
    create_image(&img, SIZE, Fill::Mixed, 22);
    let lo = LoopDev::attach(&img);
    let sb = Standby::start(&env, Some(TOKEN));
    let cli = sb.cli();
    let dev = lo.dev.to_str().unwrap();

    let out = cli.run(&["bench", "--disk", dev, "--seconds", "1", "--output", "json"]);
    out.ok();
    let j = out.json();
    assert_eq!(j["disk"]["size_bytes"], SIZE);
    let read = rate(&j["disk"]["read"]["bytes_per_second"], "disk read");
    let hash = rate(&j["cpu"]["blake3_per_core"]["bytes_per_second"], "blake3");
    let zstd = rate(&j["cpu"]["zstd1_per_core"]["bytes_per_second"], "zstd");
    let ratio = j["cpu"]["zstd1_ratio"].as_f64().unwrap();
    assert_eq!(j["cpu"]["sample"], "disk");
    // The mixed image is about 30% zero chunks: only the others cost CPU, link and store.
    let data = j["cpu"]["data_fraction"].as_f64().unwrap();
    assert!((0.5..0.9).contains(&data), "share of data chunks on the mixed image: {data}");
    assert_eq!(j["standby"]["same_host"], true, "{j}");
    // The mixed image: about 30% zero and 30% text, so zstd shrinks it well.
    assert!(ratio > 1.3, "zstd ratio on the mixed image: {ratio}");
    let link = rate(&j["standby"]["link"]["bytes_per_second"], "link");
    let store = rate(&j["standby"]["store"]["bytes_per_second"], "store");
    assert!(j["standby"]["round_trip_ms"].as_f64().unwrap() > 0.0);
    check_estimates(&j, SIZE, true);
    assert!(!sb.data_dir.read_dir().unwrap().any(|e| e.unwrap().file_name().to_string_lossy().starts_with("bench-")));
    step(format!(
        "disk {:.0} MiB/s, blake3 {:.0} MiB/s/core, zstd:1 {:.0} MiB/s/core (ratio {ratio:.2}), link {:.0} MiB/s, \
         store {:.0} MiB/s; bound off: {}, zstd:1: {}",
        read / MIB as f64,
        hash / MIB as f64,
        zstd / MIB as f64,
        link / MIB as f64,
        store / MIB as f64,
        j["estimates"][0]["bound"],
        j["estimates"][1]["bound"]
    ));

    // The text report names the bound and the estimate; --size overrides the disk's size.
    let out = cli.run(&["bench", "--disk", dev, "--seconds", "0.3", "--size", "2TiB"]);
    out.ok();
    assert!(out.stdout.contains("Estimates for a disk of 2.0 TiB"), "{}", out.stdout);
    assert!(out.stdout.contains("bound by the"), "{}", out.stdout);
    println!("{}", out.stdout);

    // --local: no standby; a standby that cannot be reached is said, not fatal.
    let out = cli.run(&["bench", "--disk", dev, "--seconds", "0.2", "--local", "--output", "json"]);
    out.ok();
    let j = out.json();
    assert!(j["standby"].is_null() && j["standby_not_measured"].as_str().unwrap().contains("--local"), "{j}");
    check_estimates(&j, SIZE, false);
    let away = drpair_e2e::Cli::new("https://127.0.0.1:9", Some(TOKEN)).with_ca(sb.ca_file());
    let out = away.run(&["bench", "--seconds", "0.2", "--output", "json"]);
    out.ok();
    let j = out.json();
    assert!(j["disk"].is_null() && j["cpu"]["sample"] == "synthetic", "{j}");
    assert!(j["standby_not_measured"].as_str().unwrap().contains("could not be measured"), "{j}");
    step(format!("--local and an unreachable standby: {}", j["standby_not_measured"]));

    // Bad input.
    let out = cli.run(&["bench", "--disk", "/no/such/disk", "--seconds", "0.2"]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("cannot open disk /no/such/disk"), "{}", out.stderr);
    for (flag, value, words) in [("--size", "12parsecs", "unknown unit"), ("--seconds", "0", "between 0.1 and 600")] {
        let out = cli.run(&["bench", flag, value]);
        assert_eq!(out.code, 2, "{flag} {value}: {}", out.stderr);
        assert!(out.stderr.contains(words), "{flag} {value}: {}", out.stderr);
    }
    step("bad input: a missing disk, a size and a duration that are not ones");
}
