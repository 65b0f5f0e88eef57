//! A running trial's lease: heartbeats and per-epoch metrics, fenced by
//! `(trial, attempt)`.

use crate::nullable;
use crate::sql_states::RUNNING;
use sqlx::Row;

use search::TrialProgress;

use crate::{EpochMetrics, Event, Heartbeat, SearchStatus, Store, StoreError};

impl Store {
    /// Extends the lease of `(trial, attempt)` and stores its progress.
    pub async fn heartbeat(
        &self,
        trial: i64,
        attempt: i64,
        progress: Option<&TrialProgress>,
    ) -> Result<Heartbeat, StoreError> {
        let now = self.db_now_ms().await?;
        let progress = progress.map(TrialProgress::to_json);
        let lease = now + self.config().lease.as_millis() as i64;
        let updated = sqlx::query(
            &format!("UPDATE trials SET lease_expires_at = $1, heartbeat_at = $2, progress = COALESCE($3, progress) \
             WHERE id = $4 AND attempt = $5 AND state = {RUNNING}"),
        )
        .bind(lease)
        .bind(now)
        .bind(progress.as_deref())
        .bind(trial)
        .bind(attempt)
        .execute(self.pool())
        .await?
        .rows_affected();
        if updated == 0 {
            return Ok(Heartbeat::LeaseLost);
        }
        let row = sqlx::query("SELECT s.id, s.status FROM searches s JOIN trials t ON t.search_id = s.id WHERE t.id = $1")
            .bind(trial)
            .fetch_one(self.pool())
            .await?;
        sqlx::query("UPDATE workers SET last_seen = $1, current_trial = $2 WHERE id = (SELECT worker_id FROM trials WHERE id = $2)")
            .bind(now)
            .bind(trial)
            .execute(self.pool())
            .await?;
        let search_id: i64 = row.try_get("id")?;
        if progress.is_some() {
            self.publish([Event::TrialProgressed {
                search_id,
                trial_id: trial,
            }]);
        }
        Ok(
            if row.try_get::<String, _>("status")? == SearchStatus::Cancelled.as_str() {
                Heartbeat::Cancel
            } else {
                Heartbeat::Continue
            },
        )
    }

    /// Stores one epoch's metrics for `(trial, attempt)`.
    pub async fn record_epoch(
        &self,
        trial: i64,
        attempt: i64,
        m: &EpochMetrics,
    ) -> Result<(), StoreError> {
        let inserted = sqlx::query(
            &format!("INSERT INTO trial_metrics (trial_id, attempt, epoch, train_loss, train_accuracy, val_accuracy, seconds) \
             SELECT $1, $2, $3, $4, $5, {}, $7 WHERE EXISTS \
             (SELECT 1 FROM trials WHERE id = $1 AND attempt = $2 AND state = {RUNNING})", nullable::sql("$6")),
        )
        .bind(trial)
        .bind(attempt)
        .bind(m.epoch)
        .bind(m.train_loss)
        .bind(m.train_accuracy)
        .bind(nullable::bind_value(m.val_accuracy))
        .bind(m.seconds)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::LeaseLost { trial, attempt });
        }
        Ok(())
    }
}
