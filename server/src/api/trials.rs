//! Trial routes: the trial with its epochs, its architecture, its weights
//! (safetensors) and its trained model as ONNX.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::dto::TrialDetail;
use super::extract::TrialId;
use super::responses::ReadErrors;
use super::{ApiError, ApiResult, AppState};

/// `GET /trials/{id}`: the trial, its result, errors and per-epoch metrics.
#[utoipa::path(get, path = "/api/v1/trials/{id}", tag = "trials",
    params(TrialId),
    responses((status = 200, body = TrialDetail), ReadErrors))]
pub async fn get_trial(
    State(state): State<AppState>,
    TrialId(id): TrialId,
) -> ApiResult<Json<TrialDetail>> {
    let trial = state.store.trial(id).await?;
    let epochs = state.store.epoch_metrics(id, trial.attempt).await?;
    let text = state.store.architecture(id).await?;
    let arch = search::Architecture::from_json(&text).map_err(ApiError::internal)?;
    let parent_trial_id = match trial.lineage.parent_index {
        Some(index) => state
            .store
            .trial_at(trial.search_id, index)
            .await?
            .map(|p| p.id),
        None => None,
    };
    Ok(Json(TrialDetail {
        trial,
        epochs,
        parent_trial_id,
        layers: super::dto::layers_of(&arch)?,
        architecture: serde_json::to_value(&arch).map_err(ApiError::internal)?,
    }))
}

/// `GET /trials/{id}/architecture`: the JSON `nas train --arch` loads.
#[utoipa::path(get, path = "/api/v1/trials/{id}/architecture", tag = "trials",
    params(TrialId),
    responses((status = 200, description = "The architecture JSON", body = Object), ReadErrors))]
pub async fn get_architecture(
    State(state): State<AppState>,
    TrialId(id): TrialId,
) -> ApiResult<Response> {
    let text = state.store.architecture(id).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response())
}

/// `GET /trials/{id}/weights`: the trained weights, a safetensors download.
#[utoipa::path(get, path = "/api/v1/trials/{id}/weights", tag = "trials",
    params(TrialId),
    responses(
        (status = 200, description = "safetensors file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = super::dto::ErrorBody),
        (status = 404, description = "No such trial, or not trained", body = super::dto::ErrorBody),
    ))]
pub async fn get_weights(
    State(state): State<AppState>,
    TrialId(id): TrialId,
) -> ApiResult<Response> {
    state.store.trial(id).await?;
    let bytes = state
        .store
        .weights(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("weights of trial {id}")))?;
    Ok(download(format!("trial-{id}.safetensors"), bytes))
}

/// A binary download saved as `filename`.
fn download(filename: String, bytes: Vec<u8>) -> Response {
    let disposition = format!("attachment; filename=\"{filename}\"");
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// `GET /trials/{id}/model.onnx`: a succeeded trial's trained network as an
/// ONNX model (input `pixels`, raw values in [0, 255]; output `logits`),
/// with its architecture and metrics in the model's metadata.
#[utoipa::path(get, path = "/api/v1/trials/{id}/model.onnx", tag = "trials",
    params(TrialId),
    responses(
        (status = 200, description = "ONNX model (opset 17)", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 401, body = super::dto::ErrorBody),
        (status = 404, description = "No such trial, or no weights", body = super::dto::ErrorBody),
        (status = 409, description = "The trial did not succeed (failed, stopped early, rejected, cancelled or still running)", body = super::dto::ErrorBody),
        (status = 422, description = "A layer has no ONNX form", body = super::dto::ErrorBody),
    ))]
pub async fn get_onnx(State(state): State<AppState>, TrialId(id): TrialId) -> ApiResult<Response> {
    let trial = state.store.trial(id).await?;
    if trial.state != store::TrialState::Succeeded {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_exportable",
            format!(
                "trial {id} is {}: only a succeeded trial's trained model can be exported",
                trial.state.as_str()
            ),
        ));
    }
    let weights = state
        .store
        .weights(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("weights of trial {id}")))?;
    let text = state.store.architecture(id).await?;
    let arch = search::Architecture::from_json(&text).map_err(ApiError::internal)?;
    let metrics = serde_json::json!({
        "trial_id": trial.id,
        "search_id": trial.search_id,
        "phase": trial.phase,
        "reward": trial.reward,
        "test_accuracy": trial.test_accuracy,
        "result": trial.result,
    });
    let metadata = vec![("nas.trial".to_owned(), metrics.to_string())];
    let exported = tokio::task::spawn_blocking(move || export_onnx(id, &arch, &weights, &metadata))
        .await
        .map_err(ApiError::internal)??;
    Ok(download(format!("trial-{id}.onnx"), exported))
}

/// Builds trial `id`'s network, loads its weights and exports it.
fn export_onnx(
    id: i64,
    arch: &search::Architecture,
    weights: &[u8],
    metadata: &[(String, String)],
) -> ApiResult<Vec<u8>> {
    let mut net = worker::net::Network::new(arch, 0).map_err(ApiError::internal)?;
    let file = std::path::PathBuf::from(format!("trial-{id}.safetensors"));
    worker::weights::load_bytes(&mut net, weights, &file).map_err(ApiError::internal)?;
    worker::onnx::to_onnx(&net, metadata).map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_exportable",
            e.to_string(),
        )
    })
}
