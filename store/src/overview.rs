//! Read-only views across searches: a paginated search list, the workers
//! with their liveness, and the queue's totals for monitoring.

use std::collections::BTreeMap;

use sqlx::{FromRow, Row};

use crate::{now_ms, SearchRow, SearchStatus, Store, StoreError};

/// One page of searches, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchPage {
    /// The searches.
    pub searches: Vec<SearchRow>,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// A worker as the monitoring views show it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct WorkerRow {
    /// Worker id.
    pub id: String,
    /// Host name.
    pub host: String,
    /// Labels it offers.
    pub labels: Vec<String>,
    /// Training threads.
    pub threads: i64,
    /// Device fingerprint.
    pub device: String,
    /// The hardware it measures latency on, as registered.
    pub profile: Option<crate::model::DeviceProfile>,
    /// Registered, Unix ms.
    pub started_at: i64,
    /// Last claim, poll or heartbeat, Unix ms.
    pub last_seen: i64,
    /// The trial it is running.
    pub current_trial: Option<i64>,
    /// Seen within one lease.
    pub alive: bool,
}

/// Totals for `/metrics`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueueStats {
    /// Trials in each state, over every search.
    pub trials: BTreeMap<String, i64>,
    /// Trials waiting for a worker: pending and due (not waiting out a
    /// retry backoff), or running with an expired lease, of running
    /// searches (the `nas_trial_demand` view, over every label set).
    pub queue_depth: i64,
    /// Searches in each status.
    pub searches: BTreeMap<String, i64>,
    /// Workers seen within one lease.
    pub workers_alive: i64,
}

/// Most searches a page holds.
pub const MAX_SEARCH_PAGE: i64 = 500;

/// A `workers` row as stored (labels comma-joined).
#[derive(Debug, sqlx::FromRow)]
struct WorkerRecord {
    id: String,
    host: String,
    labels: String,
    threads: i64,
    device: String,
    started_at: i64,
    last_seen: i64,
    current_trial: Option<i64>,
    device_profile: String,
}

impl Store {
    /// What a search's pending trials wait for when no live worker may run
    /// them: the labels they require (sorted), when no worker seen within
    /// one lease offers them all. `None` when nothing is pending or some
    /// live worker could claim it (it is then only busy).
    pub async fn waiting_for(&self, search_id: i64) -> Result<Option<Vec<String>>, StoreError> {
        let sets: Vec<String> = sqlx::query_scalar(&format!(
            "SELECT DISTINCT labels FROM trials WHERE search_id = $1 AND state = {} ORDER BY labels",
            crate::sql_states::PENDING
        ))
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        if sets.is_empty() {
            return Ok(None);
        }
        let alive: Vec<Vec<String>> = self
            .workers()
            .await?
            .into_iter()
            .filter(|w| w.alive)
            .map(|w| w.labels)
            .collect();
        for set in sets {
            let required: Vec<String> = set
                .split(',')
                .filter(|l| !l.is_empty())
                .map(str::to_owned)
                .collect();
            if required.is_empty() {
                continue;
            }
            let served = alive
                .iter()
                .any(|offered| required.iter().all(|r| offered.contains(r)));
            if !served {
                return Ok(Some(required));
            }
        }
        Ok(None)
    }

    /// Searches newest first, optionally of one status, after `cursor` (the
    /// previous page's `next_cursor`).
    pub async fn searches_page(
        &self,
        status: Option<SearchStatus>,
        cursor: Option<i64>,
        limit: i64,
    ) -> Result<SearchPage, StoreError> {
        let limit = limit.clamp(1, MAX_SEARCH_PAGE);
        let sql = format!(
            "SELECT {} FROM searches WHERE ($1 = '' OR status = $1) AND id < $2 ORDER BY id DESC LIMIT {}",
            crate::rows::SEARCH_COLUMNS,
            limit + 1
        );
        let rows = sqlx::query(&sql)
            .bind(status.map_or("", SearchStatus::as_str))
            .bind(cursor.unwrap_or(i64::MAX))
            .fetch_all(self.pool())
            .await?;
        let mut searches = rows
            .iter()
            .map(|row| crate::rows::search_row(self, row))
            .collect::<Result<Vec<_>, _>>()?;
        let more = searches.len() as i64 > limit;
        searches.truncate(limit as usize);
        Ok(SearchPage {
            next_cursor: searches.last().filter(|_| more).map(|s| s.id),
            searches,
        })
    }

    /// Every worker that registered, the alive ones first, then by last seen.
    pub async fn workers(&self) -> Result<Vec<WorkerRow>, StoreError> {
        let alive_since = now_ms() - self.config().lease.as_millis() as i64;
        let rows = sqlx::query(
            "SELECT id, host, labels, threads, device, started_at, last_seen, current_trial, device_profile \
             FROM workers ORDER BY last_seen DESC, id LIMIT 1000",
        )
        .fetch_all(self.pool())
        .await?;
        let mut workers = rows
            .iter()
            .map(|r| {
                let w = WorkerRecord::from_row(r)?;
                Ok(WorkerRow {
                    id: w.id,
                    host: w.host,
                    labels: w
                        .labels
                        .split(',')
                        .filter(|l| !l.is_empty())
                        .map(str::to_owned)
                        .collect(),
                    threads: w.threads,
                    device: w.device,
                    // Written by this crate; a row it cannot read shows none.
                    profile: serde_json::from_str(&w.device_profile).ok(),
                    started_at: w.started_at,
                    last_seen: w.last_seen,
                    current_trial: w.current_trial,
                    alive: w.last_seen >= alive_since,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        workers.sort_by_key(|w| !w.alive);
        Ok(workers)
    }

    /// Trials by state, queue depth, searches by status, live workers.
    pub async fn queue_stats(&self) -> Result<QueueStats, StoreError> {
        let now = now_ms();
        let mut stats = QueueStats::default();
        for row in sqlx::query("SELECT state, COUNT(*) AS n FROM trials GROUP BY state")
            .fetch_all(self.pool())
            .await?
        {
            stats
                .trials
                .insert(row.try_get("state")?, row.try_get("n")?);
        }
        for row in sqlx::query("SELECT status, COUNT(*) AS n FROM searches GROUP BY status")
            .fetch_all(self.pool())
            .await?
        {
            stats
                .searches
                .insert(row.try_get("status")?, row.try_get("n")?);
        }
        // The autoscaler's definition (see `crate::depth`), over every label set.
        stats.queue_depth =
            sqlx::query("SELECT COUNT(*) AS n FROM nas_trial_demand WHERE need = 'waiting'")
                .fetch_one(self.pool())
                .await?
                .try_get("n")?;
        stats.workers_alive =
            sqlx::query("SELECT COUNT(*) AS n FROM workers WHERE last_seen >= $1")
                .bind(now - self.config().lease.as_millis() as i64)
                .fetch_one(self.pool())
                .await?
                .try_get("n")?;
        Ok(stats)
    }
}
