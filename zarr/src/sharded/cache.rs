//! The shard cache: decoded shards by (array, shard number), bounded by an estimate of their
//! memory. Clean shards are evicted least recently used first; dirty shards (unflushed
//! writes) stay until [`mark_clean`](ShardCache::mark_clean), whatever the budget.

use std::collections::HashMap;
use std::sync::Arc;

use super::shard::Entries;

/// A shard's place: (array path, shard number).
pub(super) type ShardKey = (String, u64);

/// Bytes a decoded shard of `n` entries is taken to hold.
fn shard_bytes(n: usize) -> usize {
    64 + n * 48
}

struct Cached {
    entries: Arc<Entries>,
    dirty: bool,
    tick: u64,
}

/// Decoded shards within a byte budget.
pub(super) struct ShardCache {
    map: HashMap<ShardKey, Cached>,
    bytes: usize,
    budget: usize,
    tick: u64,
}

impl ShardCache {
    /// An empty cache that keeps about `budget` bytes of clean shards.
    pub(super) fn new(budget: usize) -> Self {
        Self {
            map: HashMap::new(),
            bytes: 0,
            budget,
            tick: 0,
        }
    }

    /// The shard at `key`, marked as just used.
    pub(super) fn get(&mut self, key: &ShardKey) -> Option<Arc<Entries>> {
        self.tick += 1;
        let tick = self.tick;
        let cached = self.map.get_mut(key)?;
        cached.tick = tick;
        Some(cached.entries.clone())
    }

    /// The shard at `key` and whether it is dirty, without marking it used.
    pub(super) fn peek(&self, key: &ShardKey) -> Option<(Arc<Entries>, bool)> {
        self.map.get(key).map(|c| (c.entries.clone(), c.dirty))
    }

    /// True when the shard at `key` is cached.
    pub(super) fn contains(&self, key: &ShardKey) -> bool {
        self.map.contains_key(key)
    }

    /// True when any cached shard has unflushed changes.
    pub(super) fn has_dirty(&self) -> bool {
        self.map.values().any(|c| c.dirty)
    }

    /// Every dirty shard.
    pub(super) fn dirty(&self) -> Vec<(ShardKey, Arc<Entries>)> {
        self.map
            .iter()
            .filter(|(_, c)| c.dirty)
            .map(|(k, c)| (k.clone(), c.entries.clone()))
            .collect()
    }

    /// Marks the shard at `key` as saved (it may be evicted from now on).
    pub(super) fn mark_clean(&mut self, key: &ShardKey) {
        if let Some(c) = self.map.get_mut(key) {
            c.dirty = false;
        }
    }

    /// Caches `entries` at `key` (replacing what was there), then evicts clean shards, least
    /// recently used first, until the cache fits its budget or holds one shard.
    pub(super) fn insert(&mut self, key: ShardKey, entries: Arc<Entries>, dirty: bool) {
        self.tick += 1;
        self.bytes += shard_bytes(entries.len());
        let cached = Cached {
            entries,
            dirty,
            tick: self.tick,
        };
        if let Some(old) = self.map.insert(key, cached) {
            self.bytes -= shard_bytes(old.entries.len());
        }
        while self.bytes > self.budget && self.map.len() > 1 {
            let victim = self
                .map
                .iter()
                .filter(|(_, c)| !c.dirty)
                .min_by_key(|(_, c)| c.tick)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            self.remove(&victim);
        }
    }

    /// Drops the shard at `key`, dirty or not.
    pub(super) fn remove(&mut self, key: &ShardKey) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= shard_bytes(old.entries.len());
        }
    }

    /// Keeps only the shards whose key passes `keep`.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&ShardKey) -> bool) {
        let gone: Vec<ShardKey> = self.map.keys().filter(|k| !keep(k)).cloned().collect();
        for k in gone {
            self.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> ShardKey {
        ("a".into(), n)
    }

    fn shard(n: usize) -> Arc<Entries> {
        Arc::new(vec![None; n])
    }

    #[test]
    fn clean_shards_leave_least_recently_used_first() {
        // Room for two shards of 10 entries.
        let mut cache = ShardCache::new(2 * shard_bytes(10));
        cache.insert(key(0), shard(10), false);
        cache.insert(key(1), shard(10), false);
        assert!(cache.get(&key(0)).is_some());
        cache.insert(key(2), shard(10), false);
        assert!(cache.contains(&key(0)) && cache.contains(&key(2)));
        assert!(!cache.contains(&key(1)));
        assert_eq!(cache.bytes, 2 * shard_bytes(10));
        // `peek` does not count as a use.
        assert!(cache.peek(&key(0)).is_some());
        cache.insert(key(3), shard(10), false);
        assert!(!cache.contains(&key(0)));
    }

    #[test]
    fn dirty_shards_stay_until_clean_and_one_shard_always_fits() {
        let mut cache = ShardCache::new(1);
        cache.insert(key(0), shard(4), true);
        cache.insert(key(1), shard(4), true);
        assert!(cache.contains(&key(0)) && cache.contains(&key(1)));
        assert!(cache.has_dirty());
        let mut dirty: Vec<u64> = cache.dirty().into_iter().map(|(k, _)| k.1).collect();
        dirty.sort_unstable();
        assert_eq!(dirty, [0, 1]);
        cache.mark_clean(&key(0));
        // A clean shard goes as soon as anything else arrives.
        cache.insert(key(2), shard(4), false);
        assert!(!cache.contains(&key(0)));
        assert!(cache.contains(&key(1)));
        // Over budget, a lone clean shard is kept: it is being used.
        let mut lone = ShardCache::new(1);
        lone.insert(key(0), shard(100), false);
        assert!(lone.contains(&key(0)));
    }

    #[test]
    fn replacing_and_removing_keep_the_byte_count() {
        let mut cache = ShardCache::new(usize::MAX);
        cache.insert(key(0), shard(4), false);
        cache.insert(key(0), shard(8), true);
        assert_eq!(cache.bytes, shard_bytes(8));
        assert_eq!(
            cache.peek(&key(0)).map(|(e, d)| (e.len(), d)),
            Some((8, true))
        );
        cache.insert(("b".into(), 0), shard(2), false);
        cache.retain(|(array, _)| array == "b");
        assert_eq!(cache.bytes, shard_bytes(2));
        cache.remove(&("b".into(), 0));
        cache.remove(&("b".into(), 0));
        assert_eq!(cache.bytes, 0);
        assert!(!cache.has_dirty());
    }
}
