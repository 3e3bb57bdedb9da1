//! The storage report of a pair: what its points cost in the store.

use super::Standby;
use super::pair::PairHandle;
use crate::timefmt::{now_ms, rfc3339_ms};
use drpair_store::StoreError;
use drpair_types::{PackUsageReport, PointStorage, StorageReport, StorageSummary};

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Computes the report (one scan of the pair's version entries; blocking) and keeps its
/// totals for status and metrics.
pub fn report(sb: &Standby, h: &PairHandle) -> Result<StorageReport, StoreError> {
    let (pair_id, pair_no, disk_bytes) = {
        let rec = h.record.lock().expect("record");
        (rec.pair_id.clone(), rec.pair_no, rec.disks.iter().map(|d| d.geometry.size_bytes).sum::<u64>())
    };
    let points = sb.store.list_points(pair_no)?;
    let s = sb.store.pair_storage(pair_no)?;
    let per_point = points
        .iter()
        .map(|p| {
            let t = s.per_point.get(&p.id).copied().unwrap_or_default();
            PointStorage {
                id: p.id,
                time: p.time.clone(),
                logical_bytes: disk_bytes,
                versions: t.versions,
                written_bytes: t.written_bytes,
                stored_bytes: t.stored_bytes,
                unique_bytes: t.unique_bytes,
            }
        })
        .collect();
    let logical = disk_bytes * points.len() as u64;
    let report = StorageReport {
        pair_id,
        computed_unix_ms: now_ms(),
        points: points.len() as u64,
        disk_bytes,
        logical_bytes: logical,
        written_bytes: s.total.written_bytes,
        distinct_bytes: s.total.distinct_bytes,
        stored_bytes: s.total.stored_bytes,
        unique_stored_bytes: s.pair_unique_bytes,
        compression_ratio: ratio(s.total.distinct_bytes, s.total.stored_bytes),
        dedup_ratio: ratio(s.total.written_bytes, s.total.distinct_bytes),
        space_saving_ratio: ratio(logical, s.total.stored_bytes),
        per_point,
        object_store: pack_usage(sb)?,
    };
    let summary = summary(&report);
    super::metrics::storage(&report.pair_id, &summary);
    h.runtime.lock().expect("runtime").storage = Some(summary);
    tracing::debug!(pair = %report.pair_id, at = %rfc3339_ms(report.computed_unix_ms), "storage report computed");
    Ok(report)
}

/// What the object store's packs hold (store-wide), None with local chunks; also sets the
/// store-wide pack gauges.
pub fn pack_usage(sb: &Standby) -> Result<Option<PackUsageReport>, StoreError> {
    let Some(u) = sb.store.pack_usage()? else { return Ok(None) };
    super::metrics::packs(&u);
    Ok(Some(PackUsageReport {
        store: sb.store.chunk_backend_name(),
        packs: u.packs,
        pack_bytes: u.pack_bytes,
        live_bytes: u.live_bytes,
        garbage_bytes: u.garbage_bytes,
        sparse_packs: u.sparse_packs,
    }))
}

pub fn summary(r: &StorageReport) -> StorageSummary {
    StorageSummary {
        computed_unix_ms: r.computed_unix_ms,
        logical_bytes: r.logical_bytes,
        stored_bytes: r.stored_bytes,
        unique_stored_bytes: r.unique_stored_bytes,
        compression_ratio: r.compression_ratio,
        dedup_ratio: r.dedup_ratio,
        space_saving_ratio: r.space_saving_ratio,
    }
}
