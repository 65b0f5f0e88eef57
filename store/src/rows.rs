//! The database rows as read, mapped by `#[derive(FromRow)]`, and their
//! conversion into the typed rows the store hands out (states parsed, JSON
//! columns read as `search` types). Stored data that does not convert is
//! [`StoreError::Corrupt`], naming the row.

use search::{AttemptError, TrialProgress, TrialResult};
use sqlx::any::AnyRow;
use sqlx::FromRow;

use crate::{
    Lineage, SearchRow, SearchStatus, Store, StoreError, TrialPhase, TrialRow, TrialState,
};

/// The columns [`SearchRecord`] reads.
pub(crate) const SEARCH_COLUMNS: &str =
    "id, name, status, spec, proposed, created_at, finished_at, error, epochs_committed, epochs_wasted";

/// The columns [`TrialRecord`] reads.
pub(crate) const TRIAL_COLUMNS: &str =
    "id, search_id, idx, state, attempt, parent_idx, mutation, baseline, reward, result, errors, worker_id, progress, \
     phase, rung, epochs_done, source_idx, test_accuracy, \
     (SELECT size FROM artifacts a WHERE a.trial_id = trials.id AND a.kind = 'checkpoint') AS checkpoint_bytes";

/// A `searches` row as stored.
#[derive(Debug, FromRow)]
struct SearchRecord {
    id: i64,
    name: String,
    status: String,
    spec: String,
    proposed: i64,
    created_at: i64,
    finished_at: Option<i64>,
    error: Option<String>,
    epochs_committed: i64,
    epochs_wasted: i64,
}

/// A `trials` row as stored.
#[derive(Debug, FromRow)]
struct TrialRecord {
    id: i64,
    search_id: i64,
    idx: i64,
    state: String,
    attempt: i64,
    parent_idx: Option<i64>,
    mutation: Option<String>,
    baseline: Option<String>,
    reward: Option<f64>,
    result: Option<String>,
    errors: String,
    worker_id: Option<String>,
    progress: Option<String>,
    phase: String,
    rung: Option<i64>,
    epochs_done: i64,
    source_idx: Option<i64>,
    test_accuracy: Option<f64>,
    checkpoint_bytes: Option<i64>,
}

/// Reads a search row selected with [`SEARCH_COLUMNS`], its spec decoded
/// through `store` (once per process).
pub(crate) fn search_row(store: &Store, row: &AnyRow) -> Result<SearchRow, StoreError> {
    let r = SearchRecord::from_row(row)?;
    let status = SearchStatus::parse(&r.status)
        .ok_or_else(|| StoreError::Corrupt(format!("search {}: status {}", r.id, r.status)))?;
    Ok(SearchRow {
        id: r.id,
        name: r.name,
        status,
        spec: store.spec_from_text(r.id, &r.spec)?,
        proposed: r.proposed,
        created_at: r.created_at,
        finished_at: r.finished_at,
        error: r.error,
        epochs_committed: r.epochs_committed,
        epochs_wasted: r.epochs_wasted,
    })
}

/// Reads a trial row selected with [`TRIAL_COLUMNS`].
pub(crate) fn trial_row(row: &AnyRow) -> Result<TrialRow, StoreError> {
    let r = TrialRecord::from_row(row)?;
    let corrupt = |what: String| StoreError::Corrupt(format!("trial {}: {what}", r.id));
    let state = TrialState::parse(&r.state).ok_or_else(|| corrupt(format!("state {}", r.state)))?;
    let phase = TrialPhase::parse(&r.phase).ok_or_else(|| corrupt(format!("phase {}", r.phase)))?;
    let result = r
        .result
        .as_deref()
        .map(TrialResult::from_json)
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    let errors = AttemptError::list_from_json(&r.errors).map_err(|e| corrupt(e.to_string()))?;
    let progress = r
        .progress
        .as_deref()
        .map(TrialProgress::from_json)
        .transpose()
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(TrialRow {
        id: r.id,
        search_id: r.search_id,
        index: r.idx,
        state,
        attempt: r.attempt,
        lineage: Lineage {
            parent_index: r.parent_idx,
            mutation: r.mutation,
            baseline: r.baseline,
        },
        reward: r.reward,
        result,
        errors,
        worker_id: r.worker_id,
        progress,
        phase,
        rung: r.rung,
        epochs_done: r.epochs_done,
        source_index: r.source_idx,
        test_accuracy: r.test_accuracy,
        checkpoint_bytes: r.checkpoint_bytes,
    })
}

/// A row's figures on the dominance plane, from its `accuracy`,
/// `latency_ms`, `params` and `macs` columns (missing figures are NaN or 0:
/// such a point ranks last).
pub(crate) fn point_of(row: &AnyRow) -> Result<search::Point, StoreError> {
    use sqlx::Row;
    let count = |name: &str| -> Result<u64, StoreError> {
        Ok(row.try_get::<Option<i64>, _>(name)?.unwrap_or(0).max(0) as u64)
    };
    Ok(search::Point {
        accuracy: row
            .try_get::<Option<f64>, _>("accuracy")?
            .unwrap_or(f64::NAN),
        latency_ms: row
            .try_get::<Option<f64>, _>("latency_ms")?
            .unwrap_or(f64::NAN),
        params: count("params")?,
        macs: count("macs")?,
    })
}
