//! Driving a pair: `POST /api/v1/pairs/{pair}/{restart,start,pause,resume,stop}`. Each
//! handler parses the request into a [`PairCommand`], runs it in the standby and renders the
//! outcome with the pair's status.
//!
//! Checks run in a fixed order and the first failure answers, with nothing changed:
//! unknown pair (404), malformed or contradictory parameters and a missing confirmation
//! (400, naming the parameter), an unknown point (404), then the pair's state (409, naming
//! the state).

use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::command::{self, PairCommand};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use drpair_types::{ActionResponse, ResumeRequest};

/// A JSON object body as `T` (serde would also take an array for a struct: refused here).
pub(super) fn body<T: serde::de::DeserializeOwned>(raw: &Bytes) -> ApiResult<T> {
    let bad = |m: String| ApiFailure::param("body", format!("request body: {m}"));
    let v: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    if !v.is_object() {
        return Err(bad("expected a JSON object".into()));
    }
    serde_json::from_value(v).map_err(|e| bad(e.to_string()))
}

/// Pause, resume and stop take no parameters: an empty body or `{}`.
pub(super) fn no_params(raw: &Bytes) -> ApiResult<()> {
    let text = std::str::from_utf8(raw).map_err(|_| ApiFailure::param("body", "request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Ok(());
    }
    match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) {
        Ok(m) if m.is_empty() => Ok(()),
        Ok(m) => Err(ApiFailure::param(
            "body",
            format!("unknown field '{}': this action takes no parameters", m.keys().next().expect("non-empty")),
        )),
        Err(e) => Err(ApiFailure::param("body", format!("request body: {e}"))),
    }
}

/// Runs the command parsed from `raw` on the pair named `pair`, and answers with what it did
/// and the pair's status after it.
async fn run(
    sb: AppState,
    pair: String,
    raw: Bytes,
    parse: impl FnOnce(&Bytes) -> ApiResult<PairCommand>,
) -> ApiResult<Json<ActionResponse>> {
    let (id, h) = find_pair(&sb, &pair)?;
    let cmd = parse(&raw)?;
    let done = command::execute(&sb, &h, &id, cmd).await?;
    Ok(Json(ActionResponse { message: done.message, points_deleted: done.points_deleted, status: h.status() }))
}

pub async fn pause(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    run(sb, pair, raw, |raw| no_params(raw).map(|()| PairCommand::Pause)).await
}

/// Resume: from paused or stopped; in the dump workflow, `{"resync": true}` resumes in resync
/// mode, `{"resync": true, "reinit": true, "confirm": PAIR}` re-initialises (a full restart),
/// and a plain resume abandons the dump.
pub async fn resume(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    run(sb, pair, raw, |raw| {
        let request: ResumeRequest =
            if raw.iter().all(u8::is_ascii_whitespace) { ResumeRequest::default() } else { body(raw)? };
        let not_bare = no_params(raw).err().map(|ApiFailure(e)| e.message);
        Ok(PairCommand::Resume { request, not_bare })
    })
    .await
}

pub async fn stop(State(sb): State<AppState>, Path(pair): Path<String>, raw: Bytes) -> ApiResult<Json<ActionResponse>> {
    run(sb, pair, raw, |raw| no_params(raw).map(|()| PairCommand::Stop)).await
}

pub async fn restart(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    run(sb, pair, raw, |raw| body(raw).map(PairCommand::Restart)).await
}

/// Take disks that only grew (state *Configuration changed*) without a restart.
pub async fn adopt_growth(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    run(sb, pair, raw, |raw| no_params(raw).map(|()| PairCommand::AdoptGrowth)).await
}

pub async fn start(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    raw: Bytes,
) -> ApiResult<Json<ActionResponse>> {
    run(sb, pair, raw, |raw| body(raw).map(PairCommand::Start)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::RestartRequest;

    #[test]
    fn bodies_are_json_objects() {
        for bad in ["[]", "[\"web-01\"]", "\"web-01\"", "{\"confirm\":1}", "{\"confirm\":\"a\",\"x\":1}", "{"] {
            let Err(ApiFailure(e)) = body::<RestartRequest>(&Bytes::from(bad)) else { panic!("{bad} accepted") };
            assert_eq!(e.parameter.as_deref(), Some("body"), "{bad}");
        }
        let r: RestartRequest = body(&Bytes::from("{}")).unwrap();
        assert!(r.confirm.is_empty(), "a missing confirm is refused by the confirmation check, naming it");
    }

    #[test]
    fn empty_bodies_only() {
        for ok in ["", "  ", "{}", " { } "] {
            assert!(no_params(&Bytes::from(ok)).is_ok(), "{ok:?}");
        }
        for bad in ["{\"x\":1}", "[", "nope"] {
            assert!(no_params(&Bytes::from(bad)).is_err(), "{bad:?}");
        }
    }
}
