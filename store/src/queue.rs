//! The queue: claim, heartbeat, per-epoch metrics, complete, fail, release,
//! and the rescuer for expired leases. Every call after `claim` is fenced by
//! `(trial, attempt)`. Lock order: a completion, failure or rescue locks its
//! running trial's row, then (rung decision, top-up) its search's row; a
//! cancel or a failed search locks the search row, then touches only its
//! *pending* trials, which no completion holds, so none of them deadlock.
//! On SQLite every writer takes the database's write lock first.

use crate::blobs::{delete_blob, write_blob};
use crate::nullable;
use crate::sql_states::{CANCELLED, PENDING, PHASE_SEARCH, RUNNING, SEARCH_RUNNING};
use sqlx::any::AnyRow;
use sqlx::{Any, FromRow, Row, Transaction};

use search::{AttemptError, TrialProgress, TrialResult};

use crate::topup::AfterCommit;
use crate::{
    ClaimedTrial, Completion, EpochMetrics, Event, Heartbeat, SearchStatus, Store, StoreError,
    TrialPhase, TrialState, WorkerInfo,
};

/// What is known of a running trial once its lease is confirmed.
#[derive(Debug, FromRow)]
struct Held {
    search_id: i64,
    attempt: i64,
    /// Attempts made before the current unit of work (a rung): retries
    /// count from here.
    attempt_base: i64,
    max_attempts: i64,
    errors: String,
}

impl Held {
    /// Attempts of the current unit of work so far.
    fn unit_attempts(&self) -> i64 {
        self.attempt - self.attempt_base
    }
}

/// Artifact kind of trained weights.
pub(crate) const WEIGHTS: &str = "weights";
/// Artifact kind of a training checkpoint (pruned when the trial ends).
pub(crate) const CHECKPOINT: &str = "checkpoint";

/// The blob holding a trial's artifact of `kind` (one per trial and kind:
/// a new one replaces it).
fn artifact_blob(trial: i64, kind: &str) -> String {
    format!("artifact/{trial}/{kind}")
}

/// Within `tx`: a trial's artifact of `kind`, replacing any stored before:
/// its bytes in chunks on the blob layer, its index row in `artifacts`.
async fn write_artifact(
    tx: &mut Transaction<'static, Any>,
    trial: i64,
    kind: &str,
    bytes: &[u8],
    now: i64,
) -> Result<(), StoreError> {
    delete_artifact(tx, trial, kind).await?;
    write_blob(tx, &artifact_blob(trial, kind), bytes).await?;
    sqlx::query("INSERT INTO artifacts (trial_id, kind, size, created_at) VALUES ($1, $2, $3, $4)")
        .bind(trial)
        .bind(kind)
        .bind(bytes.len() as i64)
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Within `tx`: deletes a trial's artifact of `kind`, if any.
async fn delete_artifact(
    tx: &mut Transaction<'static, Any>,
    trial: i64,
    kind: &str,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM artifacts WHERE trial_id = $1 AND kind = $2")
        .bind(trial)
        .bind(kind)
        .execute(&mut **tx)
        .await?;
    delete_blob(tx, &artifact_blob(trial, kind)).await
}

/// Within `tx`: drops a trial's checkpoint (it has ended; nothing resumes it).
pub(crate) async fn prune_checkpoint(
    tx: &mut Transaction<'static, Any>,
    trial: i64,
) -> Result<(), StoreError> {
    delete_artifact(tx, trial, CHECKPOINT).await
}

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

/// Most search specs a store keeps for claims.
pub(crate) const MAX_CACHED_SPECS: usize = 1024;

/// How a rescued attempt's error starts.
const LEASE_EXPIRED: &str = "lease expired";

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
        let search_id: i64 = row.try_get("search_id")?;
        let spec = match self.specs.get_cloned(&search_id)? {
            Some(spec) => spec,
            None => {
                let spec: String = sqlx::query("SELECT spec FROM searches WHERE id = $1")
                    .bind(search_id)
                    .fetch_one(self.pool())
                    .await?
                    .try_get("spec")?;
                self.specs.insert(search_id, spec.clone())?;
                spec
            }
        };
        let phase_name: String = row.try_get("phase")?;
        let phase = TrialPhase::parse(&phase_name)
            .ok_or_else(|| StoreError::Corrupt(format!("trial phase {phase_name}")))?;
        let final_spec = match phase {
            TrialPhase::Search => None,
            TrialPhase::Final => sqlx::query("SELECT final_spec FROM searches WHERE id = $1")
                .bind(search_id)
                .fetch_one(self.pool())
                .await?
                .try_get("final_spec")?,
        };
        let epochs = |column: &str| -> Result<u32, StoreError> {
            Ok(u32::try_from(row.try_get::<i64, _>(column)?.max(0)).unwrap_or(u32::MAX))
        };
        let id: i64 = row.try_get("id")?;
        let earlier_latency_ms = match row.try_get::<Option<String>, _>("result")? {
            None => Vec::new(),
            Some(json) => match TrialResult::from_json(&json) {
                Ok(result) => result.all_latency_measurements(),
                Err(e) => {
                    // Only the refinement is lost: the trial still runs.
                    tracing::warn!(trial = id, error = %e, "the trial's earlier result does not read");
                    Vec::new()
                }
            },
        };
        let claimed = ClaimedTrial {
            id,
            search_id,
            index: row.try_get("idx")?,
            attempt: row.try_get("attempt")?,
            architecture: row.try_get("architecture")?,
            spec,
            phase,
            target_epochs: epochs("target_epochs")?,
            epochs_done: epochs("epochs_done")?,
            final_spec,
            earlier_latency_ms,
        };
        self.publish([Event::TrialClaimed {
            search_id,
            trial_id: claimed.id,
        }]);
        Ok(Some(claimed))
    }

    /// The running search to claim from: of those with a due pending trial
    /// for these labels, one with a promotion waiting (a trial ASHA sent on
    /// to its next rung) if any has, and among those the one claimed from
    /// longest ago. Promotions so come first across searches (a promoted
    /// trial's earlier rungs are sunk compute, and ASHA's decisions assume
    /// it goes on promptly), while searches still take turns: a search
    /// with many promotions waiting gets one claim, then the next search
    /// with a promotion does.
    async fn next_search(&self, subsets: &[String], now: i64) -> Result<Option<i64>, StoreError> {
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
    async fn take_trial(
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

    /// Stores the trained weights (safetensors) of `(trial, attempt)` on
    /// their own, before its completion, so that a large blob can neither
    /// break nor slow the transaction that records the result. A later
    /// attempt's weights replace an earlier one's.
    pub async fn save_weights(
        &self,
        trial: i64,
        attempt: i64,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.save_artifact(trial, attempt, WEIGHTS, bytes, None)
            .await
    }

    /// Stores the checkpoint of `(trial, attempt)` after `epoch` epochs
    /// (replacing the one before), so that a later attempt, or the next
    /// rung, goes on from there. Fenced like every write of a running
    /// trial.
    pub async fn save_checkpoint(
        &self,
        trial: i64,
        attempt: i64,
        epoch: u32,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        self.save_artifact(trial, attempt, CHECKPOINT, bytes, Some(epoch))
            .await
    }

    /// Stores an artifact of `kind` for `(trial, attempt)` in its own
    /// transaction, fenced by the lease; a checkpoint also records the
    /// epochs it holds.
    async fn save_artifact(
        &self,
        trial: i64,
        attempt: i64,
        kind: &str,
        bytes: &[u8],
        epochs_done: Option<u32>,
    ) -> Result<(), StoreError> {
        let now = self.db_now_ms().await?;
        let mut tx = self.write_tx().await?;
        if self
            .hold(&mut tx, trial, Some(attempt), None)
            .await?
            .is_none()
        {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        }
        write_artifact(&mut tx, trial, kind, bytes, now).await?;
        if let Some(epoch) = epochs_done {
            sqlx::query("UPDATE trials SET epochs_done = $1 WHERE id = $2")
                .bind(i64::from(epoch))
                .bind(trial)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A trial's checkpoint, if it has one.
    pub async fn checkpoint(&self, trial: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.artifact(trial, CHECKPOINT).await
    }

    /// A trial's artifact of `kind`, if stored: its index row and all its
    /// chunks read in one statement, so a replacement committed meanwhile
    /// is never seen half.
    pub(crate) async fn artifact(
        &self,
        trial: i64,
        kind: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = sqlx::query(
            "SELECT c.bytes FROM artifacts a JOIN blob_chunks c ON c.blob_id = $3 \
             WHERE a.trial_id = $1 AND a.kind = $2 ORDER BY c.seq",
        )
        .bind(trial)
        .bind(kind)
        .bind(artifact_blob(trial, kind))
        .fetch_all(self.pool())
        .await?;
        if rows.is_empty() {
            // An empty artifact has an index row and no chunks.
            let indexed =
                sqlx::query("SELECT size FROM artifacts WHERE trial_id = $1 AND kind = $2")
                    .bind(trial)
                    .bind(kind)
                    .fetch_optional(self.pool())
                    .await?
                    .is_some();
            return Ok(indexed.then(Vec::new));
        }
        let mut bytes = Vec::new();
        for row in &rows {
            bytes.extend_from_slice(&row.try_get::<Vec<u8>, _>("bytes")?);
        }
        Ok(Some(bytes))
    }

    /// Confirms `(trial, attempt)` still holds a running lease (or, for the
    /// rescuer, an expired one) and locks the trial row.
    async fn hold(
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

    async fn fail_held(
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
    async fn rescue_one(
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
    async fn charge_wasted(
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

    /// Settles a search after a trial-ending commit. The caller's change is
    /// committed and stays whatever happens here, so a failure is logged,
    /// not returned: the worker must not take its kept result for lost. The
    /// rescuer settles any search left idle later.
    async fn settle_after_commit(&self, search_id: i64) {
        if let Err(e) = self.settle(search_id).await {
            tracing::error!(
                search_id,
                error = %e,
                "the trial's end is recorded, but the search could not be settled (topped up or finished); the rescuer retries"
            );
        }
    }

    async fn clear_worker(
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
