//! The queue: claim, heartbeat, per-epoch metrics, complete, fail, release,
//! and the rescuer for expired leases. Every call after `claim` is fenced by
//! `(trial, attempt)`. Lock order: a completion, failure or rescue locks its
//! running trial's row, then (rung decision, top-up) its search's row; a
//! cancel or a failed search locks the search row, then touches only its
//! *pending* trials, which no completion holds, so none of them deadlock.
//! On SQLite every writer takes the database's write lock first.
//!
//! By job: [`claim`] (a worker's next trial, fair between searches),
//! [`lease`] (heartbeats and per-epoch metrics), [`artifacts`] (weights and
//! checkpoints), [`complete`], [`fail`] (failure and hand-back) and
//! [`rescue`] (expired leases); this module keeps what they share: the
//! held lease, worker registration and cancelling a stopped search's
//! pending trials.

mod artifacts;
mod claim;
mod complete;
mod fail;
mod lease;
mod rescue;

use artifacts::delete_artifact;
pub(crate) use artifacts::{CHECKPOINT, WEIGHTS};
pub(crate) use claim::label_subsets;

use crate::sql_states::{CANCELLED, PENDING, RUNNING};
use sqlx::{Any, FromRow, Row, Transaction};

use crate::{Store, StoreError, WorkerInfo};

/// What is known of a running trial once its lease is confirmed.
#[derive(Debug, FromRow)]
pub(super) struct Held {
    pub(super) search_id: i64,
    pub(super) attempt: i64,
    /// Attempts made before the current unit of work (a rung): retries
    /// count from here.
    pub(super) attempt_base: i64,
    pub(super) max_attempts: i64,
    pub(super) errors: String,
}

impl Held {
    /// Attempts of the current unit of work so far.
    pub(super) fn unit_attempts(&self) -> i64 {
        self.attempt - self.attempt_base
    }
}

/// How a rescued attempt's error starts.
pub(super) const LEASE_EXPIRED: &str = "lease expired";

/// Within `tx`, with the search row locked: cancels every pending trial of
/// a search that has stopped (cancelled by a user, or failed) and drops
/// their checkpoints (a promoted trial waiting for its next rung, or one
/// waiting for a retry): nothing will resume them.
pub(crate) async fn cancel_pending(
    tx: &mut Transaction<'static, Any>,
    search_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    let waiting: Vec<i64> = sqlx::query(&format!(
        "SELECT trial_id FROM artifacts WHERE kind = $1 AND trial_id IN \
         (SELECT id FROM trials WHERE search_id = $2 AND state = {PENDING})"
    ))
    .bind(CHECKPOINT)
    .bind(search_id)
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|r| r.try_get("trial_id"))
    .collect::<Result<_, _>>()?;
    for trial in waiting {
        delete_artifact(tx, trial, CHECKPOINT).await?;
    }
    sqlx::query(&format!(
        "UPDATE trials SET state = {CANCELLED}, finished_at = $1 WHERE search_id = $2 AND state = {PENDING}"
    ))
    .bind(now)
    .bind(search_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// Registers (or re-registers) a worker.
    pub async fn register_worker(&self, w: &WorkerInfo) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let mut labels = w.labels.clone();
        labels.sort();
        sqlx::query(
            "INSERT INTO workers (id, host, labels, threads, device, started_at, last_seen, device_profile) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET host = $2, labels = $3, threads = $4, device = $5, started_at = $6, last_seen = $7, current_trial = NULL, device_profile = $8",
        )
        .bind(&w.id)
        .bind(&w.host)
        .bind(labels.join(","))
        .bind(i64::from(w.threads))
        .bind(&w.device)
        .bind(now)
        .bind(now)
        .bind(
            w.profile
                .as_ref()
                .map(|p| serde_json::to_string(p).unwrap_or_default())
                .unwrap_or_default(),
        )
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Replaces a registered worker's device profile (a re-established
    /// latency reference); an unknown worker is left alone.
    pub async fn update_device_profile(
        &self,
        worker_id: &str,
        profile: &crate::DeviceProfile,
    ) -> Result<(), StoreError> {
        let json = serde_json::to_string(profile)
            .map_err(|e| StoreError::Corrupt(format!("device profile: {e}")))?;
        sqlx::query("UPDATE workers SET device_profile = $1 WHERE id = $2")
            .bind(json)
            .bind(worker_id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Confirms `(trial, attempt)` still holds a running lease (or, for the
    /// rescuer, an expired one) and locks the trial row.
    pub(super) async fn hold(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: i64,
        attempt: Option<i64>,
        expired_before: Option<i64>,
    ) -> Result<Option<Held>, StoreError> {
        let sql = format!(
            "SELECT search_id, attempt, attempt_base, max_attempts, errors FROM trials WHERE id = $1 AND state = {RUNNING} \
             AND ($2 < 0 OR attempt = $2) AND ($3 < 0 OR lease_expires_at < $3){}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(trial)
            .bind(attempt.unwrap_or(-1))
            .bind(expired_before.unwrap_or(-1))
            .fetch_optional(&mut **tx)
            .await?;
        Ok(row.as_ref().map(Held::from_row).transpose()?)
    }

    /// Settles a search after a trial-ending commit. The caller's change is
    /// committed and stays whatever happens here, so a failure is logged,
    /// not returned: the worker must not take its kept result for lost. The
    /// rescuer settles any search left idle later.
    pub(super) async fn settle_after_commit(&self, search_id: i64) {
        if let Err(e) = self.settle(search_id).await {
            tracing::error!(
                search_id,
                error = %e,
                "the trial's end is recorded, but the search could not be settled (topped up or finished); the rescuer retries"
            );
        }
    }

    pub(super) async fn clear_worker(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE workers SET current_trial = NULL, last_seen = $1 WHERE current_trial = $2",
        )
        .bind(now)
        .bind(trial)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}
