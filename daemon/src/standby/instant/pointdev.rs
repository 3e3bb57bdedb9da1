//! A recovery point's disk as a read-only NBD device (mode `boot`: the guest's own overlay,
//! a qcow2 file QEMU keeps, sits on top), read ahead when read in order.

use crate::standby::drill::readahead::ReadAhead;
use drpair_nbd::BlockDev;
use std::io;

pub struct PointDev(pub ReadAhead);

impl BlockDev for PointDev {
    fn size(&self) -> u64 {
        self.0.reader().geometry().size_bytes
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.read_at(offset, buf).map_err(io::Error::other)
    }

    fn write_at(&self, _offset: u64, _data: &[u8]) -> io::Result<()> {
        Err(io::Error::new(io::ErrorKind::PermissionDenied, "the point is read-only"))
    }
}
