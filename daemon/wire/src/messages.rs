//! The messages of the link. Agent → standby: [`AgentMsg`]; standby → agent: [`StandbyMsg`].
//!
//! One connection carries one pair. The agent opens with [`Hello`]; the standby answers
//! [`StandbyMsg::Welcome`] or [`StandbyMsg::Refused`]. Then, per epoch: the agent asks which
//! chunk hashes the standby already holds ([`AgentMsg::Have`]), sends chunks
//! ([`AgentMsg::Chunks`]: zero flag, known hash, or data), closes the epoch
//! ([`AgentMsg::EpochEnd`]); the standby commits it as a recovery point and only then answers
//! [`StandbyMsg::EpochAck`].
//!
//! Messages are postcard-encoded, which is not self-describing: fields and variants are
//! matched by position. New fields go at the end of a struct and new variants at the end of
//! an enum, and both sides of a link run the same release (the frame's protocol version).

use drpair_types::{Consistency, DumpMarker, Epoch, Lineage, PointKind, QuiesceOutcome, TrackingCounters};
use serde::{Deserialize, Serialize};

/// blake3 of a chunk's uncompressed bytes.
pub type Hash = [u8; 32];

/// One disk as the agent sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireDisk {
    pub path: String,
    pub size_bytes: u64,
    pub chunk_size: u64,
}

/// What the agent remembers of its replication (from its change maps).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentState {
    /// None when the agent has no usable change maps (first run, state lost or damaged).
    pub lineage: Option<Lineage>,
    /// Newest epoch the standby acknowledged to this agent (0 = none).
    pub acked: Epoch,
    /// Newest epoch this agent cut (0 = none).
    pub last_cut: Epoch,
    /// Oldest epoch the agent's change history reaches back to: a replay from a point at or
    /// after it ships exactly what changed since.
    pub history_from: Epoch,
}

/// First message of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub pair_id: String,
    pub token: Option<String>,
    pub host: String,
    pub agent_version: String,
    pub tracker: String,
    pub disks: Vec<WireDisk>,
    pub state: AgentState,
    /// Start a new lineage even though the agent has state (operator asked for it).
    pub reinit: bool,
}

/// One chunk's content as shipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkBody {
    /// All bytes zero.
    Zero,
    /// The standby already holds a chunk with this hash.
    Known(Hash),
    /// The bytes, zstd-compressed or raw; `raw_len` is the uncompressed length.
    Data {
        hash: Hash,
        raw_len: u32,
        compressed: bool,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    },
    /// Chunks `index .. index + count` of the disk are all zero (at least one): the holes of a
    /// sparse disk travel as one item, and the standby records them without an entry per chunk
    /// (store `versions/zero_runs.rs`). Since protocol version 6.
    ZeroRun { count: u64 },
}

/// One chunk of one disk (or, with [`ChunkBody::ZeroRun`], a run of chunks from `index`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkItem {
    pub disk: u32,
    pub index: u64,
    pub body: ChunkBody,
}

/// What kind of pass the agent runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PassKind {
    /// First copy of a lineage: every chunk.
    #[default]
    Initial,
    /// Only chunks the change map says changed.
    Incremental,
    /// Every chunk read and hashed, changed ones shipped (scan tracker).
    Scan,
    /// Every chunk read and compared with the standby's hashes after a tracking gap.
    Reconcile,
    /// Every chunk read and compared with the newest point on an operator's request (online
    /// verify, [`StandbyMsg::VerifySource`]); differing chunks are shipped.
    Verify,
}

impl PassKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PassKind::Initial => "initial",
            PassKind::Incremental => "incremental",
            PassKind::Scan => "scan",
            PassKind::Reconcile => "reconcile",
            PassKind::Verify => "verify",
        }
    }
}

/// Progress of the agent, sent about twice a second while a pass runs, and as a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub epoch: Epoch,
    pub pass: Option<PassKind>,
    pub chunks_done: u64,
    pub chunks_total: u64,
    /// Chunks known changed and not yet acknowledged.
    pub backlog_chunks: u64,
    pub backlog_bytes: u64,
    /// Bytes read from the disks since the agent started.
    pub bytes_read_total: u64,
    /// Why the pass runs when it is not routine (e.g. "unclean agent stop").
    pub reason: Option<String>,
    /// As in [`AgentState::history_from`].
    pub history_from: Option<Epoch>,
    /// The tracker's counters (in heartbeats).
    pub tracking: Option<TrackingCounters>,
    /// Bytes of the epoch held in the agent's spool, read and not yet shipped.
    pub spool_bytes: u64,
    /// The epoch did not fit the spool: its last chunks are read as the link takes them, so
    /// its point's read window grows.
    pub spool_full: bool,
    /// The compression level in use now (0: off, else the zstd level): with `auto`, where
    /// the adaptation to the link and the CPU has taken it.
    pub compression_level: Option<i32>,
}

/// The end of an epoch: every chunk of it has been sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochEnd {
    pub epoch: Epoch,
    pub lineage: Lineage,
    pub cut_unix_ms: u64,
    pub kind: PointKind,
    pub consistency: Consistency,
    /// Cut requests (from [`StandbyMsg::CutRequest`]) this epoch answers.
    pub request_ids: Vec<u64>,
    /// Chunks sent in this epoch.
    pub chunks: u64,
    /// The pass covered every chunk of every disk (baseline, scan, reconcile).
    pub full_pass: bool,
    /// What quiescing achieved, when the cut was to be app-consistent.
    pub quiesce: Option<QuiesceOutcome>,
    /// This epoch's pass compared every chunk with a loaded third-party dump.
    pub dump_check: Option<SourceCheck>,
    /// This epoch's pass is the online verify asked for by [`StandbyMsg::VerifySource`].
    pub source_verify: Option<VerifyReport>,
    /// Milliseconds from the cut to the last chunk of the epoch read from the disks: how long
    /// the disks kept changing under the point's reads (its "fuzzy window").
    pub read_window_ms: u64,
}

/// The comparison of every chunk of the source with a recovery point the standby holds: a
/// loaded third-party dump (the first epoch after `resume-apply`), or the newest point (an
/// online verify).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceCheck {
    /// The point compared with.
    pub against: Epoch,
    /// Chunks read and compared.
    pub compared: u64,
    /// Chunks that differed from the point although the agent saw no change after it: the
    /// point does not hold what the source held then.
    pub mismatched: u64,
    /// Some of them, as (disk, chunk).
    pub sample: Vec<(u32, u64)>,
}

/// The end of an online verify pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyReport {
    /// The [`StandbyMsg::VerifySource`] this pass answers.
    pub request_id: u64,
    /// The comparison, or why it cannot be trusted (the tracker lost events during the pass,
    /// so changes cannot be told from mismatches). Either way every chunk that differed from
    /// the point was shipped in this epoch.
    pub result: Result<SourceCheck, String>,
}

/// Where a dump marker goes in the agent's change history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DumpAt {
    /// Cut an epoch now.
    Now,
    /// An epoch the agent cut while suspended.
    Epoch(Epoch),
    /// The newest epoch the agent cut at or before this time (ms since the Unix epoch).
    TimeMs(u64),
}

/// Why the agent recorded no dump marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MarkRefusal {
    /// The request's parameter at fault (`at`, `freeze`, `exec`), if one is.
    pub parameter: Option<String>,
    pub message: String,
}

/// Record a dump marker (`drpair marker dump`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DumpMarkRequest {
    pub request_id: u64,
    pub at: DumpAt,
    /// Freeze these mount points around the cut and `exec`.
    pub freeze: Vec<String>,
    /// The operator's snapshot command, run after the cut.
    pub exec: Option<String>,
    pub budget_ms: Option<u64>,
    pub exec_timeout_ms: Option<u64>,
}

/// How to quiesce the applications around a requested cut.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiesceRequest {
    /// Mount points to freeze.
    pub freeze: Vec<String>,
    /// Run the agent's pre/post hooks.
    pub hooks: bool,
    /// Thaw budget in milliseconds; `None`: the agent's own.
    pub budget_ms: Option<u64>,
}

impl Default for EpochEnd {
    fn default() -> Self {
        Self {
            epoch: 0,
            lineage: Lineage::nil(),
            cut_unix_ms: 0,
            kind: PointKind::Scheduled,
            consistency: Consistency::Fuzzy,
            request_ids: vec![],
            chunks: 0,
            full_pass: false,
            quiesce: None,
            dump_check: None,
            source_verify: None,
            read_window_ms: 0,
        }
    }
}

/// Agent → standby.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AgentMsg {
    Hello(Hello),
    /// Which of these hashes does the standby hold? Answered by [`StandbyMsg::HaveReply`].
    Have {
        batch: u64,
        hashes: Vec<Hash>,
    },
    /// Chunks of the open epoch `epoch`.
    Chunks {
        epoch: Epoch,
        items: Vec<ChunkItem>,
    },
    EpochEnd(EpochEnd),
    Progress(Progress),
    /// Hashes of the newest committed point for a range of a disk (reconcile after a gap).
    HashesRequest {
        req: u64,
        disk: u32,
        first: u64,
        count: u64,
    },
    /// Digests of the newest committed point for a range of a disk, one per `span` chunks
    /// (see [`range_digest`]): a differential resync compares ranges first, so ranges that
    /// match cost 32 bytes on the wire.
    DigestsRequest {
        req: u64,
        disk: u32,
        first: u64,
        count: u64,
        span: u32,
    },
    /// Answer to [`StandbyMsg::DumpMark`]: the recorded marker, or why none was.
    DumpMarked {
        request_id: u64,
        result: Result<DumpMarker, MarkRefusal>,
    },
    /// Resync mode (answer to [`StandbyMsg::Resync`]): the agent's history reaches the dump
    /// point; the dump marker follows.
    ResyncMarker {
        request_id: u64,
        lineage: Lineage,
        acked: Epoch,
        history_from: Epoch,
    },
    /// The dump point, sent right after the resync marker.
    DumpMarker {
        request_id: u64,
        marker: DumpMarker,
    },
    /// The agent cannot resume in resync mode (its change history no longer reaches the dump
    /// point, or no marker was recorded); `message` says what to do.
    ResyncRefused {
        request_id: u64,
        message: String,
    },
    /// Answer to [`StandbyMsg::FailbackEnd`]: every chunk of the failback request was written
    /// and synced onto the agent's disks, or why not.
    FailbackWritten {
        req: u64,
        result: Result<FailbackWrites, String>,
    },
    /// First message of an agent that enrolls (instead of a Hello): the single-use secret
    /// `drpair pairs enroll PAIR` made, and the public half of the key the agent made for
    /// itself (an uncompressed P-256 point). Answered by [`StandbyMsg::Certificate`] or
    /// [`StandbyMsg::Refused`]; the connection then ends.
    Enroll {
        pair_id: String,
        secret: String,
        public_key: Vec<u8>,
    },
    /// An enrolled agent asks for a new certificate for a new key before its own expires
    /// (over its authenticated link). Answered by [`StandbyMsg::Certificate`].
    Renew {
        public_key: Vec<u8>,
    },
    /// Answer to [`StandbyMsg::Ping`], sent ahead of any queued data: the standby measures the
    /// round trip with it, and sees the agent alive while nothing else flows.
    Pong {
        seq: u64,
    },
}

/// What a failback wrote onto the agent's disks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailbackWrites {
    pub chunks: u64,
    pub bytes: u64,
}

impl AgentMsg {
    /// The message's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            AgentMsg::Hello(_) => "Hello",
            AgentMsg::Have { .. } => "Have",
            AgentMsg::Chunks { .. } => "Chunks",
            AgentMsg::EpochEnd(_) => "EpochEnd",
            AgentMsg::Progress(_) => "Progress",
            AgentMsg::Pong { .. } => "Pong",
            AgentMsg::HashesRequest { .. } => "HashesRequest",
            AgentMsg::DigestsRequest { .. } => "DigestsRequest",
            AgentMsg::DumpMarked { .. } => "DumpMarked",
            AgentMsg::ResyncMarker { .. } => "ResyncMarker",
            AgentMsg::DumpMarker { .. } => "DumpMarker",
            AgentMsg::ResyncRefused { .. } => "ResyncRefused",
            AgentMsg::FailbackWritten { .. } => "FailbackWritten",
            AgentMsg::Enroll { .. } => "Enroll",
            AgentMsg::Renew { .. } => "Renew",
        }
    }
}

/// A stored chunk version as the standby reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireVersion {
    Zero,
    Data(Hash),
}

/// Digest of a run of chunk versions: blake3 over one tagged entry per chunk (never written,
/// all zero, or the content's hash). Both sides compute it the same way, the standby from its
/// version index and the agent from what it reads, so equal digests mean equal content.
pub fn range_digest(versions: impl IntoIterator<Item = Option<WireVersion>>) -> Hash {
    let mut h = blake3::Hasher::new();
    for v in versions {
        match v {
            None => h.update(&[0]),
            Some(WireVersion::Zero) => h.update(&[1]),
            Some(WireVersion::Data(hash)) => h.update(&[2]).update(&hash),
        };
    }
    *h.finalize().as_bytes()
}

/// Why the standby refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RefuseCode {
    AccessDenied,
    BadRequest,
    GeometryMismatch,
    LineageMismatch,
    CheckpointMismatch,
    Unsupported,
    /// The pair was deleted on the standby: the agent decommissions itself and holds.
    PairDeleted,
}

impl RefuseCode {
    /// Only an operator can remove the cause: the agent retrying changes nothing.
    pub fn needs_operator(self) -> bool {
        !matches!(self, RefuseCode::BadRequest)
    }
}

/// How the agent starts after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StartMode {
    /// Continue from the checkpoint (`committed`).
    Continue,
    /// The pair was restarted: if the agent's lineage is not the Welcome's, start over in it
    /// (every chunk shipped again) with epochs above `epoch_floor`.
    NewBaseline { epoch_floor: Epoch },
    /// The standby rolled its head back to point `to` (replay): every chunk changed since is
    /// shipped again.
    Rewind { to: Epoch },
    /// The standby's head is a loaded third-party dump of the agent's dump point `epoch`:
    /// the agent ships what changed after it and compares every chunk with the dump.
    FromDump { epoch: Epoch },
}

/// Whether the agent ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RunMode {
    Run,
    /// Ship nothing (paused, stopped, not started): keep tracking, keep the link, report
    /// progress; `reason` is for the log.
    Hold {
        reason: String,
    },
    /// Held for a third-party dump: as `Hold`, and the agent cuts epochs locally (nothing
    /// shipped) so that a dump point given as a time resolves to a close epoch.
    Suspend {
        reason: String,
    },
}

impl RunMode {
    /// Ship nothing.
    pub fn holds(&self) -> bool {
        !matches!(self, RunMode::Run)
    }
}

/// Standby → agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum StandbyMsg {
    /// The connection is accepted. The agent continues in `lineage` from `committed`.
    Welcome {
        lineage: Lineage,
        /// Newest committed epoch of the pair (0 = none yet).
        committed: Epoch,
        /// The pair was registered by this connection.
        registered: bool,
        mode: StartMode,
        run: RunMode,
        /// Ship every chunk's bytes during the baseline, never just its hash.
        full_copy: bool,
    },
    /// Ship or hold from now on (pause, resume, stop, start).
    Control {
        run: RunMode,
    },
    /// The connection is refused; the message says what to do. The standby closes it.
    Refused {
        code: RefuseCode,
        message: String,
    },
    HaveReply {
        batch: u64,
        have: Vec<bool>,
    },
    /// Epoch committed as recovery point `point_id`.
    EpochAck {
        epoch: Epoch,
        point_id: u64,
    },
    /// Cut now (operator request); the epoch that answers lists `request_id`.
    CutRequest {
        request_id: u64,
        /// Quiesce the applications around the cut (app-consistent point).
        quiesce: Option<QuiesceRequest>,
    },
    Hashes {
        req: u64,
        disk: u32,
        first: u64,
        versions: Vec<Option<WireVersion>>,
    },
    /// Answer to [`AgentMsg::DigestsRequest`]: one digest per `span` chunks from `first`.
    Digests {
        req: u64,
        disk: u32,
        first: u64,
        span: u32,
        digests: Vec<Hash>,
    },
    /// Record a dump marker; answered by [`AgentMsg::DumpMarked`].
    DumpMark(DumpMarkRequest),
    /// Resume in resync mode for the dump at `dump_epoch`: answered by [`AgentMsg::ResyncMarker`]
    /// and [`AgentMsg::DumpMarker`], or [`AgentMsg::ResyncRefused`].
    Resync {
        request_id: u64,
        dump_epoch: Epoch,
    },
    /// The standby refused something the agent sent; it discards the open epoch and closes.
    Error {
        message: String,
    },
    /// Online verify: in the next epoch, read every chunk, compare it with the newest point
    /// and ship what differs; that epoch's end carries the [`VerifyReport`] for `request_id`.
    VerifySource {
        request_id: u64,
    },
    /// Failback towards the original side: write these chunks (data or zero) onto the
    /// agent's disks. Sent only while the agent holds, between [`StandbyMsg::FailbackBegin`]
    /// and [`StandbyMsg::FailbackEnd`] of the same `req`.
    FailbackWrite {
        req: u64,
        items: Vec<ChunkItem>,
    },
    /// Every chunk of failback request `req` was sent: sync the disks and answer with
    /// [`AgentMsg::FailbackWritten`].
    FailbackEnd {
        req: u64,
    },
    /// The standby ends this connection on purpose (an operator's suspend, restart, replay,
    /// failover): reconnect at once, without backing off, to hear what comes next.
    Reconnect {
        reason: String,
    },
    /// A client certificate issued for the agent's key (PEM), bound to its pair, valid until
    /// `not_after_unix` (seconds): the answer to an Enroll or a Renew.
    Certificate {
        pair_id: String,
        pem: String,
        not_after_unix: u64,
    },
    /// A failback of `pair_id` onto the agent's disks starts: its writes follow as request
    /// `req`. The agent accepts them only while held and only for its own pair; writes of any
    /// other request, or without a begin, are refused with nothing written.
    FailbackBegin {
        req: u64,
        pair_id: String,
    },
    /// The standby's heartbeat (every couple of seconds, ahead of queued frames): the agent
    /// answers [`AgentMsg::Pong`] at once. A side that hears nothing for long calls the link
    /// stalled and reconnects.
    Ping {
        seq: u64,
    },
    /// The rate the agent should send at, bytes per second (0: as fast as it can): the
    /// standby's limits for this pair, so the agent's queues stay short and its control
    /// messages are not stuck behind data the standby would only read slowly. Sent when it
    /// changes; the standby still enforces the limit on what it reads.
    Pace {
        bytes_per_sec: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{decode_frame, encode};

    #[test]
    fn verify_messages_round_trip() {
        let ask = StandbyMsg::VerifySource { request_id: 9 };
        assert_eq!(decode_frame::<StandbyMsg>(&encode(&ask).unwrap()).unwrap(), ask);
        let check = SourceCheck { against: 4, compared: 100, mismatched: 2, sample: vec![(0, 3), (1, 7)] };
        for result in [Ok(check), Err("tracking gap".to_string())] {
            let end = AgentMsg::EpochEnd(EpochEnd {
                epoch: 5,
                full_pass: true,
                source_verify: Some(VerifyReport { request_id: 9, result }),
                ..Default::default()
            });
            assert_eq!(decode_frame::<AgentMsg>(&encode(&end).unwrap()).unwrap(), end);
        }
        let p = AgentMsg::Progress(Progress { pass: Some(PassKind::Verify), ..Default::default() });
        assert_eq!(decode_frame::<AgentMsg>(&encode(&p).unwrap()).unwrap(), p);
        assert_eq!(PassKind::Verify.as_str(), "verify");
    }

    #[test]
    fn range_digest_tells_versions_apart() {
        let a = [7u8; 32];
        let base = vec![Some(WireVersion::Data(a)), Some(WireVersion::Zero), None];
        let d = range_digest(base.clone());
        assert_eq!(d, range_digest(base.clone()));
        let variants = [
            vec![Some(WireVersion::Data([8u8; 32])), Some(WireVersion::Zero), None],
            vec![Some(WireVersion::Data(a)), None, None],
            vec![Some(WireVersion::Data(a)), Some(WireVersion::Zero), Some(WireVersion::Zero)],
            vec![Some(WireVersion::Zero), Some(WireVersion::Data(a)), None],
            vec![Some(WireVersion::Data(a)), Some(WireVersion::Zero)],
        ];
        for v in variants {
            assert_ne!(range_digest(v.clone()), d, "{v:?}");
        }
    }
}
