//! Async framing over a TCP stream: read and write whole frames of [`drpair_wire`].

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
    let mut h = [0u8; HEADER_LEN];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(LinkError::Closed),
        Err(e) => return Err(e.into()),
    }
    let header = decode_header(&h)?;
    buf.clear();
    buf.resize(header.len as usize, 0);
    r.read_exact(buf).await?;
    Ok(decode_body(header, buf)?)
}

/// Writes one already encoded frame.
pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> Result<(), LinkError> {
    w.write_all(frame).await?;
    Ok(())
}

/// Spawns the task that owns the write half of a connection: it writes every frame sent on
/// the returned channel (bounded: senders wait when the link is slow), and shuts the socket
/// down once every sender is gone or a write fails.
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
