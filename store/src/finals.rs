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
use search::{FinalTraining, Objective, SearchSpec, TrialResult};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use crate::rows::{trial_row, TRIAL_COLUMNS};
use crate::sql_states::{PENDING, PHASE_FINAL, PHASE_SEARCH, STOPPED, SUCCEEDED};
use crate::{Event, SearchStatus, Store, StoreError, TrialRow};

/// Index of a search's first final model (search trials stay far below:
/// at most `search::spec::bounds::MAX_TRIALS`).
pub const FINAL_INDEX_BASE: i64 = 1_000_000_000;

/// With a time budget (`final.max_seconds`), how many candidates per final
/// model are put in order of preference, so that one that does not fit can
/// be passed over for the next.
const CANDIDATES_PER_PICK: usize = 4;

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
        spec: &SearchSpec,
        now: i64,
    ) -> Result<usize, StoreError> {
        let objective = &spec.objective;
        // Best-informed first: the highest rung reached, then the reward.
        let rows = sqlx::query(&format!(
            "SELECT idx, architecture, arch_hash, params, macs, labels, max_attempts, rung, accuracy, latency_ms, result FROM trials \
             WHERE search_id = $1 AND phase = {PHASE_SEARCH} AND baseline IS NULL AND rung IS NOT NULL \
             AND reward IS NOT NULL AND state IN ({SUCCEEDED}, {STOPPED}) ORDER BY rung DESC, reward DESC, idx"
        ))
        .bind(search_id)
        .fetch_all(&mut **tx)
        .await?;
        let distinct = distinct_architectures(&rows);
        let k = final_training.top_k as usize;
        let wanted = match final_training.max_seconds {
            Some(_) => distinct.len().min(k * CANDIDATES_PER_PICK),
            None => k,
        };
        let preferred = if objective.is_pareto() {
            spread_along_front(&distinct, objective, wanted)?
        } else {
            distinct.into_iter().take(wanted).collect()
        };
        // The search's zoo baselines are trained with the same final recipe
        // and tested too: the reference points of the tested front.
        let baselines = baselines_of(tx, search_id).await?;
        let chosen = match final_training.max_seconds {
            None => preferred,
            Some(budget) => {
                let images = self.final_images(tx, spec).await?;
                within_budget(preferred, &baselines, final_training, budget, images)
            }
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
        let queue = chosen.iter().copied().chain(baselines.iter());
        for (k, row) in queue.enumerate() {
            let baseline: Option<String> = if k < chosen.len() {
                None
            } else {
                row.try_get("baseline")?
            };
            let index = FINAL_INDEX_BASE + k as i64;
            insert_final(
                tx,
                search_id,
                index,
                row,
                final_training.epochs,
                baseline,
                now,
            )
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
        let spec = self.spec_from_text(search_id, &row.try_get::<String, _>("spec")?)?;
        final_training.check(spec.budget.max_trials)?;
        let queued = self
            .queue_final(&mut tx, search_id, final_training, &spec, now)
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

impl Store {
    /// Images a final model of `spec` trains on per epoch: the dataset's
    /// whole training split (training and validation data); `None` if the
    /// dataset is not known here.
    async fn final_images(
        &self,
        tx: &mut Transaction<'static, Any>,
        spec: &SearchSpec,
    ) -> Result<Option<u64>, StoreError> {
        if let Some(id) = &spec.dataset_id {
            let summary = crate::datasets::summary_of(tx, id, "").await?;
            return Ok(summary.map(|s| s.train_per_class.iter().sum()));
        }
        Ok(search::dataset::dataset(&spec.dataset)
            .ok()
            .map(|d| d.train_images as u64))
    }
}

/// The final models of `preferred` (in order of preference) whose
/// estimated training, after the `baselines`', fits `budget` seconds (see
/// `FinalTraining::max_seconds`), at most `top_k` of them. Without the
/// training set's size (`images`) nothing can be estimated and the first
/// `top_k` are taken.
fn within_budget<'r>(
    preferred: Vec<&'r AnyRow>,
    baselines: &[AnyRow],
    final_training: &FinalTraining,
    budget: f64,
    images: Option<u64>,
) -> Vec<&'r AnyRow> {
    let k = final_training.top_k as usize;
    let Some(images) = images else {
        tracing::warn!(
            "the training set's size is unknown: final models chosen without their time budget"
        );
        return preferred.into_iter().take(k).collect();
    };
    let estimate = |row: &AnyRow| estimated_seconds(row, images, final_training.epochs);
    let spent: f64 = baselines.iter().filter_map(estimate).sum();
    let chosen = pick_within(&preferred, k, budget - spent, estimate);
    tracing::info!(
        budget_seconds = budget,
        baselines_seconds = spent,
        models_seconds = chosen.iter().filter_map(|row| estimate(row)).sum::<f64>(),
        models = chosen.len(),
        "final models chosen within their time budget (estimated)"
    );
    chosen
}

/// Up to `k` of `preferred`, in order, each taken if its estimate fits
/// what is left of `budget` and passed over if it does not (or has none).
/// If none fits, the one estimated fastest (else the first) alone.
fn pick_within<T: Copy>(
    preferred: &[T],
    k: usize,
    budget: f64,
    estimate: impl Fn(T) -> Option<f64>,
) -> Vec<T> {
    let mut chosen = Vec::with_capacity(k);
    let mut left = budget;
    for &pick in preferred {
        if chosen.len() >= k {
            break;
        }
        if let Some(seconds) = estimate(pick).filter(|&s| s <= left) {
            chosen.push(pick);
            left -= seconds;
        }
    }
    if chosen.is_empty() {
        let fastest = preferred
            .iter()
            .filter_map(|&pick| estimate(pick).map(|s| (pick, s)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(pick, _)| pick);
        chosen.extend(fastest.or_else(|| preferred.first().copied()));
    }
    chosen
}

/// The estimated wall time of training `row`'s architecture for `epochs`
/// over `images` images: at the throughput its search trial measured.
fn estimated_seconds(row: &AnyRow, images: u64, epochs: u32) -> Option<f64> {
    let json: String = row.try_get::<Option<String>, _>("result").ok()??;
    let per_second = TrialResult::from_json(&json).ok()?.images_per_second?;
    (per_second.is_finite() && per_second > 0.0)
        .then(|| images as f64 * f64::from(epochs) / per_second)
}

/// Within `tx`: the zoo baselines of search `search_id`, as search trials.
async fn baselines_of(
    tx: &mut Transaction<'static, Any>,
    search_id: i64,
) -> Result<Vec<AnyRow>, StoreError> {
    Ok(sqlx::query(&format!(
        "SELECT idx, architecture, arch_hash, params, macs, labels, max_attempts, baseline, result FROM trials \
         WHERE search_id = $1 AND phase = {PHASE_SEARCH} AND baseline IS NOT NULL ORDER BY idx DESC"
    ))
    .bind(search_id)
    .fetch_all(&mut **tx)
    .await?)
}

/// The first row of each architecture in `rows` (by its hash).
fn distinct_architectures(rows: &[AnyRow]) -> Vec<&AnyRow> {
    let mut seen = std::collections::HashSet::new();
    rows.iter()
        .filter(|r| {
            r.try_get::<String, _>("arch_hash")
                .is_ok_and(|h| seen.insert(h))
        })
        .collect()
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

/// Within `tx`: queues the final model `index` of search `search_id`, a
/// retraining of the search trial `row` for `epochs` (`baseline`: the zoo
/// entry it is, if it is one).
async fn insert_final(
    tx: &mut Transaction<'static, Any>,
    search_id: i64,
    index: i64,
    row: &AnyRow,
    epochs: u32,
    baseline: Option<String>,
    now: i64,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO trials (search_id, idx, architecture, arch_hash, state, attempt, max_attempts, labels, errors, \
         run_at, created_at, params, macs, phase, source_idx, target_epochs, baseline) \
         VALUES ($1, $2, $3, $4, {PENDING}, 0, $5, $6, '[]', $7, $8, $9, $10, {PHASE_FINAL}, $11, $12, $13)"
    ))
    .bind(search_id)
    .bind(index)
    .bind(row.try_get::<String, _>("architecture")?)
    .bind(row.try_get::<String, _>("arch_hash")?)
    .bind(row.try_get::<i64, _>("max_attempts")?)
    .bind(row.try_get::<String, _>("labels")?)
    .bind(now)
    .bind(now)
    .bind(row.try_get::<Option<i64>, _>("params")?)
    .bind(row.try_get::<Option<i64>, _>("macs")?)
    .bind(row.try_get::<i64, _>("idx")?)
    .bind(i64::from(epochs))
    .bind(baseline)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
