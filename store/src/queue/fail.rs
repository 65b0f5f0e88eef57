//! A failed attempt (retried with backoff until the attempts run out) and
//! a hand-back that uses no attempt.

use super::artifacts::prune_checkpoint;
use super::Held;
use crate::sql_states::PENDING;
use sqlx::{Any, Row, Transaction};

use search::AttemptError;

use crate::topup::AfterCommit;
use crate::{Event, SearchStatus, Store, StoreError, TrialState};

impl Store {
    /// Records an error for `(trial, attempt)`. A `retryable` error re-queues
    /// the trial after a backoff while attempts remain; otherwise it fails.
    pub async fn fail(
        &self,
        trial: i64,
        attempt: i64,
        error: &str,
        retryable: bool,
    ) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let mut tx = self.write_tx().await?;
        let Some(held) = self.hold(&mut tx, trial, Some(attempt), None).await? else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        let after = self
            .fail_held(&mut tx, trial, &held, error, retryable, now)
            .await?;
        tx.commit().await?;
        self.committed(after);
        self.settle_after_commit(held.search_id).await;
        Ok(())
    }

    pub(super) async fn fail_held(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: i64,
        held: &Held,
        error: &str,
        retryable: bool,
        now: i64,
    ) -> Result<AfterCommit, StoreError> {
        let mut errors = AttemptError::list_from_json(&held.errors)
            .map_err(|e| StoreError::Corrupt(format!("trial {trial}: {e}")))?;
        errors.push(AttemptError {
            attempt: held.attempt,
            error: error.to_owned(),
            at_ms: now,
        });
        let errors = AttemptError::list_to_json(&errors);
        self.charge_wasted(tx, trial, held.attempt, true).await?;
        // A search that stopped (cancelled or failed) wants no more attempts.
        let search_running = sqlx::query("SELECT status FROM searches WHERE id = $1")
            .bind(held.search_id)
            .fetch_one(&mut **tx)
            .await?
            .try_get::<String, _>("status")?
            == SearchStatus::Running.as_str();
        let retry = retryable && held.unit_attempts() < held.max_attempts && search_running;
        let final_state = if search_running {
            TrialState::Failed
        } else {
            TrialState::Cancelled
        };
        if retry {
            let run_at = now + self.config().backoff(held.attempt).as_millis() as i64;
            sqlx::query(
                &format!("UPDATE trials SET state = {PENDING}, errors = $1, run_at = $2, worker_id = NULL, lease_expires_at = NULL, \
                 progress = NULL WHERE id = $3"),
            )
            .bind(errors)
            .bind(run_at)
            .bind(trial)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("UPDATE trials SET state = $1, errors = $2, finished_at = $3, lease_expires_at = NULL WHERE id = $4")
                .bind(final_state.as_str())
                .bind(errors)
                .bind(now)
                .bind(trial)
                .execute(&mut **tx)
                .await?;
            prune_checkpoint(tx, trial).await?;
        }
        self.clear_worker(tx, trial, now).await?;
        let state = if retry {
            TrialState::Pending.as_str()
        } else {
            final_state.as_str()
        };
        let mut after = AfterCommit::events([Event::TrialFinished {
            search_id: held.search_id,
            trial_id: trial,
            state: state.into(),
        }]);
        if !retry {
            after.extend(self.after_trial_ended(tx, held.search_id, now).await?);
        }
        Ok(after)
    }

    /// Hands `(trial, attempt)` back untouched (a worker shutting down): the
    /// trial is pending again at once and the attempt is not counted.
    pub async fn release(&self, trial: i64, attempt: i64) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let mut tx = self.write_tx().await?;
        let Some(held) = self.hold(&mut tx, trial, Some(attempt), None).await? else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        sqlx::query(
            &format!("UPDATE trials SET state = {PENDING}, attempt = attempt - 1, run_at = $1, worker_id = NULL, \
             lease_expires_at = NULL, progress = NULL WHERE id = $2"),
        )
        .bind(now)
        .bind(trial)
        .execute(&mut *tx)
        .await?;
        // Epochs kept in a checkpoint stay: the next attempt resumes after
        // them; those trained since are charged, then forgotten.
        self.charge_wasted(&mut tx, trial, attempt, true).await?;
        sqlx::query("DELETE FROM trial_metrics WHERE trial_id = $1 AND attempt = $2 AND epoch > (SELECT epochs_done FROM trials WHERE id = $1)")
            .bind(trial)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
        self.clear_worker(&mut tx, trial, now).await?;
        tx.commit().await?;
        self.publish([Event::TrialsQueued {
            search_id: held.search_id,
            count: 1,
        }]);
        Ok(())
    }
}
