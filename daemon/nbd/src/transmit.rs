//! The transmission phase: requests are read in order on the caller's thread; reads go to a
//! pool of worker threads and are answered as each completes (a reply carries its request's
//! handle, so clients with several requests in flight match them up; the protocol lets the
//! server answer in any order); writes, trims, zeroes and flushes run in order on the caller's
//! thread. Replies are written whole under one lock, so two never interleave.
//!
//! Memory is bounded per connection: the read buffers being filled or waiting to be sent
//! hold at most [`MAX_IN_FLIGHT`] bytes (one request of [`MAX_REQUEST`] always fits), and a
//! read's buffer is allocated only when a worker takes it. A failed read is answered with its
//! own error and handle; the other requests in flight are not touched. A worker that panics
//! answers its request with `EIO`. On `DISC` or a hang-up between requests, the reads in
//! flight are answered before the call returns.

use super::proto::{
    CMD_DISC, CMD_FLUSH, CMD_READ, CMD_TRIM, CMD_WRITE, CMD_WRITE_ZEROES, EINVAL, EIO, ENOSPC, EOVERFLOW, EPERM,
    MAX_REQUEST, REQUEST_MAGIC, SIMPLE_REPLY_MAGIC,
};
use super::{Export, NbdError, Stats};
use std::io::{self, Read, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError, mpsc};

/// Bytes of read replies one connection holds at once (being filled or waiting to be sent).
pub const MAX_IN_FLIGHT: u64 = 32 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One request's fixed part.
struct Request {
    cmd: u16,
    handle: u64,
    offset: u64,
    len: u32,
}

/// The next request, or `None` when the client hung up between requests.
fn next_request(r: &mut impl Read) -> Result<Option<Request>, NbdError> {
    let mut magic = [0; 4];
    match r.read_exact(&mut magic) {
        Ok(()) => {}
        Err(x) if x.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(x) => return Err(x.into()),
    }
    let magic = u32::from_be_bytes(magic);
    if magic != REQUEST_MAGIC {
        return Err(NbdError::Protocol(format!("request magic {magic:#x}")));
    }
    let mut h = [0u8; 24];
    r.read_exact(&mut h)?;
    let be64 = |at: usize| {
        u64::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3], h[at + 4], h[at + 5], h[at + 6], h[at + 7]])
    };
    Ok(Some(Request {
        cmd: u16::from_be_bytes([h[2], h[3]]),
        handle: be64(4),
        offset: be64(12),
        len: u32::from_be_bytes([h[20], h[21], h[22], h[23]]),
    }))
}

/// A simple reply's header.
fn header(error: u32, handle: u64) -> [u8; 16] {
    let mut m = [0u8; 16];
    m[..4].copy_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
    m[4..8].copy_from_slice(&error.to_be_bytes());
    m[8..].copy_from_slice(&handle.to_be_bytes());
    m
}

fn errno(e: &io::Error) -> u32 {
    match e.kind() {
        io::ErrorKind::StorageFull => ENOSPC,
        io::ErrorKind::PermissionDenied => EPERM,
        io::ErrorKind::InvalidInput => EINVAL,
        _ => EIO,
    }
}

/// The reply stream, shared by the request loop and the workers. Once a write fails, every
/// later reply fails too (the stream's framing is lost).
struct Replies<W> {
    out: Mutex<(W, Option<io::ErrorKind>)>,
}

impl<W: Write> Replies<W> {
    fn send(&self, msg: &[u8]) -> io::Result<()> {
        let mut g = lock(&self.out);
        let (w, broken) = &mut *g;
        if let Some(kind) = broken {
            return Err(io::Error::new(*kind, "an earlier reply could not be written"));
        }
        let r = w.write_all(msg).and_then(|()| w.flush());
        if let Err(e) = &r {
            *broken = Some(e.kind());
        }
        r
    }

    fn broken(&self) -> Option<io::ErrorKind> {
        lock(&self.out).1
    }
}

/// Bytes of read buffers a connection may hold ([`MAX_IN_FLIGHT`]).
struct Budget {
    used: Mutex<u64>,
    freed: Condvar,
}

/// A share of the budget, given back when dropped (also when a worker unwinds).
struct Held<'a> {
    budget: &'a Budget,
    bytes: u64,
}

impl Budget {
    /// Waits until `bytes` fit (always at once when nothing is held).
    fn take(&self, bytes: u64) -> Held<'_> {
        let mut used = lock(&self.used);
        while *used > 0 && *used + bytes > MAX_IN_FLIGHT {
            used = self.freed.wait(used).unwrap_or_else(PoisonError::into_inner);
        }
        *used += bytes;
        Held { budget: self, bytes }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        *lock(&self.budget.used) -= self.bytes;
        self.budget.freed.notify_all();
    }
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    bytes_read: AtomicU64,
    writes: AtomicU64,
    bytes_written: AtomicU64,
}

/// A read handed to a worker.
struct ReadJob<'a> {
    handle: u64,
    offset: u64,
    len: u32,
    _held: Held<'a>,
}

/// Serves one read: reply header and data in one buffer, sent in one write.
fn serve_read<W: Write>(e: &Export, out: &Replies<W>, n: &Counters, handle: u64, offset: u64, len: u32) {
    let mut msg = vec![0u8; 16 + len as usize];
    let read = catch_unwind(AssertUnwindSafe(|| e.dev.read_at(offset, &mut msg[16..])))
        .unwrap_or_else(|_| Err(io::Error::other("the export's reader panicked")));
    let sent = match read {
        Ok(()) => {
            msg[..16].copy_from_slice(&header(0, handle));
            let r = out.send(&msg);
            if r.is_ok() {
                n.reads.fetch_add(1, Ordering::Relaxed);
                n.bytes_read.fetch_add(u64::from(len), Ordering::Relaxed);
            }
            r
        }
        Err(x) => {
            tracing::warn!(export = %e.name, offset, len, "nbd read failed: {x}");
            out.send(&header(errno(&x), handle))
        }
    };
    if let Err(x) = sent {
        tracing::debug!(export = %e.name, handle, "nbd reply not sent: {x}");
    }
}

/// Serves requests read from `reader` until the client disconnects (`DISC` or a hang-up),
/// replies written to `writer`; `workers` threads serve reads (0: on this thread, in order).
pub fn serve<R: Read, W: Write + Send>(
    reader: &mut R,
    writer: W,
    e: &Export,
    workers: usize,
) -> Result<Stats, NbdError> {
    let out = Replies { out: Mutex::new((writer, None)) };
    let budget = Budget { used: Mutex::new(0), freed: Condvar::new() };
    let n = Counters::default();
    let (tx, rx) = mpsc::sync_channel::<ReadJob<'_>>(workers.max(1));
    let rx = Mutex::new(rx);
    let r = std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let job = lock(&rx).recv();
                    let Ok(j) = job else { break };
                    serve_read(e, &out, &n, j.handle, j.offset, j.len);
                }
            });
        }
        let r = requests(
            reader,
            e,
            &out,
            &n,
            |j: ReadJob<'_>| {
                if workers == 0 {
                    serve_read(e, &out, &n, j.handle, j.offset, j.len);
                } else if let Err(mpsc::SendError(j)) = tx.send(j) {
                    serve_read(e, &out, &n, j.handle, j.offset, j.len);
                }
            },
            &budget,
        );
        drop(tx);
        r
    });
    r?;
    if let Some(kind) = out.broken() {
        return Err(io::Error::new(kind, "writing a reply failed").into());
    }
    Ok(Stats {
        reads: n.reads.into_inner(),
        bytes_read: n.bytes_read.into_inner(),
        writes: n.writes.into_inner(),
        bytes_written: n.bytes_written.into_inner(),
    })
}

/// The request loop: reads are handed to `read`, everything else is done here.
fn requests<'b, R: Read, W: Write>(
    s: &mut R,
    e: &Export,
    out: &Replies<W>,
    n: &Counters,
    mut read: impl FnMut(ReadJob<'b>),
    budget: &'b Budget,
) -> Result<(), NbdError> {
    let size = e.dev.size();
    let mut buf = Vec::new();
    let reply = |error: u32, handle: u64| out.send(&header(error, handle));
    let result = |r: io::Result<()>, handle: u64| match r {
        Ok(()) => reply(0, handle),
        Err(x) => reply(errno(&x), handle),
    };
    loop {
        if let Some(kind) = out.broken() {
            return Err(io::Error::new(kind, "writing a reply failed").into());
        }
        let Some(Request { cmd, handle, offset, len }) = next_request(s)? else {
            return Ok(());
        };
        let in_range = offset.checked_add(u64::from(len)).is_some_and(|end| end <= size);
        match cmd {
            CMD_READ if len > MAX_REQUEST => reply(EOVERFLOW, handle)?,
            CMD_READ if !in_range => reply(EINVAL, handle)?,
            CMD_READ => read(ReadJob { handle, offset, len, _held: budget.take(u64::from(len)) }),
            CMD_WRITE => {
                if len > MAX_REQUEST {
                    // The payload cannot be skipped safely at this size: end the connection.
                    return Err(NbdError::Protocol(format!("write of {len} bytes")));
                }
                buf.resize(len as usize, 0);
                s.read_exact(&mut buf)?;
                let r = if e.read_only {
                    Err(io::Error::from(io::ErrorKind::PermissionDenied))
                } else if !in_range {
                    Err(io::Error::new(io::ErrorKind::StorageFull, "past the end"))
                } else {
                    e.dev.write_at(offset, &buf)
                };
                if r.is_ok() {
                    n.writes.fetch_add(1, Ordering::Relaxed);
                    n.bytes_written.fetch_add(u64::from(len), Ordering::Relaxed);
                }
                result(r, handle)?;
            }
            CMD_TRIM | CMD_WRITE_ZEROES => {
                let r = if e.read_only {
                    Err(io::Error::from(io::ErrorKind::PermissionDenied))
                } else if !in_range {
                    Err(io::Error::new(io::ErrorKind::StorageFull, "past the end"))
                } else {
                    e.dev.zero_at(offset, u64::from(len))
                };
                result(r, handle)?;
            }
            CMD_FLUSH => result(e.dev.flush(), handle)?,
            CMD_DISC => return Ok(()),
            _ => reply(EINVAL, handle)?,
        }
    }
}

/// One stream used for both directions, by one thread at a time (no workers).
pub(crate) struct Shared<'s, S>(pub &'s Mutex<&'s mut S>);

impl<S: Read> Read for Shared<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        lock(self.0).read(buf)
    }
}

impl<S: Write> Write for Shared<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        lock(self.0).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        lock(self.0).flush()
    }
}

#[cfg(test)]
mod tests;
