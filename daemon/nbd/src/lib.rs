//! A Network Block Device server for drill exports: the fixed-newstyle handshake (options
//! `GO`, `INFO`, `EXPORT_NAME`, `LIST`, `ABORT`; others answered "unsupported") and the
//! transmission phase with simple replies (`READ`, `WRITE`, `FLUSH`, `TRIM`, `WRITE_ZEROES`,
//! `DISC`), as in the protocol document of the NBD project (`doc/proto.md`).
//!
//! Blocking I/O. The handshake runs on the caller's thread. In the transmission phase a stream
//! that can be split in two (a `TcpStream` and its `try_clone`) is served by
//! [`transmission_split`]: requests are read in order on the caller's thread, reads are served
//! by a few worker threads of the connection and answered as each completes (with its
//! request's handle: clients such as `qemu-img` and `nbdcopy` keep several reads in flight),
//! replies are written whole under one lock; writes, trims and flushes run in order on the
//! caller's thread. Read buffers in flight are bounded per connection ([`MAX_IN_FLIGHT`]). A
//! single stream ([`serve`], [`transmission`]) is served on the caller's thread alone, in
//! order. Any stream works (TCP on loopback, a unix socket). The block device is a trait, so
//! the protocol is tested against memory and real clients (`qemu-io`, `qemu-img`) without a
//! store.
//!
//! No crate was used: `nbd` 0.3 (the only server-side crate found) does not implement
//! `NBD_OPT_GO`, so qemu's client cannot open its exports.

mod proto;
mod transmit;

use std::io::{self, Read, Write};
use std::sync::Arc;

pub use proto::{MAX_REQUEST, Stats};
pub use transmit::MAX_IN_FLIGHT;

/// What an export serves. Offsets and lengths are checked against `size` before a call.
/// Reads may be called from several threads at once, also while a write runs.
pub trait BlockDev: Send + Sync {
    fn size(&self) -> u64;
    /// Fills `buf` from `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes `data` at `offset`. A read-only export is never asked.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes the writes so far durable (a throw-away overlay may do nothing).
    fn flush(&self) -> io::Result<()> {
        Ok(())
    }
    /// Zeroes a range (TRIM and WRITE_ZEROES both land here: the range reads as zeroes after).
    fn zero_at(&self, offset: u64, len: u64) -> io::Result<()> {
        let zeros = vec![0u8; len.min(1 << 20) as usize];
        let mut done = 0;
        while done < len {
            let n = (len - done).min(zeros.len() as u64) as usize;
            self.write_at(offset + done, &zeros[..n])?;
            done += n as u64;
        }
        Ok(())
    }
}

/// One named export.
#[derive(Clone)]
pub struct Export {
    pub name: String,
    pub dev: Arc<dyn BlockDev>,
    pub read_only: bool,
}

/// Why a connection ended badly.
#[derive(Debug, thiserror::Error)]
pub enum NbdError {
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    #[error("protocol: {0}")]
    Protocol(String),
}

/// Serves one client connection until it disconnects: the handshake, then the transmission
/// phase on the export it chose. `exports` are the names it may choose from.
pub fn serve<S: Read + Write + Send>(stream: &mut S, exports: &[Export]) -> Result<Stats, NbdError> {
    match proto::handshake(stream, exports)? {
        Some(export) => transmission(stream, &export),
        None => Ok(Stats::default()),
    }
}

/// The handshake alone: the export the client chose (`None`: it listed or aborted). A server
/// that bounds the handshake's time serves the transmission phase after with [`transmission`].
pub fn handshake<S: Read + Write>(stream: &mut S, exports: &[Export]) -> Result<Option<Export>, NbdError> {
    proto::handshake(stream, exports)
}

/// The transmission phase on `export`, until the client disconnects: one stream, every
/// request served in order on the caller's thread.
pub fn transmission<S: Read + Write + Send>(stream: &mut S, export: &Export) -> Result<Stats, NbdError> {
    let shared = std::sync::Mutex::new(stream);
    transmit::serve(&mut transmit::Shared(&shared), transmit::Shared(&shared), export, 0)
}

/// The transmission phase on `export` over a stream split in two, until the client
/// disconnects: requests read from `reader`, replies written to `writer`, reads served by
/// `workers` threads at once (0: in order on the caller's thread) and answered in the order
/// they complete. Returns once every read in flight is answered.
pub fn transmission_split<R: Read, W: Write + Send>(
    reader: &mut R,
    writer: W,
    export: &Export,
    workers: usize,
) -> Result<Stats, NbdError> {
    transmit::serve(reader, writer, export, workers)
}

#[cfg(test)]
mod hostile_tests;
