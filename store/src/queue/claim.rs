//! Claiming: which search a worker serves next (fair between searches,
//! promotions first) and the trial it takes, with its search's spec (decoded
//! once per process), its final-training settings and its rung target
//! resolved.

use crate::sql_states::{PENDING, RUNNING, SEARCH_RUNNING};
use sqlx::any::AnyRow;
use sqlx::Row;

use search::{FinalTraining, TrialResult};

use crate::{ClaimedTrial, Event, Store, StoreError, TrialPhase, WorkerInfo};

/// Most labels a worker's claim considers (2^10 label sets).
const MAX_WORKER_LABELS: usize = 10;

/// Every subset of the worker's labels, each sorted and comma-joined (the
/// empty set included), as trials store their requirements.
pub(crate) fn label_subsets(labels: &[String]) -> Vec<String> {
    let mut labels: Vec<&str> = labels
        .iter()
        .map(String::as_str)
        .filter(|l| !l.is_empty())
        .collect();
    labels.sort_unstable();
    labels.dedup();
    labels.truncate(MAX_WORKER_LABELS);
    (0u32..1 << labels.len())
        .map(|mask| {
            let chosen: Vec<&str> = labels
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, l)| *l)
                .collect();
            chosen.join(",")
        })
        .collect()
}

impl Store {
    /// Claims a due pending trial this worker may run, or `None`. Searches
    /// take turns (the one that waited longest since its last claim goes
    /// first, so they share workers whatever their queue lengths), except
    /// that a search with a promotion waiting goes before any without one;
    /// within the search, promotions first (highest rung first), then the
    /// oldest. See [`Store::next_search`].
    pub async fn claim(&self, worker: &WorkerInfo) -> Result<Option<ClaimedTrial>, StoreError> {
        let now = self.db_now_ms().await?;
        let lease = now + self.config().lease.as_millis() as i64;
        // Trials store their required labels sorted and comma-joined, so "the
        // worker has them all" is "they are one of the worker's label subsets".
        let subsets = label_subsets(&worker.labels);
        let mut claimed = None;
        if let Some(search_id) = self.next_search(&subsets, now).await? {
            claimed = self
                .take_trial(worker, &subsets, now, lease, Some(search_id))
                .await?;
        }
        if claimed.is_none() {
            // Another claimer took that search's last due trial meanwhile.
            claimed = self.take_trial(worker, &subsets, now, lease, None).await?;
        }
        if let Some(row) = &claimed {
            sqlx::query("UPDATE searches SET last_claimed_at = $1 WHERE id = $2")
                .bind(now)
                .bind(row.try_get::<i64, _>("search_id")?)
                .execute(self.pool())
                .await?;
        }
        // The worker was seen now, running this trial or idle.
        let current: Option<i64> = claimed.as_ref().map(|r| r.try_get("id")).transpose()?;
        sqlx::query("UPDATE workers SET last_seen = $1, current_trial = $2 WHERE id = $3")
            .bind(now)
            .bind(current)
            .bind(&worker.id)
            .execute(self.pool())
            .await?;
        let Some(row) = claimed else {
            return Ok(None);
        };
        let claimed = match self.claimed_trial(&row).await {
            Ok(claimed) => claimed,
            Err(StoreError::Corrupt(message)) => {
                // A search whose stored spec or final settings no longer
                // read (written by another release): its trial fails for
                // good, with the reason, instead of being claimed again
                // and again.
                let (id, attempt) = (row.try_get("id")?, row.try_get("attempt")?);
                tracing::error!(trial = id, %message, "the claimed trial's search does not read");
                self.fail(id, attempt, &message, false).await?;
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        self.publish([Event::TrialClaimed {
            search_id: claimed.search_id,
            trial_id: claimed.id,
        }]);
        Ok(Some(claimed))
    }

    /// The claimed trial `row` as the worker gets it: its search's spec,
    /// its rung target resolved, a final model's settings, and the latency
    /// figures of its earlier rungs.
    async fn claimed_trial(&self, row: &AnyRow) -> Result<ClaimedTrial, StoreError> {
        let search_id: i64 = row.try_get("search_id")?;
        let spec = self.spec_of(search_id).await?;
        let phase_name: String = row.try_get("phase")?;
        let phase = TrialPhase::parse(&phase_name)
            .ok_or_else(|| StoreError::Corrupt(format!("trial phase {phase_name}")))?;
        let epochs = |column: &str| -> Result<u32, StoreError> {
            Ok(u32::try_from(row.try_get::<i64, _>(column)?.max(0)).unwrap_or(u32::MAX))
        };
        let (target_epochs, final_training) = match phase {
            TrialPhase::Search => (
                crate::specs::rung_target(&spec, row.try_get("target_epochs")?),
                None,
            ),
            TrialPhase::Final => (
                epochs("target_epochs")?,
                Some(self.final_training_of(search_id, &spec).await?),
            ),
        };
        let id: i64 = row.try_get("id")?;
        Ok(ClaimedTrial {
            id,
            search_id,
            index: row.try_get("idx")?,
            attempt: row.try_get("attempt")?,
            architecture: row.try_get("architecture")?,
            target_epochs,
            spec,
            phase,
            epochs_done: epochs("epochs_done")?,
            final_training,
            earlier_latency_ms: earlier_latency_ms(id, row)?,
        })
    }

    /// The settings of search `search_id`'s final models: those fixed when
    /// they were queued, else the spec's, else the defaults.
    async fn final_training_of(
        &self,
        search_id: i64,
        spec: &search::SearchSpec,
    ) -> Result<FinalTraining, StoreError> {
        let stored: Option<String> = sqlx::query("SELECT final_spec FROM searches WHERE id = $1")
            .bind(search_id)
            .fetch_one(self.pool())
            .await?
            .try_get("final_spec")?;
        match stored {
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                StoreError::Corrupt(format!("search {search_id} final training: {e}"))
            }),
            None => Ok(spec.final_training.clone().unwrap_or_default()),
        }
    }

    /// The running search to claim from: of those with a due pending trial
    /// for these labels, one with a promotion waiting (a trial ASHA sent on
    /// to its next rung) if any has, and among those the one claimed from
    /// longest ago. Promotions so come first across searches (a promoted
    /// trial's earlier rungs are sunk compute, and ASHA's decisions assume
    /// it goes on promptly), while searches still take turns: a search
    /// with many promotions waiting gets one claim, then the next search
    /// with a promotion does.
    pub(super) async fn next_search(
        &self,
        subsets: &[String],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        let placeholders: Vec<String> = (0..subsets.len()).map(|i| format!("${}", i + 2)).collect();
        let placeholders = placeholders.join(", ");
        let due = format!(
            "SELECT 1 FROM trials t WHERE t.search_id = s.id AND t.state = {PENDING} AND t.run_at <= $1 \
             AND t.labels IN ({placeholders})"
        );
        let sql = format!(
            "SELECT s.id FROM searches s WHERE s.status = {SEARCH_RUNNING} AND EXISTS ({due}) \
             ORDER BY CASE WHEN EXISTS ({due} AND t.rung IS NOT NULL) THEN 0 ELSE 1 END, \
             s.last_claimed_at, s.id LIMIT 1"
        );
        let mut query = sqlx::query(&sql).bind(now);
        for subset in subsets {
            query = query.bind(subset);
        }
        Ok(query
            .fetch_optional(self.pool())
            .await?
            .map(|r| r.try_get("id"))
            .transpose()?)
    }

    /// Takes a due pending trial (of `search`, or of any running search) in
    /// one statement: promotions first (highest rung first, as ASHA asks),
    /// then the oldest: Postgres skips rows other claimers hold,
    /// SQLite runs it under its write lock.
    pub(super) async fn take_trial(
        &self,
        worker: &WorkerInfo,
        subsets: &[String],
        now: i64,
        lease: i64,
        search: Option<i64>,
    ) -> Result<Option<AnyRow>, StoreError> {
        let placeholders: Vec<String> = (0..subsets.len()).map(|i| format!("${}", i + 5)).collect();
        let sql = format!(
            "UPDATE trials SET state = {RUNNING}, attempt = attempt + 1, worker_id = $1, lease_expires_at = $2, \
             heartbeat_at = $3, started_at = COALESCE(started_at, $3), progress = NULL, resumed_from = epochs_done \
             WHERE id = (SELECT id FROM trials WHERE state = {PENDING} AND run_at <= $3 AND labels IN ({}) \
             AND ($4 < 0 OR search_id = $4) \
             AND EXISTS (SELECT 1 FROM searches s WHERE s.id = trials.search_id AND s.status = {SEARCH_RUNNING}) \
             ORDER BY COALESCE(-rung, 1), run_at, id LIMIT 1{}) AND state = {PENDING} \
             RETURNING id, search_id, idx, attempt, architecture, phase, target_epochs, epochs_done, result",
            placeholders.join(", "),
            self.skip_locked()
        );
        let mut query = sqlx::query(&sql)
            .bind(&worker.id)
            .bind(lease)
            .bind(now)
            .bind(search.unwrap_or(-1));
        for subset in subsets {
            query = query.bind(subset);
        }
        Ok(query.fetch_optional(self.pool()).await?)
    }
}

/// The latency medians of trial `id`'s earlier rungs, from the result its
/// claimed `row` holds (empty before its first rung ends, or if that result
/// does not read: only the refinement is lost, the trial still runs).
fn earlier_latency_ms(id: i64, row: &AnyRow) -> Result<Vec<f64>, StoreError> {
    Ok(match row.try_get::<Option<String>, _>("result")? {
        None => Vec::new(),
        Some(json) => match TrialResult::from_json(&json) {
            Ok(result) => result.all_latency_measurements(),
            Err(e) => {
                tracing::warn!(trial = id, error = %e, "the trial's earlier result does not read");
                Vec::new()
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::label_subsets;

    #[test]
    fn label_subsets_are_sorted_joined_and_include_the_empty_set() {
        let labels = vec!["gpu".to_owned(), "cpu".to_owned(), "gpu".to_owned()];
        let mut subsets = label_subsets(&labels);
        subsets.sort();
        assert_eq!(subsets, ["", "cpu", "cpu,gpu", "gpu"]);
        assert_eq!(label_subsets(&[]), [""]);
    }
}
