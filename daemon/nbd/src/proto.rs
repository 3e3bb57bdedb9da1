//! The wire format: constants and the option haggling (the request loop is `transmit.rs`).

use super::{Export, NbdError};
use std::io::{self, Read, Write};

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
pub(crate) const REQUEST_MAGIC: u32 = 0x2560_9513;
pub(crate) const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;

const FLAG_FIXED_NEWSTYLE: u16 = 1 << 0;
const FLAG_NO_ZEROES: u16 = 1 << 1;
const CLIENT_NO_ZEROES: u32 = 1 << 1;

const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;

const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_ERR_UNSUP: u32 = (1 << 31) + 1;
const REP_ERR_INVALID: u32 = (1 << 31) + 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) + 6;

const INFO_EXPORT: u16 = 0;
const INFO_BLOCK_SIZE: u16 = 3;

const TF_HAS_FLAGS: u16 = 1 << 0;
const TF_READ_ONLY: u16 = 1 << 1;
const TF_SEND_FLUSH: u16 = 1 << 2;
const TF_SEND_FUA: u16 = 1 << 3;
const TF_SEND_TRIM: u16 = 1 << 5;
const TF_SEND_WRITE_ZEROES: u16 = 1 << 6;
const TF_CAN_MULTI_CONN: u16 = 1 << 8;

pub(crate) const CMD_READ: u16 = 0;
pub(crate) const CMD_WRITE: u16 = 1;
pub(crate) const CMD_DISC: u16 = 2;
pub(crate) const CMD_FLUSH: u16 = 3;
pub(crate) const CMD_TRIM: u16 = 4;
pub(crate) const CMD_WRITE_ZEROES: u16 = 6;

pub(crate) const EPERM: u32 = 1;
pub(crate) const EIO: u32 = 5;
pub(crate) const EINVAL: u32 = 22;
pub(crate) const ENOSPC: u32 = 28;
pub(crate) const EOVERFLOW: u32 = 75;

/// The largest read or write accepted in one request (qemu asks for at most 32 MiB).
pub const MAX_REQUEST: u32 = 32 << 20;
/// Longest option payload accepted during the handshake.
const MAX_OPTION: u32 = 64 << 10;

/// What a connection did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub reads: u64,
    pub bytes_read: u64,
    pub writes: u64,
    pub bytes_written: u64,
}

fn u32_of(s: &mut impl Read) -> io::Result<u32> {
    let mut b = [0; 4];
    s.read_exact(&mut b)?;
    Ok(u32::from_be_bytes(b))
}

fn u64_of(s: &mut impl Read) -> io::Result<u64> {
    let mut b = [0; 8];
    s.read_exact(&mut b)?;
    Ok(u64::from_be_bytes(b))
}

fn option_reply(s: &mut impl Write, opt: u32, kind: u32, data: &[u8]) -> io::Result<()> {
    let mut m = Vec::with_capacity(20 + data.len());
    m.extend_from_slice(&REPLY_MAGIC.to_be_bytes());
    m.extend_from_slice(&opt.to_be_bytes());
    m.extend_from_slice(&kind.to_be_bytes());
    m.extend_from_slice(&(data.len() as u32).to_be_bytes());
    m.extend_from_slice(data);
    s.write_all(&m)
}

fn transmission_flags(e: &Export) -> u16 {
    let mut f = TF_HAS_FLAGS | TF_SEND_FLUSH | TF_SEND_FUA | TF_CAN_MULTI_CONN;
    if e.read_only {
        f |= TF_READ_ONLY;
    } else {
        f |= TF_SEND_TRIM | TF_SEND_WRITE_ZEROES;
    }
    f
}

/// Parses the payload of `INFO`/`GO`: the export name (the information requests are read and
/// ignored: we always send the size, flags and block sizes).
fn go_name(data: &[u8]) -> Option<String> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    let name = data.get(4..4 + len)?;
    let n = u16::from_be_bytes(data.get(4 + len..6 + len)?.try_into().ok()?) as usize;
    (data.len() == 6 + len + 2 * n).then(|| String::from_utf8_lossy(name).into_owned())
}

/// Finds an export by name; the empty name means the first (the default export).
fn find<'a>(exports: &'a [Export], name: &str) -> Option<&'a Export> {
    if name.is_empty() { exports.first() } else { exports.iter().find(|e| e.name == name) }
}

/// The handshake: the export the client chose, or None if it left (ABORT, or hung up).
pub fn handshake<S: Read + Write>(s: &mut S, exports: &[Export]) -> Result<Option<Export>, NbdError> {
    let mut hello = Vec::with_capacity(18);
    hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
    hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
    hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
    s.write_all(&hello)?;
    s.flush()?;
    let client_flags = u32_of(s)?;
    let no_zeroes = client_flags & CLIENT_NO_ZEROES != 0;
    loop {
        let magic = match u64_of(s) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if magic != IHAVEOPT {
            return Err(NbdError::Protocol(format!("option magic {magic:#x}")));
        }
        let opt = u32_of(s)?;
        let len = u32_of(s)?;
        if len > MAX_OPTION {
            return Err(NbdError::Protocol(format!("option {opt} of {len} bytes")));
        }
        let mut data = vec![0; len as usize];
        s.read_exact(&mut data)?;
        match opt {
            OPT_EXPORT_NAME => {
                let name = String::from_utf8_lossy(&data).into_owned();
                // No way to refuse in this option's reply: hang up on an unknown name.
                let Some(e) = find(exports, &name) else {
                    return Err(NbdError::Protocol(format!("unknown export '{name}'")));
                };
                let mut m = Vec::with_capacity(134);
                m.extend_from_slice(&e.dev.size().to_be_bytes());
                m.extend_from_slice(&transmission_flags(e).to_be_bytes());
                if !no_zeroes {
                    m.extend_from_slice(&[0; 124]);
                }
                s.write_all(&m)?;
                s.flush()?;
                return Ok(Some(e.clone()));
            }
            OPT_ABORT => {
                option_reply(s, opt, REP_ACK, &[])?;
                s.flush()?;
                return Ok(None);
            }
            OPT_LIST => {
                for e in exports {
                    let mut d = (e.name.len() as u32).to_be_bytes().to_vec();
                    d.extend_from_slice(e.name.as_bytes());
                    option_reply(s, opt, REP_SERVER, &d)?;
                }
                option_reply(s, opt, REP_ACK, &[])?;
            }
            OPT_INFO | OPT_GO => {
                let Some(name) = go_name(&data) else {
                    option_reply(s, opt, REP_ERR_INVALID, b"malformed export name or information requests")?;
                    s.flush()?;
                    continue;
                };
                let Some(e) = find(exports, &name) else {
                    option_reply(s, opt, REP_ERR_UNKNOWN, format!("no export named '{name}'").as_bytes())?;
                    s.flush()?;
                    continue;
                };
                let mut info = INFO_EXPORT.to_be_bytes().to_vec();
                info.extend_from_slice(&e.dev.size().to_be_bytes());
                info.extend_from_slice(&transmission_flags(e).to_be_bytes());
                option_reply(s, opt, REP_INFO, &info)?;
                let mut bs = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
                for v in [1u32, 4096, MAX_REQUEST] {
                    bs.extend_from_slice(&v.to_be_bytes());
                }
                option_reply(s, opt, REP_INFO, &bs)?;
                option_reply(s, opt, REP_ACK, &[])?;
                s.flush()?;
                if opt == OPT_GO {
                    return Ok(Some(e.clone()));
                }
            }
            _ => option_reply(s, opt, REP_ERR_UNSUP, b"not supported by drpair")?,
        }
        s.flush()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_payload() {
        let mut d = 5u32.to_be_bytes().to_vec();
        d.extend_from_slice(b"disk0");
        d.extend_from_slice(&1u16.to_be_bytes());
        d.extend_from_slice(&3u16.to_be_bytes());
        assert_eq!(go_name(&d).as_deref(), Some("disk0"));
        assert_eq!(go_name(&d[..d.len() - 1]), None, "truncated");
        assert_eq!(go_name(&[0, 0]), None);
    }
}
