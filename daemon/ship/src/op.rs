//! One read in progress, independent of the engine that performs it.
//!
//! An op reads the chunks `first_chunk .. first_chunk + chunk_count` of one disk into one
//! buffer. The engine asks [`ReadOp::next_io`] what to read, performs it (io_uring or
//! pread) and reports the result to [`ReadOp::complete`], which decides: done, again (partial
//! read, EINTR/EAGAIN, O_DIRECT refused), or failed with an error naming disk and offset.
//!
//! O_DIRECT: the start offset is a chunk boundary (a multiple of 4096) and the length is the
//! wanted length rounded up to 4096; a disk whose size is not a multiple of 4096 yields a
//! short read at its end, and the bytes past the geometry are trimmed. Should a direct read
//! ever stop at an unaligned point before the wanted length, the rest is read buffered.

use std::io;
use std::path::Path;
use std::sync::Arc;

use drpair_types::{ChunkSize, DiskGeometry};

use crate::buf::{ALIGN, AlignedBuf, align_up};
use crate::error::ReadError;
use crate::reader::ReadBlock;

/// Consecutive EINTR/EAGAIN results without progress before an op gives up.
const MAX_STALLS: u32 = 64;

/// The next system-level read an op needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NextIo {
    /// Use the O_DIRECT descriptor (else the buffered one).
    pub direct: bool,
    /// Byte offset on the disk.
    pub offset: u64,
    /// Byte offset in the op's buffer.
    pub start: usize,
    pub len: usize,
}

/// What the engine does after a result.
#[derive(Debug)]
pub(crate) enum Step {
    /// All wanted bytes are in: call [`ReadOp::into_block`].
    Done,
    /// Issue [`ReadOp::next_io`] again.
    Again,
    /// Give up with this error.
    Failed(ReadError),
}

pub(crate) struct ReadOp {
    pub disk: u32,
    pub first_chunk: u64,
    pub chunk_count: u32,
    pub tag: u64,
    chunk_size: ChunkSize,
    path: Arc<Path>,
    pub buf: AlignedBuf,
    /// Disk offset of the first chunk.
    offset: u64,
    /// Exact number of bytes of the chunks.
    want: usize,
    /// Bytes read so far (may exceed `want` after an aligned-up direct read).
    done: usize,
    direct: bool,
    stalls: u32,
}

impl ReadOp {
    /// The request must have been validated against the geometry; `buf` must hold the
    /// chunks rounded up to 4096.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        disk: u32,
        first_chunk: u64,
        chunk_count: u32,
        tag: u64,
        geometry: &DiskGeometry,
        path: Arc<Path>,
        direct: bool,
        buf: AlignedBuf,
    ) -> ReadOp {
        let offset = geometry.chunk_offset(first_chunk);
        let end = geometry.chunk_offset(first_chunk + chunk_count as u64).min(geometry.size_bytes);
        let want = usize::try_from(end - offset).expect("a read fits in memory");
        assert!(align_up(want) <= buf.capacity(), "buffer too small for {want} bytes");
        ReadOp {
            disk,
            first_chunk,
            chunk_count,
            tag,
            chunk_size: geometry.chunk_size,
            path,
            buf,
            offset,
            want,
            done: 0,
            direct,
            stalls: 0,
        }
    }

    pub(crate) fn next_io(&self) -> NextIo {
        let end = if self.direct { align_up(self.want) } else { self.want };
        NextIo { direct: self.direct, offset: self.offset + self.done as u64, start: self.done, len: end - self.done }
    }

    /// Feeds the result of the read described by the last [`next_io`](Self::next_io).
    pub(crate) fn complete(&mut self, result: io::Result<usize>) -> Step {
        match result {
            Ok(0) => Step::Failed(self.eof()),
            Ok(n) => {
                self.done += n;
                self.stalls = 0;
                if self.done >= self.want {
                    Step::Done
                } else {
                    if self.direct && self.done % ALIGN != 0 {
                        // O_DIRECT cannot continue from an unaligned point.
                        self.direct = false;
                    }
                    Step::Again
                }
            }
            Err(e)
                if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EAGAIN))
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                self.stalls += 1;
                if self.stalls > MAX_STALLS { Step::Failed(self.io_error(e)) } else { Step::Again }
            }
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                tracing::warn!(disk = self.disk, path = %self.path.display(), offset = self.offset + self.done as u64,
                    "O_DIRECT read refused (EINVAL); retrying buffered");
                self.direct = false;
                Step::Again
            }
            Err(e) => Step::Failed(self.io_error(e)),
        }
    }

    pub(crate) fn into_block(mut self) -> ReadBlock {
        debug_assert!(self.done >= self.want);
        self.buf.set_len(self.want);
        ReadBlock {
            disk: self.disk,
            first_chunk: self.first_chunk,
            chunk_count: self.chunk_count,
            tag: self.tag,
            chunk_size: self.chunk_size,
            buf: self.buf,
        }
    }

    /// Drops the op but abandons its buffer (see [`AlignedBuf::abandon`]): for ops the
    /// kernel may still be working on.
    pub(crate) fn abandon(self) {
        self.buf.abandon();
    }

    /// An error for this op at its current position (used by the engine for ring failures).
    pub(crate) fn io_error(&self, source: io::Error) -> ReadError {
        ReadError::Io {
            disk: self.disk,
            path: self.path.to_path_buf(),
            offset: self.offset + self.done as u64,
            first_chunk: self.first_chunk,
            chunk_count: self.chunk_count,
            tag: self.tag,
            source,
        }
    }

    fn eof(&self) -> ReadError {
        ReadError::UnexpectedEof {
            disk: self.disk,
            path: self.path.to_path_buf(),
            offset: self.offset + self.done as u64,
            first_chunk: self.first_chunk,
            chunk_count: self.chunk_count,
            tag: self.tag,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(size: u64, first: u64, count: u32, direct: bool) -> ReadOp {
        let g = DiskGeometry::new(size, ChunkSize::new(8192).unwrap()).unwrap();
        ReadOp::new(0, first, count, 5, &g, Path::new("/dev/test").into(), direct, AlignedBuf::new(4 * 8192))
    }

    #[test]
    fn direct_tail_is_aligned_up_and_trimmed() {
        // 3 chunks of 8 KiB + 100 bytes: the last chunk is 100 bytes.
        let mut o = op(3 * 8192 + 100, 2, 2, true);
        assert_eq!(o.next_io(), NextIo { direct: true, offset: 16384, start: 0, len: 8192 + 4096 });
        // The kernel returns what exists: 8192 + 100.
        assert!(matches!(o.complete(Ok(8192 + 100)), Step::Done));
        let b = o.into_block();
        assert_eq!(b.buf.len(), 8192 + 100);
        assert_eq!(b.chunks().map(|(i, c)| (i, c.len())).collect::<Vec<_>>(), vec![(2, 8192), (3, 100)]);
    }

    #[test]
    fn partial_reads_are_resubmitted_for_the_rest() {
        let mut o = op(4 * 8192, 0, 4, true);
        assert!(matches!(o.complete(Ok(4096)), Step::Again));
        assert_eq!(o.next_io(), NextIo { direct: true, offset: 4096, start: 4096, len: 4 * 8192 - 4096 });
        // An unaligned partial read switches to the buffered descriptor for the rest.
        assert!(matches!(o.complete(Ok(100)), Step::Again));
        assert_eq!(o.next_io(), NextIo { direct: false, offset: 4196, start: 4196, len: 4 * 8192 - 4196 });
        assert!(matches!(o.complete(Ok(4 * 8192 - 4196)), Step::Done));
        assert_eq!(o.into_block().buf.len(), 4 * 8192);
    }

    #[test]
    fn eintr_and_eagain_are_retried_but_not_forever() {
        let mut o = op(8192, 0, 1, false);
        let before = o.next_io();
        assert!(matches!(o.complete(Err(io::Error::from_raw_os_error(libc::EINTR))), Step::Again));
        assert!(matches!(o.complete(Err(io::Error::from_raw_os_error(libc::EAGAIN))), Step::Again));
        assert_eq!(o.next_io(), before);
        for _ in 0..MAX_STALLS {
            let _ = o.complete(Err(io::Error::from_raw_os_error(libc::EAGAIN)));
        }
        assert!(matches!(o.complete(Err(io::Error::from_raw_os_error(libc::EAGAIN))), Step::Failed(_)));
    }

    #[test]
    fn direct_einval_falls_back_to_buffered() {
        let mut o = op(8192, 0, 1, true);
        assert!(matches!(o.complete(Err(io::Error::from_raw_os_error(libc::EINVAL))), Step::Again));
        assert!(!o.next_io().direct);
        // Buffered EINVAL is a real error.
        assert!(matches!(o.complete(Err(io::Error::from_raw_os_error(libc::EINVAL))), Step::Failed(_)));
    }

    #[test]
    fn early_eof_and_errors_name_disk_and_offset() {
        let mut o = op(4 * 8192, 1, 2, true);
        assert!(matches!(o.complete(Ok(4096)), Step::Again));
        let Step::Failed(e) = o.complete(Ok(0)) else { panic!("EOF must fail") };
        assert!(matches!(e, ReadError::UnexpectedEof { offset: 12288, .. }));
        assert!(e.to_string().contains("disk 0 '/dev/test' offset 12288"), "{e}");
        let mut o = op(4 * 8192, 3, 1, false);
        let Step::Failed(e) = o.complete(Err(io::Error::from_raw_os_error(libc::EIO))) else { panic!() };
        assert!(e.to_string().starts_with("disk 0 '/dev/test' offset 24576: read failed (chunks 3+1, tag 5)"), "{e}");
    }
}
