//! The handlers.

use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use store::{SearchRow, SearchSpec, TrialRow};

use super::{ApiError, AppState};

type ApiResult<T> = Result<T, ApiError>;

/// An id from the path: a positive integer, else 404 (no such resource).
fn id_of(raw: &str, what: &str) -> ApiResult<i64> {
    raw.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::not_found(format!("{what} `{raw}`")))
}

/// Parses a stored JSON column for output (a corrupt one shows as null).
fn json_column(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

fn search_json(s: &SearchRow) -> Value {
    json!({
        "id": s.id, "name": s.name, "status": s.status, "spec": json_column(Some(&s.spec)),
        "trials_proposed": s.proposed, "created_at_ms": s.created_at, "finished_at_ms": s.finished_at,
    })
}

fn trial_json(t: &TrialRow) -> Value {
    json!({
        "id": t.id, "search_id": t.search_id, "index": t.index, "state": t.state, "attempt": t.attempt,
        "parent_index": t.parent_index, "reward": t.reward, "result": json_column(t.result.as_deref()),
        "errors": json_column(Some(&t.errors)), "worker_id": t.worker_id, "progress": json_column(t.progress.as_deref()),
    })
}

/// `GET /healthz`: the process answers.
pub async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /readyz`: the database answers.
pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %e, "database not reachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "database unreachable" })),
            )
        }
    }
}

/// `POST /searches`: validate, store, queue the first trials; `201`.
pub async fn create_search(
    State(state): State<AppState>,
    body: Result<Json<SearchSpec>, axum::extract::rejection::JsonRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let Json(spec) = body?;
    let id = state.store.create_search(&spec).await?;
    let search = state.store.search(id).await?;
    Ok((StatusCode::CREATED, Json(search_json(&search))))
}

/// `GET /searches`: every search, newest first.
pub async fn list_searches(State(state): State<AppState>) -> ApiResult<Json<Value>> {
    let searches = state.store.searches().await?;
    Ok(Json(
        json!({ "searches": searches.iter().map(search_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /searches/{id}`: status, counts by state, best trial.
pub async fn get_search(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&raw, "search")?;
    let search = state.store.search(id).await?;
    let counts = state.store.trial_counts(id).await?;
    let trials = state.store.trials(id).await?;
    let best = trials.iter().filter(|t| t.reward.is_some()).max_by(|a, b| {
        a.reward
            .unwrap_or(f64::MIN)
            .total_cmp(&b.reward.unwrap_or(f64::MIN))
    });
    let mut out = search_json(&search);
    out["trial_counts"] = json!(counts);
    out["best_trial"] = best.map_or(Value::Null, trial_json);
    Ok(Json(out))
}

/// `POST /searches/{id}/cancel`: `409` if it already ended.
pub async fn cancel_search(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&raw, "search")?;
    state.store.cancel_search(id).await?;
    Ok(Json(search_json(&state.store.search(id).await?)))
}

/// `GET /searches/{id}/trials`: the trials in index order.
pub async fn list_trials(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&raw, "search")?;
    state.store.search(id).await?;
    let trials = state.store.trials(id).await?;
    Ok(Json(
        json!({ "trials": trials.iter().map(trial_json).collect::<Vec<_>>() }),
    ))
}

/// `GET /trials/{id}`: the trial with its per-epoch metrics.
pub async fn get_trial(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = id_of(&raw, "trial")?;
    let trial = state.store.trial(id).await?;
    let metrics = state.store.epoch_metrics(id, trial.attempt).await?;
    let mut out = trial_json(&trial);
    out["epochs"] = json!(metrics);
    Ok(Json(out))
}

/// `GET /trials/{id}/architecture`: the JSON `nas train --arch` loads.
pub async fn get_architecture(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let id = id_of(&raw, "trial")?;
    let text = state.store.architecture(id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

/// `GET /trials/{id}/weights`: the trained weights as a safetensors download.
pub async fn get_weights(
    State(state): State<AppState>,
    Path(raw): Path<String>,
) -> ApiResult<Response> {
    let id = id_of(&raw, "trial")?;
    state.store.trial(id).await?;
    let bytes = state
        .store
        .weights(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("weights of trial {id}")))?;
    let disposition = format!("attachment; filename=\"trial-{id}.safetensors\"");
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /zoo`: the reference architectures with params and MACs at their published input.
pub async fn zoo() -> ApiResult<Json<Value>> {
    let mut entries = Vec::new();
    for e in search::zoo::ZOO {
        let arch = e
            .build(e.published_input, e.published_classes, 1.0)
            .map_err(|err| ApiError::internal(err.to_string()))?;
        let report = search::validate(&arch).map_err(|err| ApiError::internal(err.to_string()))?;
        entries.push(json!({
            "name": e.name, "title": e.title, "input": e.published_input, "classes": e.published_classes,
            "params": report.params, "macs": report.macs,
        }));
    }
    Ok(Json(json!({ "zoo": entries })))
}

/// `GET /spaces`: the preset search spaces.
pub async fn spaces() -> ApiResult<Json<Value>> {
    let mut presets = serde_json::Map::new();
    for name in search::space::PRESETS {
        let space =
            search::SearchSpace::preset(name).map_err(|err| ApiError::internal(err.to_string()))?;
        presets.insert(name.to_owned(), json!(space));
    }
    Ok(Json(json!({ "presets": presets })))
}

/// Any other path: a JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::not_found("route")
}
