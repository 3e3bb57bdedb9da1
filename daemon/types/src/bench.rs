//! What bounds replication (`drpair bench`): the network path and TLS from a client to the
//! standby (`POST /api/v1/bench/sink`), and the rate at which the standby's store takes chunk
//! bytes (`POST /api/v1/bench/store`).

use serde::{Deserialize, Serialize};

/// The largest body `POST /api/v1/bench/sink` counts (4 GiB); more is refused.
pub const BENCH_SINK_MAX_BYTES: u64 = 4 << 30;
/// Bytes a store benchmark writes when the request names none (256 MiB).
pub const BENCH_STORE_DEFAULT_BYTES: u64 = 256 << 20;
/// The fewest bytes a store benchmark writes (16 MiB).
pub const BENCH_STORE_MIN_BYTES: u64 = 16 << 20;
/// The most bytes a store benchmark writes (8 GiB).
pub const BENCH_STORE_MAX_BYTES: u64 = 8 << 30;
/// The chunk size of a store benchmark (64 KiB, the default chunk size).
pub const BENCH_STORE_CHUNK_SIZE: u32 = 64 << 10;

/// Answer of `POST /api/v1/bench/sink`: the request body, counted and discarded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchSinkResult {
    /// Bytes of the body.
    pub bytes: u64,
    /// From the arrival of the body's first bytes to the arrival of its last.
    pub seconds: f64,
    /// `bytes / seconds` (0 when the body came at once).
    pub bytes_per_second: f64,
}

/// `POST /api/v1/bench/store`. An empty body writes [`BENCH_STORE_DEFAULT_BYTES`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchStoreRequest {
    /// Bytes to write, [`BENCH_STORE_MIN_BYTES`] to [`BENCH_STORE_MAX_BYTES`].
    #[serde(default)]
    pub bytes: Option<u64>,
}

/// Answer of `POST /api/v1/bench/store`: chunks written to a scratch store on the standby's
/// data filesystem, as ingest writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchStoreResult {
    /// Bytes written (chunk bytes; keys and headers not counted).
    pub bytes: u64,
    /// From the first write to the end of the flush that made them durable.
    pub seconds: f64,
    /// `bytes / seconds`.
    pub bytes_per_second: f64,
    /// Bytes of each chunk (the last one may be shorter).
    pub chunk_size: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_request_bodies() {
        assert_eq!(serde_json::from_str::<BenchStoreRequest>("{}").unwrap().bytes, None);
        assert_eq!(serde_json::from_str::<BenchStoreRequest>(r#"{"bytes": 1024}"#).unwrap().bytes, Some(1024));
        assert!(serde_json::from_str::<BenchStoreRequest>(r#"{"byte": 1024}"#).is_err());
        assert!(serde_json::from_str::<BenchStoreRequest>(r#"{"bytes": -1}"#).is_err());
        let r = BenchStoreResult { bytes: 1, seconds: 0.5, bytes_per_second: 2.0, chunk_size: BENCH_STORE_CHUNK_SIZE };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["chunk_size"], 65536);
        assert_eq!(v["bytes_per_second"], 2.0);
    }
}
