//! The ranked views of a search: leaderboards (keyset-paginated, sorted in
//! SQL on indexed columns, served from memory until a trial ends), the
//! accuracy/latency Pareto front and the rejected trials.
//!
//! - [`paging`]: cursors and the SQL of one page;
//! - [`cache`]: versions, pages and totals kept in memory;
//! - [`fronts`]: the validated and tested fronts and their hypervolumes.

pub(crate) mod cache;
pub mod fronts;
mod paging;

use search::objective::RankKey;
use sqlx::FromRow;

use self::cache::Lookup;
use self::paging::key_name;
use crate::sql_states::REJECTED;
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
    /// Its state: `succeeded` (trained to the last rung), `stopped` (early,
    /// by the scheduler), or `pending`/`running` towards a higher rung.
    pub state: crate::TrialState,
    /// The highest multi-fidelity rung reached (0-based; 0 without a
    /// scheduler): its figures are that rung's.
    pub rung: i64,
    /// Epochs its figures were trained for.
    pub epochs: i64,
    /// Its non-dominated rank (0: on the front), on leaderboards sorted by
    /// `rank` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub front: Option<i64>,
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

/// One point of a search's accuracy/latency plane.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, FromRow)]
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
    /// Multiply-accumulates per image.
    pub macs: Option<i64>,
    /// Whether no other trial dominates it (on accuracy and latency, or on
    /// the search's Pareto metrics).
    #[sqlx(skip)]
    pub on_front: bool,
    /// Its non-dominated rank among the ranked trials (0: on the front).
    #[sqlx(skip)]
    pub front: i64,
    /// The zoo entry, when this trial is one of the search's baselines.
    pub baseline: Option<String>,
    /// The highest multi-fidelity rung reached (0-based).
    pub rung: i64,
    /// Its state (`succeeded`, `stopped`, or training towards a higher rung).
    pub state: String,
}

/// A trial measured over the hard latency limit, never trained.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, FromRow)]
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
        let version = self.changes.version(search_id)?;
        let cache_key = (search_id, key_name(key), limit, cursor.map(str::to_owned));
        match self.pages.lookup(&cache_key, version)? {
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
                    Ok(page) => self.pages.store(cache_key, version, page.clone())?,
                    // Let the next caller try again.
                    Err(_) => self.pages.store_failed(&cache_key)?,
                }
                page
            }
        }
    }

    /// A search's rejected trials (over the latency limit), fastest first.
    pub async fn rejected(&self, search_id: i64) -> Result<Vec<RejectedPoint>, StoreError> {
        let sql = format!(
            "SELECT id AS trial_id, idx AS \"index\", latency_ms FROM trials \
             WHERE search_id = $1 AND state = {REJECTED} AND latency_ms IS NOT NULL ORDER BY latency_ms, id"
        );
        let rows = sqlx::query(&sql)
            .bind(search_id)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(RejectedPoint::from_row)
            .collect::<Result<_, _>>()?)
    }
}
