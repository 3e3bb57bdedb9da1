//! The io_uring engine: one ring, owned by the reader thread, up to `queue_depth` reads in
//! flight. Each in-flight op lives in a slot whose index is the SQE's `user_data`; an op
//! (and its buffer) leaves its slot only after the kernel has posted its completion, so a
//! buffer is never freed or reused while the kernel may write into it.

use std::io;
use std::mem;
use std::os::unix::io::AsRawFd;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use io_uring::{IoUring, Probe, opcode, types};

use crate::op::{ReadOp, Step};
use crate::reader::{Completion, DiskSlot, ReaderStats};

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

/// Ops in flight, by slot. Leaks (never frees) whatever is still in flight when dropped,
/// which only happens when the loop is left abnormally (ring failure, panic): the kernel may
/// still write into those buffers.
struct Slots {
    ops: Vec<Option<ReadOp>>,
    free: Vec<usize>,
}

impl Drop for Slots {
    fn drop(&mut self) {
        for op in self.ops.drain(..).flatten() {
            mem::forget(op);
        }
    }
}

pub(crate) fn run(
    mut ring: IoUring,
    disks: &[DiskSlot],
    requests: Receiver<ReadOp>,
    completions: Sender<Completion>,
    stats: &mut ReaderStats,
) {
    let depth = ring.params().sq_entries() as usize;
    let mut slots = Slots { ops: (0..depth).map(|_| None).collect(), free: (0..depth).rev().collect() };
    let mut cqes: Vec<(u64, i32)> = Vec::with_capacity(ring.params().cq_entries() as usize);
    loop {
        // Fill free slots: block for work only when nothing is in flight.
        while let Some(&slot) = slots.free.last() {
            let op = if slots.free.len() == depth {
                match requests.recv() {
                    Ok(op) => op,
                    Err(_) => return, // no more requests, nothing in flight
                }
            } else {
                match requests.try_recv() {
                    Ok(op) => op,
                    Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
                }
            };
            slots.free.pop();
            slots.ops[slot] = Some(op);
            if let Err(e) = push(&mut ring, disks, &mut slots, slot) {
                return fail_in_flight(&mut slots, &completions, stats, e);
            }
        }
        match ring.submit_and_wait(1) {
            Ok(_) => {}
            // Interrupted while waiting (the SQEs were submitted), or completion queue
            // full: reap what is there and go on.
            Err(e) if matches!(e.raw_os_error(), Some(libc::EINTR | libc::EBUSY | libc::EAGAIN)) => {}
            Err(e) => return fail_in_flight(&mut slots, &completions, stats, e),
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
                    if let Err(e) = push(&mut ring, disks, &mut slots, slot) {
                        return fail_in_flight(&mut slots, &completions, stats, e);
                    }
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
    let entry = opcode::Read::new(types::Fd(fd), op.buf.ptr_at(io.start), len)
        .offset(io.offset)
        .build()
        .user_data(slot as u64);
    for attempt in 0..2 {
        // SAFETY: the entry points at `len` bytes of the op's own buffer (io.start + len <=
        // capacity, checked by ReadOp) and at a descriptor owned by `disks`, which outlives
        // this thread's loop. The op stays in its slot, untouched, until the kernel posts
        // the completion for this user_data; only then is the buffer read, moved on or
        // freed (and `Slots` leaks it if the loop is left before that).
        if unsafe { ring.submission().push(&entry) }.is_ok() {
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

/// The ring failed: report every op in flight as failed and leave their buffers to `Slots`
/// (leaked: the kernel may still complete them).
fn fail_in_flight(slots: &mut Slots, completions: &Sender<Completion>, stats: &mut ReaderStats, e: io::Error) {
    tracing::error!(error = %e, "io_uring failed; reader stops");
    for op in slots.ops.iter().flatten() {
        stats.errors += 1;
        let _ = completions.send(Err(op.io_error(io::Error::new(e.kind(), format!("io_uring failed: {e}")))));
    }
}
