//! Creating, cancelling and reading searches and trials.

use crate::sql_states::{SEARCH_CANCELLED, SEARCH_RUNNING};
use std::collections::BTreeMap;

use search::SearchSpec;
use sqlx::{FromRow, Row};

use crate::rows::{search_row, trial_row, SEARCH_COLUMNS, TRIAL_COLUMNS};
use crate::topup::{NewTrial, Origin};
use crate::{
    EpochMetrics, Event, SearchRow, SearchStatus, Store, StoreError, TrialRow, TrialState,
};

impl Store {
    /// Checks `spec` against its dataset (resolved here: an uploaded
    /// dataset's content id is recorded in the stored spec), stores the
    /// search and queues its first trials.
    pub async fn create_search(&self, spec: &SearchSpec) -> Result<i64, StoreError> {
        let now = self.db_now_ms().await?;
        // Checked outside the write transaction (sampling the space takes
        // a moment), then resolved again under it: if the name moved in
        // between, the spec is checked against what it now names.
        let mut checked = spec.clone();
        let mut read = self.pool().begin().await?;
        let dataset = self.resolve_dataset(&mut read, &mut checked).await?;
        read.rollback().await?;
        checked.check_on(&dataset, &self.limits())?;
        let mut tx = self.write_tx().await?;
        let mut spec = spec.clone();
        let dataset_now = self.resolve_dataset(&mut tx, &mut spec).await?;
        if dataset_now != dataset {
            spec.check_on(&dataset_now, &self.limits())?;
        }
        let dataset = dataset_now;
        let spec = &spec;
        let json = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let row = sqlx::query(
            &format!("INSERT INTO searches (name, spec, status, seed, max_trials, parallelism, max_seconds, labels, proposed, created_at) \
             VALUES ($1, $2, {SEARCH_RUNNING}, $3, $4, $5, {}, $7, 0, $8) RETURNING id", crate::nullable::sql("$6")),
        )
        .bind(&spec.name)
        .bind(json)
        .bind(spec.seed as i64)
        .bind(i64::from(spec.budget.max_trials))
        .bind(i64::from(spec.budget.parallelism))
        .bind(crate::nullable::bind_value(spec.budget.max_seconds))
        .bind(spec.label_key())
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let id: i64 = row.try_get("id")?;
        // Baselines first, at negative indices: outside the budget and the
        // strategy's history, claimed before the strategy's first trials.
        for (k, (name, arch)) in spec.baseline_architectures(&dataset)?.iter().enumerate() {
            let trial = NewTrial {
                search_id: id,
                index: -(k as i64) - 1,
                architecture: arch,
                origin: Origin::Baseline { zoo_name: name },
            };
            self.insert_trial(&mut tx, &trial, spec, now).await?;
        }
        let after = self.top_up(&mut tx, id, now).await?;
        tx.commit().await?;
        if after.trials_queued() >= 256 {
            // A burst of new rows: refresh the planner's statistics so the
            // claim query keeps using its index instead of sorting the queue.
            sqlx::query("ANALYZE trials").execute(self.pool()).await?;
        }
        self.committed(after);
        Ok(id)
    }

    /// Cancels a running search: pending trials at once, running ones at
    /// their next heartbeat.
    pub async fn cancel_search(&self, id: i64) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT status FROM searches WHERE id = $1{}",
            self.for_update()
        );
        let Some(row) = sqlx::query(&sql).bind(id).fetch_optional(&mut *tx).await? else {
            return Err(StoreError::NotFound(format!("search {id}")));
        };
        let status: String = row.try_get("status")?;
        if status != SearchStatus::Running.as_str() {
            return Err(StoreError::Conflict(format!(
                "search {id} is already {status}"
            )));
        }
        sqlx::query(&format!(
            "UPDATE searches SET status = {SEARCH_CANCELLED}, finished_at = $1 WHERE id = $2"
        ))
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        crate::queue::cancel_pending(&mut tx, id, now).await?;
        tx.commit().await?;
        self.publish([Event::SearchFinished {
            search_id: id,
            status: "cancelled".into(),
        }]);
        Ok(())
    }

    /// One search.
    pub async fn search(&self, id: i64) -> Result<SearchRow, StoreError> {
        let sql = format!("SELECT {SEARCH_COLUMNS} FROM searches WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        search_row(
            self,
            &row.ok_or_else(|| StoreError::NotFound(format!("search {id}")))?,
        )
    }

    /// Every search, newest first.
    pub async fn searches(&self) -> Result<Vec<SearchRow>, StoreError> {
        let sql = format!("SELECT {SEARCH_COLUMNS} FROM searches ORDER BY id DESC");
        sqlx::query(&sql)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(|row| search_row(self, row))
            .collect()
    }

    /// A search's trials in index order.
    pub async fn trials(&self, search_id: i64) -> Result<Vec<TrialRow>, StoreError> {
        self.trials_where(search_id, None).await
    }

    /// A search's trials in one state, in index order.
    pub async fn trials_in_state(
        &self,
        search_id: i64,
        state: TrialState,
    ) -> Result<Vec<TrialRow>, StoreError> {
        self.trials_where(search_id, Some(state)).await
    }

    async fn trials_where(
        &self,
        search_id: i64,
        state: Option<TrialState>,
    ) -> Result<Vec<TrialRow>, StoreError> {
        let sql = format!(
            "SELECT {TRIAL_COLUMNS} FROM trials WHERE search_id = $1 AND ($2 = '' OR state = $2) ORDER BY idx"
        );
        sqlx::query(&sql)
            .bind(search_id)
            .bind(state.map_or("", TrialState::as_str))
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(trial_row)
            .collect()
    }

    /// The trial at `index` of a search, if any.
    pub async fn trial_at(
        &self,
        search_id: i64,
        index: i64,
    ) -> Result<Option<TrialRow>, StoreError> {
        let sql = format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE search_id = $1 AND idx = $2");
        let row = sqlx::query(&sql)
            .bind(search_id)
            .bind(index)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(trial_row).transpose()
    }

    /// One trial.
    pub async fn trial(&self, id: i64) -> Result<TrialRow, StoreError> {
        let sql = format!("SELECT {TRIAL_COLUMNS} FROM trials WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        trial_row(&row.ok_or_else(|| StoreError::NotFound(format!("trial {id}")))?)
    }

    /// How many of a search's candidate trials (its budget's: not the zoo
    /// baselines, not the final models, which [`Store::final_models`]
    /// lists) are in each state.
    pub async fn trial_counts(&self, search_id: i64) -> Result<BTreeMap<String, i64>, StoreError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) AS n FROM trials WHERE search_id = $1 AND phase = 'search' AND baseline IS NULL GROUP BY state",
        )
        .bind(search_id)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get::<String, _>("state")?, r.try_get::<i64, _>("n")?)))
            .collect()
    }

    /// A trial's learning curve up to `attempt`: for each epoch, the
    /// figures of the latest attempt that trained it. A trial resumed from
    /// a checkpoint (the next rung, or a retry after a crash) so has one
    /// curve across its attempts.
    pub async fn epoch_metrics(
        &self,
        trial: i64,
        attempt: i64,
    ) -> Result<Vec<EpochMetrics>, StoreError> {
        let rows = sqlx::query(
            "SELECT epoch, train_loss, train_accuracy, val_accuracy, seconds FROM trial_metrics m \
             WHERE trial_id = $1 AND attempt = (SELECT MAX(attempt) FROM trial_metrics n \
             WHERE n.trial_id = m.trial_id AND n.epoch = m.epoch AND n.attempt <= $2) ORDER BY epoch",
        )
        .bind(trial)
        .bind(attempt)
        .fetch_all(self.pool())
        .await?;
        Ok(rows
            .iter()
            .map(EpochMetrics::from_row)
            .collect::<Result<_, _>>()?)
    }

    /// A trial's architecture JSON.
    pub async fn architecture(&self, trial: i64) -> Result<String, StoreError> {
        let row = sqlx::query("SELECT architecture FROM trials WHERE id = $1")
            .bind(trial)
            .fetch_optional(self.pool())
            .await?;
        Ok(row
            .ok_or_else(|| StoreError::NotFound(format!("trial {trial}")))?
            .try_get("architecture")?)
    }

    /// A trial's trained weights (safetensors), if stored.
    pub async fn weights(&self, trial: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.artifact(trial, crate::queue::WEIGHTS).await
    }
}
