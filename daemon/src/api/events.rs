//! Server push for the panel (`text/event-stream`): `GET /api/v1/events` streams the pairs
//! list (`event: pairs`, the array `GET /api/v1/pairs` answers), `GET /api/v1/events?pair=ID`
//! one pair (`event: pair`, a [`PairEvent`]: its status as `GET /api/v1/pairs/{pair}` answers
//! it, short hashes of its points, tasks and drills lists, the newest points when they changed,
//! and the history samples taken since the last event). The first event goes at once; then the standby looks every second (the
//! list every [`LIST_TICK`]) and sends an event only when its JSON differs from the last one
//! sent. A `: keepalive` comment goes after [`KEEPALIVE`] without an event. A pair deleted
//! while streamed gets `event: gone` ([`PairGone`]) and the stream ends.
//!
//! A stream ends when the client goes away (its body is dropped, and with it everything here),
//! and when the standby is asked to stop (`Standby::stopping`): the API server's graceful
//! shutdown waits for open responses, so a page left open must not hold up the stop.
//!
//! Cost: each look of a pair's stream computes the pair's status once (in memory, under the
//! pair's locks), lists its points and drills from the store (one blocking task), filters the
//! task list (in memory) and hashes the lists' JSON; a look of the list stream computes each
//! pair's status once. Nothing is shared between streams: N open pages cost N times that.

use super::auth::Caller;
use super::pairs::status_for;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::Standby;
use crate::standby::pair::PairHandle;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use drpair_types::{EVENT_POINTS, PairEvent, PairGone, PairId, TaskList};
use futures_util::Stream;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

/// Time between two looks at a pair.
pub const PAIR_TICK: Duration = Duration::from_secs(1);
/// Time between two looks at the pairs list.
pub const LIST_TICK: Duration = Duration::from_secs(2);
/// Longest silence before a keepalive comment.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// `GET /api/v1/events[?pair=ID]`: the stream of the pairs list, or of one pair. An invalid
/// pair id is refused (400, `pair`), an unknown one too (404), and any other parameter (400),
/// before the stream starts.
pub async fn stream(
    State(sb): State<AppState>,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    caller: Option<Extension<Caller>>,
) -> ApiResult<Response> {
    let Query(q) = q.map_err(|e| ApiFailure::param("query", e.body_text()))?;
    if let Some(k) = q.keys().find(|k| k.as_str() != "pair") {
        return Err(ApiFailure::param(k, format!("unknown parameter '{k}': events takes pair=ID only")));
    }
    let keep_alive = KeepAlive::new().interval(KEEPALIVE).text("keepalive");
    Ok(match q.get("pair") {
        None => Sse::new(list_events(sb)).keep_alive(keep_alive).into_response(),
        Some(raw) => {
            let (id, h) = find_pair(&sb, raw)?;
            let watch =
                PairWatch { sb, id, h, caller: caller.map(|c| c.0), last: None, newest_sample: 0, points_rev: None };
            Sse::new(pair_events(watch)).keep_alive(keep_alive).into_response()
        }
    })
}

/// Sends what `look` gives every `every` (the first at once) when it differs from what was
/// last sent (`look` keeps what it needs to tell in its state); a look that gives `Err` sends
/// it and ends the stream. Ends when the standby stops (`stopping` turns true).
fn changes<S, F, Fut>(
    state: S,
    every: Duration,
    stopping: tokio::sync::watch::Receiver<bool>,
    look: F,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    S: Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = (S, Result<Option<Event>, Event>)> + Send,
{
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let start = (Some(state), look, tick, stopping);
    futures_util::stream::unfold(start, |(state, mut look, mut tick, mut stop)| async move {
        let mut state = state?;
        loop {
            tokio::select! {
                _ = stop.wait_for(|s| *s) => return None,
                _ = tick.tick() => {}
            }
            let (next, got) = look(state).await;
            state = next;
            match got {
                Ok(None) => continue,
                Ok(Some(e)) => return Some((Ok(e), (Some(state), look, tick, stop))),
                Err(last) => return Some((Ok(last), (None, look, tick, stop))),
            }
        }
    })
}

/// The pairs list, as `GET /api/v1/pairs` answers it.
fn list_events(sb: AppState) -> impl Stream<Item = Result<Event, Infallible>> {
    changes(None::<String>, LIST_TICK, sb.stopping.subscribe(), move |last| {
        let all: Vec<_> = sb.registry.all().iter().map(|h| h.summary()).collect();
        let json = serde_json::to_string(&all).unwrap_or_else(|_| "[]".into());
        let event = (last.as_deref() != Some(json.as_str())).then(|| Event::default().event("pairs").data(&json));
        std::future::ready((Some(json), Ok(event)))
    })
}

/// What a pair's stream knows between two looks.
struct PairWatch {
    sb: AppState,
    id: PairId,
    h: Arc<PairHandle>,
    caller: Option<Caller>,
    /// The JSON of the last event sent, without its history.
    last: Option<String>,
    /// When the newest history sample sent was taken (ms since the Unix epoch).
    newest_sample: u64,
    /// The `points_rev` of the last points sent.
    points_rev: Option<String>,
}

fn pair_events(watch: PairWatch) -> impl Stream<Item = Result<Event, Infallible>> {
    let stopping = watch.sb.stopping.subscribe();
    changes(watch, PAIR_TICK, stopping, |mut w| async move {
        let (sb, id, h, caller, since) = (w.sb.clone(), w.id.clone(), w.h.clone(), w.caller.clone(), w.newest_sample);
        let look = tokio::task::spawn_blocking(move || look_at_pair(&sb, &id, &h, caller.as_ref(), since)).await;
        let (event, newest) = match look {
            Ok(Ok(x)) => x,
            Ok(Err(gone)) => {
                let data = serde_json::to_string(&gone).unwrap_or_default();
                return (w, Err(Event::default().event("gone").data(data)));
            }
            Err(e) => {
                tracing::warn!("a pair's event stream could not look at the pair: {e}");
                return (w, Ok(None));
            }
        };
        // Compared without the history (new by construction whenever it is not empty) and
        // the points (named by their rev).
        let mut bare = event.clone();
        bare.history.clear();
        bare.points = None;
        let key = serde_json::to_string(&bare).unwrap_or_default();
        if w.last.as_deref() == Some(key.as_str()) && event.history.is_empty() {
            return (w, Ok(None));
        }
        let mut event = event;
        if w.points_rev.as_deref() == Some(event.points_rev.as_str()) {
            event.points = None;
        } else if event.points.is_some() {
            w.points_rev = Some(event.points_rev.clone());
        }
        let data = serde_json::to_string(&event).unwrap_or_default();
        w.last = Some(key);
        w.newest_sample = newest;
        (w, Ok(Some(Event::default().event("pair").data(data))))
    })
}

/// One look at a pair for its stream: the event, and when the newest history sample in it
/// was taken. Blocking (the store is read).
fn look_at_pair(
    sb: &Standby,
    id: &PairId,
    h: &Arc<PairHandle>,
    caller: Option<&Caller>,
    since: u64,
) -> Result<(PairEvent, u64), PairGone> {
    // Deleted, perhaps registered again since: either way not the pair this stream follows.
    if !sb.registry.get(id).is_some_and(|now| Arc::ptr_eq(&now, h)) {
        return Err(PairGone {
            pair_id: id.clone(),
            message: format!("pair '{id}' was deleted from this standby; its stream ends"),
        });
    }
    let status = status_for(sb, h, caller);
    let pair_no = h.record.lock().expect("record").pair_no;
    let (points_rev, newest_points) = match sb.store.list_points(pair_no) {
        Ok(mut p) => {
            let r = rev(&p);
            p.drain(..p.len().saturating_sub(EVENT_POINTS));
            (r, Some(p))
        }
        Err(e) => (rev(&e.to_string()), None),
    };
    let tasks = rev(&TaskList { tasks: sb.tasks.list(Some(id), false) });
    let drills = crate::standby::drill::records(sb, h)
        .map(|mut d| {
            // As `GET …/drills` lists them: newest first.
            d.reverse();
            rev(&d)
        })
        .unwrap_or_else(|e| rev(&e.to_string()));
    let history = h.trend.lock().expect("trend").view(&status, since).samples;
    let newest = history.last().map_or(since, |s| s.t_unix_ms);
    let event = PairEvent { status, points_rev, tasks_rev: tasks, drills_rev: drills, history, points: newest_points };
    Ok((event, newest))
}

/// The first 16 hex digits of the BLAKE3 hash of `v`'s JSON.
fn rev<T: serde::Serialize>(v: &T) -> String {
    let json = serde_json::to_vec(v).unwrap_or_default();
    blake3::hash(&json).to_hex()[..16].to_string()
}
