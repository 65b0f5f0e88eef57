//! The leaderboard's in-memory caches: a version per search (bumped when a
//! trial of it ends), the pages served at each version, and counted totals.
//! Totals and pages are [`BoundedCache`]s; a lock poisoned by a panicking
//! thread is reported as [`StoreError::Poisoned`], never silently bypassed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

use super::LeaderboardPage;
use crate::cache::BoundedCache;
use crate::{Event, StoreError};

/// How long a counted total or a served page is reused before one caller
/// refetches it.
pub(crate) const TTL: Duration = Duration::from_secs(1);

/// Most pages kept before the page cache starts over.
const MAX_CACHED_PAGES: usize = 4096;

/// Most totals kept before old ones are dropped.
const MAX_TOTALS: usize = 10_000;

/// Locks `mutex`, naming the map in the error if a panicking thread
/// poisoned it.
fn lock<'a, T>(mutex: &'a Mutex<T>, cache: &'static str) -> Result<MutexGuard<'a, T>, StoreError> {
    mutex.lock().map_err(|_| StoreError::Poisoned(cache))
}

/// A counted total: its value, when it was counted, and since when one
/// caller has been recounting it.
#[derive(Debug, Clone, Copy)]
struct Counted {
    total: i64,
    version: u64,
    at: Instant,
    recounting_since: Option<Instant>,
}

/// Leaderboard totals by search and sort column, for the search version they
/// were counted at. A total younger than [`TTL`] is reused; an older one is
/// recounted by one caller while the others keep using it, so a burst of
/// requests never counts at once.
#[derive(Debug)]
pub(crate) struct TotalsCache(BoundedCache<(i64, &'static str), Counted>);

impl Default for TotalsCache {
    fn default() -> Self {
        // When full, the totals still fresh stay.
        Self(BoundedCache::evicting(
            "leaderboard totals",
            MAX_TOTALS,
            |c: &Counted| c.at.elapsed() < TTL,
        ))
    }
}

impl TotalsCache {
    /// The total to show, or `None`: the caller must count (and `put`).
    pub(crate) fn get(
        &self,
        search_id: i64,
        column: &'static str,
        version: u64,
    ) -> Result<Option<i64>, StoreError> {
        let mut cache = self.0.lock()?;
        let Some(entry) = cache.get_mut(&(search_id, column)) else {
            return Ok(None);
        };
        if entry.version != version {
            return Ok(None);
        }
        if entry.at.elapsed() < TTL {
            return Ok(Some(entry.total));
        }
        Ok(match entry.recounting_since {
            // Someone is recounting (and has not given up): use the old total.
            Some(since) if since.elapsed() < TTL * 5 => Some(entry.total),
            _ => {
                entry.recounting_since = Some(Instant::now());
                None
            }
        })
    }

    /// Keeps a freshly counted total.
    pub(crate) fn put(
        &self,
        search_id: i64,
        column: &'static str,
        version: u64,
        total: i64,
    ) -> Result<(), StoreError> {
        let counted = Counted {
            total,
            version,
            at: Instant::now(),
            recounting_since: None,
        };
        self.0.insert((search_id, column), counted)
    }
}

/// Which searches' leaderboards changed: a version per search, bumped when
/// one of its trials ends or it finishes (this process's events and, on
/// PostgreSQL, other processes' notifications).
#[derive(Debug, Default)]
pub(crate) struct Changes(Mutex<HashMap<i64, u64>>);

impl Changes {
    /// Records what `event` changes.
    pub(crate) fn note(&self, event: &Event) -> Result<(), StoreError> {
        if matches!(
            event,
            Event::TrialFinished { .. } | Event::SearchFinished { .. }
        ) {
            *lock(&self.0, "leaderboard versions")?
                .entry(event.search_id())
                .or_default() += 1;
        }
        Ok(())
    }

    /// The search's current version.
    pub(crate) fn version(&self, search_id: i64) -> Result<u64, StoreError> {
        Ok(lock(&self.0, "leaderboard versions")?
            .get(&search_id)
            .copied()
            .unwrap_or(0))
    }
}

/// One cached page: the search version and time it was asked for, the page
/// once fetched (concurrent askers wait for the one fetch), and whether a
/// caller is already refetching it after it aged out.
#[derive(Debug)]
pub(crate) struct Slot {
    version: u64,
    at: Instant,
    /// The page, fetched once.
    pub(crate) page: OnceCell<LeaderboardPage>,
    refreshing: AtomicBool,
}

impl Slot {
    fn new(version: u64, page: Option<LeaderboardPage>) -> Arc<Self> {
        Arc::new(Self {
            version,
            at: Instant::now(),
            page: OnceCell::new_with(page),
            refreshing: AtomicBool::new(false),
        })
    }
}

/// A page's identity: search, sort, page size and cursor.
pub(crate) type PageKey = (i64, &'static str, i64, Option<String>);

/// What the cache has for a request.
pub(crate) enum Lookup {
    /// Wait for (or do) this slot's fetch.
    Shared(Arc<Slot>),
    /// An aged-out page someone else is refetching: good enough.
    Stale(LeaderboardPage),
    /// Aged out and unchanged: this caller refetches while others use the old page.
    Refresh,
}

/// Recently served leaderboard pages. A page is reused while its search's
/// version is unchanged (a trial of it ended). After [`TTL`] it is refetched
/// by one caller while the others keep getting it (the age bound covers
/// writers this process hears nothing from: other processes on SQLite). A
/// changed page is fetched once, however many requests want it.
#[derive(Debug)]
pub(crate) struct PageCache(BoundedCache<PageKey, Arc<Slot>>);

impl Default for PageCache {
    fn default() -> Self {
        Self(BoundedCache::new("leaderboard pages", MAX_CACHED_PAGES))
    }
}

impl PageCache {
    /// What to serve for `key` at `version`.
    pub(crate) fn lookup(&self, key: &PageKey, version: u64) -> Result<Lookup, StoreError> {
        let mut cache = self.0.lock()?;
        if let Some(slot) = cache.get(key).filter(|slot| slot.version == version) {
            if slot.at.elapsed() < TTL {
                return Ok(Lookup::Shared(slot.clone()));
            }
            if let Some(page) = slot.page.get() {
                let already = slot.refreshing.swap(true, Ordering::AcqRel);
                return Ok(if already {
                    Lookup::Stale(page.clone())
                } else {
                    Lookup::Refresh
                });
            }
        }
        let slot = Slot::new(version, None);
        cache.insert(key.clone(), slot.clone());
        Ok(Lookup::Shared(slot))
    }

    /// A refetch failed: let the next caller try again.
    pub(crate) fn store_failed(&self, key: &PageKey) -> Result<(), StoreError> {
        if let Some(slot) = self.0.lock()?.get(key) {
            slot.refreshing.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// Keeps a refetched page.
    pub(crate) fn store(
        &self,
        key: PageKey,
        version: u64,
        page: LeaderboardPage,
    ) -> Result<(), StoreError> {
        self.0.insert(key, Slot::new(version, Some(page)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_cache_is_an_error_not_a_silent_miss() {
        let changes = Arc::new(Changes::default());
        let event = Event::TrialFinished {
            search_id: 7,
            trial_id: 1,
            state: "succeeded".into(),
        };
        changes.note(&event).expect("note");
        assert_eq!(changes.version(7).ok(), Some(1));
        let poisoner = changes.clone();
        let panicked = std::thread::spawn(move || {
            let _guard = poisoner.0.lock();
            panic!("a bug while holding the lock");
        })
        .join();
        assert!(panicked.is_err());
        assert!(matches!(
            changes.version(7),
            Err(StoreError::Poisoned("leaderboard versions"))
        ));
        assert!(changes.note(&event).is_err());
        let pages = PageCache::default();
        let poisoned = std::panic::catch_unwind(|| {
            let _guard = pages.0.lock();
            panic!("again");
        });
        assert!(poisoned.is_err());
        let key = (7, "reward", 10, None);
        assert!(matches!(
            pages.lookup(&key, 1),
            Err(StoreError::Poisoned("leaderboard pages"))
        ));
    }
}
