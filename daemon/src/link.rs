//! Async framing over a link connection (TLS, or TCP with `insecure_plaintext`): read and
//! write whole frames of [`drpair_wire`].

use drpair_wire::{FrameError, HEADER_LEN, decode_body, decode_header};
use serde::de::DeserializeOwned;
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

/// Spawns the task that owns the write half of a connection: it writes every frame sent on
/// the returned channel (bounded: senders wait when the link is slow), and shuts the
/// connection down once every sender is gone or a write fails.
pub fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    mut w: W,
    depth: usize,
) -> (mpsc::Sender<Vec<u8>>, tokio::task::JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(depth);
    let task = tokio::spawn(async move {
        while let Some(f) = rx.recv().await {
            if write_frame(&mut w, &f).await.is_err() {
                break;
            }
        }
        let _ = w.shutdown().await;
    });
    (tx, task)
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
