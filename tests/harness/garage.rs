//! A real garage cluster for the object-store tests: three `garage server` processes on
//! 127.0.0.1 ports in the test's directory, replication factor 3 (one zone per node), a key
//! and a bucket the key may read and write. Every node is killed when the cluster drops.
//!
//! garage comes from `scripts/setup.sh` (`/var/cache/drpair-tools/garage/bin/garage`, or
//! `DRPAIR_GARAGE_BIN`). When it is absent, [`Garage::start`] prints that the test is
//! SKIPPED and returns None: such a test never passes silently.

use crate::env::TestEnv;
use crate::process::Daemon;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where `scripts/setup.sh` installs garage.
pub const DEFAULT_GARAGE_BIN: &str = "/var/cache/drpair-tools/garage/bin/garage";
/// The region the cluster's S3 API answers to.
pub const REGION: &str = "garage";

pub struct GarageNode {
    pub proc: Daemon,
    pub config: PathBuf,
    pub rpc: SocketAddr,
    pub s3: SocketAddr,
    pub id: String,
}

pub struct Garage {
    pub bin: PathBuf,
    pub nodes: Vec<GarageNode>,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

/// The garage binary, if installed.
pub fn garage_bin() -> Option<PathBuf> {
    let p = std::env::var_os("DRPAIR_GARAGE_BIN").map_or_else(|| PathBuf::from(DEFAULT_GARAGE_BIN), PathBuf::from);
    p.is_file().then_some(p)
}

/// Prints a test's SKIPPED line (stdout and stderr, so it shows with or without capture).
pub fn skipped(test: &str, why: &str) {
    let line = format!("SKIPPED {test}: {why}");
    println!("{line}");
    eprintln!("{line}");
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port")
}

impl Garage {
    /// Starts a 3-node cluster with replication factor 3 and creates `bucket` and a key for
    /// it. None (after printing SKIPPED for `test`) when garage is not installed.
    pub fn start(env: &TestEnv, test: &str, bucket: &str) -> Option<Garage> {
        let Some(bin) = garage_bin() else {
            skipped(test, &format!("garage is not installed at {DEFAULT_GARAGE_BIN} (run scripts/setup.sh)"));
            return None;
        };
        let secret: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let mut nodes = Vec::new();
        for i in 0..3 {
            let dir = env.mkdir(&format!("garage{i}"));
            let (rpc, s3, admin) = (free_port(), free_port(), free_port());
            let config = dir.join("garage.toml");
            std::fs::write(
                &config,
                format!(
                    "metadata_dir = \"{d}/meta\"\ndata_dir = \"{d}/data\"\ndb_engine = \"lmdb\"\n\
                     replication_factor = 3\nrpc_bind_addr = \"{rpc}\"\nrpc_public_addr = \"{rpc}\"\n\
                     rpc_secret = \"{secret}\"\n\n[s3_api]\ns3_region = \"{REGION}\"\napi_bind_addr = \"{s3}\"\n\
                     root_domain = \".s3.garage.localhost\"\n\n[admin]\napi_bind_addr = \"{admin}\"\n",
                    d = dir.display()
                ),
            )
            .expect("garage config");
            let log = env.path(&format!("garage{i}.log"));
            env.add_log(&format!("garage{i}"), &log);
            let args = vec!["-c".into(), config.clone().into(), "server".into()];
            let envs = vec![("RUST_LOG".into(), "garage=warn".into())];
            let mut proc = Daemon::new(&format!("garage{i}"), &bin, args, envs, log);
            proc.start();
            nodes.push(GarageNode { proc, config, rpc, s3, id: String::new() });
        }
        let mut g = Garage { bin, nodes, bucket: bucket.into(), key_id: String::new(), secret: String::new() };
        for i in 0..3 {
            let id = crate::wait_until(&format!("garage node {i}'s id"), Duration::from_secs(30), || {
                g.try_cli(i, &["node", "id", "-q"]).map(|s| s.trim().to_string())
            });
            g.nodes[i].id = id.split('@').next().unwrap_or_default().to_string();
        }
        g.connect_all();
        for i in 0..3 {
            let (id, zone) = (g.nodes[i].id.clone(), format!("dc{i}"));
            g.cli(0, &["layout", "assign", "-z", &zone, "-c", "1G", &id]);
        }
        g.cli(0, &["layout", "apply", "--version", "1"]);
        let key = crate::wait_until("garage to create a key", Duration::from_secs(30), || {
            g.try_cli(0, &["key", "create", "drpair-test"])
        });
        let field = |name: &str| {
            key.lines()
                .find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
                .unwrap_or_else(|| panic!("no '{name}' in garage key create's output:\n{key}"))
        };
        g.key_id = field("Key ID:");
        g.secret = field("Secret key:");
        crate::wait_until("garage to create the bucket", Duration::from_secs(30), || {
            g.try_cli(0, &["bucket", "create", bucket])
        });
        g.cli(0, &["bucket", "allow", "--read", "--write", "--owner", bucket, "--key", "drpair-test"]);
        crate::step(format!(
            "garage: 3 nodes, replication factor 3, S3 at {}, {}, {}; bucket {bucket}",
            g.nodes[0].s3, g.nodes[1].s3, g.nodes[2].s3
        ));
        Some(g)
    }

    /// `garage -c NODE_CONFIG ARGS…`; its stdout, or stdout and stderr as the error.
    pub fn try_cli(&self, node: usize, args: &[&str]) -> Result<String, String> {
        let out = std::process::Command::new(&self.bin)
            .arg("-c")
            .arg(&self.nodes[node].config)
            .args(args)
            .env("RUST_LOG", "error")
            .output()
            .map_err(|e| e.to_string())?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            Ok(text)
        } else {
            Err(format!("garage {args:?}: {}{text}{}", out.status, String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Like [`Garage::try_cli`], panicking on failure.
    pub fn cli(&self, node: usize, args: &[&str]) -> String {
        self.try_cli(node, args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The S3 endpoint of a node, as `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, node: usize) -> String {
        format!("http://{}", self.nodes[node].s3)
    }

    /// Writes a credentials file (mode 0600) for the standby.
    pub fn credentials_file(&self, path: &Path) {
        std::fs::write(path, format!("access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n", self.key_id, self.secret))
            .expect("credentials file");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).expect("chmod");
    }

    /// A standby config file `name` in `env` that keeps the chunks in this cluster's bucket
    /// (through node `node`, under `prefix`, with the credentials in a file beside it); `s3`
    /// holds more lines of `[standby.s3]` (pack size, cache, ...).
    pub fn standby_config(&self, env: &TestEnv, node: usize, name: &str, prefix: &str, s3: &str) -> PathBuf {
        let creds = env.path("s3.credentials");
        self.credentials_file(&creds);
        let cfg = env.path(name);
        std::fs::write(
            &cfg,
            format!(
                "[standby]\nstore = \"s3\"\n\n[standby.s3]\nendpoint = \"{}\"\nregion = \"{REGION}\"\nbucket = \"{}\"\n\
                 prefix = \"{prefix}\"\ncredentials_file = \"{}\"\n{s3}",
                self.endpoint(node),
                self.bucket,
                creds.display()
            ),
        )
        .expect("standby config");
        cfg
    }

    /// The bucket's object count as garage reports it (`bucket info`; garage updates it
    /// within seconds of the writes).
    pub fn object_count(&self) -> u64 {
        let info = self.cli(0, &["bucket", "info", &self.bucket]);
        info.lines()
            .find_map(|l| l.trim().strip_prefix("Objects:").and_then(|v| v.split_whitespace().next()?.parse().ok()))
            .unwrap_or_else(|| panic!("no object count in garage bucket info:\n{info}"))
    }

    /// The bucket's size line as garage reports it (`bucket info`, e.g. `38.2 MiB (40.1 MB)`).
    pub fn size_text(&self) -> String {
        let info = self.cli(0, &["bucket", "info", &self.bucket]);
        info.lines().find_map(|l| l.trim().strip_prefix("Size:").map(|v| v.trim().to_string())).unwrap_or_default()
    }

    /// The bucket's size in bytes as garage reports it (`bucket info`, its first figure, e.g.
    /// `93.7 MB (89.3 MiB)`: three significant digits).
    #[allow(clippy::cast_possible_truncation)] // a bucket's size, far below 2^64 bytes
    pub fn size_bytes(&self) -> u64 {
        let text = self.size_text();
        let mut it = text.split_whitespace();
        let n: f64 = it.next().and_then(|n| n.parse().ok()).unwrap_or_else(|| panic!("bucket size '{text}'"));
        let unit = match it.next().unwrap_or("B").trim_matches(|c| c == '(' || c == ')') {
            "B" => 1.0,
            "KB" | "kB" => 1e3,
            "MB" => 1e6,
            "GB" => 1e9,
            "KiB" => 1024.0,
            "MiB" => 1024.0 * 1024.0,
            "GiB" => 1024.0 * 1024.0 * 1024.0,
            other => panic!("bucket size '{text}': unit {other}"),
        };
        (n * unit) as u64
    }

    /// Stops (SIGKILL) every node.
    pub fn kill_all(&mut self) {
        for n in &mut self.nodes {
            n.proc.kill9();
        }
    }

    /// Starts every stopped node again and has node 0 connect to the others (as an operator
    /// would: nodes started together do not always find each other again by themselves).
    pub fn start_all(&mut self) {
        for n in &mut self.nodes {
            if !n.proc.is_running() {
                n.proc.start();
            }
        }
        self.connect_all();
    }

    fn connect_all(&self) {
        for i in 1..self.nodes.len() {
            let peer = format!("{}@{}", self.nodes[i].id, self.nodes[i].rpc);
            crate::wait_until(&format!("garage node 0 to connect to node {i}"), Duration::from_secs(30), || {
                self.try_cli(0, &["node", "connect", &peer])
            });
        }
    }
}
