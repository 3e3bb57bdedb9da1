//! Debian's `prometheus` and `promtool` against a real standby: a server that scrapes it over
//! HTTPS every second, PromQL queries through its HTTP API, `promtool check metrics`.

use crate::{Standby, TestEnv};
use serde_json::Value;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

/// `promtool check metrics` on `text`: its exit status and findings.
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/setup.sh installs it)");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), said)
}

/// A Prometheus server, killed when dropped.
pub struct Prometheus {
    child: Child,
    pub url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// One sample of an instant query: (labels, value).
pub type Sample = (Value, f64);

impl Prometheus {
    /// Starts Prometheus scraping the standby every second, with `token` (if any).
    pub fn start(env: &TestEnv, sb: &Standby, token: Option<&str>, name: &str) -> Prometheus {
        let dir = env.mkdir(name);
        let ca = sb.ca_file().expect("the standby's CA");
        let auth = match token {
            Some(t) => {
                let f = dir.join("token");
                std::fs::write(&f, t).unwrap();
                format!("    authorization:\n      type: Bearer\n      credentials_file: {}\n", f.display())
            }
            None => String::new(),
        };
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: drpair\n    scheme: https\n    \
             tls_config:\n      ca_file: {}\n{auth}    static_configs:\n      - targets: ['{}']\n",
            ca.display(),
            sb.api_addr
        );
        let conf = dir.join("prometheus.yml");
        std::fs::write(&conf, config).unwrap();
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus)");
        env.add_log(name, &dir.join("prometheus.log"));
        Prometheus { child, url: format!("http://127.0.0.1:{port}") }
    }

    /// GET `path` of Prometheus's HTTP API with `params` (url-encoded): its `data`, or the
    /// error it answered (a query that does not parse, say).
    pub fn api(&self, path: &str, params: &[(&str, &str)]) -> Result<Value, String> {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "5", "-G", &format!("{}{path}", self.url)]);
        for (k, v) in params {
            cmd.arg("--data-urlencode").arg(format!("{k}={v}"));
        }
        let out = cmd.output().map_err(|e| e.to_string())?;
        let j: Value = serde_json::from_slice(&out.stdout).map_err(|e| {
            format!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
        })?;
        if j["status"] != "success" {
            return Err(format!("{path} {params:?}: {}: {}", j["errorType"], j["error"]));
        }
        Ok(j["data"].clone())
    }

    /// The samples a PromQL query returns now: (labels, value).
    pub fn query(&self, promql: &str) -> Result<Vec<Sample>, String> {
        let data = self.api("/api/v1/query", &[("query", promql)])?;
        let results = data["result"].as_array().ok_or_else(|| format!("no result: {data}"))?;
        Ok(results
            .iter()
            .map(|r| (r["metric"].clone(), r["value"][1].as_str().and_then(|v| v.parse().ok()).unwrap_or(f64::NAN)))
            .collect())
    }

    /// The series a range query over the last `seconds` returns (as a graph panel asks).
    pub fn query_range(&self, promql: &str, seconds: u64, step: &str) -> Result<Vec<Value>, String> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let (start, end) = ((now - seconds).to_string(), now.to_string());
        let data =
            self.api("/api/v1/query_range", &[("query", promql), ("start", &start), ("end", &end), ("step", step)])?;
        data["result"].as_array().cloned().ok_or_else(|| format!("no result: {data}"))
    }

    /// The values of `label` on the series `matcher` selects (Grafana's `label_values`).
    pub fn label_values(&self, label: &str, matcher: &str) -> Result<Vec<String>, String> {
        let data = self.api(&format!("/api/v1/label/{label}/values"), &[("match[]", matcher)])?;
        let values = data.as_array().ok_or_else(|| format!("not a list: {data}"))?;
        Ok(values.iter().filter_map(|v| v.as_str().map(String::from)).collect())
    }

    /// The scrape target's health and last error, once Prometheus has scraped it.
    pub fn target(&self) -> Result<(String, String), String> {
        let data = self.api("/api/v1/targets", &[])?;
        let t = &data["activeTargets"][0];
        match t["health"].as_str() {
            Some(h) if h != "unknown" => Ok((h.to_string(), t["lastError"].as_str().unwrap_or("").to_string())),
            _ => Err(format!("not scraped yet: {t}")),
        }
    }
}
