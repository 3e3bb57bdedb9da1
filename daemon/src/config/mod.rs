//! Configuration of the daemons: a TOML file (`--config FILE`, unknown keys refused) and
//! flags for the essentials; a flag wins over the file, the file over the defaults written
//! here (the only place defaults live).

use anyhow::{Context, Result, bail};
use drpair_types::{ChunkSize, DEFAULT_API_PORT, DEFAULT_LINK_PORT, PairId};
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod chunk_store;
#[cfg(test)]
mod hostile_tests;
pub mod notify;
mod rpo;
mod tls;
pub use chunk_store::S3File;
pub use tls::{AgentTrust, StandbyLinkSecurity};

/// Where the standby keeps its store when neither flag nor file says (`[standby] data_dir`).
pub use drpair_types::DEFAULT_STANDBY_DATA_DIR;

/// A config file holds a `[standby]` table, an `[agent]` table, or both.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub standby: Option<StandbyFile>,
    pub agent: Option<AgentFile>,
}

/// `[standby]` as written in a file; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandbyFile {
    /// Where the store (rocksdb) lives. Default `/var/lib/drpair/standby`.
    pub data_dir: Option<PathBuf>,
    /// Replication link address. Default `0.0.0.0:7700`.
    pub listen: Option<String>,
    /// HTTP API, panel and metrics address. Default `127.0.0.1:7701`.
    pub api_listen: Option<String>,
    /// File holding the token agents and API clients must present. Default: none (open).
    pub token_file: Option<PathBuf>,
    /// Start copying a pair as soon as its agent registers. With `false`, a new pair waits
    /// (state Initiating) for `drpair start PAIR --type start`. Default `true`.
    pub auto_start: Option<bool>,
    /// A pair whose agent comes back with disks that only grew takes them at once (older
    /// points keep their size). With `false` (the default) the pair waits in *Configuration
    /// changed* for `drpair pairs adopt-growth PAIR` or `drpair restart PAIR`.
    pub adopt_growth: Option<bool>,
    /// Free space kept on the data filesystem: pairs stop ingesting at it
    /// (`STOPPED_DUE_TO_LOW_DISK`) and resume above it plus half. `5%`, `2GiB`, `0` (none).
    /// Default: 5% of the filesystem, at most 2 GiB.
    pub disk_reserve: Option<String>,
    /// Available memory (MemAvailable) below which pairs stop ingesting
    /// (`STOPPED_DUE_TO_LOW_MEMORY`) and above which plus half they resume. `0`: never.
    /// Default `128MiB`.
    pub memory_reserve: Option<String>,
    /// The standby-wide bandwidth limit on bytes on the wire from every agent together: a
    /// rate (`100MiB/s`, `400Mbit/s`) or a schedule in the standby's local time
    /// (`Mon-Fri 08:00-18:00 = 10MiB/s; * = unlimited`). A pair may have its own limit too
    /// (`drpair pairs set PAIR --bandwidth`). Changed live with `drpair standby set
    /// --bandwidth`, which the standby keeps over restarts. Default `unlimited`.
    pub bandwidth: Option<String>,
    /// Default retention grid of every pair (a pair may have its own, set through the API).
    /// Default `1x10m(keep=all) | 60x1m | 144x10m | 168x1h | 30x1d`.
    pub retention_grid: Option<String>,
    /// The newest N points are always kept. Default 10.
    pub keep_last: Option<u32>,
    /// How often each pair is pruned (and space reclaimed), e.g. `1m`; `0` never. Default `1m`.
    pub prune_interval: Option<String>,
    /// How often every point of each pair is verified (stored chunks re-read and re-hashed),
    /// e.g. `7d`; `0` never. Default `7d`.
    pub verify_interval: Option<String>,
    /// A point whose reads took longer than this after its cut (and that is not
    /// app-consistent) is marked `window_exceeded`: "latest" choices pass it over. Default `2s`.
    pub max_read_window: Option<String>,
    /// The server certificate chain (PEM, leaf first) the link and API present instead of the
    /// standby's own (made on first start in `DATA_DIR/tls/`). Needs `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// The private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// More CA certificates (PEM) whose client certificates are accepted from agents, besides
    /// the standby's own CA (which signs enrolled agents).
    pub client_ca: Option<PathBuf>,
    /// No TLS on the link: chunks and credentials cross the network readable. Only with agents
    /// started the same way; warned about at every start and in status. Default `false`.
    pub insecure_plaintext: Option<bool>,
    /// Where failover targets, failback sources and dump images may be: `DIR/*` (anything
    /// below DIR) or exact paths. Default `["/dev/*", "/srv/drpair/*"]`.
    pub allowed_paths: Option<Vec<String>>,
    /// Serve the API and panel over plain HTTP instead of HTTPS: only when `api_listen` is a
    /// loopback address (behind a local TLS proxy, or for a lab). Default `false`.
    pub api_plain_http: Option<bool>,
    /// How long a certificate issued to an enrolled agent is valid, e.g. `90d` (1m..10y); the
    /// agent renews it over its link when a third is left. Default `90d`.
    pub agent_cert_ttl: Option<String>,
    /// When and where operators are told that something needs them (`[standby.notify]`).
    pub notify: Option<notify::NotifyFile>,
    /// The RPO target of every pair without one of its own (`30s`, `5m`, `2h`, `1d`): a pair
    /// is in warning once its newest point is this old. `off`: none. Default: none.
    pub rpo_target: Option<String>,
    /// The error threshold of that default (over `rpo_target`). Default: twice `rpo_target`.
    pub rpo_error: Option<String>,
    /// Where chunk bytes live: `local` (rocksdb in `data_dir`) or `s3` (packs in the bucket
    /// of `[standby.s3]`). Default `local`.
    pub store: Option<String>,
    /// The object store of `store = "s3"` (`config/chunk_store.rs`).
    pub s3: Option<S3File>,
}

/// `[agent]` as written in a file; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    pub pair: Option<String>,
    pub disks: Option<Vec<PathBuf>>,
    /// Standby link address `HOST:PORT`.
    pub standby: Option<String>,
    /// Where change maps live. Default `/var/lib/drpair/agent`.
    pub state_dir: Option<PathBuf>,
    /// `auto` (tracefs when every disk is a block device and tracefs is usable, else scan),
    /// `tracefs` (the kernel's block tracepoint; refuses to start where it cannot work), or
    /// `scan` (no kernel help: read and hash every chunk at each cut). Default `auto`.
    pub tracker: Option<String>,
    /// Per-CPU ring buffer of the tracefs instance, in KiB (4..=1048576). Default 32768.
    pub tracefs_buffer_kib: Option<u64>,
    /// Filesystems (mount points) to freeze around app-consistent cuts.
    pub freeze: Option<Vec<PathBuf>>,
    /// Script run before an app-consistent cut (exit 0 = applications quiesced).
    pub pre_hook: Option<PathBuf>,
    /// Script run after the cut's reads, whatever happened (resume the applications).
    pub post_hook: Option<PathBuf>,
    /// Longest time applications stay frozen; past it they are thawed anyway and the attempt
    /// is recorded as failed. Default `2s`.
    pub thaw_budget: Option<String>,
    /// Cut an app-consistent point this often (needs `freeze` or hooks). Default: never.
    pub app_consistent_interval: Option<String>,
    /// Time between scheduled cuts, e.g. `30s`, `5m`. Default `30s`.
    pub cut_interval: Option<String>,
    /// Chunk size in bytes, power of two 4096..=4194304. Default 65536.
    pub chunk_size: Option<u64>,
    /// `auto` (adapts to the link), `off`, or `zstd:LEVEL` (1..=19). Default `auto`.
    pub compression: Option<String>,
    pub token_file: Option<PathBuf>,
    /// Reader threads for hashing and compression. Default: number of CPUs + 2.
    pub workers: Option<usize>,
    /// Run the snapshot command of `drpair marker dump --exec` (sent through the standby's
    /// API) on this server, as the agent's user. Default `false`: a command from the API is
    /// refused unless the server's owner allowed it here.
    pub marker_exec: Option<bool>,
    /// Read each incremental epoch right after its cut into a spool, then ship from it, so a
    /// point's read window does not depend on the link. Default `true`.
    pub spool: Option<bool>,
    /// MiB of an epoch the spool holds in memory before it uses its file. Default 256.
    pub spool_memory_mib: Option<u64>,
    /// Directory of the spool file. Default `STATE_DIR/spool`. A directory on a protected disk
    /// is not used (its writes would be shipped) unless `spool_on_protected_disk` is set.
    pub spool_dir: Option<PathBuf>,
    /// MiB the spool file may hold. Default 4096; `0`: memory only.
    pub spool_file_mib: Option<u64>,
    /// Allow the spool directory on a protected disk. Default `false`.
    pub spool_on_protected_disk: Option<bool>,
    /// The standby's fingerprint (`drpaird standby fingerprint` on it prints it): the link is
    /// refused unless the standby presents it. Default: the one saved at enrollment.
    pub standby_fingerprint: Option<String>,
    /// A CA file the standby's certificate must chain to (instead of a fingerprint).
    pub standby_ca: Option<PathBuf>,
    /// No TLS on the link (only with a standby started the same way). Default `false`.
    pub insecure_plaintext: Option<bool>,
    /// I/O class of the agent's disk reads, so they yield to the server's own work: `idle`
    /// (only when the disk is otherwise idle), `best-effort` or `best-effort:N` (N 0..=7,
    /// 7 lowest), or `inherit` (leave the process's class). Default `idle`.
    pub io_priority: Option<String>,
    /// CPU niceness of the agent (hashing and compression), -20..=19. Default 10.
    pub nice: Option<i32>,
}

/// The standby's complete configuration.
#[derive(Debug, Clone)]
pub struct StandbyConfig {
    pub data_dir: PathBuf,
    pub listen: SocketAddr,
    pub api_listen: SocketAddr,
    pub token: Option<String>,
    /// Where the token was read from (kept out of a drill check's reach).
    pub token_file: Option<PathBuf>,
    pub auto_start: bool,
    pub adopt_growth: bool,
    pub disk_reserve: crate::standby::resources::Reserve,
    pub memory_reserve: u64,
    /// The standby-wide bandwidth setting of the config (the live one may differ).
    pub bandwidth: drpair_types::Schedule,
    pub retention: drpair_retention::Policy,
    /// Zero: never by itself.
    pub prune_interval: Duration,
    /// Zero: never by itself.
    pub verify_interval: Duration,
    /// Longest read window of a point that is trusted without being app-consistent.
    pub max_read_window: Duration,
    pub link_security: StandbyLinkSecurity,
    pub agent_cert_ttl: Duration,
    /// The API without TLS (loopback only).
    pub api_plain_http: bool,
    pub allowed_paths: Vec<String>,
    pub notify: notify::NotifyConfig,
    /// The RPO target of pairs without their own (`config/rpo.rs`).
    pub rpo_default: Option<drpair_types::rpo::RpoDefault>,
    /// Where chunk bytes live (`config/chunk_store.rs`); credentials redacted in Debug.
    pub chunk_backend: drpair_store::ChunkBackend,
}

/// How chunks are compressed on the wire and at rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompressionSetting {
    /// Start at zstd level 1 and adapt to the link.
    Auto,
    Off,
    Zstd(i32),
}

/// The agent's complete configuration.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub pair: PairId,
    pub disks: Vec<PathBuf>,
    pub standby: String,
    pub state_dir: PathBuf,
    pub tracker: String,
    pub tracefs_buffer_kib: u64,
    pub quiesce: QuiesceConfig,
    pub cut_interval: Duration,
    pub chunk_size: ChunkSize,
    pub compression: CompressionSetting,
    pub token: Option<String>,
    pub workers: usize,
    pub reinit: bool,
    /// `marker_exec`: run snapshot commands of coordinated dump markers.
    pub marker_exec: bool,
    /// Where incremental epochs are spooled; `None`: read while sending.
    pub spool: Option<SpoolSettings>,
    pub trust: AgentTrust,
    pub io_priority: crate::agent::priority::IoPriority,
    pub nice: i32,
}

/// The agent's spool as configured (the directory is checked at start: see
/// `agent::spool_config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolSettings {
    pub memory_bytes: u64,
    pub dir: PathBuf,
    pub file_bytes: u64,
    pub on_protected_disk: bool,
}

/// Default memory of the spool, MiB.
pub const DEFAULT_SPOOL_MEMORY_MIB: u64 = 256;
/// Default size of the spool file, MiB.
pub const DEFAULT_SPOOL_FILE_MIB: u64 = 4096;

/// How the agent quiesces applications for app-consistent cuts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuiesceConfig {
    /// Mount points frozen for scheduled app-consistent cuts.
    pub freeze: Vec<PathBuf>,
    pub pre_hook: Option<PathBuf>,
    pub post_hook: Option<PathBuf>,
    pub thaw_budget: Duration,
    /// Scheduled app-consistent cuts; `None`: only on request.
    pub interval: Option<Duration>,
}

impl Default for QuiesceConfig {
    fn default() -> Self {
        Self { freeze: vec![], pre_hook: None, post_hook: None, thaw_budget: DEFAULT_THAW_BUDGET, interval: None }
    }
}

/// Default bound of a trusted point's read window.
pub const DEFAULT_MAX_READ_WINDOW: Duration = Duration::from_secs(2);
/// Default time applications may stay frozen.
pub const DEFAULT_THAW_BUDGET: Duration = Duration::from_secs(2);
/// Trackers `tracker` accepts.
pub const TRACKER_CHOICES: &[&str] = &["auto", "tracefs", "scan"];

fn parse_duration(key: &str, s: &str, min: Duration, max: Duration) -> Result<Duration> {
    let d = humantime::parse_duration(s).with_context(|| format!("{key} '{s}' is not a duration like 2s or 500ms"))?;
    if d < min || d > max {
        bail!(
            "{key} '{s}' must be between {} and {}",
            humantime::format_duration(min),
            humantime::format_duration(max)
        );
    }
    Ok(d)
}

fn absolute(key: &str, p: &Path) -> Result<()> {
    if !p.is_absolute() {
        bail!("{key} '{}' must be an absolute path", p.display());
    }
    Ok(())
}

/// Reads and parses a config file (unknown keys are errors naming the key).
pub fn load_file(path: &Path) -> Result<ConfigFile> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config file {}", path.display()))
}

fn read_token(path: &Path) -> Result<String> {
    let t = std::fs::read_to_string(path).with_context(|| format!("cannot read token file {}", path.display()))?;
    let t = t.lines().next().unwrap_or("").trim().to_string();
    if t.len() < 8 {
        bail!("token in {} is shorter than 8 characters", path.display());
    }
    Ok(t)
}

fn parse_addr(what: &str, s: &str) -> Result<SocketAddr> {
    s.parse().with_context(|| {
        format!("{what} '{s}' is not an address of the form HOST:PORT (e.g. 127.0.0.1:{DEFAULT_API_PORT})")
    })
}

impl StandbyFile {
    /// Applies flags (`Some` wins) and defaults, and validates.
    pub fn resolve(self, flags: StandbyFile) -> Result<StandbyConfig> {
        let data_dir = flags.data_dir.or(self.data_dir).unwrap_or_else(|| DEFAULT_STANDBY_DATA_DIR.into());
        let listen = flags.listen.or(self.listen).unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_LINK_PORT}"));
        let api = flags.api_listen.or(self.api_listen).unwrap_or_else(|| format!("127.0.0.1:{DEFAULT_API_PORT}"));
        let token_file = flags.token_file.or(self.token_file);
        let token = match &token_file {
            Some(p) => Some(read_token(p)?),
            None => None,
        };
        let api_listen = parse_addr("api_listen", &api)?;
        let api_plain_http = flags.api_plain_http.or(self.api_plain_http).unwrap_or(false);
        if api_plain_http && !api_listen.ip().is_loopback() {
            bail!(
                "api_plain_http: plain HTTP is allowed only on a loopback address, and api_listen is {api_listen}; serve HTTPS (the default) or listen on 127.0.0.1"
            );
        }
        Ok(StandbyConfig {
            data_dir,
            listen: parse_addr("listen", &listen)?,
            api_listen,
            api_plain_http,
            allowed_paths: {
                let v =
                    flags.allowed_paths.filter(|v| !v.is_empty()).or(self.allowed_paths).unwrap_or_else(|| {
                        crate::standby::paths::DEFAULT_ALLOWED.iter().map(|s| s.to_string()).collect()
                    });
                for a in &v {
                    if !a.starts_with('/') || a.contains("..") {
                        bail!("allowed_paths: '{a}' must be an absolute path (DIR/* for anything below DIR)");
                    }
                }
                v
            },
            token,
            token_file,
            auto_start: flags.auto_start.or(self.auto_start).unwrap_or(true),
            adopt_growth: flags.adopt_growth.or(self.adopt_growth).unwrap_or(false),
            disk_reserve: match flags.disk_reserve.or(self.disk_reserve) {
                Some(t) => {
                    crate::standby::resources::Reserve::parse(&t).map_err(|e| anyhow::anyhow!("disk_reserve: {e}"))?
                }
                None => crate::standby::resources::Reserve::Default,
            },
            memory_reserve: crate::standby::resources::parse_bytes(
                flags.memory_reserve.or(self.memory_reserve).as_deref().unwrap_or("128MiB"),
            )
            .map_err(|e| anyhow::anyhow!("memory_reserve: {e}"))?,
            bandwidth: match flags.bandwidth.or(self.bandwidth) {
                Some(t) => drpair_types::Schedule::parse(&t).map_err(|e| anyhow::anyhow!("bandwidth: {e}"))?,
                None => drpair_types::Schedule::unlimited(),
            },
            retention: {
                let grid = flags.retention_grid.or(self.retention_grid);
                let keep_last = flags.keep_last.or(self.keep_last).unwrap_or(drpair_retention::DEFAULT_KEEP_LAST);
                drpair_retention::Policy::parse(grid.as_deref().unwrap_or(drpair_retention::DEFAULT_GRID), keep_last)
                    .context("retention_grid / keep_last")?
            },
            prune_interval: parse_interval("prune_interval", flags.prune_interval.or(self.prune_interval), "1m")?,
            verify_interval: parse_interval("verify_interval", flags.verify_interval.or(self.verify_interval), "7d")?,
            max_read_window: match flags.max_read_window.or(self.max_read_window) {
                Some(s) => {
                    parse_duration("max_read_window", &s, Duration::from_millis(100), Duration::from_secs(86_400))?
                }
                None => DEFAULT_MAX_READ_WINDOW,
            },
            link_security: StandbyLinkSecurity::resolve(
                flags.tls_cert.or(self.tls_cert),
                flags.tls_key.or(self.tls_key),
                flags.client_ca.or(self.client_ca),
                flags.insecure_plaintext.or(self.insecure_plaintext).unwrap_or(false),
            )?,
            agent_cert_ttl: match flags.agent_cert_ttl.or(self.agent_cert_ttl) {
                Some(s) => {
                    parse_duration("agent_cert_ttl", &s, Duration::from_secs(60), Duration::from_secs(3650 * 86_400))?
                }
                None => Duration::from_secs(90 * 86_400),
            },
            notify: flags.notify.or(self.notify).unwrap_or_default().resolve().context("[standby.notify]")?,
            rpo_default: rpo::default_of(
                flags.rpo_target.or(self.rpo_target).as_deref(),
                flags.rpo_error.or(self.rpo_error).as_deref(),
            )?,
            chunk_backend: {
                let s3 = flags.s3.or(self.s3);
                chunk_store::backend_of(flags.store.or(self.store).as_deref(), s3.as_ref())?
            },
        })
    }
}

/// The spool's settings from flags and file (`None` when `spool = false`).
fn spool_settings(flags: &AgentFile, file: &AgentFile, state_dir: &Path) -> Result<Option<SpoolSettings>> {
    if !flags.spool.or(file.spool).unwrap_or(true) {
        return Ok(None);
    }
    let memory = flags.spool_memory_mib.or(file.spool_memory_mib).unwrap_or(DEFAULT_SPOOL_MEMORY_MIB);
    if !(16..=65_536).contains(&memory) {
        bail!("spool_memory_mib {memory} must be between 16 and 65536");
    }
    let file_mib = flags.spool_file_mib.or(file.spool_file_mib).unwrap_or(DEFAULT_SPOOL_FILE_MIB);
    if file_mib > 16 << 20 {
        bail!("spool_file_mib {file_mib} must be at most 16777216 (16 TiB)");
    }
    let dir = match flags.spool_dir.clone().or(file.spool_dir.clone()) {
        Some(d) => {
            absolute("spool_dir", &d)?;
            d
        }
        None => state_dir.join("spool"),
    };
    Ok(Some(SpoolSettings {
        memory_bytes: memory << 20,
        dir,
        file_bytes: file_mib << 20,
        on_protected_disk: flags.spool_on_protected_disk.or(file.spool_on_protected_disk).unwrap_or(false),
    }))
}

/// A schedule interval: a humantime duration, or `0` / `off` for never.
fn parse_interval(what: &str, value: Option<String>, default: &str) -> Result<Duration> {
    let v = value.unwrap_or_else(|| default.to_string());
    if v.trim() == "0" || v.trim() == "off" {
        return Ok(Duration::ZERO);
    }
    let d = humantime::parse_duration(v.trim())
        .map_err(|e| anyhow::anyhow!("{what} '{v}' is not a duration like 30s, 10m, 7d, or 0 for never: {e}"))?;
    if d < Duration::from_secs(1) {
        bail!("{what} '{v}' is shorter than 1s");
    }
    Ok(d)
}

/// Parses `auto`, `off`, `zstd:N`.
pub fn parse_compression(s: &str) -> Result<CompressionSetting> {
    match s {
        "auto" => Ok(CompressionSetting::Auto),
        "off" | "none" => Ok(CompressionSetting::Off),
        _ => {
            let level = s.strip_prefix("zstd:").and_then(|l| l.parse::<i32>().ok()).filter(|l| (1..=19).contains(l));
            match level {
                Some(l) => Ok(CompressionSetting::Zstd(l)),
                None => bail!("compression '{s}' must be auto, off, or zstd:LEVEL with LEVEL 1..=19"),
            }
        }
    }
}

impl AgentFile {
    /// Applies flags (`Some` wins) and defaults, and validates.
    pub fn resolve(self, flags: AgentFile, reinit: bool) -> Result<AgentConfig> {
        let state_dir =
            flags.state_dir.clone().or(self.state_dir.clone()).unwrap_or_else(|| "/var/lib/drpair/agent".into());
        let spool = spool_settings(&flags, &self, &state_dir)?;
        let pair = flags.pair.or(self.pair).context("no pair id: give --pair or `pair` in [agent]")?;
        let pair = PairId::new(pair).context("pair")?;
        let disks = flags.disks.filter(|d| !d.is_empty()).or(self.disks).unwrap_or_default();
        if disks.is_empty() {
            bail!("no disk: give --disk PATH (repeatable) or `disks` in [agent]");
        }
        let standby =
            flags.standby.or(self.standby).context("no standby: give --standby HOST:PORT or `standby` in [agent]")?;
        if !standby.contains(':') {
            bail!("standby '{standby}' must be HOST:PORT (the standby's link port, default {DEFAULT_LINK_PORT})");
        }
        let tracker = flags.tracker.or(self.tracker).unwrap_or_else(|| "auto".into());
        if !TRACKER_CHOICES.contains(&tracker.as_str()) {
            bail!("tracker '{tracker}' is not known; known trackers: {}", TRACKER_CHOICES.join(", "));
        }
        let tracefs_buffer_kib = flags.tracefs_buffer_kib.or(self.tracefs_buffer_kib).unwrap_or(32768);
        if !(4..=1_048_576).contains(&tracefs_buffer_kib) {
            bail!("tracefs_buffer_kib {tracefs_buffer_kib} must be between 4 and 1048576");
        }
        let quiesce = QuiesceConfig {
            freeze: flags.freeze.filter(|f| !f.is_empty()).or(self.freeze).unwrap_or_default(),
            pre_hook: flags.pre_hook.or(self.pre_hook),
            post_hook: flags.post_hook.or(self.post_hook),
            thaw_budget: match flags.thaw_budget.or(self.thaw_budget) {
                Some(s) => parse_duration("thaw_budget", &s, Duration::from_millis(100), Duration::from_secs(60))?,
                None => DEFAULT_THAW_BUDGET,
            },
            interval: match flags.app_consistent_interval.or(self.app_consistent_interval) {
                Some(s) => Some(parse_duration(
                    "app_consistent_interval",
                    &s,
                    Duration::from_secs(1),
                    Duration::from_secs(366 * 86_400),
                )?),
                None => None,
            },
        };
        for p in quiesce.freeze.iter().chain(&quiesce.pre_hook).chain(&quiesce.post_hook) {
            absolute("freeze/pre_hook/post_hook", p)?;
        }
        if quiesce.interval.is_some() && quiesce.freeze.is_empty() && quiesce.pre_hook.is_none() {
            bail!("app_consistent_interval needs `freeze` mount points or a `pre_hook` to quiesce the applications");
        }
        let interval = flags.cut_interval.or(self.cut_interval).unwrap_or_else(|| "30s".into());
        let cut_interval = humantime::parse_duration(&interval)
            .with_context(|| format!("cut_interval '{interval}' is not a duration like 30s or 5m"))?;
        if cut_interval < Duration::from_millis(100) {
            bail!("cut_interval '{interval}' is shorter than the minimum of 100ms");
        }
        let chunk_size = ChunkSize::new(flags.chunk_size.or(self.chunk_size).unwrap_or(65536))?;
        let compression = parse_compression(&flags.compression.or(self.compression).unwrap_or_else(|| "auto".into()))?;
        let token = match flags.token_file.or(self.token_file) {
            Some(p) => Some(read_token(&p)?),
            None => None,
        };
        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        let workers = flags.workers.or(self.workers).unwrap_or(cpus + 2);
        if !(1..=64).contains(&workers) {
            bail!("workers {workers} must be between 1 and 64");
        }
        let trust = AgentTrust::resolve(
            flags.standby_fingerprint.or(self.standby_fingerprint),
            flags.standby_ca.or(self.standby_ca),
            flags.insecure_plaintext.or(self.insecure_plaintext).unwrap_or(false),
        )?;
        Ok(AgentConfig {
            pair,
            disks,
            standby,
            state_dir: state_dir.clone(),
            tracker,
            tracefs_buffer_kib,
            quiesce,
            cut_interval,
            chunk_size,
            compression,
            token,
            workers,
            reinit,
            marker_exec: flags.marker_exec.or(self.marker_exec).unwrap_or(false),
            spool,
            trust,
            io_priority: crate::agent::priority::IoPriority::parse(
                flags.io_priority.or(self.io_priority).as_deref().unwrap_or("idle"),
            )
            .map_err(|e| anyhow::anyhow!("io_priority: {e}"))?,
            nice: match flags.nice.or(self.nice).unwrap_or(10) {
                n @ -20..=19 => n,
                n => bail!("nice {n} must be between -20 and 19"),
            },
        })
    }
}

/// `drpaird config check FILE`: parses and validates every table present, returns a summary.
pub fn check(path: &Path) -> Result<String> {
    let file = load_file(path)?;
    let mut out = vec![];
    if file.standby.is_none() && file.agent.is_none() {
        bail!("config file {} has neither a [standby] nor an [agent] table", path.display());
    }
    if let Some(s) = file.standby {
        let c = s.resolve(StandbyFile::default()).context("[standby]")?;
        let rpo = c.rpo_default.map_or_else(
            || "none".to_string(),
            |d| {
                let error = d.error_secs.unwrap_or(d.target_secs.saturating_mul(2));
                format!(
                    "{} (error at {})",
                    drpair_types::rpo::rpo_text(d.target_secs),
                    drpair_types::rpo::rpo_text(error)
                )
            },
        );
        out.push(format!(
            "standby: data_dir {}, chunks {}, link {}, api {}, token {}, default RPO target {rpo}, {} notification target(s){}",
            c.data_dir.display(),
            match &c.chunk_backend {
                drpair_store::ChunkBackend::Local => "local".to_string(),
                drpair_store::ChunkBackend::S3(s) => format!(
                    "in packs of {} MiB on {} (rewritten under {}% live)",
                    s.pack_bytes >> 20,
                    s.describe(),
                    (s.rewrite_below * 100.0).round()
                ),
            },
            c.listen,
            c.api_listen,
            if c.token.is_some() { "set" } else { "none" },
            c.notify.targets.len(),
            match c.notify.targets.is_empty() {
                true => String::new(),
                false =>
                    format!(" ({})", c.notify.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>().join(", ")),
            }
        ));
    }
    if let Some(a) = file.agent {
        let c = a.resolve(AgentFile::default(), false).context("[agent]")?;
        out.push(format!(
            "agent: pair {}, {} disk(s), standby {}, tracker {}, cut every {}",
            c.pair,
            c.disks.len(),
            c.standby,
            c.tracker,
            humantime::format_duration(c.cut_interval)
        ));
    }
    Ok(out.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ConfigFile> {
        Ok(toml::from_str(s)?)
    }

    #[test]
    fn unknown_keys_are_refused() {
        let e = parse("[agent]\npair = \"a\"\ndisk = [\"/x\"]\n").unwrap_err();
        assert!(format!("{e:#}").contains("disk"), "{e:#}");
        assert!(parse("[standbye]\n").is_err());
    }

    #[test]
    fn agent_defaults_and_flags() {
        let f =
            parse("[agent]\npair = \"web-01\"\ndisks = [\"/dev/vdb\"]\nstandby = \"s:7700\"\ncut_interval = \"5m\"\n")
                .unwrap();
        let flags = AgentFile { cut_interval: Some("10s".into()), ..Default::default() };
        let c = f.agent.unwrap().resolve(flags, false).unwrap();
        assert_eq!(c.cut_interval, Duration::from_secs(10));
        assert_eq!(c.chunk_size, ChunkSize::DEFAULT);
        assert_eq!(c.compression, CompressionSetting::Auto);
        assert_eq!(c.tracker, "auto");
        assert_eq!(c.tracefs_buffer_kib, 32768);
        assert_eq!(c.quiesce, QuiesceConfig::default());
        let spool = c.spool.expect("spooled by default");
        assert_eq!((spool.memory_bytes, spool.file_bytes), (256 << 20, 4096 << 20));
        assert_eq!(spool.dir, PathBuf::from("/var/lib/drpair/agent/spool"));
        assert!(!spool.on_protected_disk);
    }

    #[test]
    fn agent_bad_values() {
        let base = || AgentFile {
            pair: Some("p".into()),
            disks: Some(vec!["/x".into()]),
            standby: Some("h:1".into()),
            ..Default::default()
        };
        let cases: Vec<(AgentFile, &str)> = vec![
            (AgentFile { pair: Some("a/b".into()), ..base() }, "pair"),
            (AgentFile { disks: Some(vec![]), ..base() }, "no disk"),
            (AgentFile { standby: Some("host".into()), ..base() }, "HOST:PORT"),
            (AgentFile { chunk_size: Some(1000), ..base() }, "power of two"),
            (AgentFile { cut_interval: Some("soon".into()), ..base() }, "duration"),
            (AgentFile { cut_interval: Some("1ms".into()), ..base() }, "minimum"),
            (AgentFile { compression: Some("zstd:99".into()), ..base() }, "zstd:LEVEL"),
            (AgentFile { tracker: Some("ebpf".into()), ..base() }, "known trackers: auto, tracefs, scan"),
            (AgentFile { io_priority: Some("urgent".into()), ..base() }, "io_priority"),
            (AgentFile { io_priority: Some("best-effort:9".into()), ..base() }, "0..=7"),
            (AgentFile { nice: Some(40), ..base() }, "nice 40"),
            (AgentFile { tracefs_buffer_kib: Some(1), ..base() }, "tracefs_buffer_kib"),
            (AgentFile { thaw_budget: Some("1ms".into()), ..base() }, "thaw_budget '1ms' must be between"),
            (AgentFile { thaw_budget: Some("later".into()), ..base() }, "thaw_budget"),
            (AgentFile { freeze: Some(vec!["data".into()]), ..base() }, "absolute path"),
            (AgentFile { app_consistent_interval: Some("1h".into()), ..base() }, "needs `freeze`"),
            (AgentFile { spool_memory_mib: Some(1), ..base() }, "spool_memory_mib 1 must be between"),
            (AgentFile { spool_file_mib: Some(u64::MAX), ..base() }, "spool_file_mib"),
            (AgentFile { spool_dir: Some("spool".into()), ..base() }, "spool_dir 'spool' must be an absolute path"),
        ];
        for (f, want) in cases {
            let e = format!("{:#}", f.resolve(AgentFile::default(), false).unwrap_err());
            assert!(e.contains(want), "{e} should mention {want}");
        }
    }

    #[test]
    fn standby_addresses() {
        let s = StandbyFile { listen: Some("nope".into()), ..Default::default() };
        assert!(format!("{:#}", s.resolve(StandbyFile::default()).unwrap_err()).contains("listen"));
        let c = StandbyFile::default().resolve(StandbyFile::default()).unwrap();
        assert_eq!(c.api_listen.port(), DEFAULT_API_PORT);
    }

    #[test]
    fn max_read_window_default_flag_and_bad_values() {
        let c = StandbyFile::default().resolve(StandbyFile::default()).unwrap();
        assert_eq!(c.max_read_window, DEFAULT_MAX_READ_WINDOW);
        let file = StandbyFile { max_read_window: Some("5s".into()), ..Default::default() };
        let flag = StandbyFile { max_read_window: Some("500ms".into()), ..Default::default() };
        assert_eq!(file.clone().resolve(StandbyFile::default()).unwrap().max_read_window, Duration::from_secs(5));
        assert_eq!(file.resolve(flag).unwrap().max_read_window, Duration::from_millis(500));
        for (bad, want) in [("soon", "not a duration"), ("10ms", "must be between"), ("2d", "must be between")] {
            let f = StandbyFile { max_read_window: Some(bad.into()), ..Default::default() };
            let e = format!("{:#}", f.resolve(StandbyFile::default()).unwrap_err());
            assert!(e.contains("max_read_window") && e.contains(want), "{e}");
        }
    }

    #[test]
    fn compression_values() {
        assert_eq!(parse_compression("zstd:3").unwrap(), CompressionSetting::Zstd(3));
        assert_eq!(parse_compression("off").unwrap(), CompressionSetting::Off);
        assert!(parse_compression("lz4").is_err());
    }
}
