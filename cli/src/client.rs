//! The standby's HTTP API as the CLI sees it: one ureq agent, the bearer token, and every
//! failure turned into a [`CliError`] whose exit code scripts can rely on.
//!
//! Invariant: HTTP error statuses are never ureq errors here (`http_status_as_error(false)`),
//! so the API's `ApiError` body is always read and shown.

pub use crate::error::{CliError, exit};
use drpair_types::ApiError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::io;
use std::time::Duration;
use ureq::http::Response;
use ureq::{Body, RequestBuilder};

/// Seconds to wait for a TCP connection (and for DNS) before calling the standby unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Seconds to wait for the answer of an ordinary call (not `--wait`).
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes of an error body or a JSON answer the CLI reads.
const MAX_JSON: u64 = 256 << 20;

/// A client of one standby.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    token: Option<String>,
}

impl Client {
    /// `server` is the base URL (`https://host:7701`), `token` the bearer token if any; an
    /// `https://` standby is trusted as [`crate::trust`] says with no options given.
    #[cfg(test)]
    pub fn new(server: &str, token: Option<String>) -> Result<Self, CliError> {
        Self::with_trust(server, token, &crate::trust::TrustOpts::default())
    }

    /// Like [`Client::new`], trusting an `https://` standby as `trust` says.
    pub fn with_trust(server: &str, token: Option<String>, trust: &crate::trust::TrustOpts) -> Result<Self, CliError> {
        let base = server.trim().trim_end_matches('/').to_string();
        let plain = base.strip_prefix("http://");
        let secure = base.strip_prefix("https://");
        match (plain, secure) {
            (Some(rest), _) if !rest.is_empty() => {
                let host = rest.split('/').next().unwrap_or("");
                let host = host.rsplit_once(':').map_or(host, |(h, _)| h).trim_matches(['[', ']']);
                let loopback = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_loopback());
                if !loopback {
                    return Err(CliError::Failed(format!(
                        "--server {base}: plain http:// only reaches a standby on this host; use https://"
                    )));
                }
            }
            (_, Some(rest)) if !rest.is_empty() => {}
            _ => return Err(CliError::Failed(format!("--server '{server}' is not a URL like https://standby:7701"))),
        }
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_resolve(Some(CONNECT_TIMEOUT))
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .user_agent(format!("drpair/{}", env!("CARGO_PKG_VERSION")));
        if let Some(tls) = crate::trust::tls_config(&base, trust)? {
            config = config.tls_config(tls);
        }
        Ok(Self { agent: config.build().into(), base, token: token.filter(|t| !t.is_empty()) })
    }

    /// The host of the server URL (without port or brackets).
    pub fn host(&self) -> String {
        let rest = self.base.split_once("://").map_or(self.base.as_str(), |(_, r)| r);
        let authority = rest.split('/').next().unwrap_or(rest);
        if let Some(v6) = authority.strip_prefix('[') {
            return v6.split(']').next().unwrap_or(v6).to_string();
        }
        authority.rsplit_once(':').map_or(authority, |(h, _)| h).to_string()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize<B>(&self, req: RequestBuilder<B>) -> RequestBuilder<B> {
        match &self.token {
            Some(t) => req.header("Authorization", format!("Bearer {t}")),
            None => req,
        }
    }

    /// `GET path` → the JSON answer, both raw (for `--output json`) and typed.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<(serde_json::Value, T), CliError> {
        self.get_json_within(path, ANSWER_TIMEOUT)
    }

    /// [`Client::get_json`] of an answer the standby computes at length (`answer_timeout`
    /// replaces [`ANSWER_TIMEOUT`]).
    pub fn get_json_within<T: DeserializeOwned>(
        &self,
        path: &str,
        answer_timeout: Duration,
    ) -> Result<(serde_json::Value, T), CliError> {
        let url = self.url(path);
        let req = self.agent.get(&url).config().timeout_recv_response(Some(answer_timeout)).build();
        let req = self.authorize(req).header("Accept", "application/json");
        let resp = self.check("GET", &url, req.call())?;
        decode(&url, resp)
    }

    /// `DELETE path` → the JSON answer, raw and typed.
    pub fn delete_json<T: DeserializeOwned>(&self, path: &str) -> Result<(serde_json::Value, T), CliError> {
        let url = self.url(path);
        let req = self.authorize(self.agent.delete(&url)).header("Accept", "application/json");
        let resp = self.check("DELETE", &url, req.call())?;
        decode(&url, resp)
    }

    /// `PUT path` with a JSON body → the JSON answer, raw and typed.
    pub fn put_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<(serde_json::Value, T), CliError> {
        let url = self.url(path);
        let req = self.authorize(self.agent.put(&url)).header("Accept", "application/json");
        let resp = self.check("PUT", &url, req.send_json(body))?;
        decode(&url, resp)
    }

    /// `POST path` with a JSON body → the status (200, 202, …) and the JSON answer.
    /// `answer_timeout` replaces [`ANSWER_TIMEOUT`] for calls the standby may hold open.
    pub fn post_json<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        answer_timeout: Duration,
    ) -> Result<(u16, serde_json::Value, T), CliError> {
        let url = self.url(path);
        let req = self.agent.post(&url).config().timeout_recv_response(Some(answer_timeout)).build();
        let req = self.authorize(req).header("Accept", "application/json");
        let resp = self.check("POST", &url, req.send_json(body))?;
        let status = resp.status().as_u16();
        let (raw, typed) = decode(&url, resp)?;
        Ok((status, raw, typed))
    }

    /// `POST path` with a binary body read from `body` (sent chunked) → the JSON answer.
    pub fn post_stream<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &mut dyn io::Read,
        answer_timeout: Duration,
    ) -> Result<(serde_json::Value, T), CliError> {
        let url = self.url(path);
        let req = self.agent.post(&url).config().timeout_recv_response(Some(answer_timeout)).build();
        let req =
            self.authorize(req).header("Accept", "application/json").header("Content-Type", "application/octet-stream");
        let resp = self.check("POST", &url, req.send(ureq::SendBody::from_reader(body)))?;
        decode(&url, resp)
    }

    /// One round trip to the standby (`GET /healthz`, on the connection kept alive).
    pub fn round_trip(&self) -> Result<Duration, CliError> {
        let url = self.url("/healthz");
        let start = std::time::Instant::now();
        let mut resp = self.check("GET", &url, self.agent.get(&url).call())?;
        let _ = resp.body_mut().read_to_string();
        Ok(start.elapsed())
    }

    /// `GET path` of a binary stream; returns the 2xx response with its body unread.
    /// A read that stalls for `stall` fails instead of hanging.
    pub fn get_stream(&self, path: &str, stall: Duration) -> Result<Response<Body>, CliError> {
        let url = self.url(path);
        let req = self.agent.get(&url).config().timeout_per_read(Some(stall)).build();
        let req = self.authorize(req).header("Accept", "application/octet-stream");
        self.check("GET", &url, req.call())
    }

    /// Turns transport errors and non-2xx answers into [`CliError`]s.
    fn check(
        &self,
        method: &'static str,
        url: &str,
        result: Result<Response<Body>, ureq::Error>,
    ) -> Result<Response<Body>, CliError> {
        let mut resp = result.map_err(|e| self.transport_error(url, e))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        let body = resp.body_mut().with_config().limit(64 << 10).lossy_utf8(true).read_to_string().unwrap_or_default();
        match serde_json::from_str::<ApiError>(&body) {
            Ok(error) => {
                let hint = (matches!(status, 401 | 403) && self.token.is_none())
                    .then(|| "no token was given: use --token, --token-file or DRPAIR_TOKEN".to_string());
                Err(CliError::Api { status, error, hint })
            }
            Err(_) => {
                let body: String = body.chars().take(300).collect();
                Err(CliError::Http { status, method, url: url.to_string(), body })
            }
        }
    }

    fn transport_error(&self, url: &str, e: ureq::Error) -> CliError {
        use ureq::Timeout as T;
        let unreachable = |detail: String| CliError::Unreachable { url: self.base.clone(), detail };
        match e {
            ureq::Error::HostNotFound => unreachable("host not found".into()),
            ureq::Error::ConnectionFailed => unreachable("connection failed".into()),
            ureq::Error::Timeout(T::Connect | T::Resolve) => {
                unreachable(format!("no connection within {}s", CONNECT_TIMEOUT.as_secs()))
            }
            ureq::Error::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::ConnectionRefused
                        | io::ErrorKind::HostUnreachable
                        | io::ErrorKind::NetworkUnreachable
                        | io::ErrorKind::AddrNotAvailable
                ) =>
            {
                unreachable(io.to_string())
            }
            ureq::Error::Timeout(t) => CliError::TimedOut(format!("no answer from {url} in time ({t})")),
            other => CliError::Protocol { url: url.to_string(), detail: other.to_string() },
        }
    }
}

/// `text` percent-encoded for a URL query value: unreserved characters (RFC 3986) stay,
/// every other byte of its UTF-8 becomes `%XX`.
pub fn encode_query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Reads a JSON answer into a raw value and the expected type.
fn decode<T: DeserializeOwned>(url: &str, mut resp: Response<Body>) -> Result<(serde_json::Value, T), CliError> {
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(MAX_JSON)
        .read_to_vec()
        .map_err(|e| CliError::Protocol { url: url.to_string(), detail: e.to_string() })?;
    let bad =
        |e: serde_json::Error| CliError::Protocol { url: url.to_string(), detail: format!("unexpected JSON: {e}") };
    let raw: serde_json::Value = serde_json::from_slice(&bytes).map_err(bad)?;
    let typed = T::deserialize(&raw).map_err(bad)?;
    Ok((raw, typed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_server::{FakeServer, Reply};

    fn api_error(code: &str, message: &str) -> String {
        format!(r#"{{"code":"{code}","message":"{message}"}}"#)
    }

    #[test]
    fn api_errors_map_to_exit_codes_and_messages() {
        let cases = [
            (401, "AccessDenied", "missing or wrong token", exit::ACCESS_DENIED),
            (404, "PairNotFound", "pair 'nope' not found", exit::NOT_FOUND),
            (409, "InvalidPairState", "pair 'web-01' is in Start Replication", exit::INVALID_STATE),
            (400, "InvalidParameter", "timeout_seconds must be at least 1", exit::INVALID_PARAMETER),
            (504, "Timeout", "no point committed within 5s", exit::TIMED_OUT),
        ];
        for (status, code, message, want) in cases {
            let server = FakeServer::start(vec![Reply::json(status, &api_error(code, message))]);
            let client = Client::new(&server.url, Some("s3cret".into())).unwrap();
            let err = client.get_json::<serde_json::Value>("/api/v1/pairs/x").unwrap_err();
            assert_eq!(err.exit_code(), want, "{status}");
            assert_eq!(err.to_string(), message);
            assert_eq!(err.to_json()["code"], code);
            let reqs = server.finish();
            assert_eq!(reqs[0].header("authorization").as_deref(), Some("Bearer s3cret"));
        }
    }

    #[test]
    fn access_denied_without_token_gives_a_hint() {
        let server = FakeServer::start(vec![Reply::json(401, &api_error("AccessDenied", "token required"))]);
        let client = Client::new(&server.url, None).unwrap();
        let err = client.get_json::<serde_json::Value>("/api/v1/pairs").unwrap_err();
        assert_eq!(err.exit_code(), exit::ACCESS_DENIED);
        assert!(err.to_string().starts_with("token required; no token was given"), "{err}");
        assert_eq!(server.finish()[0].header("authorization"), None);
    }

    #[test]
    fn non_json_error_bodies_still_map_by_status() {
        let server = FakeServer::start(vec![Reply::raw(404, "text/html", "<h1>Not Found</h1>")]);
        let client = Client::new(&server.url, None).unwrap();
        let err = client.get_json::<serde_json::Value>("/api/v1/pairs").unwrap_err();
        assert_eq!(err.exit_code(), exit::NOT_FOUND);
        assert!(err.to_string().contains("HTTP 404 to GET"), "{err}");
        assert_eq!(err.to_json()["code"], "NotFound");
        server.finish();
    }

    #[test]
    fn unreachable_standby_names_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let url = format!("http://127.0.0.1:{port}");
        let err = Client::new(&url, None).unwrap().get_json::<serde_json::Value>("/api/v1/pairs").unwrap_err();
        assert_eq!(err.exit_code(), exit::UNREACHABLE, "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains(&url) && msg.contains("--server") && msg.contains("DRPAIR_SERVER"), "{msg}");
    }

    #[test]
    fn bad_server_urls_are_refused() {
        // An https:// standby nothing says to trust (not pinned, not remembered, not local).
        let e = Client::new("https://standby.invalid:7701", None).err().expect("refused").to_string();
        assert!(e.contains("drpair login") && e.contains("--fingerprint"), "{e}");
        assert!(Client::new("standby:7701", None).is_err());
        let e = Client::new("http://standby:7701/", None).err().expect("plain http elsewhere").to_string();
        assert!(e.contains("https://"), "{e}");
        let c = Client::new("http://127.0.0.1:7701/", None).unwrap();
        assert_eq!(c.url("/api/v1/pairs"), "http://127.0.0.1:7701/api/v1/pairs");
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query_value("web-01"), "web-01");
        assert_eq!(encode_query_value("a b&c=d/e?%"), "a%20b%26c%3Dd%2Fe%3F%25");
        assert_eq!(encode_query_value("10.0.0.5:41000"), "10.0.0.5%3A41000");
        assert_eq!(encode_query_value("größe"), "gr%C3%B6%C3%9Fe");
    }

    #[test]
    fn unexpected_json_is_a_protocol_error() {
        let server = FakeServer::start(vec![Reply::json(200, r#"{"not":"a list"}"#)]);
        let client = Client::new(&server.url, None).unwrap();
        let err = client.get_json::<Vec<drpair_types::PairSummary>>("/api/v1/pairs").unwrap_err();
        assert_eq!(err.exit_code(), exit::FAILURE);
        assert!(err.to_string().contains("unexpected JSON"), "{err}");
        server.finish();
    }
}
