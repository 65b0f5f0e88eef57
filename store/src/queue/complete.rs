//! Completing a trial's unit of work: its result, the rung decision and the
//! strategy's top-up in one transaction.

use super::artifacts::{prune_checkpoint, write_artifact, WEIGHTS};
use crate::nullable;
use crate::sql_states::{PENDING, RUNNING};
use sqlx::Row;

use search::TrialResult;

use crate::topup::AfterCommit;
use crate::{Completion, Event, Store, StoreError, TrialPhase, TrialState};

impl Store {
    /// Ends `(trial, attempt)`'s unit of work with its outcome. A search
    /// trial that succeeded has ended a rung: under ASHA it goes on to the
    /// next (pending again, resuming from its checkpoint) or ends `stopped`,
    /// decided in this transaction; otherwise it has ended for good and its
    /// search is topped up.
    pub async fn complete(
        &self,
        trial: i64,
        attempt: i64,
        outcome: Completion,
    ) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let (state, mut result, weights) = match outcome {
            Completion::Succeeded { result, weights } => {
                if !result.reward.is_some_and(f64::is_finite) {
                    return Err(StoreError::Invalid(format!(
                        "trial {trial}: a succeeded trial's result needs a finite reward"
                    )));
                }
                (TrialState::Succeeded, Some(result), weights)
            }
            Completion::Rejected { result } => (TrialState::Rejected, Some(result), None),
            Completion::Cancelled => (TrialState::Cancelled, None, None),
        };
        let mut tx = self.write_tx().await?;
        // Fenced: only the attempt holding the lease ends the unit.
        let sql = format!(
            "SELECT search_id, phase, target_epochs, baseline, params, macs FROM trials WHERE id = $1 AND attempt = $2 AND state = {RUNNING}{}",
            self.for_update()
        );
        let Some(unit) = sqlx::query(&sql)
            .bind(trial)
            .bind(attempt)
            .fetch_optional(&mut *tx)
            .await?
        else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        let search_id: i64 = unit.try_get("search_id")?;
        let phase: String = unit.try_get("phase")?;
        let is_baseline = unit.try_get::<Option<String>, _>("baseline")?.is_some();
        if state == TrialState::Rejected && phase == TrialPhase::Search.as_str() && !is_baseline {
            // Rejected before it trained (over the hard latency limit, only
            // ever in a first unit): the epochs committed when it was
            // queued go back to the compute budget.
            sqlx::query(
                "UPDATE searches SET epochs_committed = epochs_committed - $1 WHERE id = $2",
            )
            .bind(unit.try_get::<i64, _>("target_epochs")?.max(0))
            .bind(search_id)
            .execute(&mut *tx)
            .await?;
        }
        let end = match (&result, state) {
            (Some(r), TrialState::Succeeded) if phase == TrialPhase::Search.as_str() => {
                let ended = crate::rungs::RungEnded {
                    search_id,
                    trial,
                    target_epochs: unit.try_get("target_epochs")?,
                    reward: r.reward.unwrap_or(f64::NEG_INFINITY),
                    point: search::Point {
                        accuracy: r.val_accuracy.unwrap_or(f64::NAN),
                        latency_ms: r.latency_ms.p50,
                        params: unit
                            .try_get::<Option<i64>, _>("params")?
                            .unwrap_or(0)
                            .max(0) as u64,
                        macs: unit.try_get::<Option<i64>, _>("macs")?.unwrap_or(0).max(0) as u64,
                    },
                    baseline: is_baseline,
                };
                self.end_rung(&mut tx, &ended, now).await?
            }
            _ => crate::rungs::Decision::Ends {
                state,
                rung: None,
                reason: None,
            },
        };
        if let (Some(r), Some(reason)) = (&mut result, end.reason()) {
            r.reason = Some(reason.to_owned());
        }
        let reward = result.as_ref().and_then(|r| r.reward);
        let accuracy = result.as_ref().and_then(|r| r.val_accuracy);
        let test_accuracy = result.as_ref().and_then(|r| r.test_accuracy);
        let latency_ms = result.as_ref().map(|r| r.latency_ms.p50);
        let epochs_done = result.as_ref().and_then(|r| r.epochs).map(i64::from);
        let result = result.as_ref().map(TrialResult::to_json);
        // A promoted trial goes on from its checkpoint: epochs it trained
        // past the last one stored are lost (a failed save) and charged.
        let goes_on = matches!(end, crate::rungs::Decision::GoesOn { .. });
        self.charge_wasted(&mut tx, trial, attempt, goes_on).await?;
        let (new_state, ended) = match &end {
            crate::rungs::Decision::GoesOn { next_epochs, .. } => {
                sqlx::query(&format!(
                    "UPDATE trials SET state = {PENDING}, target_epochs = $1, attempt_base = attempt, run_at = $2, \
                     worker_id = NULL, lease_expires_at = NULL, progress = NULL WHERE id = $3"
                ))
                .bind(i64::from(*next_epochs))
                .bind(now)
                .bind(trial)
                .execute(&mut *tx)
                .await?;
                (TrialState::Pending, false)
            }
            crate::rungs::Decision::Ends { state, .. } => {
                sqlx::query(
                    "UPDATE trials SET state = $1, finished_at = $2, lease_expires_at = NULL WHERE id = $3",
                )
                .bind(state.as_str())
                .bind(now)
                .bind(trial)
                .execute(&mut *tx)
                .await?;
                prune_checkpoint(&mut tx, trial).await?;
                (*state, true)
            }
        };
        // `epochs_done` is what a later unit can resume from: a promoted
        // trial keeps its checkpoint's count (a failed checkpoint save must
        // not advance it); an ended one records how far it got.
        let epochs_done = if goes_on { None } else { epochs_done };
        sqlx::query(&format!(
            "UPDATE trials SET result = $1, reward = {}, accuracy = {}, latency_ms = {}, test_accuracy = {}, \
             rung = COALESCE($6, rung), epochs_done = COALESCE($7, epochs_done) WHERE id = $8",
            nullable::sql("$2"),
            nullable::sql("$3"),
            nullable::sql("$4"),
            nullable::sql("$5")
        ))
        .bind(result)
        .bind(nullable::bind_value(reward))
        .bind(nullable::bind_value(accuracy))
        .bind(nullable::bind_value(latency_ms))
        .bind(nullable::bind_value(test_accuracy))
        .bind(end.rung())
        .bind(epochs_done)
        .bind(trial)
        .execute(&mut *tx)
        .await?;
        if let Some(bytes) = weights {
            write_artifact(&mut tx, trial, WEIGHTS, &bytes, now).await?;
        }
        let mut after = AfterCommit::events([Event::TrialFinished {
            search_id,
            trial_id: trial,
            state: new_state.as_str().into(),
        }]);
        if ended {
            after.extend(self.after_trial_ended(&mut tx, search_id, now).await?);
        } else {
            self.clear_worker(&mut tx, trial, now).await?;
            after.push(Event::TrialsQueued {
                search_id,
                count: 1,
            });
        }
        tx.commit().await?;
        self.committed(after);
        self.settle_after_commit(search_id).await;
        Ok(())
    }
}
