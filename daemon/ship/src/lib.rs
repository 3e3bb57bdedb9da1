//! drpair shipping stages of the agent: open protected disks, read chunks, hash, compress, and
//! the pass that runs them for an epoch ([`pass`]) against a [`Standby`].
//!
//! ```text
//! cutter ─▶ Reader (io_uring | pread, one thread) ─▶ ReadBlock ─▶ workers: hash_chunk,
//!           is_zero, Codec (level from AdaptiveLevel) ─▶ link
//! ```
//!
//! # Invariants
//!
//! - **Bounded memory.** A [`Reader`] owns at most `buffers` buffers of
//!   `max(max_read_bytes, largest chunk size)` bytes each (defaults: 32 × 1 MiB). `submit`
//!   takes a buffer before queueing and blocks while none is free; a buffer returns to the
//!   pool when its [`ReadBlock`] is dropped, so steady-state reads allocate no buffers.
//! - **Exact reads.** Every completion is either a block holding exactly the bytes of the
//!   requested chunks (the disk's short last chunk included, nothing past the geometry), or
//!   an error naming the disk (index and path) and the byte offset. Short reads, EINTR and
//!   EAGAIN are retried; a read that hits the end of the disk early is an error, never
//!   silently short. Requests outside the disk are refused by `submit`.
//! - **Read-only.** Disks are opened `O_RDONLY`; nothing here writes to a protected disk.
//! - **Kernel-owned memory is never freed early.** A buffer given to io_uring is not read,
//!   reused or freed before its completion is reaped; if the ring fails, in-flight buffers
//!   are leaked rather than freed.
//! - **Wire lengths are not trusted.** Chunks are compressed and decompressed by
//!   [`drpair_codec::Codec`], which allocates at most the stated chunk length (itself at most
//!   4 MiB) and requires the output to match it exactly.

mod adapt;
mod buf;
mod chunk;
mod disk;
mod error;
pub mod memory;
mod op;
pub mod pass;
mod pread;
mod reader;
pub mod standby;
mod uring;

pub use adapt::{AdaptiveLevel, LEVELS, LinkSample, Verdict, classify, next_index};
pub use buf::{ALIGN, AlignedBuf};
pub use chunk::{Hash, hash_chunk, is_zero};
pub use disk::{DiskFile, disk_size, open_disk};
pub use drpair_codec::{Codec, CodecError, Compression};
pub use error::{ErrorClass, ReadError};
pub use memory::MemoryStandby;
pub use reader::{Completion, Engine, ReadBlock, ReadRequest, Reader, ReaderConfig, ReaderStats};
pub use standby::{HaveTicket, Standby};
