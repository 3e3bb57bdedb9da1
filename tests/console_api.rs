//! The API calls behind the panel's console, against a real standby and a real agent:
//!
//! - `console_calls`: one replicating pair (16 MiB disk, points cut on request).
//!   - The pair's event stream (`GET /api/v1/events?pair=`) sends its first event at once, with
//!     the status `GET /api/v1/pairs/{pair}` answers and the hashes of the points, tasks and
//!     drills lists as their own GETs serve them; a new point changes `points_rev` in a later
//!     event; history samples are never sent twice. The list stream sends the pairs list. A
//!     bad or unknown pair, an unknown parameter and a missing token are refused before
//!     streaming; a pair deleted while streamed ends its stream with `gone`.
//!   - A one-time download link streams the bytes of the image export, without a token (the
//!     POST needs one, and the operator role), once; a link not used within 60 s expires; bad
//!     pairs, points and disks are refused as the export refuses them.
//!   - A retention preview of a proposed policy lists the points it would remove and why each
//!     kept one stays, and changes nothing (points, policy, tasks); the default policy's
//!     preview is the prune's own dry run; bad bodies are refused naming the parameter.
//!   - Points paging with `before`.
//!   - `allowed_actions` across suspend → skip-to-resync-marker, and as a viewer and an
//!     operator see them.
//!   - An open stream does not hold up the standby's stop (SIGTERM).
//! - `five_hundred_pairs`: 500 pairs registered over the link (`many_pairs`), the pairs list
//!   and its search over them, with the time the list took (printed, not asserted).

use drpair_e2e::api::{Reply, http_agent};
use drpair_e2e::image::{Fill, create_image};
use drpair_e2e::many_pairs::{pair_at, register_pairs};
use drpair_e2e::pair::wait_status;
use drpair_e2e::{AgentSpec, Api, MIB, Standby, TestEnv, step, wait_ready};
use drpair_types::{DownloadLink, PairEvent, PairSummary, PruneReport, RecoveryPoint};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TOKEN: &str = "console-api-token-0123456789";
const PAIR: &str = "console-web-01";
const SIZE: u64 = 16 * MIB;
const LONG: Duration = Duration::from_secs(120);
/// How long a download link is good for.
const TICKET_TTL: Duration = Duration::from_secs(60);

/// An open `text/event-stream`: (event name, data) as they arrive; a comment is named `:`.
/// A thread reads it; dropping the receiver ends the thread at the next event.
struct EventStream {
    rx: mpsc::Receiver<(String, String)>,
}

impl EventStream {
    /// Opens `path` with `token`; the refusal when the answer is not a stream.
    fn open(sb: &Standby, path: &str, token: Option<&str>) -> Result<Self, Box<Reply>> {
        let http = http_agent(sb.ca_file().as_deref(), Duration::from_secs(3600));
        let mut req = http.get(format!("{}{path}", sb.url()));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Bearer {t}"));
        }
        let r = req.call().unwrap_or_else(|e| panic!("GET {path}: {e}"));
        if r.status() != 200 {
            return Err(Box::new(Reply::read(r).expect("refusal body")));
        }
        let ct = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        assert!(ct.starts_with("text/event-stream"), "GET {path}: content type {ct}");
        let (tx, rx) = mpsc::channel();
        let reader = BufReader::new(r.into_body().into_reader());
        std::thread::spawn(move || {
            let (mut name, mut data) = (String::new(), Vec::<String>::new());
            for line in reader.lines() {
                let Ok(line) = line else { return };
                if let Some(c) = line.strip_prefix(':') {
                    if tx.send((":".into(), c.trim().to_string())).is_err() {
                        return;
                    }
                } else if let Some(v) = line.strip_prefix("event:") {
                    name = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push(v.strip_prefix(' ').unwrap_or(v).to_string());
                } else if line.is_empty() && !data.is_empty() {
                    if tx.send((std::mem::take(&mut name), data.join("\n"))).is_err() {
                        return;
                    }
                    data.clear();
                }
            }
        });
        Ok(Self { rx })
    }

    /// The next event (not a comment) within `timeout`; `None` when the stream ended.
    fn next(&self, timeout: Duration) -> Option<(String, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((name, _)) if name == ":" => continue,
                Ok(e) => return Some(e),
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => panic!("no event within {timeout:?}"),
            }
        }
    }

    /// The next `pair` event within `timeout`.
    fn next_pair(&self, timeout: Duration) -> PairEvent {
        let (name, data) = self.next(timeout).expect("the pair's stream ended");
        assert_eq!(name, "pair", "{data}");
        serde_json::from_str(&data).unwrap_or_else(|e| panic!("not a pair event ({e}): {data}"))
    }
}

/// The first 16 hex digits of the BLAKE3 hash of an answer's body: the `*_rev` of a list.
fn rev(r: &Reply) -> String {
    assert_eq!(r.status, 200, "{}", r.text());
    blake3::hash(&r.body).to_hex()[..16].to_string()
}

fn allowed(api: &Api) -> Vec<String> {
    api.status(PAIR).allowed_actions
}

#[test]
fn console_calls() {
    let env = TestEnv::new("console-api");
    let img = env.path("disk0.img");
    create_image(&img, SIZE, Fill::Random, 21);
    let mut sb = Standby::start_with(&env, Some(TOKEN), &["--prune-interval", "0", "--verify-interval", "0"]);
    let api = sb.api();
    let anonymous = api.with_token(None);
    let mut spec = AgentSpec::new(&env, &sb, PAIR, &[img.as_path()]);
    spec.cut_interval = "1h".into();
    let mut agent = spec.spawn(&env, "agent");
    wait_ready(&api, PAIR, &mut agent, LONG);
    let viewer_secret = api.make_token("console-viewer", "viewer");
    let viewer = api.with_token(Some(&viewer_secret));
    let operator = api.with_token(Some(&api.make_token("console-operator", "operator")));
    let pp = format!("/api/v1/pairs/{PAIR}");

    // A link asked for now is tried once it is past its time, at the end.
    let stale: DownloadLink =
        serde_json::from_value(api.post_json(&format!("{pp}/points/latest/disks/0/download"), &json!({})).json())
            .expect("download link");
    let stale_at = Instant::now();

    // ---- The pair's event stream.
    let t = Instant::now();
    let events = EventStream::open(&sb, &format!("/api/v1/events?pair={PAIR}"), Some(TOKEN)).expect("pair stream");
    let first = events.next_pair(Duration::from_secs(3));
    step(format!("first pair event after {:?}", t.elapsed()));
    assert!(t.elapsed() < Duration::from_secs(2), "the first event took {:?}", t.elapsed());
    let got = api.status_json(PAIR);
    let shown = serde_json::to_value(&first.status).unwrap();
    let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&shown), keys(&got), "the event's status is not GET …/pairs/{PAIR}'s");
    for k in ["pair_id", "state", "allowed_actions", "standby_fingerprint", "lineage", "checkpoint"] {
        assert_eq!(shown[k], got[k], "status field {k}");
    }
    for r in [&first.points_rev, &first.tasks_rev, &first.drills_rev] {
        assert!(r.len() == 16 && r.chars().all(|c| c.is_ascii_hexdigit()), "rev {r}");
    }
    let revs = |e: &PairEvent| (e.points_rev.clone(), e.tasks_rev.clone(), e.drills_rev.clone());
    let lists = || {
        (
            rev(&api.get(&format!("{pp}/points"))),
            rev(&api.get(&format!("/api/v1/tasks?pair={PAIR}"))),
            rev(&api.get(&format!("{pp}/drills"))),
        )
    };
    assert_eq!(revs(&first), lists(), "the revs are the hashes of the lists as GET serves them");
    let mut newest = first.history.last().map_or(0, |s| s.t_unix_ms);
    let mut check_history = |e: &PairEvent| {
        for s in &e.history {
            assert!(s.t_unix_ms > newest, "history sample {} sent again (newest sent {newest})", s.t_unix_ms);
            newest = s.t_unix_ms;
        }
    };
    // A new point: a later event carries the new points list's hash.
    let f = std::fs::OpenOptions::new().write(true).open(&img).unwrap();
    f.write_all_at(&[0x5a; 65536], 3 * MIB).unwrap();
    f.sync_all().unwrap();
    let t = Instant::now();
    let p = api.create_point_wait(PAIR);
    let want = rev(&api.get(&format!("{pp}/points")));
    assert_ne!(want, first.points_rev);
    loop {
        let e = events.next_pair(Duration::from_secs(5));
        check_history(&e);
        if e.points_rev == want {
            assert_eq!(e.status.last_point.as_ref().map(|q| q.id), Some(p.id), "the status shows the new point");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "points_rev did not change to {want}");
    }
    step(format!("point {} reached the stream {:?} after it was asked for", p.id, t.elapsed()));
    drop(events);

    // ---- The list stream.
    let list = EventStream::open(&sb, "/api/v1/events", Some(TOKEN)).expect("list stream");
    let (name, data) = list.next(Duration::from_secs(3)).expect("list event");
    assert_eq!(name, "pairs");
    let rows: Vec<PairSummary> = serde_json::from_str(&data).expect("pairs list");
    assert_eq!(rows.iter().map(|r| r.pair_id.as_str()).collect::<Vec<_>>(), [PAIR]);
    drop(list);

    // ---- Refused before streaming.
    let open_err = |path: &str, token: Option<&str>| match EventStream::open(&sb, path, token) {
        Ok(_) => panic!("GET {path} streamed"),
        Err(r) => *r,
    };
    open_err("/api/v1/events?pair=bad%20id!", Some(TOKEN)).assert_refused_param("pair");
    open_err("/api/v1/events?pair=nosuch-pair", Some(TOKEN)).assert_error(404, "PairNotFound");
    open_err(&format!("/api/v1/events?pair={PAIR}&since=3"), Some(TOKEN)).assert_refused_param("since");
    open_err("/api/v1/events?foo=1", Some(TOKEN)).assert_refused_param("foo");
    assert_eq!(open_err("/api/v1/events", None).status, 401);
    assert!(
        EventStream::open(&sb, &format!("/api/v1/events?pair={PAIR}"), Some(&viewer_secret)).is_ok(),
        "a viewer streams"
    );

    // ---- A pair deleted while streamed: `gone`, and the stream ends.
    let doomed = register_pairs(&sb, "console-doomed", 1).remove(0);
    let s = EventStream::open(&sb, &format!("/api/v1/events?pair={doomed}"), Some(TOKEN)).expect("stream");
    s.next_pair(Duration::from_secs(3));
    let r = api.delete(&format!("/api/v1/pairs/{doomed}?confirm={doomed}"));
    assert_eq!(r.status, 200, "{}", r.text());
    let (name, data) = loop {
        let e = s.next(Duration::from_secs(5)).expect("a gone event before the end");
        if e.0 != "pair" {
            break e;
        }
    };
    assert_eq!(name, "gone", "{data}");
    let gone: Value = serde_json::from_str(&data).unwrap();
    assert!(gone["message"].as_str().unwrap().contains("deleted"), "{gone}");
    assert_eq!(s.next(Duration::from_secs(5)), None, "the stream ends after gone");
    step("a deleted pair's stream said gone and ended");

    // ---- One-time download links.
    let points = api.points(PAIR);
    let latest = points.last().unwrap().id;
    let want = api.export_full(PAIR, &latest.to_string(), 0, SIZE);
    let path = format!("{pp}/points/{latest}/disks/0/download");
    assert_eq!(anonymous.post(&path, "application/json", b"{}").status, 401, "the link needs a token");
    viewer.post(&path, "application/json", b"{}").assert_error(403, "Forbidden");
    let r = operator.post(&path, "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    let link: DownloadLink = serde_json::from_value(r.json()).unwrap();
    let ticket = link.url.strip_prefix("/api/v1/downloads/").expect("url");
    assert!(ticket.len() == 64 && ticket.chars().all(|c| c.is_ascii_hexdigit()), "ticket {ticket}");
    assert_eq!(link.filename, format!("{PAIR}-point{latest}-disk0.img"));
    assert_eq!(link.size_bytes, SIZE);
    let expires = humantime::parse_rfc3339(&link.expires_at).expect("expires_at");
    let ttl = expires.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    assert!(ttl > Duration::from_secs(50) && ttl <= TICKET_TTL, "expires in {ttl:?}");
    let t = Instant::now();
    let got = anonymous.get(&link.url);
    assert_eq!(got.status, 200, "{}", got.text());
    step(format!("{} bytes through the download link in {:?}", got.body.len(), t.elapsed()));
    assert_eq!(got.body.len() as u64, SIZE);
    assert_eq!(blake3::hash(&got.body), want, "the link's bytes are the export's");
    assert_eq!(got.header("content-length"), Some(SIZE.to_string().as_str()));
    assert_eq!(got.header("content-disposition"), Some(format!("attachment; filename=\"{}\"", link.filename).as_str()));
    let again = anonymous.get(&link.url).assert_error(404, "NotFound");
    assert!(again["message"].as_str().unwrap().contains("unknown, used or expired"), "{again}");
    anonymous.get("/api/v1/downloads/00ff").assert_error(404, "NotFound");
    assert_eq!(anonymous.get(&format!("{pp}/points/{latest}/disks/0/image")).status, 401, "the export needs a token");
    let dl = |point: &str, disk: &str| api.post(&format!("{pp}/points/{point}/disks/{disk}/download"), "", b"");
    api.post("/api/v1/pairs/nosuch-pair/points/1/disks/0/download", "", b"").assert_error(404, "PairNotFound");
    dl("999999", "0").assert_error(404, "PointNotFound");
    dl("abc", "0").assert_refused_param("point");
    dl(&latest.to_string(), "7").assert_refused_param("disk");
    dl(&latest.to_string(), "x").assert_refused_param("disk");
    step("download links: single use, without a token, the export's bytes");

    // ---- Retention preview.
    let retention_before = api.get(&format!("{pp}/retention")).json();
    let tasks_before = api.get(&format!("/api/v1/tasks?pair={PAIR}")).json();
    for _ in 0..3 {
        api.create_point_wait(PAIR);
    }
    let points = api.points(PAIR);
    let preview = |api: &Api, body: Value| api.post_json(&format!("{pp}/retention/preview"), &body);
    let r = preview(&operator, json!({"grid": "1x1h", "keep_last": 1}));
    assert_eq!(r.status, 200, "{}", r.text());
    let report: PruneReport = serde_json::from_value(r.json()).unwrap();
    step(format!(
        "preview of 1x1h, keep_last 1: remove {:?}, keep {:?}",
        report.removed.iter().map(|m| (m.id, &m.reason)).collect::<Vec<_>>(),
        report.kept.iter().map(|m| (m.id, &m.reason)).collect::<Vec<_>>()
    ));
    assert!(report.dry_run && !report.scheduled && report.task.is_none(), "{report:?}");
    assert_eq!(report.points_before, points.len() as u64);
    assert!(!report.removed.is_empty(), "a policy keeping one point per hour removes some of {}", points.len());
    assert_eq!(report.removed.len() + report.kept.len(), points.len());
    assert!(report.kept.iter().chain(&report.removed).all(|m| !m.reason.is_empty()), "{report:?}");
    assert!(report.kept.iter().any(|m| m.id == points.last().unwrap().id), "the newest point stays");
    assert_eq!(api.points(PAIR), points, "a preview removes nothing");
    assert_eq!(api.get(&format!("{pp}/retention")).json(), retention_before, "a preview sets no policy");
    assert_eq!(api.get(&format!("/api/v1/tasks?pair={PAIR}")).json(), tasks_before, "a preview is no task");
    // The policy the pair follows: the prune's own dry run.
    let same: PruneReport = serde_json::from_value(preview(&api, json!({"reset": true})).json()).unwrap();
    let dry: PruneReport =
        serde_json::from_value(api.post_json(&format!("{pp}/prune"), &json!({"dry_run": true})).json()).unwrap();
    let ids = |r: &PruneReport| (r.removed.iter().map(|m| m.id).collect::<Vec<_>>(), r.kept.len());
    assert_eq!(ids(&same), ids(&dry), "the default policy's preview is the prune's dry run");
    preview(&api, json!({"grid": "nonsense"})).assert_refused_param("grid");
    preview(&api, json!({"reset": true, "keep_last": 2})).assert_refused_param("reset");
    preview(&api, json!({})).assert_refused_param("body");
    preview(&viewer, json!({"keep_last": 1})).assert_error(403, "Forbidden");
    api.post_json("/api/v1/pairs/nosuch-pair/retention/preview", &json!({"keep_last": 1}))
        .assert_error(404, "PairNotFound");
    assert_eq!(api.points(PAIR), points, "refused previews change nothing");
    assert_eq!(api.get(&format!("{pp}/retention")).json(), retention_before);

    // ---- Points paging.
    let ids_of = |r: Reply| -> Vec<u64> {
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice::<Vec<RecoveryPoint>>(&r.body).unwrap().iter().map(|p| p.id).collect()
    };
    let all: Vec<u64> = points.iter().map(|p| p.id).collect();
    assert!(all.len() >= 5, "{all:?}");
    let before = all[4];
    assert_eq!(ids_of(api.get(&format!("{pp}/points?limit=2&before={before}"))), all[2..4]);
    assert_eq!(ids_of(api.get(&format!("{pp}/points?before={before}"))), all[..4]);
    assert_eq!(ids_of(api.get(&format!("{pp}/points?before={}", all[0]))), Vec::<u64>::new());
    assert_eq!(ids_of(api.get(&format!("{pp}/points?limit=3"))), all[all.len() - 3..]);
    api.get(&format!("{pp}/points?before=abc")).assert_refused_param("before");
    api.get(&format!("{pp}/points?limit=x")).assert_refused_param("limit");
    api.get("/api/v1/pairs/nosuch-pair/points?before=3").assert_error(404, "PairNotFound");

    // ---- allowed_actions across suspend → skip-to-resync-marker.
    let a = wait_status(&api, PAIR, Some(&mut agent), "verify_source allowed", LONG, |s| {
        s.allowed_actions.iter().any(|a| a == "verify_source")
    })
    .allowed_actions;
    for want in ["suspend", "drill", "verify", "verify_source", "create_point", "pause"] {
        assert!(a.iter().any(|x| x == want), "replicating: {want} missing from {a:?}");
    }
    for not in ["skip_to_resync_marker", "mark_dump", "resume_resync", "load_dump", "resume_apply"] {
        assert!(!a.iter().any(|x| x == not), "replicating: {not} in {a:?}");
    }
    assert!(viewer.status(PAIR).allowed_actions.is_empty(), "a viewer may take no action");
    let ops = operator.status(PAIR).allowed_actions;
    assert!(ops.iter().any(|a| a == "drill") && !ops.iter().any(|a| a == "suspend"), "operator sees {ops:?}");
    let r = api.post(&format!("{pp}/suspend"), "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    let a = wait_status(&api, PAIR, Some(&mut agent), "mark_dump allowed (agent back)", LONG, |s| {
        s.allowed_actions.iter().any(|a| a == "mark_dump")
    })
    .allowed_actions;
    step(format!("suspended: {a:?}"));
    assert!(a.iter().any(|x| x == "skip_to_resync_marker") && a.iter().any(|x| x == "resume"), "{a:?}");
    for not in ["suspend", "pause", "verify_source", "resume_resync", "create_point"] {
        assert!(!a.iter().any(|x| x == not), "suspended: {not} in {a:?}");
    }
    let r = api.post(&format!("{pp}/skip-to-resync-marker"), "application/json", b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    let a = allowed(&api);
    step(format!("awaiting the resync marker: {a:?}"));
    assert!(!a.iter().any(|x| x == "skip_to_resync_marker"), "{a:?}");
    assert!(a.iter().any(|x| x == "mark_dump"), "{a:?}");
    assert!(!a.iter().any(|x| x == "resume_resync"), "no dump marker yet: {a:?}");
    assert!(!operator.status(PAIR).allowed_actions.iter().any(|x| x == "mark_dump"), "mark_dump is an admin's");

    // ---- The link asked for at the start has expired.
    if let Some(left) = TICKET_TTL.checked_sub(stale_at.elapsed()) {
        step(format!("waiting {left:?} for the first download link to expire"));
        std::thread::sleep(left + Duration::from_secs(1));
    }
    anonymous.get(&stale.url).assert_error(404, "NotFound");
    step("an unused link expired");

    // ---- An open stream does not hold up the standby's stop.
    let open = EventStream::open(&sb, &format!("/api/v1/events?pair={PAIR}"), Some(TOKEN)).expect("stream");
    open.next_pair(Duration::from_secs(3));
    let t = Instant::now();
    sb.term();
    step(format!("the standby stopped {:?} after SIGTERM with a stream open", t.elapsed()));
    assert!(t.elapsed() < Duration::from_secs(10), "the stop took {:?}", t.elapsed());
}

#[test]
fn five_hundred_pairs() {
    const N: usize = 500;
    let env = TestEnv::new("console-500");
    let sb = Standby::start(&env, Some(TOKEN));
    let api = sb.api();
    let t = Instant::now();
    let ids = register_pairs(&sb, "fleet", N);
    step(format!("{N} pairs registered over the link in {:?}", t.elapsed()));
    assert_eq!(ids.len(), N);
    let t = Instant::now();
    let r = api.get("/api/v1/pairs");
    let took = t.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    let rows: Vec<PairSummary> = serde_json::from_slice(&r.body).unwrap();
    println!("GET /api/v1/pairs with {} pairs: {took:?}, {} bytes", rows.len(), r.body.len());
    step(format!("GET /api/v1/pairs with {} pairs: {took:?}, {} bytes", rows.len(), r.body.len()));
    assert!(rows.len() >= N, "{} pairs listed", rows.len());
    let (id, host, addr) = pair_at("fleet", 9);
    let row = rows.iter().find(|r| r.pair_id.as_str() == id).expect("listed");
    let addr = addr.to_string();
    assert_eq!((row.source_host.as_deref(), row.source_address.as_deref()), (Some(host.as_str()), Some(addr.as_str())));
    let search = |q: &str| -> usize {
        let r = api.get(&format!("/api/v1/pairs?search={q}"));
        assert_eq!(r.status, 200, "{}", r.text());
        serde_json::from_slice::<Vec<PairSummary>>(&r.body).unwrap().len()
    };
    for q in ["db", "ams2", "127.11.", "fleet-0123"] {
        let n = search(q);
        step(format!("search {q:?}: {n} pair(s)"));
        assert!(n > 0 && n < N, "search {q:?} found {n}");
    }
    // The list stream's first event carries them all.
    let t = Instant::now();
    let list = EventStream::open(&sb, "/api/v1/events", Some(TOKEN)).expect("list stream");
    let (name, data) = list.next(Duration::from_secs(10)).expect("list event");
    assert_eq!(name, "pairs");
    let n = serde_json::from_str::<Vec<Value>>(&data).unwrap().len();
    println!("first list event with {n} pairs after {:?} ({} bytes)", t.elapsed(), data.len());
    assert!(n >= N);
}
