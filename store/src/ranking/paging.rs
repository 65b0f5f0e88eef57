//! Keyset paging of a leaderboard: the opaque cursor, the sort columns and
//! the SQL of one page (an index range scan per sort, see the
//! `trials_rank_*` indexes).

use search::objective::RankKey;
use sqlx::{FromRow, Row};

use super::{LeaderboardEntry, LeaderboardPage};
use crate::sql_states::PHASE_SEARCH;
use crate::{Store, StoreError};

/// The largest rank a cursor may carry (no search has more trials).
const MAX_RANK: i64 = 1 << 40;

/// The position after a page's last entry: opaque to clients, checked on use.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Cursor {
    key: RankKey,
    value: f64,
    reward: f64,
    id: i64,
    rank: i64,
}

/// The sort column of a key and whether it is ranked highest first.
pub(super) fn column(key: RankKey) -> (&'static str, bool) {
    match key {
        RankKey::Reward => ("reward", true),
        RankKey::Accuracy => ("accuracy", true),
        RankKey::Latency => ("latency_ms", false),
        RankKey::Params => ("params", false),
        RankKey::Macs => ("macs", false),
        // Ranked in memory (see `dominance_page`); counted over trials with accuracy.
        RankKey::Rank => ("accuracy", true),
    }
}

pub(super) fn key_name(key: RankKey) -> &'static str {
    match key {
        RankKey::Reward => "reward",
        RankKey::Accuracy => "accuracy",
        RankKey::Latency => "latency",
        RankKey::Params => "params",
        RankKey::Macs => "macs",
        RankKey::Rank => "rank",
    }
}

impl Cursor {
    /// The cursor of the page that follows `last`, ranked by `key`.
    fn after(last: &LeaderboardEntry, key: RankKey) -> Self {
        Self {
            key,
            value: key_value(last, key),
            reward: last.reward,
            id: last.trial_id,
            rank: last.rank,
        }
    }

    pub(super) fn encode(&self) -> String {
        format!(
            "{}_{}_{}_{}_{}",
            key_name(self.key),
            self.value,
            self.reward,
            self.id,
            self.rank
        )
    }

    pub(super) fn decode(text: &str, key: RankKey) -> Result<Self, StoreError> {
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
            rank: rank
                .parse()
                .ok()
                .filter(|r| (0..=MAX_RANK).contains(r))
                .ok_or_else(invalid)?,
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
        RankKey::Rank => entry.front.map(|v| v as f64),
    }
    .unwrap_or(0.0)
}

/// The columns of a ranked trial, as selected for a page.
#[derive(Debug, FromRow)]
struct RankedRow {
    id: i64,
    idx: i64,
    reward: f64,
    accuracy: Option<f64>,
    latency_ms: Option<f64>,
    params: Option<i64>,
    macs: Option<i64>,
    parent_idx: Option<i64>,
    finished_at: Option<i64>,
    architecture: String,
    baseline: Option<String>,
    state: String,
    rung: Option<i64>,
    epochs_done: i64,
}

impl RankedRow {
    fn entry(self, rank: i64) -> Result<LeaderboardEntry, StoreError> {
        Ok(LeaderboardEntry {
            rank,
            trial_id: self.id,
            index: self.idx,
            reward: self.reward,
            accuracy: self.accuracy,
            latency_ms: self.latency_ms,
            params: self.params,
            macs: self.macs,
            parent_index: self.parent_idx,
            finished_at: self.finished_at,
            blocks: blocks_of(&self.architecture)?,
            baseline: self.baseline,
            state: crate::TrialState::parse(&self.state).ok_or_else(|| {
                StoreError::Corrupt(format!("trial {}: state {}", self.id, self.state))
            })?,
            rung: self.rung.unwrap_or(0),
            epochs: self.epochs_done,
            front: None,
        })
    }
}

/// The block summary of a stored architecture.
fn blocks_of(architecture: &str) -> Result<String, StoreError> {
    let arch = search::Architecture::from_json(architecture)
        .map_err(|e| StoreError::Corrupt(format!("stored architecture: {e}")))?;
    Ok(search::summary::block_summary(&arch))
}

impl Store {
    /// How many trials `filter` ranks by `col` (cached per leaderboard
    /// version: counting is the one O(trials) part of a page).
    async fn ranked_total(
        &self,
        search_id: i64,
        col: &'static str,
        filter: &str,
        version: u64,
    ) -> Result<i64, StoreError> {
        if let Some(total) = self.totals.get(search_id, col, version)? {
            return Ok(total);
        }
        let total: i64 = sqlx::query(&format!("SELECT COUNT(*) AS n FROM trials WHERE {filter}"))
            .bind(search_id)
            .fetch_one(self.pool())
            .await?
            .try_get("n")?;
        self.totals.put(search_id, col, version, total)?;
        Ok(total)
    }

    /// Fetches one page of the leaderboard from the database.
    pub(super) async fn leaderboard_page(
        &self,
        search_id: i64,
        key: RankKey,
        limit: i64,
        cursor: Option<&str>,
        version: u64,
    ) -> Result<LeaderboardPage, StoreError> {
        let after = cursor.map(|c| Cursor::decode(c, key)).transpose()?;
        if key == RankKey::Rank {
            return self
                .dominance_page(search_id, limit, after.map_or(0, |c| c.rank))
                .await;
        }
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
        // Rows written before rewards were checked may lack one (NaN stored as NULL).
        let filter = format!(
            "search_id = $1 AND rung IS NOT NULL AND phase = {PHASE_SEARCH} AND {col} IS NOT NULL AND reward IS NOT NULL"
        );
        let sql = format!(
            "SELECT id, idx, reward, accuracy, latency_ms, params, macs, parent_idx, finished_at, architecture, baseline, \
             state, rung, epochs_done \
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
            .map(|(i, row)| RankedRow::from_row(row)?.entry(first_rank + i as i64))
            .collect::<Result<Vec<_>, _>>()?;
        let next_cursor = match entries.last() {
            Some(last) if rows.len() as i64 > limit => Some(Cursor::after(last, key).encode()),
            _ => None,
        };
        let total = self.ranked_total(search_id, col, &filter, version).await?;
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
}

impl Store {
    /// One page of the leaderboard by non-dominated rank, from position
    /// `offset`: every ranked trial is sorted in memory (fronts are a
    /// property of the whole set, not of a row), which the page cache then
    /// serves until a trial of the search ends.
    async fn dominance_page(
        &self,
        search_id: i64,
        limit: i64,
        offset: i64,
    ) -> Result<LeaderboardPage, StoreError> {
        let spec = self.search(search_id).await?.spec;
        let objective = crate::dominance_objective(&spec);
        let sql = format!(
            "SELECT id, idx, reward, accuracy, latency_ms, params, macs, parent_idx, finished_at, architecture, baseline, \
             state, rung, epochs_done FROM trials WHERE search_id = $1 AND rung IS NOT NULL AND phase = {PHASE_SEARCH} \
             AND accuracy IS NOT NULL AND latency_ms IS NOT NULL AND reward IS NOT NULL ORDER BY id"
        );
        let rows = sqlx::query(&sql)
            .bind(search_id)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(RankedRow::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let costs: Vec<search::pareto::Costs> = rows
            .iter()
            .map(|r| {
                let point = search::Point {
                    accuracy: r.accuracy.unwrap_or(f64::NAN),
                    latency_ms: r.latency_ms.unwrap_or(f64::NAN),
                    params: r.params.unwrap_or(0).max(0) as u64,
                    macs: r.macs.unwrap_or(0).max(0) as u64,
                };
                objective
                    .costs(&point)
                    .unwrap_or(search::pareto::Costs::new(&[f64::NAN]))
            })
            .collect();
        let mut front_of = vec![0usize; rows.len()];
        for (rank, front) in search::pareto::fronts(&costs).iter().enumerate() {
            for &i in front {
                front_of[i] = rank;
            }
        }
        let mut order: Vec<usize> = (0..rows.len()).collect();
        order.sort_by(|&a, &b| {
            front_of[a]
                .cmp(&front_of[b])
                .then(costs[a].as_slice()[0].total_cmp(&costs[b].as_slice()[0]))
                .then(rows[a].id.cmp(&rows[b].id))
        });
        let total = rows.len() as i64;
        let start = offset.clamp(0, total) as usize;
        let end = (start + limit as usize).min(rows.len());
        let mut slots: Vec<Option<RankedRow>> = rows.into_iter().map(Some).collect();
        let mut entries = Vec::with_capacity(end - start);
        for (position, &i) in order[start..end].iter().enumerate() {
            let row = slots[i]
                .take()
                .ok_or_else(|| StoreError::Corrupt("a trial ranked twice".into()))?;
            let mut entry = row.entry(start as i64 + position as i64 + 1)?;
            entry.front = Some(front_of[i] as i64);
            entries.push(entry);
        }
        let next_cursor = match entries.last() {
            Some(last) if end < order.len() => Some(
                Cursor {
                    key: RankKey::Rank,
                    value: last.front.unwrap_or(0) as f64,
                    reward: last.reward,
                    id: last.trial_id,
                    rank: last.rank,
                }
                .encode(),
            ),
            _ => None,
        };
        Ok(LeaderboardPage {
            entries,
            total,
            next_cursor,
        })
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
            "latency_1_1_1_9223372036854775807",
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
