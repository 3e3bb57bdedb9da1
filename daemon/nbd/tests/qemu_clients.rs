//! The server against real NBD clients: `qemu-img` and `qemu-io` (package qemu-utils) open an
//! in-memory export over loopback TCP, read it, write it, and compare it with a file.

use drpair_nbd::{BlockDev, Export, serve};
use std::io;
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};

struct Mem(Mutex<Vec<u8>>);

impl BlockDev for Mem {
    fn size(&self) -> u64 {
        self.0.lock().unwrap().len() as u64
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let d = self.0.lock().unwrap();
        buf.copy_from_slice(&d[offset as usize..offset as usize + buf.len()]);
        Ok(())
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0.lock().unwrap()[offset as usize..offset as usize + data.len()].copy_from_slice(data);
        Ok(())
    }
}

/// Serves `exports` on a free loopback port (a thread per connection); returns the port.
fn spawn(exports: Vec<Export>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            let exports = exports.clone();
            std::thread::spawn(move || {
                let _ = serve(&mut s, &exports);
            });
        }
    });
    port
}

fn run(cmd: &str, args: &[&str]) -> (bool, String) {
    let out =
        Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e} (apt-get install qemu-utils)"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

#[test]
fn qemu_reads_writes_and_compares() {
    const SIZE: usize = 8 << 20;
    let mem = Arc::new(Mem(Mutex::new(pattern(SIZE))));
    let ro = Arc::new(Mem(Mutex::new(pattern(SIZE))));
    let port = spawn(vec![
        Export { name: "disk0".into(), dev: mem.clone(), read_only: false },
        Export { name: "ro".into(), dev: ro.clone(), read_only: true },
    ]);
    let url = |name: &str| format!("nbd://127.0.0.1:{port}/{name}");

    let (ok, out) = run("qemu-img", &["info", "--output=json", &url("disk0")]);
    assert!(ok && out.contains(&format!("\"virtual-size\": {SIZE}")), "{out}");

    // The export equals the same bytes in a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("same.raw");
    std::fs::write(&file, pattern(SIZE)).unwrap();
    let (ok, out) = run("qemu-img", &["compare", "-f", "raw", "-F", "raw", &url("disk0"), file.to_str().unwrap()]);
    assert!(ok, "compare: {out}");

    // Writes (unaligned too), zeroes and reads through qemu-io.
    let (ok, out) = run(
        "qemu-io",
        &[
            "-f",
            "raw",
            "-c",
            "write -P 0xab 4096 65536",
            "-c",
            "write -P 0xcd 1000 10",
            "-c",
            "write -z 1048576 131072",
            "-c",
            "read -P 0xab 4096 65536",
            "-c",
            "read -P 0xcd 1000 10",
            "-c",
            "read -P 0 1048576 131072",
            "-c",
            "flush",
            &url("disk0"),
        ],
    );
    assert!(ok && !out.contains("Pattern verification failed") && !out.contains("error"), "qemu-io: {out}");
    let d = mem.0.lock().unwrap();
    assert!(d[4096..4096 + 65536].iter().all(|&b| b == 0xab));
    assert!(d[1000..1010].iter().all(|&b| b == 0xcd));
    assert!(d[1048576..1048576 + 131072].iter().all(|&b| b == 0));
    assert_eq!(d[1010..4096], pattern(SIZE)[1010..4096], "bytes around the writes are untouched");
    drop(d);

    // A read-only export refuses writes, and stays as it was.
    let (_, out) = run("qemu-io", &["-f", "raw", "-c", "write -P 1 0 4096", &url("ro")]);
    let refused = ["read-only", "operation not permitted", "permission denied"];
    assert!(refused.iter().any(|r| out.to_lowercase().contains(r)), "{out}");
    assert_eq!(*ro.0.lock().unwrap(), pattern(SIZE));

    // An unknown export is refused with its name.
    let (ok, out) = run("qemu-img", &["info", &url("nope")]);
    assert!(!ok && out.contains("nope"), "{out}");

    // Reads past the end are refused by the server, not served.
    let (_, out) = run("qemu-io", &["-f", "raw", "-c", &format!("read {} 4096", SIZE), &url("disk0")]);
    assert!(
        out.contains("out of bounds") || out.contains("Input/output error") || out.contains("Invalid argument"),
        "{out}"
    );
}
