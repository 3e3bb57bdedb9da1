//! What bounds replication (`drpair bench`): `POST /api/v1/bench/sink` counts and discards a
//! request body, for the network path and TLS from a client to the standby;
//! `POST /api/v1/bench/store` measures the store's write rate on a scratch store
//! ([`crate::standby::bench`]). Both need the operator role. Parameters are checked first
//! (400, naming the parameter), then whether a store benchmark may run now (409).

use super::{ApiFailure, ApiResult, AppState};
use crate::standby::bench::{self, BenchError};
use crate::standby::resources::human;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use drpair_types::{
    BENCH_SINK_MAX_BYTES, BENCH_STORE_DEFAULT_BYTES, BENCH_STORE_MAX_BYTES, BENCH_STORE_MIN_BYTES, BenchSinkResult,
    BenchStoreResult, ErrorCode,
};
use futures_util::StreamExt;
use std::time::Instant;

/// The largest body of a store benchmark request.
const STORE_BODY_MAX: usize = 64 << 10;

impl From<BenchError> for ApiFailure {
    fn from(e: BenchError) -> Self {
        match e {
            BenchError::Busy(m) => ApiFailure::new(ErrorCode::Busy, m),
            BenchError::Space(m) => ApiFailure::new(ErrorCode::InsufficientSpace, m),
            BenchError::Failed(m) => ApiFailure::new(ErrorCode::Internal, m),
        }
    }
}

fn rate(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { bytes as f64 / seconds } else { 0.0 }
}

/// `POST /api/v1/bench/sink`: reads the body as it arrives (any content type, no limit but
/// [`BENCH_SINK_MAX_BYTES`]), counts and discards it, and answers how long it took from its
/// first bytes to its last.
pub async fn sink(headers: HeaderMap, body: Body) -> ApiResult<Json<BenchSinkResult>> {
    let too_large = || {
        ApiFailure::param(
            "body",
            format!("a benchmark body is at most {BENCH_SINK_MAX_BYTES} bytes ({})", human(BENCH_SINK_MAX_BYTES)),
        )
    };
    let announced = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > BENCH_SINK_MAX_BYTES) {
        return Err(too_large());
    }
    let mut stream = body.into_data_stream();
    let (mut bytes, mut first, mut last) = (0u64, None, None);
    while let Some(data) = stream.next().await {
        let data = data.map_err(|e| ApiFailure::param("body", format!("request body: {e}")))?;
        if data.is_empty() {
            continue;
        }
        let now = Instant::now();
        first.get_or_insert(now);
        last = Some(now);
        bytes += data.len() as u64;
        if bytes > BENCH_SINK_MAX_BYTES {
            return Err(too_large());
        }
    }
    let seconds = first.zip(last).map_or(0.0, |(a, b)| (b - a).as_secs_f64());
    let bytes_per_second = rate(bytes, seconds);
    tracing::info!(bytes, seconds, bytes_per_second, "network benchmark: received {} in {seconds:.2} s", human(bytes));
    Ok(Json(BenchSinkResult { bytes, seconds, bytes_per_second }))
}

/// `POST /api/v1/bench/store` (`{"bytes": N}`, or an empty body): writes N bytes of chunks to a
/// scratch store and answers the rate. One at a time; refused when the data filesystem lacks
/// twice N and 1 GiB.
pub async fn store(State(sb): State<AppState>, body: Body) -> ApiResult<Json<BenchStoreResult>> {
    let raw = axum::body::to_bytes(body, STORE_BODY_MAX)
        .await
        .map_err(|e| ApiFailure::param("body", format!("request body: {e}")))?;
    let bytes = store_bytes(&raw)?;
    let claim = bench::claim()?;
    let data_dir = sb.data_dir.clone();
    let result = tokio::task::spawn_blocking(move || bench::run(&data_dir, bytes, claim))
        .await
        .map_err(ApiFailure::internal)??;
    Ok(Json(result))
}

/// The bytes a store benchmark request asks for: `bytes`, or the default when the body is
/// empty or does not name it.
fn store_bytes(raw: &[u8]) -> ApiResult<u64> {
    if raw.trim_ascii().is_empty() {
        return Ok(BENCH_STORE_DEFAULT_BYTES);
    }
    let v: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| ApiFailure::param("body", format!("request body: {e}")))?;
    let Some(fields) = v.as_object() else {
        return Err(ApiFailure::param("body", "request body: expected a JSON object"));
    };
    if let Some(k) = fields.keys().find(|k| *k != "bytes") {
        return Err(ApiFailure::param("body", format!("unknown field '{k}': the store benchmark takes only 'bytes'")));
    }
    let bytes = match fields.get("bytes") {
        None | Some(serde_json::Value::Null) => BENCH_STORE_DEFAULT_BYTES,
        Some(b) => b
            .as_u64()
            .ok_or_else(|| ApiFailure::param("bytes", format!("bytes must be a whole number of bytes, not {b}")))?,
    };
    if !(BENCH_STORE_MIN_BYTES..=BENCH_STORE_MAX_BYTES).contains(&bytes) {
        return Err(ApiFailure::param(
            "bytes",
            format!(
                "bytes must be between {BENCH_STORE_MIN_BYTES} ({}) and {BENCH_STORE_MAX_BYTES} ({}), not {bytes}",
                human(BENCH_STORE_MIN_BYTES),
                human(BENCH_STORE_MAX_BYTES)
            ),
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_bodies() {
        let param = |raw: &str| store_bytes(raw.as_bytes()).unwrap_err().0.parameter;
        assert_eq!(store_bytes(b"").unwrap(), BENCH_STORE_DEFAULT_BYTES);
        assert_eq!(store_bytes(b" {} ").unwrap(), BENCH_STORE_DEFAULT_BYTES);
        assert_eq!(store_bytes(br#"{"bytes": null}"#).unwrap(), BENCH_STORE_DEFAULT_BYTES);
        assert_eq!(store_bytes(br#"{"bytes": 16777216}"#).unwrap(), 16 << 20);
        assert_eq!(store_bytes(br#"{"bytes": 8589934592}"#).unwrap(), 8 << 30);
        for bad in [r#"{"bytes": 16777215}"#, r#"{"bytes": 8589934593}"#, r#"{"bytes": -1}"#, r#"{"bytes": "1G"}"#] {
            assert_eq!(param(bad).as_deref(), Some("bytes"), "{bad}");
        }
        for bad in ["{", "[1]", "7", r#"{"bytes": 16777216, "x": 1}"#] {
            assert_eq!(param(bad).as_deref(), Some("body"), "{bad}");
        }
    }
}
