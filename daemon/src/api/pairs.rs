//! `GET /api/v1` (the standby itself), `GET /api/v1/pairs` and `GET /api/v1/pairs/{pair}`.

use super::auth::Caller;
use super::{ApiResult, AppState, find_pair};
use crate::standby::Standby;
use crate::standby::pair::PairHandle;
use axum::Json;
use axum::extract::{Path, Query, State};
use drpair_types::{PairStatus, PairSummary, StandbyInfo};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Case-insensitive text found in the pair id, the source host or the source address.
    search: Option<String>,
}

/// Whether a pair matches a search text.
fn matches(p: &PairSummary, needle: &str) -> bool {
    let needle = needle.trim().to_lowercase();
    [Some(p.pair_id.as_str()), p.source_host.as_deref(), p.source_address.as_deref()]
        .into_iter()
        .flatten()
        .any(|h| h.to_lowercase().contains(&needle))
}

pub async fn list(
    State(sb): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> super::ApiResult<Json<Vec<PairSummary>>> {
    let Query(q) = q.map_err(|e| super::ApiFailure::param("search", e.body_text()))?;
    let pairs = sb.registry.all();
    let all = pairs.iter().map(|h| h.summary());
    Ok(Json(match q.search {
        Some(s) => all.filter(|p| matches(p, &s)).collect(),
        None => all.collect(),
    }))
}

pub async fn status(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    caller: Option<axum::Extension<Caller>>,
) -> ApiResult<Json<PairStatus>> {
    let (_, h) = find_pair(&sb, &pair)?;
    Ok(Json(status_for(&sb, &h, caller.as_ref().map(|c| &c.0))))
}

/// The pair's status as `caller` is shown it (`GET /api/v1/pairs/{pair}`, and the events of
/// its stream): the actions its role may take, the standby's fingerprint.
pub fn status_for(sb: &Standby, h: &PairHandle, caller: Option<&Caller>) -> PairStatus {
    let mut s = h.status();
    let pair = &s.pair_id;
    // The actions this caller's role may take (the panel shows only those).
    if let Some(c) = caller {
        let path = format!("/api/v1/pairs/{pair}/");
        s.allowed_actions.retain(|a| {
            let needed = super::roles::required(&axum::http::Method::POST, &format!("{path}{}", action_path(a)), false);
            c.role >= needed
        });
    }
    s.standby_fingerprint = sb.identity.as_ref().map(|i| i.fingerprint().to_string());
    if s.protected_by.is_some() {
        s.protected_by = crate::standby::protect::status(sb, h);
    }
    s.insecure_plaintext = sb.identity.is_none();
    if s.insecure_plaintext {
        s.state_explanation.push_str(
            " Warning: the link runs in plaintext (insecure_plaintext): anyone on the path reads the disks and can forge the standby.",
        );
    }
    s
}

/// The API path (below the pair) of a panel action.
fn action_path(action: &str) -> &str {
    match action {
        "create_point" => "points",
        "adopt_growth" => "adopt-growth",
        "skip_to_resync_marker" => "skip-to-resync-marker",
        "mark_dump" => "markers/dump",
        "resume_resync" => "resume",
        "load_dump" => "dump/load",
        "resume_apply" => "resume-apply",
        "drill" => "drills",
        "verify_source" => "verify-source",
        a => a,
    }
}

/// `DELETE /api/v1/pairs/{pair}?confirm=PAIR`: the pair, its points and records, and the
/// chunks only it used.
pub async fn delete(
    State(sb): State<AppState>,
    Path(pair): Path<String>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
    caller: Option<axum::Extension<Caller>>,
) -> ApiResult<Json<drpair_types::PairDeletion>> {
    let (id, h) = find_pair(&sb, &pair)?;
    if let Some(k) = q.keys().find(|k| k.as_str() != "confirm") {
        return Err(super::ApiFailure::param(k, format!("unknown parameter '{k}': delete takes confirm=PAIR only")));
    }
    let by = caller.map(|c| format!("token {}", c.name)).unwrap_or_else(|| "api".into());
    let done = crate::standby::command::delete(&sb, &h, &id, q.get("confirm").map(String::as_str), &by).await?;
    Ok(Json(done))
}

/// `GET /api/v1`: the standby's version and identity, and who is asking.
pub async fn root(State(sb): State<AppState>, caller: Option<axum::Extension<Caller>>) -> Json<StandbyInfo> {
    Json(StandbyInfo {
        version: env!("CARGO_PKG_VERSION").into(),
        fingerprint: sb.identity.as_ref().map(|i| i.fingerprint().to_string()),
        insecure_plaintext: sb.identity.is_none(),
        identity: caller.as_ref().map(|c| format!("token {}", c.name)),
        role: caller.map(|c| c.role),
        certificates: crate::standby::expiry::expiries(&sb).into_iter().filter(|e| e.role.is_certificate()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use drpair_types::{PairId, PairState};

    #[test]
    fn search_matches_id_host_and_address() {
        let p = PairSummary {
            pair_id: PairId::new("Web-01").unwrap(),
            state: PairState::Replicating,
            state_label: "Replicating".into(),
            ready_for_failover: true,
            source_host: Some("frontend.example".into()),
            source_address: Some("10.1.2.3".into()),
            connected: true,
            lag_seconds: 0.0,
            progress_percent: 100.0,
            last_point: None,
            disks: 1,
            health: drpair_types::Health { level: drpair_types::HealthLevel::Ok, reason: String::new() },
            rpo_state: None,
        };
        for hit in ["web", "WEB-01", "frontend", "10.1.2", " 3 "] {
            assert!(matches(&p, hit), "{hit}");
        }
        for miss in ["db", "10.9", "backend"] {
            assert!(!matches(&p, miss), "{miss}");
        }
    }
}
