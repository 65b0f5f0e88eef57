//! The rescuer: expired leases are fenced off and their trials retried,
//! their lost epochs charged to the search.

use super::LEASE_EXPIRED;
use crate::sql_states::{PENDING, PHASE_SEARCH, RUNNING, SEARCH_RUNNING};
use sqlx::{Any, Row, Transaction};

use search::AttemptError;

use crate::{Store, StoreError};

impl Store {
    /// Re-queues (with backoff) or fails every running trial whose lease has
    /// expired. Returns how many it handled.
    pub async fn rescue_expired(&self) -> Result<usize, StoreError> {
        let now = self.db_now_ms().await?;
        let rows = sqlx::query(&format!(
            "SELECT id, worker_id FROM trials WHERE state = {RUNNING} AND lease_expires_at < $1"
        ))
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut handled = 0;
        for row in rows {
            let trial: i64 = row.try_get("id")?;
            let worker: Option<String> = row.try_get("worker_id")?;
            // One trial's trouble never stops the rescue of the others.
            match self.rescue_one(trial, worker.as_deref(), now).await {
                Ok(true) => handled += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(trial, error = %e, "could not rescue the trial"),
            }
        }
        // Searches whose last trial ended without settling (a crash between
        // the two transactions).
        let idle = sqlx::query(
            &format!("SELECT id FROM searches s WHERE status = {SEARCH_RUNNING} AND NOT EXISTS \
             (SELECT 1 FROM trials t WHERE t.search_id = s.id AND t.state IN ({PENDING}, {RUNNING}))"),
        )
        .fetch_all(self.pool())
        .await?;
        for row in idle {
            let search_id: i64 = row.try_get("id")?;
            self.settle_after_commit(search_id).await;
        }
        Ok(handled)
    }

    /// Re-queues or fails one trial whose lease expired before `now`; `false`
    /// if another process got to it first.
    pub(super) async fn rescue_one(
        &self,
        trial: i64,
        worker: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let mut tx = self.write_tx().await?;
        let Some(held) = self.hold(&mut tx, trial, None, Some(now)).await? else {
            tx.rollback().await?;
            return Ok(false);
        };
        let mut error = format!(
            "{LEASE_EXPIRED}: worker {} stopped heartbeating",
            worker.unwrap_or("?")
        );
        if held.unit_attempts() >= held.max_attempts {
            let before = AttemptError::list_from_json(&held.errors)
                .map_err(|e| StoreError::Corrupt(format!("trial {trial}: {e}")))?
                .iter()
                .filter(|e| e.error.starts_with(LEASE_EXPIRED))
                .count();
            error = format!(
                "{error}; the worker stopped while running it ({} times), giving up",
                before + 1
            );
        }
        tracing::warn!(trial, attempt = held.attempt, %error, "rescuing trial");
        let after = self
            .fail_held(&mut tx, trial, &held, &error, true, now)
            .await?;
        tx.commit().await?;
        self.committed(after);
        self.settle_after_commit(held.search_id).await;
        Ok(true)
    }

    /// Within `tx` (the trial's row locked): charges the epochs `(trial,
    /// attempt)` trained and the trial does not keep to its search's
    /// compute budget and waste count: epochs at or before the one it was
    /// claimed to resume after (it trained from scratch: its checkpoint did
    /// not load), and, when `after_checkpoint_lost`, epochs past its stored
    /// checkpoint (the attempt failed, or its checkpoint save did). Epochs
    /// are counted from the attempt's recorded epochs; a partial epoch is
    /// not charged. Baselines and final models are outside the budget and
    /// are not charged.
    pub(super) async fn charge_wasted(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: i64,
        attempt: i64,
        after_checkpoint_lost: bool,
    ) -> Result<(), StoreError> {
        let row = sqlx::query(&format!(
            "SELECT t.search_id, COUNT(m.epoch) AS wasted FROM trials t \
             JOIN trial_metrics m ON m.trial_id = t.id AND m.attempt = $2 \
             WHERE t.id = $1 AND t.phase = {PHASE_SEARCH} AND t.baseline IS NULL \
             AND (m.epoch <= t.resumed_from OR ($3 = 1 AND m.epoch > t.epochs_done)) \
             GROUP BY t.search_id"
        ))
        .bind(trial)
        .bind(attempt)
        .bind(i64::from(after_checkpoint_lost))
        .fetch_optional(&mut **tx)
        .await?;
        let Some(row) = row else {
            return Ok(());
        };
        let wasted: i64 = row.try_get("wasted")?;
        if wasted > 0 {
            let search_id: i64 = row.try_get("search_id")?;
            tracing::warn!(
                trial,
                attempt,
                wasted,
                "epochs trained and not kept are charged to the compute budget"
            );
            sqlx::query(
                "UPDATE searches SET epochs_committed = epochs_committed + $1, epochs_wasted = epochs_wasted + $1 WHERE id = $2",
            )
            .bind(wasted)
            .bind(search_id)
            .execute(&mut **tx)
            .await?;
        }
        Ok(())
    }
}
