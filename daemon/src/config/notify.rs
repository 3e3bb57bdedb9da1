//! `[standby.notify]`: when and where the standby tells operators that something needs them
//! (issue 26). Targets are webhooks (a JSON body, signed with HMAC-SHA256 when a secret is
//! set) and e-mail over SMTP; the journal always gets every notification. Secrets come from a
//! file or an environment variable, never from the config file itself, and never reach a log
//! or the API ([`Secret`]'s `Debug` hides them).

use anyhow::{Context, Result, bail};
use drpair_types::notify::Severity;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// `[standby.notify]` as written in a file.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyFile {
    /// A condition (pair stopped by an error, spool full, low disk…) must last this long
    /// before it is told, so a blip tells no one. RPO levels, tracking gaps and failed drills
    /// are told at once (they have thresholds of their own). Default `30s`.
    pub hold: Option<String>,
    /// An agent not connected for this long is told about. Default `15m`.
    pub agent_unseen: Option<String>,
    /// A certificate or API token that expires within this is told about (as an error within
    /// 3 days). Default `14d`.
    pub expiry_warning: Option<String>,
    /// At most this many notifications per target per hour; more wait (nothing is dropped).
    /// Default 60.
    pub max_per_hour: Option<u32>,
    /// Longest wait between two attempts to deliver (they back off from 1s). Default `5m`.
    pub retry_max_interval: Option<String>,
    /// A notification not delivered after this long is given up (logged). Default `24h`.
    pub give_up_after: Option<String>,
    #[serde(default)]
    pub targets: Vec<TargetFile>,
}

/// One `[[standby.notify.targets]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetFile {
    /// How `drpair notify test --target NAME` and the API name it.
    pub name: String,
    /// `webhook` or `smtp`.
    pub kind: String,
    /// Only these pairs (`*` matches any run of characters). Default: every pair.
    pub pairs: Option<Vec<String>>,
    /// `info` (everything, with resolutions), `warning` or `error`. Default `warning`;
    /// a resolution goes to every target that was told of its condition.
    pub min_severity: Option<String>,
    /// Longest time one attempt may take. Default `10s`.
    pub timeout: Option<String>,
    /// webhook: `http://` or `https://` URL the JSON body is POSTed to.
    pub url: Option<String>,
    /// webhook: file whose first line is the HMAC-SHA256 key (`X-Drpair-Signature`).
    pub secret_file: Option<PathBuf>,
    /// webhook: environment variable holding the HMAC key instead.
    pub secret_env: Option<String>,
    /// smtp: `HOST:PORT` of the mail server.
    pub server: Option<String>,
    /// smtp: `starttls` (default), `tls` (implicit, port 465) or `none` (loopback only).
    pub tls: Option<String>,
    /// A CA file (PEM) the server's certificate may chain to, besides the system's CAs.
    pub ca_file: Option<PathBuf>,
    /// smtp: the sender, e.g. `drpair <drpair@example.net>`.
    pub from: Option<String>,
    /// smtp: recipients.
    pub to: Option<Vec<String>>,
    /// smtp: the login, when the server wants one (with `password_file` or `password_env`).
    pub username: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_env: Option<String>,
}

/// A secret read from a file or the environment; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(hidden)")
    }
}

/// How an SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    StartTls,
    Implicit,
    None,
}

/// Where a target delivers.
#[derive(Debug, Clone)]
pub enum TargetKind {
    Webhook { url: String, secret: Option<Secret> },
    Smtp(SmtpTarget),
}

#[derive(Debug, Clone)]
pub struct SmtpTarget {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub from: String,
    pub to: Vec<String>,
    pub login: Option<(String, Secret)>,
}

/// A target ready to use.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    pub pairs: Vec<String>,
    pub min_severity: Severity,
    pub timeout: Duration,
    /// More CA certificates (PEM) to trust for this target.
    pub ca_pem: Option<Vec<u8>>,
}

/// `[standby.notify]` resolved.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub hold: Duration,
    pub agent_unseen: Duration,
    pub expiry_warning: Duration,
    pub max_per_hour: u32,
    pub retry_max_interval: Duration,
    pub give_up_after: Duration,
    pub targets: Vec<Target>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyFile::default().resolve().expect("the defaults are valid")
    }
}

/// A duration key with its default, checked by the config's own rule ([`super::parse_duration`]).
fn duration(key: &str, v: Option<&str>, default: &str, min: Duration, max: Duration) -> Result<Duration> {
    super::parse_duration(key, v.unwrap_or(default), min, max)
}

const DAY: u64 = 86_400;

impl NotifyFile {
    pub fn resolve(&self) -> Result<NotifyConfig> {
        let s = Duration::from_secs;
        let mut targets: Vec<Target> = Vec::new();
        for t in &self.targets {
            let target = t.resolve().with_context(|| format!("notify target '{}'", t.name))?;
            if targets.iter().any(|o| o.name == target.name) {
                bail!("notify targets: the name '{}' is used twice", target.name);
            }
            targets.push(target);
        }
        Ok(NotifyConfig {
            hold: duration("notify.hold", self.hold.as_deref(), "30s", s(0), s(DAY))?,
            agent_unseen: duration("notify.agent_unseen", self.agent_unseen.as_deref(), "15m", s(1), s(30 * DAY))?,
            expiry_warning: duration(
                "notify.expiry_warning",
                self.expiry_warning.as_deref(),
                "14d",
                s(0),
                s(365 * DAY),
            )?,
            max_per_hour: match self.max_per_hour {
                Some(0) => bail!("notify.max_per_hour must be at least 1"),
                Some(n) => n,
                None => 60,
            },
            retry_max_interval: duration(
                "notify.retry_max_interval",
                self.retry_max_interval.as_deref(),
                "5m",
                s(1),
                s(DAY),
            )?,
            give_up_after: duration("notify.give_up_after", self.give_up_after.as_deref(), "24h", s(60), s(30 * DAY))?,
            targets,
        })
    }
}

fn secret(file: &Option<PathBuf>, env: &Option<String>, what: &str) -> Result<Option<Secret>> {
    match (file, env) {
        (Some(_), Some(_)) => bail!("{what}: give a file or an environment variable, not both"),
        (Some(p), None) => {
            let text = std::fs::read_to_string(p).with_context(|| format!("{what}: cannot read {}", p.display()))?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                bail!("{what}: {} is empty", p.display());
            }
            Ok(Some(Secret(line)))
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => Ok(Some(Secret(v.trim().to_string()))),
            _ => bail!("{what}: the environment variable {var} is not set"),
        },
        (None, None) => Ok(None),
    }
}

/// Checks an e-mail address (`name@host` or `Name <name@host>`) well enough to refuse typos
/// at start rather than at the first delivery.
fn mailbox(key: &str, s: &str) -> Result<String> {
    let addr = match (s.find('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b && b == s.len() - 1 => &s[a + 1..b],
        (None, None) => s,
        _ => bail!("{key} '{s}' is not an e-mail address"),
    };
    match addr.split_once('@') {
        Some((user, host)) if !user.is_empty() && !host.is_empty() && !addr.contains(char::is_whitespace) => {
            Ok(s.to_string())
        }
        _ => bail!("{key} '{s}' is not an e-mail address like ops@example.net"),
    }
}

impl TargetFile {
    fn resolve(&self) -> Result<Target> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > 64
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!("name '{name}': use 1 to 64 letters, digits, '-' or '_'");
        }
        let only = |key: &str, set: bool, kind: &str| -> Result<()> {
            if set {
                bail!("{key} does not apply to a {kind} target");
            }
            Ok(())
        };
        let kind = match self.kind.as_str() {
            "webhook" => {
                for (k, set) in [
                    ("server", self.server.is_some()),
                    ("tls", self.tls.is_some()),
                    ("from", self.from.is_some()),
                    ("to", self.to.is_some()),
                    ("username", self.username.is_some()),
                    ("password_file", self.password_file.is_some() || self.password_env.is_some()),
                ] {
                    only(k, set, "webhook")?;
                }
                let url = self.url.clone().context("url is required for a webhook")?;
                let rest = url
                    .strip_prefix("https://")
                    .or_else(|| url.strip_prefix("http://"))
                    .with_context(|| format!("url '{url}' must start with http:// or https://"))?;
                let host = rest.split(['/', '?', '#']).next().unwrap_or("");
                if host.is_empty() || url.contains(char::is_whitespace) {
                    bail!("url '{url}' has no host");
                }
                TargetKind::Webhook { url, secret: secret(&self.secret_file, &self.secret_env, "secret")? }
            }
            "smtp" => {
                for (k, set) in [
                    ("url", self.url.is_some()),
                    ("secret_file", self.secret_file.is_some() || self.secret_env.is_some()),
                ] {
                    only(k, set, "smtp")?;
                }
                let server = self.server.as_deref().context("server (HOST:PORT) is required for an smtp target")?;
                let (host, port) = server
                    .rsplit_once(':')
                    .and_then(|(h, p)| Some((h.trim_matches(['[', ']']), p.parse::<u16>().ok()?)))
                    .filter(|(h, p)| !h.is_empty() && *p > 0)
                    .with_context(|| format!("server '{server}' is not HOST:PORT"))?;
                let tls = match self.tls.as_deref().unwrap_or("starttls") {
                    "starttls" => SmtpTls::StartTls,
                    "tls" => SmtpTls::Implicit,
                    "none" => SmtpTls::None,
                    o => bail!("tls '{o}' must be starttls, tls or none"),
                };
                let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
                if tls == SmtpTls::None && !loopback {
                    bail!("tls = \"none\" sends mail (and any password) readable: only to a loopback server");
                }
                let from = mailbox("from", self.from.as_deref().context("from is required for an smtp target")?)?;
                let to = self.to.clone().unwrap_or_default();
                if to.is_empty() {
                    bail!("to: at least one recipient is required for an smtp target");
                }
                let to = to.iter().map(|a| mailbox("to", a)).collect::<Result<Vec<_>>>()?;
                let password = secret(&self.password_file, &self.password_env, "password")?;
                let login = match (&self.username, password) {
                    (Some(u), Some(p)) => Some((u.clone(), p)),
                    (None, None) => None,
                    _ => bail!("username and a password (password_file or password_env) go together"),
                };
                TargetKind::Smtp(SmtpTarget { host: host.to_string(), port, tls, from, to, login })
            }
            o => bail!("kind '{o}' must be webhook or smtp"),
        };
        let pairs = self.pairs.clone().unwrap_or_default();
        if let Some(p) = pairs.iter().find(|p| p.is_empty()) {
            bail!("pairs: '{p}' is an empty pattern");
        }
        let ca_pem = match &self.ca_file {
            Some(p) => Some(std::fs::read(p).with_context(|| format!("ca_file: cannot read {}", p.display()))?),
            None => None,
        };
        Ok(Target {
            ca_pem,
            name: name.clone(),
            kind,
            pairs,
            min_severity: match &self.min_severity {
                Some(s) => Severity::parse(s).map_err(|e| anyhow::anyhow!("min_severity: {e}"))?,
                None => Severity::Warning,
            },
            timeout: duration(
                "timeout",
                self.timeout.as_deref(),
                "10s",
                Duration::from_millis(100),
                Duration::from_secs(300),
            )?,
        })
    }
}

/// Whether `name` matches `pattern`, where `*` stands for any run of characters.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<NotifyConfig> {
        let f: NotifyFile = toml::from_str(s)?;
        f.resolve()
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!((c.hold, c.agent_unseen, c.max_per_hour), (Duration::from_secs(30), Duration::from_secs(900), 60));
        assert!(c.targets.is_empty());
    }

    #[test]
    fn a_webhook_and_a_mail_target() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key");
        std::fs::write(&key, "s3cret-key\n").unwrap();
        let c = parse(&format!(
            r#"hold = "5s"
[[targets]]
name = "hook"
kind = "webhook"
url = "https://hooks.example.net/drpair/T0K3N"
secret_file = "{}"
pairs = ["web-*"]
min_severity = "error"
[[targets]]
name = "mail"
kind = "smtp"
server = "smtp.example.net:587"
from = "drpair <drpair@example.net>"
to = ["ops@example.net"]
"#,
            key.display()
        ))
        .unwrap();
        assert_eq!(c.hold, Duration::from_secs(5));
        let TargetKind::Webhook { secret, .. } = &c.targets[0].kind else { panic!() };
        assert_eq!(secret.as_ref().unwrap().0, "s3cret-key");
        assert!(!format!("{c:?}").contains("s3cret"), "secrets never show in Debug");
        assert_eq!(c.targets[0].min_severity, Severity::Error);
        let TargetKind::Smtp(m) = &c.targets[1].kind else { panic!() };
        assert_eq!((m.host.as_str(), m.port, m.tls), ("smtp.example.net", 587, SmtpTls::StartTls));
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        for (body, want) in [
            (
                r#"kind = "webhook"
url = "ftp://x.example.net/""#,
                "must start with http:// or https://",
            ),
            (
                r#"kind = "webhook"
url = "https:///path""#,
                "has no host",
            ),
            (r#"kind = "webhook""#, "url is required"),
            (r#"kind = "pager""#, "must be webhook or smtp"),
            (
                r#"kind = "smtp"
server = "mail.example.net:25"
tls = "none"
from = "a@b"
to = ["c@d"]"#,
                "only to a loopback server",
            ),
            (
                r#"kind = "smtp"
server = "mail.example.net"
from = "a@b"
to = ["c@d"]"#,
                "is not HOST:PORT",
            ),
            (
                r#"kind = "smtp"
server = "mail.example.net:25"
from = "nobody"
to = ["c@d"]"#,
                "is not an e-mail address",
            ),
            (
                r#"kind = "smtp"
server = "mail.example.net:25"
from = "a@b""#,
                "at least one recipient",
            ),
            (
                r#"kind = "webhook"
url = "https://h/"
secret_env = "DRPAIR_TEST_UNSET_VARIABLE""#,
                "is not set",
            ),
            (
                r#"kind = "webhook"
url = "https://h/"
min_severity = "loud""#,
                "not a severity",
            ),
        ] {
            let err = parse(&format!("[[targets]]\nname = \"t\"\n{body}\n")).unwrap_err();
            assert!(format!("{err:#}").contains(want), "{body}: {err:#}");
        }
        let twice = "[[targets]]\nname = \"t\"\nkind = \"webhook\"\nurl = \"http://a/\"\n".repeat(2);
        assert!(format!("{:#}", parse(&twice).unwrap_err()).contains("used twice"));
        for bad in [r#"hold = "-5s""#, r#"hold = "soon""#, "max_per_hour = 0", r#"agent_unseen = "0s""#] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns() {
        for (p, n, want) in [
            ("web-*", "web-01", true),
            ("web-*", "db-01", false),
            ("*", "x", true),
            ("db", "db", true),
            ("db", "db-1", false),
            ("*-prod-*", "eu-prod-7", true),
            ("*-prod-*", "eu-test-7", false),
            ("a*a", "a", false),
        ] {
            assert_eq!(pattern_matches(p, n), want, "{p} vs {n}");
        }
    }
}
