//! A small QMP client (QEMU's machine protocol: JSON lines over a unix socket): the greeting,
//! `qmp_capabilities`, then one command at a time, skipping the events QEMU sends between
//! answers. Only what a drill needs: the guest's status, a screendump, quit.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// Longest answer line read (QMP answers here are small).
const MAX_LINE: usize = 1 << 20;

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// QMP socket: {0}
    #[error("QMP socket: {0}")]
    Io(#[from] std::io::Error),
    /// QEMU answered something that is not QMP.
    #[error("QMP: unexpected answer: {0}")]
    Protocol(String),
    /// QEMU refused the command: its class and description.
    #[error("QMP {command}: {class}: {desc}")]
    Refused { command: String, class: String, desc: String },
}

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects to `path` (retrying while QEMU creates it, up to `wait`), reads the greeting
    /// and enters command mode.
    pub fn connect(path: &Path, wait: Duration) -> Result<Self, QmpError> {
        let t0 = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if t0.elapsed() >= wait => return Err(e.into()),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        };
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let writer = stream.try_clone()?;
        let mut q = Qmp { reader: BufReader::new(stream), writer };
        let greeting = q.read_value()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol(format!("no greeting: {greeting}")));
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn read_value(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = std::io::Read::take(&mut self.reader, MAX_LINE as u64).read_line(&mut line)?;
        if n == 0 {
            return Err(QmpError::Protocol("QEMU closed the QMP socket".into()));
        }
        serde_json::from_str(&line).map_err(|e| QmpError::Protocol(format!("{e}: {}", line.trim())))
    }

    /// Runs `command` with `arguments`; its `return` value.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": command });
        if let Some(a) = arguments {
            msg["arguments"] = a;
        }
        let mut line = msg.to_string();
        line.push('\n');
        self.writer.write_all(line.as_bytes())?;
        loop {
            let v = self.read_value()?;
            if v.get("event").is_some() {
                continue;
            }
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Refused {
                    command: command.into(),
                    class: e["class"].as_str().unwrap_or("?").into(),
                    desc: e["desc"].as_str().unwrap_or("?").into(),
                });
            }
            return Err(QmpError::Protocol(v.to_string()));
        }
    }

    /// The guest's run state (`running`, `paused`, `internal-error`, `guest-panicked`, …).
    pub fn status(&mut self) -> Result<String, QmpError> {
        let r = self.execute("query-status", None)?;
        Ok(r["status"].as_str().unwrap_or("unknown").to_string())
    }

    /// Writes the guest's screen to `file` as PNG; a QEMU built without PNG support writes a
    /// PPM next to it, converted here.
    pub fn screendump_png(&mut self, file: &Path) -> Result<(), QmpError> {
        let name = file.to_string_lossy();
        match self.execute("screendump", Some(json!({ "filename": name, "format": "png" }))) {
            Ok(_) => Ok(()),
            Err(QmpError::Refused { desc, .. })
                if desc.to_ascii_lowercase().contains("png") || desc.contains("format") =>
            {
                let ppm = file.with_extension("ppm");
                self.execute("screendump", Some(json!({ "filename": ppm.to_string_lossy() })))?;
                let converted = super::ppm::ppm_file_to_png(&ppm, file);
                let _ = std::fs::remove_file(&ppm);
                converted.map_err(QmpError::Io)
            }
            Err(e) => Err(e),
        }
    }

    /// Ends QEMU at once (the guest is not asked to shut down: a drill's guest is thrown away).
    pub fn quit(&mut self) -> Result<(), QmpError> {
        match self.execute("quit", None) {
            Ok(_) => Ok(()),
            // QEMU may close the socket before its answer arrives.
            Err(QmpError::Protocol(_)) | Err(QmpError::Io(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
