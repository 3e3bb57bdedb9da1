//! A guest's serial console as the drill keeps it: the full log in the drill's evidence (up
//! to [`MAX_LOG_BYTES`]), a window of the newest output for the `expect` pattern, and the
//! last lines for the drill's record.

use std::io::Write;
use std::path::Path;

/// Most bytes of console kept in the log file; a note marks the cut.
pub const MAX_LOG_BYTES: u64 = 16 << 20;
/// Newest console bytes the pattern is matched against.
const WINDOW_BYTES: usize = 64 << 10;
/// Lines and bytes of the tail kept in the record.
const TAIL_LINES: usize = 20;
const TAIL_BYTES: usize = 4096;

pub struct Console {
    log: std::fs::File,
    written: u64,
    pub total: u64,
    window: Vec<u8>,
}

impl Console {
    /// A console logging to `path` (created, or appended to after a restarted attempt).
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        let written = log.metadata()?.len();
        Ok(Console { log, written, total: 0, window: Vec::new() })
    }

    /// Takes more output of the guest.
    pub fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        if self.written < MAX_LOG_BYTES {
            let room = usize::try_from(MAX_LOG_BYTES - self.written).unwrap_or(usize::MAX);
            let part = &bytes[..bytes.len().min(room)];
            if self.log.write_all(part).is_ok() {
                self.written += part.len() as u64;
            }
            if part.len() < bytes.len() {
                let note = format!("\n[drpair: the console log stops here, at {MAX_LOG_BYTES} bytes]\n");
                let _ = self.log.write_all(note.as_bytes());
                self.written = MAX_LOG_BYTES;
            }
        }
        self.window.extend_from_slice(bytes);
        if self.window.len() > WINDOW_BYTES {
            let cut = self.window.len() - WINDOW_BYTES;
            self.window.drain(..cut);
        }
    }

    /// Writes a line of the drill's own into the log (not seen by the pattern).
    pub fn note(&mut self, text: &str) {
        let _ = self.log.write_all(format!("\n[drpair: {text}]\n").as_bytes());
    }

    pub fn matches(&self, re: &regex::Regex) -> bool {
        re.is_match(&String::from_utf8_lossy(&self.window))
    }

    /// The last lines, without control characters (escape sequences, carriage returns).
    pub fn tail(&self) -> String {
        tail_of(&self.window)
    }
}

/// The last [`TAIL_LINES`] non-empty lines of `bytes` (at most [`TAIL_BYTES`]), printable.
pub fn tail_of(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut clean = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params final-byte
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            }
            continue;
        }
        if c == '\n' || c == '\t' || !c.is_control() {
            clean.push(c);
        }
    }
    let lines: Vec<&str> = clean.lines().map(str::trim_end).filter(|l| !l.is_empty()).collect();
    let mut out = lines[lines.len().saturating_sub(TAIL_LINES)..].join("\n");
    if out.len() > TAIL_BYTES {
        let mut cut = out.len() - TAIL_BYTES;
        while !out.is_char_boundary(cut) {
            cut += 1;
        }
        out = out[cut..].to_string();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_capped_and_the_tail_is_clean() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = Console::open(&dir.path().join("console.log")).unwrap();
        let first: &[u8] = b"SeaBIOS\r\n\x1b[2J\x1b[6nBooting\r\n\r\nhost login: ";
        c.push(first);
        assert!(c.matches(&regex::Regex::new("login:").unwrap()));
        assert_eq!(c.tail(), "SeaBIOS\nBooting\nhost login:");
        let big = vec![b'x'; (MAX_LOG_BYTES as usize) + 10];
        c.push(&big);
        let len = std::fs::metadata(dir.path().join("console.log")).unwrap().len();
        assert!(len > MAX_LOG_BYTES && len < MAX_LOG_BYTES + 200, "{len}");
        assert_eq!(c.total, (big.len() + first.len()) as u64);
    }
}
