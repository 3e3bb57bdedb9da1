//! The standby's steps of the third-party dump workflow (see `drpair_types::dump`): suspend,
//! skip to the resync marker, record the dump marker (through the agent), resume in resync
//! mode, load a disk's dump, resume apply, and abandon or re-initialise.
//!
//! Each step checks the pair's state first and refuses with the next step to take, changing
//! nothing; every step that changes something logs it in plain words (see
//! [`DumpRecord::note`]).

use super::Standby;
use super::control::{self, RestartOpts};
use super::dump::DumpRecord;
use super::dump_load::{self, DumpLoadSpec, ImageFormat, LoadProgress};
use super::registry::{OpError, PairHandle, PairRecord};
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_pair::{PairOp, Refusal};
use drpair_types::{
    DumpLoadState, DumpMarker, DumpMarkerRequest, DumpStep, DumpVerification, Epoch, Lineage, LoadDumpRequest, PairId,
    PairState, PointKind, PointSizes, RecoveryPoint, parse_time_ms,
};
use drpair_wire::{DumpAt, DumpMarkRequest, MarkRefusal, SourceCheck, StandbyMsg, encode};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::oneshot;

/// The agent's answer to a dump request, handed to the API call waiting for it.
#[derive(Debug)]
pub enum AgentAnswer {
    Marked(Result<DumpMarker, MarkRefusal>),
    Resynced(Result<DumpMarker, String>),
}

/// Why a step was refused or failed.
#[derive(Debug)]
pub enum FlowError {
    /// The pair's state does not allow the step now (409); the message names the next step.
    State(String),
    /// A parameter is wrong (400).
    Param(&'static str, String),
    /// The agent did not answer in time (504).
    Timeout(String),
    /// The store failed (500).
    Internal(String),
}

type Res<T> = Result<T, FlowError>;

/// How long a request waits for a disconnected agent to come back.
const AGENT_RECONNECT: Duration = Duration::from_secs(15);

fn internal(e: impl std::fmt::Display) -> FlowError {
    FlowError::Internal(e.to_string())
}

fn from_op(rec: &PairRecord, e: OpError) -> FlowError {
    match e {
        OpError::Refused(r) => refused(rec, r),
        OpError::Store(m) => FlowError::Internal(m),
    }
}

/// A refusal of the state machine, with the step to take instead.
fn refused(rec: &PairRecord, r: Refusal) -> FlowError {
    not_now(rec, &r.message)
}

fn not_now(rec: &PairRecord, why: &str) -> FlowError {
    FlowError::State(format!("pair '{}': {why}; next step: {}", rec.pair_id, super::dump::next_step(rec)))
}

fn record(h: &PairHandle) -> PairRecord {
    h.record.lock().expect("record").clone()
}

fn pair_id(h: &PairHandle) -> PairId {
    h.record.lock().expect("record").pair_id.clone()
}

fn dump_of(rec: &mut PairRecord) -> Res<&mut DumpRecord> {
    let id = rec.pair_id.clone();
    rec.dump.as_mut().ok_or_else(|| FlowError::Internal(format!("pair '{id}' has no dump record in a dump state")))
}

impl From<OpError> for FlowError {
    fn from(e: OpError) -> Self {
        match e {
            OpError::Store(m) | OpError::Refused(Refusal { message: m, .. }) => FlowError::Internal(m),
        }
    }
}

/// Changes the pair's record under its lock and persists it ([`PairHandle::update`]): what
/// the session or another call changed meanwhile is kept, and the step's checks see the
/// record as it is.
fn update<T>(sb: &Standby, h: &PairHandle, change: impl FnOnce(&mut PairRecord) -> Res<T>) -> Res<T> {
    h.update(&sb.store, change)
}

/// `suspend`: the agent stops shipping without its checkpoint moving (an epoch in flight is
/// abandoned, not committed); tracking goes on.
pub async fn suspend(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<String> {
    let before = record(h);
    before.lifecycle.apply(PairOp::Suspend).map_err(|r| refused(&before, r))?;
    let was_connected = h.runtime.lock().expect("runtime").session.is_some();
    let _guard = control::quiesce(h, "suspended for a third-party dump; reconnect to hold")
        .await
        .map_err(|e| from_op(&before, e))?;
    let id = update(sb, h, |rec| {
        rec.lifecycle = rec.lifecycle.apply(PairOp::Suspend).map_err(|r| refused(rec, r))?;
        let mut d = DumpRecord::new(rec.committed, rec.disks.len());
        let checkpoint = match rec.committed {
            0 => "no recovery point yet: the dump seeds the pair".to_string(),
            c => format!("recovery checkpoint epoch {c}"),
        };
        d.note(
            &rec.pair_id,
            format!(
                "suspended for a third-party dump: the agent ships nothing and keeps its {checkpoint}; tracking goes on"
            ),
        );
        rec.dump = Some(d);
        Ok(rec.pair_id.clone())
    })?;
    h.runtime.lock().expect("runtime").progress = Default::default();
    drop(_guard);
    // The agent learns of the suspension when it reconnects, and only from then on does it
    // cut the epochs a dump point is resolved to: say so if it is not back.
    if !(was_connected && agent_back(h).await) {
        return Ok(format!(
            "pair '{id}' suspended: nothing is shipped and its recovery checkpoint stays where it is. Its agent is not connected: start it and wait until status shows it connected before taking the dump (a dump taken earlier cannot be given a dump point). Next: drpair standby skip-to-resync-marker {id}"
        ));
    }
    Ok(format!(
        "pair '{id}' suspended: nothing is shipped and its recovery checkpoint stays where it is; the agent keeps tracking changes. Next: drpair standby skip-to-resync-marker {id}"
    ))
}

/// Waits up to [`AGENT_RECONNECT`] for the pair's agent to be connected; returns whether it is.
async fn agent_back(h: &PairHandle) -> bool {
    let deadline = tokio::time::Instant::now() + AGENT_RECONNECT;
    loop {
        if h.runtime.lock().expect("runtime").session.is_some() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `standby skip-to-resync-marker`: purge what is queued for the pair and wait for the
/// agent's resync marker.
pub async fn skip_to_resync_marker(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<String> {
    let before = record(h);
    before.lifecycle.apply(PairOp::SkipToResyncMarker).map_err(|r| refused(&before, r))?;
    let (store, pair_no) = (sb.store.clone(), before.pair_no);
    let purged = control::blocking(move || store.discard_pending(pair_no)).await.map_err(|e| from_op(&before, e))?;
    let id = update(sb, h, |rec| {
        rec.lifecycle = rec.lifecycle.apply(PairOp::SkipToResyncMarker).map_err(|r| refused(rec, r))?;
        let id = rec.pair_id.clone();
        let d = dump_of(rec)?;
        d.step = DumpStep::AwaitingResyncMarker;
        d.purged_versions = purged;
        d.note(
            &id,
            format!(
                "purged the outbound queue ({purged} chunk version(s) of unfinished epochs); waiting for a resync marker from the agent"
            ),
        );
        Ok(id)
    })?;
    Ok(format!(
        "pair '{id}': queue purged ({purged} chunk version(s)); the standby waits for a resync marker. Take the dump now, then: drpair marker dump {id}"
    ))
}

/// Parses `at` (`now`, an epoch, an RFC 3339 time).
fn parse_at(at: Option<&str>) -> Res<DumpAt> {
    let Some(t) = at.map(str::trim) else { return Ok(DumpAt::Now) };
    if t.eq_ignore_ascii_case("now") {
        return Ok(DumpAt::Now);
    }
    if let Ok(e) = t.parse::<Epoch>() {
        return Ok(DumpAt::Epoch(e));
    }
    parse_time_ms(t)
        .map(DumpAt::TimeMs)
        .map_err(|e| FlowError::Param("at", format!("'{t}' is not `now`, an epoch number or an RFC 3339 time ({e})")))
}

/// The marker request, checked: contradictions and out-of-range values are refused.
fn plan_mark(req: &DumpMarkerRequest, request_id: u64) -> Res<DumpMarkRequest> {
    let at = parse_at(req.at.as_deref())?;
    let exec = match req.exec.as_deref().map(str::trim) {
        Some("") => return Err(FlowError::Param("exec", "the snapshot command is empty".into())),
        e => e.map(String::from),
    };
    if exec.is_some() && req.at.is_some() {
        return Err(FlowError::Param(
            "at",
            "with exec the agent cuts the dump point itself, right before running the command: give exec or at, not both"
                .into(),
        ));
    }
    if !req.freeze.is_empty() && exec.is_none() {
        return Err(FlowError::Param(
            "freeze",
            "freeze goes with exec: drpair freezes the filesystems, cuts, runs your snapshot command and thaws".into(),
        ));
    }
    if let Some(p) = req.freeze.iter().find(|p| !p.starts_with('/')) {
        return Err(FlowError::Param("freeze", format!("freeze path '{p}' is not absolute")));
    }
    if let Some(b) = req.thaw_budget_ms {
        if req.freeze.is_empty() {
            return Err(FlowError::Param("thaw_budget_ms", "thaw_budget_ms goes with freeze".into()));
        }
        if !(100..=600_000).contains(&b) {
            return Err(FlowError::Param("thaw_budget_ms", format!("{b} ms is outside 100..=600000")));
        }
    }
    if let Some(t) = req.exec_timeout_seconds {
        if exec.is_none() {
            return Err(FlowError::Param("exec_timeout_seconds", "exec_timeout_seconds goes with exec".into()));
        }
        if !(1..=86_400).contains(&t) {
            return Err(FlowError::Param("exec_timeout_seconds", format!("{t} s is outside 1..=86400")));
        }
    }
    Ok(DumpMarkRequest {
        request_id,
        at,
        freeze: req.freeze.clone(),
        exec,
        budget_ms: req.thaw_budget_ms,
        exec_timeout_ms: req.exec_timeout_seconds.map(|s| s * 1000),
    })
}

/// Sends `msg` to the connected agent and waits up to `wait` for its answer.
async fn ask_agent(
    h: &PairHandle,
    rec: &PairRecord,
    request_id: u64,
    msg: StandbyMsg,
    wait: Duration,
) -> Res<AgentAnswer> {
    let (tx, rx) = oneshot::channel();
    // The agent reconnects by itself after `suspend` ended its connection: give it a moment.
    agent_back(h).await;
    let session = {
        let mut rt = h.runtime.lock().expect("runtime");
        let s = rt.session.clone().ok_or_else(|| {
            not_now(
                rec,
                "its agent is not connected (the dump point lives in the agent's change history); start the agent",
            )
        })?;
        rt.dump_waiters.insert(request_id, tx);
        s
    };
    let forget = || h.runtime.lock().expect("runtime").dump_waiters.remove(&request_id);
    if session.tx.send(encode(&msg).map_err(internal)?).await.is_err() {
        forget();
        return Err(not_now(rec, "its agent disconnected"));
    }
    match tokio::time::timeout(wait, rx).await {
        Ok(Ok(a)) => Ok(a),
        Ok(Err(_)) => Err(not_now(rec, "its agent disconnected before answering; nothing was recorded")),
        Err(_) => {
            forget();
            Err(FlowError::Timeout(format!(
                "pair '{}': the agent did not answer within {}s",
                rec.pair_id,
                wait.as_secs()
            )))
        }
    }
}

/// `marker dump`: the agent records the dump point in its change history (cutting an epoch
/// now, resolving an epoch or a time, or freezing and running the snapshot command).
pub async fn mark(sb: &Arc<Standby>, h: &Arc<PairHandle>, req: &DumpMarkerRequest) -> Res<DumpMarker> {
    let request_id = sb.next_request();
    let msg = plan_mark(req, request_id)?;
    let rec = record(h);
    if !matches!(rec.lifecycle.state, PairState::Suspended | PairState::AwaitingResyncMarker) {
        let why =
            format!("a dump marker is recorded while the pair is suspended, and it is {}", rec.lifecycle.state.label());
        return Err(not_now(&rec, &why));
    }
    let wait = Duration::from_millis(msg.exec_timeout_ms.unwrap_or(600_000) + msg.budget_ms.unwrap_or(30_000))
        + Duration::from_secs(60);
    let answer = ask_agent(h, &rec, request_id, StandbyMsg::DumpMark(msg), wait).await?;
    let marker = match answer {
        AgentAnswer::Marked(Ok(m)) => m,
        AgentAnswer::Marked(Err(r)) => {
            let message = format!("pair '{}': no dump marker recorded: {}", rec.pair_id, r.message);
            return Err(match r.parameter.as_deref() {
                Some("at") => FlowError::Param("at", message),
                Some("freeze") => FlowError::Param("freeze", message),
                Some("exec") => FlowError::Param("exec", message),
                _ => FlowError::State(message),
            });
        }
        AgentAnswer::Resynced(_) => return Err(internal("the agent answered a marker request with a resync")),
    };
    update(sb, h, |rec| {
        if !matches!(rec.lifecycle.state, PairState::Suspended | PairState::AwaitingResyncMarker) {
            return Err(not_now(rec, "the pair left the suspension while the marker was being recorded"));
        }
        let id = rec.pair_id.clone();
        let d = dump_of(rec)?;
        note_marker(d, &id, &marker);
        Ok(())
    })?;
    Ok(marker)
}

/// Records `marker` in the workflow's log and status.
fn note_marker(d: &mut DumpRecord, id: &PairId, marker: &DumpMarker) {
    let how = match (&marker.exec, &marker.quiesce) {
        (Some(_), Some(q)) if q.achieved => "filesystems frozen around the cut and the snapshot command",
        (Some(_), Some(_)) => "the snapshot command ran, but the freeze did not hold (the point is fuzzy)",
        (Some(_), None) => "the snapshot command ran after the cut",
        _ => "given by the operator",
    };
    d.note(
        id,
        format!(
            "dump marker recorded in the agent's change history at epoch {} (cut at {}, {}; {how}); consistency {}",
            marker.epoch,
            marker.time,
            marker.at,
            consistency_word(marker.consistency)
        ),
    );
    d.marker = Some(marker.clone());
}

fn consistency_word(c: drpair_types::Consistency) -> &'static str {
    match c {
        drpair_types::Consistency::Fuzzy => "fuzzy",
        drpair_types::Consistency::CrashConsistent => "crash-consistent",
        drpair_types::Consistency::AppConsistent => "app-consistent",
    }
}

/// `resume --resync`: the agent checks that its change history still reaches the dump point
/// and sends the resync marker, then the dump marker; the standby processes both (see
/// [`on_resync_marker`], [`on_dump_marker`]) and suspends apply.
pub async fn resync(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<DumpMarker> {
    let rec = record(h);
    match rec.lifecycle.state {
        PairState::AwaitingResyncMarker => {}
        PairState::Suspended => {
            return Err(not_now(&rec, "the standby is not waiting for a resync marker yet (its queue is not purged)"));
        }
        s => return Err(not_now(&rec, &format!("it is {}, not waiting for a resync marker", s.label()))),
    }
    let Some(marker) = rec.dump.as_ref().and_then(|d| d.marker.clone()) else {
        return Err(not_now(&rec, "no dump marker is recorded yet"));
    };
    let request_id = sb.next_request();
    let msg = StandbyMsg::Resync { request_id, dump_epoch: marker.epoch };
    match ask_agent(h, &rec, request_id, msg, Duration::from_secs(60)).await? {
        AgentAnswer::Resynced(Ok(m)) => Ok(m),
        AgentAnswer::Resynced(Err(message)) => Err(FlowError::State(message)),
        AgentAnswer::Marked(_) => Err(internal("the agent answered a resync with a marker")),
    }
}

fn answer(h: &PairHandle, request_id: u64, a: AgentAnswer) {
    if let Some(tx) = h.runtime.lock().expect("runtime").dump_waiters.remove(&request_id) {
        let _ = tx.send(a);
    }
}

/// The agent's answer to a marker request.
pub fn on_marked(h: &PairHandle, request_id: u64, result: Result<DumpMarker, MarkRefusal>) {
    answer(h, request_id, AgentAnswer::Marked(result));
}

/// The agent refused to resume in resync mode.
pub fn on_resync_refused(sb: &Standby, h: &PairHandle, request_id: u64, message: String) {
    let id = pair_id(h);
    let noted = update(sb, h, |rec| {
        if let Some(d) = rec.dump.as_mut() {
            d.warn(&id, format!("the agent refused to resume in resync mode: {message}"));
        }
        Ok(())
    });
    if let Err(e) = noted {
        tracing::error!(pair = %id, "recording the refusal: {e:?}");
    }
    answer(h, request_id, AgentAnswer::Resynced(Err(format!("pair '{id}': {message}"))));
}

/// The agent's resync marker: its history reaches the dump point and its checkpoint is the
/// standby's. Wrong ones are refused (the waiting call hears why) and change nothing.
pub fn on_resync_marker(
    sb: &Standby,
    h: &PairHandle,
    request_id: u64,
    lineage: Lineage,
    acked: Epoch,
    history_from: Epoch,
) {
    let id = pair_id(h);
    let processed = update(sb, h, |rec| {
        let l = rec.lifecycle.apply(PairOp::ResyncMarker).map_err(|r| FlowError::State(r.message))?;
        if lineage != rec.lineage || acked != rec.committed {
            return Err(FlowError::State(format!(
                "the agent's checkpoint {lineage}:{acked} is not the standby's {}:{}",
                rec.lineage, rec.committed
            )));
        }
        rec.lifecycle = l;
        if let Some(d) = rec.dump.as_mut() {
            d.step = DumpStep::AwaitingDumpMarker;
            d.resync_marker_unix_ms = Some(now_ms());
            d.note(
                &id,
                format!(
                    "received and processed the resync marker from the agent (checkpoint epoch {acked}, change history from epoch {history_from}); waiting for the dump marker"
                ),
            );
        }
        Ok(())
    });
    match processed {
        Ok(()) => super::metrics::dump_marker(&id, "resync"),
        Err(FlowError::State(why)) => {
            tracing::warn!(pair = %id, "resync marker refused: {why}");
            answer(h, request_id, AgentAnswer::Resynced(Err(format!("pair '{id}': resync marker refused: {why}"))));
        }
        Err(e) => answer(h, request_id, AgentAnswer::Resynced(Err(format!("pair '{id}': {e:?}")))),
    }
}

/// The agent's dump marker (right after its resync marker): apply is suspended until the
/// dump is loaded.
pub fn on_dump_marker(sb: &Standby, h: &PairHandle, request_id: u64, marker: DumpMarker) {
    let id = pair_id(h);
    let processed = update(sb, h, |rec| {
        let recorded = rec.dump.as_ref().and_then(|d| d.marker.as_ref()).map(|m| m.epoch);
        let l = rec.lifecycle.apply(PairOp::DumpMarker).map_err(|r| FlowError::State(r.message))?;
        if recorded != Some(marker.epoch) || marker.epoch <= rec.committed {
            return Err(FlowError::State(format!(
                "the agent's dump marker is at epoch {}, the standby expected {recorded:?} (after its newest point {})",
                marker.epoch, rec.committed
            )));
        }
        rec.lifecycle = l;
        let disks = rec.disks.len();
        if let Some(d) = rec.dump.as_mut() {
            d.step = DumpStep::ApplySuspended;
            d.dump_marker_unix_ms = Some(now_ms());
            d.disks = DumpRecord::new(0, disks).disks;
            d.note(
                &id,
                format!(
                    "received and processed the dump marker (epoch {}, cut at {}): apply is now suspended; resume after the replica has been reloaded: drpair standby load-dump {id} --disk N --image FILE for each of its {disks} disk(s), then drpair standby resume-apply {id}",
                    marker.epoch, marker.time
                ),
            );
            d.marker = Some(marker.clone());
        }
        Ok(())
    });
    let a = match processed {
        Ok(()) => {
            super::metrics::dump_marker(&id, "dump");
            Ok(marker)
        }
        Err(FlowError::State(why)) => {
            tracing::warn!(pair = %id, "dump marker refused: {why}");
            Err(format!("pair '{id}': dump marker refused: {why}"))
        }
        Err(e) => Err(format!("pair '{id}': {e:?}")),
    };
    answer(h, request_id, AgentAnswer::Resynced(a));
}

fn parse_format(f: Option<&str>) -> Res<Option<ImageFormat>> {
    match f.map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("auto") => Ok(None),
        Some("raw") => Ok(Some(ImageFormat::Raw)),
        Some("qcow2") => Ok(Some(ImageFormat::Qcow2)),
        Some(o) => Err(FlowError::Param("format", format!("format '{o}' is not raw, qcow2 or auto"))),
    }
}

/// `standby load-dump`: checks the image (it must exist and match the disk's geometry), then
/// loads it in the background as the disk's content at the dump epoch; status shows the
/// percentage. Returns what was started.
pub async fn load(sb: &Arc<Standby>, h: &Arc<PairHandle>, req: &LoadDumpRequest) -> Res<String> {
    let rec = record(h);
    let id = rec.pair_id.clone();
    let Some(disk) = rec.disks.get(req.disk as usize) else {
        return Err(FlowError::Param(
            "disk",
            format!("pair '{id}' has no disk {} (it has {} disk(s), numbered from 0)", req.disk, rec.disks.len()),
        ));
    };
    let geometry = disk.geometry;
    let format = parse_format(req.format.as_deref())?;
    let image = PathBuf::from(&req.image);
    let (img, n) = (image.clone(), req.disk);
    let info = tokio::task::spawn_blocking(move || dump_load::probe(&img, format, n, &geometry))
        .await
        .map_err(internal)?
        .map_err(|e| FlowError::Param("image", format!("pair '{id}' disk {n}: {e}")))?;
    if rec.lifecycle.state != PairState::ApplySuspended {
        let why = format!(
            "a dump is loaded once apply is suspended by the dump marker, and it is {}",
            rec.lifecycle.state.label()
        );
        return Err(not_now(&rec, &why));
    }
    let progress = Arc::new(LoadProgress::default());
    {
        let mut rt = h.runtime.lock().expect("runtime");
        if let Some((busy, _)) = &rt.dump_load {
            return Err(not_now(&rec, &format!("the dump of disk {busy} is being loaded; wait for it")));
        }
        rt.dump_load = Some((req.disk, progress.clone()));
    }
    let format_name = match info.format {
        ImageFormat::Raw => "raw",
        ImageFormat::Qcow2 => "qcow2",
    };
    let started = update(sb, h, |rec| {
        if rec.lifecycle.state != PairState::ApplySuspended {
            return Err(not_now(rec, "the pair left the dump workflow while the image was probed"));
        }
        let marker_epoch = rec.dump.as_ref().and_then(|d| d.marker.as_ref()).map(|m| m.epoch);
        let (Some(epoch), Some(d)) = (marker_epoch, rec.dump.as_mut()) else {
            return Err(internal("apply is suspended without a dump marker"));
        };
        let slot = &mut d.disks[req.disk as usize];
        slot.state = DumpLoadState::Loading;
        slot.image = Some(req.image.clone());
        slot.format = Some(format_name.into());
        slot.error = None;
        d.note(
            &id,
            format!(
                "loading the dump of disk {n} from {} ({format_name}, {} bytes) as epoch {epoch}",
                req.image, info.virtual_size
            ),
        );
        Ok(DumpLoadSpec {
            pair_no: rec.pair_no,
            disk: req.disk,
            geometry,
            image,
            format: Some(info.format),
            epoch,
            base: rec.committed,
            scratch_dir: sb.store.dir().with_file_name("scratch"),
        })
    });
    let spec = match started {
        Ok(spec) => spec,
        Err(e) => {
            h.runtime.lock().expect("runtime").dump_load = None;
            return Err(e);
        }
    };
    let (sb2, h2) = (sb.clone(), h.clone());
    tokio::spawn(async move {
        let store = sb2.store.clone();
        let p = progress.clone();
        let r = tokio::task::spawn_blocking(move || dump_load::load(&store, &spec, &p)).await;
        let r = match r {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("the load task failed: {e}")),
        };
        finish_load(&sb2, &h2, n, r);
    });
    Ok(format!(
        "pair '{id}': loading the dump of disk {n} from {} ({format_name}); follow it with drpair status {id}",
        req.image
    ))
}

fn finish_load(sb: &Standby, h: &PairHandle, disk: u32, r: Result<dump_load::LoadStats, String>) {
    h.runtime.lock().expect("runtime").dump_load = None;
    let id = pair_id(h);
    if let Ok(s) = &r {
        super::metrics::dump_loaded(&id, s.raw_bytes, s.stored_bytes);
    }
    let noted = update(sb, h, |rec| {
        let Some(d) = rec.dump.as_mut() else { return Ok(()) };
        note_load(d, &id, disk, r);
        Ok(())
    });
    if let Err(e) = noted {
        tracing::error!(pair = %id, "recording the dump load: {e:?}");
    }
}

/// Records the end of disk `disk`'s load in the workflow's status and log.
fn note_load(d: &mut DumpRecord, id: &PairId, disk: u32, r: Result<dump_load::LoadStats, String>) {
    let slot = &mut d.disks[disk as usize];
    match r {
        Ok(s) => {
            slot.state = DumpLoadState::Loaded;
            slot.loaded_unix_ms = Some(now_ms());
            let msg = format!(
                "loaded the dump of disk {disk}: {} chunk(s) read, {} differ from the newest point before the dump, {} zero, {} already held (dedup), {} byte(s) stored, in {:.1}s",
                s.chunks,
                s.entries,
                s.zero,
                s.dedup,
                s.stored_bytes,
                s.millis as f64 / 1000.0
            );
            slot.stats = Some(s);
            d.note(id, msg);
        }
        Err(e) => {
            slot.state = DumpLoadState::Failed;
            slot.error = Some(e.clone());
            d.warn(id, format!("loading the dump of disk {disk} failed: {e}; load it again"));
        }
    }
}

/// `standby resume-apply`: every disk is loaded; the dump becomes recovery point *D* (kind
/// `dump-marker`) and the agent, reconnecting, ships every chunk changed after *D* and
/// compares every chunk with the dump before the pair is declared replicating.
pub async fn resume_apply(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<RecoveryPoint> {
    let before = record(h);
    if before.lifecycle.state != PairState::ApplySuspended {
        let why = format!("apply is not suspended by a dump marker (the pair is {})", before.lifecycle.state.label());
        return Err(not_now(&before, &why));
    }
    if let Some((n, _)) = &h.runtime.lock().expect("runtime").dump_load {
        return Err(not_now(&before, &format!("the dump of disk {n} is still being loaded")));
    }
    if let Some(n) = before.dump.as_ref().and_then(|d| d.first_unloaded()) {
        let state = before.dump.as_ref().map(|d| d.disks[n].state).unwrap_or(DumpLoadState::Pending);
        return Err(not_now(&before, &format!("the dump of disk {n} is not loaded ({state:?})")));
    }
    let _guard = control::quiesce(h, "apply resumed after a dump; reconnect to ship the changes made since")
        .await
        .map_err(|e| from_op(&before, e))?;
    let orig = record(h);
    let mut rec = orig.clone();
    let id = rec.pair_id.clone();
    let lifecycle = rec
        .lifecycle
        .apply(PairOp::PointCommitted)
        .and_then(|l| l.apply(PairOp::ResumeApply))
        .map_err(|r| refused(&before, r))?;
    let d = dump_of(&mut rec)?;
    let marker = d.marker.clone().ok_or_else(|| internal("apply is suspended without a dump marker"))?;
    let stats: Vec<_> = d.disks.iter().filter_map(|l| l.stats.clone()).collect();
    let now = now_ms();
    let point = RecoveryPoint {
        id: marker.epoch,
        pair_id: id.clone(),
        epoch: marker.epoch,
        lineage: rec.lineage,
        time: marker.time.clone(),
        time_unix_ms: marker.time_unix_ms,
        committed_unix_ms: now,
        kind: PointKind::DumpMarker,
        consistency: marker.consistency,
        pinned: false,
        verified_at: None,
        tested_at: None,
        sizes: PointSizes {
            logical_bytes: rec.disks.iter().map(|d| d.geometry.size_bytes).sum(),
            changed_chunks: stats.iter().map(|s| s.entries).sum(),
            changed_bytes: stats.iter().map(|s| s.raw_bytes).sum(),
            zero_chunks: stats.iter().map(|s| s.zero).sum(),
            dedup_chunks: stats.iter().map(|s| s.dedup).sum(),
            shipped_bytes: 0,
            stored_bytes: stats.iter().map(|s| s.stored_bytes).sum(),
        },
        quiesce: marker.quiesce.clone(),
        full_pass: true,
        damage: None,
    };
    let d = dump_of(&mut rec)?;
    d.step = DumpStep::Verifying;
    d.point = Some(marker.epoch);
    d.note(
        &id,
        format!(
            "apply resumed: the dump is recovery point {} (kind dump-marker); the agent ships every chunk changed after epoch {} and compares every chunk with the dump; the pair is declared replicating once that is committed",
            marker.epoch, marker.epoch
        ),
    );
    rec.lifecycle = lifecycle;
    rec.committed = marker.epoch;
    rec.rewound = None;
    rec.agent_history_from = None;
    // Persisted and installed under the record's lock. The connection is held off, so only an
    // API call can have changed the record since `orig`: what it changed is kept, unless it
    // changed the pair's state, which this step was decided on.
    let (store, pair_no, p2, pid, handle) = (sb.store.clone(), rec.pair_no, point.clone(), id.clone(), h.clone());
    tokio::task::spawn_blocking(move || {
        let mut live = handle.record.lock().expect("record");
        if live.lifecycle != orig.lifecycle {
            return Err(not_now(&live, "the pair's state changed while apply was resuming"));
        }
        let merged = super::rebase::rebase(&orig, rec, &live, None);
        store.commit_point(pair_no, &p2, &pid, &merged).map_err(internal)?;
        *live = merged;
        Ok(())
    })
    .await
    .map_err(internal)??;
    {
        let mut rt = h.runtime.lock().expect("runtime");
        rt.last_point = Some(point.clone());
        rt.points += 1;
        rt.progress = Default::default();
    }
    super::metrics::committed(&id, &point);
    Ok(point)
}

/// Plain `resume` of a pair in the dump workflow: the workflow is abandoned (loaded dump
/// versions discarded) and shipping continues from the recovery checkpoint: the agent's
/// change history covers everything since.
pub async fn abandon(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<String> {
    let before = record(h);
    before.lifecycle.apply(PairOp::Resume).map_err(|r| refused(&before, r))?;
    if let Some((n, _)) = &h.runtime.lock().expect("runtime").dump_load {
        return Err(not_now(&before, &format!("the dump of disk {n} is being loaded; wait for it, then resume")));
    }
    let _guard = control::quiesce(h, "the dump workflow was abandoned; reconnect to ship from the checkpoint")
        .await
        .map_err(|e| from_op(&before, e))?;
    let (store, pair_no, after) = (sb.store.clone(), before.pair_no, before.committed);
    let discarded = control::blocking(move || store.discard_versions_after(pair_no, after))
        .await
        .map_err(|e| from_op(&before, e))?;
    let id = update(sb, h, |rec| {
        rec.lifecycle = rec.lifecycle.apply(PairOp::Resume).map_err(|r| refused(rec, r))?;
        let id = rec.pair_id.clone();
        let d = dump_of(rec)?;
        d.step = DumpStep::Abandoned;
        d.note(
            &id,
            format!(
                "dump workflow abandoned by `drpair resume`: {discarded} loaded chunk version(s) discarded; shipping continues from the recovery checkpoint (epoch {after})"
            ),
        );
        Ok(id)
    })?;
    Ok(format!("pair '{id}': dump workflow abandoned; resumed from its recovery checkpoint (epoch {after})"))
}

/// `resume --resync --reinit --force`: a full restart (new lineage, every point deleted,
/// everything copied again) ends the workflow. Returns the restart's message and the number
/// of points deleted.
pub async fn reinit(sb: &Arc<Standby>, h: &Arc<PairHandle>) -> Res<u64> {
    let before = record(h);
    if !before.lifecycle.state.in_dump_workflow() {
        return Err(FlowError::State(format!(
            "pair '{}' is {}, not in the dump workflow: `--resync --reinit` re-initialises a suspended pair; `drpair restart {}` copies everything again",
            before.pair_id,
            before.lifecycle.state.label(),
            before.pair_id
        )));
    }
    if h.runtime.lock().expect("runtime").dump_load.is_some() {
        return Err(not_now(&before, "a dump is being loaded; wait for it"));
    }
    let deleted = control::restart(sb, h, RestartOpts::default()).await.map_err(|e| from_op(&before, e))?;
    update(sb, h, |rec| {
        let (id, lineage) = (rec.pair_id.clone(), rec.lineage);
        if let Some(d) = rec.dump.as_mut() {
            d.step = DumpStep::Abandoned;
            d.warn(
                &id,
                format!(
                    "re-initialised (`resume --resync --reinit --force`): {deleted} recovery point(s) deleted; every chunk is copied again in lineage {lineage}"
                ),
            );
        }
        Ok(())
    })?;
    Ok(deleted)
}

/// Called when the standby commits an epoch of a pair whose dump is being verified: the
/// epoch's full pass compared every chunk with the dump. Records the result; returns the
/// dump point and whether it matched.
pub fn on_verified(
    rec: &mut PairRecord,
    epoch: Epoch,
    full_pass: bool,
    chunks: u64,
    check: Option<&SourceCheck>,
) -> Option<(Epoch, bool)> {
    let id = rec.pair_id.clone();
    let d = rec.dump.as_mut().filter(|d| d.step == DumpStep::Verifying && full_pass)?;
    let dump_epoch = d.point?;
    let mismatched = check.map_or(0, |c| c.mismatched);
    d.verification = Some(DumpVerification {
        epoch,
        chunks_compared: check.map_or(0, |c| c.compared),
        chunks_shipped: chunks,
        mismatched_chunks: mismatched,
        mismatched_sample: check.map_or(vec![], |c| c.sample.iter().map(|&(d, c)| [u64::from(d), c]).collect()),
        verified_at: rfc3339_ms(now_ms()),
    });
    d.step = DumpStep::Done;
    match check {
        Some(c) if c.mismatched > 0 => {
            let first = c.sample.first().map(|(d, c)| format!(" (first: disk {d} chunk {c})")).unwrap_or_default();
            d.warn(
                &id,
                format!(
                    "verification: the loaded dump does NOT match the dump point: {} chunk(s) differ from the source although the agent saw no change after epoch {dump_epoch}{first}; the dump was taken at another moment. They were repaired from the source in point {epoch}; point {dump_epoch} holds the dump as loaded and is not marked verified",
                    c.mismatched
                ),
            );
            Some((dump_epoch, false))
        }
        Some(c) => {
            d.note(
                &id,
                format!(
                    "verification: every chunk ({}) compared with the source matches the dump or changed after it; {chunks} chunk(s) shipped in point {epoch}; the pair is replicating",
                    c.compared
                ),
            );
            Some((dump_epoch, true))
        }
        None => {
            d.note(
                &id,
                format!(
                    "verification: every chunk was compared with the source and the differing ones shipped in point {epoch} (the agent could not tell changes after the dump point from dump mismatches); the pair is replicating"
                ),
            );
            Some((dump_epoch, false))
        }
    }
}

/// At start-up: a load cut short by a stop is recorded as failed (it is loaded again).
pub fn after_restart(rec: &mut PairRecord) -> bool {
    let id = rec.pair_id.clone();
    let Some(d) = rec.dump.as_mut() else { return false };
    let mut changed = false;
    for (i, l) in d.disks.iter_mut().enumerate() {
        if l.state == DumpLoadState::Loading {
            l.state = DumpLoadState::Failed;
            l.error = Some("the standby stopped during the load".into());
            changed = true;
            tracing::warn!(pair = %id, disk = i, "dump load interrupted by a standby stop: load it again");
        }
    }
    changed
}
