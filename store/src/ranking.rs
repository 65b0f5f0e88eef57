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
}

/// Most rows a leaderboard page holds.
pub const MAX_PAGE: i64 = 1000;

impl Store {
    /// One page of a search's succeeded trials sorted by `key` (reward and
    /// accuracy highest first; latency, params and MACs lowest first; ties
    /// by reward, then by id). `cursor` is the previous page's `next_cursor`.
    pub async fn leaderboard(
        &self,
        search_id: i64,
        key: RankKey,
        limit: i64,
        cursor: Option<&str>,
    ) -> Result<LeaderboardPage, StoreError> {
        self.search(search_id).await?;
        let limit = limit.clamp(1, MAX_PAGE);
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
            "SELECT id, idx, reward, accuracy, latency_ms, params, macs, parent_idx, finished_at \
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
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM trials WHERE {filter}"))
            .bind(search_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        Ok(LeaderboardPage {
            entries,
            total,
            next_cursor,
        })
    }

    /// A search's succeeded trials on the accuracy/latency plane, fastest
    /// first, each marked whether it is on the Pareto front.
    pub async fn pareto(&self, search_id: i64) -> Result<Vec<ParetoPoint>, StoreError> {
        self.search(search_id).await?;
        let rows = sqlx::query(
            "SELECT id, idx, accuracy, latency_ms, reward, params FROM trials \
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
