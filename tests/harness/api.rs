//! A small client of the standby's HTTP API. HTTP errors are answers, not failures
//! (`http_status_as_error(false)`); transport errors panic with the URL.

use drpair_types::{PairStatus, RecoveryPoint};
use serde_json::Value;
use std::io::Read;
use std::time::Duration;

/// One answer: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: Option<String>,
    pub headers: ureq::http::HeaderMap,
}

impl Reply {
    /// Status, headers and the whole body (up to 64 MiB) of an answer.
    pub fn read(r: ureq::http::Response<ureq::Body>) -> Result<Reply, ureq::Error> {
        let status = r.status().as_u16();
        let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).map(String::from);
        let headers = r.headers().clone();
        let body = r.into_body().into_with_config().limit(64 << 20).read_to_vec()?;
        Ok(Reply { status, body, content_type, headers })
    }

    /// A response header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("answer ({}) is not JSON ({e}): {}", self.status, self.text()))
    }

    /// Asserts an API error: status, `code`, and a non-empty `message`. Returns the body.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "expected HTTP {status} {code}, got {}: {}", self.status, self.text());
        let j = self.json();
        assert_eq!(j["code"], code, "error code: {j}");
        assert!(j["message"].as_str().is_some_and(|m| !m.is_empty()), "error without message: {j}");
        j
    }

    /// Asserts a 400 naming `parameter`. Returns the body.
    pub fn assert_refused_param(&self, parameter: &str) -> Value {
        let j = self.assert_error(400, "InvalidParameter");
        assert_eq!(j["parameter"], parameter, "{j}");
        j
    }
}

/// What an image export delivered.
#[derive(Debug, Clone)]
pub struct Export {
    pub status: u16,
    /// Bytes received (a short stream shows as fewer bytes, or as `error`).
    pub len: u64,
    pub content_length: Option<u64>,
    pub hash: blake3::Hash,
    /// Error while reading the body (stream cut short).
    pub error: Option<String>,
    /// Error body when status is not 200.
    pub error_body: Option<String>,
}

#[derive(Clone)]
pub struct Api {
    base: String,
    token: Option<String>,
    http: ureq::Agent,
}

/// An HTTP client that reports error statuses as answers, trusting the CA in `ca` (PEM) for
/// `https://` (nothing else is trusted).
pub fn http_agent(ca: Option<&std::path::Path>, timeout: Duration) -> ureq::Agent {
    let mut config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_global(Some(timeout));
    let roots: Vec<ureq::tls::Certificate<'static>> = match ca {
        Some(ca) => drpair_tls::read_certs(ca)
            .expect("the standby's CA")
            .iter()
            .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
            .collect(),
        None => vec![],
    };
    config = config.tls_config(
        ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::Rustls)
            .unversioned_rustls_crypto_provider(drpair_tls::provider())
            .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
            .build(),
    );
    ureq::Agent::new_with_config(config.build())
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Api {
    pub fn new(base: &str, token: Option<&str>) -> Self {
        Self::with_ca(base, token, None)
    }

    /// A client of an `https://` standby whose CA is in `ca` (PEM).
    pub fn with_ca(base: &str, token: Option<&str>, ca: Option<&std::path::Path>) -> Self {
        let http = http_agent(ca, Duration::from_secs(900));
        Self { base: base.trim_end_matches('/').into(), token: token.map(String::from), http }
    }

    /// The same client with another token (None: no Authorization header).
    pub fn with_token(&self, token: Option<&str>) -> Self {
        Self { token: token.map(String::from), ..self.clone() }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn finish(&self, what: &str, r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let r = r.unwrap_or_else(|e| panic!("{what}: {e}"));
        Reply::read(r).unwrap_or_else(|e| panic!("{what}: reading body: {e}"))
    }

    /// Like [`Api::get`], but a transport error (standby down) is returned, not a panic.
    pub fn try_get(&self, path: &str) -> Result<Reply, String> {
        let url = self.url(path);
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let r = req.call().map_err(|e| format!("GET {url}: {e}"))?;
        Ok(self.finish(&format!("GET {url}"), Ok(r)))
    }

    pub fn get(&self, path: &str) -> Reply {
        self.try_get(path).unwrap_or_else(|e| panic!("{e}"))
    }

    /// DELETE.
    pub fn delete(&self, path: &str) -> Reply {
        let url = self.url(path);
        let mut req = self.http.delete(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&format!("DELETE {url}"), req.call())
    }

    /// POST with a raw body and content type.
    pub fn post(&self, path: &str, content_type: &str, body: &[u8]) -> Reply {
        self.post_with(path, content_type, &[], body)
    }

    /// POST a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.post(path, "application/json", body.to_string().as_bytes())
    }

    /// PUT a JSON body.
    pub fn put_json(&self, path: &str, body: &Value) -> Reply {
        let url = self.url(path);
        let mut req = self.http.put(&url).header("Content-Type", "application/json");
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&format!("PUT {url}"), req.send(body.to_string().as_bytes()))
    }

    /// A token of `role` made through the API (`POST /api/v1/tokens`); its secret.
    pub fn make_token(&self, name: &str, role: &str) -> String {
        let r = self.post_json("/api/v1/tokens", &serde_json::json!({"name": name, "role": role}));
        assert_eq!(r.status, 200, "create token {name}: {}", r.text());
        r.json()["secret"].as_str().expect("secret").to_string()
    }

    /// POST with extra request headers (e.g. the `Origin` a browser would send).
    pub fn post_with(&self, path: &str, content_type: &str, headers: &[(&str, &str)], body: &[u8]) -> Reply {
        let url = self.url(path);
        let mut req = self.http.post(&url).header("Content-Type", content_type);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        self.finish(&format!("POST {url}"), req.send(body))
    }

    /// `GET /api/v1/pairs/{pair}` as JSON; panics unless 200.
    pub fn status_json(&self, pair: &str) -> Value {
        let r = self.get(&format!("/api/v1/pairs/{pair}"));
        assert_eq!(r.status, 200, "status of pair {pair}: {}", r.text());
        r.json()
    }

    /// `GET /api/v1/pairs/{pair}` parsed; panics unless 200.
    pub fn status(&self, pair: &str) -> PairStatus {
        serde_json::from_value(self.status_json(pair)).expect("PairStatus")
    }

    /// The status, or a description of why there is none (for polling loops).
    pub fn try_status(&self, pair: &str) -> Result<PairStatus, String> {
        let r = self.try_get(&format!("/api/v1/pairs/{pair}"))?;
        if r.status != 200 {
            return Err(format!("HTTP {}: {}", r.status, r.text()));
        }
        serde_json::from_slice(&r.body).map_err(|e| format!("status does not parse: {e}: {}", r.text()))
    }

    /// `GET /api/v1/pairs/{pair}/points`; panics unless 200.
    pub fn points(&self, pair: &str) -> Vec<RecoveryPoint> {
        let r = self.get(&format!("/api/v1/pairs/{pair}/points"));
        assert_eq!(r.status, 200, "points of pair {pair}: {}", r.text());
        serde_json::from_slice(&r.body).unwrap_or_else(|e| panic!("points do not parse: {e}: {}", r.text()))
    }

    /// `POST /api/v1/pairs/{pair}/points {"wait":true}`; panics unless 200 with a point.
    pub fn create_point_wait(&self, pair: &str) -> RecoveryPoint {
        let r = self.post(
            &format!("/api/v1/pairs/{pair}/points"),
            "application/json",
            br#"{"wait":true,"timeout_seconds":300}"#,
        );
        assert_eq!(r.status, 200, "points create --wait: {}", r.text());
        let j = r.json();
        serde_json::from_value(j["point"].clone()).unwrap_or_else(|e| panic!("no point in {j}: {e}"))
    }

    /// Streams `GET …/points/{point}/disks/{disk}/image` through blake3.
    pub fn export(&self, pair: &str, point: &str, disk: u32) -> Export {
        let url = self.url(&format!("/api/v1/pairs/{pair}/points/{point}/disks/{disk}/image"));
        let mut req = self.http.get(&url);
        if let Some(t) = &self.token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let r = req.call().unwrap_or_else(|e| panic!("GET {url}: {e}"));
        let status = r.status().as_u16();
        let content_length =
            r.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        if status != 200 {
            let body = r.into_body().read_to_string().unwrap_or_default();
            return Export {
                status,
                len: 0,
                content_length,
                hash: blake3::hash(b""),
                error: None,
                error_body: Some(body),
            };
        }
        let mut reader = r.into_body().into_reader();
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 1 << 20];
        let mut len = 0u64;
        let mut error = None;
        loop {
            match reader.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&buf[..n]);
                    len += n as u64;
                }
                Err(e) => {
                    error = Some(e.to_string());
                    break;
                }
            }
        }
        Export { status, len, content_length, hash: hasher.finalize(), error, error_body: None }
    }

    /// Exports and asserts a complete image of `size` bytes; returns its hash.
    pub fn export_full(&self, pair: &str, point: &str, disk: u32, size: u64) -> blake3::Hash {
        let e = self.export(pair, point, disk);
        assert_eq!(e.status, 200, "export of pair {pair} point {point} disk {disk}: {:?}", e.error_body);
        assert!(
            e.error.is_none(),
            "export of pair {pair} point {point} disk {disk} cut short after {} bytes: {:?}",
            e.len,
            e.error
        );
        assert_eq!(e.len, size, "export of pair {pair} point {point} disk {disk} delivered {} of {size} bytes", e.len);
        assert_eq!(e.content_length, Some(size), "Content-Length of the export of point {point}");
        e.hash
    }

    /// `GET /metrics` text; panics unless 200.
    pub fn metrics(&self) -> String {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "metrics: {}", r.text());
        r.text()
    }
}

/// The value of a Prometheus sample `name{labels}` in `text` (exact label string).
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == series).then(|| v.parse().ok()).flatten()
    })
}
