//! The io_uring engine: one ring, owned by the reader thread, up to `queue_depth` reads in
//! flight. Each in-flight op lives in a slot whose index is the SQE's `user_data`; an op
//! (and its buffer) leaves its slot only after the kernel has posted its completion, so a
//! buffer is never freed or reused while the kernel may write into it.

use std::io;
use std::os::unix::io::AsRawFd;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use io_uring::{IoUring, Probe, opcode, types};

use crate::op::{ReadOp, Step};
use crate::pread;
use crate::reader::{Completion, DiskSlot, ReaderStats};

/// Fault injection for unit tests: the next wait for completions fails as if the ring broke.
#[cfg(test)]
pub(crate) static FAIL_NEXT_WAIT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Creates a ring of `queue_depth` entries and checks that it can read.
pub(crate) fn setup(queue_depth: u32) -> io::Result<IoUring> {
    let ring = IoUring::new(queue_depth)?;
    let mut probe = Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if !probe.is_supported(opcode::Read::CODE) {
        return Err(io::Error::new(io::ErrorKind::Unsupported, "io_uring has no IORING_OP_READ (kernel < 5.6)"));
    }
    Ok(ring)
}

/// Ops in flight, by slot. Abandons (never frees) whatever is still in flight when dropped,
/// which only happens when the loop is left abnormally (panic): the kernel may still write
/// into those buffers.
struct Slots {
    ops: Vec<Option<ReadOp>>,
    free: Vec<usize>,
}

impl Drop for Slots {
    fn drop(&mut self) {
        for op in self.ops.drain(..).flatten() {
            op.abandon();
        }
    }
}

/// Serves requests until the request channel closes. Should the ring itself fail, every op
/// in flight is reported failed (its buffer abandoned) and the rest is served by pread, so
/// every submitted block still gets exactly one completion.
pub(crate) fn run(
    mut ring: IoUring,
    disks: &[DiskSlot],
    requests: Receiver<ReadOp>,
    completions: Sender<Completion>,
    stats: &mut ReaderStats,
) {
    let depth = ring.params().sq_entries() as usize;
    let mut slots = Slots { ops: (0..depth).map(|_| None).collect(), free: (0..depth).rev().collect() };
    let Err(e) = drive(&mut ring, disks, &requests, &completions, stats, &mut slots) else {
        return;
    };
    tracing::error!(error = %e, "io_uring failed; reads in flight fail, the rest continues with pread");
    for op in slots.ops.iter_mut().filter_map(Option::take) {
        stats.errors += 1;
        let _ = completions.send(Err(op.io_error(io::Error::new(e.kind(), format!("io_uring failed: {e}")))));
        op.abandon();
    }
    drop(ring);
    pread::run(disks, requests, completions, stats);
}

fn drive(
    ring: &mut IoUring,
    disks: &[DiskSlot],
    requests: &Receiver<ReadOp>,
    completions: &Sender<Completion>,
    stats: &mut ReaderStats,
    slots: &mut Slots,
) -> io::Result<()> {
    let depth = slots.ops.len();
    let mut cqes: Vec<(u64, i32)> = Vec::with_capacity(ring.params().cq_entries() as usize);
    loop {
        // Fill free slots: block for work only when nothing is in flight.
        while let Some(&slot) = slots.free.last() {
            let op = if slots.free.len() == depth {
                match requests.recv() {
                    Ok(op) => op,
                    Err(_) => return Ok(()), // no more requests, nothing in flight
                }
            } else {
                match requests.try_recv() {
                    Ok(op) => op,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            slots.free.pop();
            slots.ops[slot] = Some(op);
            push(ring, disks, slots, slot)?;
        }
        #[cfg(test)]
        let waited = if FAIL_NEXT_WAIT.swap(false, std::sync::atomic::Ordering::SeqCst) {
            ring.submit()?; // the SQEs reach the kernel, as in a real failure after submission
            Err(io::Error::from_raw_os_error(libc::EFAULT))
        } else {
            ring.submit_and_wait(1)
        };
        #[cfg(not(test))]
        let waited = ring.submit_and_wait(1);
        match waited {
            Ok(_) => {}
            // Interrupted while waiting (the SQEs were submitted), completion queue full or
            // a transient shortage: reap what is there and go on.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
            Err(e) => return Err(e),
        }
        cqes.clear();
        cqes.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(user_data, res) in &cqes {
            let slot = usize::try_from(user_data).expect("user_data is a slot index");
            let op = slots.ops[slot].as_mut().expect("a completion belongs to an op in flight");
            stats.reads += 1;
            let result = if res >= 0 {
                Ok(usize::try_from(res).expect("non-negative"))
            } else {
                Err(io::Error::from_raw_os_error(-res))
            };
            match op.complete(result) {
                Step::Again => {
                    stats.retries += 1;
                    push(ring, disks, slots, slot)?;
                }
                Step::Done => {
                    let op = slots.ops[slot].take().expect("present");
                    slots.free.push(slot);
                    let block = op.into_block();
                    stats.blocks += 1;
                    stats.bytes += block.buf.len() as u64;
                    let _ = completions.send(Ok(block));
                }
                Step::Failed(e) => {
                    drop(slots.ops[slot].take());
                    slots.free.push(slot);
                    stats.errors += 1;
                    let _ = completions.send(Err(e));
                }
            }
        }
    }
}

/// Queues the next read of the op in `slot`.
fn push(ring: &mut IoUring, disks: &[DiskSlot], slots: &mut Slots, slot: usize) -> io::Result<()> {
    let op = slots.ops[slot].as_mut().expect("slot holds an op");
    let io = op.next_io();
    let fd = disks[op.disk as usize].file(io.direct).as_raw_fd();
    let len = u32::try_from(io.len).expect("buffers are at most 256 MiB");
    let entry =
        opcode::Read::new(types::Fd(fd), op.buf.ptr_at(io.start), len).offset(io.offset).build().user_data(slot as u64);
    for attempt in 0..2 {
        // SAFETY: the entry points at `len` bytes of the op's own buffer (io.start + len <=
        // capacity, checked by ReadOp) and at a descriptor owned by `disks`, which outlives
        // this thread's loop. The op stays in its slot, untouched, until the kernel posts
        // the completion for this user_data; only then is the buffer read, moved on or
        // freed (and it is abandoned, never freed, if the loop is left before that).
        let pushed = unsafe { ring.submission().push(&entry) };
        if pushed.is_ok() {
            return Ok(());
        }
        if attempt == 0 {
            // Cannot happen (at most `depth` ops in flight, each with at most one SQE), but
            // if the submission queue were full, hand it to the kernel and retry once.
            ring.submit()?;
        }
    }
    Err(io::Error::other("io_uring submission queue full"))
}
