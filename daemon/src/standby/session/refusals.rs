//! Refusals before authentication: counted (`drpair_link_refused_total{reason}`) and logged at
//! most once every 10 s with the number refused since the last line, never written into a
//! pair's history (anyone who reaches the port could push the real failures out of it).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

static LAST_LOG_MS: AtomicU64 = AtomicU64::new(0);
static SINCE_LOG: AtomicU64 = AtomicU64::new(0);

/// A connection refused before its peer was authenticated: counted
/// (`drpair_link_refused_total{reason}`), and logged at most once every 10 s with the number
/// refused since the last line.
pub fn refused_unauthenticated(peer: SocketAddr, reason: &'static str, message: &str) {
    metrics::counter!("drpair_link_refused_total", "reason" => reason).increment(1);
    let n = SINCE_LOG.fetch_add(1, Ordering::Relaxed) + 1;
    let now = crate::timefmt::now_ms();
    let last = LAST_LOG_MS.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 10_000
        && LAST_LOG_MS.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        let n = SINCE_LOG.swap(0, Ordering::Relaxed).max(n.min(1));
        tracing::warn!(%peer, refused_since_last_line = n, "link connection refused before authentication: {message}");
    }
}
