//! Bytes on the wire: a TCP stream wrapped below TLS ([`Metered`]) counts every byte each
//! way, knows when the last byte arrived, and paces its reads through token buckets
//! ([`Bucket`]): the standby's per-pair and standby-wide bandwidth limits. Pacing the
//! receiving side holds the sender back through TCP's own flow control, so a limit changes
//! within one refill, with no message to the agent and no reconnect.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest read taken in one go while a limit is in force (keeps the pacing fine-grained).
const PACED_READ: usize = 16 << 10;

/// A token bucket in bytes per second; a rate of 0 means unlimited. The rate can change at
/// any time; a read already paid for is not charged again.
#[derive(Debug)]
pub struct Bucket {
    rate: AtomicU64,
    /// (tokens, when they were counted): tokens go negative when a read overdraws them, and
    /// the reader then waits until they are back at zero.
    state: Mutex<(f64, Instant)>,
}

impl Default for Bucket {
    fn default() -> Self {
        Self { rate: AtomicU64::new(0), state: Mutex::new((0.0, Instant::now())) }
    }
}

impl Bucket {
    /// The rate in force (0: unlimited).
    pub fn rate(&self) -> u64 {
        self.rate.load(Ordering::Relaxed)
    }

    /// Sets the rate (0: unlimited). Effective for the next read.
    pub fn set_rate(&self, bytes_per_sec: u64) {
        if self.rate.swap(bytes_per_sec, Ordering::Relaxed) != bytes_per_sec {
            // A new rate starts from an empty bucket: no debt and no burst carried over.
            *self.state.lock().expect("bucket") = (0.0, Instant::now());
        }
    }

    /// Charges `n` bytes read now; returns how long the reader must wait before reading again.
    pub fn charge(&self, n: usize, now: Instant) -> Duration {
        let rate = self.rate();
        if rate == 0 {
            return Duration::ZERO;
        }
        let rate = rate as f64;
        // A tenth of a second of burst (at least one paced read): smooth, and exact over time.
        let burst = (rate / 10.0).max(PACED_READ as f64);
        let mut s = self.state.lock().expect("bucket");
        let refill = now.saturating_duration_since(s.1).as_secs_f64() * rate;
        s.0 = (s.0 + refill).min(burst) - n as f64;
        s.1 = now;
        if s.0 >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-s.0 / rate) }
    }
}

/// What one connection's stream has seen. Shared with status (bytes, last byte) and with
/// the reader that watches for a stalled link.
#[derive(Debug)]
pub struct LinkMeter {
    started: Instant,
    /// Bytes read from the peer (on the wire: TLS records included).
    pub received: AtomicU64,
    /// Bytes written to the peer.
    pub sent: AtomicU64,
    /// When the last byte arrived, in ms since `started` (0: none yet).
    last_byte_ms: AtomicU64,
    /// Buckets every read is charged to (the pair's, the standby's); none on the agent.
    limits: Mutex<Vec<Arc<Bucket>>>,
}

impl Default for LinkMeter {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            last_byte_ms: AtomicU64::new(0),
            limits: Mutex::new(Vec::new()),
        }
    }
}

impl LinkMeter {
    /// Paces every later read through `buckets` (set once the peer is known).
    pub fn limit_by(&self, buckets: Vec<Arc<Bucket>>) {
        *self.limits.lock().expect("limits") = buckets;
    }

    /// When the last byte arrived (the connection's start if none has; the end of a pacing
    /// pause, maybe in the future, while a limit holds reads back).
    pub fn last_byte(&self) -> Instant {
        self.started + Duration::from_millis(self.last_byte_ms.load(Ordering::Relaxed))
    }

    fn got(&self, n: usize) -> Duration {
        let now = Instant::now();
        self.received.fetch_add(n as u64, Ordering::Relaxed);
        let wait = {
            let limits = self.limits.lock().expect("limits");
            limits.iter().map(|b| b.charge(n, now)).max().unwrap_or_default()
        };
        // A read paced by a limit counts as a byte arriving when the pause ends: time the
        // standby itself holds the link back is never taken for a stall.
        let ms = (now + wait).duration_since(self.started).as_millis() as u64;
        self.last_byte_ms.store(ms.max(1), Ordering::Relaxed);
        wait
    }

    fn paced(&self) -> bool {
        self.limits.lock().expect("limits").iter().any(|b| b.rate() > 0)
    }
}

/// A stream that counts what crosses it and paces its reads (see [`LinkMeter`]).
pub struct Metered<S> {
    inner: S,
    meter: Arc<LinkMeter>,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> Metered<S> {
    pub fn new(inner: S, meter: Arc<LinkMeter>) -> Self {
        Self { inner, meter, pause: None }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Metered<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        if let Some(p) = me.pause.as_mut() {
            if p.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            me.pause = None;
        }
        let before = buf.filled().len();
        let r = if me.meter.paced() && buf.remaining() > PACED_READ {
            // Read into a bounded window of the caller's buffer.
            let mut window = ReadBuf::new(buf.initialize_unfilled_to(PACED_READ));
            let r = Pin::new(&mut me.inner).poll_read(cx, &mut window);
            let n = window.filled().len();
            buf.advance(n);
            r
        } else {
            Pin::new(&mut me.inner).poll_read(cx, buf)
        };
        if let Poll::Ready(Ok(())) = &r {
            let n = buf.filled().len() - before;
            if n > 0 {
                let wait = me.meter.got(n);
                if !wait.is_zero() {
                    me.pause = Some(Box::pin(tokio::time::sleep(wait)));
                }
            }
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Metered<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = &r {
            self.meter.sent.fetch_add(*n as u64, Ordering::Relaxed);
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unlimited_never_waits() {
        let b = Bucket::default();
        assert_eq!(b.charge(100 << 20, Instant::now()), Duration::ZERO);
    }

    #[test]
    fn a_rate_is_held_over_time() {
        let b = Bucket::default();
        b.set_rate(1 << 20);
        let mut now = Instant::now();
        let mut waited = Duration::ZERO;
        // 8 MiB in 16 KiB reads at 1 MiB/s: about 8 s of waiting in all.
        for _ in 0..512 {
            let w = b.charge(16 << 10, now);
            waited += w;
            now += w;
        }
        let secs = waited.as_secs_f64();
        assert!((7.7..8.1).contains(&secs), "8 MiB at 1 MiB/s waited {secs}s");
    }

    #[test]
    fn a_new_rate_forgets_the_old_debt() {
        let b = Bucket::default();
        b.set_rate(1024);
        let now = Instant::now();
        assert!(b.charge(1 << 20, now) > Duration::from_secs(100));
        b.set_rate(0);
        assert_eq!(b.charge(1 << 20, now), Duration::ZERO);
        b.set_rate(1 << 30);
        assert!(b.charge(1 << 10, now) < Duration::from_millis(1));
    }
}
