//! Leaderboards (keyset-paginated, sorted in SQL on indexed columns) and the
//! accuracy/latency Pareto front of a search's succeeded trials.

use search::objective::{pareto_front, Point, RankKey};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::{Store, StoreError};

/// One ranked trial.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeaderboardEntry {
    /// 1-based position under the requested sort.
    pub rank: i64,
    /// Trial id.
    pub trial_id: i64,
    /// Position in the search.
    pub index: i64,
    /// The objective's reward.
    pub reward: f64,
    /// Validation accuracy.
    pub accuracy: Option<f64>,
    /// Batch-1 latency p50, milliseconds.
    pub latency_ms: Option<f64>,
    /// Trainable parameters.
    pub params: Option<i64>,
    /// Multiply-accumulates per image.
    pub macs: Option<i64>,
    /// The parent's index (evolution).
    pub parent_index: Option<i64>,
    /// Finished, Unix ms.
    pub finished_at: Option<i64>,
    /// The network's top-level blocks in short, e.g. `conv3-16 → res×2 → se → gap → fc10`.
    pub blocks: String,
    /// The zoo entry, when this trial is one of the search's baselines.
    pub baseline: Option<String>,
}

/// How a baseline trial's `mutation` column starts (the zoo name follows).
pub(crate) const BASELINE_PREFIX: &str = "baseline:";

/// A short summary of an architecture JSON's top-level layers: one word per
/// block, repeats folded (`res×3`), shape-only layers left out.
pub fn block_summary(architecture: &str) -> String {
    let Ok(arch) = serde_json::from_str::<serde_json::Value>(architecture) else {
        return String::new();
    };
    let number = |layer: &serde_json::Value, key: &str| {
        let v = &layer[key];
        v.as_u64()
            .or_else(|| {
                v.as_array()
                    .and_then(|a| a.first())
                    .and_then(|x| x.as_u64())
            })
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    let words: Vec<String> = arch["layers"]
        .as_array()
        .map(|layers| {
            layers
                .iter()
                .filter_map(|layer| {
                    let word = match layer["kind"].as_str()? {
                        "conv" => format!(
                            "conv{}-{}",
                            number(layer, "kernel"),
                            number(layer, "filters")
                        ),
                        "separable_conv" => format!(
                            "sep{}-{}",
                            number(layer, "kernel"),
                            number(layer, "filters")
                        ),
                        "pool" => "pool".to_owned(),
                        "global_avg_pool" => "gap".to_owned(),
                        "dense" => format!("fc{}", number(layer, "units")),
                        "residual" => "res".to_owned(),
                        "branches" => "incep".to_owned(),
                        "se" => "se".to_owned(),
                        "lrn" => "lrn".to_owned(),
                        _ => return None,
                    };
                    Some(word)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut folded: Vec<(String, usize)> = Vec::new();
    for word in words {
        match folded.last_mut() {
            Some((last, n)) if *last == word => *n += 1,
            _ => folded.push((word, 1)),
        }
    }
    folded
        .iter()
        .map(|(w, n)| {
            if *n > 1 {
                format!("{w}×{n}")
            } else {
                w.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// One page of a leaderboard.
#[derive(Debug, Clone, PartialEq)]
pub struct LeaderboardPage {
    /// The entries, best first.
    pub entries: Vec<LeaderboardEntry>,
    /// Ranked trials in all.
    pub total: i64,
    /// Pass as `cursor` for the next page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The position after a page's last entry: opaque to clients, checked on use.
#[derive(Debug, Clone, PartialEq)]
struct Cursor {
    key: RankKey,
    value: f64,
    reward: f64,
    id: i64,
    rank: i64,
}

/// The sort column of a key and whether it is ranked highest first.
fn column(key: RankKey) -> (&'static str, bool) {
    match key {
        RankKey::Reward => ("reward", true),
        RankKey::Accuracy => ("accuracy", true),
        RankKey::Latency => ("latency_ms", false),
        RankKey::Params => ("params", false),
        RankKey::Macs => ("macs", false),
    }
}

fn key_name(key: RankKey) -> &'static str {
    match key {
        RankKey::Reward => "reward",
        RankKey::Accuracy => "accuracy",
        RankKey::Latency => "latency",
        RankKey::Params => "params",
        RankKey::Macs => "macs",
    }
}

impl Cursor {
    fn encode(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}",
            key_name(self.key),
            self.value,
            self.reward,
            self.id,
            self.rank
        )
    }

    fn decode(text: &str, key: RankKey) -> Result<Self, StoreError> {
        let invalid = || StoreError::BadCursor(text.chars().take(64).collect());
        let parts: Vec<&str> = text.split('_').collect();
        let [name, value, reward, id, rank] = parts.as_slice() else {
            return Err(invalid());
        };
        if *name != key_name(key) {
            return Err(StoreError::BadCursor(format!(
                "the cursor belongs to a leaderboard sorted by {name}, not {}",
                key_name(key)
            )));
        }
        let finite = |s: &str| s.parse::<f64>().ok().filter(|v| v.is_finite());
        Ok(Self {
            key,
            value: finite(value).ok_or_else(invalid)?,
            reward: finite(reward).ok_or_else(invalid)?,
            id: id.parse().map_err(|_| invalid())?,
            rank: rank.parse().ok().filter(|r| *r >= 0).ok_or_else(invalid)?,
        })
    }
}

/// A key's value in a row, as the cursor holds it.
fn key_value(entry: &LeaderboardEntry, key: RankKey) -> f64 {
    match key {
        RankKey::Reward => Some(entry.reward),
        RankKey::Accuracy => entry.accuracy,
        RankKey::Latency => entry.latency_ms,
        RankKey::Params => entry.params.map(|v| v as f64),
        RankKey::Macs => entry.macs.map(|v| v as f64),
    }
    .unwrap_or(0.0)
}

fn entry(row: &AnyRow, rank: i64) -> Result<LeaderboardEntry, StoreError> {
    Ok(LeaderboardEntry {
        rank,
        trial_id: row.try_get("id")?,
        index: row.try_get("idx")?,
        reward: row.try_get("reward")?,
        accuracy: row.try_get("accuracy")?,
        latency_ms: row.try_get("latency_ms")?,
        params: row.try_get("params")?,
        macs: row.try_get("macs")?,
        parent_index: row.try_get("parent_idx")?,
        finished_at: row.try_get("finished_at")?,
        blocks: block_summary(&row.try_get::<String, _>("architecture")?),
        baseline: row
            .try_get::<Option<String>, _>("mutation")?
            .and_then(|m| m.strip_prefix(BASELINE_PREFIX).map(str::to_owned)),
    })
}

/// One point of a search's accuracy/latency plane.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ParetoPoint {
    /// Trial id.
    pub trial_id: i64,
    /// Position in the search.
    pub index: i64,
    /// Validation accuracy.
    pub accuracy: f64,
    /// Batch-1 latency p50, milliseconds.
    pub latency_ms: f64,
    /// The objective's reward.
    pub reward: f64,
    /// Trainable parameters.
    pub params: Option<i64>,
    /// Whether no other trial is both at least as accurate and at least as fast.
    pub on_front: bool,
    /// The zoo entry, when this trial is one of the search's baselines.
    pub baseline: Option<String>,
}

/// How long a counted leaderboard total is reused.
const TOTAL_TTL: std::time::Duration = std::time::Duration::from_secs(1);

/// A counted total: its value, when it was counted, and since when one
/// caller has been recounting it.
#[derive(Debug, Clone, Copy)]
struct Counted {
    total: i64,
    version: u64,
    at: std::time::Instant,
    recounting_since: Option<std::time::Instant>,
}

/// Leaderboard totals by search and sort column, for the search version they
/// were counted at. A total younger than
/// [`TOTAL_TTL`] is reused; an older one is recounted by one caller while
/// the others keep using it, so a burst of requests never counts at once.
#[derive(Debug, Default)]
pub(crate) struct TotalsCache(
    std::sync::Mutex<std::collections::HashMap<(i64, &'static str), Counted>>,
);

impl TotalsCache {
    /// The total to show, or `None`: the caller must count (and `put`).
    fn get(&self, search_id: i64, column: &'static str, version: u64) -> Option<i64> {
        let mut cache = self.0.lock().ok()?;
        let entry = cache.get_mut(&(search_id, column))?;
        if entry.version != version {
            return None;
        }
        if entry.at.elapsed() < TOTAL_TTL {
            return Some(entry.total);
        }
        match entry.recounting_since {
            // Someone is recounting (and has not given up): use the old total.
            Some(since) if since.elapsed() < TOTAL_TTL * 5 => Some(entry.total),
            _ => {
                entry.recounting_since = Some(std::time::Instant::now());
                None
            }
        }
    }

    fn put(&self, search_id: i64, column: &'static str, version: u64, total: i64) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() > 10_000 {
                cache.retain(|_, c| c.at.elapsed() < TOTAL_TTL);
            }
            let at = std::time::Instant::now();
            cache.insert(
                (search_id, column),
                Counted {
                    total,
                    version,
                    at,
                    recounting_since: None,
                },
            );
        }
    }
}

/// Which searches' leaderboards changed: a version per search, bumped when
/// one of its trials ends or it finishes (this process's events and, on
/// PostgreSQL, other processes' notifications).
#[derive(Debug, Default)]
pub(crate) struct Changes(std::sync::Mutex<std::collections::HashMap<i64, u64>>);

impl Changes {
    /// Records what `event` changes.
    pub(crate) fn note(&self, event: &crate::Event) {
        if matches!(
            event,
            crate::Event::TrialFinished { .. } | crate::Event::SearchFinished { .. }
        ) {
            if let Ok(mut versions) = self.0.lock() {
                *versions.entry(event.search_id()).or_default() += 1;
            }
        }
    }

    fn version(&self, search_id: i64) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|v| v.get(&search_id).copied())
            .unwrap_or(0)
    }
}

/// One cached page: the search version and time it was asked for, the page
/// once fetched (concurrent askers wait for the one fetch), and whether a
/// caller is already refetching it after it aged out.
#[derive(Debug)]
struct Slot {
    version: u64,
    at: std::time::Instant,
    page: tokio::sync::OnceCell<LeaderboardPage>,
    refreshing: std::sync::atomic::AtomicBool,
}

impl Slot {
    fn new(version: u64, page: Option<LeaderboardPage>) -> std::sync::Arc<Self> {
        std::sync::Arc::new(Self {
            version,
            at: std::time::Instant::now(),
            page: tokio::sync::OnceCell::new_with(page),
            refreshing: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

type PageKey = (i64, &'static str, i64, Option<String>);

/// What the cache has for a request.
enum Lookup {
    /// Wait for (or do) this slot's fetch.
    Shared(std::sync::Arc<Slot>),
    /// An aged-out page someone else is refetching: good enough.
    Stale(LeaderboardPage),
    /// Aged out and unchanged: this caller refetches while others use the old page.
    Refresh,
}

/// Recently served leaderboard pages. A page is reused while its search's
/// version is unchanged (a trial of it ended). After [`TOTAL_TTL`] it is
/// refetched by one caller while the others keep getting it (the age bound
/// covers writers this process hears nothing from: other processes on
/// SQLite). A changed page is fetched once, however many requests want it.
#[derive(Debug, Default)]
pub(crate) struct PageCache(
    std::sync::Mutex<std::collections::HashMap<PageKey, std::sync::Arc<Slot>>>,
);

impl PageCache {
    fn lookup(&self, key: &PageKey, version: u64) -> Lookup {
        let Ok(mut cache) = self.0.lock() else {
            return Lookup::Shared(Slot::new(version, None));
        };
        if let Some(slot) = cache.get(key) {
            if slot.version == version {
                if slot.at.elapsed() < TOTAL_TTL {
                    return Lookup::Shared(slot.clone());
                }
                if let Some(page) = slot.page.get() {
                    let already = slot
                        .refreshing
                        .swap(true, std::sync::atomic::Ordering::AcqRel);
                    return if already {
                        Lookup::Stale(page.clone())
                    } else {
                        Lookup::Refresh
                    };
                }
            }
        }
        if cache.len() >= MAX_CACHED_PAGES {
            cache.clear();
        }
        let slot = Slot::new(version, None);
        cache.insert(key.clone(), slot.clone());
        Lookup::Shared(slot)
    }

    fn store_failed(&self, key: &PageKey) {
        if let Ok(cache) = self.0.lock() {
            if let Some(slot) = cache.get(key) {
                slot.refreshing
                    .store(false, std::sync::atomic::Ordering::Release);
            }
        }
    }

    fn store(&self, key: PageKey, version: u64, page: LeaderboardPage) {
        if let Ok(mut cache) = self.0.lock() {
            cache.insert(key, Slot::new(version, Some(page)));
        }
    }
}

/// Most pages kept before the cache starts over.
const MAX_CACHED_PAGES: usize = 4096;

/// A trial measured over the hard latency limit, never trained.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RejectedPoint {
    /// Trial id.
    pub trial_id: i64,
    /// Position in the search.
    pub index: i64,
    /// Its measured batch-1 latency p50, milliseconds.
    pub latency_ms: f64,
}

/// Most rows a leaderboard page holds.
pub const MAX_PAGE: i64 = 1000;

impl Store {
    /// One page of a search's succeeded trials sorted by `key` (reward and
    /// accuracy highest first; latency, params and MACs lowest first; ties
    /// by reward, then by id). `cursor` is the previous page's `next_cursor`.
    /// A page is served again from memory until a trial of the search ends;
    /// `total` is counted at most once a second per search and sort, so under
    /// load it may lag the entries by up to a second.
    pub async fn leaderboard(
        &self,
        search_id: i64,
        key: RankKey,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<LeaderboardPage, StoreError> {
        let limit = limit.clamp(1, MAX_PAGE);
        let version = self.changes.version(search_id);
        let cache_key = (search_id, key_name(key), limit, cursor.map(str::to_owned));
        match self.pages.lookup(&cache_key, version) {
            Lookup::Shared(slot) => Ok(slot
                .page
                .get_or_try_init(|| self.leaderboard_page(search_id, key, limit, cursor, version))
                .await?
                .clone()),
            Lookup::Stale(page) => Ok(page),
            Lookup::Refresh => {
                let page = self
                    .leaderboard_page(search_id, key, limit, cursor, version)
                    .await;
                match &page {
                    Ok(page) => self.pages.store(cache_key, version, page.clone()),
                    // Let the next caller try again.
                    Err(_) => self.pages.store_failed(&cache_key),
                }
                page
            }
        }
    }

    async fn leaderboard_page(
        &self,
        search_id: i64,
        key: RankKey,
        limit: i64,
        cursor: Option<&str>,
        version: u64,
    ) -> Result<LeaderboardPage, StoreError> {
        let after = cursor.map(|c| Cursor::decode(c, key)).transpose()?;
        let (col, descending) = column(key);
        let sign = if descending { "-" } else { "" };
        // Ascending row order (negated where ranked highest first) matches
        // the `trials_rank_*` indexes, so a page is one index range scan.
        let order = if key == RankKey::Reward {
            "-reward, id".to_owned()
        } else {
            format!("{sign}{col}, -reward, id")
        };
        let after_clause = match key {
            _ if after.is_none() => String::new(),
            RankKey::Reward => " AND (-reward, id) > ($2, $3)".to_owned(),
            _ => format!(" AND ({order}) > ($2, $4, $3)"),
        };
        let filter = format!("search_id = $1 AND state = 'succeeded' AND {col} IS NOT NULL");
        let sql = format!(
            "SELECT id, idx, reward, accuracy, latency_ms, params, macs, parent_idx, finished_at, architecture, mutation \
             FROM trials WHERE {filter}{after_clause} ORDER BY {order} LIMIT {}",
            limit + 1
        );
        let mut query = sqlx::query(&sql).bind(search_id);
        if let Some(c) = &after {
            let signed = |v: f64| if descending { -v } else { v };
            query = match key {
                RankKey::Params | RankKey::Macs => query.bind(c.value as i64),
                _ => query.bind(signed(c.value)),
            };
            query = query.bind(c.id);
            if key != RankKey::Reward {
                query = query.bind(-c.reward);
            }
        }
        let rows = query.fetch_all(self.pool()).await?;
        let first_rank = after.as_ref().map_or(1, |c| c.rank + 1);
        let entries = rows
            .iter()
            .take(limit as usize)
            .enumerate()
            .map(|(i, row)| entry(row, first_rank + i as i64))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match entries.last() {
            Some(last) if rows.len() as i64 > limit => Some(
                Cursor {
                    key,
                    value: key_value(last, key),
                    reward: last.reward,
                    id: last.trial_id,
                    rank: last.rank,
                }
                .encode(),
            ),
            _ => None,
        };
        let total = match self.totals.get(search_id, col, version) {
            Some(total) => total,
            None => {
                let total: i64 =
                    sqlx::query(&format!("SELECT COUNT(*) AS n FROM trials WHERE {filter}"))
                        .bind(search_id)
                        .fetch_one(self.pool())
                        .await?
                        .try_get("n")?;
                self.totals.put(search_id, col, version, total);
                total
            }
        };
        if entries.is_empty() {
            // An empty page: tell "no such search" from "nothing ranked yet".
            self.search(search_id).await?;
        }
        Ok(LeaderboardPage {
            entries,
            total,
            next_cursor,
        })
    }

    /// A search's rejected trials (over the latency limit), fastest first.
    pub async fn rejected(&self, search_id: i64) -> Result<Vec<RejectedPoint>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, idx, latency_ms FROM trials WHERE search_id = $1 AND state = 'rejected' \
             AND latency_ms IS NOT NULL ORDER BY latency_ms, id",
        )
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(RejectedPoint {
                    trial_id: r.try_get("id")?,
                    index: r.try_get("idx")?,
                    latency_ms: r.try_get("latency_ms")?,
                })
            })
            .collect()
    }

    /// A search's succeeded trials on the accuracy/latency plane, fastest
    /// first, each marked whether it is on the Pareto front.
    pub async fn pareto(&self, search_id: i64) -> Result<Vec<ParetoPoint>, StoreError> {
        self.search(search_id).await?;
        let rows = sqlx::query(
            "SELECT id, idx, accuracy, latency_ms, reward, params, mutation FROM trials \
             WHERE search_id = $1 AND state = 'succeeded' AND accuracy IS NOT NULL AND latency_ms IS NOT NULL \
             ORDER BY latency_ms, -accuracy, id",
        )
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        let mut points = rows
            .iter()
            .map(|r| {
                Ok(ParetoPoint {
                    trial_id: r.try_get("id")?,
                    index: r.try_get("idx")?,
                    accuracy: r.try_get("accuracy")?,
                    latency_ms: r.try_get("latency_ms")?,
                    reward: r.try_get::<Option<f64>, _>("reward")?.unwrap_or(0.0),
                    params: r.try_get("params")?,
                    on_front: false,
                    baseline: r
                        .try_get::<Option<String>, _>("mutation")?
                        .and_then(|m| m.strip_prefix(BASELINE_PREFIX).map(str::to_owned)),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let plane: Vec<Point> = points
            .iter()
            .map(|p| Point {
                accuracy: p.accuracy,
                latency_ms: p.latency_ms,
                params: p.params.unwrap_or(0).max(0) as u64,
            })
            .collect();
        for i in pareto_front(&plane, false) {
            points[i].on_front = true;
        }
        Ok(points)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_summaries_fold_repeats_and_skip_shape_layers() {
        let arch = r#"{"layers": [{"kind": "conv", "kernel": 3, "filters": 16}, {"kind": "residual"}, {"kind": "residual"},
            {"kind": "flatten"}, {"kind": "se"}, {"kind": "global_avg_pool"}, {"kind": "dense", "units": 10}]}"#;
        assert_eq!(block_summary(arch), "conv3-16 → res×2 → se → gap → fc10");
        assert_eq!(block_summary("not json"), "");
    }

    #[test]
    fn cursors_round_trip_exactly_and_refuse_other_sorts_and_garbage() {
        let c = Cursor {
            key: RankKey::Latency,
            value: 0.1 + 0.2,
            reward: -1.5e-7,
            id: 42,
            rank: 50,
        };
        assert_eq!(
            Cursor::decode(&c.encode(), RankKey::Latency).ok(),
            Some(c.clone())
        );
        assert!(matches!(
            Cursor::decode(&c.encode(), RankKey::Reward),
            Err(StoreError::BadCursor(m)) if m.contains("sorted by latency")
        ));
        for bad in [
            "",
            "latency",
            "latency_x_1_2_3",
            "latency_1_1_1_-1",
            "latency_NaN_1_1_1",
            "latency_1_1_1_1_1",
        ] {
            assert!(
                matches!(
                    Cursor::decode(bad, RankKey::Latency),
                    Err(StoreError::BadCursor(_))
                ),
                "{bad}"
            );
        }
    }
}
