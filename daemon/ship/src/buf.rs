//! 4096-aligned read buffers and the bounded pool that recycles them.
//!
//! The pool never holds more than `limit` buffers in existence (in use + free). Buffers are
//! allocated on first demand and then recycled: a dropped [`AlignedBuf`] goes back to its
//! pool, so a reader in steady state allocates nothing. `acquire` blocks while all `limit`
//! buffers are in use: that is the reader's backpressure.

use std::alloc::{self, Layout};
use std::fmt;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_channel::{Receiver, Sender};
use drpair_types::DiskGeometry;

/// Alignment (and length granularity) required by O_DIRECT on the disks we read.
pub const ALIGN: usize = 4096;

/// `n` rounded up to a multiple of [`ALIGN`].
pub(crate) fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// One heap allocation of `cap` bytes aligned to [`ALIGN`], zeroed at allocation.
struct RawBuf {
    ptr: NonNull<u8>,
    cap: usize,
}

impl RawBuf {
    fn new(cap: usize) -> RawBuf {
        let cap = align_up(cap.max(1));
        let layout = Layout::from_size_align(cap, ALIGN).expect("buffer size fits a Layout");
        // SAFETY: `layout` has a non-zero size (cap >= ALIGN).
        let ptr = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        RawBuf { ptr, cap }
    }
}

impl Drop for RawBuf {
    fn drop(&mut self) {
        let layout = Layout::from_size_align(self.cap, ALIGN).expect("same layout as allocated");
        // SAFETY: `ptr` was allocated by `alloc_zeroed` with this very layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}

// SAFETY: a RawBuf uniquely owns its allocation, like a Box<[u8]>; moving it between threads
// moves that ownership.
unsafe impl Send for RawBuf {}
// SAFETY: shared access only ever reads through `&self` (no interior mutability).
unsafe impl Sync for RawBuf {}

struct PoolShared {
    free_tx: Sender<RawBuf>,
    free_rx: Receiver<RawBuf>,
    allocated: AtomicUsize,
    limit: usize,
    buf_size: usize,
}

/// A bounded pool of equally sized aligned buffers.
#[derive(Clone)]
pub(crate) struct BufPool {
    shared: Arc<PoolShared>,
}

impl BufPool {
    pub(crate) fn new(limit: usize, buf_size: usize) -> BufPool {
        let (free_tx, free_rx) = crossbeam_channel::bounded(limit);
        BufPool {
            shared: Arc::new(PoolShared {
                free_tx,
                free_rx,
                allocated: AtomicUsize::new(0),
                limit,
                buf_size: align_up(buf_size),
            }),
        }
    }

    /// Size in bytes of every buffer of this pool.
    pub(crate) fn buf_size(&self) -> usize {
        self.shared.buf_size
    }

    /// Buffers allocated so far (never more than the limit).
    pub(crate) fn allocated(&self) -> usize {
        self.shared.allocated.load(Ordering::Relaxed)
    }

    /// A free buffer (length 0); blocks while all buffers are in use. Returns `None` when
    /// `stop` becomes ready (its sender is dropped) before a buffer is free.
    pub(crate) fn acquire(&self, stop: &Receiver<()>) -> Option<AlignedBuf> {
        let s = &self.shared;
        let raw = if let Ok(raw) = s.free_rx.try_recv() {
            raw
        } else if s
            .allocated
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < s.limit).then_some(n + 1))
            .is_ok()
        {
            RawBuf::new(s.buf_size)
        } else {
            crossbeam_channel::select! {
                recv(s.free_rx) -> raw => raw.expect("the pool holds its own sender"),
                recv(stop) -> _ => return None,
            }
        };
        Some(AlignedBuf { raw: Some(raw), len: 0, pool: Some(self.shared.clone()) })
    }
}

/// A 4096-aligned heap buffer holding `len()` valid bytes. Dereferences to those bytes.
/// Dropping it returns the memory to the reader's pool (when it came from one).
pub struct AlignedBuf {
    raw: Option<RawBuf>,
    len: usize,
    pool: Option<Arc<PoolShared>>,
}

impl AlignedBuf {
    /// A stand-alone buffer of at least `cap` bytes (rounded up to 4096), length 0, not pooled.
    pub fn new(cap: usize) -> AlignedBuf {
        AlignedBuf { raw: Some(RawBuf::new(cap)), len: 0, pool: None }
    }

    fn raw(&self) -> &RawBuf {
        self.raw.as_ref().expect("present until drop")
    }

    /// Allocated size in bytes (a multiple of 4096).
    pub fn capacity(&self) -> usize {
        self.raw().cap
    }

    /// Chunk `i` of this buffer, when the buffer starts at a chunk boundary of a disk with
    /// this geometry (as every [`crate::ReadBlock`] does). Empty when `i` is past the end.
    pub fn chunk(&self, i: u32, geometry: &DiskGeometry) -> &[u8] {
        let cs = geometry.chunk_size.bytes() as usize;
        let start = (i as usize).saturating_mul(cs).min(self.len);
        let end = start.saturating_add(cs).min(self.len);
        &self[start..end]
    }

    /// The whole allocation, writable. Bytes past `len()` are stale data or zeros.
    pub(crate) fn full_mut(&mut self) -> &mut [u8] {
        let raw = self.raw.as_mut().expect("present until drop");
        // SAFETY: the allocation is `cap` bytes, initialised (zeroed at allocation and only
        // ever written with plain bytes since), and uniquely borrowed through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(raw.ptr.as_ptr(), raw.cap) }
    }

    /// Pointer to byte `at` of the allocation, for handing to the kernel.
    pub(crate) fn ptr_at(&mut self, at: usize) -> *mut u8 {
        self.full_mut()[at..].as_mut_ptr()
    }

    /// Gives up this buffer's memory for good (never freed, never reused) because the kernel
    /// may still write into it; a pooled buffer is replaced by a fresh one, so the pool keeps
    /// its size and a submitter waiting for a buffer wakes up.
    pub(crate) fn abandon(mut self) {
        if let Some(raw) = self.raw.take() {
            std::mem::forget(raw);
        }
        if let Some(pool) = self.pool.take() {
            let _ = pool.free_tx.try_send(RawBuf::new(pool.buf_size));
        }
    }

    /// Sets the number of valid bytes.
    pub(crate) fn set_len(&mut self, len: usize) {
        assert!(len <= self.capacity(), "length {len} beyond capacity {}", self.capacity());
        self.len = len;
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let raw = self.raw();
        // SAFETY: `len <= cap` (kept by `set_len`), the bytes are initialised (see
        // `full_mut`), and the shared borrow of `self` prevents concurrent writes.
        unsafe { std::slice::from_raw_parts(raw.ptr.as_ptr(), self.len) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf").field("len", &self.len).field("capacity", &self.capacity()).finish()
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        if let (Some(raw), Some(pool)) = (self.raw.take(), self.pool.take()) {
            // Never blocks: the channel has room for every buffer the pool ever allocated.
            // If it fails anyway, `raw` is handed back and freed here.
            let _ = pool.free_tx.try_send(raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn aligned_and_zeroed() {
        let mut b = AlignedBuf::new(5000);
        assert_eq!(b.capacity(), 8192);
        assert_eq!(b.ptr_at(0) as usize % ALIGN, 0);
        assert!(b.full_mut().iter().all(|&x| x == 0));
        assert!(b.is_empty());
        b.full_mut()[..3].copy_from_slice(b"abc");
        b.set_len(3);
        assert_eq!(&*b, b"abc");
    }

    #[test]
    fn chunk_helper_handles_short_tail() {
        let g = DiskGeometry::new(3 * 4096 + 10, drpair_types::ChunkSize::new(4096).unwrap()).unwrap();
        let mut b = AlignedBuf::new(4 * 4096);
        b.set_len(2 * 4096 + 10);
        assert_eq!(b.chunk(0, &g).len(), 4096);
        assert_eq!(b.chunk(2, &g).len(), 10);
        assert!(b.chunk(3, &g).is_empty());
    }

    #[test]
    fn pool_is_bounded_and_recycles() {
        let pool = BufPool::new(2, 4096);
        let (_stop_tx, stop) = crossbeam_channel::bounded::<()>(0);
        let mut a = pool.acquire(&stop).unwrap();
        let b = pool.acquire(&stop).unwrap();
        assert_eq!(pool.allocated(), 2);
        let a_ptr = a.ptr_at(0);
        // A third acquire blocks until one is returned.
        std::thread::scope(|s| {
            let h = s.spawn(|| pool.acquire(&stop).map(|mut c| c.ptr_at(0) as usize));
            std::thread::sleep(Duration::from_millis(100));
            assert!(!h.is_finished(), "acquire must block while the pool is exhausted");
            drop(a);
            assert_eq!(h.join().unwrap(), Some(a_ptr as usize), "the returned buffer is reused");
        });
        assert_eq!(pool.allocated(), 2);
        drop(b);
    }

    #[test]
    fn acquire_gives_up_when_stopped() {
        let pool = BufPool::new(1, 4096);
        let (stop_tx, stop) = crossbeam_channel::bounded::<()>(0);
        let _a = pool.acquire(&stop).unwrap();
        drop(stop_tx);
        assert!(pool.acquire(&stop).is_none());
    }

    #[test]
    fn abandoned_buffer_is_replaced() {
        let pool = BufPool::new(1, 4096);
        let (_t, stop) = crossbeam_channel::bounded::<()>(0);
        let mut a = pool.acquire(&stop).unwrap();
        let a_ptr = a.ptr_at(0) as usize;
        std::thread::scope(|s| {
            let waiter = s.spawn(|| pool.acquire(&stop).map(|mut b| b.ptr_at(0) as usize));
            std::thread::sleep(Duration::from_millis(50));
            a.abandon();
            let b_ptr = waiter.join().unwrap().expect("woken by the replacement");
            assert_ne!(b_ptr, a_ptr, "abandoned memory is never reused");
        });
        assert_eq!(pool.allocated(), 1);
    }

    #[test]
    fn buffer_outlives_pool() {
        let pool = BufPool::new(1, 4096);
        let (_t, stop) = crossbeam_channel::bounded::<()>(0);
        let a = pool.acquire(&stop).unwrap();
        drop(pool);
        drop(a); // returned into the (still shared) channel, freed with it
    }
}
