//! From the measured rates to what bounds replication, and estimates.
//!
//! The model: every byte of the disk is read once (a full pass); each worker hashes a chunk
//! with BLAKE3 and, with compression, compresses it with zstd, the agent running one worker
//! per core; the link carries the compressed bytes; the standby writes them into its store.
//! So, in bytes of disk per second:
//!
//! - disk:  the sequential O_DIRECT read rate;
//! - cpu:   cores × H without compression, cores / (1/H + 1/Z) with it (H, Z: one core's BLAKE3
//!   and zstd rates);
//! - link:  the upload rate × the compression ratio;
//! - store: the store's write rate × the compression ratio.
//!
//! Only data chunks cost CPU, link and store: with a share *f* of the disk's chunks holding
//! data (the rest all zero: read, then sent as a flag), those three limits are divided by *f*
//! in bytes of disk. The store's rate is the standby's whole cost per byte after the link: it
//! checks each chunk's BLAKE3 and writes frames with their version entries, as ingest does.
//!
//! **One host.** When the standby runs on the machine measured (a loopback address, or one of
//! its own), the agent's CPU work, TLS on both ends of the link and the standby's store all
//! take turns on the same cores, so their times add up:
//! `host = 1 / (1/cpu + 1/link + 1/store)` is a fifth limit, and it is the one that binds.
//!
//! The initial sync runs at the smallest limit; the sustainable change rate (what
//! replication keeps up with once synced) at the smallest of those but the disk, since only
//! changed chunks are read (scattered small reads are slower than a sequential pass: the disk
//! is then a bound this benchmark does not measure).
//! With compression the standby also decompresses each chunk: `unzstd` = cores × one core's
//! zstd decompression rate is a limit of its own (and a term of the host's sum).

use serde::Serialize;

/// The measured rates, in bytes per second.
#[derive(Debug, Clone, Copy)]
pub struct Inputs {
    pub disk: Option<f64>,
    pub hash_per_core: f64,
    pub zstd_per_core: f64,
    /// zstd's decompression on one core, raw bytes per second (0: nothing compressed).
    pub unzstd_per_core: f64,
    pub zstd_ratio: f64,
    pub cores: usize,
    pub link: Option<f64>,
    pub store: Option<f64>,
    /// Share of the disk's chunks that hold data (0..=1].
    pub data_fraction: f64,
    /// The standby runs on this machine.
    pub same_host: bool,
}

/// One resource's limit, in bytes of disk per second.
#[derive(Debug, Clone, Serialize)]
pub struct Limit {
    pub resource: &'static str,
    pub bytes_per_second: f64,
}

/// What replication would do with one compression setting.
#[derive(Debug, Clone, Serialize)]
pub struct Estimate {
    /// `off` or `zstd:1`.
    pub compression: &'static str,
    /// Each resource's limit (those measured).
    pub limits: Vec<Limit>,
    /// The initial sync's rate (bytes of disk per second) and the resource that sets it.
    pub initial_sync_bytes_per_second: f64,
    pub bound: &'static str,
    /// `size` / the rate, when the disk's size is known.
    pub initial_sync_seconds: Option<f64>,
    /// Bytes of change per second replication keeps up with.
    pub sustainable_change_bytes_per_second: f64,
    pub sustainable_bound: &'static str,
}

fn smallest<'a>(limits: impl Iterator<Item = &'a Limit>) -> (&'static str, f64) {
    limits.fold(("nothing", f64::INFINITY), |best, l| {
        if l.bytes_per_second < best.1 { (l.resource, l.bytes_per_second) } else { best }
    })
}

pub fn estimate(i: &Inputs, compress: bool, size: Option<u64>) -> Estimate {
    let cores = i.cores.max(1) as f64;
    let (cpu, wire) = if compress {
        (cores / (1.0 / i.hash_per_core + 1.0 / i.zstd_per_core), i.zstd_ratio.max(1.0))
    } else {
        (cores * i.hash_per_core, 1.0)
    };
    // Bytes of disk per byte of data.
    let per_data = 1.0 / i.data_fraction.clamp(1e-3, 1.0);
    let mut limits = vec![];
    if let Some(d) = i.disk {
        limits.push(Limit { resource: "disk", bytes_per_second: d });
    }
    limits.push(Limit { resource: "cpu", bytes_per_second: cpu * per_data });
    if let Some(l) = i.link {
        limits.push(Limit { resource: "link", bytes_per_second: l * wire * per_data });
    }
    if let Some(s) = i.store {
        limits.push(Limit { resource: "store", bytes_per_second: s * wire * per_data });
    }
    if compress && i.unzstd_per_core > 0.0 {
        // The standby decompresses every compressed chunk before checking it, on as many
        // cores as this machine has (its own are not known from here).
        limits.push(Limit { resource: "unzstd", bytes_per_second: cores * i.unzstd_per_core * per_data });
    }
    if i.same_host {
        let shared: f64 = limits.iter().filter(|l| l.resource != "disk").map(|l| 1.0 / l.bytes_per_second).sum();
        limits.push(Limit { resource: "host", bytes_per_second: 1.0 / shared });
    }
    let (bound, rate) = smallest(limits.iter());
    let (sustainable_bound, sustainable) = smallest(limits.iter().filter(|l| l.resource != "disk"));
    Estimate {
        compression: if compress { "zstd:1" } else { "off" },
        initial_sync_seconds: size.map(|s| s as f64 / rate),
        limits,
        initial_sync_bytes_per_second: rate,
        bound,
        sustainable_change_bytes_per_second: sustainable,
        sustainable_bound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: f64 = 1048576.0;

    fn inputs() -> Inputs {
        Inputs {
            disk: Some(1000.0 * MIB),
            hash_per_core: 1000.0 * MIB,
            zstd_per_core: 250.0 * MIB,
            unzstd_per_core: 0.0,
            zstd_ratio: 2.0,
            cores: 2,
            link: Some(100.0 * MIB),
            store: Some(500.0 * MIB),
            data_fraction: 1.0,
            same_host: false,
        }
    }

    #[test]
    fn one_host_adds_the_shared_times_and_zeros_cost_only_their_read() {
        let mut i = inputs();
        i.link = Some(1000.0 * MIB);
        i.same_host = true;
        // cpu 2000, link 1000, store 500 MiB/s: 1 / (1/2000 + 1/1000 + 1/500) = 285.7 MiB/s.
        let off = estimate(&i, false, Some(1 << 30));
        assert_eq!(off.bound, "host");
        assert!((off.initial_sync_bytes_per_second / MIB - 2000.0 / 7.0).abs() < 1e-6);
        // Half the chunks zero: the data limits double; the disk's does not.
        i.data_fraction = 0.5;
        let half = estimate(&i, false, None);
        assert!((half.initial_sync_bytes_per_second / MIB - 4000.0 / 7.0).abs() < 1e-6);
        let disk = half.limits.iter().find(|l| l.resource == "disk").unwrap();
        assert!((disk.bytes_per_second / MIB - 1000.0).abs() < 1e-9);
        // Apart, the host limit is not there.
        i.same_host = false;
        assert!(estimate(&i, false, None).limits.iter().all(|l| l.resource != "host"));
    }

    #[test]
    fn a_slow_link_bounds_and_compression_helps() {
        let off = estimate(&inputs(), false, Some(1 << 30));
        assert_eq!((off.bound, off.initial_sync_bytes_per_second), ("link", 100.0 * MIB));
        assert!((off.initial_sync_seconds.unwrap() - 10.24).abs() < 1e-9);
        let on = estimate(&inputs(), true, None);
        // cpu: 2 / (1/1000 + 1/250) = 400 MiB/s; link 100 × 2 = 200 MiB/s.
        assert_eq!((on.bound, on.initial_sync_bytes_per_second), ("link", 200.0 * MIB));
        assert!(on.initial_sync_seconds.is_none());
    }

    #[test]
    fn a_fast_link_leaves_the_disk_or_the_cpu() {
        let mut i = inputs();
        i.link = Some(10_000.0 * MIB);
        i.store = None;
        let off = estimate(&i, false, None);
        assert_eq!(off.bound, "disk");
        assert_eq!(off.sustainable_bound, "cpu");
        let on = estimate(&i, true, None);
        assert_eq!((on.bound, on.initial_sync_bytes_per_second.round()), ("cpu", (400.0 * MIB).round()));
    }
}
