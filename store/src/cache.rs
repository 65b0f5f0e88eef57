//! The one bounded in-memory map behind every cache of a [`crate::Store`]
//! (search specs, search histories, leaderboard totals and pages): a named
//! mutex, a capacity, and one eviction rule. A lock poisoned by a panicking
//! thread is reported as [`StoreError::Poisoned`] with the cache's name,
//! never silently bypassed.

use std::collections::HashMap;
use std::hash::Hash;
use std::ops::{Deref, DerefMut};
use std::sync::{Mutex, MutexGuard};

use crate::StoreError;

/// A map of at most about `capacity` entries. When an insertion finds it
/// full, the entries `keep_when_full` rejects are dropped; if that frees
/// nothing, every entry is. (A cache refills from the database, so
/// starting over costs one read per entry; a stale entry is never served
/// because every user checks its own freshness rule.)
#[derive(Debug)]
pub(crate) struct BoundedCache<K, V> {
    name: &'static str,
    capacity: usize,
    keep_when_full: fn(&V) -> bool,
    map: Mutex<HashMap<K, V>>,
}

impl<K: Eq + Hash, V> BoundedCache<K, V> {
    /// An empty cache called `name` in errors, emptied when it reaches
    /// `capacity` entries.
    pub(crate) fn new(name: &'static str, capacity: usize) -> Self {
        Self::evicting(name, capacity, |_| false)
    }

    /// An empty cache that, when full, keeps the entries `keep_when_full`
    /// accepts (and starts over if that frees nothing).
    pub(crate) fn evicting(
        name: &'static str,
        capacity: usize,
        keep_when_full: fn(&V) -> bool,
    ) -> Self {
        Self {
            name,
            capacity: capacity.max(1),
            keep_when_full,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The map, locked; inserting through the guard applies the bound.
    pub(crate) fn lock(&self) -> Result<Guard<'_, K, V>, StoreError> {
        let map = self
            .map
            .lock()
            .map_err(|_| StoreError::Poisoned(self.name))?;
        Ok(Guard { cache: self, map })
    }

    /// A copy of the entry for `key`, if any.
    pub(crate) fn get_cloned(&self, key: &K) -> Result<Option<V>, StoreError>
    where
        V: Clone,
    {
        Ok(self.lock()?.get(key).cloned())
    }

    /// Takes the entry for `key` out, if any.
    pub(crate) fn remove(&self, key: &K) -> Result<Option<V>, StoreError> {
        Ok(self.lock()?.remove(key))
    }

    /// Keeps `value` for `key`, evicting first if the cache is full.
    pub(crate) fn insert(&self, key: K, value: V) -> Result<(), StoreError> {
        self.lock()?.insert(key, value);
        Ok(())
    }
}

/// A locked [`BoundedCache`]: reads through to the map; [`Guard::insert`]
/// applies the cache's bound.
pub(crate) struct Guard<'a, K, V> {
    cache: &'a BoundedCache<K, V>,
    map: MutexGuard<'a, HashMap<K, V>>,
}

impl<K: Eq + Hash, V> Guard<'_, K, V> {
    /// Inserts `value` for `key` (returning the old one), evicting first if
    /// the map is full and `key` is new.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        if self.map.len() >= self.cache.capacity && !self.map.contains_key(&key) {
            let keep = self.cache.keep_when_full;
            self.map.retain(|_, v| keep(v));
            if self.map.len() >= self.cache.capacity {
                self.map.clear();
            }
        }
        self.map.insert(key, value)
    }
}

impl<K, V> Deref for Guard<'_, K, V> {
    type Target = HashMap<K, V>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<K, V> DerefMut for Guard<'_, K, V> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_cache_starts_over_and_keeps_what_its_rule_keeps() {
        let plain = BoundedCache::new("plain", 2);
        plain.insert(1, "a").expect("insert");
        plain.insert(2, "b").expect("insert");
        // Replacing an entry of a full cache evicts nothing.
        plain.insert(2, "c").expect("insert");
        assert_eq!(plain.lock().expect("lock").len(), 2);
        plain.insert(3, "d").expect("insert");
        assert_eq!(plain.get_cloned(&1).expect("get"), None);
        assert_eq!(plain.get_cloned(&3).expect("get"), Some("d"));

        let evens = BoundedCache::evicting("evens", 3, |v: &u32| v.is_multiple_of(2));
        for v in [1, 2, 4] {
            evens.insert(v, v).expect("insert");
        }
        evens.insert(5, 5).expect("insert");
        let mut kept: Vec<u32> = evens.lock().expect("lock").keys().copied().collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![2, 4, 5]);
    }

    #[test]
    fn a_poisoned_cache_names_itself() {
        let cache = std::sync::Arc::new(BoundedCache::<u8, u8>::new("test cache", 4));
        let poisoner = cache.clone();
        let _ = std::thread::spawn(move || {
            let _guard = poisoner.lock().expect("lock");
            panic!("poison it");
        })
        .join();
        match cache.insert(1, 1) {
            Err(StoreError::Poisoned(name)) => assert_eq!(name, "test cache"),
            other => panic!("expected a poisoned-cache error, got {other:?}"),
        }
    }
}
