//! Finding what to recover: the store (not in use), the pair, the point.

use crate::{PointSelector, RecoverError};
use drpair_store::{PairFacts, S3Credentials, Store, StoreError};
use drpair_types::{PairId, PointId, RecoveryPoint};
use std::path::Path;

/// Existing point ids named when the one asked for is missing.
const NEAREST: usize = 5;

/// Opens an existing store (with its chunks where the standby kept them: `credentials` for an
/// object store); a held lock is the standby running.
pub(crate) fn open_store(
    data_dir: &Path,
    store_dir: &Path,
    credentials: Option<&S3Credentials>,
) -> Result<Store, RecoverError> {
    // rocksdb's CURRENT file: present in every store, absent from a directory that is none.
    if !store_dir.join("CURRENT").is_file() {
        return Err(RecoverError::NoStore {
            dir: store_dir.display().to_string(),
            data_dir: data_dir.display().to_string(),
        });
    }
    Store::open_recorded(store_dir, credentials).map_err(|e| match &e {
        StoreError::Open { source, .. } if source.to_string().to_ascii_lowercase().contains("lock") => {
            RecoverError::InUse { dir: store_dir.display().to_string() }
        }
        _ => e.into(),
    })
}

pub(crate) fn find_pair(store: &Store, store_dir: &Path, pair: &PairId) -> Result<PairFacts, RecoverError> {
    let records = store.pair_facts()?;
    let ids: Vec<String> = records.iter().map(|r| r.pair_id.to_string()).collect();
    records.into_iter().find(|r| r.pair_id == *pair).ok_or_else(|| RecoverError::PairNotFound {
        pair: pair.to_string(),
        dir: store_dir.display().to_string(),
        known: if ids.is_empty() { "it holds no pairs".into() } else { format!("it holds: {}", ids.join(", ")) },
    })
}

pub(crate) fn find_point(store: &Store, rec: &PairFacts, sel: PointSelector) -> Result<RecoveryPoint, RecoverError> {
    let found = match sel {
        PointSelector::Latest => {
            let points = store.list_points(rec.pair_no)?;
            drpair_types::latest_recoverable(&points).map(|c| c.point.clone())
        }
        PointSelector::Id(id) => store.get_point(rec.pair_no, id)?,
    };
    if let Some(p) = found {
        return Ok(p);
    }
    let ids: Vec<PointId> = store.list_points(rec.pair_no)?.iter().map(|p| p.id).collect();
    let nearest = match (sel, ids.first(), ids.last()) {
        (_, None, _) | (_, _, None) => "it has no recovery points".to_string(),
        (PointSelector::Latest, Some(_), Some(_)) => format!("it has {} point(s)", ids.len()),
        (PointSelector::Id(id), Some(oldest), Some(newest)) => format!(
            "nearest: {} ({} point(s), {oldest} to {newest})",
            nearest_ids(&ids, id, NEAREST).iter().map(u64::to_string).collect::<Vec<_>>().join(", "),
            ids.len()
        ),
    };
    Err(RecoverError::PointNotFound { pair: rec.pair_id.to_string(), point: sel.to_string(), nearest })
}

/// The `n` ids closest to `id`, ascending.
fn nearest_ids(ids: &[PointId], id: PointId, n: usize) -> Vec<PointId> {
    let mut v = ids.to_vec();
    v.sort_by_key(|&x| (x.abs_diff(id), x));
    v.truncate(n);
    v.sort_unstable();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_point_ids() {
        let ids = [3, 10, 11, 12, 40, 41];
        assert_eq!(nearest_ids(&ids, 13, 3), [10, 11, 12]);
        assert_eq!(nearest_ids(&ids, 0, 2), [3, 10]);
        assert_eq!(nearest_ids(&ids, 100, 3), [12, 40, 41]);
        assert_eq!(nearest_ids(&[], 5, 3), Vec::<u64>::new());
    }
}
