//! A fake standby for unit tests: a `TcpListener` thread that answers each incoming
//! connection with the next canned HTTP/1.1 reply (`Connection: close`) and records the
//! requests it got, so tests can check paths, headers and bodies.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::thread::JoinHandle;

/// One canned answer.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    /// Content-Length to announce; when larger than `body`, the connection is closed
    /// after `body`, as a standby that dies mid-stream would.
    pub content_length: u64,
    pub extra_headers: Vec<(String, String)>,
}

impl Reply {
    pub fn json(status: u16, body: &str) -> Self {
        Self::raw(status, "application/json", body)
    }

    pub fn raw(status: u16, content_type: &'static str, body: &str) -> Self {
        Self::bytes(status, content_type, body.as_bytes().to_vec())
    }

    pub fn bytes(status: u16, content_type: &'static str, body: Vec<u8>) -> Self {
        let content_length = body.len() as u64;
        Self { status, content_type, body, content_length, extra_headers: Vec::new() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.extra_headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A request as the fake standby received it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The value of a header (name in any case).
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
    }
}

pub struct FakeServer {
    pub url: String,
    thread: JoinHandle<Vec<Request>>,
}

impl FakeServer {
    /// Listens on a free local port and serves `replies`, one connection each, in order.
    pub fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake standby");
        let url = format!("http://{}", listener.local_addr().expect("local addr"));
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for reply in replies {
                let (stream, _) = listener.accept().expect("accept");
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let request = read_request(&mut reader);
                let mut stream = stream;
                let reason = if reply.status < 300 { "OK" } else { "Error" };
                let mut head = format!(
                    "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                    reply.status, reply.content_type, reply.content_length
                );
                for (k, v) in &reply.extra_headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                head.push_str("\r\n");
                // The client may hang up early (that is what some tests check): ignore errors.
                let _ = stream.write_all(head.as_bytes());
                let _ = stream.write_all(&reply.body);
                let _ = stream.flush();
                let _ = stream.shutdown(std::net::Shutdown::Both);
                seen.push(request);
            }
            seen
        });
        Self { url, thread }
    }

    /// Waits for every reply to be served; returns the requests received.
    pub fn finish(self) -> Vec<Request> {
        self.thread.join().expect("fake standby thread")
    }
}

fn read_request(reader: &mut impl BufRead) -> Request {
    let mut line = String::new();
    reader.read_line(&mut line).expect("request line");
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).expect("header line") == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    reader.read_exact(&mut body).expect("request body");
    Request { method, path, headers, body }
}
