//! `GET /api/v1/pairs/{pair}/points/{point}/disks/{disk}/image`: the raw disk image of a point,
//! streamed and verified chunk by chunk. A missing or corrupt chunk cuts the stream short (the
//! client sees fewer bytes than Content-Length), never silently substituted. One-time download
//! links (`downloads`) stream the same bytes through [`stream`].

use super::points::resolve_point;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::pair::PairHandle;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::Response;
use bytes::Bytes;
use drpair_types::{DiskGeometry, PairId, RecoveryPoint};

pub async fn export(
    State(sb): State<AppState>,
    Path((pair, point, disk)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let (pair_id, h) = find_pair(&sb, &pair)?;
    let (pair_no, pt) = resolve_point(&sb, &pair, &point).await?;
    let (d, g) = disk_of(&h, &pair_id, &pt, &disk)?;
    stream(&sb, pair_id, pair_no, &pt, d, g)
}

/// The disk `disk` (a number, as the path gives it) of point `pt`, with its size at that point;
/// 400 naming `disk` when the point has no such disk.
pub(super) fn disk_of(
    h: &PairHandle,
    pair_id: &PairId,
    pt: &RecoveryPoint,
    disk: &str,
) -> ApiResult<(u32, DiskGeometry)> {
    // The point's own disks: a point from before a disk grew keeps the old size.
    let disks = h.record.lock().expect("record").geometries_at(pt.epoch);
    let d: u32 = disk.parse().map_err(|_| ApiFailure::param("disk", format!("disk '{disk}' is not a disk number")))?;
    let g = *disks.get(d as usize).ok_or_else(|| {
        ApiFailure::param("disk", format!("pair '{pair_id}' has {} disk(s); disk {d} does not exist", disks.len()))
    })?;
    Ok((d, g))
}

/// The image of disk `d` (geometry `g`) of point `pt`, as a streamed response: read and
/// verified chunk by chunk by a blocking task, a few chunks ahead of the client.
pub(super) fn stream(
    sb: &AppState,
    pair_id: PairId,
    pair_no: u32,
    pt: &RecoveryPoint,
    d: u32,
    g: DiskGeometry,
) -> ApiResult<Response> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    let store = sb.store.clone();
    let epoch = pt.epoch;
    tokio::task::spawn_blocking(move || {
        let r = crate::standby::export::stream_disk(&store, &pair_id, pair_no, d, g, epoch, |buf| {
            tx.blocking_send(Ok(Bytes::from(buf))).is_ok()
        });
        if let Err(e) = r {
            tracing::error!("export failed: {e}");
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, g.size_bytes)
        .header("x-drpair-point", pt.id)
        .header("x-drpair-epoch", pt.epoch)
        .body(Body::from_stream(stream))
        .map_err(ApiFailure::internal)
}
