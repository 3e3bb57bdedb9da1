//! `drpair bench`: measures, on the machine it runs on, what bounds replication — a disk's
//! O_DIRECT read rate, BLAKE3 and zstd per core, and (unless `--local`) the link to the standby
//! (round trip, upload rate) and the standby's store write rate — then says which of them
//! bounds an initial sync and the change rate replication keeps up with, with and without
//! compression (`model.rs` states the model). As `proxmox-backup-client benchmark` does for PBS.

mod measure;
mod model;

use crate::client::{CliError, Client};
use crate::output::{self, OutputFormat, format_duration, format_rate, format_size};
use clap::Args;
use measure::Rate;
use model::{Estimate, Inputs};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Most bytes sent to measure the link.
const LINK_MAX: u64 = 2 << 30;
/// Bytes the standby writes to measure its store.
const STORE_BYTES: u64 = 256 << 20;

#[derive(Debug, Args)]
#[command(
    about = "Measure what bounds replication here, and estimate an initial sync",
    long_about = "Measure what bounds replication on this machine and, unless --local, over the link to \
        the standby: the disk's sequential O_DIRECT read rate (--disk), BLAKE3 and zstd level 1 on one \
        core (over 64 MiB of chunks taken across the disk, or synthetic half-random half-text data without --disk), \
        the round trip and upload rate to the standby (POST /api/v1/bench/sink, over the API's HTTPS), \
        and the standby's store write rate (POST /api/v1/bench/store: 256 MiB written into a scratch \
        store beside the real one, then removed). Then prints, for compression off and zstd:1, the rate \
        each resource allows, which one bounds the initial sync, its time for the disk's size (or \
        --size), and the change rate replication keeps up with.\n\n\
        Run it on the protected server (the agent's side), with the standby's address and an \
        operator token as for any drpair command. Each measurement runs for --seconds.",
    after_help = "Examples:\n  drpair bench --disk /dev/sda\n  drpair bench --disk /dev/vg0/db --size 2TiB --output json\n  \
        drpair bench --local --seconds 1"
)]
pub struct BenchArgs {
    /// A disk (block device or image file) to read with O_DIRECT; without it only the CPU and the
    /// standby are measured
    #[arg(long, value_name = "PATH")]
    pub disk: Option<PathBuf>,
    /// The size to estimate the initial sync for (default: the disk's), e.g. 500GiB, 2TiB
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub size: Option<u64>,
    /// How long each measurement runs
    #[arg(long, value_name = "SECONDS", default_value_t = 3.0, value_parser = parse_seconds)]
    pub seconds: f64,
    /// Measure this machine only, not the link or the standby
    #[arg(long)]
    pub local: bool,
}

/// A size like `4096`, `64MiB`, `2TiB`, `1.5TB`.
pub(crate) fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{text}' is not a size like 500GiB or 2TiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024f64.powi(2),
        "g" | "gib" => 1024f64.powi(3),
        "t" | "tib" => 1024f64.powi(4),
        "p" | "pib" => 1024f64.powi(5),
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "pb" => 1e15,
        u => return Err(format!("'{text}': unknown unit '{u}' (use B, KiB, MiB, GiB, TiB, PiB or KB … PB)")),
    };
    let bytes = n * mult;
    if !(1.0..=f64::from(u32::MAX) * 1024f64.powi(4)).contains(&bytes) {
        return Err(format!("'{text}' is not a disk size"));
    }
    Ok(bytes as u64)
}

fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if (0.1..=600.0).contains(&s) => Ok(s),
        _ => Err(format!("'{text}': give seconds between 0.1 and 600")),
    }
}

/// The disk part of the report.
#[derive(Debug, Serialize)]
struct DiskBench {
    path: PathBuf,
    size_bytes: u64,
    read: Rate,
}

/// One core's CPU rates.
#[derive(Debug, Serialize)]
struct CpuBench {
    cores: usize,
    /// `disk` (64 MiB of chunks taken across the disk) or `synthetic`.
    sample: &'static str,
    blake3_per_core: Rate,
    zstd1_per_core: Rate,
    /// Bytes in / bytes out of zstd level 1 on the sample.
    zstd1_ratio: f64,
    /// zstd's decompression of what level 1 made of the sample, per byte of the sample.
    unzstd1_per_core: Rate,
    /// Share of the sampled chunks that hold data (the rates above are over those only).
    data_fraction: f64,
}

/// The link and the standby.
#[derive(Debug, Serialize)]
struct StandbyBench {
    server: String,
    /// The standby runs on this machine: its work and the agent's share the cores.
    same_host: bool,
    round_trip_ms: f64,
    link: Measured,
    store: Measured,
}

/// A rate the standby measured (`/api/v1/bench/sink`, `/api/v1/bench/store`).
#[derive(Debug, Serialize, Deserialize)]
struct Measured {
    bytes: u64,
    seconds: f64,
    bytes_per_second: f64,
}

/// `drpair bench --output json`.
#[derive(Debug, Serialize)]
struct BenchReport {
    disk: Option<DiskBench>,
    cpu: CpuBench,
    standby: Option<StandbyBench>,
    /// Why the standby was not measured (`--local`, or its error).
    standby_not_measured: Option<String>,
    /// The size the estimates are for.
    size_bytes: Option<u64>,
    estimates: Vec<Estimate>,
    /// The faster of the two for the initial sync.
    best_compression: &'static str,
}

/// Incompressible bytes for the upload, sent until `budget` or `max` bytes.
struct Upload {
    block: Vec<u8>,
    sent: u64,
    max: u64,
    start: Instant,
    budget: Duration,
}

impl Read for Upload {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= self.max || self.start.elapsed() >= self.budget {
            return Ok(0);
        }
        let at = (self.sent % self.block.len() as u64) as usize;
        let n = buf.len().min(self.block.len() - at).min((self.max - self.sent) as usize);
        buf[..n].copy_from_slice(&self.block[at..at + n]);
        self.sent += n as u64;
        Ok(n)
    }
}

fn measure_standby(client: &Client, budget: Duration) -> Result<StandbyBench, CliError> {
    let mut trips: Vec<Duration> = (0..10).map(|_| client.round_trip()).collect::<Result<_, _>>()?;
    trips.sort();
    let mut block = measure::synthetic_sample();
    block.truncate(4 << 20);
    // Random bytes only: TLS does not compress, but keep the upload honest anyway.
    for (i, b) in block.iter_mut().enumerate() {
        *b ^= (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes()[7];
    }
    let mut upload = Upload { block, sent: 0, max: LINK_MAX, start: Instant::now(), budget };
    let (_, link): (_, Measured) =
        client.post_stream("/api/v1/bench/sink", &mut upload, budget + Duration::from_secs(60))?;
    let (_, _, store): (_, _, Measured) = client.post_json(
        "/api/v1/bench/store",
        &serde_json::json!({ "bytes": STORE_BYTES }),
        Duration::from_secs(600),
    )?;
    let same_host = measure::is_this_host(&client.host());
    Ok(StandbyBench {
        server: client.url(""),
        same_host,
        round_trip_ms: trips[trips.len() / 2].as_secs_f64() * 1e3,
        link,
        store,
    })
}

pub fn run(client: Option<&Client>, output: OutputFormat, args: &BenchArgs) -> Result<(), CliError> {
    let budget = Duration::from_secs_f64(args.seconds);
    let say = |what: &str| {
        if output == OutputFormat::Text {
            eprintln!("measuring {what} ({:.1} s)…", args.seconds);
        }
    };
    let (disk, sample) = match &args.disk {
        Some(path) => {
            say(&format!("{}: sequential O_DIRECT reads", path.display()));
            let size =
                measure::size_of(path).map_err(|e| CliError::io(format!("cannot open disk {}", path.display()), e))?;
            let (read, sample) = measure::disk_read(path, budget)
                .map_err(|e| CliError::io(format!("cannot read {} with O_DIRECT", path.display()), e))?;
            if read.bytes == 0 {
                return Err(CliError::Failed(format!("disk {} is empty: nothing to measure", path.display())));
            }
            (Some(DiskBench { path: path.clone(), size_bytes: size, read }), sample)
        }
        None => (None, measure::synthetic_sample()),
    };
    let data_fraction = if disk.is_some() { measure::data_fraction(&sample) } else { 1.0 };
    let sample = measure::data_chunks(&sample);
    say("BLAKE3 on one core");
    let blake3 = measure::blake3_rate(&sample, budget);
    say("zstd level 1 on one core");
    let (zstd, ratio) = measure::zstd_rate(&sample, 1, budget);
    say("zstd decompression on one core (the standby's)");
    let unzstd = measure::unzstd_rate(&sample, budget);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let cpu = CpuBench {
        cores,
        sample: if disk.is_some() { "disk" } else { "synthetic" },
        blake3_per_core: blake3,
        zstd1_per_core: zstd,
        zstd1_ratio: ratio,
        unzstd1_per_core: unzstd,
        data_fraction,
    };
    let (standby, standby_not_measured) = match (client, args.local) {
        (_, true) | (None, _) => (None, Some("--local: the link and the standby were not measured".to_string())),
        (Some(c), false) => {
            say(&format!("the link to {} and its store", c.url("")));
            match measure_standby(c, budget) {
                Ok(s) => (Some(s), None),
                Err(e) => (None, Some(format!("the standby could not be measured: {e}"))),
            }
        }
    };
    let inputs = Inputs {
        disk: disk.as_ref().map(|d| d.read.bytes_per_second),
        hash_per_core: cpu.blake3_per_core.bytes_per_second,
        zstd_per_core: cpu.zstd1_per_core.bytes_per_second,
        unzstd_per_core: cpu.unzstd1_per_core.bytes_per_second,
        zstd_ratio: cpu.zstd1_ratio,
        cores,
        link: standby.as_ref().map(|s| s.link.bytes_per_second),
        store: standby.as_ref().map(|s| s.store.bytes_per_second),
        data_fraction,
        same_host: standby.as_ref().is_some_and(|s| s.same_host),
    };
    let size = args.size.or(disk.as_ref().map(|d| d.size_bytes));
    let estimates = vec![model::estimate(&inputs, false, size), model::estimate(&inputs, true, size)];
    let best = if estimates[1].initial_sync_bytes_per_second > estimates[0].initial_sync_bytes_per_second {
        "zstd:1"
    } else {
        "off"
    };
    let report =
        BenchReport { disk, cpu, standby, standby_not_measured, size_bytes: size, estimates, best_compression: best };
    output::answer(output, &report, || text(&report));
    Ok(())
}

fn text(r: &BenchReport) -> String {
    let mut out = String::from("Measured on this machine:\n");
    let line = |out: &mut String, k: &str, v: String| out.push_str(&format!("  {k:<34} {v}\n"));
    if let Some(d) = &r.disk {
        line(
            &mut out,
            &format!("Disk {} (O_DIRECT)", d.path.display()),
            format!(
                "{}  ({} in {:.2} s; disk {})",
                format_rate(d.read.bytes_per_second),
                format_size(d.read.bytes),
                d.read.seconds,
                format_size(d.size_bytes)
            ),
        );
    }
    let c = &r.cpu;
    line(&mut out, "BLAKE3, one core", format_rate(c.blake3_per_core.bytes_per_second));
    line(
        &mut out,
        "zstd level 1, one core",
        format!(
            "{}  (ratio {:.2}× on {} data)",
            format_rate(c.zstd1_per_core.bytes_per_second),
            c.zstd1_ratio,
            c.sample
        ),
    );
    line(&mut out, "zstd decompression, one core", format_rate(c.unzstd1_per_core.bytes_per_second));
    line(&mut out, "Cores (one agent worker each)", c.cores.to_string());
    if r.disk.is_some() {
        line(&mut out, "Chunks holding data (sampled)", format!("{:.0}%", c.data_fraction * 100.0));
    }
    match &r.standby {
        Some(s) => {
            out.push_str(&format!("Standby {}:\n", s.server));
            line(&mut out, "Round trip", format!("{:.2} ms", s.round_trip_ms));
            line(&mut out, "Link (upload over HTTPS)", format_rate(s.link.bytes_per_second));
            line(&mut out, "Store (check and write, scratch)", format_rate(s.store.bytes_per_second));
            if s.same_host {
                line(&mut out, "On this machine", "yes: its work shares these cores (the host limit)".into());
            }
        }
        None => {
            out.push_str(&format!("Standby: not measured ({})\n", r.standby_not_measured.as_deref().unwrap_or("-")))
        }
    }
    out.push_str(&match r.size_bytes {
        Some(s) => format!("Estimates for a disk of {}:\n", format_size(s)),
        None => "Estimates (give --disk or --size for the initial sync's time):\n".into(),
    });
    for e in &r.estimates {
        let limits: Vec<String> =
            e.limits.iter().map(|l| format!("{} {}", l.resource, format_rate(l.bytes_per_second))).collect();
        let time = e.initial_sync_seconds.map_or(String::new(), |t| format!(" ≈ {}", format_duration(t.ceil() as u64)));
        out.push_str(&format!(
            "  compression {:<7} initial sync {}{time}, bound by the {}; keeps up with {} of changes (bound by the {})\n      limits: {}\n",
            e.compression,
            format_rate(e.initial_sync_bytes_per_second),
            e.bound,
            format_rate(e.sustainable_change_bytes_per_second),
            e.sustainable_bound,
            limits.join(", ")
        ));
    }
    out.push_str(&format!("  the faster here: compression {}\n", r.best_compression));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("1.5 TB"), Ok(1_500_000_000_000));
        for bad in ["", "x", "12 parsecs", "0", "-1GiB"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert!(parse_seconds("0").is_err() && parse_seconds("nan").is_err() && parse_seconds("1").is_ok());
    }
}
