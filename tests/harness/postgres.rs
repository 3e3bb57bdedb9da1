//! A real PostgreSQL on protected disks, and the check that a recovery point of those disks is
//! a database PostgreSQL starts from and finds clean.
//!
//! - [`ProtectedDb::create`]: two loop devices over image files (data and WAL), ext4 on each,
//!   `initdb` (data checksums on) with `PGDATA` on the data disk and `--waldir` on the WAL disk,
//!   `fsync`, `full_page_writes`, a short `checkpoint_timeout` and a small `max_wal_size` (so
//!   checkpoints run during the load), started with `pg_ctl -w`, `pgbench -i -s 10`, and a
//!   table `acks(id bigint primary key, at timestamptz)`.
//! - [`ProtectedDb::start_load`]: `pgbench -c 4 -j 2 -T N` in the background and an
//!   "acknowledged commits" writer: a client that inserts into `acks` in autocommit mode and,
//!   only once the COMMIT returned, records the id with the wall-clock time of the
//!   acknowledgement. [`Load::stop`] stops both and returns the ack log.
//! - [`check_point`] (or [`Restored::export`] then [`Restored::check`]): every disk of a
//!   point exported through the standby's API into an image file, attached, mounted read-write
//!   (ext4 replays its journal), `pg_wal` re-pointed at the restored WAL disk, PostgreSQL
//!   started on it (crash recovery), then `pg_amcheck --all --heapallindexed`, the pgbench
//!   invariant (the sums of the balances of accounts, tellers and branches and of the history's
//!   deltas are equal) and: every commit acknowledged before the point's cut is in `acks`.
//!   The answer is a [`PointCheck`] (a verdict, never a panic); PostgreSQL is stopped, the
//!   filesystems unmounted and the loop devices detached whatever happened.
//!
//! The restored copy's `postmaster.pid` is removed before the start: it names the protected
//! server's postmaster, which runs on this same machine (on a real DR site the PID would not be
//! alive and PostgreSQL would ignore the stale file by itself).

use crate::blockdev::{LoopDev, Mount, mkfs_ext4};
use crate::daemons::Standby;
use crate::env::TestEnv;
use crate::image::sparse_image;
use crate::{MIB, sh, sh_ok, step};
use drpair_types::RecoveryPoint;
use std::collections::HashSet;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Size of the data disk.
pub const DATA_DISK: u64 = 768 * MIB;
/// Size of the WAL disk.
pub const WAL_DISK: u64 = 384 * MIB;
/// PGDATA inside the data disk's filesystem.
pub const PGDATA_DIR: &str = "pgdata";
/// The WAL directory inside the WAL disk's filesystem (PGDATA/pg_wal links to it).
pub const WAL_DIR: &str = "pg_wal";
/// pgbench scale: 1,000,000 accounts, about 160 MB.
pub const SCALE: u32 = 10;
/// The database everything lives in.
const DB: &str = "postgres";
const USER: &str = "postgres";

/// Unix-socket "ports" (no TCP listener is opened: `listen_addresses = ''`).
static NEXT_PORT: AtomicU16 = AtomicU16::new(55_432);

/// Milliseconds since 1970 now.
pub fn now_ms() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_millis()).expect("ms")
}

/// The directory of PostgreSQL's programs: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin` that has `postgres`, `pg_ctl`, `initdb`, `pgbench` and
/// `pg_amcheck`.
pub fn pg_bin() -> Option<PathBuf> {
    let complete =
        |d: &Path| ["postgres", "pg_ctl", "initdb", "pgbench", "pg_amcheck"].iter().all(|p| d.join(p).is_file());
    if let Some(d) = std::env::var_os("PG_BIN") {
        let d = PathBuf::from(d);
        return complete(&d).then_some(d);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path().join("bin"))))
        .filter(|(_, d)| complete(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// Why a PostgreSQL end-to-end test cannot run here (`None`: it can).
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root (loop devices, mount, fsfreeze)".into());
    }
    if !Path::new("/sys/kernel/tracing/instances").is_dir() {
        return Some("needs tracefs at /sys/kernel/tracing".into());
    }
    if pg_bin().is_none() {
        return Some("PostgreSQL not installed (initdb, pg_ctl, pgbench, pg_amcheck under /usr/lib/postgresql/*/bin; apt-get install postgresql postgresql-contrib)".into());
    }
    if !sh_ok("id", &["-u", USER]) {
        return Some(format!("no '{USER}' system user"));
    }
    if !Path::new("/dev/loop-control").exists() {
        return Some("no loop devices (/dev/loop-control)".into());
    }
    None
}

fn bin(name: &str) -> String {
    pg_bin().expect("PostgreSQL binaries").join(name).display().to_string()
}

/// Runs PostgreSQL's `program args` as the `postgres` user; returns (success, stdout + stderr).
fn as_postgres(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new("runuser")
        .args(["-u", USER, "--", &bin(program)])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run runuser {program}: {e}"));
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// `chown -R postgres:postgres PATH`.
fn chown_postgres(path: &Path) {
    sh("chown", &["-R", &format!("{USER}:{USER}"), &path.display().to_string()]);
}

/// The last `n` lines of a file (or why it cannot be read).
pub fn tail(path: &Path, n: usize) -> String {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            let lines: Vec<&str> = t.lines().collect();
            lines[lines.len().saturating_sub(n)..].join("\n")
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// One PostgreSQL server process (a cluster directory, a private socket directory and port,
/// a log file); stopped on drop (immediately, if a clean stop does not work).
pub struct PgServer {
    pub pgdata: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    pub log: PathBuf,
    running: bool,
}

impl PgServer {
    fn new(pgdata: &Path, socket_dir: &Path, log: &Path) -> Self {
        std::fs::create_dir_all(socket_dir).expect("socket dir");
        chown_postgres(socket_dir);
        std::fs::write(log, b"").expect("pg log");
        chown_postgres(log);
        Self {
            pgdata: pgdata.to_path_buf(),
            socket_dir: socket_dir.to_path_buf(),
            port: NEXT_PORT.fetch_add(1, Ordering::Relaxed),
            log: log.to_path_buf(),
            running: false,
        }
    }

    /// `pg_ctl -w -t TIMEOUT start` on this server's socket and port; the error is pg_ctl's
    /// output.
    pub fn start(&mut self, timeout_s: u32) -> Result<(), String> {
        let opts = format!("-p {} -k {}", self.port, self.socket_dir.display());
        let (d, l, t) = (self.pgdata.display().to_string(), self.log.display().to_string(), timeout_s.to_string());
        let (ok, out) = as_postgres("pg_ctl", &["-w", "-t", &t, "-D", &d, "-l", &l, "-o", &opts, "start"]);
        // Even a failed start may have left a postmaster behind: stop it on drop.
        self.running = true;
        if ok { Ok(()) } else { Err(format!("pg_ctl start failed: {}", out.trim())) }
    }

    /// Clean stop (`-m fast`), else immediate.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        let d = self.pgdata.display().to_string();
        let (ok, _) = as_postgres("pg_ctl", &["-w", "-t", "60", "-D", &d, "-m", "fast", "stop"]);
        if !ok {
            let (ok, out) = as_postgres("pg_ctl", &["-w", "-t", "30", "-D", &d, "-m", "immediate", "stop"]);
            if !ok && !out.contains("Is server running?") {
                eprintln!("warning: could not stop PostgreSQL in {d}: {out}");
            }
        }
        self.running = false;
    }

    /// libpq-style connection options for command-line clients.
    pub fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.socket_dir.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            USER.into(),
        ]
    }

    /// A client session (the `postgres` crate) over the unix socket.
    pub fn connect(&self) -> Result<::postgres::Client, String> {
        ::postgres::Config::new()
            .host_path(&self.socket_dir)
            .port(self.port)
            .user(USER)
            .dbname(DB)
            .connect_timeout(Duration::from_secs(10))
            .connect(::postgres::NoTls)
            .map_err(|e| format!("connect to {}:{}: {e}", self.socket_dir.display(), self.port))
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The protected database: PostgreSQL on two loop devices. Dropping it stops PostgreSQL, then
/// unmounts, then detaches (field order).
pub struct ProtectedDb {
    pub pg: PgServer,
    pub data: Mount,
    pub wal: Mount,
    pub data_lo: LoopDev,
    pub wal_lo: LoopDev,
}

impl ProtectedDb {
    /// Sets up disks, filesystems and a running, pgbench-initialised cluster.
    pub fn create(env: &TestEnv) -> Self {
        // PostgreSQL runs as its own user: it must reach its files under the test directory.
        sh("chmod", &["0755", &env.root().display().to_string()]);
        let (data_img, wal_img) = (env.path("pg-data.img"), env.path("pg-wal.img"));
        sparse_image(&data_img, DATA_DISK);
        sparse_image(&wal_img, WAL_DISK);
        let data_lo = LoopDev::attach(&data_img);
        let wal_lo = LoopDev::attach(&wal_img);
        mkfs_ext4(&data_lo.dev);
        mkfs_ext4(&wal_lo.dev);
        let data = Mount::mount(&data_lo.dev, &env.path("pg-data"));
        let wal = Mount::mount(&wal_lo.dev, &env.path("pg-wal"));
        let pgdata = data.dir.join(PGDATA_DIR);
        let waldir = wal.dir.join(WAL_DIR);
        for d in [&pgdata, &waldir] {
            std::fs::create_dir_all(d).expect("mkdir");
            chown_postgres(d);
            sh("chmod", &["0700", &d.display().to_string()]);
        }
        let log = env.path("pg-protected.log");
        let mut pg = PgServer::new(&pgdata, &env.path("pg-sock"), &log);
        env.add_log("postgresql", &log);
        let (d, w) = (pgdata.display().to_string(), waldir.display().to_string());
        // -k: data checksums, so a damaged page is an error when it is read.
        let (ok, out) =
            as_postgres("initdb", &["-D", &d, "--waldir", &w, "-U", USER, "-A", "trust", "--locale=C", "-k"]);
        assert!(ok, "initdb failed:\n{out}");
        let conf = format!(
            "\n# drpair e2e\nlisten_addresses = ''\nport = {}\nunix_socket_directories = '{}'\n\
             fsync = on\nfull_page_writes = on\nsynchronous_commit = on\nwal_sync_method = fdatasync\n\
             checkpoint_timeout = 30s\nmax_wal_size = 64MB\nmin_wal_size = 32MB\n\
             shared_buffers = 64MB\nlog_checkpoints = on\nlog_line_prefix = '%m [%p] '\n",
            pg.port,
            pg.socket_dir.display()
        );
        let conf_path = pgdata.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).expect("postgresql.conf");
        text.push_str(&conf);
        std::fs::write(&conf_path, text).expect("postgresql.conf");
        pg.start(60).unwrap_or_else(|e| panic!("{e}\n{}", tail(&log, 30)));
        step(format!("PostgreSQL running: PGDATA {}, WAL {}, port {}", pgdata.display(), waldir.display(), pg.port));
        let mut args = pg.conn_args();
        args.extend(["-i", "-q", "-s", &SCALE.to_string(), DB].map(String::from));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let t = Instant::now();
        sh(&bin("pgbench"), &args);
        let mut c = pg.connect().unwrap_or_else(|e| panic!("{e}"));
        c.batch_execute("CREATE TABLE acks (id bigint PRIMARY KEY, at timestamptz NOT NULL); CHECKPOINT;")
            .expect("acks");
        step(format!("pgbench -i -s {SCALE} done in {:.1}s; table acks created", t.elapsed().as_secs_f64()));
        Self { pg, data, wal, data_lo, wal_lo }
    }

    /// The protected devices, data first (disk 0), then WAL (disk 1).
    pub fn disks(&self) -> [&Path; 2] {
        [self.data_lo.dev.as_path(), self.wal_lo.dev.as_path()]
    }

    /// The mount points, data first.
    pub fn mounts(&self) -> [String; 2] {
        [self.data.dir.display().to_string(), self.wal.dir.display().to_string()]
    }

    /// Starts pgbench for `seconds` and the acknowledged-commits writer.
    pub fn start_load(&self, env: &TestEnv, seconds: u64) -> Load {
        let out_path = env.path("pgbench.out");
        let out = std::fs::File::create(&out_path).expect("pgbench.out");
        let mut args = self.pg.conn_args();
        args.extend(["-c", "4", "-j", "2", "-T", &seconds.to_string(), "-P", "5", "--no-vacuum", DB].map(String::from));
        let pgbench = Command::new(bin("pgbench"))
            .args(&args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup"))
            .stderr(out)
            .spawn()
            .expect("spawn pgbench");
        let stop = Arc::new(AtomicBool::new(false));
        let mut client = self.pg.connect().expect("the acks writer connects");
        let flag = stop.clone();
        let writer = std::thread::spawn(move || ack_writer(&mut client, &flag));
        step(format!("load started: pgbench -c 4 -j 2 -T {seconds} and the acks writer"));
        Load {
            pgbench: Some(pgbench),
            pgbench_out: out_path,
            writer: Some(writer),
            stop,
            started: Instant::now(),
            seconds,
            started_ms: now_ms(),
        }
    }
}

/// One acknowledged commit: the row's id and the wall-clock time (ms since 1970) at which the
/// client saw its COMMIT return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub id: i64,
    pub at_ms: u64,
}

/// What the acknowledged-commits writer saw.
#[derive(Debug, Default)]
pub struct AckLog {
    pub acks: Vec<Ack>,
    /// Inserts whose outcome the client does not know (not counted as acknowledged).
    pub errors: Vec<String>,
}

fn ack_writer(client: &mut ::postgres::Client, stop: &AtomicBool) -> AckLog {
    let mut log = AckLog::default();
    let stmt = match client.prepare("INSERT INTO acks (id, at) VALUES ($1, now())") {
        Ok(s) => s,
        Err(e) => {
            log.errors.push(format!("prepare: {e}"));
            return log;
        }
    };
    let mut id: i64 = 0;
    while !stop.load(Ordering::Relaxed) {
        id += 1;
        // Autocommit: execute returns once the server reported the COMMIT done.
        match client.execute(&stmt, &[&id]) {
            Ok(_) => log.acks.push(Ack { id, at_ms: now_ms() }),
            Err(e) => {
                log.errors.push(format!("insert {id}: {e}"));
                if client.is_closed() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    log
}

/// A running load; [`Load::stop`] ends it.
pub struct Load {
    pgbench: Option<Child>,
    pgbench_out: PathBuf,
    writer: Option<JoinHandle<AckLog>>,
    stop: Arc<AtomicBool>,
    started: Instant,
    seconds: u64,
    pub started_ms: u64,
}

/// What a load did.
#[derive(Debug)]
pub struct LoadResult {
    pub acks: AckLog,
    pub started_ms: u64,
    pub stopped_ms: u64,
    /// pgbench's exit status and output.
    pub pgbench_ok: bool,
    pub pgbench_output: String,
}

impl LoadResult {
    /// pgbench's "tps = …" line, if it printed one.
    pub fn tps(&self) -> String {
        self.pgbench_output.lines().find(|l| l.starts_with("tps")).unwrap_or("(no tps line)").to_string()
    }
}

impl Load {
    /// Stops the acks writer now and pgbench (given 5 s past its planned end, then interrupted).
    pub fn stop(mut self) -> LoadResult {
        self.stop.store(true, Ordering::Relaxed);
        let acks = self.writer.take().expect("writer").join().expect("acks writer panicked");
        let stopped_ms = now_ms();
        let mut child = self.pgbench.take().expect("pgbench");
        let deadline = self.started + Duration::from_secs(self.seconds + 5);
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait pgbench") {
                break st;
            }
            if Instant::now() >= deadline {
                // SAFETY: kill with a valid pid of our own child.
                unsafe { libc::kill(i32::try_from(child.id()).expect("pid"), libc::SIGINT) };
                break child.wait().expect("wait pgbench");
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let pgbench_output = std::fs::read_to_string(&self.pgbench_out).unwrap_or_default();
        step(format!(
            "load stopped: {} acknowledged commits ({} errors); pgbench {status}",
            acks.acks.len(),
            acks.errors.len()
        ));
        LoadResult { acks, started_ms: self.started_ms, stopped_ms, pgbench_ok: status.success(), pgbench_output }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(mut c) = self.pgbench.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The sums of the pgbench invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sums {
    pub accounts: i64,
    pub branches: i64,
    pub tellers: i64,
    pub history: i64,
    pub history_rows: i64,
}

impl Sums {
    pub fn hold(&self) -> bool {
        self.accounts == self.branches && self.branches == self.tellers && self.tellers == self.history
    }
}

/// The verdict on one recovery point.
#[derive(Debug, Clone, Default)]
pub struct PointCheck {
    pub point: u64,
    pub cut_ms: u64,
    /// The export or the mount failed (nothing else was tried).
    pub restore_error: Option<String>,
    pub started: bool,
    pub start_error: Option<String>,
    /// pg_amcheck's exit code and output.
    pub amcheck_code: Option<i32>,
    pub amcheck_output: String,
    pub sums: Option<Sums>,
    pub sums_error: Option<String>,
    /// Acks acknowledged before the cut, rows in `acks`, and those missing.
    pub acks_expected: usize,
    pub acks_rows: usize,
    pub acks_missing: usize,
    pub missing_sample: Vec<i64>,
    pub acks_error: Option<String>,
    /// PostgreSQL's log tail, when something failed.
    pub log_tail: Option<String>,
    pub took: Duration,
}

impl PointCheck {
    /// What is wrong, one line each; empty when the point is good.
    pub fn failures(&self) -> Vec<String> {
        let mut f = vec![];
        if let Some(e) = &self.restore_error {
            f.push(format!("restore: {e}"));
            return f;
        }
        if !self.started {
            f.push(format!("PostgreSQL did not start: {}", self.start_error.as_deref().unwrap_or("?")));
            return f;
        }
        match self.amcheck_code {
            Some(0) if self.amcheck_output.trim().is_empty() => {}
            code => f.push(format!(
                "pg_amcheck (exit {code:?}) reports corruption: {}",
                first_lines(&self.amcheck_output, 6)
            )),
        }
        match (&self.sums, &self.sums_error) {
            (Some(s), _) if s.hold() => {}
            (Some(s), _) => f.push(format!(
                "pgbench invariant broken: accounts {} branches {} tellers {} history {} ({} rows)",
                s.accounts, s.branches, s.tellers, s.history, s.history_rows
            )),
            (None, e) => f.push(format!("pgbench sums: {}", e.as_deref().unwrap_or("not read"))),
        }
        if let Some(e) = &self.acks_error {
            f.push(format!("acks: {e}"));
        } else if self.acks_missing > 0 {
            f.push(format!(
                "{} of {} commits acknowledged before the cut are missing (e.g. ids {:?})",
                self.acks_missing, self.acks_expected, self.missing_sample
            ));
        }
        f
    }

    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// "pass (…)" or "FAIL: …".
    pub fn summary(&self) -> String {
        let f = self.failures();
        if f.is_empty() {
            let s = self.sums.expect("sums of a passed check");
            format!(
                "pass: started, amcheck clean, sums {} (history {} rows), {}/{} acked-before-cut present ({} rows)",
                s.accounts, s.history_rows, self.acks_expected, self.acks_expected, self.acks_rows
            )
        } else {
            format!("FAIL: {}", f.join("; "))
        }
    }
}

fn first_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut out = lines[..lines.len().min(n)].join(" | ");
    if lines.len() > n {
        out.push_str(&format!(" | … ({} lines in all)", lines.len()));
    }
    out
}

/// Removes files on drop (the exported images, after the loop devices are detached).
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// A recovery point restored onto loop devices and mounted. Dropping it stops its PostgreSQL,
/// unmounts, detaches and removes the images (field order).
pub struct Restored {
    pub point: u64,
    pub pg: PgServer,
    pub data: Mount,
    pub wal: Mount,
    pub data_lo: LoopDev,
    pub wal_lo: LoopDev,
    _files: Files,
}

/// Streams one disk of a point from the standby's API into a sparse image file; returns its
/// length.
pub fn export_disk(sb: &Standby, pair: &str, point: u64, disk: u32, out: &Path) -> Result<u64, String> {
    let url = format!("{}/api/v1/pairs/{pair}/points/{point}/disks/{disk}/image", sb.url());
    let http = crate::api::http_agent(sb.ca_file().as_deref(), std::time::Duration::from_secs(900));
    let mut req = http.get(&url);
    if let Some(t) = &sb.token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    let r = req.call().map_err(|e| format!("GET {url}: {e}"))?;
    let expected: Option<u64> =
        r.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let mut reader = r.into_body().into_reader();
    let f = std::fs::File::create(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let mut n = 0;
        while n < buf.len() {
            match reader.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(format!("export of point {point} disk {disk} cut short after {len} bytes: {e}")),
            }
        }
        if n == 0 {
            break;
        }
        // Zero blocks stay holes: the image is sparse like the source.
        let mut off = 0;
        for piece in buf[..n].chunks(64 << 10) {
            if piece.iter().any(|&b| b != 0) {
                f.write_all_at(piece, len + off).map_err(|e| format!("write {}: {e}", out.display()))?;
            }
            off += piece.len() as u64;
        }
        len += n as u64;
    }
    f.set_len(len).map_err(|e| format!("set_len: {e}"))?;
    f.sync_all().map_err(|e| format!("sync: {e}"))?;
    if expected.is_some_and(|e| e != len) {
        return Err(format!("export of point {point} disk {disk}: {len} bytes, Content-Length {expected:?}"));
    }
    Ok(len)
}

impl Restored {
    /// Exports both disks of `point` into `TEST_DIR/restore-TAG/`, attaches and mounts them
    /// (ext4 replays its journal), re-points `pg_wal` at the restored WAL filesystem.
    pub fn export(env: &TestEnv, sb: &Standby, pair: &str, point: u64, tag: &str) -> Result<Self, String> {
        let dir = env.mkdir(&format!("restore-{tag}"));
        let (data_img, wal_img) = (dir.join("data.img"), dir.join("wal.img"));
        let files = Files(vec![data_img.clone(), wal_img.clone()]);
        let t = Instant::now();
        let a = export_disk(sb, pair, point, 0, &data_img)?;
        let b = export_disk(sb, pair, point, 1, &wal_img)?;
        if (a, b) != (DATA_DISK, WAL_DISK) {
            return Err(format!("exported sizes {a} and {b}, expected {DATA_DISK} and {WAL_DISK}"));
        }
        let export_s = t.elapsed().as_secs_f64();
        let data_lo = LoopDev::attach(&data_img);
        let wal_lo = LoopDev::attach(&wal_img);
        let mount = |dev: &Path, dir: &Path| -> Result<Mount, String> {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            let o = Command::new("mount").args([dev, dir]).output().map_err(|e| format!("mount: {e}"))?;
            let text = String::from_utf8_lossy(&o.stderr);
            o.status
                .success()
                .then(|| Mount { dir: dir.to_path_buf() })
                .ok_or(format!("mount {}: {text}", dev.display()))
        };
        // On failure the guards made so far undo themselves here.
        let data = mount(&data_lo.dev, &dir.join("mnt-data"))?;
        let wal = mount(&wal_lo.dev, &dir.join("mnt-wal"))?;
        let pgdata = data.dir.join(PGDATA_DIR);
        let waldir = wal.dir.join(WAL_DIR);
        if !pgdata.join("PG_VERSION").is_file() {
            return Err(format!("no PG_VERSION in the restored {}", pgdata.display()));
        }
        if !waldir.is_dir() {
            return Err(format!("no {} on the restored WAL disk", waldir.display()));
        }
        let link = pgdata.join("pg_wal");
        std::fs::remove_file(&link).map_err(|e| format!("remove {}: {e}", link.display()))?;
        std::os::unix::fs::symlink(&waldir, &link).map_err(|e| format!("symlink: {e}"))?;
        // Names the protected server's postmaster, alive on this machine (see the module doc).
        let _ = std::fs::remove_file(pgdata.join("postmaster.pid"));
        chown_postgres(&pgdata);
        chown_postgres(&waldir);
        let pg = PgServer::new(&pgdata, &dir.join("sock"), &dir.join("postgresql.log"));
        step(format!("point {point}: exported both disks in {export_s:.1}s, mounted at {}", dir.display()));
        Ok(Self { point, pg, data, wal, data_lo, wal_lo, _files: files })
    }

    /// Starts PostgreSQL on the restored disks (crash recovery), checks, stops it again.
    /// `cut_ms`: the point's cut; every ack before it must be present.
    pub fn check(&mut self, cut_ms: u64, acks: &[Ack]) -> PointCheck {
        let t = Instant::now();
        let mut v = PointCheck { point: self.point, cut_ms, ..PointCheck::default() };
        match self.pg.start(120) {
            Ok(()) => v.started = true,
            Err(e) => v.start_error = Some(startup_failure(&e, &self.pg.log)),
        }
        if v.started {
            self.run_checks(&mut v, acks);
        }
        self.pg.stop();
        if !v.passed() {
            v.log_tail = Some(tail(&self.pg.log, 40));
        }
        v.took = t.elapsed();
        v
    }

    fn run_checks(&self, v: &mut PointCheck, acks: &[Ack]) {
        let mut args = self.pg.conn_args();
        args.extend(["--all", "--heapallindexed", "--install-missing"].map(String::from));
        match Command::new(bin("pg_amcheck")).args(&args).stdin(Stdio::null()).output() {
            Ok(o) => {
                v.amcheck_code = o.status.code();
                // A second check of one copy finds the extension installed by the first.
                let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
                v.amcheck_output =
                    text.lines().filter(|l| !l.contains("already exists, skipping")).collect::<Vec<_>>().join("\n");
            }
            Err(e) => v.amcheck_output = format!("cannot run pg_amcheck: {e}"),
        }
        let mut client = match self.pg.connect() {
            Ok(c) => c,
            Err(e) => {
                v.sums_error = Some(e.clone());
                v.acks_error = Some(e);
                return;
            }
        };
        let q = "SELECT (SELECT coalesce(sum(abalance), 0) FROM pgbench_accounts)::bigint, \
                        (SELECT coalesce(sum(bbalance), 0) FROM pgbench_branches)::bigint, \
                        (SELECT coalesce(sum(tbalance), 0) FROM pgbench_tellers)::bigint, \
                        (SELECT coalesce(sum(delta), 0) FROM pgbench_history)::bigint, \
                        (SELECT count(*) FROM pgbench_history)::bigint";
        match client.query_one(q, &[]) {
            Ok(r) => {
                v.sums = Some(Sums {
                    accounts: r.get(0),
                    branches: r.get(1),
                    tellers: r.get(2),
                    history: r.get(3),
                    history_rows: r.get(4),
                })
            }
            Err(e) => v.sums_error = Some(describe_pg_error(&e)),
        }
        match client.query("SELECT id FROM acks", &[]) {
            Ok(rows) => {
                let present: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
                v.acks_rows = present.len();
                let expected: Vec<i64> = acks.iter().filter(|a| a.at_ms < v.cut_ms).map(|a| a.id).collect();
                v.acks_expected = expected.len();
                let missing: Vec<i64> = expected.into_iter().filter(|id| !present.contains(id)).collect();
                v.acks_missing = missing.len();
                v.missing_sample = missing.into_iter().take(10).collect();
            }
            Err(e) => v.acks_error = Some(describe_pg_error(&e)),
        }
    }

    /// Overwrites 2 KiB in the middle of a page halfway through `relation`'s first segment in
    /// the restored copy (PostgreSQL is started to find the file, and stopped again before).
    /// Returns what was overwritten.
    pub fn corrupt_relation(&mut self, relation: &str) -> Result<String, String> {
        self.pg.start(120)?;
        let rel: Result<String, String> = self.pg.connect().and_then(|mut c| {
            c.query_one("SELECT pg_relation_filepath($1::text::regclass)", &[&relation])
                .map(|r| r.get::<_, String>(0))
                .map_err(|e| describe_pg_error(&e))
        });
        self.pg.stop();
        let file = self.pg.pgdata.join(rel?);
        let f = std::fs::OpenOptions::new().write(true).open(&file).map_err(|e| format!("{}: {e}", file.display()))?;
        let len = f.metadata().map_err(|e| e.to_string())?.len();
        let page = len / 8192 / 2;
        let off = page * 8192 + 3072;
        f.write_all_at(&[0xA5u8; 2048], off).map_err(|e| e.to_string())?;
        f.sync_all().map_err(|e| e.to_string())?;
        Ok(format!("{} (block {page} of {}, bytes {off}..{})", file.display(), len / 8192, off + 2048))
    }
}

/// Why PostgreSQL did not start, on one line: the log's last PANIC or FATAL line, else
/// pg_ctl's own words.
fn startup_failure(pg_ctl: &str, log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let fatal = text.lines().rev().find(|l| l.contains("PANIC:") || l.contains("FATAL:"));
    let fatal = fatal.map(|l| l.split_once("] ").map_or(l, |(_, m)| m).trim().to_string());
    fatal.unwrap_or_else(|| pg_ctl.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn describe_pg_error(e: &::postgres::Error) -> String {
    match e.as_db_error() {
        Some(d) => format!("{}: {} ({})", d.severity(), d.message(), d.code().code()),
        None => e.to_string(),
    }
}

/// Restores `point` (both disks) and checks it; the verdict says what failed, including a
/// failed export or mount. Everything is undone before it returns.
pub fn check_point(env: &TestEnv, sb: &Standby, pair: &str, point: &RecoveryPoint, acks: &[Ack]) -> PointCheck {
    let t = Instant::now();
    match Restored::export(env, sb, pair, point.id, &point.id.to_string()) {
        Ok(mut r) => {
            let mut v = r.check(point.time_unix_ms, acks);
            drop(r);
            v.took = t.elapsed();
            v
        }
        Err(e) => PointCheck {
            point: point.id,
            cut_ms: point.time_unix_ms,
            restore_error: Some(e),
            took: t.elapsed(),
            ..PointCheck::default()
        },
    }
}
