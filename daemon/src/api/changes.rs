//! `GET /api/v1/pairs/{pair}/points/{point}/changes[?since=ID]`: which chunks were written
//! between two points (what a point adds to the one before, or to any older one).

use super::points::resolve_point;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use axum::Json;
use axum::extract::{Path, Query, State};
use drpair_types::{DiskChanges, PointChanges};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChangesQuery {
    /// An older point id, or 0 for everything since the lineage began.
    since: Option<u64>,
}

pub async fn list(
    State(sb): State<AppState>,
    Path((pair, point)): Path<(String, String)>,
    q: Result<Query<ChangesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<PointChanges>> {
    let Query(q) = q.map_err(|e| ApiFailure::param("since", e.body_text()))?;
    let (pair_id, h) = find_pair(&sb, &pair)?;
    let (pair_no, pt) = resolve_point(&sb, &pair, &point).await?;
    let store = sb.store.clone();
    let since = match q.since {
        Some(0) => 0,
        Some(s) if s >= pt.id => {
            return Err(ApiFailure::param("since", format!("since {s} must be older than point {}", pt.id)));
        }
        Some(s) => resolve_point(&sb, &pair, &s.to_string()).await?.1.epoch,
        None => {
            let points = tokio::task::spawn_blocking(move || store.list_points(pair_no))
                .await
                .map_err(ApiFailure::internal)?
                .map_err(ApiFailure::internal)?;
            points.iter().filter(|p| p.epoch < pt.epoch).map(|p| p.epoch).max().unwrap_or(0)
        }
    };
    let disks: Vec<_> = h.record.lock().expect("record").disks.iter().map(|d| d.geometry).collect();
    let store = sb.store.clone();
    let upto = pt.epoch;
    let disks = tokio::task::spawn_blocking(move || -> Result<Vec<DiskChanges>, drpair_store::StoreError> {
        let mut out = vec![];
        for (d, g) in disks.iter().enumerate() {
            let chunks = store.changed_between(pair_no, d as u32, since, upto)?;
            let mut runs: Vec<[u64; 2]> = vec![];
            for c in &chunks {
                match runs.last_mut() {
                    Some([first, count]) if *first + *count == *c => *count += 1,
                    _ => runs.push([*c, 1]),
                }
            }
            out.push(DiskChanges {
                disk: d as u32,
                chunk_size: g.chunk_size.bytes() as u64,
                changed_chunks: chunks.len() as u64,
                runs,
            });
        }
        Ok(out)
    })
    .await
    .map_err(ApiFailure::internal)?
    .map_err(ApiFailure::internal)?;
    Ok(Json(PointChanges { pair_id, point: pt.id, since, disks }))
}
