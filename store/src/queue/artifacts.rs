//! A trial's weights and checkpoints, as blobs written inside the
//! lease-fenced transaction that indexes them.

use crate::blobs::{delete_blob, write_blob};
use sqlx::{Any, Row, Transaction};

use crate::{Store, StoreError};

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
pub(super) async fn write_artifact(
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
pub(super) async fn delete_artifact(
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

impl Store {
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
    pub(super) async fn save_artifact(
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
}
