//! `DELETE /api/v1/pairs/{pair}?confirm=PAIR`: what deleting a pair removed.

use crate::ids::PairId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairDeletion {
    pub pair_id: PairId,
    /// Its recovery points, all deleted.
    pub points_deleted: u64,
    /// Chunks no other pair referred to, deleted from the store.
    pub chunks_reclaimed: u64,
    pub bytes_reclaimed: u64,
    /// What was done, in one sentence.
    pub message: String,
}
