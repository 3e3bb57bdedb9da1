//! Async framing over a TCP stream: read and write whole frames of [`drpair_wire`].

use drpair_wire::{decode_body, decode_header, FrameError, HEADER_LEN};
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

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
