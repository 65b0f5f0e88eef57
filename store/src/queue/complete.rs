//! Completing a trial's unit of work: its result, the rung decision and the
//! strategy's top-up in one transaction.

use super::artifacts::{prune_checkpoint, write_artifact, WEIGHTS};
use crate::nullable;
use crate::sql_states::{PENDING, RUNNING};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use search::TrialResult;

use crate::rungs::{Decision, RungEnded};
use crate::topup::AfterCommit;
use crate::{Completion, Event, Store, StoreError, TrialPhase, TrialState};

/// What a worker's [`Completion`] asks for, checked.
struct Outcome {
    state: TrialState,
    result: Option<TrialResult>,
    weights: Option<Vec<u8>>,
}

impl Outcome {
    /// Checks `completion` of `trial`: a succeeded trial needs a finite
    /// reward.
    fn of(trial: i64, completion: Completion) -> Result<Self, StoreError> {
        Ok(match completion {
            Completion::Succeeded { result, weights } => {
                if !result.reward.is_some_and(f64::is_finite) {
                    return Err(StoreError::Invalid(format!(
                        "trial {trial}: a succeeded trial's result needs a finite reward"
                    )));
                }
                Self {
                    state: TrialState::Succeeded,
                    result: Some(result),
                    weights,
                }
            }
            Completion::Rejected { result } => Self {
                state: TrialState::Rejected,
                result: Some(result),
                weights: None,
            },
            Completion::Cancelled => Self {
                state: TrialState::Cancelled,
                result: None,
                weights: None,
            },
        })
    }
}

/// The running unit being completed, as its locked row says.
struct Unit {
    trial: i64,
    search_id: i64,
    phase: String,
    baseline: bool,
    row: AnyRow,
}

impl Unit {
    fn is_search(&self) -> bool {
        self.phase == TrialPhase::Search.as_str()
    }

    /// What ended for ASHA: the rung result of a succeeded search unit.
    fn rung_ended(&self, result: &TrialResult) -> Result<RungEnded, StoreError> {
        let count = |column: &str| -> Result<u64, StoreError> {
            Ok(self
                .row
                .try_get::<Option<i64>, _>(column)?
                .unwrap_or(0)
                .max(0) as u64)
        };
        Ok(RungEnded {
            search_id: self.search_id,
            trial: self.trial,
            target_epochs: self.row.try_get("target_epochs")?,
            reward: result.reward.unwrap_or(f64::NEG_INFINITY),
            point: search::Point {
                accuracy: result.val_accuracy.unwrap_or(f64::NAN),
                latency_ms: result.latency_ms.p50,
                params: count("params")?,
                macs: count("macs")?,
            },
            baseline: self.baseline,
        })
    }
}

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
        let Outcome {
            state,
            mut result,
            weights,
        } = Outcome::of(trial, outcome)?;
        let mut tx = self.write_tx().await?;
        let Some(unit) = self.lock_running_unit(&mut tx, trial, attempt).await? else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        if state == TrialState::Rejected && unit.is_search() && !unit.baseline {
            // Rejected before it trained (over the hard latency limit, only
            // ever in a first unit): the epochs committed when it was
            // queued go back to the compute budget.
            sqlx::query(
                "UPDATE searches SET epochs_committed = epochs_committed - $1 WHERE id = $2",
            )
            .bind(unit.row.try_get::<i64, _>("target_epochs")?.max(0))
            .bind(unit.search_id)
            .execute(&mut *tx)
            .await?;
        }
        let end = match (&result, state) {
            (Some(r), TrialState::Succeeded) if unit.is_search() => {
                self.end_rung(&mut tx, &unit.rung_ended(r)?, now).await?
            }
            _ => Decision::Ends {
                state,
                rung: None,
                reason: None,
            },
        };
        if let (Some(r), Some(reason)) = (&mut result, end.reason()) {
            r.reason = Some(reason.to_owned());
        }
        // A promoted trial goes on from its checkpoint: epochs it trained
        // past the last one stored are lost (a failed save) and charged.
        let goes_on = matches!(end, Decision::GoesOn { .. });
        self.charge_wasted(&mut tx, trial, attempt, goes_on).await?;
        let new_state = move_on(&mut tx, trial, &end, now).await?;
        record_result(&mut tx, trial, result.as_ref(), &end).await?;
        if let Some(bytes) = weights {
            write_artifact(&mut tx, trial, WEIGHTS, &bytes, now).await?;
        }
        let search_id = unit.search_id;
        let mut after = AfterCommit::events([Event::TrialFinished {
            search_id,
            trial_id: trial,
            state: new_state.as_str().into(),
        }]);
        if goes_on {
            self.clear_worker(&mut tx, trial, now).await?;
            after.push(Event::TrialsQueued {
                search_id,
                count: 1,
            });
        } else {
            after.extend(self.after_trial_ended(&mut tx, search_id, now).await?);
        }
        tx.commit().await?;
        self.committed(after);
        self.settle_after_commit(search_id).await;
        Ok(())
    }

    /// Locks `(trial, attempt)`'s row if that attempt still holds the
    /// running lease (the fence: only it may end the unit).
    async fn lock_running_unit(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: i64,
        attempt: i64,
    ) -> Result<Option<Unit>, StoreError> {
        let sql = format!(
            "SELECT search_id, phase, target_epochs, baseline, params, macs FROM trials WHERE id = $1 AND attempt = $2 AND state = {RUNNING}{}",
            self.for_update()
        );
        let Some(row) = sqlx::query(&sql)
            .bind(trial)
            .bind(attempt)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Unit {
            trial,
            search_id: row.try_get("search_id")?,
            phase: row.try_get("phase")?,
            baseline: row.try_get::<Option<String>, _>("baseline")?.is_some(),
            row,
        }))
    }
}

/// Applies the rung decision to the trial's row: pending again towards its
/// next rung, or ended (its checkpoint pruned). Returns its new state.
async fn move_on(
    tx: &mut Transaction<'static, Any>,
    trial: i64,
    end: &Decision,
    now: i64,
) -> Result<TrialState, StoreError> {
    match end {
        Decision::GoesOn { next_epochs, .. } => {
            sqlx::query(&format!(
                "UPDATE trials SET state = {PENDING}, target_epochs = $1, attempt_base = attempt, run_at = $2, \
                 worker_id = NULL, lease_expires_at = NULL, progress = NULL WHERE id = $3"
            ))
            .bind(i64::from(*next_epochs))
            .bind(now)
            .bind(trial)
            .execute(&mut **tx)
            .await?;
            Ok(TrialState::Pending)
        }
        Decision::Ends { state, .. } => {
            sqlx::query(
                "UPDATE trials SET state = $1, finished_at = $2, lease_expires_at = NULL WHERE id = $3",
            )
            .bind(state.as_str())
            .bind(now)
            .bind(trial)
            .execute(&mut **tx)
            .await?;
            prune_checkpoint(tx, trial).await?;
            Ok(*state)
        }
    }
}

/// Writes the unit's result and its figures into the trial's row.
async fn record_result(
    tx: &mut Transaction<'static, Any>,
    trial: i64,
    result: Option<&TrialResult>,
    end: &Decision,
) -> Result<(), StoreError> {
    let reward = result.and_then(|r| r.reward);
    let accuracy = result.and_then(|r| r.val_accuracy);
    let test_accuracy = result.and_then(|r| r.test_accuracy);
    let latency_ms = result.map(|r| r.latency_ms.p50);
    // `epochs_done` is what a later unit can resume from: a promoted trial
    // keeps its checkpoint's count (a failed checkpoint save must not
    // advance it); an ended one records how far it got.
    let epochs_done = match end {
        Decision::GoesOn { .. } => None,
        Decision::Ends { .. } => result.and_then(|r| r.epochs).map(i64::from),
    };
    sqlx::query(&format!(
        "UPDATE trials SET result = $1, reward = {}, accuracy = {}, latency_ms = {}, test_accuracy = {}, \
         rung = COALESCE($6, rung), epochs_done = COALESCE($7, epochs_done) WHERE id = $8",
        nullable::sql("$2"),
        nullable::sql("$3"),
        nullable::sql("$4"),
        nullable::sql("$5")
    ))
    .bind(result.map(TrialResult::to_json))
    .bind(nullable::bind_value(reward))
    .bind(nullable::bind_value(accuracy))
    .bind(nullable::bind_value(latency_ms))
    .bind(nullable::bind_value(test_accuracy))
    .bind(end.rung())
    .bind(epochs_done)
    .bind(trial)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
