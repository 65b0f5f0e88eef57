//! The queue: claim, heartbeat, per-epoch metrics, complete, fail, release,
//! and the rescuer for expired leases. Every call after `claim` is fenced by
//! `(trial, attempt)`. Locks are always taken search row first, then trial
//! rows, so cancels, completions and rescues never deadlock.

use sqlx::{Any, Row, Transaction};

use crate::{
    now_ms, ClaimedTrial, Completion, EpochMetrics, Event, Heartbeat, SearchStatus, Store,
    StoreError, WorkerInfo,
};

/// What is known of a running trial once its lease is confirmed.
struct Held {
    search_id: i64,
    attempt: i64,
    max_attempts: i64,
    errors: String,
}

fn has_labels(worker: &[String], required: &str) -> bool {
    required
        .split(',')
        .filter(|l| !l.is_empty())
        .all(|l| worker.iter().any(|w| w == l))
}

impl Store {
    /// Registers (or re-registers) a worker.
    pub async fn register_worker(&self, w: &WorkerInfo) -> Result<(), StoreError> {
        let now = now_ms();
        let mut labels = w.labels.clone();
        labels.sort();
        sqlx::query(
            "INSERT INTO workers (id, host, labels, threads, device, started_at, last_seen) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (id) DO UPDATE SET host = $2, labels = $3, threads = $4, device = $5, started_at = $6, last_seen = $7, current_trial = NULL",
        )
        .bind(&w.id)
        .bind(&w.host)
        .bind(labels.join(","))
        .bind(i64::from(w.threads))
        .bind(&w.device)
        .bind(now)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Claims the oldest due pending trial this worker may run, or `None`.
    pub async fn claim(&self, worker: &WorkerInfo) -> Result<Option<ClaimedTrial>, StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let sql = format!(
            "SELECT id, labels FROM trials WHERE state = 'pending' AND run_at <= $1 ORDER BY run_at, id LIMIT 16{}",
            self.skip_locked()
        );
        let rows = sqlx::query(&sql).bind(now).fetch_all(&mut *tx).await?;
        let mut chosen = None;
        for row in &rows {
            if has_labels(&worker.labels, &row.try_get::<String, _>("labels")?) {
                chosen = Some(row.try_get::<i64, _>("id")?);
                break;
            }
        }
        let Some(id) = chosen else {
            tx.rollback().await?;
            return Ok(None);
        };
        let lease = now + self.config().lease.as_millis() as i64;
        sqlx::query(
            "UPDATE trials SET state = 'running', attempt = attempt + 1, worker_id = $1, lease_expires_at = $2, \
             heartbeat_at = $3, started_at = COALESCE(started_at, $3), progress = NULL WHERE id = $4",
        )
        .bind(&worker.id)
        .bind(lease)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(
            "SELECT t.id, t.search_id, t.idx, t.attempt, t.architecture, s.spec FROM trials t \
             JOIN searches s ON s.id = t.search_id WHERE t.id = $1",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let claimed = ClaimedTrial {
            id,
            search_id: row.try_get("search_id")?,
            index: row.try_get("idx")?,
            attempt: row.try_get("attempt")?,
            architecture: row.try_get("architecture")?,
            spec: row.try_get("spec")?,
        };
        sqlx::query("UPDATE workers SET current_trial = $1, last_seen = $2 WHERE id = $3")
            .bind(id)
            .bind(now)
            .bind(&worker.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.publish([Event::TrialClaimed {
            search_id: claimed.search_id,
            trial_id: id,
        }]);
        Ok(Some(claimed))
    }

    /// Extends the lease of `(trial, attempt)` and stores its progress (JSON).
    pub async fn heartbeat(
        &self,
        trial: i64,
        attempt: i64,
        progress: Option<&str>,
    ) -> Result<Heartbeat, StoreError> {
        let now = now_ms();
        let lease = now + self.config().lease.as_millis() as i64;
        let updated = sqlx::query(
            "UPDATE trials SET lease_expires_at = $1, heartbeat_at = $2, progress = COALESCE($3, progress) \
             WHERE id = $4 AND attempt = $5 AND state = 'running'",
        )
        .bind(lease)
        .bind(now)
        .bind(progress)
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
        sqlx::query("UPDATE workers SET last_seen = $1 WHERE current_trial = $2")
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
            "INSERT INTO trial_metrics (trial_id, attempt, epoch, train_loss, train_accuracy, val_accuracy, seconds) \
             SELECT $1, $2, $3, $4, $5, $6, $7 WHERE EXISTS \
             (SELECT 1 FROM trials WHERE id = $1 AND attempt = $2 AND state = 'running')",
        )
        .bind(trial)
        .bind(attempt)
        .bind(m.epoch)
        .bind(m.train_loss)
        .bind(m.train_accuracy)
        .bind(m.val_accuracy)
        .bind(m.seconds)
        .execute(self.pool())
        .await?
        .rows_affected();
        if inserted == 0 {
            return Err(StoreError::LeaseLost { trial, attempt });
        }
        Ok(())
    }

    /// Locks the trial's search, then confirms `(trial, attempt)` still holds
    /// a running lease (optionally: an expired one) and locks the trial.
    async fn hold(
        &self,
        tx: &mut Transaction<'static, Any>,
        trial: i64,
        attempt: Option<i64>,
        expired_before: Option<i64>,
    ) -> Result<Option<Held>, StoreError> {
        let Some(search) = sqlx::query("SELECT search_id FROM trials WHERE id = $1")
            .bind(trial)
            .fetch_optional(&mut **tx)
            .await?
        else {
            return Err(StoreError::NotFound(format!("trial {trial}")));
        };
        let search_id: i64 = search.try_get("search_id")?;
        let sql = format!("SELECT id FROM searches WHERE id = $1{}", self.for_update());
        sqlx::query(&sql)
            .bind(search_id)
            .fetch_one(&mut **tx)
            .await?;
        let sql = format!(
            "SELECT attempt, max_attempts, errors FROM trials WHERE id = $1 AND state = 'running' \
             AND ($2 < 0 OR attempt = $2) AND ($3 < 0 OR lease_expires_at < $3){}",
            self.for_update()
        );
        let row = sqlx::query(&sql)
            .bind(trial)
            .bind(attempt.unwrap_or(-1))
            .bind(expired_before.unwrap_or(-1))
            .fetch_optional(&mut **tx)
            .await?;
        row.map(|r| {
            Ok(Held {
                search_id,
                attempt: r.try_get("attempt")?,
                max_attempts: r.try_get("max_attempts")?,
                errors: r.try_get("errors")?,
            })
        })
        .transpose()
    }

    /// Ends `(trial, attempt)` with its outcome and tops its search up.
    pub async fn complete(
        &self,
        trial: i64,
        attempt: i64,
        outcome: Completion,
    ) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let Some(held) = self.hold(&mut tx, trial, Some(attempt), None).await? else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        let (state, result, reward, weights) = match outcome {
            Completion::Succeeded {
                result,
                reward,
                weights,
            } => ("succeeded", Some(result), Some(reward), weights),
            Completion::Rejected { result } => ("rejected", Some(result), None, None),
            Completion::Cancelled => ("cancelled", None, None, None),
        };
        sqlx::query(
            "UPDATE trials SET state = $1, result = $2, reward = $3, finished_at = $4, lease_expires_at = NULL WHERE id = $5",
        )
        .bind(state)
        .bind(result)
        .bind(reward)
        .bind(now)
        .bind(trial)
        .execute(&mut *tx)
        .await?;
        if let Some(bytes) = weights {
            sqlx::query("INSERT INTO artifacts (trial_id, kind, bytes, created_at) VALUES ($1, 'weights', $2, $3)")
                .bind(trial)
                .bind(bytes)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        self.clear_worker(&mut tx, trial, now).await?;
        let events = self.top_up(&mut tx, held.search_id, now).await?;
        tx.commit().await?;
        self.publish(
            std::iter::once(Event::TrialFinished {
                search_id: held.search_id,
                trial_id: trial,
                state: state.into(),
            })
            .chain(events),
        );
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
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let Some(held) = self.hold(&mut tx, trial, Some(attempt), None).await? else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        let events = self
            .fail_held(&mut tx, trial, &held, error, retryable, now)
            .await?;
        tx.commit().await?;
        self.publish(events);
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
    ) -> Result<Vec<Event>, StoreError> {
        let mut errors: Vec<serde_json::Value> =
            serde_json::from_str(&held.errors).unwrap_or_default();
        errors.push(serde_json::json!({ "attempt": held.attempt, "error": error, "at_ms": now }));
        let errors = serde_json::Value::Array(errors).to_string();
        let retry = retryable && held.attempt < held.max_attempts;
        if retry {
            let run_at = now + self.config().backoff(held.attempt).as_millis() as i64;
            sqlx::query(
                "UPDATE trials SET state = 'pending', errors = $1, run_at = $2, worker_id = NULL, lease_expires_at = NULL, \
                 progress = NULL WHERE id = $3",
            )
            .bind(errors)
            .bind(run_at)
            .bind(trial)
            .execute(&mut **tx)
            .await?;
        } else {
            sqlx::query("UPDATE trials SET state = 'failed', errors = $1, finished_at = $2, lease_expires_at = NULL WHERE id = $3")
                .bind(errors)
                .bind(now)
                .bind(trial)
                .execute(&mut **tx)
                .await?;
        }
        self.clear_worker(tx, trial, now).await?;
        let state = if retry { "pending" } else { "failed" };
        let mut events = vec![Event::TrialFinished {
            search_id: held.search_id,
            trial_id: trial,
            state: state.into(),
        }];
        events.extend(self.top_up(tx, held.search_id, now).await?);
        Ok(events)
    }

    /// Hands `(trial, attempt)` back untouched (a worker shutting down): the
    /// trial is pending again at once and the attempt is not counted.
    pub async fn release(&self, trial: i64, attempt: i64) -> Result<(), StoreError> {
        let now = now_ms();
        let mut tx = self.write_tx().await?;
        let Some(held) = self.hold(&mut tx, trial, Some(attempt), None).await? else {
            tx.rollback().await?;
            return Err(StoreError::LeaseLost { trial, attempt });
        };
        sqlx::query(
            "UPDATE trials SET state = 'pending', attempt = attempt - 1, run_at = $1, worker_id = NULL, \
             lease_expires_at = NULL, progress = NULL WHERE id = $2",
        )
        .bind(now)
        .bind(trial)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM trial_metrics WHERE trial_id = $1 AND attempt = $2")
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
        let now = now_ms();
        let rows = sqlx::query(
            "SELECT id, worker_id FROM trials WHERE state = 'running' AND lease_expires_at < $1",
        )
        .bind(now)
        .fetch_all(self.pool())
        .await?;
        let mut handled = 0;
        for row in rows {
            let trial: i64 = row.try_get("id")?;
            let worker: Option<String> = row.try_get("worker_id")?;
            let mut tx = self.write_tx().await?;
            let Some(held) = self.hold(&mut tx, trial, None, Some(now)).await? else {
                tx.rollback().await?;
                continue;
            };
            let error = format!(
                "lease expired: worker {} stopped heartbeating",
                worker.as_deref().unwrap_or("?")
            );
            tracing::warn!(trial, attempt = held.attempt, %error, "rescuing trial");
            let events = self
                .fail_held(&mut tx, trial, &held, &error, true, now)
                .await?;
            tx.commit().await?;
            self.publish(events);
            handled += 1;
        }
        Ok(handled)
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
