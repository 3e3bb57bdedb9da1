//! Async framing over a link connection (TLS, or TCP with `insecure_plaintext`): read and
//! write whole frames of [`drpair_wire`].

pub mod meter;

use drpair_wire::{FrameError, HEADER_LEN, decode_body, decode_header};
use meter::LinkMeter;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Why reading a frame failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// the peer closed the connection
    #[error("connection closed by peer")]
    Closed,
    /// socket error
    #[error("link i/o: {0}")]
    Io(#[from] std::io::Error),
    /// the frame was refused
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// nothing arrived for this long while a frame was awaited: a link that stalled without
    /// closing (half-open), or a peer that hung
    #[error("no bytes from the peer for {}s while waiting for its next frame: the link stalled (half-open) or the peer hung", .0.as_secs())]
    Stalled(Duration),
}

impl LinkError {
    /// A frame whose checksum did not match: bytes corrupted on the way.
    pub fn is_checksum(&self) -> bool {
        matches!(self, LinkError::Frame(FrameError::Checksum { .. }))
    }
}

/// How often each side sends a heartbeat when it has nothing else to say.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// How long a side waits for a byte before it calls the link stalled and ends the
/// connection (several heartbeats: one lost to a slow moment is not a stall).
pub const STALL_AFTER: Duration = Duration::from_secs(10);

/// Like [`read_msg`], but gives up with [`LinkError::Stalled`] once no byte has arrived for
/// `idle` while waiting (time the reader spent elsewhere does not count).
pub async fn read_msg_watched<R: AsyncRead + Unpin, M: DeserializeOwned>(
    r: &mut R,
    buf: &mut Vec<u8>,
    meter: &LinkMeter,
    idle: Duration,
) -> Result<M, LinkError> {
    let began = Instant::now();
    let read = read_msg(r, buf);
    tokio::pin!(read);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            m = &mut read => return m,
            _ = tick.tick() => {
                let quiet = meter.last_byte().max(began).elapsed();
                if quiet >= idle {
                    return Err(LinkError::Stalled(quiet));
                }
            }
        }
    }
}

/// Reads one frame and decodes it. `Closed` on a clean EOF before a header.
pub async fn read_msg<R: AsyncRead + Unpin, M: DeserializeOwned>(r: &mut R, buf: &mut Vec<u8>) -> Result<M, LinkError> {
    read_msg_within(r, buf, drpair_wire::MAX_FRAME_PAYLOAD).await
}

/// Like [`read_msg`], refusing a frame that announces more than `max` bytes before anything
/// is allocated for it (a peer not yet authenticated gets only a small buffer).
pub async fn read_msg_within<R: AsyncRead + Unpin, M: DeserializeOwned>(
    r: &mut R,
    buf: &mut Vec<u8>,
    max: u32,
) -> Result<M, LinkError> {
    let mut h = [0u8; HEADER_LEN];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(LinkError::Closed),
        Err(e) => return Err(e.into()),
    }
    let header = decode_header(&h)?;
    if header.len > max {
        return Err(FrameError::TooLarge(header.len as u64).into());
    }
    buf.clear();
    buf.resize(header.len as usize, 0);
    r.read_exact(buf).await?;
    Ok(decode_body(header, buf)?)
}

/// Writes one already encoded frame, and flushes it: TLS may keep the last records of a write
/// in its buffer, and the peer would wait for them until the next frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), LinkError> {
    w.write_all(frame).await?;
    w.flush().await?;
    Ok(())
}

/// The two lanes into a connection's writer: `bulk` keeps its order (chunks, then the
/// epoch's end); `urgent` (heartbeats) goes out before any bulk frame still queued, so a
/// heartbeat is never stuck behind megabytes of data.
pub struct Lanes {
    pub bulk: mpsc::Sender<Vec<u8>>,
    pub urgent: mpsc::Sender<Vec<u8>>,
}

/// Spawns the task that owns the write half of a connection: it writes every frame sent on
/// the returned lanes (bounded: senders wait when the link is slow), bulk frames paced by
/// `pace` (the rate the peer asked for; unlimited at 0), and shuts the connection down once
/// every bulk sender is gone or a write fails.
pub fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut w: W,
    depth: usize,
    pace: Option<std::sync::Arc<meter::Bucket>>,
) -> (Lanes, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(depth);
    let (utx, mut urx) = mpsc::channel::<Vec<u8>>(8);
    let task = tokio::spawn(async move {
        loop {
            let (f, bulk) = tokio::select! {
                biased;
                Some(f) = urx.recv() => (f, false),
                f = rx.recv() => match f {
                    Some(f) => (f, true),
                    None => break,
                },
            };
            if write_frame(&mut w, &f).await.is_err() {
                break;
            }
            if let Some(p) = pace.as_ref().filter(|_| bulk) {
                let wait = p.charge(f.len(), Instant::now());
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
            }
        }
        let _ = w.shutdown().await;
    });
    (Lanes { bulk: tx, urgent: utx }, task)
}

/// Waits up to `within` for a connection's writer to send what it holds and close, then
/// aborts it: a writer stuck on a stalled link must not keep the socket (and the task)
/// alive forever.
pub async fn finish_writer(writer: tokio::task::JoinHandle<()>, within: Duration) {
    let abort = writer.abort_handle();
    if tokio::time::timeout(within, writer).await.is_err() {
        abort.abort();
    }
}

/// Aborts a task when dropped: helper tasks of a connection end with it, even when the
/// connection's future is cancelled (shutdown) rather than finished.
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A connection of the link, TLS or (with `insecure_plaintext`) plain TCP.
pub trait LinkIo: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> LinkIo for T {}

/// One connection of the link, whatever secures it.
pub type LinkStream = Box<dyn LinkIo>;
/// Its read half (frames in).
pub type LinkReader = tokio::io::ReadHalf<LinkStream>;
/// Its write half (owned by the writer task).
pub type LinkWriter = tokio::io::WriteHalf<LinkStream>;
