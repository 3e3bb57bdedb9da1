//! The orphan sweep: pack objects under this store's prefix that no ledger record names are
//! deleted (a pack uploaded but not indexed before a crash, a rewrite's new pack whose switch
//! never happened, an old pack whose deletion was interrupted).
//!
//! An object is deleted only when all of these hold, checked in this order:
//! 1. its key is exactly the key this store gives that pack id (anything else under the
//!    prefix is left alone);
//! 2. it is older than `orphan_grace` (by the store's clock);
//! 3. it is not in flight: not sealed and waiting for its upload or indexing, not a
//!    rewrite's new pack before its switch ([`Packs::in_flight`]). Checked *before* the
//!    ledger: a pack leaves the in-flight set only after the batch writing its record, so a
//!    pack seen out of flight has its record already, if it is ever to have one;
//! 4. it has no ledger record: no `packed` entry names it (`ledger.rs`, invariant 1).
//!
//! garage ignores `If-None-Match`, and nothing here relies on conditional requests: pack ids
//! are random and never reused, so a deleted orphan is never a pack written again.

use super::Packs;
use super::rewrite::PackTidyOutcome;
use crate::{Store, StoreError};
use std::time::SystemTime;

impl Packs {
    /// Deletes the orphan packs (see the module docs).
    pub(crate) fn sweep_orphans(&self, store: &Store, out: &mut PackTidyOutcome) -> Result<(), StoreError> {
        let now = SystemTime::now();
        for obj in self.remote.list_packs()? {
            let Some(id) = obj.id else { continue };
            if now.duration_since(obj.modified).unwrap_or_default() < self.orphan_grace {
                continue;
            }
            if self.in_flight(&id) || self.record(store, &id)?.is_some() {
                continue;
            }
            self.remote.delete(&obj.key)?;
            out.orphans_deleted += 1;
            out.bytes_deleted += obj.size;
            tracing::info!(pack = %id, bytes = obj.size, store = %self.name(), "orphan pack deleted: no chunk entry named it");
        }
        Ok(())
    }
}
