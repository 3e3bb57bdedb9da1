//! The standby over the link, as the pass sees it ([`drpair_ship::Standby`]): Have queries, hash
//! requests and Chunks frames encoded as wire frames on the connection's writer, and their
//! answers routed back by the connection's reader task straight to the waiting worker.
//!
//! Everything else the standby says goes to the session's control channel.

use crate::link::meter::LinkMeter;
use crate::link::{AbortOnDrop, LinkError, LinkReader, STALL_AFTER, read_msg_watched};
use drpair_ship::pass::PassError;
use drpair_ship::{Hash, HaveTicket, Standby};
use drpair_types::Epoch;
use drpair_wire::{AgentMsg, ChunkBody, ChunkItem, StandbyMsg, WireVersion, encode, encode_sized};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Longest a worker waits for the standby's answer to a query.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

type Routes<T> = Arc<Mutex<HashMap<u64, crossbeam_channel::Sender<T>>>>;

/// Why the connection's reader stopped.
#[derive(Debug, thiserror::Error)]
pub enum LinkDown {
    /// The standby closed the connection.
    #[error("standby closed the connection")]
    Closed,
    /// Reading or decoding a frame failed.
    #[error("{0}")]
    Link(LinkError),
}

impl From<LinkError> for LinkDown {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Closed => LinkDown::Closed,
            e => LinkDown::Link(e),
        }
    }
}

/// What the connection's reader hands on besides the control channel.
pub struct ReaderSide {
    /// Failback writes, to their own task.
    pub failback: mpsc::Sender<StandbyMsg>,
    /// The reason of a `Reconnect` order.
    pub asked: Arc<Mutex<Option<String>>>,
    /// Why the link went down.
    pub down: Arc<Mutex<Option<String>>>,
    /// The connection's bytes, for the stall watch.
    pub meter: Arc<LinkMeter>,
    /// Where heartbeats are answered (ahead of queued frames).
    pub urgent: mpsc::Sender<Vec<u8>>,
    /// The pass's hold flag: a hold or pause is obeyed by a pass in flight at its next
    /// frame, not when the session next reads its control channel.
    pub hold: Arc<AtomicBool>,
    /// The pace of the writer's bulk frames, as the standby asks.
    pub pace: Arc<crate::link::meter::Bucket>,
}

/// The standby at the other end of one connection.
pub struct LinkStandby {
    out: mpsc::Sender<Vec<u8>>,
    have_routes: Routes<Vec<bool>>,
    hash_routes: Routes<Vec<Option<WireVersion>>>,
    next_id: AtomicU64,
    abort: Arc<AtomicBool>,
    /// The session's hold: a chunk frame waiting for room in the queue is not queued while
    /// it is set.
    hold: Arc<AtomicBool>,
    /// The runtime the writer runs on: workers (plain threads) wait on its queue through it.
    rt: tokio::runtime::Handle,
}

impl LinkStandby {
    /// Frames go to `out` (the connection's writer); `abort` stops waiting workers; `hold`
    /// keeps chunk frames out of the queue (see [`LinkStandby::queue_chunks`]). Called on the
    /// runtime.
    pub fn new(out: mpsc::Sender<Vec<u8>>, abort: Arc<AtomicBool>, hold: Arc<AtomicBool>) -> Self {
        Self {
            out,
            have_routes: Default::default(),
            hash_routes: Default::default(),
            next_id: AtomicU64::new(1),
            abort,
            hold,
            rt: tokio::runtime::Handle::current(),
        }
    }

    /// Queues a chunk frame once there is room and the session does not hold; returns how
    /// long the queue made it wait (time held not counted). A worker waiting for room when a
    /// pause comes keeps its frame until the resume: a pause stops the link after the few
    /// frames already queued, not after every frame the workers had in hand.
    fn queue_chunks(&self, frame: Vec<u8>) -> Result<Duration, PassError> {
        let mut waited = Duration::ZERO;
        loop {
            let t = Instant::now();
            let permit = self.rt.block_on(self.out.reserve()).map_err(|_| PassError::LinkClosed)?;
            waited += t.elapsed();
            if !self.hold.load(Ordering::Relaxed) {
                permit.send(frame);
                return Ok(waited);
            }
            drop(permit);
            while self.hold.load(Ordering::Relaxed) {
                if self.abort.load(Ordering::Relaxed) {
                    return Err(PassError::Aborted);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// A fresh id for a request (Have batches, hash and digest requests share one counter).
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Encodes and queues a frame; returns how long the queue made it wait.
    fn send(&self, msg: &AgentMsg) -> Result<Duration, PassError> {
        self.queue(encode(msg).map_err(|e| PassError::Encode(e.to_string()))?)
    }

    /// Queues an encoded frame; returns how long the queue made it wait.
    fn queue(&self, frame: Vec<u8>) -> Result<Duration, PassError> {
        let t = Instant::now();
        self.out.blocking_send(frame).map_err(|_| PassError::LinkClosed)?;
        Ok(t.elapsed())
    }

    /// Waits for a routed answer, giving up when the pass aborts or after [`ANSWER_TIMEOUT`].
    fn wait_answer<T>(&self, rx: &crossbeam_channel::Receiver<T>) -> Result<T, PassError> {
        wait_answer(&self.abort, rx)
    }

    /// Spawns the connection's reader: Have and hash answers go to the waiting workers,
    /// failback writes to `side.failback`, heartbeats are answered at once on the urgent
    /// lane, everything else goes to the returned control channel. A `Reconnect` order's
    /// reason is also kept in `side.asked`, and why the link went down (a stall, a refused
    /// frame, the standby's last words) in `side.down`. When the link fails, `abort` is set
    /// (a pass in flight stops reading for a link that is gone) and every waiting worker is
    /// woken.
    pub fn spawn_reader(
        self: &Arc<Self>,
        mut rd: LinkReader,
        side: ReaderSide,
    ) -> (mpsc::Receiver<Result<StandbyMsg, LinkDown>>, AbortOnDrop) {
        let ReaderSide { failback, asked, down, meter, urgent, hold, pace } = side;
        let (ctl_tx, ctl) = mpsc::channel(64);
        let link = self.clone();
        let task = tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                match read_msg_watched::<_, StandbyMsg>(&mut rd, &mut buf, &meter, STALL_AFTER).await {
                    Ok(StandbyMsg::Pace { bytes_per_sec }) => {
                        if pace.rate() != bytes_per_sec {
                            tracing::info!(bytes_per_sec, "the standby asks for this pace on the link (0: unlimited)");
                        }
                        pace.set_rate(bytes_per_sec);
                    }
                    Ok(StandbyMsg::Ping { seq }) => {
                        // Never waits: a full urgent lane means the link is not draining, and
                        // the standby's own stall watch will see that.
                        let _ = urgent.try_send(encode(&AgentMsg::Pong { seq }).expect("encode"));
                    }
                    Ok(StandbyMsg::HaveReply { batch, have }) => {
                        if let Some(tx) = link.have_routes.lock().expect("routes").remove(&batch) {
                            let _ = tx.send(have);
                        }
                    }
                    Ok(StandbyMsg::Hashes { req, versions, .. })
                        if link.hash_routes.lock().expect("routes").contains_key(&req) =>
                    {
                        if let Some(tx) = link.hash_routes.lock().expect("routes").remove(&req) {
                            let _ = tx.send(versions);
                        }
                    }
                    Ok(
                        m @ (StandbyMsg::FailbackBegin { .. }
                        | StandbyMsg::FailbackWrite { .. }
                        | StandbyMsg::FailbackEnd { .. }),
                    ) => {
                        if failback.send(m).await.is_err() {
                            break;
                        }
                    }
                    Ok(m) => {
                        match &m {
                            StandbyMsg::Reconnect { reason } => *asked.lock().expect("asked") = Some(reason.clone()),
                            StandbyMsg::Control { run } if run.holds() => hold.store(true, Ordering::Relaxed),
                            StandbyMsg::Error { message } => {
                                tracing::warn!("the standby ends the connection: {message}");
                                *down.lock().expect("down") =
                                    Some(format!("the standby ended the connection: {message}"));
                            }
                            _ => {}
                        }
                        if ctl_tx.send(Ok(m)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        {
                            let mut d = down.lock().expect("down");
                            if d.is_none() {
                                *d = Some(match &e {
                                    LinkError::Closed => "the standby closed the connection".to_string(),
                                    e => format!("link to the standby: {e}"),
                                });
                            }
                        }
                        link.abort.store(true, Ordering::Relaxed);
                        let _ = ctl_tx.send(Err(LinkDown::from(e))).await;
                        break;
                    }
                }
            }
            // Wake every worker still waiting for an answer.
            link.have_routes.lock().expect("routes").clear();
            link.hash_routes.lock().expect("routes").clear();
        });
        (ctl, AbortOnDrop(task))
    }
}

/// Waits for a routed answer, giving up when `abort` is set or after [`ANSWER_TIMEOUT`].
fn wait_answer<T>(abort: &AtomicBool, rx: &crossbeam_channel::Receiver<T>) -> Result<T, PassError> {
    let deadline = Instant::now() + ANSWER_TIMEOUT;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(v) => return Ok(v),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if abort.load(Ordering::Relaxed) {
                    return Err(PassError::Aborted);
                }
                if Instant::now() > deadline {
                    return Err(PassError::NoAnswer { secs: ANSWER_TIMEOUT.as_secs() });
                }
            }
            Err(_) => return Err(PassError::ClosedWhileWaiting),
        }
    }
}

impl Standby for LinkStandby {
    fn have(&self, hashes: Vec<Hash>) -> Result<Vec<bool>, PassError> {
        self.have_start(hashes).wait()
    }

    fn have_start(&self, hashes: Vec<Hash>) -> HaveTicket {
        let batch = self.next_id();
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.have_routes.lock().expect("routes").insert(batch, tx);
        if let Err(e) = self.send(&AgentMsg::Have { batch, hashes }) {
            self.have_routes.lock().expect("routes").remove(&batch);
            return HaveTicket::Ready(Err(e));
        }
        let abort = self.abort.clone();
        HaveTicket::Pending(Box::new(move || wait_answer(&abort, &rx)))
    }

    fn hashes(&self, disk: u32, first: u64, count: u64) -> Result<Vec<Option<WireVersion>>, PassError> {
        let req = self.next_id();
        let (tx, rx) = crossbeam_channel::bounded(1);
        self.hash_routes.lock().expect("routes").insert(req, tx);
        self.send(&AgentMsg::HashesRequest { req, disk, first, count })?;
        self.wait_answer(&rx)
    }

    fn send_chunks(&self, epoch: Epoch, items: Vec<ChunkItem>) -> Result<Duration, PassError> {
        // Payloads plus each item's envelope (coordinates, hash, lengths).
        let hint = items
            .iter()
            .map(|i| 48 + if let ChunkBody::Data { payload, .. } = &i.body { payload.len() } else { 0 })
            .sum();
        let frame =
            encode_sized(&AgentMsg::Chunks { epoch, items }, hint).map_err(|e| PassError::Encode(e.to_string()))?;
        self.queue_chunks(frame)
    }
}
