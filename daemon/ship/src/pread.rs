//! The pread engine: one synchronous read at a time on the reader thread. Portable fallback
//! when io_uring is unavailable (old kernel, seccomp, `kernel.io_uring_disabled`).

use std::os::unix::fs::FileExt;

use crossbeam_channel::{Receiver, Sender};

use crate::op::{ReadOp, Step};
use crate::reader::{Completion, DiskSlot, ReaderStats};

pub(crate) fn run(
    disks: &[DiskSlot],
    requests: Receiver<ReadOp>,
    completions: Sender<Completion>,
    stats: &mut ReaderStats,
) {
    for mut op in requests.iter() {
        loop {
            let io = op.next_io();
            let file = disks[op.disk as usize].file(io.direct);
            let result = file.read_at(&mut op.buf.full_mut()[io.start..io.start + io.len], io.offset);
            stats.reads += 1;
            match op.complete(result) {
                Step::Again => stats.retries += 1,
                Step::Done => {
                    let block = op.into_block();
                    stats.blocks += 1;
                    stats.bytes += block.buf.len() as u64;
                    let _ = completions.send(Ok(block));
                    break;
                }
                Step::Failed(e) => {
                    stats.errors += 1;
                    let _ = completions.send(Err(e));
                    break;
                }
            }
        }
    }
}
