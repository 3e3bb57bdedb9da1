//! The bounded local cache of pack ranges read back: aligned blocks of [`BLOCK`] bytes of a
//! pack, least recently used first out. Reads of neighbouring chunks (a pack holds chunks in
//! the order they were shipped, mostly disk order) then cost one ranged GET per block.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Size of a cached block of a pack.
pub(crate) const BLOCK: u64 = 1 << 20;

type Key = (uuid::Uuid, u64);

pub(crate) struct BlockCache {
    capacity: u64,
    lru: Mutex<Lru>,
}

#[derive(Default)]
struct Lru {
    blocks: HashMap<Key, (Bytes, u64)>,
    by_use: BTreeMap<u64, Key>,
    tick: u64,
    bytes: u64,
}

impl BlockCache {
    pub(crate) fn new(capacity: u64) -> BlockCache {
        BlockCache { capacity, lru: Mutex::new(Lru::default()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Block `block` of `pack`, marked as just used.
    pub(crate) fn get(&self, pack: uuid::Uuid, block: u64) -> Option<Bytes> {
        let mut l = self.lock();
        l.tick += 1;
        let tick = l.tick;
        let (bytes, used) = l.blocks.get_mut(&(pack, block))?;
        let (bytes, old) = (bytes.clone(), std::mem::replace(used, tick));
        l.by_use.remove(&old);
        l.by_use.insert(tick, (pack, block));
        Some(bytes)
    }

    /// Keeps a block, evicting the least recently used ones beyond the capacity.
    pub(crate) fn insert(&self, pack: uuid::Uuid, block: u64, bytes: Bytes) {
        let mut l = self.lock();
        l.tick += 1;
        let tick = l.tick;
        l.bytes += bytes.len() as u64;
        if let Some((old, used)) = l.blocks.insert((pack, block), (bytes, tick)) {
            l.bytes -= old.len() as u64;
            l.by_use.remove(&used);
        }
        l.by_use.insert(tick, (pack, block));
        while l.bytes > self.capacity {
            let Some((_, key)) = l.by_use.pop_first() else { break };
            if let Some((gone, _)) = l.blocks.remove(&key) {
                l.bytes -= gone.len() as u64;
            }
        }
    }

    /// Bytes held.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> u64 {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_and_least_recently_used_out() {
        let c = BlockCache::new(3 * 10);
        let p = uuid::Uuid::new_v4();
        for b in 0..3 {
            c.insert(p, b, Bytes::from(vec![b as u8; 10]));
        }
        assert!(c.get(p, 0).is_some());
        c.insert(p, 3, Bytes::from(vec![3; 10]));
        assert_eq!(c.bytes(), 30);
        assert!(c.get(p, 1).is_none(), "the least recently used went");
        assert!(c.get(p, 0).is_some() && c.get(p, 2).is_some() && c.get(p, 3).is_some());
        c.insert(p, 3, Bytes::from(vec![3; 10]));
        assert_eq!(c.bytes(), 30, "a block inserted again is not counted twice");
    }
}
