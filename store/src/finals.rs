//! Final training: a search's best distinct architectures trained from
//! scratch with the full recipe on training + validation data, tested once
//! on the held-out test set, and listed as the search's final models.
//! Under a reward objective they are the top-k best-informed by reward;
//! under a Pareto objective, k that spread along the validated front
//! (greedy hypervolume contribution, best-informed rung first), so the
//! tested front covers the whole trade-off. The search's zoo baselines are
//! trained and tested with the same recipe beside them (final models with
//! `baseline` set), so the tested front can be compared with them.
//!
//! Final models are trials of phase `final` (indices from
//! [`FINAL_INDEX_BASE`]). Nothing of the search reads them: the strategy's
//! history, the rung decisions, leaderboards and Pareto fronts all take
//! phase `search` only, so the test set never steers a search.

use search::pareto::{self, Costs};
use search::{FinalTraining, Objective};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::rows::{trial_row, TRIAL_COLUMNS};
use crate::sql_states::{PENDING, PHASE_FINAL, PHASE_SEARCH, STOPPED, SUCCEEDED};
use crate::{Event, SearchStatus, Store, StoreError, TrialRow};

/// Index of a search's first final model (search trials stay far below:
/// at most `search::spec::bounds::MAX_TRIALS`).
pub const FINAL_INDEX_BASE: i64 = 1_000_000_000;

impl Store {
    /// Within `tx`, with the search row locked: queues the final models of
    /// `final_training` (and the search's zoo baselines, trained with the
    /// same recipe for comparison) and records its settings. Returns how
    /// many were queued (0 when the search has no trained candidate).
    pub(crate) async fn queue_final(
        &self,
        tx: &mut Transaction<'static, Any>,
        search_id: i64,
        final_training: &FinalTraining,
        objective: &Objective,
        now: i64,
    ) -> Result<usize, StoreError> {
        // Best-informed first: the highest rung reached, then the reward.
        let rows = sqlx::query(&format!(
            "SELECT idx, architecture, arch_hash, params, macs, labels, max_attempts, rung, accuracy, latency_ms FROM trials \
             WHERE search_id = $1 AND phase = {PHASE_SEARCH} AND baseline IS NULL AND rung IS NOT NULL \
             AND reward IS NOT NULL AND state IN ({SUCCEEDED}, {STOPPED}) ORDER BY rung DESC, reward DESC, idx"
        ))
        .bind(search_id)
        .fetch_all(&mut **tx)
        .await?;
        let mut seen = std::collections::HashSet::new();
        let distinct: Vec<&AnyRow> = rows
            .iter()
            .filter(|r| {
                r.try_get::<String, _>("arch_hash")
                    .is_ok_and(|h| seen.insert(h))
            })
            .collect();
        let chosen = if objective.is_pareto() {
            spread_along_front(&distinct, objective, final_training.top_k as usize)?
        } else {
            distinct
                .into_iter()
                .take(final_training.top_k as usize)
                .collect()
        };
        if chosen.is_empty() {
            return Ok(0);
        }
        let settings = serde_json::to_string(final_training)
            .map_err(|e| StoreError::Invalid(format!("final training settings: {e}")))?;
        sqlx::query("UPDATE searches SET final_spec = $1 WHERE id = $2")
            .bind(settings)
            .bind(search_id)
            .execute(&mut **tx)
            .await?;
        // The search's zoo baselines are trained with the same final recipe
        // and tested too: the reference points of the tested front.
        let baselines = sqlx::query(&format!(
            "SELECT idx, architecture, arch_hash, params, macs, labels, max_attempts, baseline FROM trials \
             WHERE search_id = $1 AND phase = {PHASE_SEARCH} AND baseline IS NOT NULL ORDER BY idx DESC"
        ))
        .bind(search_id)
        .fetch_all(&mut **tx)
        .await?;
        let queue = chosen.iter().copied().chain(baselines.iter());
        for (k, row) in queue.enumerate() {
            let baseline: Option<String> = if k < chosen.len() {
                None
            } else {
                row.try_get("baseline")?
            };
            sqlx::query(&format!(
                "INSERT INTO trials (search_id, idx, architecture, arch_hash, state, attempt, max_attempts, labels, errors, \
                 run_at, created_at, params, macs, phase, source_idx, target_epochs, baseline) \
                 VALUES ($1, $2, $3, $4, {PENDING}, 0, $5, $6, '[]', $7, $8, $9, $10, {PHASE_FINAL}, $11, $12, $13)"
            ))
            .bind(search_id)
            .bind(FINAL_INDEX_BASE + k as i64)
            .bind(row.try_get::<String, _>("architecture")?)
            .bind(row.try_get::<String, _>("arch_hash")?)
            .bind(row.try_get::<i64, _>("max_attempts")?)
            .bind(row.try_get::<String, _>("labels")?)
            .bind(now)
            .bind(now)
            .bind(row.try_get::<Option<i64>, _>("params")?)
            .bind(row.try_get::<Option<i64>, _>("macs")?)
            .bind(row.try_get::<i64, _>("idx")?)
            .bind(i64::from(final_training.epochs))
            .bind(baseline)
            .execute(&mut **tx)
            .await?;
        }
        let queued = chosen.len() + baselines.len();
        tracing::info!(
            search_id,
            models = chosen.len(),
            baselines = baselines.len(),
            "final training queued"
        );
        Ok(queued)
    }

    /// Starts final training of a finished search (`POST
    /// /searches/{id}/final`): `Conflict` if the search is still running,
    /// was cancelled or failed, already has final models, or has no trained
    /// candidate; `Spec` if the settings are out of bounds.
    pub async fn request_final(
        &self,
        search_id: i64,
        final_training: &FinalTraining,
    ) -> Result<usize, StoreError> {
        let now = self.db_now_ms().await?;
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT status, spec, final_spec FROM searches WHERE id = $1{}",
            self.for_update()
        );
        let Some(row) = sqlx::query(&sql)
            .bind(search_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Err(StoreError::NotFound(format!("search {search_id}")));
        };
        let status: String = row.try_get("status")?;
        // Checked first: a search whose final training was requested is
        // running again until its final models end.
        if row.try_get::<Option<String>, _>("final_spec")?.is_some() {
            let when = if status == SearchStatus::Running.as_str() {
                "its final models are training"
            } else {
                "it already has final models"
            };
            return Err(StoreError::Conflict(format!(
                "final training of search {search_id} was already requested: {when}"
            )));
        }
        if status != SearchStatus::Finished.as_str() {
            let why = if status == SearchStatus::Running.as_str() {
                "is still running; final training starts once it has finished (or name `final` in its spec)"
            } else {
                "did not finish (it was cancelled or failed)"
            };
            return Err(StoreError::Conflict(format!(
                "search {search_id} {why}: its state is `{status}`"
            )));
        }
        let spec: search::SearchSpec = serde_json::from_str(&row.try_get::<String, _>("spec")?)
            .map_err(|e| StoreError::Corrupt(format!("search {search_id} spec: {e}")))?;
        final_training.check(spec.budget.max_trials)?;
        let queued = self
            .queue_final(&mut tx, search_id, final_training, &spec.objective, now)
            .await?;
        if queued == 0 {
            return Err(StoreError::Conflict(format!(
                "search {search_id} has no trained candidate to train further"
            )));
        }
        sqlx::query(
            "UPDATE searches SET status = $1, finished_at = NULL, last_claimed_at = 0 WHERE id = $2",
        )
        .bind(SearchStatus::Running.as_str())
        .bind(search_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.publish([Event::TrialsQueued {
            search_id,
            count: queued,
        }]);
        Ok(queued)
    }

    /// A search's final models, fastest first (those not yet measured
    /// last): read down the list, each is the one to take for a latency
    /// budget up to the next.
    pub async fn final_models(&self, search_id: i64) -> Result<Vec<TrialRow>, StoreError> {
        self.search(search_id).await?;
        let rows = sqlx::query(&format!(
            "SELECT {TRIAL_COLUMNS} FROM trials WHERE search_id = $1 AND phase = {PHASE_FINAL} \
             ORDER BY COALESCE(latency_ms, 1e300), idx"
        ))
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(trial_row).collect()
    }
}

/// `k` of `rows` (distinct architectures, highest rung first) that spread
/// along the validated front: the rungs are taken highest first, and inside
/// a rung the trials are chosen greedily by hypervolume contribution
/// ([`search::pareto::spread`]), so every pick is on the best evidence
/// there is and the picks cover the trade-off rather than its accurate end.
fn spread_along_front<'r>(
    rows: &[&'r AnyRow],
    objective: &Objective,
    k: usize,
) -> Result<Vec<&'r AnyRow>, StoreError> {
    let Some(bounds) = objective.bounds() else {
        return Ok(rows.iter().take(k).copied().collect());
    };
    let mut by_rung: Vec<(i64, Vec<&AnyRow>)> = Vec::new();
    for &row in rows {
        let rung: i64 = row.try_get("rung")?;
        match by_rung.last_mut() {
            Some((r, group)) if *r == rung => group.push(row),
            _ => by_rung.push((rung, vec![row])),
        }
    }
    let mut chosen = Vec::with_capacity(k);
    for (_, group) in by_rung {
        if chosen.len() >= k {
            break;
        }
        let costs = group
            .iter()
            .map(|row| {
                let point = crate::rows::point_of(row)?;
                Ok(objective.costs(&point).unwrap_or(Costs::new(&[f64::NAN])))
            })
            .collect::<Result<Vec<Costs>, StoreError>>()?;
        for i in pareto::spread(&costs, k - chosen.len(), &bounds) {
            chosen.push(group[i]);
        }
    }
    Ok(chosen)
}
