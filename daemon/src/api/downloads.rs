//! One-time download links of disk images (see `standby::downloads`), for a browser, which
//! cannot put the API token on a plain link:
//! `POST /api/v1/pairs/{pair}/points/{point}/disks/{disk}/download` (an operator's call, with
//! the checks and errors of the image export) makes a link; `GET /api/v1/downloads/{ticket}`
//! takes no token (the ticket is the credential, see `auth`) and streams the same bytes as
//! `…/image`, once, as an attachment.

use super::image::{disk_of, stream};
use super::points::resolve_point;
use super::{ApiFailure, ApiResult, AppState, find_pair};
use crate::standby::downloads::{Grant, TICKET_TTL};
use crate::timefmt::{now_ms, rfc3339_ms};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::Response;
use drpair_types::{DownloadLink, ErrorCode, PairId, PointId};
use std::time::Instant;

/// The file name a download is saved under.
fn filename(pair: &PairId, point: PointId, disk: u32) -> String {
    format!("{pair}-point{point}-disk{disk}.img")
}

/// `POST …/points/{point}/disks/{disk}/download`: a link good for one download within
/// [`TICKET_TTL`]. Unknown pair or point (404), a bad point or disk (400) as the export says;
/// the call takes no parameters.
pub async fn create(
    State(sb): State<AppState>,
    Path((pair, point, disk)): Path<(String, String, String)>,
    raw: Bytes,
) -> ApiResult<Json<DownloadLink>> {
    let (pair_id, h) = find_pair(&sb, &pair)?;
    let (_, pt) = resolve_point(&sb, &pair, &point).await?;
    let (d, g) = disk_of(&h, &pair_id, &pt, &disk)?;
    super::control::no_params(&raw)?;
    let grant = Grant { pair: pair_id.clone(), point: pt.id, epoch: pt.epoch, lineage: pt.lineage, disk: d };
    let ticket = sb.downloads.issue(grant, Instant::now());
    tracing::info!(pair = %pair_id, point = pt.id, disk = d, "one-time download link issued");
    Ok(Json(DownloadLink {
        url: format!("/api/v1/downloads/{ticket}"),
        expires_at: rfc3339_ms(now_ms() + TICKET_TTL.as_secs() * 1000),
        filename: filename(&pair_id, pt.id, d),
        size_bytes: g.size_bytes,
    }))
}

/// `GET /api/v1/downloads/{ticket}`: the image the ticket grants, streamed as `…/image`
/// streams it. The ticket is used up by the call, whatever follows; the pair and point are
/// looked up again (deleted or pruned since: their 404).
pub async fn fetch(State(sb): State<AppState>, Path(ticket): Path<String>) -> ApiResult<Response> {
    let grant = sb.downloads.take(&ticket, Instant::now()).ok_or_else(|| {
        ApiFailure::new(ErrorCode::NotFound, "download link is unknown, used or expired; ask for a new one")
    })?;
    let (pair_id, h) = find_pair(&sb, grant.pair.as_str())?;
    let (pair_no, pt) = resolve_point(&sb, grant.pair.as_str(), &grant.point.to_string()).await?;
    if (pt.epoch, pt.lineage) != (grant.epoch, grant.lineage) {
        return Err(ApiFailure::new(
            ErrorCode::PointNotFound,
            format!("pair '{pair_id}' has no recovery point {} any more", grant.point),
        ));
    }
    let (d, g) = disk_of(&h, &pair_id, &pt, &grant.disk.to_string())?;
    let name = filename(&pair_id, pt.id, d);
    tracing::info!(pair = %pair_id, point = pt.id, disk = d, "one-time download link used");
    let mut resp = stream(&sb, pair_id, pair_no, &pt, d, g)?;
    let headers = resp.headers_mut();
    // Pair ids are letters, digits, '.', '_' and '-': the name needs no escaping.
    let disposition =
        HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")).map_err(ApiFailure::internal)?;
    headers.insert(header::CONTENT_DISPOSITION, disposition);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}
